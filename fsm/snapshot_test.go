package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// headerBytes is the length of a snapshot stream's header: magic, version,
// shard, applied.
const headerBytes = len("CAIRNSNP") + 1 + 4 + 8

// populate applies the workload's first n entries to a new FSM of shard on db.
func populate(t testing.TB, db *pebble.DB, shard uint32, n int) *fsm.FSM {
	t.Helper()
	f := openFSM(t, db, shard)
	applyRange(t, f, workload(t, n), 1, n)
	return f
}

// smallShard applies a few small entries to a new FSM of shard on db: a
// snapshot of it is short enough to corrupt at every byte.
func smallShard(t testing.TB, db *pebble.DB, shard uint32) *fsm.FSM {
	t.Helper()
	f := openFSM(t, db, shard)
	applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(
		entry("a", objectstore.ContentTypeJSON, []byte("1")),
		entry("b", objectstore.ContentTypeText, []byte("two")),
		entry("c", "x/y", []byte{0, 0xff})))}))
	applyOK(t, f, 2, mustEncode(t, &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns",
		NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: "http://h", AlarmMaxRetries: 2}}))
	applyOK(t, f, 3, txData(t, 3, "p", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "3"})}))
	return f
}

func setMarker(t testing.TB, db *pebble.DB, shard uint32) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := objectstore.SetRestoreMarker(b, shard, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// expectConsistentAfterFailure checks what must hold after any failed
// restore: the in-memory readiness agrees with what a restart would find
// (the restore marker), and a reopened FSM agrees too.
func expectConsistentAfterFailure(t testing.TB, what string, f *fsm.FSM, db *pebble.DB) (marker bool) {
	t.Helper()
	marker = restoreMarker(t, db, f.Shard())
	if f.Ready() == marker {
		t.Fatalf("%s: Ready() = %v but the restore marker is %v: a restart would disagree with this FSM", what, f.Ready(), marker)
	}
	g, err := fsm.Open(db, f.Shard(), nil)
	if err != nil {
		t.Fatalf("%s: reopening the FSM: %v", what, err)
	}
	if g.Ready() != f.Ready() {
		t.Fatalf("%s: reopened FSM Ready() = %v, this one %v", what, g.Ready(), f.Ready())
	}
	return marker
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := memDB(t)
	srcFSM := populate(t, src, testShard, 45)
	stream := snapshotBytes(t, srcFSM)
	if h := header(t, stream); h != (fsm.SnapshotHeader{Shard: testShard, Applied: 45}) {
		t.Fatalf("header %+v, want shard %d applied 45", h, testShard)
	}

	// The target database also holds the neighbouring shards and a node-local
	// record of another shard; a restore must not touch them.
	dst := memDB(t)
	populate(t, dst, testShard-1, 30)
	populate(t, dst, testShard+1, 20)
	setMarker(t, dst, testShard+1)
	lo, _ := objectstore.ShardSpan(testShard)
	_, hi := objectstore.ShardSpan(testShard)
	before := func() []kv { return append(dump(t, dst, nil, lo), dump(t, dst, hi, nil)...) }
	othersBefore := before()

	f := openFSM(t, dst, testShard)
	if err := restoreBytes(f, stream); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !f.Ready() || f.Applied() != 45 || restoreMarker(t, dst, testShard) {
		t.Fatalf("after Restore: Ready %v Applied %d marker %v; want true, 45, false", f.Ready(), f.Applied(), restoreMarker(t, dst, testShard))
	}
	expectSameKV(t, "restored shard vs. source", shardDump(t, dst, testShard), shardDump(t, src, testShard))
	expectSameKV(t, "everything outside the restored shard", before(), othersBefore)
	if !restoreMarker(t, dst, testShard+1) {
		t.Fatal("the restore cleared another shard's restore marker")
	}

	// A snapshot of the restored state is the same stream.
	if again := snapshotBytes(t, f); !bytes.Equal(again, stream) {
		t.Fatalf("snapshot of the restored state differs from the source's (%d vs %d bytes)", len(again), len(stream))
	}
	// Entries the snapshot holds are skipped; later ones apply identically.
	entries := workload(t, 50)
	if r := f.Apply(logEntry(45, entries[44])); r != nil {
		t.Fatalf("entry 45, inside the snapshot, returned %+v", r)
	}
	applyRange(t, f, entries, 46, 50)
	applyRange(t, srcFSM, entries, 46, 50)
	expectSameKV(t, "after applying past the snapshot", shardDump(t, dst, testShard), shardDump(t, src, testShard))
	if g := openFSM(t, dst, testShard); g.Applied() != 50 || !g.Ready() {
		t.Fatalf("reopened: Applied %d Ready %v", g.Applied(), g.Ready())
	}
}

// Restore replaces the shard's state: keys the snapshot does not hold are
// gone, even when the target was further ahead.
func TestRestoreReplacesExistingState(t *testing.T) {
	src := memDB(t)
	stream := snapshotBytes(t, populate(t, src, testShard, 12))
	dst := memDB(t)
	f := openFSM(t, dst, testShard)
	applyRange(t, f, workload(t, 39), 1, 39)
	applyOK(t, f, 500, txData(t, 500, "only-in-target", objectstore.Tx{Ops: ops(putOp(entry("stale", "", []byte("x"))))}))
	if err := restoreBytes(f, stream); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	expectSameKV(t, "restored shard vs. source", shardDump(t, dst, testShard), shardDump(t, src, testShard))
	if f.Applied() != 12 {
		t.Fatalf("Applied = %d, want the snapshot's 12", f.Applied())
	}
	if _, ok := getValue(t, dst, testShard, "ns", "only-in-target", "stale"); ok {
		t.Fatal("a key the snapshot does not hold survived the restore")
	}
}

// A snapshot of a shard that never applied anything is a header and an empty
// record list; restoring it empties the shard.
func TestSnapshotOfEmptyShard(t *testing.T) {
	stream := snapshotBytes(t, openFSM(t, memDB(t), testShard))
	if h := header(t, stream); h.Applied != 0 {
		t.Fatalf("empty shard's header %+v", h)
	}
	dst := memDB(t)
	f := populate(t, dst, testShard, 10)
	if err := restoreBytes(f, stream); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if recs := shardDump(t, dst, testShard); len(recs) != 0 || f.Applied() != 0 || !f.Ready() {
		t.Fatalf("after restoring an empty shard: %d records, Applied %d, Ready %v", len(recs), f.Applied(), f.Ready())
	}
}

// The first and last shard ids have spans at the edges of the shard space.
func TestSnapshotEdgeShards(t *testing.T) {
	for _, shard := range []uint32{0, 1, math.MaxUint32 - 1, math.MaxUint32} {
		t.Run(fmt.Sprint(shard), func(t *testing.T) {
			src := memDB(t)
			stream := snapshotBytes(t, populate(t, src, shard, 20))
			dst := memDB(t)
			neighbours := []uint32{shard - 1, shard + 1} // wrapping on purpose
			for _, nb := range neighbours {
				populate(t, dst, nb, 15)
			}
			f := populate(t, dst, shard, 7)
			want := map[uint32][]kv{}
			for _, nb := range neighbours {
				want[nb] = shardDump(t, dst, nb)
			}
			if err := restoreBytes(f, stream); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			expectSameKV(t, "restored shard", shardDump(t, dst, shard), shardDump(t, src, shard))
			for _, nb := range neighbours {
				expectSameKV(t, fmt.Sprintf("neighbour shard %d", nb), shardDump(t, dst, nb), want[nb])
			}
		})
	}
}

func TestRestoreWrongShard(t *testing.T) {
	stream := snapshotBytes(t, populate(t, memDB(t), testShard+1, 10))
	dst := memDB(t)
	f := populate(t, dst, testShard, 5)
	before := allDump(t, dst)
	err := restoreBytes(f, stream)
	if !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Fatalf("Restore of another shard's snapshot = %v, want ErrBadSnapshot", err)
	}
	expectSameKV(t, "database after a rejected snapshot", allDump(t, dst), before)
	if f.Applied() != 5 {
		t.Fatalf("Applied = %d, want 5", f.Applied())
	}
	// Nothing was touched, so the shard stays readable.
	if marker := expectConsistentAfterFailure(t, "wrong shard", f, dst); marker || !f.Ready() {
		t.Fatalf("after a rejected snapshot: marker %v, Ready %v; want false, true", marker, f.Ready())
	}
}

