package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Every shard's Raft log and stable store live in the node's one Pebble
// database, in node-local keys outside any shard's replicated span:
//
//	'l' 'r' shard:u32be 'l' index:u64be   → log entry
//	'l' 'r' shard:u32be 's' key           → stable store value
//
// One database means one write-ahead log: the synced writes of every
// group's leader loop that arrive together are committed together, with one
// fsync (Pebble's commit pipeline groups them). With a log file per group,
// as raft-boltdb gives, each group pays its own fsyncs for its own small
// batches, and a node with many groups is bound by the disk's fsync rate
// divided among them (measured in cluster/DESIGN.md). The entries of a
// group are still written in order by its leader loop, and a write is
// acknowledged by StoreLogs only once synced.
const (
	logSpace    = 'l'
	logSubspace = 'r'
	logTagEntry = 'l'
	logTagStore = 's'
)

// ErrKeyNotFound is what the stable store answers for a key it does not
// hold. hashicorp/raft recognises it by its text, as raft-boltdb's.
var ErrKeyNotFound = errors.New("not found")

// logStore is one shard's raft.LogStore and raft.StableStore.
type logStore struct {
	db     *pebble.DB
	prefix []byte // 'l' 'r' shard

	mu          sync.Mutex // orders index caching with writes
	first, last uint64     // cached; 0 when empty
	loaded      bool
	// bytes estimates the size of the entries held: Pebble's estimate of
	// their disk usage when the store is first used, then the encoded
	// sizes stored, less a proportional share for each range deleted.
	bytes      int64
	bytesKnown bool

	// appended counts the bytes of the entries stored; nil: not counted.
	appended *atomic.Uint64
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)
)

func newLogStore(db *pebble.DB, shard uint32) *logStore {
	p := []byte{logSpace, logSubspace}
	return &logStore{db: db, prefix: binary.BigEndian.AppendUint32(p, shard)}
}

// span returns the key range of everything the store holds.
func (s *logStore) span() (lo, hi []byte) {
	lo = append([]byte(nil), s.prefix...)
	hi = binary.BigEndian.AppendUint32([]byte{logSpace, logSubspace}, binary.BigEndian.Uint32(s.prefix[2:])+1)
	return lo, hi
}

func (s *logStore) entryKey(index uint64) []byte {
	k := make([]byte, 0, len(s.prefix)+9)
	k = append(k, s.prefix...)
	k = append(k, logTagEntry)
	return binary.BigEndian.AppendUint64(k, index)
}

func (s *logStore) stableKey(key []byte) []byte {
	k := make([]byte, 0, len(s.prefix)+1+len(key))
	k = append(k, s.prefix...)
	k = append(k, logTagStore)
	return append(k, key...)
}

// loadIndexesLocked reads the first and last index from Pebble once.
func (s *logStore) loadIndexesLocked() error {
	if s.loaded {
		return nil
	}
	lo := s.entryKey(0)
	hi := append(append([]byte(nil), s.prefix...), logTagEntry+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	s.first, s.last = 0, 0
	if it.First() {
		s.first = binary.BigEndian.Uint64(it.Key()[len(lo)-8:])
		if it.Last() {
			s.last = binary.BigEndian.Uint64(it.Key()[len(lo)-8:])
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if !s.bytesKnown {
		est, err := s.db.EstimateDiskUsage(lo, hi)
		if err != nil {
			return err
		}
		s.bytes, s.bytesKnown = int64(est), true
	}
	s.loaded = true
	return nil
}

// size returns the estimated bytes and the number of the entries held.
func (s *logStore) size() (bytes int64, entries uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadIndexesLocked(); err != nil {
		return 0, 0, err
	}
	if s.first == 0 {
		return s.bytes, 0, nil
	}
	return s.bytes, s.last - s.first + 1, nil
}

// FirstIndex implements raft.LogStore.
func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.loadIndexesLocked()
	return s.first, err
}

// LastIndex implements raft.LogStore.
func (s *logStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.loadIndexesLocked()
	return s.last, err
}

// GetLog implements raft.LogStore.
func (s *logStore) GetLog(index uint64, log *raft.Log) error {
	val, closer, err := s.db.Get(s.entryKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return decodeLog(val, log)
}

// StoreLog implements raft.LogStore.
func (s *logStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: one synced batch.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	var size uint64
	for _, l := range logs {
		buf = encodeLog(buf[:0], l)
		if err := b.Set(s.entryKey(l.Index), buf, nil); err != nil {
			return err
		}
		size += uint64(len(buf))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadIndexesLocked(); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cluster: store raft logs: %w", err)
	}
	s.bytes += int64(size)
	if s.appended != nil {
		s.appended.Add(size)
	}
	if s.first == 0 || logs[0].Index < s.first {
		s.first = logs[0].Index
	}
	if last := logs[len(logs)-1].Index; last > s.last {
		s.last = last
	}
	return nil
}

// DeleteRange implements raft.LogStore: entries from through to, inclusive.
func (s *logStore) DeleteRange(from, to uint64) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(s.entryKey(from), s.entryKey(to+1), nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadIndexesLocked(); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cluster: delete raft logs: %w", err)
	}
	if s.first != 0 {
		held := s.last - s.first + 1
		gone := uint64(0)
		if lo, hi := max(from, s.first), min(to, s.last); lo <= hi {
			gone = hi - lo + 1
		}
		if gone >= held {
			s.bytes = 0
		} else {
			s.bytes -= int64(float64(s.bytes) * float64(gone) / float64(held))
		}
	}
	s.loaded = false // recomputed from Pebble on the next use
	return nil
}

// Set implements raft.StableStore.
func (s *logStore) Set(key, val []byte) error {
	return s.db.Set(s.stableKey(key), val, pebble.Sync)
}

// Get implements raft.StableStore.
func (s *logStore) Get(key []byte) ([]byte, error) {
	val, closer, err := s.db.Get(s.stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), val...), nil
}

// SetUint64 implements raft.StableStore.
func (s *logStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *logStore) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("cluster: stable store value of %q is %d bytes, not 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

// drop deletes everything the store holds, synced.
func (s *logStore) drop() error {
	lo, hi := s.span()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = false
	return s.db.DeleteRange(lo, hi, pebble.Sync)
}

// hasLogState reports whether shard has any Raft state in db.
func hasLogState(db *pebble.DB, shard uint32) (bool, error) {
	lo, hi := newLogStore(db, shard).span()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

const logEncodingVersion = 1

func encodeLog(b []byte, l *raft.Log) []byte {
	b = append(b, logEncodingVersion, byte(l.Type))
	b = wire.AppendUvarint(b, l.Index)
	b = wire.AppendUvarint(b, l.Term)
	var appended int64
	if !l.AppendedAt.IsZero() {
		appended = l.AppendedAt.UnixNano()
	}
	b = wire.AppendVarint(b, appended)
	b = wire.AppendBytes(b, l.Extensions)
	return append(b, l.Data...)
}

func decodeLog(b []byte, l *raft.Log) error {
	d := wire.NewDecoder(b)
	if d.Byte() != logEncodingVersion {
		return fmt.Errorf("cluster: raft log entry of unknown encoding")
	}
	l.Type = raft.LogType(d.Byte())
	l.Index = d.Uvarint()
	l.Term = d.Uvarint()
	l.AppendedAt = timeFromUnixNano(d.Varint())
	l.Extensions = append([]byte(nil), d.Bytes()...)
	l.Data = append([]byte(nil), d.Rest()...)
	if err := d.Err(); err != nil {
		return fmt.Errorf("cluster: raft log entry: %w", err)
	}
	return nil
}

func timeFromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
