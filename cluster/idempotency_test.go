package cluster

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
)

// keyedIncr is a tx that adds 1 to obj's "n", with an Idempotency-Key, as
// proposed by a node whose clock reads nowMillis.
func keyedIncr(t *testing.T, obj, key string, nowMillis int64) []byte {
	t.Helper()
	c := &fsm.Command{Type: fsm.TypeTx, Namespace: "ns", Object: obj,
		Header: fsm.Header{NowMillis: nowMillis, IdempotencyKey: key},
		Tx:     &objectstore.Tx{Ops: []objectstore.Op{{Kind: objectstore.OpIncr, Key: "n", By: "1"}}}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proposeOn proposes cmd on shard through its current leader, retrying
// while leadership moves (nothing is proposed when refused with
// ErrNotLeader), and returns the response.
func (c *testCluster) proposeOn(shard uint32, cmd []byte) *fsm.Response {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		leader := c.waitLeader(shard)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := leader.Propose(ctx, shard, cmd)
		cancel()
		if err == nil {
			return resp
		}
		if attempt > 50 {
			c.t.Fatalf("propose on shard %d: %v", shard, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantCounter checks obj's "n" on every running replica of shard.
func (c *testCluster) wantCounter(shard uint32, obj, want string) {
	c.t.Helper()
	c.ensureSameState(shard)
	for _, n := range c.running() {
		if n.Shard(shard) == nil {
			continue
		}
		if got, ok := readStale(c.t, n, shard, obj, "n"); !ok || got != want {
			c.t.Fatalf("%s: %s/n = %q (found %v), want %q", n.NodeID(), obj, got, ok, want)
		}
	}
}

// wantRecord checks, on every running replica of shard, whether obj holds an
// idempotency record for key.
func (c *testCluster) wantRecord(shard uint32, obj, key string, want bool) {
	c.t.Helper()
	for _, n := range c.running() {
		if n.Shard(shard) == nil {
			continue
		}
		_, found, err := objectstore.GetIdempotency(n.DB(), objectstore.Object{Shard: shard, Namespace: "ns", Name: obj}, key)
		if err != nil {
			c.t.Fatal(err)
		}
		if found != want {
			c.t.Fatalf("%s: record of %s/%s present: %v, want %v", n.NodeID(), obj, key, found, want)
		}
	}
}

// expiryEntries counts, on n, shard's idempotency expiry index entries
// (one per record), by running the collection on a batch it never commits.
func expiryEntries(t *testing.T, n *Node, shard uint32) int {
	t.Helper()
	b := n.DB().NewBatch()
	defer b.Close()
	count, err := objectstore.ExpireIdempotency(n.DB(), b, shard, math.MaxInt64, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return count
}

func wantFirstAnswer(t *testing.T, what string, got, first *fsm.Response) {
	t.Helper()
	if got.Err != nil || got.Tx == nil {
		t.Fatalf("%s: response %+v", what, got)
	}
	if !got.Replayed || got.Tx.Version != first.Tx.Version || got.Tx.Results[0].Number != first.Tx.Results[0].Number {
		t.Fatalf("%s: replayed %v, version %d, n = %s; want the first answer (version %d, n = %s) replayed",
			what, got.Replayed, got.Tx.Version, got.Tx.Results[0].Number, first.Tx.Version, first.Tx.Results[0].Number)
	}
}

// TestIdempotencyKeySurvivesLeaderChange acknowledges a keyed write, then
// moves the shard's leadership twice, by a transfer and by stopping the
// leader, and retries the write (with a later clock, as another node has)
// after each: the retry is answered with the first answer, and the write
// applied once on every replica.
func TestIdempotencyKeySurvivesLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	t0 := time.Now().UnixMilli()
	first := c.proposeOn(0, keyedIncr(t, "o", "retry-1", t0))
	if first.Err != nil || first.Tx == nil || first.Replayed || first.Tx.Results[0].Number != "1" {
		t.Fatalf("first write: %+v", first)
	}
	c.wantCounter(0, "o", "1")

	old := c.waitLeader(0)
	if err := old.Shard(0).Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	next := c.waitLeader(0)
	if next == old {
		t.Fatal("the leadership did not move")
	}
	wantFirstAnswer(t, "retry after a transfer", c.proposeOn(0, keyedIncr(t, "o", "retry-1", t0+2000)), first)
	c.wantCounter(0, "o", "1")

	c.stop(next.NodeID())
	if c.waitLeader(0) == next {
		t.Fatal("the stopped node still leads")
	}
	wantFirstAnswer(t, "retry after the leader stopped", c.proposeOn(0, keyedIncr(t, "o", "retry-1", t0+4000)), first)
	c.wantCounter(0, "o", "1")

	// Another key is another write.
	if r := c.proposeOn(0, keyedIncr(t, "o", "retry-2", t0+5000)); r.Replayed || r.Tx == nil || r.Tx.Results[0].Number != "2" {
		t.Fatalf("a new key: %+v", r)
	}
	c.wantCounter(0, "o", "2")
}

// TestIdempotencyRecordsExpireAndAreCollected drives time through the
// commands' clocks (the proposer fixes it in the header): a record is
// answered until its expiry and not after it, when the same key applies
// again; and the collection command deletes the expired records, and only
// those, on every replica, including one that was down when it was
// proposed.
func TestIdempotencyRecordsExpireAndAreCollected(t *testing.T) {
	const ttl = fsm.IdempotencyTTL
	c := newTestCluster(t, 3, 1)
	// Real time, so that the node's own collector (once a minute, with its
	// own clock) finds nothing expired during the test.
	t0 := time.Now().UnixMilli()

	first := c.proposeOn(0, keyedIncr(t, "a", "k1", t0))
	if first.Replayed || first.Tx.Results[0].Number != "1" {
		t.Fatalf("first write: %+v", first)
	}
	wantFirstAnswer(t, "retry just before the expiry", c.proposeOn(0, keyedIncr(t, "a", "k1", t0+ttl-1)), first)
	c.wantCounter(0, "a", "1")

	// Past its expiry, the key is new again: the write applies and records
	// a new answer, which a retry then gets.
	again := c.proposeOn(0, keyedIncr(t, "a", "k1", t0+ttl+1))
	if again.Replayed || again.Tx.Version <= first.Tx.Version || again.Tx.Results[0].Number != "2" {
		t.Fatalf("the same key past its expiry: replayed %v, version %d (first %d), n = %s; want it applied again",
			again.Replayed, again.Tx.Version, first.Tx.Version, again.Tx.Results[0].Number)
	}
	wantFirstAnswer(t, "retry of the renewed key", c.proposeOn(0, keyedIncr(t, "a", "k1", t0+ttl+2)), again)
	c.wantCounter(0, "a", "2")

	// k2 expires at t0+ttl, k3 at t0+1.5ttl, k1 (renewed) at t0+2ttl+1.
	c.proposeOn(0, keyedIncr(t, "b", "k2", t0))
	c.proposeOn(0, keyedIncr(t, "b", "k3", t0+ttl/2))
	c.ensureSameState(0)
	for _, n := range c.running() {
		// The renewed record replaced its expiry entry rather than adding one.
		if got := expiryEntries(t, n, 0); got != 3 {
			t.Fatalf("%s holds %d idempotency records, want 3", n.NodeID(), got)
		}
	}

	// A follower is down while the collection is proposed; it catches up
	// from the log when it comes back.
	leader := c.waitLeader(0)
	down := c.othersThan(leader.NodeID())[0]
	c.stop(down)
	collectAt := t0 + ttl + 10
	// The collector's pass: only the leader proposes, and only when a
	// record has expired.
	for _, n := range c.running() {
		proposed, err := n.collectExpiredIdempotency(n.Shard(0), collectAt)
		if err != nil || proposed != (n == leader) {
			t.Fatalf("%s's collection pass: proposed %v, err %v; want a proposal from the leader only", n.NodeID(), proposed, err)
		}
	}
	c.start(down, 3, nil, "", "")
	c.waitReady()
	c.ensureSameState(0)
	c.wantRecord(0, "b", "k2", false)
	c.wantRecord(0, "b", "k3", true)
	c.wantRecord(0, "a", "k1", true)
	for _, n := range c.running() {
		if got := expiryEntries(t, n, 0); got != 2 {
			t.Fatalf("%s holds %d idempotency records after the collection, want 2", n.NodeID(), got)
		}
		if has, err := objectstore.HasExpiredIdempotency(n.DB(), 0, collectAt); err != nil || has {
			t.Fatalf("%s still holds records expired at the collection's time: %v %v", n.NodeID(), has, err)
		}
	}
	// The records kept still answer; the collected key is new again.
	k3 := c.proposeOn(0, keyedIncr(t, "b", "k3", collectAt))
	if !k3.Replayed || k3.Tx.Results[0].Number != "2" {
		t.Fatalf("k3 after the collection: %+v, want its first answer (n = 2)", k3)
	}
	if r := c.proposeOn(0, keyedIncr(t, "b", "k2", collectAt)); r.Replayed || r.Tx.Results[0].Number != "3" {
		t.Fatalf("k2 after its record was collected: replayed %v, n = %s; want it applied (n = 3)", r.Replayed, r.Tx.Results[0].Number)
	}
	c.wantCounter(0, "b", "3")

	// Nothing more has expired: the pass proposes nothing.
	leader = c.waitLeader(0)
	if proposed, err := leader.collectExpiredIdempotency(leader.Shard(0), collectAt); err != nil || proposed {
		t.Fatalf("a second pass with nothing expired: proposed %v, err %v", proposed, err)
	}
	// Collecting far in the future leaves nothing, anywhere.
	if proposed, err := leader.collectExpiredIdempotency(leader.Shard(0), collectAt+3*ttl); err != nil || !proposed {
		t.Fatalf("collecting everything: proposed %v, err %v", proposed, err)
	}
	c.ensureSameState(0)
	for _, n := range c.running() {
		if got := expiryEntries(t, n, 0); got != 0 {
			t.Fatalf("%s holds %d idempotency records after collecting everything", n.NodeID(), got)
		}
	}
	c.wantRecord(0, "a", "k1", false)
	c.wantRecord(0, "b", "k2", false)
	c.wantRecord(0, "b", "k3", false)
	c.wantCounter(0, "a", "2")
	c.wantCounter(0, "b", "3")
}
