package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// openDB opens (creating if needed) a Pebble database on fs. The caller
// closes it; see closeDB.
func openDB(t testing.TB, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: testlog.Pebble{}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

// memDB returns a Pebble database on a fresh in-memory filesystem, closed
// when the test ends.
func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db := openDB(t, vfs.NewMem())
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openFSM(t testing.TB, db *pebble.DB, shard uint32) *fsm.FSM {
	t.Helper()
	f, err := fsm.Open(db, shard, testLogger(t))
	if err != nil {
		t.Fatalf("fsm.Open(shard %d): %v", shard, err)
	}
	return f
}

func mustEncode(t testing.TB, c *fsm.Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode(%+v): %v", c, err)
	}
	return b
}

func logEntry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// apply applies data at index and returns the *fsm.Response, or nil when
// Apply returned nil (an entry it skipped).
func apply(t testing.TB, f *fsm.FSM, index uint64, data []byte) *fsm.Response {
	t.Helper()
	out := f.Apply(logEntry(index, data))
	if out == nil {
		return nil
	}
	r, ok := out.(*fsm.Response)
	if !ok {
		t.Fatalf("Apply(%d) returned %T, want *fsm.Response", index, out)
	}
	return r
}

// applyOK applies data at index and fails the test unless it succeeded.
func applyOK(t testing.TB, f *fsm.FSM, index uint64, data []byte) *fsm.Response {
	t.Helper()
	r := apply(t, f, index, data)
	if r == nil {
		t.Fatalf("Apply(%d) = nil, want a response", index)
	}
	if r.Err != nil {
		t.Fatalf("Apply(%d): business error %v", index, r.Err)
	}
	return r
}

// mustPanic runs fn and returns what it panicked with; it fails the test if
// fn returns normally.
func mustPanic(t testing.TB, what string, fn func()) (p any) {
	t.Helper()
	defer func() {
		p = recover()
		if p == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	fn()
	return nil
}

// kv is one Pebble record.
type kv struct{ key, value []byte }

func (r kv) String() string { return fmt.Sprintf("%q=%q", r.key, r.value) }

// dump returns a copy of every record in [lo, hi) (nil bounds: unbounded).
func dump(t testing.TB, r pebble.Reader, lo, hi []byte) []kv {
	t.Helper()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatalf("NewIter: %v", err)
	}
	defer it.Close()
	var out []kv
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatalf("ValueAndErr: %v", err)
		}
		out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(v)})
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iterating: %v", err)
	}
	return out
}

// shardDump returns every record of shard's span.
func shardDump(t testing.TB, r pebble.Reader, shard uint32) []kv {
	t.Helper()
	lo, hi := objectstore.ShardSpan(shard)
	return dump(t, r, lo, hi)
}

// allDump returns every record in the database.
func allDump(t testing.TB, r pebble.Reader) []kv {
	t.Helper()
	return dump(t, r, nil, nil)
}

// diffKV describes the first difference between two dumps, or "" if they are
// equal.
func diffKV(got, want []kv) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("record %d: missing %v (got %d records, want %d)", i, want[i], len(got), len(want))
		case i >= len(want):
			return fmt.Sprintf("record %d: extra %v (got %d records, want %d)", i, got[i], len(got), len(want))
		case !bytes.Equal(got[i].key, want[i].key) || !bytes.Equal(got[i].value, want[i].value):
			return fmt.Sprintf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
	return ""
}

