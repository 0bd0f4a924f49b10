package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/alarms"
	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/sqlstore"
	"github.com/cockroachdb/pebble/v2"
)

// Tokens of the authenticated front end.
const (
	tokenAdmin    = "admin-token-0123456789"
	tokenRW       = "readwrite-token-0123456789"
	tokenRO       = "readonly-token-0123456789"
	tokenLimited  = "limited-token-0123456789" // readwrite, namespace "allowed" only
	smallObjLimit = 256 << 10
)

// env is the real single-node cluster most tests share: 4 shards, SQL and
// the alarm scheduler wired as cmd/node/run.go wires them, and three API
// front ends on the same node.
type env struct {
	url      string // plain API, behind the failpoints
	authURL  string // with tokens
	smallURL string // objects limited to smallObjLimit bytes of SQL
	faults   *faults
}

var shared *env

func TestMain(m *testing.M) {
	e, stop, err := startEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test node:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	stop()
	os.Exit(code)
}

// testLogger logs errors to stderr when CAIRN_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fastRaft are Raft timings for tests.
var fastRaft = cluster.RaftConfig{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
	LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}

func startEnv() (_ *env, stop func(), err error) {
	var cleanups []func()
	stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	dir, err := os.MkdirTemp("", "cairn-client-test-")
	if err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	log := testLogger()
	var sched atomic.Pointer[alarms.Scheduler]
	node, err := cluster.New(cluster.Config{
		NodeID:   "n1",
		DataDir:  dir,
		RaftAddr: "127.0.0.1:0",
		Shards:   4,
		Raft:     fastRaft,
		Logger:   log,
		NewSQL: func(*pebble.DB) (cluster.SQLEngine, error) {
			// As cmd/node/run.go, with limits small enough that a test
			// can run a statement into them in well under a second.
			return sqlstore.New(sqlstore.Config{Logger: log, ReadTimeout: 500 * time.Millisecond, WriteStepBudget: 100})
		},
		OnAlarmChange: func(shard uint32) {
			if s := sched.Load(); s != nil {
				s.Notify(shard)
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	if err := node.Start(); err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, func() { node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.WaitReady(ctx); err != nil {
		return nil, nil, err
	}
	s, err := alarms.New(alarms.Config{Node: node, Logger: log, FirstBackoff: 100 * time.Millisecond, NoWebhookWait: 100 * time.Millisecond})
	if err != nil {
		return nil, nil, err
	}
	sched.Store(s)
	s.Start()
	cleanups = append(cleanups, func() { s.Close() })

	tokens, err := api.ParseTokens([]byte(`{"tokens":[
		{"token":"` + tokenAdmin + `","role":"admin"},
		{"token":"` + tokenRW + `","role":"readwrite"},
		{"token":"` + tokenRO + `","role":"readonly"},
		{"token":"` + tokenLimited + `","role":"readwrite","namespaces":["allowed"]}]}`))
	if err != nil {
		return nil, nil, err
	}
	e := &env{faults: &faults{}}
	for _, fe := range []struct {
		cfg  api.Config
		url  *string
		wrap bool
	}{
		{api.Config{Backend: node, Logger: log, RequestTimeout: 5 * time.Second}, &e.url, true},
		{api.Config{Backend: node, Logger: log, Tokens: tokens}, &e.authURL, false},
		{api.Config{Backend: node, Logger: log, MaxObjectBytes: smallObjLimit}, &e.smallURL, false},
	} {
		srv, err := api.New(fe.cfg)
		if err != nil {
			return nil, nil, err
		}
		var h http.Handler = srv.Handler()
		if fe.wrap {
			h = e.faults.wrap(h)
		}
		hs := httptest.NewServer(h)
		cleanups = append(cleanups, hs.Close)
		*fe.url = hs.URL
	}
	return e, stop, nil
}

// newClient returns a client of the shared node with fast retries.
func newClient(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	return newClientAt(t, []string{shared.url}, opts...)
}

func newClientAt(t testing.TB, endpoints []string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithBackoff(10*time.Millisecond, 100*time.Millisecond), client.WithTimeout(20 * time.Second)}, opts...)
	c, err := client.New(endpoints, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var objSeq atomic.Int64

// object returns a fresh object of namespace "t", named after the test.
func object(t testing.TB, c *client.Client) *client.Object {
	name := fmt.Sprintf("%s/%d", t.Name(), objSeq.Add(1))
	return c.Namespace("t").Object(name)
}

// uniqueNS returns a namespace name no other test (or run of a test) uses.
func uniqueNS(prefix string) string { return fmt.Sprintf("%s-%d", prefix, objSeq.Add(1)) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deadAddr returns the URL of a loopback port nobody listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// faults injects failures in front of a real API handler: the test's stand
// in for a network that loses answers, and for answers the node cannot be
// made to give on demand.
type faults struct {
	mu    sync.Mutex
	rules []*fault
}

// fault is one injected failure.
type fault struct {
	match func(*http.Request) bool
	// times is how many requests it applies to (<0: all).
	times int
	// drop serves the request, then cuts the connection without an answer.
	drop bool
	// delay serves the request, then holds the answer back this long (or
	// until the client gives up).
	delay time.Duration
	// Otherwise the request is answered with status, header and body,
	// without reaching the node.
	status int
	header map[string]string
	body   string
	hits   atomic.Int32
}

func (f *faults) add(ft *fault) *fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, ft)
	return ft
}

// rearm makes ft apply to n more requests.
func (f *faults) rearm(ft *fault, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft.times = n
}

func (f *faults) remove(ft *fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r == ft {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
			return
		}
	}
}

func (f *faults) take(r *http.Request) *fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.rules {
		if ft.times != 0 && ft.match(r) {
			if ft.times > 0 {
				ft.times--
			}
			ft.hits.Add(1)
			return ft
		}
	}
	return nil
}

func (f *faults) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ft := f.take(r)
		switch {
		case ft == nil:
			h.ServeHTTP(w, r)
		case ft.drop:
			h.ServeHTTP(httptest.NewRecorder(), r)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		case ft.delay > 0:
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			select {
			case <-time.After(ft.delay):
			case <-r.Context().Done():
				return
			}
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		default:
			for k, v := range ft.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(ft.status)
			io.WriteString(w, ft.body)
		}
	})
}

// forObject matches the requests for object o.
func forObject(o *client.Object) func(*http.Request) bool {
	seg := "/objects/" + url.PathEscape(o.Name())
	return func(r *http.Request) bool {
		p := r.URL.EscapedPath()
		return strings.HasSuffix(p, seg) || strings.Contains(p, seg+"/")
	}
}

// problem is a problem+json body as the server writes it.
func problem(status int, code string) string {
	return fmt.Sprintf(`{"type":"about:blank","title":%q,"status":%d,"code":%q,"detail":"injected"}`, http.StatusText(status), status, code)
}
