package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/fsm"
	"github.com/cockroachdb/pebble/v2"
)

// The errors of the node under the API, and what a client sees of them. A
// faultyBackend is a real node whose one chosen call fails; everything else
// passes through, so a request gets as far as it would for real before the
// failure, and a read through the node itself shows what was written.

// faultyBackend is a real node with one call made to fail.
type faultyBackend struct {
	*cluster.Node
	// call is the call that fails: "propose", "read", "readLive" or
	// "status"; "" for none.
	call string
	// fail returns the failed call's error.
	fail func(ctx context.Context) error
	// route, if not nil, replaces the node's routing.
	route func(shard uint32) cluster.Route
	// ready, if not nil, replaces the node's readiness.
	ready func() bool
}

var _ api.Backend = (*faultyBackend)(nil)

func (b *faultyBackend) Propose(ctx context.Context, shard uint32, cmd []byte) (*fsm.Response, error) {
	if b.call == "propose" {
		return nil, b.fail(ctx)
	}
	return b.Node.Propose(ctx, shard, cmd)
}

func (b *faultyBackend) Read(ctx context.Context, shard uint32, stale bool, fn func(pebble.Reader) error) error {
	if b.call == "read" {
		return b.fail(ctx)
	}
	return b.Node.Read(ctx, shard, stale, fn)
}

func (b *faultyBackend) ReadLive(ctx context.Context, shard uint32, stale bool, fn func(pebble.Reader) error) error {
	if b.call == "readLive" {
		return b.fail(ctx)
	}
	return b.Node.ReadLive(ctx, shard, stale, fn)
}

func (b *faultyBackend) Status(ctx context.Context) (cluster.Status, error) {
	if b.call == "status" {
		return cluster.Status{}, b.fail(ctx)
	}
	return b.Node.Status(ctx)
}

func (b *faultyBackend) Route(shard uint32) cluster.Route {
	if b.route != nil {
		return b.route(shard)
	}
	return b.Node.Route(shard)
}

func (b *faultyBackend) Ready() bool {
	if b.ready != nil {
		return b.ready()
	}
	return b.Node.Ready()
}

// faultyTimeout is the request timeout of a faulty front end: short, since
// the answers to a missing leader and to a deadline come only once it has
// passed.
const faultyTimeout = 150 * time.Millisecond

