package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/client"
)

// posts and puts select requests by method.
func method(m string, match func(*http.Request) bool) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == m && match(r) }
}

// TestIdempotentRetry loses the answer of writes that were applied, and
// checks that a keyed write is retried and answered with its first answer,
// applied once, while an unkeyed one is reported as maybe-applied.
func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)

	t.Run("explicit key", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: method("POST", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f)
		res, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpIncr("hits", 1)}}, client.IdempotencyKey("incr-1"))
		if err != nil {
			t.Fatal(err)
		}
		if f.hits.Load() != 1 {
			t.Fatalf("%d answers dropped, want 1", f.hits.Load())
		}
		if n, _ := res.Results[0].Number.Int64(); n != 1 {
			t.Fatalf("retried incr answered %d, want the first answer 1", n)
		}
		var hits int
		if err := o.Get(ctx, "hits", &hits); err != nil || hits != 1 {
			t.Fatalf("hits = %d, %v; applied more than once?", hits, err)
		}
	})

	t.Run("generated key", func(t *testing.T) {
		ci := newClient(t, client.WithIdempotency())
		o := object(t, ci)
		f := shared.faults.add(&fault{match: method("PUT", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f)
		v, err := o.Put(ctx, "k", "v")
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.GetBytes(ctx, "k")
		if err != nil || got.Version != v || f.hits.Load() != 1 {
			t.Fatalf("after a retried Put: answer version %s, stored %+v, %v (dropped %d)", v, got, err, f.hits.Load())
		}
		// SQL too.
		if _, err := o.SQL(ctx, "CREATE TABLE t(a)"); err != nil {
			t.Fatal(err)
		}
		f2 := shared.faults.add(&fault{match: method("POST", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f2)
		rows, err := o.SQL(ctx, "INSERT INTO t VALUES (1) RETURNING (SELECT count(*) FROM t)")
		var n int
		if err != nil || rows.One(&n) != nil || n != 1 || f2.hits.Load() != 1 {
			t.Fatalf("retried SQL = %d, %v (dropped %d)", n, err, f2.hits.Load())
		}
		if err := mustQuery(t, o, "SELECT count(*) FROM t").One(&n); err != nil || n != 1 {
			t.Fatalf("%d rows after a retried insert, want 1", n)
		}
	})

	t.Run("generated key, DDL", func(t *testing.T) {
		ci := newClient(t, client.WithIdempotency())
		o := object(t, ci)
		f := shared.faults.add(&fault{match: method("POST", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f)
		// The retry of a CREATE TABLE that the first attempt applied would
		// fail as a read ("table t already exists"): a keyed request goes on
		// to the log, where its record holds the first answer.
		_, err := o.SQL(ctx, "CREATE TABLE t(a)")
		if err != nil || f.hits.Load() != 1 {
			t.Fatalf("retried CREATE TABLE = %v (dropped %d)", err, f.hits.Load())
		}
	})

	t.Run("no key", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: method("PUT", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f)
		_, err := o.Put(ctx, "k", "v")
		var ce *client.Error
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.As(err, &ce) || ce.Status != 0 || ce.Err == nil || ce.IdempotencyKey != "" {
			t.Fatalf("Put whose answer was lost = %v, want a client-side ErrCommitUnknown", err)
		}
		// It was in fact applied: "maybe" is the truth.
		var s string
		if err := o.Get(ctx, "k", &s); err != nil || s != "v" {
			t.Fatalf("Get = %q, %v", s, err)
		}
		f2 := shared.faults.add(&fault{match: method("POST", forObject(o)), times: 1, drop: true})
		defer shared.faults.remove(f2)
		if _, err := o.SQL(ctx, "CREATE TABLE t(a)"); !errors.Is(err, client.ErrCommitUnknown) {
			t.Fatalf("SQL whose answer was lost = %v", err)
		}
	})

	t.Run("reads", func(t *testing.T) {
		o := object(t, c)
		if _, err := o.Put(ctx, "k", 7); err != nil {
			t.Fatal(err)
		}
		f := shared.faults.add(&fault{match: forObject(o), times: 4, drop: true})
		defer shared.faults.remove(f)
		var n int
		if err := o.Get(ctx, "k", &n); err != nil || n != 7 {
			t.Fatalf("Get = %d, %v", n, err)
		}
		if _, err := o.List(ctx, client.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Query(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpGet("k")}}); err != nil {
			t.Fatal(err)
		}
		if f.hits.Load() != 4 {
			t.Fatalf("%d reads dropped, want 4", f.hits.Load())
		}
	})

	t.Run("attempts run out", func(t *testing.T) {
		cm := newClient(t, client.WithMaxAttempts(3))
		o := object(t, cm)
		f := shared.faults.add(&fault{match: method("POST", forObject(o)), times: -1, drop: true})
		tx := client.TxRequest{Ops: []client.Op{client.OpIncr("n", 1)}}
		_, err := o.Tx(ctx, tx, client.IdempotencyKey("settle-me"))
		shared.faults.remove(f)
		var ce *client.Error
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.As(err, &ce) || ce.IdempotencyKey != "settle-me" || f.hits.Load() != 3 {
			t.Fatalf("after 3 lost answers: %v (key %q, %d attempts)", err, ce.IdempotencyKey, f.hits.Load())
		}
		// Repeating with the key settles it: the first answer, applied once.
		res, err := o.Tx(ctx, tx, client.IdempotencyKey(ce.IdempotencyKey))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.Results[0].Number.Int64(); n != 1 {
			t.Fatalf("settled incr = %d, want 1", n)
		}
	})
}

// TestRetryAnswers checks which error answers are retried, and how.
func TestRetryAnswers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	problemHdr := map[string]string{"Content-Type": "application/problem+json"}

	t.Run("overloaded honours Retry-After", func(t *testing.T) {
		o := object(t, c)
		// The node cannot be made to fill its proposal queue on demand, so
		// the answer is injected, exactly as the node writes it.
		f := shared.faults.add(&fault{match: forObject(o), times: 1, status: 429, body: problem(429, "overloaded"),
			header: map[string]string{"Content-Type": "application/problem+json", "Retry-After": "1"}})
		defer shared.faults.remove(f)
		start := time.Now()
		if _, err := o.Put(ctx, "k", 1); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second || f.hits.Load() != 1 {
			t.Fatalf("retried after %v (%d hits), want after Retry-After 1s", d, f.hits.Load())
		}
	})

	t.Run("Retry-After past the deadline", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: -1, status: 429, body: problem(429, "overloaded"),
			header: map[string]string{"Content-Type": "application/problem+json", "Retry-After": "30"}})
		defer shared.faults.remove(f)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := o.Put(cctx, "k", 1)
		var ce *client.Error
		if !errors.Is(err, client.ErrOverloaded) || !errors.As(err, &ce) || ce.RetryAfter != 30*time.Second || time.Since(start) > time.Second {
			t.Fatalf("= %v after %v, want ErrOverloaded at once", err, time.Since(start))
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v does not say the deadline is why it gave up", err)
		}
	})

	t.Run("unavailable, then success", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: 2, status: 503, body: problem(503, "unavailable"), header: problemHdr})
		defer shared.faults.remove(f)
		if _, err := o.Put(ctx, "k", 1); err != nil || f.hits.Load() != 2 {
			t.Fatalf("Put = %v after %d 503s", err, f.hits.Load())
		}
	})

	t.Run("unavailable until attempts run out", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: -1, status: 503, body: problem(503, "unavailable"), header: problemHdr})
		defer shared.faults.remove(f)
		_, err := o.Put(ctx, "k", 1)
		checkCode(t, "503 forever", err, 503, "unavailable")
		if f.hits.Load() != client.DefaultMaxAttempts {
			t.Fatalf("%d attempts, want %d", f.hits.Load(), client.DefaultMaxAttempts)
		}
	})

	t.Run("commit_unknown is retried only with a key", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: 1, status: 504, body: problem(504, "commit_unknown"), header: problemHdr})
		defer shared.faults.remove(f)
		_, err := o.Put(ctx, "k", 1)
		checkCode(t, "504 without key", err, 504, "commit_unknown")
		shared.faults.rearm(f, 1)
		if _, err := o.Put(ctx, "k", 1, client.IdempotencyKey("k504")); err != nil || f.hits.Load() != 2 {
			t.Fatalf("504 with key = %v (%d hits)", err, f.hits.Load())
		}
	})

	t.Run("a proxy's 502", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: 1, status: 502, body: "bad gateway"})
		defer shared.faults.remove(f)
		// The proxy may have passed the write on: maybe applied, not retried.
		_, err := o.Put(ctx, "k", 1)
		var ce, inner *client.Error
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.As(err, &ce) || ce.Status != 0 || !errors.As(ce.Err, &inner) || inner.Status != 502 || inner.Code != "" || f.hits.Load() != 1 {
			t.Fatalf("write after a 502 = %v (%d hits), want a maybe-applied error and no retry", err, f.hits.Load())
		}
		shared.faults.rearm(f, 1)
		if _, err := o.List(ctx, client.ListOptions{}); err != nil || f.hits.Load() != 2 {
			t.Fatalf("read after a 502 = %v, want a retry", err)
		}
	})

	t.Run("4xx is not retried", func(t *testing.T) {
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: -1, status: 400, body: problem(400, "invalid_parameter"), header: problemHdr})
		defer shared.faults.remove(f)
		_, err := o.List(ctx, client.ListOptions{})
		checkCode(t, "400", err, 400, "invalid_parameter")
		if f.hits.Load() != 1 {
			t.Fatalf("%d attempts of a 400", f.hits.Load())
		}
	})
}

