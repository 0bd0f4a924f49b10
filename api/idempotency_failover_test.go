package api

import (
	"testing"
	"time"
)

// leaderOf returns the running node that leads shard, waiting for one.
func leaderOf(t *testing.T, nodes []*multiNode, shard uint32, not *multiNode) *multiNode {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range nodes {
			if m != not && m.node != nil && m.node.Route(shard).Local {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no new leader of shard %d", shard)
	return nil
}

// TestIdempotencyKeyAcrossLeaderChanges acknowledges a keyed write, then
// moves the shard's leadership twice, by a transfer and by stopping the
// leader, and after each sends the same request with the same key through
// a node other than the first one: it gets the first answer (same body,
// same version), marked as replayed, and the counter it increments was
// incremented once, on every replica.
func TestIdempotencyKeyAcrossLeaderChanges(t *testing.T) {
	nodes := startMultiCluster(t, 3, 1)
	waitAllReady(t, nodes)
	const path = "/v1/ns/idem/objects/o/tx"
	tx := `{"ops":[{"incr":{"key":"n","by":1}}]}`
	entry := nodes[0]
	resp1, body1 := do(t, "POST", entry.ts.URL+path, tx, "Idempotency-Key", "failover-1")
	if resp1.StatusCode != 200 || resp1.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s (replayed %q)", resp1.StatusCode, body1, resp1.Header.Get("Idempotent-Replayed"))
	}
	retry := func(via *multiNode, what string) {
		t.Helper()
		resp, body := do(t, "POST", via.ts.URL+path, tx, "Idempotency-Key", "failover-1")
		if resp.StatusCode != 200 || body != body1 || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry via %s %s: %d %s (replayed %q), want the first answer %s",
				via.id, what, resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"), body1)
		}
	}
	wantCounter := func(what string) {
		t.Helper()
		for _, m := range nodes {
			if m.node == nil {
				continue
			}
			resp, n := do(t, "GET", m.ts.URL+"/v1/ns/idem/objects/o/kv/n", "")
			if resp.StatusCode != 200 || n != "1" {
				t.Fatalf("%s: counter via %s = %d %q, want 1", what, m.id, resp.StatusCode, n)
			}
		}
	}

	// A planned move: the leader hands the shard to another node.
	old := leaderOf(t, nodes, 0, nil)
	if err := old.node.Shard(0).Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	moved := leaderOf(t, nodes, 0, old)
	for _, m := range nodes {
		if m != entry {
			retry(m, "after the transfer from "+old.id+" to "+moved.id)
		}
	}
	wantCounter("after the transfer")

	// A crash: the new leader stops; the request, sent through a survivor
	// other than the first entry node if there is one, waits for the next.
	moved.stop()
	via := entry
	for _, m := range nodes {
		if m != entry && m.node != nil {
			via = m
		}
	}
	retry(via, "after "+moved.id+" stopped")
	leaderOf(t, nodes, 0, moved)
	for _, m := range nodes {
		if m.node != nil {
			retry(m, "after "+moved.id+" stopped")
		}
	}
	wantCounter("after the leader stopped")
}
