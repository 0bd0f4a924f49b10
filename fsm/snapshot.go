package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// A snapshot stream is one shard's key range:
//
//	header  "CAIRNSNP" version:u8 shard:u32be applied:u64be
//	records (uvarint keyLen, key without the shard prefix, uvarint valueLen, value)*
//	trailer 0x00 count:u64be crc32c:u32be
//
// A key is never empty, so a zero length ends the records. The CRC covers
// the header and every record.
const (
	snapshotMagic   = "CAIRNSNP"
	snapshotVersion = 1
	headerLen       = len(snapshotMagic) + 1 + 4 + 8
	// restoreBatchBytes is how much a restore writes per Pebble batch.
	restoreBatchBytes = 4 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SnapshotHeader is the start of a snapshot stream.
type SnapshotHeader struct {
	Shard uint32
	// Applied is the index of the last entry applied to the state the
	// snapshot holds. Raft labels the snapshot with its own last index,
	// which may be higher (entries that never reach the FSM, like barriers),
	// never lower.
	Applied uint64
}

func (h SnapshotHeader) append(b []byte) []byte {
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, h.Shard)
	return binary.BigEndian.AppendUint64(b, h.Applied)
}

// ReadSnapshotHeader reads the header of a snapshot stream.
func ReadSnapshotHeader(r io.Reader) (SnapshotHeader, error) {
	var b [headerLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return SnapshotHeader{}, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic || b[len(snapshotMagic)] != snapshotVersion {
		return SnapshotHeader{}, fmt.Errorf("%w: not a version %d Cairn snapshot", ErrBadSnapshot, snapshotVersion)
	}
	p := b[len(snapshotMagic)+1:]
	return SnapshotHeader{Shard: binary.BigEndian.Uint32(p), Applied: binary.BigEndian.Uint64(p[4:])}, nil
}

// Snapshot captures the shard's state as of the last applied entry. It costs
// one WAL fsync and a Pebble snapshot handle: the fsync makes every applied
// entry durable before Raft may compact its log behind the snapshot, so the
// state a restart finds is never older than the newest snapshot says.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if !f.Ready() {
		return nil, ErrRestoring
	}
	if err := f.db.LogData(nil, pebble.Sync); err != nil {
		return nil, fmt.Errorf("fsm: shard %d: sync before snapshot: %w", f.shard, err)
	}
	return &snapshot{
		snap:    f.db.NewSnapshot(),
		header:  SnapshotHeader{Shard: f.shard, Applied: f.applied.Load()},
		counter: &f.persisted,
	}, nil
}

type snapshot struct {
	snap    *pebble.Snapshot
	header  SnapshotHeader
	counter *atomic.Uint64 // bytes persisted by this shard's snapshots
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

// Persist streams the shard's key range from the Pebble snapshot into sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(countingWriter{sink, s.counter}); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: shard %d: persist snapshot: %w", s.header.Shard, err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	if _, err := bw.Write(s.header.append(nil)); err != nil {
		return err
	}
	lo, hi := objectstore.ShardSpan(s.header.Shard)
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var count uint64
	var lenBuf [binary.MaxVarintLen64]byte
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()[len(lo):]
		val, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		for _, part := range [][]byte{key, val} {
			n := binary.PutUvarint(lenBuf[:], uint64(len(part)))
			if _, err := bw.Write(lenBuf[:n]); err != nil {
				return err
			}
			if _, err := bw.Write(part); err != nil {
				return err
			}
		}
		count++
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	if err := binary.Write(bw, binary.BigEndian, count); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// The CRC is written outside the CRC'd stream.
	return binary.Write(w, binary.BigEndian, crc.Sum32())
}

// Release frees the Pebble snapshot.
func (s *snapshot) Release() { _ = s.snap.Close() }

// Restore replaces the shard's state with the snapshot in rc.
//
// A large shard cannot be replaced in one atomic batch, so a node-local
// restore marker brackets the work: it is written (synced) before the old
// state is deleted and removed (synced) only after the last record and the
// applied index are in. A node that crashes in between finds the marker at
// start-up, and NeedsRestore makes Raft restore the snapshot again before the
// shard serves anything. This closes the window where hashicorp/raft has
// already recorded an installed snapshot but the state machine does not hold
// it yet.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	h, err := f.restore(bufio.NewReaderSize(countingReader{rc, &f.restored}, 256<<10))
	if err != nil {
		// Ready is false only if the restore got as far as replacing state.
		f.log.Error("restore from snapshot failed; a shard not ready stays unreadable until a restore succeeds", "error", err, "ready", f.Ready())
		return fmt.Errorf("fsm: shard %d: restore: %w", f.shard, err)
	}
	f.applied.Store(h.Applied)
	if f.sql != nil {
		// Open databases cache pages the restore just replaced.
		f.sql.ForgetShard(f.shard)
	}
	f.ready.Store(true)
	f.notifyAlarms(true)
	f.log.Info("restored from snapshot", "applied", h.Applied)
	return nil
}

