package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of the options.
const (
	// DefaultTimeout bounds a whole call, its retries included, when the
	// context has no earlier deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxAttempts is how many attempts a call makes at most.
	DefaultMaxAttempts = 5
	// DefaultBackoff is the wait before the first retry; it doubles with
	// every further retry, up to DefaultMaxBackoff.
	DefaultBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the wait between two attempts (a Retry-After
	// of the server may ask for longer, and is honoured).
	DefaultMaxBackoff = 2 * time.Second
	// DefaultAttemptTimeout bounds how long one attempt waits for its
	// answer to begin. It is longer than the server's own bound on a
	// request (10 s waiting for Raft, then 503 or 504), so that a slow but
	// live node answers for itself; only a node that does not answer at
	// all runs into it.
	DefaultAttemptTimeout = 15 * time.Second

	// dialTimeout bounds a connection attempt of the client's own
	// transport: far below the attempt and call timeouts, so that an
	// endpoint that drops packets costs seconds, not the whole call.
	dialTimeout = 5 * time.Second

	userAgent = "cairn-go-client/1"
	// maxResponse bounds the answer the client reads: a list page holds at
	// most 8 MiB of values, a SQL result is bounded by the server.
	maxResponse = 256 << 20
)

// Client talks to a Cairn cluster over its HTTP API. It is safe for
// concurrent use; make one and share it.
type Client struct {
	endpoints   []*url.URL
	hc          *http.Client
	token       string
	timeout     time.Duration
	attempt     time.Duration // per-attempt bound on waiting for the answer
	maxAttempts int
	backoff     time.Duration
	maxBackoff  time.Duration
	autoIdem    bool
	// preferred is the index of the endpoint that answered last: calls
	// start there, so a failover sticks instead of every call paying for
	// the dead endpoint again.
	preferred atomic.Uint32
}

// Option configures a Client.
type Option func(*Client) error

// WithToken sends token as "Authorization: Bearer <token>" on every request.
func WithToken(token string) Option {
	return func(c *Client) error {
		if strings.ContainsAny(token, "\r\n") {
			return errors.New("client: WithToken: the token contains a line break")
		}
		c.token = token
		return nil
	}
}

// WithHTTPClient makes the requests with hc (its Transport, TLS settings,
// proxies) instead of the client's own, whose dial timeout is 5 s. hc's
// Timeout, if set, bounds every attempt, body included; prefer
// WithAttemptTimeout, WithTimeout or a context.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient: nil *http.Client")
		}
		c.hc = hc
		return nil
	}
}

// WithTimeout bounds every call, its retries included, to d unless the
// call's context ends sooner (default DefaultTimeout). 0 leaves calls bounded
// by their context alone.
func WithTimeout(d time.Duration) Option {
	return durationOption("WithTimeout", d, func(c *Client) { c.timeout = d })
}

// WithAttemptTimeout bounds how long one attempt waits for the server's
// answer to begin (its status line and headers; reading the body is bounded
// by the call alone), default DefaultAttemptTimeout. An attempt that runs
// into it is a failure like a broken connection: if nothing was sent yet,
// the call moves on to the next endpoint at once; if the request was sent,
// a read or a write with an Idempotency-Key is sent again to the next
// endpoint, and any other write fails with ErrCommitUnknown. 0 leaves
// attempts bounded by the call's deadline alone.
func WithAttemptTimeout(d time.Duration) Option {
	return durationOption("WithAttemptTimeout", d, func(c *Client) { c.attempt = d })
}

// durationOption is the option called name, which sets d (0 or more) with
// set.
func durationOption(name string, d time.Duration, set func(*Client)) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("client: %s: negative duration %v", name, d)
		}
		set(c)
		return nil
	}
}

