package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outcomes of a recorded operation.
const (
	// OutcomeOK: the server answered success; the result is in the output.
	OutcomeOK = "ok"
	// OutcomeFailed: definitely not applied. Either the server refused the
	// request before proposing anything (4xx, 503 unavailable, a connection
	// that was never opened), or a CAS's precondition did not hold (a 412, or
	// the CAS's read found another value), which is a definite result.
	OutcomeFailed = "failed"
	// OutcomeUnknown: a write that may or may not have been applied (504
	// commit_unknown, another 5xx, a transport error or timeout after the
	// request was sent). Porcupine must treat it as possibly applied at any
	// time after its call.
	OutcomeUnknown = "unknown"
)

// Operation kinds.
const (
	OpGet  = "get"
	OpPut  = "put"
	OpCAS  = "cas"
	OpIncr = "incr"
)

// Input is what an operation asked for. Object and Key together name the
// register.
type Input struct {
	Op       string `json:"op"`
	Object   string `json:"object"`
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`    // put, cas: the value written
	Expected string `json:"expected,omitempty"` // cas: the value required ("" = missing)
	By       int64  `json:"by,omitempty"`       // incr
}

// Output is how an operation ended.
type Output struct {
	Outcome string `json:"outcome"`
	// Value is, for a get, the value read ("" when the key is missing); for a
	// CAS that failed because its read found another value, that value.
	Value string `json:"value,omitempty"`
	// Observed marks a failed CAS whose Value is the value its read found.
	Observed bool `json:"observed,omitempty"`
	// Count is the counter's value after an acknowledged incr.
	Count int64 `json:"count,omitempty"`
}

// Record is one operation of the history, with what the client saw.
type Record struct {
	ID     int `json:"id"`
	Client int `json:"client"` // the logical client (workload goroutine)
	// Stream is porcupine's ClientId: a client gets a new stream after an
	// operation with an unknown outcome, which stays open forever, so that
	// each stream is sequential (as etcd's robustness tests do).
	Stream int    `json:"stream"`
	Input  Input  `json:"input"`
	Output Output `json:"output"`
	// Call and Return are nanoseconds since the recorder started, read at
	// the client. For an unknown outcome Return is when the client gave up;
	// the checker moves it past every other event.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Refused marks a failed operation that had no effect and tells nothing
	// about the state (an error answer, not a CAS mismatch); the checker
	// leaves it out.
	Refused  bool   `json:"refused,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Status   int    `json:"status,omitempty"`
	Code     string `json:"code,omitempty"`
	Err      string `json:"error,omitempty"`
	Final    bool   `json:"final,omitempty"` // a read of the final state, after traffic
}

// Recorder collects the history of every client. Safe for concurrent use.
type Recorder struct {
	start time.Time

	mu      sync.Mutex
	records []Record
	streams int
}

// NewRecorder starts a history; its clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the recorder's clock: monotonic nanoseconds since it started.
func (r *Recorder) Now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *Recorder) newStream() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streams++
	return r.streams - 1
}

func (r *Recorder) add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.ID = len(r.records)
	r.records = append(r.records, rec)
}

// Records returns a copy of the history so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Counts tallies operations by outcome.
type Counts struct {
	OK, Failed, Unknown int
	Refused             int // of Failed: refused requests (not CAS mismatches)
}

func (c Counts) String() string {
	return fmt.Sprintf("%d ok, %d failed (%d refused, %d cas mismatches), %d unknown (total %d)",
		c.OK, c.Failed, c.Refused, c.Failed-c.Refused, c.Unknown, c.OK+c.Failed+c.Unknown)
}

// add counts one operation.
func (c *Counts) add(outcome string, refused bool) {
	switch outcome {
	case OutcomeOK:
		c.OK++
	case OutcomeFailed:
		c.Failed++
		if refused {
			c.Refused++
		}
	case OutcomeUnknown:
		c.Unknown++
	}
}

