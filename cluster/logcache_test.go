package cluster

import (
	"bytes"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store behind the cache.
type countingStore struct {
	*raft.InmemStore
	reads atomic.Int64
}

func (s *countingStore) GetLog(index uint64, log *raft.Log) error {
	s.reads.Add(1)
	return s.InmemStore.GetLog(index, log)
}

func entryOf(index uint64, size int) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(index)}, size)}
}

func (c *logCache) held() (n, sum int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, l := range c.ring {
		if l != nil {
			n++
			sum += entrySize(l)
		}
	}
	return n, sum
}

func TestLogCacheServesSmallEntriesFromMemory(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 64, 64<<10)
	var logs []*raft.Log
	for i := uint64(1); i <= 40; i++ {
		logs = append(logs, entryOf(i, 100))
	}
	if err := c.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 40; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil || l.Index != i || len(l.Data) != 100 {
			t.Fatalf("entry %d: %+v %v", i, l, err)
		}
	}
	if n := store.reads.Load(); n != 0 {
		t.Fatalf("%d reads reached the store for cached entries", n)
	}
	if err := c.StoreLogs([]*raft.Log{entryOf(41, 100)}); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(41, &l); err != nil || l.Index != 41 || store.reads.Load() != 0 {
		t.Fatalf("entry 41: %+v %v, %d store reads", l, err, store.reads.Load())
	}
	// 105 takes 41's slot (105 % 64 == 41): 41 now comes from the store.
	if err := c.StoreLogs([]*raft.Log{entryOf(105, 100)}); err != nil {
		t.Fatal(err)
	}
	if err := c.GetLog(41, &l); err != nil || l.Index != 41 || store.reads.Load() != 1 {
		t.Fatalf("entry 41 after its slot was reused: %+v %v, %d store reads", l, err, store.reads.Load())
	}
}

func TestLogCacheKeepsWithinItsBudget(t *testing.T) {
	const budget = 64 << 10
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 128, budget)
	rng := rand.New(rand.NewPCG(1, 2))
	next := uint64(1)
	for range 200 {
		var logs []*raft.Log
		for range 1 + rng.IntN(8) {
			size := rng.IntN(2 << 10)
			if rng.IntN(10) == 0 {
				size = budget/8 + rng.IntN(budget) // too large to hold
			}
			logs = append(logs, entryOf(next, size))
			next++
		}
		if err := c.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		n, sum := c.held()
		if sum > budget || sum != c.bytes {
			t.Fatalf("cache holds %d entries of %d bytes (counted %d), budget %d", n, sum, c.bytes, budget)
		}
		// Every entry reads back as stored, cached or not.
		for range 10 {
			i := 1 + rng.Uint64N(next-1)
			var got, want raft.Log
			if err := c.GetLog(i, &got); err != nil {
				t.Fatal(err)
			}
			if err := store.InmemStore.GetLog(i, &want); err != nil {
				t.Fatal(err)
			}
			if got.Index != want.Index || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("entry %d read back as %d (%d bytes), stored %d bytes", i, got.Index, len(got.Data), len(want.Data))
			}
		}
	}
	// A large entry is never held, so reading it goes to the store.
	big := entryOf(next, budget/8+1)
	if err := c.StoreLogs([]*raft.Log{big}); err != nil {
		t.Fatal(err)
	}
	before := store.reads.Load()
	var l raft.Log
	if err := c.GetLog(next, &l); err != nil || len(l.Data) != budget/8+1 || store.reads.Load() != before+1 {
		t.Fatalf("large entry: %d bytes, %v, store reads %d → %d", len(l.Data), err, before, store.reads.Load())
	}
}

func TestLogCacheForgetsOnDeleteRange(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 16, 64<<10)
	if err := c.StoreLogs([]*raft.Log{entryOf(1, 10), entryOf(2, 10), entryOf(3, 10)}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRange(2, 3); err != nil {
		t.Fatal(err)
	}
	if n, sum := c.held(); n != 0 || sum != 0 || c.bytes != 0 {
		t.Fatalf("after DeleteRange the cache holds %d entries, %d bytes", n, sum)
	}
	var l raft.Log
	if err := c.GetLog(3, &l); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry 3: %v", err)
	}
	if err := c.GetLog(1, &l); err != nil || l.Index != 1 {
		t.Fatalf("entry 1: %+v %v", l, err)
	}
	if first, _ := c.FirstIndex(); first != 1 {
		t.Fatalf("first index %d, want 1", first)
	}
	if last, _ := c.LastIndex(); last != 1 {
		t.Fatalf("last index %d, want 1", last)
	}
}

func TestLogCacheKeepsTheNewestEntries(t *testing.T) {
	const budget = 64 << 10
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 512, budget)
	// 8 KiB entries: the budget holds 8 of them, far fewer than the ring's
	// 512 slots. Each new one evicts the oldest.
	for i := uint64(1); i <= 100; i++ {
		if err := c.StoreLogs([]*raft.Log{entryOf(i, 8<<10)}); err != nil {
			t.Fatal(err)
		}
		if n, sum := c.held(); sum > budget || n != int(min(i, 8)) {
			t.Fatalf("after entry %d the cache holds %d entries, %d bytes", i, n, sum)
		}
	}
	var l raft.Log
	for i := uint64(93); i <= 100; i++ {
		if err := c.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("entry %d: %+v %v", i, l, err)
		}
	}
	if n := store.reads.Load(); n != 0 {
		t.Fatalf("the newest entries took %d store reads", n)
	}
	if err := c.GetLog(92, &l); err != nil || l.Index != 92 || store.reads.Load() != 1 {
		t.Fatalf("entry 92, evicted: %+v %v, %d store reads", l, err, store.reads.Load())
	}
}
