package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/cluster"
)

// multiNode is a node of an in-process cluster with its HTTP API, behind
// failpoints (the approach of api/forward_test.go).
type multiNode struct {
	id     string
	node   *cluster.Node
	ts     *httptest.Server
	faults *faults
}

func (m *multiNode) stop() {
	if m.node != nil {
		m.ts.Close()
		m.node.Close()
		m.node = nil
	}
}

// startMultiCluster starts size nodes that bootstrap together, each
// serving the API on its own loopback port, and waits until all are ready.
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
			// Short, but not so short that a busy machine (-race) makes
			// leaders change all the time (as alarms/harness_test.go).
			Raft: cluster.RaftConfig{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
				LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond},
			Gossip: cluster.GossipConfig{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
				SuspicionMult: 2, GossipInterval: 20 * time.Millisecond, PushPullInterval: 300 * time.Millisecond},
			Logger: testLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		srv, err := api.New(api.Config{Backend: n, RequestTimeout: 2 * time.Second, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		m := &multiNode{id: n.NodeID(), node: n, ts: ts, faults: &faults{}}
		ts.Config.Handler = m.faults.wrap(srv.Handler())
		ts.Start()
		t.Cleanup(m.stop)
		nodes = append(nodes, m)
		if seed == "" {
			seed = n.GossipAddr()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, m := range nodes {
		for !m.node.Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", m.id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}

// TestMultiNode runs against a real three-node cluster: a 504 made by a
// node whose forwarded write lost its answer, failover from a stopped
// node, and a 503 once a quorum is lost.
func TestMultiNode(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	nodes := startMultiCluster(t, 3, 1)
	urls := func(ms ...*multiNode) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ts.URL)
		}
		return out
	}
	// Writes of this client are keyed, so that a leader change right
	// after the bootstrap (a real 504) is retried rather than failing.
	c := newClientAt(t, urls(nodes...), client.WithIdempotency())
	o := c.Namespace("multi").Object("o")
	if _, err := o.Put(ctx, "k", "v0"); err != nil {
		t.Fatal(err)
	}

	// leader waits until the cluster, as the client sees it, has all of
	// live's nodes as voters and a leader among them, and returns it.
	leader := func(live []*multiNode) *multiNode {
		t.Helper()
		var l *multiNode
		waitFor(t, "a leader", 10*time.Second, func() bool {
			st, err := c.ClusterStatus(ctx)
			if err != nil || len(st.Shards) != 1 || len(st.Shards[0].Voters) < len(live) {
				return false
			}
			for _, m := range live {
				if m.id == st.Shards[0].Leader {
					l = m
					return true
				}
			}
			return false
		})
		return l
	}
	without := func(ms []*multiNode, x *multiNode) []*multiNode {
		var out []*multiNode
		for _, m := range ms {
			if m != x {
				out = append(out, m)
			}
		}
		return out
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil || len(st.Nodes) != 3 {
		t.Fatalf("ClusterStatus = %+v, %v", st, err)
	}
	for _, n := range st.Nodes {
		if n.State != client.NodeAlive || n.HTTPAddr == "" || n.RaftAddr == "" || n.GossipAddr == "" {
			t.Fatalf("node %+v", n)
		}
	}

	t.Run("504 commit_unknown from the entry node", func(t *testing.T) {
		// The leader applies a forwarded write, then its answer is lost:
		// the entry node cannot know the outcome and says so. If the
		// leadership moves before the write gets there, try again.
		forwarded := func(r *http.Request) bool { return r.Header.Get("X-Cairn-Hops") != "" && forObject(o)(r) }
		for try := 0; ; try++ {
			l := leader(nodes)
			f := l.faults.add(&fault{match: forwarded, times: 1, drop: true})
			entry := newClientAt(t, urls(without(nodes, l)[0])).Namespace("multi").Object("o")
			want := fmt.Sprintf("v1-%d", try)
			_, err := entry.Put(ctx, "k", want)
			l.faults.remove(f)
			if f.hits.Load() == 0 && try < 5 {
				continue
			}
			checkCode(t, "forwarded write lost", err, 504, "commit_unknown")
			var s string
			if err := o.Get(ctx, "k", &s); err != nil || s != want {
				t.Fatalf("after the 504: %q, %v; want %q (it was applied)", s, err, want)
			}
			break
		}
		// With a key the client retries a 504 and gets the first answer.
		l := leader(nodes)
		f := l.faults.add(&fault{match: forwarded, times: 1, drop: true})
		defer l.faults.remove(f)
		entry := newClientAt(t, urls(without(nodes, l)[0])).Namespace("multi").Object("o")
		v, err := entry.Put(ctx, "k", "v2", client.IdempotencyKey("multi-504"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.GetBytes(ctx, "k")
		if err != nil || got.Version != v || string(got.Data) != `"v2"` {
			t.Fatalf("after a keyed retry: %+v, %v; answer version %s", got, err, v)
		}
	})

	// The leader goes first in the list, and goes away.
	stopped := leader(nodes)
	live := without(nodes, stopped)
	t.Run("failover from a stopped node", func(t *testing.T) {
		fc := newClientAt(t, urls(append([]*multiNode{stopped}, live...)...))
		stopped.stop()
		if _, err := fc.Namespace("multi").Object("o").Put(ctx, "k", "after", client.IdempotencyKey("after-failover")); err != nil {
			t.Fatalf("Put with the first endpoint stopped: %v", err)
		}
		var s string
		if err := fc.Namespace("multi").Object("o").Get(ctx, "k", &s); err != nil || s != "after" {
			t.Fatalf("Get = %q, %v", s, err)
		}
		if err := fc.Readyz(ctx); err != nil {
			t.Fatalf("Readyz = %v", err)
		}
	})

	t.Run("503 unavailable without a quorum", func(t *testing.T) {
		live[0].stop()
		last := live[1]
		lc := newClientAt(t, urls(last), client.WithMaxAttempts(1))
		waitFor(t, "the last node to lose its leader", 10*time.Second, func() bool {
			return errors.Is(lc.Readyz(ctx), client.ErrUnavailable)
		})
		err := lc.Readyz(ctx)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 503 || ce.RetryAfter != time.Second {
			t.Fatalf("Readyz = %+v", err)
		}
		_, err = lc.Namespace("multi").Object("o").Put(ctx, "k", "lost")
		checkCode(t, "write without a quorum", err, 503, "unavailable")
		if !errors.As(err, &ce) || ce.RetryAfter != time.Second {
			t.Fatalf("no Retry-After: %+v", ce)
		}
		// A stale read is still served from the replica (maybe behind).
		var s string
		if err := lc.Namespace("multi").Object("o").Get(ctx, "k", &s, client.Stale()); err != nil || s == "" {
			t.Fatalf("stale Get = %q, %v", s, err)
		}
		if err := lc.Healthz(ctx); err != nil {
			t.Fatalf("Healthz = %v", err)
		}
	})
}
