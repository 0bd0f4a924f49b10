package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// mode is what the benchmark does; see usage in main.go.
type mode string

const (
	modeWrite     mode = "write"
	modeRead      mode = "read"
	modeStaleRead mode = "stale-read"
	modeMixed     mode = "mixed"
	modeTx        mode = "tx"
	modeIncr      mode = "incr"
	modeAlarms    mode = "alarms"
)

var modes = []mode{modeWrite, modeRead, modeStaleRead, modeMixed, modeTx, modeIncr, modeAlarms}

// opKind is one kind of request; latencies are kept per kind.
type opKind uint8

const (
	kindWrite opKind = iota
	kindRead
	kindStaleRead
	kindTx
	kindIncr
	numKinds
)

func (k opKind) String() string {
	return [...]string{"write", "read", "stale-read", "tx", "incr"}[k]
}

// target is one key of one object, by index.
type target struct{ obj, key int }

// request is one HTTP request to make against some endpoint.
type request struct {
	kind        opKind
	method      string
	path        string // escaped path (and query) below the endpoint's base URL
	contentType string
	body        []byte // nil for none
}

// workload makes the requests of a mode. It is shared by all workers and
// read-only while they run; each worker passes its own random source.
type workload struct {
	mode      mode
	namespace string
	objects   int // objects are named objPrefix+index, index in [0, objects)
	keys      int // keys are named keyPrefix+index, index in [0, keys)
	valueSize int
	txKeys    int
	readRatio float64
	objPrefix string
	keyPrefix string
	// pool is random bytes; a value is a random window of it, so values
	// differ without generating random bytes per request, and do not
	// compress.
	pool []byte
	// preloaded are the keys the read modes read, written by the preload
	// (sql-select: key is the row's id).
	preloaded []target
	// sqlStale makes sql-select read with ?consistency=stale (sql.go).
	sqlStale bool
}

func newWorkload(c config, seed uint64) *workload {
	w := &workload{
		mode:      c.mode,
		namespace: c.namespace,
		objects:   c.objects,
		keys:      c.keys,
		valueSize: c.valueSize,
		txKeys:    c.txKeys,
		readRatio: c.readRatio,
		objPrefix: "obj-",
		keyPrefix: "key-",
	}
	rng := rand.New(rand.NewPCG(seed, 0x706f6f6c))
	w.pool = make([]byte, c.valueSize+64<<10)
	for i := 0; i < len(w.pool); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(w.pool); j++ {
			w.pool[i+j] = byte(v >> (8 * j))
		}
	}
	return w
}

// needsPreload reports whether the mode reads keys that must exist first.
func (w *workload) needsPreload() bool {
	switch w.mode {
	case modeRead, modeStaleRead:
		return true
	case modeMixed:
		return w.readRatio > 0
	}
	return false
}

// next makes the next request of the mode.
func (w *workload) next(rng *rand.Rand) request {
	switch w.mode {
	case modeRead:
		return w.get(w.preloaded[rng.IntN(len(w.preloaded))], false)
	case modeStaleRead:
		return w.get(w.preloaded[rng.IntN(len(w.preloaded))], true)
	case modeMixed:
		if rng.Float64() < w.readRatio {
			return w.get(w.preloaded[rng.IntN(len(w.preloaded))], false)
		}
		return w.put(w.randomTarget(rng), rng)
	case modeTx:
		return w.tx(rng.IntN(w.objects), rng)
	case modeIncr:
		return w.incr(rng.IntN(w.objects))
	case modeSQLInsert, modeSQLSelect:
		return w.sqlNext(rng)
	default:
		return w.put(w.randomTarget(rng), rng)
	}
}

func (w *workload) randomTarget(rng *rand.Rand) target {
	return target{obj: rng.IntN(w.objects), key: rng.IntN(w.keys)}
}

func (w *workload) objectName(i int) string { return w.objPrefix + strconv.Itoa(i) }
func (w *workload) keyName(i int) string    { return w.keyPrefix + strconv.Itoa(i) }

func (w *workload) objectPath(obj int) string {
	return "/v1/ns/" + url.PathEscape(w.namespace) + "/objects/" + url.PathEscape(w.objectName(obj))
}

func (w *workload) kvPath(t target) string {
	return w.objectPath(t.obj) + "/kv/" + url.PathEscape(w.keyName(t.key))
}

// value is valueSize random bytes. The slice is shared: do not modify it.
func (w *workload) value(rng *rand.Rand) []byte {
	off := rng.IntN(len(w.pool) - w.valueSize + 1)
	return w.pool[off : off+w.valueSize : off+w.valueSize]
}

// put writes a random value to one key.
func (w *workload) put(t target, rng *rand.Rand) request {
	return request{kind: kindWrite, method: http.MethodPut, path: w.kvPath(t),
		contentType: "application/octet-stream", body: w.value(rng)}
}

// get reads one key, linearizably or from any replica's local state.
func (w *workload) get(t target, stale bool) request {
	if stale {
		return request{kind: kindStaleRead, method: http.MethodGet, path: w.kvPath(t) + "?consistency=stale"}
	}
	return request{kind: kindRead, method: http.MethodGet, path: w.kvPath(t)}
}