func TestReadSnapshotHeader(t *testing.T) {
	good := snapshotBytes(t, populate(t, memDB(t), testShard, 3))
	if h, err := fsm.ReadSnapshotHeader(bytes.NewReader(good)); err != nil || h != (fsm.SnapshotHeader{Shard: testShard, Applied: 3}) {
		t.Fatalf("ReadSnapshotHeader = %+v, %v", h, err)
	}
	bad := map[string][]byte{
		"empty":       nil,
		"short":       good[:headerBytes-1],
		"bad magic":   append([]byte("CAIRNSNQ"), good[8:]...),
		"version 0":   append(append([]byte("CAIRNSNP"), 0), good[9:]...),
		"version 2":   append(append([]byte("CAIRNSNP"), 2), good[9:]...),
		"not cairn":   []byte(strings.Repeat("x", 64)),
		"magic alone": []byte("CAIRNSNP"),
	}
	for name, in := range bad {
		if _, err := fsm.ReadSnapshotHeader(bytes.NewReader(in)); !errors.Is(err, fsm.ErrBadSnapshot) {
			t.Errorf("%s: ReadSnapshotHeader err = %v, want ErrBadSnapshot", name, err)
		}
	}
}

// Every single-byte corruption and every truncation of a snapshot stream is
// rejected; once the restore has begun replacing state, the shard stays
// unreadable (also after a restart) until a restore succeeds.
func TestRestoreCorruptStream(t *testing.T) {
	src := memDB(t)
	stream := snapshotBytes(t, populate(t, src, testShard, 15))
	want := shardDump(t, src, testShard)
	store := newStore(t)
	srcFSM := openFSM(t, src, testShard)
	id := persistToStore(t, srcFSM, store, 15)

	dst := memDB(t)
	f := populate(t, dst, testShard, 4)

	check := func(what string, in []byte, wantMarker bool) {
		t.Helper()
		err := restoreBytes(f, in)
		if !errors.Is(err, fsm.ErrBadSnapshot) {
			t.Fatalf("%s: Restore = %v, want ErrBadSnapshot", what, err)
		}
		marker := expectConsistentAfterFailure(t, what, f, dst)
		if wantMarker && (!marker || f.Ready()) {
			t.Fatalf("%s: marker %v, Ready %v; want the marker set and the shard not ready", what, marker, f.Ready())
		}
		if marker && !needsRestore(t, openFSM(t, dst, testShard), store) {
			t.Fatalf("%s: NeedsRestore is false for a shard whose restore was interrupted", what)
		}
		if _, err := f.Snapshot(); marker && !errors.Is(err, fsm.ErrRestoring) {
			t.Fatalf("%s: Snapshot of a half-restored shard = %v, want ErrRestoring", what, err)
		}
	}

	// One flipped byte in the middle of the records.
	mid := bytes.Clone(stream)
	mid[len(mid)/2] ^= 0x01
	check("a flipped byte in the middle", mid, true)
	check("truncated half way", stream[:len(stream)/2], true)
	check("the checksum cut off", stream[:len(stream)-4], true)
	check("the last checksum byte cut off", stream[:len(stream)-1], true)
	check("cut after the header", stream[:headerBytes], true)

	// Every byte of a small stream, flipped, and every truncation of it.
	small := snapshotBytes(t, smallShard(t, memDB(t), testShard))
	for i := range small {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			in := bytes.Clone(small)
			in[i] ^= mask
			check(fmt.Sprintf("byte %d of %d ^ %#x", i, len(small), mask), in, i >= headerBytes)
		}
	}
	for cut := range len(small) {
		check(fmt.Sprintf("cut at %d of %d", cut, len(small)), small[:cut], cut >= headerBytes)
	}

	// A good restore, from the Raft snapshot store, heals the shard.
	_, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(rc); err != nil {
		t.Fatalf("Restore of the good snapshot: %v", err)
	}
	if !f.Ready() || restoreMarker(t, dst, testShard) || f.Applied() != 15 {
		t.Fatalf("after a good restore: Ready %v marker %v Applied %d", f.Ready(), restoreMarker(t, dst, testShard), f.Applied())
	}
	expectSameKV(t, "restored shard", shardDump(t, dst, testShard), want)
	if g := openFSM(t, dst, testShard); !g.Ready() || needsRestore(t, g, store) {
		t.Fatal("reopened after a good restore: not ready or needs a restore")
	}
}

