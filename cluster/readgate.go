package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// readGate makes reads on a shard's leader linearizable without a log entry
// per read. Two things make a local read safe:
//
//  1. once per term, a barrier: it commits an entry of the new term and
//     waits until the state machine applied everything before it, so the
//     leader's state holds every write any earlier leader acknowledged;
//  2. for each read, a leadership check (VerifyLeader: a round of heartbeats
//     answered by a quorum) that began after the read arrived, so no newer
//     leader can have acknowledged a write this node has not applied.
//
// Reads that arrive while a check is running wait for the next one, and one
// check then serves all of them: under load the cost is one heartbeat round
// per batch of reads, and no fsync at all.
type readGate struct {
	raft *raft.Raft

	barrierTerm atomic.Uint64 // the term whose barrier has completed
	barrierMu   sync.Mutex    // one barrier at a time

	mu      sync.Mutex
	waiting []chan error
	running bool
}

// wait returns once a read started now may be served from local state, or
// with ErrNotLeader if this node cannot serve it.
func (g *readGate) wait(ctx context.Context) error {
	if g.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := g.barrier(ctx); err != nil {
		return err
	}
	ch := make(chan error, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, ch)
	if !g.running {
		g.running = true
		go g.verifyLoop()
	}
	g.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// barrier runs the once-per-term barrier if this term has not had one.
func (g *readGate) barrier(ctx context.Context) error {
	term := g.raft.CurrentTerm()
	if g.barrierTerm.Load() == term {
		return nil
	}
	g.barrierMu.Lock()
	defer g.barrierMu.Unlock()
	if g.barrierTerm.Load() == term {
		return nil
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := g.raft.Barrier(timeout).Error(); err != nil {
		return leadershipError(err)
	}
	g.barrierTerm.Store(term)
	return nil
}

// verifyLoop runs leadership checks while reads are waiting for one.
func (g *readGate) verifyLoop() {
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := leadershipError(g.raft.VerifyLeader().Error())
		for _, ch := range batch {
			ch <- err
		}
	}
}

// leadershipError maps a failed barrier or leadership check to this
// package's errors.
func leadershipError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return ErrNotLeader
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return ErrOverloaded
	}
	return err
}