// WithMaxAttempts sets how many attempts a call makes at most (default
// DefaultMaxAttempts); 1 turns retries off. Moving on to the next endpoint
// after a connection failure is not a retry (see the package doc).
func WithMaxAttempts(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("client: WithMaxAttempts: %d; at least 1", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithBackoff sets the wait before the first retry (doubling each time)
// and its cap (defaults DefaultBackoff and DefaultMaxBackoff).
func WithBackoff(first, max time.Duration) Option {
	return func(c *Client) error {
		if first <= 0 || max < first {
			return fmt.Errorf("client: WithBackoff(%v, %v): need 0 < first <= max", first, max)
		}
		c.backoff, c.maxBackoff = first, max
		return nil
	}
}

// WithIdempotency makes the client send a fresh Idempotency-Key with every
// write that does not carry one (option IdempotencyKey), so that writes too
// are retried after a lost answer: the server applies a keyed write at most
// once and answers a retry with the first answer. Each key costs the
// server a small record kept for 24 hours.
func WithIdempotency() Option {
	return func(c *Client) error {
		c.autoIdem = true
		return nil
	}
}

// New returns a client of the cluster reachable at endpoints: base URLs of
// nodes ("http://10.0.0.1:8080"; "10.0.0.1:8080" means http). Any node
// answers any request; the client sends each call to the endpoint that
// answered last and moves on to the next when one cannot be reached. New
// does no I/O.
func New(endpoints []string, opts ...Option) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("client: New: no endpoints")
	}
	c := &Client{
		timeout:     DefaultTimeout,
		attempt:     DefaultAttemptTimeout,
		maxAttempts: DefaultMaxAttempts,
		backoff:     DefaultBackoff,
		maxBackoff:  DefaultMaxBackoff,
	}
	for _, ep := range endpoints {
		u, err := parseEndpoint(ep)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, u)
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default transport's dial timeout (30 s) equals
		// DefaultTimeout: one black-holed endpoint would take the call.
		t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.MaxIdleConnsPerHost = 64
		c.hc = &http.Client{Transport: t}
	}
	return c, nil
}

func parseEndpoint(ep string) (*url.URL, error) {
	s := strings.TrimSpace(ep)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("client: endpoint %q: %w", ep, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: endpoint %q: want http(s)://host:port", ep)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Endpoints returns the endpoints the client was made with, normalized.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.endpoints))
	for i, u := range c.endpoints {
		out[i] = u.String()
	}
	return out
}

// CallOption adjusts one call. Each documents the calls it applies to; a
// call given one that does not apply to it fails with ErrInvalidCall without
// sending anything.
type CallOption func(*callOptions)

type callOptions struct {
	idemKey     string
	readOnly    bool
	stale       bool
	ifMatch     string
	ifNoneMatch string
	conditional bool // ifMatch or ifNoneMatch set
	used        []string
}

func (o *callOptions) note(name string) { o.used = append(o.used, name) }

// IdempotencyKey sends key (1–128 printable ASCII characters) as the
// write's Idempotency-Key: a repetition of the same write on the same
// object within 24 hours, by this or any client, returns the first answer
// and applies nothing again; the same key with a different request is
// ErrIdempotencyKeyReused. The client then also retries the write after a
// lost answer. Applies to every write.
func IdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idemKey = key; o.note("IdempotencyKey") }
}

// ReadOnly declares that a SQL statement or a transaction with SQL only
// reads, so the client may retry it like a GET. Applies to SQL, Batch and
// Tx.
//
// Statements the client can tell only read (each one a single SELECT,
// VALUES, WITH … SELECT, or PRAGMA without an argument) make a read with or
// without the declaration, sent without an Idempotency-Key. For others the
// client cannot check it; to keep a mistaken declaration harmless it sends
// the call with a generated Idempotency-Key, so a retry never applies a
// write twice.
func ReadOnly() CallOption {
	return func(o *callOptions) { o.readOnly = true; o.note("ReadOnly") }
}

// Stale lets any replica answer a read from its local state, which is
// faster but may be behind the latest writes (?consistency=stale).
// Applies to reads: Get, GetBytes, List, All, GetAlarm, read-only Tx and
// SQL, and the namespace listings.
func Stale() CallOption {
	return func(o *callOptions) { o.stale = true; o.note("Stale") }
}

