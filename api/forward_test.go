package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// multiNode is a node of an in-process cluster with its HTTP API.
type multiNode struct {
	id   string
	node *cluster.Node
	ts   *httptest.Server
}

// startMultiCluster starts size nodes that bootstrap together, each serving
// the API on its own loopback port.
func startMultiCluster(t *testing.T, size, shards int) []*multiNode {
	t.Helper()
	var nodes []*multiNode
	var seed string
	for i := 1; i <= size; i++ {
		ts := httptest.NewUnstartedServer(nil)
		var join []string
		if seed != "" {
			join = []string{seed}
		}
		n, err := cluster.New(cluster.Config{
			NodeID:          fmt.Sprintf("n%d", i),
			DataDir:         t.TempDir(),
			RaftAddr:        "127.0.0.1:0",
			GossipAddr:      "127.0.0.1:0",
			HTTPAddr:        ts.Listener.Addr().String(),
			Join:            join,
			BootstrapExpect: size,
			Shards:          shards,
			// 300 ms, not less: on a loaded 2-core machine shorter
			// timeouts make leaders change mid-test.
			Raft: cluster.RaftConfig{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
				LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond},
			Gossip: cluster.GossipConfig{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
				SuspicionMult: 2, GossipInterval: 20 * time.Millisecond, PushPullInterval: 300 * time.Millisecond},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Backend: n, RequestTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ts.Config.Handler = srv.Handler()
		ts.Start()
		m := &multiNode{id: n.NodeID(), node: n, ts: ts}
		t.Cleanup(func() { m.stop() })
		nodes = append(nodes, m)
		if seed == "" {
			seed = n.GossipAddr()
		}
	}
	return nodes
}

func (m *multiNode) stop() {
	if m.node != nil {
		m.ts.Close()
		m.node.Close()
		m.node = nil
	}
}

func waitAllReady(t *testing.T, nodes []*multiNode) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range nodes {
		for m.node != nil && !m.node.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", m.id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func do(t *testing.T, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestAnyNodeServesAnyObject writes through one node and reads through every
// other, for objects spread over every shard: requests for shards a node
// does not lead are forwarded to the leader.
func TestAnyNodeServesAnyObject(t *testing.T) {
	nodes := startMultiCluster(t, 3, 4)
	waitAllReady(t, nodes)
	for i := 0; i < 24; i++ {
		obj := fmt.Sprintf("obj-%d", i)
		w := nodes[i%3]
		resp, body := do(t, "PUT", w.ts.URL+"/v1/ns/fw/objects/"+obj+"/kv/k", "v"+obj)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT via %s: %d %s", w.id, resp.StatusCode, body)
		}
		for _, r := range nodes {
			resp, body := do(t, "GET", r.ts.URL+"/v1/ns/fw/objects/"+obj+"/kv/k", "")
			if resp.StatusCode != 200 || body != "v"+obj {
				t.Fatalf("GET via %s: %d %q", r.id, resp.StatusCode, body)
			}
		}
	}
	// A listing that spans every shard works from any node.
	for _, r := range nodes {
		resp, body := do(t, "GET", r.ts.URL+"/v1/ns/fw/objects?limit=100", "")
		var out struct {
			Objects []objectJSON `json:"objects"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Objects) != 24 {
			t.Fatalf("list objects via %s: %d %s", r.id, resp.StatusCode, body)
		}
	}
	// Stale reads are served by any replica.
	for _, r := range nodes {
		resp, body := do(t, "GET", r.ts.URL+"/v1/ns/fw/objects/obj-0/kv/k?consistency=stale", "")
		if resp.StatusCode != 200 || body != "vobj-0" {
			t.Fatalf("stale GET via %s: %d %q", r.id, resp.StatusCode, body)
		}
	}
}

// TestIdempotencyKeyAcrossNodes retries a keyed write through another node
// and gets the first answer back, applied once.
func TestIdempotencyKeyAcrossNodes(t *testing.T) {
	nodes := startMultiCluster(t, 3, 2)
	waitAllReady(t, nodes)
	tx := `{"ops":[{"incr":{"key":"n","by":1}}]}`
	resp1, body1 := do(t, "POST", nodes[0].ts.URL+"/v1/ns/idem/objects/o/tx", tx, "Idempotency-Key", "retry-1")
	if resp1.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp1.StatusCode, body1)
	}
	resp2, body2 := do(t, "POST", nodes[1].ts.URL+"/v1/ns/idem/objects/o/tx", tx, "Idempotency-Key", "retry-1")
	if resp2.StatusCode != 200 || body2 != body1 || resp2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s (replayed %q), want the first answer %s", resp2.StatusCode, body2, resp2.Header.Get("Idempotent-Replayed"), body1)
	}
	_, n := do(t, "GET", nodes[2].ts.URL+"/v1/ns/idem/objects/o/kv/n", "")
	if n != "1" {
		t.Fatalf("counter = %q after a retried incr, want 1", n)
	}
	resp3, body3 := do(t, "POST", nodes[2].ts.URL+"/v1/ns/idem/objects/o/tx", `{"ops":[{"incr":{"key":"n","by":5}}]}`, "Idempotency-Key", "retry-1")
	if resp3.StatusCode != 409 || !strings.Contains(body3, "idempotency_key_reused") {
		t.Fatalf("reused key for another request: %d %s", resp3.StatusCode, body3)
	}
	resp4, body4 := do(t, "PUT", nodes[0].ts.URL+"/v1/ns/idem/objects/o/kv/x", "1", "Idempotency-Key", strings.Repeat("k", 129))
	if resp4.StatusCode != 400 || !strings.Contains(body4, "invalid_header") {
		t.Fatalf("129-byte key: %d %s", resp4.StatusCode, body4)
	}
}

// TestRequestsFollowFailover stops the node that leads an object's shard and
// checks that the others go on serving it.
func TestRequestsFollowFailover(t *testing.T) {
	nodes := startMultiCluster(t, 3, 1)
	waitAllReady(t, nodes)
	resp, body := do(t, "PUT", nodes[0].ts.URL+"/v1/ns/fo/objects/o/kv/k", "before")
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	var leader *multiNode
	for _, m := range nodes {
		if m.node.Route(0).Local {
			leader = m
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	leader.stop()
	for _, m := range nodes {
		if m == leader {
			continue
		}
		// The request waits for the new leader within its deadline.
		resp, body := do(t, "PUT", m.ts.URL+"/v1/ns/fo/objects/o/kv/k", "after-"+m.id)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT via %s after the leader stopped: %d %s", m.id, resp.StatusCode, body)
		}
		resp, body = do(t, "GET", m.ts.URL+"/v1/ns/fo/objects/o/kv/k", "")
		if resp.StatusCode != 200 || body != "after-"+m.id {
			t.Fatalf("GET via %s: %d %q", m.id, resp.StatusCode, body)
		}
	}
}
