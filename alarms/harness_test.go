package alarms_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/alarms"
	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/placement"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Timings shortened for tests (the defaults are 2 s and 5 s).
const (
	testFirstBackoff  = 100 * time.Millisecond
	testNoWebhookWait = 100 * time.Millisecond
	// onTimeBound is how late a delivery may arrive after its scheduled
	// time (or after the write that set it, for a time already past).
	onTimeBound = 500 * time.Millisecond
)

// testNode is one node of an in-process cluster: the cluster node, its
// HTTP API on an httptest server, and its alarm scheduler, wired as
// cmd/node/run.go wires them.
type testNode struct {
	id   string
	dir  string
	raft string // Raft and gossip addresses of the first start, reused on restarts
	gsp  string

	node  *cluster.Node
	ts    *httptest.Server
	sched *alarms.Scheduler
	reg   *prometheus.Registry
	// dropped and delivered carry the counters of earlier incarnations
	// across restarts.
	droppedBefore, deliveredBefore float64
}

func (n *testNode) running() bool { return n.node != nil }

// testCluster is an in-process cluster on loopback.
type testCluster struct {
	t      *testing.T
	size   int
	shards int
	log    *slog.Logger
	nodes  []*testNode
	// alarmCfg is the template of every scheduler's configuration (Node,
	// Logger and Registerer are filled in per node).
	alarmCfg alarms.Config
	// raft is every node's Raft tuning: short timeouts unless changed.
	raft cluster.RaftConfig
	// wrapNode, if set, gives each scheduler its node through a wrapper.
	wrapNode func(*cluster.Node) alarms.Node
}

// newCluster starts size nodes that bootstrap together and waits until
// every node is ready.
func newCluster(t *testing.T, size, shards int, tweak ...func(*testCluster)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, size: size, shards: shards, log: testLogger(t),
		alarmCfg: alarms.Config{FirstBackoff: testFirstBackoff, NoWebhookWait: testNoWebhookWait},
		// Short, but not so short that a busy machine makes leaders change
		// all the time.
		raft: cluster.RaftConfig{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}}
	for _, f := range tweak {
		f(c)
	}
	for i := 1; i <= size; i++ {
		c.nodes = append(c.nodes, &testNode{id: fmt.Sprintf("n%d", i), dir: t.TempDir()})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	for i, n := range c.nodes {
		var join []string
		if i > 0 {
			join = []string{c.nodes[0].gsp}
		}
		c.start(n, join)
	}
	c.waitReady()
	return c
}