// cutReader returns the first n bytes of a stream and then fails, like a
// connection that drops during InstallSnapshot.
type cutReader struct {
	r      io.Reader
	closed bool
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
func (c *cutReader) Close() error { c.closed = true; return nil }

// TestRestoreCrashWindow simulates a crash in the middle of installing a
// snapshot: the restore marker is written, part of the data is loaded, and
// the node dies. Restarted, the FSM must not be ready and must ask for a
// restore — even though the applied index it finds may already be the
// snapshot's — and a following restore must bring back the right data.
func TestRestoreCrashWindow(t *testing.T) {
	// About 10 MiB, so a restore commits several batches before the cut.
	src := memDB(t)
	srcFSM := openFSM(t, src, testShard)
	for i := 1; i <= 10; i++ {
		applyOK(t, srcFSM, uint64(i), txData(t, i, fmt.Sprintf("big-%d", i), objectstore.Tx{Ops: ops(putOp(
			entry("blob", objectstore.ContentTypeBytes, bytes.Repeat([]byte{byte(i)}, 1<<20)),
			entry("small", objectstore.ContentTypeText, []byte("s"))))}))
	}
	applyRange(t, srcFSM, workload(t, 30), 11, 30)
	want := shardDump(t, src, testShard)
	store := newStore(t)
	id := persistToStore(t, srcFSM, store, 33)
	_, rc, err := store.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		cut   int
		crash bool // crash (only synced data survives) instead of a clean restart
	}{
		{"cut after the header, restart", headerBytes + 1, false},
		{"cut half way, crash", len(stream) / 2, true},
		{"cut at the checksum, restart", len(stream) - 4, false},
		{"cut near the end, crash", len(stream) - 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db := openDB(t, fs)
			f := populate(t, db, testShard, 5) // an older state, behind the snapshot
			populate(t, db, testShard+1, 8)
			other := shardDump(t, db, testShard+1)

			cr := &cutReader{r: bytes.NewReader(stream[:tc.cut])}
			if err := f.Restore(cr); !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Fatalf("Restore of a cut stream = %v, want ErrBadSnapshot", err)
			}
			if !cr.closed {
				t.Error("Restore did not close its reader")
			}
			if f.Ready() || !restoreMarker(t, db, testShard) {
				t.Fatalf("after the failed restore: Ready %v, marker %v", f.Ready(), restoreMarker(t, db, testShard))
			}

			if tc.crash {
				crashed := fs.CrashClone(vfs.CrashCloneCfg{})
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				fs, db = crashed, openDB(t, crashed)
			} else {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = openDB(t, fs)
			}
			g := openFSM(t, db, testShard)
			// The applied index sorts before the objects, so a partly loaded
			// shard may already claim the snapshot's index: only the marker
			// tells it apart.
			t.Logf("restarted: Applied %d (snapshot's %d), %d records", g.Applied(), 30, len(shardDump(t, db, testShard)))
			if g.Ready() || !restoreMarker(t, db, testShard) {
				t.Fatalf("restarted: Ready %v, marker %v; want not ready, marker set", g.Ready(), restoreMarker(t, db, testShard))
			}
			if !needsRestore(t, g, store) {
				t.Fatal("restarted: NeedsRestore = false for an interrupted restore")
			}
			if _, err := g.Snapshot(); !errors.Is(err, fsm.ErrRestoring) {
				t.Fatalf("Snapshot of a half-restored shard = %v, want ErrRestoring", err)
			}
			expectSameKV(t, "the other shard", shardDump(t, db, testShard+1), other)

			// What Raft then does: restore the newest snapshot.
			_, rc, err := store.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Restore(rc); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !g.Ready() || g.Applied() != 30 || restoreMarker(t, db, testShard) || needsRestore(t, g, store) {
				t.Fatalf("after the restore: Ready %v Applied %d marker %v", g.Ready(), g.Applied(), restoreMarker(t, db, testShard))
			}
			expectSameKV(t, "restored shard", shardDump(t, db, testShard), want)

			// A successful restore is durable: it survives a crash right after.
			crashed := fs.CrashClone(vfs.CrashCloneCfg{})
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, crashed)
			defer db.Close()
			h := openFSM(t, db, testShard)
			if !h.Ready() || h.Applied() != 30 || needsRestore(t, h, store) {
				t.Fatalf("crashed after the restore: Ready %v Applied %d", h.Ready(), h.Applied())
			}
			expectSameKV(t, "restored shard after a crash", shardDump(t, db, testShard), want)
			expectSameKV(t, "the other shard after a crash", shardDump(t, db, testShard+1), other)
		})
	}
}