// IfVersion makes a Put, PutBytes or Delete apply only if the key exists
// at version v (If-Match); otherwise it fails with ErrPreconditionFailed.
func IfVersion(v Version) CallOption {
	return func(o *callOptions) {
		o.ifMatch, o.conditional = `"`+string(v)+`"`, true
		o.note("IfVersion")
	}
}

// IfExists makes a Put, PutBytes or Delete apply only if the key exists
// (If-Match: *).
func IfExists() CallOption {
	return func(o *callOptions) { o.ifMatch, o.conditional = "*", true; o.note("IfExists") }
}

// IfAbsent makes a Put or PutBytes apply only if the key does not exist
// (If-None-Match: *): Durable Objects' "put if absent".
func IfAbsent() CallOption {
	return func(o *callOptions) { o.ifNoneMatch, o.conditional = "*", true; o.note("IfAbsent") }
}

// IfNoneMatch makes a Get or GetBytes fail with ErrNotModified when the key
// is still at version v (If-None-Match), so a cached copy can be checked
// without moving the value; on Put, PutBytes and Delete it makes the write
// apply only if the key is not at version v.
func IfNoneMatch(v Version) CallOption {
	return func(o *callOptions) {
		o.ifNoneMatch, o.conditional = `"`+string(v)+`"`, true
		o.note("IfNoneMatch")
	}
}

// applyOptions applies opts, refusing any not in allowed.
func applyOptions(call string, opts []CallOption, allowed ...string) (callOptions, error) {
	var o callOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	for _, name := range o.used {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return o, invalidCall("client: %s does not take the option %s", call, name)
		}
	}
	return o, nil
}

// Option sets for the kinds of call.
var (
	readOpts     = []string{"Stale"}
	getOpts      = []string{"Stale", "IfNoneMatch"}
	writeOpts    = []string{"IdempotencyKey"}
	kvWriteOpts  = []string{"IdempotencyKey", "IfVersion", "IfExists", "IfAbsent", "IfNoneMatch"}
	deleteOpts   = []string{"IdempotencyKey", "IfVersion", "IfExists", "IfNoneMatch"}
	unknownOpts  = []string{"IdempotencyKey", "ReadOnly", "Stale"}
	noneAccepted = []string{}
)

// class says what a request does, which decides when it may be retried.
type class int

const (
	// classRead changes nothing: always safe to send again.
	classRead class = iota
	// classWrite changes state: sent again only with an Idempotency-Key.
	classWrite
	// classIdempotentWrite changes state, but sending it twice is the same
	// as once (PUT /v1/ns/{ns} replaces the whole configuration).
	classIdempotentWrite
)

// request is one call to the API.
type request struct {
	method      string
	path        string // escaped
	query       url.Values
	body        []byte
	contentType string
	header      http.Header
	class       class
	idemKey     string
	// noRetry makes the call one attempt: an answer, whatever it is, is
	// the result (/readyz). Unreachable endpoints are still skipped.
	noRetry bool
}

func (r *request) op() string { return r.method + " " + r.path }

// safe reports whether r may be sent again after an attempt whose outcome
// is unknown.
func (r *request) safe() bool {
	return r.class != classWrite || r.idemKey != ""
}

// response is an answer, read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// newRequest makes a request of class cls, settling its Idempotency-Key
// from the call's options.
func (c *Client) newRequest(method, path string, cls class, o callOptions) *request {
	r := &request{method: method, path: path, class: cls, header: http.Header{}}
	if o.stale {
		r.query = url.Values{"consistency": {"stale"}}
	}
	if o.ifMatch != "" {
		r.header.Set("If-Match", o.ifMatch)
	}
	if o.ifNoneMatch != "" {
		r.header.Set("If-None-Match", o.ifNoneMatch)
	}
	switch {
	case o.idemKey != "":
		r.idemKey = o.idemKey
	case cls == classWrite && (c.autoIdem || o.readOnly):
		r.idemKey = newIdempotencyKey()
	}
	if o.readOnly && cls == classWrite && r.idemKey != "" {
		// Declared read-only: the key makes a retry harmless either way.
		r.class = classRead
	}
	if r.idemKey != "" {
		r.header.Set("Idempotency-Key", r.idemKey)
	}
	return r
}