// CountRecords tallies records by outcome.
func CountRecords(records []Record) Counts {
	var c Counts
	for _, r := range records {
		c.add(r.Output.Outcome, r.Refused)
	}
	return c
}

// ClientConfig configures a Client. Zero means default.
type ClientConfig struct {
	Namespace string        // default "e2e"
	Timeout   time.Duration // per HTTP request; default 12 s (the server gives up at 10 s)
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Namespace == "" {
		c.Namespace = "e2e"
	}
	if c.Timeout == 0 {
		c.Timeout = 12 * time.Second
	}
	return c
}

// Client is one recording client. It is used by one goroutine at a time.
// It speaks HTTP itself rather than through package client on purpose: the
// history must hold every attempt as the server answered it, with its own
// call and return times, and a retry or failover inside the client would
// merge attempts into one operation whose outcome the checker could not
// classify.
// Client i prefers endpoint i mod n and moves to the next endpoint after a
// transport error.
type Client struct {
	id        int
	stream    int
	endpoints []string
	pref      int
	cfg       ClientConfig
	hc        *http.Client
	rec       *Recorder
	final     bool // marks its reads as reads of the final state
	// failures counts the transport errors in a row; Backoff waits
	// longer after each.
	failures int
}

// NewClient returns client id of rec over endpoints.
func NewClient(id int, endpoints []string, rec *Recorder, cfg ClientConfig) *Client {
	cfg = cfg.withDefaults()
	return &Client{
		id:        id,
		stream:    rec.newStream(),
		endpoints: endpoints,
		pref:      id % len(endpoints),
		cfg:       cfg,
		rec:       rec,
		hc: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
}

// Close releases the client's connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// answer is one HTTP exchange as the client saw it.
type answer struct {
	endpoint string
	status   int
	code     string // problem+json "code"
	header   http.Header
	body     []byte
	err      error
	sent     bool // false when the connection was never opened: nothing reached the server
}

func (c *Client) kvPath(obj, key string) string {
	return "/v1/ns/" + c.cfg.Namespace + "/objects/" + url.PathEscape(obj) + "/kv/" + url.PathEscape(key)
}

func (c *Client) txPath(obj string) string {
	return "/v1/ns/" + c.cfg.Namespace + "/objects/" + url.PathEscape(obj) + "/tx"
}

// do sends one request to endpoint. It never cancels a request on its own
// except by the client's timeout: cancelling writes would only make more
// outcomes unknown.
func (c *Client) do(endpoint, method, path string, body []byte, ctype string) answer {
	a := answer{endpoint: endpoint}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, endpoint+path, rd)
	if err != nil {
		a.err = err
		return a
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		a.err = err
		a.sent = !isDialError(err)
		return a
	}
	defer resp.Body.Close()
	a.sent = true
	a.status = resp.StatusCode
	a.header = resp.Header
	a.body, a.err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if a.status >= 300 {
		var p struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(a.body, &p) == nil {
			a.code = p.Code
		}
	}
	return a
}

// isDialError reports whether err happened while connecting, so that no
// byte of the request reached the server.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// writeOutcome classifies the answer to a write.
func writeOutcome(a answer) (outcome string, refused bool) {
	switch {
	case a.err != nil && a.status == 0:
		if !a.sent {
			return OutcomeFailed, true
		}
		return OutcomeUnknown, false
	case a.err != nil: // the status arrived, the body did not: trust the status
		if a.status >= 200 && a.status < 300 {
			return OutcomeOK, false
		}
		return OutcomeUnknown, false
	case a.status >= 200 && a.status < 300:
		return OutcomeOK, false
	case a.status == http.StatusServiceUnavailable && a.code == "unavailable":
		return OutcomeFailed, true // nothing was proposed
	case a.status >= 400 && a.status < 500:
		return OutcomeFailed, true
	default: // 504 commit_unknown, 503 commit_unknown, other 5xx
		return OutcomeUnknown, false
	}
}