func TestNeedsRestore(t *testing.T) {
	entries := workload(t, 40)
	newFSM := func(n int) *fsm.FSM {
		f := openFSM(t, memDB(t), testShard)
		applyRange(t, f, entries, 1, n)
		return f
	}

	t.Run("no snapshots", func(t *testing.T) {
		if needsRestore(t, newFSM(0), newStore(t)) || needsRestore(t, newFSM(10), newStore(t)) {
			t.Fatal("NeedsRestore with no snapshots = true")
		}
	})
	t.Run("own snapshot", func(t *testing.T) {
		store := newStore(t)
		f := newFSM(20)
		persistToStore(t, f, store, 20)
		if needsRestore(t, f, store) {
			t.Fatal("NeedsRestore = true right after taking the snapshot")
		}
		applyRange(t, f, entries, 21, 25)
		if needsRestore(t, f, store) {
			t.Fatal("NeedsRestore = true for an FSM ahead of the snapshot")
		}
	})
	t.Run("snapshot from a replica further ahead", func(t *testing.T) {
		store := newStore(t)
		persistToStore(t, newFSM(30), store, 30)
		for n, want := range map[int]bool{0: true, 10: true, 29: true, 30: false, 40: false} {
			if got := needsRestore(t, newFSM(n), store); got != want {
				t.Errorf("FSM at %d, snapshot at 30: NeedsRestore = %v, want %v", n, got, want)
			}
		}
	})
	t.Run("raft index above the applied index", func(t *testing.T) {
		// Raft labels a snapshot with its last index, which may count entries
		// that never reach the FSM; the header's applied index is what counts.
		store := newStore(t)
		persistToStore(t, newFSM(20), store, 27)
		if needsRestore(t, newFSM(20), store) {
			t.Fatal("NeedsRestore = true for an FSM at the snapshot's applied index")
		}
		if !needsRestore(t, newFSM(19), store) {
			t.Fatal("NeedsRestore = false for an FSM behind the snapshot's applied index")
		}
	})
	t.Run("the newest snapshot counts", func(t *testing.T) {
		store := newStore(t)
		persistToStore(t, newFSM(5), store, 5)
		persistToStore(t, newFSM(35), store, 35)
		if !needsRestore(t, newFSM(20), store) {
			t.Fatal("NeedsRestore = false for an FSM between two snapshots")
		}
	})
	t.Run("interrupted restore", func(t *testing.T) {
		db := memDB(t)
		f := openFSM(t, db, testShard)
		applyRange(t, f, entries, 1, 40)
		setMarker(t, db, testShard)
		g := openFSM(t, db, testShard)
		if g.Ready() {
			t.Fatal("FSM with a restore marker is Ready")
		}
		store := newStore(t)
		persistToStore(t, newFSM(10), store, 10)
		if !needsRestore(t, g, store) {
			t.Fatal("NeedsRestore = false for an interrupted restore, though the FSM is ahead")
		}
	})
	t.Run("garbage snapshot", func(t *testing.T) {
		store := newStore(t)
		sink, err := store.Create(raft.SnapshotVersionMax, 9, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("not a cairn snapshot")); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := newFSM(3).NeedsRestore(store); !errors.Is(err, fsm.ErrBadSnapshot) {
			t.Fatalf("NeedsRestore over a garbage snapshot: err = %v, want ErrBadSnapshot", err)
		}
	})
}

