package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// logCache keeps a shard's most recent log entries in memory in front of its
// store, so a leader replicating fresh entries to its followers does not
// read back what it has just written.
//
// It is raft.LogCache with a budget in bytes. raft.LogCache holds a fixed
// number of entries whatever their size: with values near the 2 MiB limit,
// 512 cached entries in each of 16 shards could pin 16 GiB. Here the
// entries held never add up to more than budget bytes (the oldest make room
// for a new one), and an entry larger than an eighth of it is never held,
// so the cache stays useful for the small writes it exists for while large
// ones are read from the store.
type logCache struct {
	store  raft.LogStore
	budget int

	mu     sync.RWMutex
	ring   []*raft.Log
	bytes  int    // sum of entrySize over ring
	oldest uint64 // no entry below it is held
}

func newLogCache(store raft.LogStore, entries, budget int) *logCache {
	return &logCache{store: store, budget: budget, ring: make([]*raft.Log, entries)}
}

func entrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(index uint64, log *raft.Log) error {
	c.mu.RLock()
	cached := c.ring[index%uint64(len(c.ring))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == index {
		*log = *cached
		return nil
	}
	return c.store.GetLog(index, log)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: the entries are cached only once the
// store holds them.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := uint64(len(c.ring))
	for _, l := range logs {
		c.drop(l.Index)
		n := entrySize(l)
		if n > c.budget/8 {
			continue
		}
		// Drop the oldest entries until the new one fits; none older than
		// a ring's length can still be held.
		if l.Index > size {
			c.oldest = max(c.oldest, l.Index-size)
		}
		for c.bytes+n > c.budget && c.oldest < l.Index {
			c.drop(c.oldest)
			c.oldest++
		}
		c.ring[l.Index%size] = l
		c.bytes += n
	}
	return nil
}

// drop forgets entry index if the cache holds it, and whatever else holds
// its slot.
func (c *logCache) drop(index uint64) {
	slot := index % uint64(len(c.ring))
	if old := c.ring[slot]; old != nil {
		c.bytes -= entrySize(old)
		c.ring[slot] = nil
	}
}

// DeleteRange implements raft.LogStore. Like raft.LogCache it forgets
// everything: deletions are rare (compaction after a snapshot, a follower's
// conflicting suffix) and the cache refills from the next writes.
func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	clear(c.ring)
	c.bytes, c.oldest = 0, 0
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}

// FirstIndex implements raft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }
