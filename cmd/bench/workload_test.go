package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seen is one request as the fake server received it.
type seen struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// fakeServer records every request and answers with answer (200 "{}" when
// nil). It counts the TCP connections it accepted, and those closed.
type fakeServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	conns  atomic.Int64
	closed atomic.Int64
	answer func(w http.ResponseWriter, r *http.Request)
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		answer := f.answer
		f.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"version":"7"}`)
	}))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			f.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			f.closed.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func testConfig(m mode) config {
	return config{mode: m, namespace: "bench", objects: 50, keys: 10, valueSize: 100, txKeys: 4, readRatio: 0.5, clients: 4, timeout: 5 * time.Second}
}

// testDoer is the doer of a run with -http-client hc.
func testDoer(hc string, clients int, timeout time.Duration, token string) *doer {
	return newDoer(config{httpClient: hc, clients: clients, timeout: timeout, token: token})
}

// send makes n requests of w's mode against f with -http-client hc and
// returns what f saw.
func send(t *testing.T, hc string, f *fakeServer, w *workload, token string, n int) ([]request, []seen) {
	t.Helper()
	d := testDoer(hc, 4, 5*time.Second, token)
	defer d.closeIdle()
	rng := rand.New(rand.NewPCG(1, 2))
	var sent []request
	for range n {
		rq := w.next(rng)
		if res := d.do(context.Background(), f.URL, rq); !res.ok() || res.status != 200 || res.latency <= 0 {
			t.Fatalf("%s %s: %+v", rq.method, rq.path, res)
		}
		sent = append(sent, rq)
	}
	got := f.requests()
	if len(got) != n {
		t.Fatalf("server saw %d requests, want %d", len(got), n)
	}
	return sent, got
}

// parseKV checks a /kv/ path and returns its object and key (unescaped).
func parseKV(t *testing.T, path string) (obj, key string) {
	t.Helper()
	rest, ok := strings.CutPrefix(path, "/v1/ns/bench/objects/")
	if !ok {
		t.Fatalf("path %q is not below /v1/ns/bench/objects/", path)
	}
	objSeg, keySeg, ok := strings.Cut(rest, "/kv/")
	if !ok {
		t.Fatalf("path %q has no /kv/", path)
	}
	var err error
	if obj, err = url.PathUnescape(objSeg); err != nil {
		t.Fatal(err)
	}
	if key, err = url.PathUnescape(keySeg); err != nil {
		t.Fatal(err)
	}
	return obj, key
}

func TestWriteMode(t *testing.T) { eachClient(t, testWriteMode) }

func testWriteMode(t *testing.T, hc string) {
	f := newFakeServer(t)
	w := newWorkload(testConfig(modeWrite), 1)
	sent, got := send(t, hc, f, w, "s3cret", 200)
	objs := map[string]bool{}
	for i, r := range got {
		if r.method != http.MethodPut || sent[i].kind != kindWrite {
			t.Fatalf("method %s kind %v, want PUT write", r.method, sent[i].kind)
		}
		obj, key := parseKV(t, r.path)
		objs[obj] = true
		if !strings.HasPrefix(obj, "obj-") || !strings.HasPrefix(key, "key-") {
			t.Fatalf("names %q %q", obj, key)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		if a := r.header.Get("Authorization"); a != "Bearer s3cret" {
			t.Fatalf("Authorization %q", a)
		}
		if len(r.body) != 100 || r.header.Get("Content-Length") != "" && r.header.Get("Content-Length") != "100" ||
			r.header.Get("Transfer-Encoding") != "" || r.header.Get("Content-Encoding") != "" {
			t.Fatalf("body of %d bytes, want 100", len(r.body))
		}
		if r.rawQuery != "" {
			t.Fatalf("query %q", r.rawQuery)
		}
	}
	// 200 writes over 50 objects chosen uniformly touch most of them.
	if len(objs) < 30 {
		t.Fatalf("only %d distinct objects in 200 writes", len(objs))
	}
	if got[0].header.Get("Content-Type") == "" || string(got[0].body) == string(got[1].body) {
		t.Fatal("values are not random")
	}
	// Bodies are read to the end, so the connection is reused (more than
	// one only if net/http dials while it is on its way back to the pool).
	if n := f.conns.Load(); n > 3 || hc == httpClientFast && n != 1 {
		t.Fatalf("%d connections for 200 sequential requests: not kept alive", n)
	}
}

func TestReadModes(t *testing.T) { eachClient(t, testReadModes) }

func testReadModes(t *testing.T, hc string) {
	for _, m := range []mode{modeRead, modeStaleRead} {
		t.Run(string(m), func(t *testing.T) {
			f := newFakeServer(t)
			w := newWorkload(testConfig(m), 1)
			w.preloaded = []target{{3, 1}, {7, 9}}
			sent, got := send(t, hc, f, w, "", 50)
			for i, r := range got {
				if r.method != http.MethodGet || len(r.body) != 0 {
					t.Fatalf("%s with %d-byte body", r.method, len(r.body))
				}
				if r.header.Get("Authorization") != "" {
					t.Fatal("Authorization sent without a token")
				}
				obj, key := parseKV(t, r.path)
				if !(obj == "obj-3" && key == "key-1" || obj == "obj-7" && key == "key-9") {
					t.Fatalf("read %s/%s, not a preloaded key", obj, key)
				}
				wantQuery, wantKind := "", kindRead
				if m == modeStaleRead {
					wantQuery, wantKind = "consistency=stale", kindStaleRead
				}
				if r.rawQuery != wantQuery || sent[i].kind != wantKind {
					t.Fatalf("query %q kind %v, want %q %v", r.rawQuery, sent[i].kind, wantQuery, wantKind)
				}
			}
		})
	}
}

func TestMixedMode(t *testing.T) { eachClient(t, testMixedMode) }

func testMixedMode(t *testing.T, hc string) {
	f := newFakeServer(t)
	c := testConfig(modeMixed)
	c.readRatio = 0.8
	w := newWorkload(c, 1)
	w.preloaded = []target{{1, 1}}
	sent, got := send(t, hc, f, w, "", 1000)
	reads := 0
	for i, r := range got {
		switch r.method {
		case http.MethodGet:
			reads++
			if sent[i].kind != kindRead || r.path != "/v1/ns/bench/objects/obj-1/kv/key-1" || r.rawQuery != "" {
				t.Fatalf("read %s?%s", r.path, r.rawQuery)
			}
		case http.MethodPut:
			if sent[i].kind != kindWrite || len(r.body) != 100 {
				t.Fatalf("write %s with %d bytes", r.path, len(r.body))
			}
		default:
			t.Fatalf("method %s", r.method)
		}
	}
	if reads < 740 || reads > 860 {
		t.Fatalf("%d reads in 1000 at ratio 0.8", reads)
	}
	// The extremes are exact.
	rng := rand.New(rand.NewPCG(3, 4))
	for _, ratio := range []float64{0, 1} {
		w.readRatio = ratio
		for range 200 {
			if isRead := w.next(rng).method == http.MethodGet; isRead != (ratio == 1) {
				t.Fatalf("ratio %g gave a read=%v", ratio, isRead)
			}
		}
	}
}

func TestTxMode(t *testing.T) { eachClient(t, testTxMode) }

func testTxMode(t *testing.T, hc string) {
	f := newFakeServer(t)
	w := newWorkload(testConfig(modeTx), 1)
	sent, got := send(t, hc, f, w, "tok", 100)
	for i, r := range got {
		if r.method != http.MethodPost || sent[i].kind != kindTx {
			t.Fatalf("method %s", r.method)
		}
		if !strings.HasPrefix(r.path, "/v1/ns/bench/objects/obj-") || !strings.HasSuffix(r.path, "/tx") {
			t.Fatalf("path %q", r.path)
		}
		if r.header.Get("Content-Type") != "application/json" || r.header.Get("Authorization") != "Bearer tok" {
			t.Fatalf("headers %v", r.header)
		}
		var tx struct {
			If  []any                                     `json:"if"`
			Ops []map[string]map[string]map[string]string `json:"ops"`
		}
		if err := json.Unmarshal(r.body, &tx); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if tx.If != nil || len(tx.Ops) != 1 || len(tx.Ops[0]) != 1 {
			t.Fatalf("tx %s: want exactly one put op and no conditions", r.body)
		}
		put := tx.Ops[0]["put"]
		if len(put) != 4 {
			t.Fatalf("put of %d keys, want 4: %s", len(put), r.body)
		}
		for k, v := range put {
			if !strings.HasPrefix(k, "key-") || len(v) != 1 {
				t.Fatalf("entry %q: %v", k, v)
			}
			b, err := base64.StdEncoding.DecodeString(v["valueBase64"])
			if err != nil || len(b) != 100 {
				t.Fatalf("valueBase64 of %q: %d bytes, %v", k, len(b), err)
			}
		}
	}
	// With -tx-keys = -keys, every key of the object is written.
	c := testConfig(modeTx)
	c.keys, c.txKeys = 3, 3
	rq := newWorkload(c, 1).tx(0, rand.New(rand.NewPCG(1, 1)))
	for _, k := range []string{`"key-0":`, `"key-1":`, `"key-2":`} {
		if !strings.Contains(string(rq.body), k) {
			t.Fatalf("tx %s lacks %s", rq.body, k)
		}
	}
}

func TestIncrMode(t *testing.T) { eachClient(t, testIncrMode) }

func testIncrMode(t *testing.T, hc string) {
	f := newFakeServer(t)
	w := newWorkload(testConfig(modeIncr), 1)
	sent, got := send(t, hc, f, w, "", 20)
	for i, r := range got {
		if r.method != http.MethodPost || sent[i].kind != kindIncr || !strings.HasSuffix(r.path, "/tx") {
			t.Fatalf("%s %s", r.method, r.path)
		}
		if string(r.body) != `{"ops":[{"incr":{"key":"n","by":1}}]}` {
			t.Fatalf("body %s", r.body)
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
	}
}

func TestNamesArePercentEncoded(t *testing.T) { eachClient(t, testNamesArePercentEncoded) }

func testNamesArePercentEncoded(t *testing.T, hc string) {
	f := newFakeServer(t)
	c := testConfig(modeWrite)
	c.objects, c.keys = 1, 1
	w := newWorkload(c, 1)
	w.objPrefix, w.keyPrefix = "room 1/ü?#%", "a/b c"
	_, got := send(t, hc, f, w, "", 1)
	want := "/v1/ns/bench/objects/room%201%2F%C3%BC%3F%23%250/kv/a%2Fb%20c0"
	if got[0].path != want || got[0].rawQuery != "" {
		t.Fatalf("path %q query %q, want %q", got[0].path, got[0].rawQuery, want)
	}
	obj, key := parseKV(t, got[0].path)
	if obj != "room 1/ü?#%0" || key != "a/b c0" {
		t.Fatalf("unescaped %q %q", obj, key)
	}
}

func TestDoClassifiesErrors(t *testing.T) { eachClient(t, testDoClassifiesErrors) }

func testDoClassifiesErrors(t *testing.T, hc string) {
	f := newFakeServer(t)
	d := testDoer(hc, 2, 5*time.Second, "")
	w := newWorkload(testConfig(modeWrite), 1)
	rq := w.put(target{1, 1}, rand.New(rand.NewPCG(1, 1)))

	f.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(504)
		io.WriteString(w, `{"type":"about:blank","title":"Gateway Timeout","status":504,"code":"commit_unknown"}`)
		io.WriteString(w, strings.Repeat(" ", 64<<10)) // a long body is still drained
	}
	for range 20 {
		if res := d.do(context.Background(), f.URL, rq); res.class != "504 commit_unknown" || res.status != 504 || res.ok() {
			t.Fatalf("result %+v", res)
		}
	}
	if n := f.conns.Load(); n > 3 || hc == httpClientFast && n != 1 {
		t.Fatalf("%d connections for 20 error answers: bodies not drained", n)
	}

	// Nothing listening: a transport error.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	if res := d.do(context.Background(), closed, rq); res.class != "transport: connection refused" || res.status != 0 {
		t.Fatalf("result %+v", res)
	}
	if d.attempts.Load() != 21 || d.responses.Load() != 20 {
		t.Fatalf("attempts %d responses %d, want 21 and 20", d.attempts.Load(), d.responses.Load())
	}

	// A request the run canceled is neither success nor error.
	f.answer = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if res := d.do(ctx, f.URL, rq); !res.canceled {
		t.Fatalf("result %+v, want canceled", res)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a canceled request took %v to return", took)
	}
	// A request whose run ended before it started is canceled too.
	if res := d.do(ctx, f.URL, rq); !res.canceled {
		t.Fatalf("result %+v, want canceled", res)
	}

	// The per-request timeout is an error.
	short := testDoer(hc, 1, 50*time.Millisecond, "")
	if res := short.do(context.Background(), f.URL, rq); res.class != "transport: timeout" || res.canceled {
		t.Fatalf("result %+v, want a timeout", res)
	}
}

func TestPreloadTargets(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ objects, keys, n, want int }{
		{10000, 10, 1000, 1000}, // sparse
		{10, 10, 60, 60},        // dense
		{5, 2, 100, 10},         // more than exist: all of them
	} {
		w := &workload{objects: c.objects, keys: c.keys}
		ts := w.preloadTargets(rng, c.n)
		if len(ts) != c.want {
			t.Fatalf("%+v: %d targets", c, len(ts))
		}
		seen := map[target]bool{}
		for _, tg := range ts {
			if seen[tg] || tg.obj < 0 || tg.obj >= c.objects || tg.key < 0 || tg.key >= c.keys {
				t.Fatalf("%+v: duplicate or out of range %+v", c, tg)
			}
			seen[tg] = true
		}
	}
}

func TestHTTPClientIsTunedForManyClients(t *testing.T) {
	c := newHTTPClient(64, 3*time.Second)
	tr := c.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost < 64 || tr.MaxConnsPerHost != 0 || tr.ForceAttemptHTTP2 || tr.TLSNextProto == nil || c.Timeout != 3*time.Second {
		t.Fatalf("transport %+v", tr)
	}
}