// TestDeadlines: a write whose answer does not come before the deadline
// is maybe-applied; a read is just late.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	for _, viaOption := range []bool{false, true} {
		c := newClient(t)
		if viaOption {
			c = newClient(t, client.WithTimeout(300*time.Millisecond))
		}
		o := object(t, c)
		f := shared.faults.add(&fault{match: forObject(o), times: 2, delay: 5 * time.Second})
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if viaOption {
			cctx = ctx
		}
		_, err := o.Put(cctx, "k", "v")
		var ce *client.Error
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) || ce.Status != 0 {
			t.Fatalf("late write = %v, want ErrCommitUnknown and DeadlineExceeded", err)
		}
		err = o.Get(cctx, "k", new(string))
		if errors.Is(err, client.ErrCommitUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("late read = %v, want DeadlineExceeded only", err)
		}
		cancel()
		shared.faults.remove(f)
		var s string
		if err := o.Get(ctx, "k", &s); err != nil || s != "v" {
			t.Fatalf("the late write: %q, %v", s, err)
		}
	}
}

// countingDialer counts the connections made to each address.
type countingDialer struct {
	mu    sync.Mutex
	dials map[string]int
	d     net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	c.dials[addr]++
	c.mu.Unlock()
	return c.d.DialContext(ctx, network, addr)
}