// Snapshot only captures a point in time; Persist may stream it while Apply
// goes on, and sees none of the later entries.
func TestSnapshotIsPointInTime(t *testing.T) {
	const k, n = 25, 50
	entries := workload(t, n)
	// Entries after the snapshot also write keys that did not exist before,
	// and then delete everything, so any leak into the stream shows.
	entries = append(entries,
		txData(t, n+1, "late", objectstore.Tx{Ops: ops(putOp(entry("late-key", "", []byte("late"))))}),
		txData(t, n+2, "obj-1", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true})}),
	)
	states, _ := referenceRun(t, testShard, entries)

	db := memDB(t)
	f := openFSM(t, db, testShard)
	applyRange(t, f, entries, 1, k)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()

	var sink memSink
	var wg sync.WaitGroup
	var persistErr error
	wg.Go(func() { persistErr = snap.Persist(&sink) })
	applyRange(t, f, entries, k+1, len(entries))
	wg.Wait()
	if persistErr != nil {
		t.Fatalf("Persist: %v", persistErr)
	}
	expectSameKV(t, "source after all entries", shardDump(t, db, testShard), states[len(entries)])

	if h := header(t, sink.Bytes()); h.Applied != k {
		t.Fatalf("snapshot header %+v, want applied %d", h, k)
	}
	dst := memDB(t)
	g := openFSM(t, dst, testShard)
	if err := restoreBytes(g, sink.Bytes()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if g.Applied() != k {
		t.Fatalf("restored Applied = %d, want %d", g.Applied(), k)
	}
	expectSameKV(t, "restored state vs. the state at the snapshot", shardDump(t, dst, testShard), states[k])
	if _, ok := getValue(t, dst, testShard, "ns", "late", "late-key"); ok {
		t.Fatal("a write applied after Snapshot() is in the snapshot")
	}
	// Persisting the same handle again, after more writes, gives the same stream.
	if again := persist(t, snap); !bytes.Equal(again, sink.Bytes()) {
		t.Fatal("a second Persist of the same snapshot differs")
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := populate(t, memDB(t), testShard, 30)
	full := snapshotBytes(t, f)
	for _, failAfter := range []int{1, headerBytes, len(full) / 2, len(full) - 4, len(full) - 1} {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{failAfter: failAfter}
		err = snap.Persist(sink)
		snap.Release()
		if !errors.Is(err, errSinkFull) {
			t.Errorf("failing after %d bytes: Persist = %v, want the sink's error", failAfter, err)
		}
		if !sink.cancelled || sink.closed {
			t.Errorf("failing after %d bytes: cancelled %v closed %v; want cancelled only", failAfter, sink.cancelled, sink.closed)
		}
	}
}

func TestSnapshotRefusedWhileNotReady(t *testing.T) {
	db := memDB(t)
	populate(t, db, testShard, 5)
	setMarker(t, db, testShard)
	f := openFSM(t, db, testShard)
	if snap, err := f.Snapshot(); !errors.Is(err, fsm.ErrRestoring) || snap != nil {
		t.Fatalf("Snapshot of a shard being restored = %v, %v; want ErrRestoring", snap, err)
	}
}

// rewriteStream parses a snapshot stream by its documented layout (header,
// records of uvarint-length key and value, 0x00, count, crc32c) and writes it
// back with edit applied to each record. With fixCRC the checksum matches the
// new content; otherwise the original checksum is kept.
func rewriteStream(t testing.TB, stream []byte, edit func(key, val []byte) []byte, fixCRC bool) []byte {
	t.Helper()
	out := bytes.Clone(stream[:headerBytes])
	p := stream[headerBytes:]
	next := func() []byte {
		n, w := binary.Uvarint(p)
		if w <= 0 || uint64(len(p)-w) < n {
			t.Fatalf("cannot parse the snapshot stream")
		}
		b := p[w : w+int(n)]
		p = p[w+int(n):]
		return b
	}
	for len(p) > 0 && p[0] != 0 {
		key := next()
		val := edit(key, next())
		out = binary.AppendUvarint(out, uint64(len(key)))
		out = append(out, key...)
		out = binary.AppendUvarint(out, uint64(len(val)))
		out = append(out, val...)
	}
	if len(p) != 1+8+4 {
		t.Fatalf("snapshot trailer is %d bytes, want 13", len(p))
	}
	out = append(out, p[:9]...)
	if fixCRC {
		return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crc32.MakeTable(crc32.Castagnoli)))
	}
	return append(out, p[9:]...)
}