// serveFaulty serves the API for b, with a short request timeout, and
// returns an env for it (its node is the real one).
func serveFaulty(t *testing.T, b *faultyBackend) *env {
	t.Helper()
	srv, err := api.New(api.Config{Backend: b, RequestTimeout: faultyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := hs.Client()
	c.Timeout = time.Minute
	return &env{t: t, node: b.Node, url: hs.URL, c: c}
}

// fault is an error of the node and the answer it must turn into.
type fault struct {
	name string
	// err is returned at once; nil means the call blocks until the
	// request's context ends and returns its error (a deadline).
	err        error
	status     int
	code       string
	retryAfter bool   // Retry-After: 1
	detail     string // a phrase the detail must contain
	// safe: nothing was proposed and another node may serve the request,
	// which writeProblem marks with X-Cairn-Retry: safe.
	safe bool
}

func (f fault) fail(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	return ctx.Err()
}

// faults are every error of package cluster, a deadline and an unknown
// error, each wrapped as the cluster wraps them, so that only errors.Is
// finds them.
var faults = []fault{
	// Both a commit whose outcome is unknown and the deadline that made it
	// so: the outcome wins, a deadline would promise nothing was written.
	{name: "commit unknown", err: fmt.Errorf("%w: %w", cluster.ErrCommitUnknown, context.DeadlineExceeded),
		status: http.StatusGatewayTimeout, code: "commit_unknown", detail: "outcome is unknown"},
	{name: "overloaded", err: fmt.Errorf("shard 1: %w", cluster.ErrOverloaded),
		status: http.StatusTooManyRequests, code: "overloaded", retryAfter: true, detail: "retry"},
	{name: "not leader", err: fmt.Errorf("shard 1: %w", cluster.ErrNotLeader),
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry", safe: true},
	{name: "no leader", err: fmt.Errorf("shard 1: %w", cluster.ErrNoLeader),
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry", safe: true},
	{name: "shard not ready", err: fmt.Errorf("shard 1: %w", cluster.ErrShardNotReady),
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry", safe: true},
	{name: "unknown shard", err: fmt.Errorf("shard 1: %w", cluster.ErrUnknownShard),
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry", safe: true},
	{name: "closed", err: fmt.Errorf("shard 1: %w", cluster.ErrClosed),
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry"},
	{name: "deadline",
		status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "deadline"},
	{name: "unknown error", err: errors.New("pebble: disk on fire"),
		status: http.StatusInternalServerError, code: "internal", detail: "internal error"},
}

// wantFault fails the test unless r is f's answer.
func wantFault(t *testing.T, r *resp, f fault) {
	t.Helper()
	p := r.wantProblem(t, f.status, f.code)
	if !strings.Contains(p.Detail, f.detail) {
		t.Errorf("detail %q, want it to say %q", p.Detail, f.detail)
	}
	if f.err != nil && strings.Contains(p.Detail, "disk on fire") {
		t.Errorf("detail %q shows the internal error", p.Detail)
	}
	wantHeader(t, r, "Retry-After", "1", f.retryAfter)
}

// wantHeader checks that r has header name with value want if present is
// set, and no such header otherwise.
func wantHeader(t *testing.T, r *resp, name, want string, present bool) {
	t.Helper()
	got := r.header.Get(name)
	switch {
	case present && got != want:
		t.Errorf("%s %q, want %q", name, got, want)
	case !present && got != "":
		t.Errorf("%s %q, want none", name, got)
	}
}

// TestBackendErrorsOnEachEndpoint makes the node fail each request of a
// representative set in each way it can, and checks the answer and, through
// the node as is, that nothing was written.
func TestBackendErrorsOnEachEndpoint(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, cfgNS = "errmap", "errmapcfg"

	// versions are the versions of the keys the setup wrote, by object;
	// written before the subtests start, only read by them.
	versions := map[string]string{}
	putKey := func(obj string) func(e *env) {
		return func(e *env) { versions[obj] = e.put(ns, obj, "k", []byte("old"), "text/plain") }
	}
	keyIsOld := func(obj string) func(e *env) {
		return func(e *env) {
			e.wantValue(ns, obj, "k", "old", versions[obj])
			e.wantKeys(ns, obj, "k")
		}
	}
	makeTable := func(obj string) func(e *env) {
		return func(e *env) {
			e.sqlOK(ns, obj, batch(q("CREATE TABLE t(x INTEGER)"), q("INSERT INTO t VALUES (1)")))
		}
	}
	tableIsOld := func(obj string) func(e *env) {
		return func(e *env) { wantRows(e.t, "table t", e.query(ns, obj, "SELECT x FROM t ORDER BY x"), `[[1]]`) }
	}
	endpoints := []struct {
		name   string
		call   string // the node's call the request makes, which fails
		method string
		path   string
		body   string
		setup  func(e *env) // the state before, through the node as is
		check  func(e *env) // that the state is still that
	}{
		{name: "PUT kv", call: "propose", method: "PUT", path: kvPath(ns, "kv-put", "k"), body: `"new"`,
			setup: putKey("kv-put"), check: keyIsOld("kv-put")},
		{name: "GET kv", call: "read", method: "GET", path: kvPath(ns, "kv-get", "k") + "?consistency=linearizable",
			setup: putKey("kv-get"), check: keyIsOld("kv-get")},
		{name: "tx write", call: "propose", method: "POST", path: objPath(ns, "tx-write", "/tx"),
			body:  `{"if":[{"key":"k","exists":true}],"ops":[{"put":{"k":"new","k2":1}},{"get":["k"]}]}`,
			setup: putKey("tx-write"), check: keyIsOld("tx-write")},
		{name: "tx read", call: "read", method: "POST", path: objPath(ns, "tx-read", "/tx"),
			body:  `{"ops":[{"get":["k"]},{"list":{"prefix":""}}]}`,
			setup: putKey("tx-read"), check: keyIsOld("tx-read")},
		// The node runs the statement as a read first (that passes), finds
		// that it writes and proposes it (that fails).
		{name: "sql write", call: "propose", method: "POST", path: objPath(ns, "sql-write", "/sql"),
			body:  `{"sql":"INSERT INTO t VALUES (2)"}`,
			setup: makeTable("sql-write"), check: tableIsOld("sql-write")},
		{name: "sql read", call: "readLive", method: "POST", path: objPath(ns, "sql-read", "/sql"),
			body:  `{"sql":"SELECT x FROM t"}`,
			setup: makeTable("sql-read"), check: tableIsOld("sql-read")},
		{name: "PUT alarm", call: "propose", method: "PUT", path: objPath(ns, "alarm", "/alarm"),
			body: fmt.Sprintf(`{"scheduledTime":%d}`, far+1),
			setup: func(e *env) {
				e.doJSON("PUT", objPath(ns, "alarm", "/alarm"), fmt.Sprintf(`{"scheduledTime":%d}`, far)).want(e.t, http.StatusOK)
			},
			check: func(e *env) {
				r := e.do("GET", objPath(ns, "alarm", "/alarm"), nil).want(e.t, http.StatusOK)
				wantJSON(e.t, "the alarm", r.body, fmt.Sprintf(`{"scheduledTime":%d}`, far))
			}},
		{name: "PUT namespace", call: "propose", method: "PUT", path: "/v1/ns/" + cfgNS,
			body: `{"alarmWebhook":"http://127.0.0.1:1/new","alarmMaxRetries":7}`,
			setup: func(e *env) {
				e.doJSON("PUT", "/v1/ns/"+cfgNS, `{"alarmWebhook":"http://127.0.0.1:1/old","alarmMaxRetries":3}`).want(e.t, http.StatusOK)
			},
			check: func(e *env) {
				r := e.do("GET", "/v1/ns/"+cfgNS, nil).want(e.t, http.StatusOK)
				wantJSON(e.t, "the namespace", r.body,
					`{"name":"`+cfgNS+`","alarmWebhook":"http://127.0.0.1:1/old","alarmTimeout":"30s","alarmMaxRetries":3}`)
			}},
	}
	for _, ep := range endpoints {
		ep.setup(e)
		ep.check(e)
	}

	// With no leader known the request waits for one until its deadline;
	// past the hop limit it is refused at once. Either way it is not tried.
	noLeader := func(uint32) cluster.Route { return cluster.Route{Hosted: true} }

	for _, ep := range endpoints {
		for _, f := range faults {
			t.Run(ep.name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				fe := serveFaulty(t, &faultyBackend{Node: e.node, call: ep.call, fail: f.fail})
				r := fe.doJSON(ep.method, ep.path, ep.body)
				wantFault(t, r, f)
				// A node that forwarded the request would send it again.
				// (For the errors that are safe to retry the answer comes
				// from the wait for a leader, once the deadline passed.)
				if got := r.header.Get("X-Cairn-Retry"); !f.safe && got != "" {
					t.Errorf("X-Cairn-Retry %q on an answer that may follow a proposal", got)
				}
				ep.check(e.at(t))
			})
		}
		t.Run(ep.name+"/no leader known", func(t *testing.T) {
			t.Parallel()
			fe := serveFaulty(t, &faultyBackend{Node: e.node, route: noLeader})
			start := time.Now()
			r := fe.doJSON(ep.method, ep.path, ep.body)
			wantFault(t, r, fault{status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "no reachable leader"})
			// It gives up once the next wait would pass the deadline.
			if d := time.Since(start); d < faultyTimeout/4 {
				t.Errorf("answered after %v, without waiting for a leader (deadline %v)", d, faultyTimeout)
			}
			ep.check(e.at(t))
		})
		t.Run(ep.name+"/node out of the cluster", func(t *testing.T) {
			t.Parallel()
			fe := serveFaulty(t, &faultyBackend{Node: e.node, route: outOfCluster})
			r := fe.doJSON(ep.method, ep.path, ep.body)
			// Said at once (the deadline's answer says "no reachable
			// leader"), with the reason, and safe to send elsewhere.
			wantFault(t, r, fault{status: http.StatusServiceUnavailable, code: "unavailable", detail: "not part of the cluster: " + outOfClusterWhy})
			wantHeader(t, r, "X-Cairn-Retry", "safe", true)
			ep.check(e.at(t))
		})
		t.Run(ep.name+"/hop limit", func(t *testing.T) {
			t.Parallel()
			fe := serveFaulty(t, &faultyBackend{Node: e.node, route: noLeader})
			r := fe.do(ep.method, ep.path, []byte(ep.body), "Content-Type", "application/json", "X-Cairn-Hops", "2")
			wantFault(t, r, fault{status: http.StatusServiceUnavailable, code: "unavailable", retryAfter: true, detail: "retry"})
			if got := r.header.Get("X-Cairn-Retry"); got != "safe" {
				t.Errorf("X-Cairn-Retry %q, want safe", got)
			}
			ep.check(e.at(t))
		})
	}
}

// outOfClusterWhy is why a node stays out of its cluster, as outOfCluster
// routes.
const outOfClusterWhy = "its shard count is not the cluster's"

func outOfCluster(uint32) cluster.Route { return cluster.Route{OutOfCluster: outOfClusterWhy} }

// TestBackendErrorsOnUnshardedRoute checks the answer to each error where
// it reaches the client as the node returns it: GET /v1/cluster, which
// concerns no one shard, so no retry loop stands between the two.
func TestBackendErrorsOnUnshardedRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			fe := serveFaulty(t, &faultyBackend{Node: e.node, call: "status", fail: f.fail})
			r := fe.do("GET", "/v1/cluster", nil)
			wantFault(t, r, f)
			wantHeader(t, r, "X-Cairn-Retry", "safe", f.safe)
		})
	}
	t.Run("no error", func(t *testing.T) {
		fe := serveFaulty(t, &faultyBackend{Node: e.node})
		fe.do("GET", "/v1/cluster", nil).want(t, http.StatusOK)
	})
}

// TestReadyzFollowsBackend checks that /readyz answers 503 while the node
// is not ready and 200 once it is, and that /healthz does not care.
func TestReadyzFollowsBackend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var ready atomic.Bool
	fe := serveFaulty(t, &faultyBackend{Node: e.node, ready: ready.Load})

	r := fe.do("GET", "/readyz", nil)
	r.wantProblem(t, http.StatusServiceUnavailable, "unavailable")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	fe.do("HEAD", "/readyz", nil).want(t, http.StatusServiceUnavailable)
	wantJSON(t, "/healthz", fe.do("GET", "/healthz", nil).want(t, http.StatusOK).body, `{"status":"ok","node":"n1"}`)

	ready.Store(true)
	r = fe.do("GET", "/readyz", nil).want(t, http.StatusOK)
	r.json(t) // its Content-Type
	wantJSON(t, "/readyz", r.body, `{"status":"ready","node":"n1"}`)
	fe.do("HEAD", "/readyz", nil).want(t, http.StatusOK)

	ready.Store(false)
	fe.do("GET", "/readyz", nil).wantProblem(t, http.StatusServiceUnavailable, "unavailable")

	// A node that stays out of the cluster says why.
	out := serveFaulty(t, &faultyBackend{Node: e.node, route: outOfCluster})
	p := out.do("GET", "/readyz", nil).wantProblem(t, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(p.Detail, outOfClusterWhy) {
		t.Errorf("/readyz of a node out of the cluster: detail %q, want the reason %q", p.Detail, outOfClusterWhy)
	}
}

var applyCountLine = regexp.MustCompile(`(?m)^cairn_raft_apply_duration_seconds_count (\S+)$`)

// applyCount is the count of cairn_raft_apply_duration_seconds in the
// /metrics of e's node.
func applyCount(e *env) float64 {
	e.t.Helper()
	r := e.do("GET", "/metrics", nil).want(e.t, http.StatusOK)
	if !strings.Contains(string(r.body), "# TYPE cairn_raft_apply_duration_seconds histogram") {
		e.t.Fatalf("/metrics has no histogram cairn_raft_apply_duration_seconds")
	}
	m := applyCountLine.FindSubmatch(r.body)
	if m == nil {
		e.t.Fatalf("/metrics has no cairn_raft_apply_duration_seconds_count")
	}
	n, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		e.t.Fatalf("cairn_raft_apply_duration_seconds_count %q: %v", m[1], err)
	}
	return n
}

// TestMetricsRaftApplyDuration checks that a node wired as cmd/node wires
// one (the cluster and the API on one registry) serves
// cairn_raft_apply_duration_seconds on /metrics, and that a write through
// the API is counted in it.
func TestMetricsRaftApplyDuration(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	before := applyCount(e)
	e.put("metrics", "o", "k", []byte("v"), "")
	e.doJSON("POST", objPath("metrics", "o", "/tx"), `{"ops":[{"put":{"k2":1}}]}`).want(t, http.StatusOK)
	if after := applyCount(e); after < before+2 {
		t.Fatalf("cairn_raft_apply_duration_seconds_count went from %v to %v over two writes", before, after)
	}
	// A read proposes nothing.
	mid := applyCount(e)
	e.wantValue("metrics", "o", "k", "v", "")
	if after := applyCount(e); after != mid {
		t.Fatalf("cairn_raft_apply_duration_seconds_count went from %v to %v over a read", mid, after)
	}
}