func (c *Client) record(in Input, out Output, call int64, a answer, refused bool) {
	rec := Record{
		Client:   c.id,
		Stream:   c.stream,
		Input:    in,
		Output:   out,
		Call:     call,
		Return:   c.rec.Now(),
		Refused:  refused,
		Endpoint: a.endpoint,
		Status:   a.status,
		Code:     a.code,
		Final:    c.final,
	}
	if a.err != nil {
		rec.Err = a.err.Error()
	}
	c.rec.add(rec)
	if out.Outcome == OutcomeUnknown {
		c.stream = c.rec.newStream()
	}
	c.answered(a)
}

// answered notes how an exchange ended: after a transport error the
// client moves to the next endpoint and backs off.
func (c *Client) answered(a answer) {
	if a.err != nil && a.status == 0 {
		c.pref = (c.pref + 1) % len(c.endpoints)
		c.failures++
		return
	}
	c.failures = 0
}

// Backoff bounds for a client whose requests end in transport errors.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// Backoff waits before the next operation after transport errors in a
// row: 100 ms after the first, doubling up to 2 s. A node that is down
// (or a published port with nothing behind it) answers every request with
// one, and a write that was sent counts as maybe applied: a client that
// kept sending at full rate would fill the history with unknown outcomes,
// each of which the linearizability check must place anywhere after its
// call. It returns false once ctx has ended.
func (c *Client) Backoff(ctx context.Context) bool {
	if c.failures == 0 {
		return ctx.Err() == nil
	}
	return sleep(ctx, min(firstBackoff<<min(c.failures-1, 5), maxBackoff))
}

// kvValue decodes a value as the workloads write it: a JSON string.
func kvValue(a answer) string {
	if strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		var s string
		if json.Unmarshal(a.body, &s) == nil {
			return s
		}
	}
	return string(a.body)
}

// readKV reads one key, trying the next endpoint after a transport error.
// ok reports a definite answer: found or not found.
func (c *Client) readKV(obj, key, query string) (value, version string, found, ok bool, a answer) {
	n := len(c.endpoints)
	for i := 0; i < n; i++ {
		a = c.do(c.endpoints[(c.pref+i)%n], http.MethodGet, c.kvPath(obj, key)+query, nil, "")
		if a.err == nil || a.status != 0 {
			break
		}
	}
	switch {
	case a.err != nil:
		return "", "", false, false, a
	case a.status == http.StatusOK:
		return kvValue(a), strings.Trim(a.header.Get("ETag"), `"`), true, true, a
	case a.status == http.StatusNotFound && a.code == "not_found":
		return "", "", false, true, a
	}
	return "", "", false, false, a
}

// Get reads obj/key linearizably and records it. ok is false when no
// definite answer came back.
func (c *Client) Get(obj, key string) (value string, ok bool) {
	call := c.rec.Now()
	value, _, _, ok, a := c.readKV(obj, key, "")
	in := Input{Op: OpGet, Object: obj, Key: key}
	if !ok {
		c.record(in, Output{Outcome: OutcomeFailed}, call, a, true)
		return "", false
	}
	c.record(in, Output{Outcome: OutcomeOK, Value: value}, call, a, false)
	return value, true
}