func expectSameKV(t testing.TB, what string, got, want []kv) {
	t.Helper()
	if d := diffKV(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// withoutApplied drops the shard's applied-index record from a shard dump,
// for comparing the state two entries leave regardless of their indexes.
func withoutApplied(t testing.TB, shard uint32, recs []kv) []kv {
	t.Helper()
	key := appliedKey(t, shard)
	var out []kv
	for _, r := range recs {
		if !bytes.Equal(r.key, key) {
			out = append(out, r)
		}
	}
	return out
}

// appliedKey returns the key objectstore records shard's applied index
// under, found through the public API on a scratch database rather than by
// knowing objectstore's key layout.
func appliedKey(t testing.TB, shard uint32) []byte {
	t.Helper()
	db := memDB(t)
	b := db.NewBatch()
	defer b.Close()
	if err := objectstore.SetAppliedIndex(b, shard, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	recs := allDump(t, db)
	if len(recs) != 1 {
		t.Fatalf("SetAppliedIndex wrote %d records, want 1", len(recs))
	}
	return recs[0].key
}

func appliedIndex(t testing.TB, r pebble.Reader, shard uint32) uint64 {
	t.Helper()
	idx, err := objectstore.AppliedIndex(r, shard)
	if err != nil {
		t.Fatalf("AppliedIndex(%d): %v", shard, err)
	}
	return idx
}

func restoreMarker(t testing.TB, r pebble.Reader, shard uint32) bool {
	t.Helper()
	m, err := objectstore.RestoreMarker(r, shard)
	if err != nil {
		t.Fatalf("RestoreMarker(%d): %v", shard, err)
	}
	return m
}

// getValue reads one key of an object of shard straight from Pebble.
func getValue(t testing.TB, r pebble.Reader, shard uint32, ns, obj, key string) (objectstore.Value, bool) {
	t.Helper()
	v, found, err := objectstore.GetValue(r, objectstore.Object{Shard: shard, Namespace: ns, Name: obj}, key)
	if err != nil {
		t.Fatalf("GetValue(%s/%s/%s): %v", ns, obj, key, err)
	}
	return v, found
}

// memSink is a raft.SnapshotSink over a buffer. failAfter > 0 makes writes
// fail once that many bytes were written.
type memSink struct {
	bytes.Buffer
	failAfter int
	closed    bool
	cancelled bool
}

var errSinkFull = errors.New("test sink: full")

func (s *memSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		n := s.failAfter - s.Len()
		s.Buffer.Write(p[:n])
		return n, errSinkFull
	}
	return s.Buffer.Write(p)
}

func (s *memSink) ID() string { return "mem" }
func (s *memSink) Close() error {
	s.closed = true
	return nil
}
func (s *memSink) Cancel() error {
	s.cancelled = true
	return nil
}

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotBytes takes a snapshot of f and returns its persisted stream.
func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	return persist(t, snap)
}

func persist(t testing.TB, snap raft.FSMSnapshot) []byte {
	t.Helper()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist succeeded but closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func header(t testing.TB, stream []byte) fsm.SnapshotHeader {
	t.Helper()
	h, err := fsm.ReadSnapshotHeader(bytes.NewReader(stream))
	if err != nil {
		t.Fatalf("ReadSnapshotHeader: %v", err)
	}
	return h
}

func restoreBytes(f *fsm.FSM, stream []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(stream)))
}

// newStore returns a file snapshot store in a fresh temporary directory.
func newStore(t testing.TB) *raft.FileSnapshotStore {
	t.Helper()
	s, err := raft.NewFileSnapshotStore(t.TempDir(), 2, io.Discard)
	if err != nil {
		t.Fatalf("NewFileSnapshotStore: %v", err)
	}
	return s
}

// persistToStore takes a snapshot of f and writes it into store as Raft
// would, labelled with raftIndex (which may be above f.Applied()).
func persistToStore(t testing.TB, f *fsm.FSM, store raft.SnapshotStore, raftIndex uint64) string {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink, err := store.Create(raft.SnapshotVersionMax, raftIndex, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatalf("store.Create: %v", err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return sink.ID()
}

func needsRestore(t testing.TB, f *fsm.FSM, store raft.SnapshotStore) bool {
	t.Helper()
	need, err := f.NeedsRestore(store)
	if err != nil {
		t.Fatalf("NeedsRestore: %v", err)
	}
	return need
}