func (r *request) setQuery(name, value string) {
	if r.query == nil {
		r.query = url.Values{}
	}
	r.query.Set(name, value)
}

func (r *request) setJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalidCall("client: encoding the request: %w", err)
	}
	r.body, r.contentType = b, "application/json"
	return nil
}

func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "cairn-go-" + hex.EncodeToString(b[:])
}

// call sends r and decodes a 2xx JSON answer into out (unless out is nil).
func (c *Client) call(ctx context.Context, r *request, out any) (*response, error) {
	res, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(res.body))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return nil, fmt.Errorf("client: %s: decoding the answer: %w", r.op(), err)
		}
	}
	return res, nil
}

// do sends r until it has an answer it can return, following these rules
// (the package doc states them for users):
//
//   - A connection failure (nothing was sent) moves on to the next endpoint
//     at once; only when every endpoint failed in a row does it count as an
//     attempt and wait.
//   - 429 overloaded and 503 unavailable promise nothing was applied: any
//     request is sent again, after max(backoff, Retry-After); a 503 moves on
//     to the next endpoint.
//   - A request sent without an answer, a 504 commit_unknown and a 502/503/
//     504 that is not a Cairn problem are sent again, to the next endpoint,
//     only if r is safe (a read, or a write with an Idempotency-Key).
//   - Any other answer is the result.
//
// An attempt whose answer does not begin within c.attempt is cut short
// (roundTrip) and counts as a connection failure if nothing was sent yet,
// else as a request sent without an answer: a hung endpoint is skipped as
// a dead one is, but an unkeyed write sent to it is never sent again.
//
// At most c.maxAttempts attempts; never past the context's deadline.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	if c.timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
	}
	n := len(c.endpoints)
	i := int(c.preferred.Load()) % n
	attempts, unreachable := 0, 0
	maybeApplied := false // an earlier attempt of a write may have been applied
	var last error
	for {
		var wait time.Duration
		res, sent, err := c.roundTrip(ctx, c.endpoints[i], r)
		switch {
		case err == nil && res.status < 300:
			c.preferred.Store(uint32(i))
			return res, nil
		case err == nil:
			c.preferred.Store(uint32(i))
			e := errorFromResponse(r.op(), res)
			e.IdempotencyKey = r.idemKey
			switch {
			case e.Code == "overloaded" || e.Code == "unavailable":
				wait = e.RetryAfter
				if e.Code == "unavailable" {
					i = (i + 1) % n
				}
			case e.Code == "commit_unknown" || (e.Code == "" && (res.status == http.StatusBadGateway || res.status == http.StatusServiceUnavailable || res.status == http.StatusGatewayTimeout)):
				if r.class == classWrite {
					maybeApplied = true
				}
				if !r.safe() {
					if e.Code == "commit_unknown" {
						return nil, e // the server says so itself
					}
					// A proxy's error: it may have passed the write on.
					return nil, c.giveUp(r, e, maybeApplied, nil)
				}
				i = (i + 1) % n
			default:
				return nil, e
			}
			last, unreachable = e, 0
		case !sent:
			if ctx.Err() != nil {
				return nil, c.giveUp(r, last, maybeApplied, ctx.Err())
			}
			last = &Error{Code: "unavailable", Op: r.op(), Detail: "no endpoint could be reached; nothing was sent", Err: err}
			i = (i + 1) % n
			if unreachable++; unreachable%n != 0 {
				continue // try the next endpoint at once
			}
		default: // sent, no answer
			if r.class == classWrite {
				maybeApplied = true
			}
			if ctx.Err() != nil {
				return nil, c.giveUp(r, last, maybeApplied, ctx.Err())
			}
			last = &Error{Code: "unavailable", Op: r.op(), Detail: "the request was sent but no answer came back", Err: err}
			if !r.safe() {
				return nil, c.giveUp(r, last, maybeApplied, nil)
			}
			i, unreachable = (i+1)%n, 0
		}
		if attempts++; attempts >= c.maxAttempts || r.noRetry {
			return nil, c.giveUp(r, last, maybeApplied, nil)
		}
		wait = max(wait, c.backoffFor(attempts))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, c.giveUp(r, last, maybeApplied, context.DeadlineExceeded)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, c.giveUp(r, last, maybeApplied, ctx.Err())
		case <-t.C:
		}
	}
}