// StaleGet reads obj/key from endpoint's local replica
// (?consistency=stale), unrecorded: such a read is not linearizable.
func (c *Client) StaleGet(endpoint, obj, key string) (value string, err error) {
	a := c.do(endpoint, http.MethodGet, c.kvPath(obj, key)+"?consistency=stale", nil, "")
	switch {
	case a.err != nil:
		return "", a.err
	case a.status == http.StatusOK:
		return kvValue(a), nil
	case a.status == http.StatusNotFound && a.code == "not_found":
		return "", nil
	}
	return "", fmt.Errorf("stale read answered %d %s", a.status, a.code)
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Put writes value (as a JSON string) to obj/key and records it.
func (c *Client) Put(obj, key, value string) string {
	call := c.rec.Now()
	a := c.do(c.endpoints[c.pref], http.MethodPut, c.kvPath(obj, key), jsonString(value), "application/json")
	outcome, refused := writeOutcome(a)
	c.record(Input{Op: OpPut, Object: obj, Key: key, Value: value}, Output{Outcome: outcome}, call, a, refused)
	return outcome
}

// CAS sets obj/key to newValue if it holds expected ("" = missing): it
// reads the key, and if the value is expected sends a tx conditioned on the
// version it read. It is recorded as one operation from the read's call.
// It returns the outcome and, when the read found another value, that
// value (observed).
func (c *Client) CAS(obj, key, expected, newValue string) (outcome, observed string) {
	return c.cas(obj, key, expected, newValue, false)
}

// Swap replaces whatever obj/key holds with newValue: a CAS whose expected
// value is the one its read finds, so only a write between the read and
// the tx makes it fail (412). It is recorded as a cas from that value.
func (c *Client) Swap(obj, key, newValue string) string {
	outcome, _ := c.cas(obj, key, "", newValue, true)
	return outcome
}

func (c *Client) cas(obj, key, expected, newValue string, swap bool) (outcome, observed string) {
	call := c.rec.Now()
	in := Input{Op: OpCAS, Object: obj, Key: key, Value: newValue, Expected: expected}
	cur, ver, found, ok, a := c.readKV(obj, key, "")
	if !ok {
		c.record(in, Output{Outcome: OutcomeFailed}, call, a, true)
		return OutcomeFailed, ""
	}
	if swap {
		in.Expected = cur
	} else if cur != expected || (expected == "" && found) {
		c.record(in, Output{Outcome: OutcomeFailed, Value: cur, Observed: true}, call, a, false)
		return OutcomeFailed, cur
	}
	cond := map[string]any{"key": key}
	if found {
		cond["version"] = ver
	} else {
		cond["exists"] = false
	}
	body, _ := json.Marshal(map[string]any{
		"if":  []any{cond},
		"ops": []any{map[string]any{"put": map[string]any{key: newValue}}},
	})
	a = c.do(c.endpoints[c.pref], http.MethodPost, c.txPath(obj), body, "application/json")
	if a.err == nil && a.status == http.StatusPreconditionFailed {
		c.record(in, Output{Outcome: OutcomeFailed}, call, a, false)
		return OutcomeFailed, ""
	}
	outcome, refused := writeOutcome(a)
	c.record(in, Output{Outcome: outcome}, call, a, refused)
	return outcome, ""
}

// Incr adds by to the counter at obj/key with a tx and records it.
func (c *Client) Incr(obj, key string, by int64) string {
	call := c.rec.Now()
	body, _ := json.Marshal(map[string]any{
		"ops": []any{map[string]any{"incr": map[string]any{"key": key, "by": by}}},
	})
	a := c.do(c.endpoints[c.pref], http.MethodPost, c.txPath(obj), body, "application/json")
	outcome, refused := writeOutcome(a)
	out := Output{Outcome: outcome}
	if outcome == OutcomeOK {
		var res struct {
			Results []struct {
				Value json.Number `json:"value"`
			} `json:"results"`
		}
		if err := json.Unmarshal(a.body, &res); err == nil && len(res.Results) == 1 {
			out.Count, _ = res.Results[0].Value.Int64()
		}
	}
	c.record(Input{Op: OpIncr, Object: obj, Key: key, By: by}, out, call, a, refused)
	return outcome
}

// ReadCounter reads the counter at obj/key linearizably, unrecorded.
func (c *Client) ReadCounter(obj, key string) (int64, error) {
	v, _, found, ok, a := c.readKV(obj, key, "")
	if !ok {
		return 0, fmt.Errorf("read answered %d %s %v", a.status, a.code, a.err)
	}
	if !found {
		return 0, nil
	}
	return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
}