// start starts n on its data directory, on the Raft and gossip addresses of
// its first start (fresh ports the first time).
func (c *testCluster) start(n *testNode, join []string) {
	c.t.Helper()
	raftAddr, gossipAddr := n.raft, n.gsp
	if raftAddr == "" {
		raftAddr, gossipAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	ts := httptest.NewUnstartedServer(nil)
	reg := prometheus.NewRegistry()
	var sched atomic.Pointer[alarms.Scheduler]
	node, err := cluster.New(cluster.Config{
		NodeID:          n.id,
		DataDir:         n.dir,
		RaftAddr:        raftAddr,
		GossipAddr:      gossipAddr,
		HTTPAddr:        ts.Listener.Addr().String(),
		Join:            join,
		BootstrapExpect: c.size,
		Shards:          c.shards,
		Raft:            c.raft,
		Gossip: cluster.GossipConfig{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
			SuspicionMult: 2, GossipInterval: 20 * time.Millisecond, PushPullInterval: 300 * time.Millisecond},
		Logger:     c.log.With("node", n.id),
		Registerer: reg,
		OnAlarmChange: func(shard uint32) {
			if s := sched.Load(); s != nil {
				s.Notify(shard)
			}
		},
		OnHandoff: func(ctx context.Context, shard uint32) func() {
			if s := sched.Load(); s != nil {
				return s.Handoff(ctx, shard)
			}
			return func() {}
		},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	acfg := c.alarmCfg
	acfg.Node, acfg.Logger, acfg.Registerer = node, c.log.With("node", n.id), reg
	if c.wrapNode != nil {
		acfg.Node = c.wrapNode(node)
	}
	s, err := alarms.New(acfg)
	if err != nil {
		node.Close()
		c.t.Fatal(err)
	}
	sched.Store(s)
	s.Start()
	srv, err := api.New(api.Config{Backend: node, Logger: c.log.With("node", n.id), Registry: reg, RequestTimeout: 5 * time.Second})
	if err != nil {
		s.Close()
		node.Close()
		c.t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	n.node, n.ts, n.sched, n.reg = node, ts, s, reg
	if n.raft == "" {
		n.raft, n.gsp = node.RaftAddr(), node.GossipAddr()
	}
}

// stop stops n abruptly: no more clients, then the scheduler, then the
// node, without waiting for deliveries in flight or handing leaderships
// away (a crash as far as the others can tell).
func (c *testCluster) stop(n *testNode) { c.halt(n, false) }

// stopClean stops n as run.go does on SIGTERM: no more clients, then the
// scheduler after the deliveries in flight recorded their outcomes (at most
// 2 s), then the node, handing its leaderships to other nodes.
func (c *testCluster) stopClean(n *testNode) { c.halt(n, true) }

func (c *testCluster) halt(n *testNode, clean bool) {
	if n.node == nil {
		return
	}
	n.droppedBefore += counter(c.t, n.reg, "cairn_alarms_dropped_total")
	n.deliveredBefore += counter(c.t, n.reg, "cairn_alarms_delivered_total")
	n.ts.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if clean {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n.sched.Stop(ctx)
		} else {
			n.sched.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.t.Errorf("%s: closing the alarm scheduler took more than 10s", n.id)
		<-done
	}
	var err error
	if clean {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = n.node.Shutdown(ctx)
	} else {
		err = n.node.Close()
	}
	if err != nil {
		c.t.Errorf("close %s: %v", n.id, err)
	}
	n.node, n.ts, n.sched, n.reg = nil, nil, nil, nil
}

func (c *testCluster) running() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

func (c *testCluster) waitReady() {
	c.t.Helper()
	eventually(c.t, 20*time.Second, "every running node ready", func() bool {
		for _, n := range c.running() {
			if !n.node.Ready() {
				return false
			}
		}
		return true
	})
}

// url returns the base URL of the i-th running node (modulo their number),
// so that requests go through different nodes and get forwarded.
func (c *testCluster) url(i int) string {
	r := c.running()
	return r[i%len(r)].ts.URL
}

// leaderOf waits until exactly one running node leads shard and returns it.
func (c *testCluster) leaderOf(shard uint32) *testNode {
	c.t.Helper()
	var leader *testNode
	eventually(c.t, 20*time.Second, fmt.Sprintf("a leader of shard %d", shard), func() bool {
		leader = nil
		for _, n := range c.running() {
			if s := n.node.Shard(shard); s != nil && s.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

// currentLeader returns the running node that leads shard now, or nil. It
// does not wait, so goroutines other than the test's may call it.
func (c *testCluster) currentLeader(shard uint32) *testNode {
	for _, n := range c.running() {
		if s := n.node.Shard(shard); s != nil && s.IsLeader() {
			return n
		}
	}
	return nil
}

// sumCounter adds a counter over every node, current and past incarnations.
func (c *testCluster) sumCounter(name string) float64 {
	var sum float64
	for _, n := range c.nodes {
		switch name {
		case "cairn_alarms_dropped_total":
			sum += n.droppedBefore
		case "cairn_alarms_delivered_total":
			sum += n.deliveredBefore
		}
		if n.running() {
			sum += counter(c.t, n.reg, name)
		}
	}
	return sum
}

// counter reads a counter from a registry by gathering it.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
		return sum
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// testLogger sends errors to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelError) }

// eventually polls cond every 10 ms until it holds, or fails the test after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- HTTP as a user does it ----

var httpClient = &http.Client{Timeout: 15 * time.Second}

func do(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// must does a request that must answer 200, retrying a 503 (no leader yet)
// and a 504 (outcome unknown: every request the tests repeat this way is
// idempotent) for a while, and decodes the answer into out (if not nil).
func must(t *testing.T, method, u, body string, out any) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, b := do(t, method, u, body)
		if code == http.StatusOK {
			if out != nil {
				if err := json.Unmarshal([]byte(b), out); err != nil {
					t.Fatalf("%s %s: decode %q: %v", method, u, b, err)
				}
			}
			return
		}
		if (code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout) || time.Now().After(deadline) {
			t.Fatalf("%s %s %s: %d %s", method, u, body, code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func objURL(base, ns, obj string) string {
	return base + "/v1/ns/" + ns + "/objects/" + url.PathEscape(obj)
}

// setAlarm sets obj's alarm to at (ms) and returns when the write was
// acknowledged.
func setAlarm(t *testing.T, base, ns, obj string, at int64) time.Time {
	t.Helper()
	must(t, http.MethodPut, objURL(base, ns, obj)+"/alarm", fmt.Sprintf(`{"scheduledTime":%d}`, at), nil)
	return time.Now()
}

// getAlarm returns obj's alarm, nil for none.
func getAlarm(t *testing.T, base, ns, obj string) *int64 {
	t.Helper()
	var out struct {
		ScheduledTime *int64 `json:"scheduledTime"`
	}
	code, b := do(t, http.MethodGet, objURL(base, ns, obj)+"/alarm", "")
	if code != http.StatusOK {
		t.Fatalf("GET alarm of %s: %d %s", obj, code, b)
	}
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(b) != `{"scheduledTime":null}` && out.ScheduledTime == nil {
		t.Fatalf("GET alarm answered %s", b)
	}
	return out.ScheduledTime
}

// waitCleared waits until obj has no alarm.
func waitCleared(t *testing.T, c *testCluster, ns, obj string) {
	t.Helper()
	eventually(t, 10*time.Second, "the alarm of "+obj+" cleared", func() bool {
		return getAlarm(t, c.url(0), ns, obj) == nil
	})
}

// configure sets ns's configuration through PUT /v1/ns/{ns}.
func configure(t *testing.T, base, ns string, cfg map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cfg)
	must(t, http.MethodPut, base+"/v1/ns/"+ns, string(b), nil)
}

// objectID is the object's stable id as API.md defines it.
func objectID(ns, obj string) string {
	h := sha256.Sum256([]byte(ns + "\x00" + obj))
	return hex.EncodeToString(h[:])
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// objectsOnShards returns n object names of ns whose shards cover at least
// min(n, shards) distinct shards.
func objectsOnShards(t *testing.T, ns, prefix string, n, shards int) []string {
	t.Helper()
	seen := map[uint32]bool{}
	var out []string
	for i := 0; len(out) < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		s, err := placement.ShardFor(ns, name, shards)
		if err != nil {
			t.Fatal(err)
		}
		// Take a name on a new shard while some are uncovered, any after.
		if !seen[s] || len(seen) >= min(n, shards) || i > 1000 {
			seen[s] = true
			out = append(out, name)
		}
	}
	if len(seen) < min(n, shards) {
		t.Fatalf("objects cover %d shards", len(seen))
	}
	return out
}

// ---- the webhook ----

// hookBody is what a webhook call carries (API.md, "Alarms").
type hookBody struct {
	Namespace     string `json:"namespace"`
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	IsRetry       bool   `json:"isRetry"`
}

// hookCall is one call the webhook received.
type hookCall struct {
	at   time.Time // when it arrived, by this process's clock
	key  string    // the Idempotency-Key header
	body hookBody
	raw  []byte
}

// policy decides a call's answer; attempt is the 0-based number of the call
// for its object. It may block (ctx ends when the caller gives up or the
// test ends) and returns the status to answer.
type policy func(ctx context.Context, c hookCall, attempt int) int

func always(status int) policy {
	return func(context.Context, hookCall, int) int { return status }
}

// failFirst fails the first n attempts of every object with 500.
func failFirst(n int) policy {
	return func(_ context.Context, _ hookCall, attempt int) int {
		if attempt < n {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
}

// webhook is a local alarm webhook that records every call.
type webhook struct {
	t      *testing.T
	ts     *httptest.Server
	quit   chan struct{}
	policy policy

	mu    sync.Mutex
	calls []hookCall
	per   map[string]int
	bad   []string // calls that were not well-formed
}

func newWebhook(t *testing.T, p policy) *webhook {
	h := &webhook{t: t, quit: make(chan struct{}), policy: p, per: map[string]int{}}
	h.ts = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		close(h.quit)
		h.ts.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, b := range h.bad {
			t.Errorf("webhook: %s", b)
		}
	})
	return h
}

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	raw, err := io.ReadAll(r.Body)
	c := hookCall{at: at, key: r.Header.Get("Idempotency-Key"), raw: raw}
	var fields map[string]json.RawMessage
	var problems []string
	if err != nil {
		problems = append(problems, "reading the body: "+err.Error())
	}
	if r.Method != http.MethodPost {
		problems = append(problems, "method "+r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		problems = append(problems, "Content-Type "+ct)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.body); err != nil {
		problems = append(problems, "body: "+err.Error())
	} else if err := json.Unmarshal(raw, &fields); err != nil || len(fields) != 6 {
		problems = append(problems, "body has not exactly the six fields of API.md")
	}
	h.mu.Lock()
	if len(problems) > 0 {
		h.bad = append(h.bad, fmt.Sprintf("%s: %s", strings.Join(problems, "; "), raw))
	}
	attempt := h.per[c.body.Object]
	h.per[c.body.Object]++
	h.calls = append(h.calls, c)
	h.mu.Unlock()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-h.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	w.WriteHeader(h.policy(ctx, c, attempt))
}

func (h *webhook) url() string { return h.ts.URL + "/alarm" }

// callsFor returns the calls for obj, in the order they arrived.
func (h *webhook) callsFor(obj string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.calls {
		if c.body.Object == obj {
			out = append(out, c)
		}
	}
	return out
}

func (h *webhook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// attemptsFor returns the calls for obj without exact repeats: a call with
// the Idempotency-Key and retryCount of an earlier one is a delivery made
// again around a change of leader, which at-least-once delivery allows.
// The repeats are logged.
func (h *webhook) attemptsFor(t *testing.T, obj string) []hookCall {
	t.Helper()
	type id struct {
		key   string
		retry int
	}
	seen := map[id]bool{}
	var out []hookCall
	for _, c := range h.callsFor(obj) {
		k := id{c.key, c.body.RetryCount}
		if seen[k] {
			t.Logf("%s: delivered again (at least once): %s", obj, c.raw)
			continue
		}
		seen[k] = true
		out = append(out, c)
	}
	return out
}

// waitCalls waits until obj got at least n delivery attempts (repeats left
// out, see attemptsFor) and returns them.
func (h *webhook) waitCalls(t *testing.T, obj string, n int, timeout time.Duration) []hookCall {
	t.Helper()
	var got []hookCall
	eventually(t, timeout, fmt.Sprintf("%d webhook call(s) for %s", n, obj), func() bool {
		got = h.callsFor(obj)
		return len(got) >= n
	})
	got = h.attemptsFor(t, obj)
	for len(got) < n {
		eventually(t, timeout, fmt.Sprintf("%d distinct webhook call(s) for %s", n, obj), func() bool {
			return len(h.callsFor(obj)) > len(got)
		})
		got = h.attemptsFor(t, obj)
	}
	return got
}

// waitRawCalls waits until obj got at least n calls, repeats included.
func (h *webhook) waitRawCalls(t *testing.T, obj string, n int, timeout time.Duration) []hookCall {
	t.Helper()
	var got []hookCall
	eventually(t, timeout, fmt.Sprintf("%d webhook call(s) for %s", n, obj), func() bool {
		got = h.callsFor(obj)
		return len(got) >= n
	})
	return got
}

// checkCall checks a call's body and header against API.md.
func checkCall(t *testing.T, c hookCall, ns, obj string, scheduled int64, retry int) {
	t.Helper()
	want := hookBody{Namespace: ns, Object: obj, ObjectID: objectID(ns, obj), ScheduledTime: scheduled,
		RetryCount: retry, IsRetry: retry > 0}
	if c.body != want {
		t.Errorf("webhook body %s, want %+v", c.raw, want)
	}
	if wantKey := fmt.Sprintf("%s:%d", objectID(ns, obj), scheduled); c.key != wantKey {
		t.Errorf("Idempotency-Key %q, want %q", c.key, wantKey)
	}
}

// checkNotEarly checks that c arrived at or after the scheduled time.
func checkNotEarly(t *testing.T, c hookCall, scheduled int64) {
	t.Helper()
	if c.at.Before(time.UnixMilli(scheduled)) {
		t.Errorf("%s: delivered %v before its scheduled time", c.body.Object, time.UnixMilli(scheduled).Sub(c.at))
	}
}