func (f *FSM) restore(r *bufio.Reader) (SnapshotHeader, error) {
	crc := crc32.New(crcTable)
	tr := io.TeeReader(r, crc)
	h, err := ReadSnapshotHeader(tr)
	if err != nil {
		return h, err
	}
	if h.Shard != f.shard {
		return h, fmt.Errorf("%w: it holds shard %d", ErrBadSnapshot, h.Shard)
	}

	// From here on the shard's state is being replaced. A stream rejected
	// before this point changed nothing, and the shard stays as ready as a
	// restart would find it (the marker says).
	f.ready.Store(false)
	lo, hi := objectstore.ShardSpan(f.shard)
	b := f.db.NewBatch()
	if err := objectstore.SetRestoreMarker(b, f.shard, true); err != nil {
		return h, err
	}
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return h, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return h, err
	}
	b.Close()

	count, err := f.loadRecords(tr, lo)
	if err != nil {
		return h, err
	}
	var wantCount uint64
	if err := binary.Read(tr, binary.BigEndian, &wantCount); err != nil {
		return h, fmt.Errorf("%w: trailer: %v", ErrBadSnapshot, err)
	}
	sum := crc.Sum32()
	var gotSum uint32
	if err := binary.Read(r, binary.BigEndian, &gotSum); err != nil {
		return h, fmt.Errorf("%w: checksum: %v", ErrBadSnapshot, err)
	}
	if wantCount != count || gotSum != sum {
		return h, fmt.Errorf("%w: %d records (trailer says %d), crc %08x (trailer says %08x)", ErrBadSnapshot, count, wantCount, sum, gotSum)
	}
	applied, err := objectstore.AppliedIndex(f.db, f.shard)
	if err != nil {
		return h, err
	}
	if applied != h.Applied {
		return h, fmt.Errorf("%w: header says applied %d, data says %d", ErrBadSnapshot, h.Applied, applied)
	}
	b = f.db.NewBatch()
	defer b.Close()
	if err := objectstore.SetRestoreMarker(b, f.shard, false); err != nil {
		return h, err
	}
	return h, b.Commit(pebble.Sync)
}

// loadRecords writes the stream's records into the shard, in batches of about
// restoreBatchBytes, and returns how many it wrote. It stops at the zero
// length that ends the records.
func (f *FSM) loadRecords(r io.Reader, prefix []byte) (uint64, error) {
	br := byteReader{r}
	b := f.db.NewBatch()
	defer func() { b.Close() }()
	var count uint64
	for {
		keyLen, err := binary.ReadUvarint(br)
		if err != nil {
			return count, fmt.Errorf("%w: record %d: %v", ErrBadSnapshot, count, err)
		}
		if keyLen == 0 {
			break
		}
		key, err := readN(r, keyLen, prefix)
		if err != nil {
			return count, fmt.Errorf("%w: record %d key: %v", ErrBadSnapshot, count, err)
		}
		valLen, err := binary.ReadUvarint(br)
		if err != nil {
			return count, fmt.Errorf("%w: record %d: %v", ErrBadSnapshot, count, err)
		}
		val, err := readN(r, valLen, nil)
		if err != nil {
			return count, fmt.Errorf("%w: record %d value: %v", ErrBadSnapshot, count, err)
		}
		if err := b.Set(key, val, nil); err != nil {
			return count, err
		}
		count++
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return count, err
			}
			b.Close()
			b = f.db.NewBatch()
		}
	}
	return count, b.Commit(pebble.NoSync)
}

// maxRecordPart bounds a key or value read from a snapshot, so a corrupt
// length cannot make a restore allocate without limit.
const maxRecordPart = 64 << 20

func readN(r io.Reader, n uint64, prefix []byte) ([]byte, error) {
	if n > maxRecordPart {
		return nil, fmt.Errorf("length %d is larger than any record", n)
	}
	buf := make([]byte, len(prefix)+int(n))
	copy(buf, prefix)
	_, err := io.ReadFull(r, buf[len(prefix):])
	return buf, err
}

type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.Reader, p[:])
	return p[0], err
}

// NeedsRestore reports whether the shard must be restored from the newest
// snapshot in snaps when Raft starts: when a restore was interrupted, or when
// the state on disk is older than that snapshot (an installed snapshot whose
// restore never ran). Otherwise the state in Pebble is already at least as new
// as the snapshot and Raft can skip restoring it (NoSnapshotRestoreOnStart),
// replaying only the log entries after it.
func (f *FSM) NeedsRestore(snaps raft.SnapshotStore) (bool, error) {
	if !f.Ready() {
		return true, nil
	}
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("fsm: shard %d: list snapshots: %w", f.shard, err)
	}
	if len(metas) == 0 {
		return false, nil
	}
	_, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return false, fmt.Errorf("fsm: shard %d: open snapshot %s: %w", f.shard, metas[0].ID, err)
	}
	defer rc.Close()
	h, err := ReadSnapshotHeader(rc)
	if err != nil {
		return false, fmt.Errorf("fsm: shard %d: snapshot %s: %w", f.shard, metas[0].ID, err)
	}
	return h.Applied > f.Applied(), nil
}