// tx puts txKeys distinct keys of one object in one transaction, without
// conditions: {"ops":[{"put":{"key-3":{"valueBase64":"…"},…}}]}. The keys
// are txKeys consecutive key indexes (modulo keys) from a random one.
func (w *workload) tx(obj int, rng *rand.Rand) request {
	enc := base64.StdEncoding
	buf := make([]byte, 0, 32+w.txKeys*(40+enc.EncodedLen(w.valueSize)))
	buf = append(buf, `{"ops":[{"put":{`...)
	first := rng.IntN(w.keys)
	for i := range w.txKeys {
		if i > 0 {
			buf = append(buf, ',')
		}
		name, _ := json.Marshal(w.keyName((first + i) % w.keys))
		buf = append(buf, name...)
		buf = append(buf, `:{"valueBase64":"`...)
		buf = enc.AppendEncode(buf, w.value(rng))
		buf = append(buf, `"}`...)
	}
	buf = append(buf, `}}]}`...)
	return request{kind: kindTx, method: http.MethodPost, path: w.objectPath(obj) + "/tx",
		contentType: "application/json", body: buf}
}

var incrBody = []byte(`{"ops":[{"incr":{"key":"n","by":1}}]}`)

// incr adds 1 to the counter "n" of one object, in a transaction.
func (w *workload) incr(obj int) request {
	return request{kind: kindIncr, method: http.MethodPost, path: w.objectPath(obj) + "/tx",
		contentType: "application/json", body: incrBody}
}

// preloadTargets picks n distinct keys (at most objects × keys), uniformly.
func (w *workload) preloadTargets(rng *rand.Rand, n int) []target {
	total := int64(w.objects) * int64(w.keys)
	if int64(n) >= total {
		n = int(total)
	}
	out := make([]target, 0, n)
	if int64(n)*2 >= total {
		// Dense: enumerate everything (at most 2n) and take a random n.
		for o := range w.objects {
			for k := range w.keys {
				out = append(out, target{o, k})
			}
		}
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out[:n]
	}
	seen := make(map[target]bool, n)
	for len(out) < n {
		t := w.randomTarget(rng)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// doer sends requests and reads their answers to the end, with fasthttp
// (fasthttp.go) or with net/http (-http-client).
type doer struct {
	fast    *fasthttp.Client // -http-client fast
	client  *http.Client     // -http-client net (when fast is nil)
	token   string
	timeout time.Duration
	// attempts counts requests sent, responses those that got an HTTP
	// answer (any status): no responses at all means the target is
	// unreachable.
	attempts, responses atomic.Int64
}

// newDoer makes the doer of a run: cfg.httpClient picks the client ("net"
// is net/http, anything else fasthttp), with keep-alive connections
// for cfg.clients workers and cfg.timeout per request.
func newDoer(cfg config) *doer {
	d := &doer{token: cfg.token, timeout: cfg.timeout}
	if cfg.httpClient == httpClientNet {
		d.client = newHTTPClient(cfg.clients, cfg.timeout)
	} else {
		d.fast = newFastClient(cfg.clients, cfg.timeout)
	}
	return d
}

// closeIdle closes the kept-alive connections not in use.
func (d *doer) closeIdle() {
	if d.fast != nil {
		d.fast.CloseIdleConnections()
	} else {
		d.client.CloseIdleConnections()
	}
}

// newHTTPClient makes the one client all workers share: keep-alive
// connections, enough idle ones per host for every worker, HTTP/1.1 only.
func newHTTPClient(clients int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // a benchmark measures the cluster, not a proxy
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no limit
		MaxIdleConnsPerHost:   clients + 16,
		MaxConnsPerHost:       0, // no limit
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		// A non-nil empty map turns HTTP/2 off, for https endpoints too.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// do sends rq to the endpoint base and reads the answer. The latency runs
// from just before sending to the end of the answer's body.
func (d *doer) do(ctx context.Context, base string, rq request) result {
	if d.fast != nil {
		return d.doFast(ctx, base, rq)
	}
	var body io.Reader = http.NoBody
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, base+rq.path, body)
	if err != nil {
		return result{class: "request: " + sanitizeClass(err.Error())}
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	d.attempts.Add(1)
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		return d.failed(ctx, start, 0, err)
	}
	d.responses.Add(1)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return d.failed(ctx, start, resp.StatusCode, err)
		}
		return result{latency: time.Since(start), status: resp.StatusCode}
	}
	// An error: keep the start of the body for its problem code, discard
	// the rest so the connection is reused.
	head, err := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return d.failed(ctx, start, resp.StatusCode, err)
	}
	return result{latency: time.Since(start), status: resp.StatusCode, class: httpErrorClass(resp.StatusCode, head)}
}

func (d *doer) failed(ctx context.Context, start time.Time, status int, err error) result {
	if ctx.Err() != nil {
		return result{canceled: true}
	}
	return result{latency: time.Since(start), status: status, class: transportClass(err)}
}