// giveUp is the error of a call that ends without a definite answer: a
// write that may have been applied is commit_unknown; anything else
// reports the last failure (and ctxErr, the context's end, if that is why).
func (c *Client) giveUp(r *request, last error, maybeApplied bool, ctxErr error) error {
	if maybeApplied {
		e := &Error{Code: "commit_unknown", Op: r.op(), IdempotencyKey: r.idemKey,
			Detail: "the write was sent but its outcome is unknown: it may or may not have been applied"}
		var se *Error
		switch {
		case errors.As(last, &se) && se.Status != 0:
			e.Err = se
		case errors.As(last, &se) && se.Err != nil:
			e.Err = se.Err
		}
		if ctxErr != nil {
			e.Err = errors.Join(e.Err, ctxErr)
		}
		return e
	}
	if last == nil {
		return &Error{Code: "unavailable", Op: r.op(), Detail: "the call ended before an answer", Err: ctxErr}
	}
	if ctxErr != nil {
		return fmt.Errorf("%w (%w)", last, ctxErr)
	}
	return last
}

// backoffFor is the wait after the n-th failed attempt: doubling from
// c.backoff, capped at c.maxBackoff, with "equal jitter" (half of it
// random) so that clients that failed together do not retry together.
func (c *Client) backoffFor(n int) time.Duration {
	d := c.backoff
	for i := 1; i < n && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	return d/2 + mrand.N(d/2+1)
}

// errAttemptTimeout ends an attempt that waited WithAttemptTimeout for its
// answer.
var errAttemptTimeout = errors.New("client: no answer within the attempt timeout")

// roundTrip makes one attempt at ep. sent reports whether the request may
// have reached the server: false only when it certainly did not (the
// connection could not be made, or failed before the request was written).
// The attempt waits at most c.attempt for the answer to begin.
func (c *Client) roundTrip(ctx context.Context, ep *url.URL, r *request) (res *response, sent bool, err error) {
	u := ep.String() + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	answered := func() bool { return true } // stops the attempt's timer
	if c.attempt > 0 {
		answered = time.AfterFunc(c.attempt, func() {
			cancel(fmt.Errorf("%w (%v)", errAttemptTimeout, c.attempt))
		}).Stop
	}
	// timedOut names the failure of an attempt that the timer ended (and
	// not the call's own context), unless the transport already does.
	timedOut := func(err error) error {
		if cause := context.Cause(actx); ctx.Err() == nil && errors.Is(cause, errAttemptTimeout) && !errors.Is(err, errAttemptTimeout) {
			return fmt.Errorf("%w: %w", cause, err)
		}
		return err
	}
	// getConn: the transport traces (an *http.Transport); gotConn: it has
	// a connection; wrote: the request went out on it.
	var getConn, gotConn, wrote atomic.Bool
	tctx := httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GetConn: func(string) { getConn.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(tctx, r.method, u, body)
	if err != nil {
		return nil, false, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.hc.Do(req)
	answered()
	if err != nil {
		// Without a trace (a custom RoundTripper) only a dial error proves
		// that nothing was sent; with one, so does a connection that never
		// came (a dial or TLS handshake the attempt's timer cut short).
		notSent := isDialError(err) || (getConn.Load() && !gotConn.Load()) || (gotConn.Load() && !wrote.Load())
		return nil, !notSent, timedOut(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, true, timedOut(err) // the timer fired as the answer began
	}
	if len(b) > maxResponse {
		return nil, true, fmt.Errorf("client: the answer is larger than %d bytes", maxResponse)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, true, nil
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// pathEscape escapes one path segment: a name or a key. "/" becomes %2F,
// so a key or object name may contain it.
func pathEscape(s string) string { return url.PathEscape(s) }