// A restore that loaded records and then failed leaves whatever it loaded
// under the restore marker, perhaps an applied-index record that does not
// decode. Open must still succeed (not Ready, asking for a restore): the
// marker says that data is not to be trusted, and Raft can only restore the
// shard if the FSM opens.
func TestOpenUnderMarkerToleratesCorruptAppliedIndex(t *testing.T) {
	src := memDB(t)
	srcFSM := smallShard(t, src, testShard)
	good := snapshotBytes(t, srcFSM)
	store := newStore(t)
	persistToStore(t, srcFSM, store, 3)
	lo, _ := objectstore.ShardSpan(testShard)
	appliedSuffix := appliedKey(t, testShard)[len(lo):]
	corruptApplied := func(key, val []byte) []byte {
		if bytes.Equal(key, appliedSuffix) {
			return append(bytes.Clone(val), 0) // nine bytes: not an index
		}
		return val
	}
	if !bytes.Equal(rewriteStream(t, good, func(_, v []byte) []byte { return v }, false), good) {
		t.Fatal("rewriteStream does not reproduce an unedited stream")
	}

	for _, tc := range []struct {
		name   string
		fixCRC bool
	}{
		{"checksum catches it", false},
		{"checksum matches", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db := openDB(t, fs)
			f := smallShard(t, db, testShard)
			if err := restoreBytes(f, rewriteStream(t, good, corruptApplied, tc.fixCRC)); err == nil {
				t.Fatal("Restore of a snapshot with an undecodable applied index succeeded")
			}
			if f.Ready() || !restoreMarker(t, db, testShard) {
				t.Fatalf("after the failed restore: Ready %v, marker %v", f.Ready(), restoreMarker(t, db, testShard))
			}
			if _, err := objectstore.AppliedIndex(db, testShard); !errors.Is(err, objectstore.ErrCorrupt) {
				t.Fatalf("the failed restore left a decodable applied index (%v): this case tests nothing", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, fs)
			defer db.Close()
			g, err := fsm.Open(db, testShard, testLogger(t))
			if err != nil {
				t.Fatalf("Open of a shard whose restore was interrupted: %v", err)
			}
			if g.Ready() || !needsRestore(t, g, store) {
				t.Fatalf("reopened: Ready %v, NeedsRestore false; want not ready, needing a restore", g.Ready())
			}
			if err := restoreBytes(g, good); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if !g.Ready() || g.Applied() != 3 {
				t.Fatalf("after a good restore: Ready %v Applied %d", g.Ready(), g.Applied())
			}
			expectSameKV(t, "restored shard", shardDump(t, db, testShard), shardDump(t, src, testShard))
		})
	}

	// Outside a restore, an undecodable applied index is real corruption of a
	// live shard: Open refuses it.
	db := memDB(t)
	smallShard(t, db, testShard)
	if err := db.Set(appliedKey(t, testShard), []byte{1, 2, 3}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.Open(db, testShard, nil); !errors.Is(err, objectstore.ErrCorrupt) {
		t.Fatalf("Open over a corrupt applied index, no restore marker: err = %v, want ErrCorrupt", err)
	}
}