func (c *countingDialer) count(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dials[addr]
}

// TestFailoverDeadEndpoint puts an address nobody listens on first: calls
// go on to the next endpoint at once, and stay there.
func TestFailoverDeadEndpoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	dead := deadAddr(t)
	cd := &countingDialer{dials: map[string]int{}}
	hc := &http.Client{Transport: &http.Transport{DialContext: cd.DialContext}}
	c := newClientAt(t, []string{dead, shared.url}, client.WithHTTPClient(hc))
	o := object(t, c)
	deadHost := dead[len("http://"):]
	for i := range 10 {
		if _, err := o.Put(ctx, "k", i); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		var n int
		if err := o.Get(ctx, "k", &n); err != nil || n != i {
			t.Fatalf("Get = %d, %v", n, err)
		}
	}
	if n := cd.count(deadHost); n != 1 {
		t.Fatalf("%d dials to the dead endpoint, want 1 (the client should stay on the live one)", n)
	}

	// Every endpoint dead: ErrUnavailable, nothing sent, even for a write.
	c2 := newClientAt(t, []string{deadAddr(t), deadAddr(t)}, client.WithMaxAttempts(2))
	start := time.Now()
	_, err := c2.Namespace("t").Object("o").Put(ctx, "k", 1)
	var ce *client.Error
	if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrCommitUnknown) || !errors.As(err, &ce) || ce.Status != 0 || ce.Err == nil {
		t.Fatalf("all endpoints dead = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if err := c2.Healthz(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("Healthz with every endpoint dead = %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	c, err := client.New([]string{"127.0.0.1:8080", "https://h.example:443/prefix/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); got[0] != "http://127.0.0.1:8080" || got[1] != "https://h.example:443/prefix" {
		t.Fatalf("Endpoints = %q", got)
	}
	for name, f := range map[string]func() (*client.Client, error){
		"no endpoints": func() (*client.Client, error) { return client.New(nil) },
		"bad scheme":   func() (*client.Client, error) { return client.New([]string{"ftp://x"}) },
		"no host":      func() (*client.Client, error) { return client.New([]string{"http://"}) },
		"query":        func() (*client.Client, error) { return client.New([]string{"http://h?x=1"}) },
		"attempts":     func() (*client.Client, error) { return client.New([]string{"h:1"}, client.WithMaxAttempts(0)) },
		"backoff":      func() (*client.Client, error) { return client.New([]string{"h:1"}, client.WithBackoff(0, time.Second)) },
		"backoff order": func() (*client.Client, error) {
			return client.New([]string{"h:1"}, client.WithBackoff(time.Second, time.Millisecond))
		},
		"timeout": func() (*client.Client, error) { return client.New([]string{"h:1"}, client.WithTimeout(-1)) },
		"attempt timeout": func() (*client.Client, error) {
			return client.New([]string{"h:1"}, client.WithAttemptTimeout(-1))
		},
		"http client": func() (*client.Client, error) { return client.New([]string{"h:1"}, client.WithHTTPClient(nil)) },
		"token":       func() (*client.Client, error) { return client.New([]string{"h:1"}, client.WithToken("a\nb")) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if got := client.ObjectID("users", "alice"); len(got) != 64 {
		t.Fatalf("ObjectID = %q", got)
	}
}

// hungServer accepts connections and reads what arrives on them, but never
// answers: a node whose process is stuck while its kernel still accepts.
type hungServer struct {
	url string
	// requests counts the connections on which something arrived.
	requests atomic.Int32
}

func startHung(t *testing.T) *hungServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hungServer{url: "http://" + ln.Addr().String()}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				conn.Close()
			}
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b [1]byte
				if n, _ := conn.Read(b[:]); n > 0 {
					h.requests.Add(1)
				}
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return h
}

// TestHungEndpoint puts first an endpoint that accepts connections and
// never answers. Reads and keyed writes go on to the live node once their
// attempt times out, well within the call's deadline. An unkeyed write was
// sent to the hung endpoint (its request arrived there), so its outcome is
// unknown: ErrCommitUnknown, and it is not sent again.
func TestHungEndpoint(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	const callTimeout = 10 * time.Second
	seed := object(t, newClient(t))
	if _, err := seed.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.SQL(ctx, "CREATE TABLE t(a)"); err != nil {
		t.Fatal(err)
	}
	// run calls f with a client of a fresh hung endpoint and the live node,
	// so that every call starts at the hung one.
	run := func(t *testing.T, f func(o *client.Object) error, opts ...client.Option) error {
		hung := startHung(t)
		opts = append([]client.Option{client.WithAttemptTimeout(500 * time.Millisecond), client.WithTimeout(callTimeout)}, opts...)
		c := newClientAt(t, []string{hung.url, shared.url}, opts...)
		start := time.Now()
		err := f(c.Namespace("t").Object(seed.Name()))
		if d := time.Since(start); d >= callTimeout {
			t.Fatalf("took %v, the whole call timeout", d)
		}
		if hung.requests.Load() == 0 {
			t.Fatal("the request never reached the hung endpoint")
		}
		return err
	}
	t.Run("read", func(t *testing.T) {
		t.Parallel()
		var s string
		if err := run(t, func(o *client.Object) error { return o.Get(ctx, "k", &s) }); err != nil || s != "v" {
			t.Fatalf("Get = %q, %v", s, err)
		}
	})
	t.Run("query", func(t *testing.T) {
		t.Parallel()
		if err := run(t, func(o *client.Object) error { _, err := o.Query(ctx, "SELECT count(*) FROM t"); return err }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("keyed write", func(t *testing.T) {
		t.Parallel()
		if err := run(t, func(o *client.Object) error {
			_, err := o.Put(ctx, "keyed", 1, client.IdempotencyKey("hung-keyed"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := run(t, func(o *client.Object) error { _, err := o.Put(ctx, "generated", 1); return err }, client.WithIdempotency()); err != nil {
			t.Fatal(err)
		}
		var n int
		for _, k := range []string{"keyed", "generated"} {
			if err := seed.Get(ctx, k, &n); err != nil || n != 1 {
				t.Fatalf("%s = %d, %v", k, n, err)
			}
		}
	})
	t.Run("unkeyed write", func(t *testing.T) {
		t.Parallel()
		err := run(t, func(o *client.Object) error { _, err := o.Put(ctx, "unkeyed", 1); return err })
		var ce *client.Error
		if !errors.Is(err, client.ErrCommitUnknown) || !errors.As(err, &ce) || ce.Status != 0 || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unkeyed write to a hung endpoint = %v, want a client-side ErrCommitUnknown before the deadline", err)
		}
		// Not sent again: the live node never saw it.
		if err := seed.Get(ctx, "unkeyed", new(int)); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("Get of the unkeyed write = %v, want ErrNotFound", err)
		}
	})
}

// TestHungDial: a connection that never comes (a dial into a black hole)
// is cut short by the attempt timeout, and since nothing was sent, even an
// unkeyed write goes on to the next endpoint.
func TestHungDial(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	hole := deadAddr(t)[len("http://"):]
	var dials atomic.Int32
	d := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == hole {
			dials.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return d.DialContext(ctx, network, addr)
	}}}
	c := newClientAt(t, []string{"http://" + hole, shared.url}, client.WithHTTPClient(hc),
		client.WithAttemptTimeout(300*time.Millisecond), client.WithTimeout(10*time.Second))
	o := object(t, c)
	if _, err := o.Put(ctx, "k", 1); err != nil || dials.Load() != 1 {
		t.Fatalf("unkeyed Put past a hung dial = %v (%d dials into the hole)", err, dials.Load())
	}
}
