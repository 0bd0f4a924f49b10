// Package api serves Cairn's HTTP API (API.md): names and limits checked
// before anything is proposed, requests turned into state machine commands
// or local reads, answers rendered as JSON and every error as problem+json
// with a stable code. It owns HTTP and nothing else: the storage semantics
// are objectstore's, Raft and placement are cluster's and placement's.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Backend is what the API needs of the node it serves.
type Backend interface {
	NodeID() string
	// ShardCount is the cluster's fixed number of shards.
	ShardCount() int
	// Propose commits an encoded fsm command on shard and returns the
	// state machine's response.
	Propose(ctx context.Context, shard uint32, cmd []byte) (*fsm.Response, error)
	// Read calls fn with a consistent view of shard once it is safe to
	// (linearizable unless stale).
	Read(ctx context.Context, shard uint32, stale bool, fn func(r pebble.Reader) error) error
	// ReadLive is Read with the live database instead of a snapshot, for
	// SQL reads (the SQL engine holds the object while it reads).
	ReadLive(ctx context.Context, shard uint32, stale bool, fn func(r pebble.Reader) error) error
	// SQL is the node's SQL engine.
	SQL() objectstore.SQL
	// Status describes the cluster as this node sees it.
	Status(ctx context.Context) (cluster.Status, error)
	// Route says where requests for shard go.
	Route(shard uint32) cluster.Route
	// Drain starts moving this node's replicas and leaderships away.
	Drain(ctx context.Context) error
	// RemoveNode declares a dead node gone for good.
	RemoveNode(id string) error
	// Ready reports whether every shard this node hosts has a leader.
	Ready() bool
}

// Limits of request bodies.
const (
	// maxTxBody bounds a tx or namespace request body.
	maxTxBody = 16 << 20
	// maxTxOps bounds the operations of one tx.
	maxTxOps = 128
)

// Config configures a Server.
type Config struct {
	Backend Backend
	Logger  *slog.Logger
	// Registry receives the API's metrics and is what /metrics serves; nil
	// means a fresh registry.
	Registry *prometheus.Registry
	// Tokens, if not nil, requires a bearer token on every /v1 request.
	Tokens *Tokens
	// RequestTimeout bounds how long a request may wait for Raft; default
	// 10 s.
	RequestTimeout time.Duration
	// Now is the proposer's clock; default time.Now.
	Now func() time.Time
	// MaxObjectBytes bounds each object's SQL database; 0 means 10 GiB.
	MaxObjectBytes int64
}

// DefaultMaxObjectBytes is the default size limit of an object's database.
const DefaultMaxObjectBytes = 10 << 30

// Server is the HTTP API of one node.
type Server struct {
	b       Backend
	log     *slog.Logger
	reg     *prometheus.Registry
	tokens  *Tokens
	timeout time.Duration
	now     func() time.Time
	maxObj  int64
	metrics *httpMetrics
	handler http.Handler
	client  *http.Client // for forwarding to other nodes
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: Config.Backend is required")
	}
	s := &Server{
		b:       cfg.Backend,
		log:     cfg.Logger,
		reg:     cfg.Registry,
		tokens:  cfg.Tokens,
		timeout: cfg.RequestTimeout,
		now:     cfg.Now,
		maxObj:  cfg.MaxObjectBytes,
	}
	if s.maxObj == 0 {
		s.maxObj = DefaultMaxObjectBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.timeout == 0 {
		s.timeout = 10 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	m, err := newHTTPMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.handler = http.HandlerFunc(s.serve)
	s.client = newForwardClient()
	return s, nil
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// request is one parsed request: its route, the names in its path and, for
// a request that concerns one shard, which one.
type request struct {
	route   string // the metrics label and the dispatch key
	ns      string
	obj     string
	key     string
	shard   uint32
	sharded bool   // the request concerns shard and is served by its leader
	body    []byte // the whole body, read up front so it can be forwarded
	idemKey string // the Idempotency-Key header, if any
	node    string // the node id of /v1/cluster/nodes/{id}
}

type handlerFunc func(http.ResponseWriter, *http.Request, *request) error

// Size limits of request bodies by route; other routes take none.
const (
	maxSmallBody = 64 << 10
	maxIdemKey   = 128
)

// serve routes one request. Paths are parsed by hand from the escaped path
// rather than by http.ServeMux, which cleans paths ("a//b" becomes "a/b") and
// would silently change keys that contain slashes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	// The token is checked before the path is judged, so that a client
	// without one learns nothing about which paths exist.
	req, parseErr := s.parse(r)
	r, err := s.authorize(r, req)
	if err == nil {
		err = parseErr
	}
	if err == nil {
		err = s.readRequest(r, req)
	}
	if err == nil {
		err = s.dispatch(rw, r, req)
	}
	if err != nil {
		s.writeProblem(rw, r, err)
	}
	s.metrics.observe(req.route, r.Method, rw.status, time.Since(start))
}

// parse splits the path into its route and names, validating each name.
func (s *Server) parse(r *http.Request) (*request, error) {
	p := r.URL.EscapedPath()
	req := &request{route: "unknown"}
	switch p {
	case "/healthz":
		req.route = "healthz"
		return req, nil
	case "/readyz":
		req.route = "readyz"
		return req, nil
	case "/metrics":
		req.route = "metrics"
		return req, nil
	case "/v1/cluster":
		req.route = "cluster"
		return req, nil
	case "/v1/ns", "/v1/ns/":
		req.route = "namespaces"
		return req, nil
	}
	if rest, ok := strings.CutPrefix(p, "/v1/internal/shards/"); ok {
		return s.parseInternal(req, rest)
	}
	if rest, ok := strings.CutPrefix(p, "/v1/cluster/nodes/"); ok {
		id, action, _ := strings.Cut(rest, "/")
		node, err := unescapeSegment(id, "the node id", codeInvalidName)
		if err != nil {
			return req, err
		}
		req.node = node
		switch action {
		case "":
			req.route = "cluster-node"
		case "drain":
			req.route = "cluster-node-drain"
		default:
			return req, newError(http.StatusNotFound, codeNotFound, "no such endpoint: "+truncate(p))
		}
		return req, nil
	}
	rest, ok := strings.CutPrefix(p, "/v1/ns/")
	if !ok {
		return req, newError(http.StatusNotFound, codeNotFound, "no such endpoint: "+truncate(p))
	}
	nsSeg, rest, _ := strings.Cut(rest, "/")
	ns, err := unescapeSegment(nsSeg, "the namespace", codeInvalidName)
	if err != nil {
		return req, err
	}
	if err := validNamespace(ns); err != nil {
		return req, err
	}
	req.ns = ns
	switch rest {
	case "":
		req.route = "namespace"
		shard, err := placement.NamespaceShard(ns, s.b.ShardCount())
		req.shard, req.sharded = shard, true
		return req, err
	case "unique-id":
		req.route = "unique-id"
		return req, nil
	case "objects", "objects/":
		req.route = "objects"
		return req, nil
	case "alarms":
		req.route = "alarms"
		return req, nil
	}
	rest, ok = strings.CutPrefix(rest, "objects/")
	if !ok {
		return req, newError(http.StatusNotFound, codeNotFound, "no such endpoint: "+truncate(p))
	}
	objSeg, rest, _ := strings.Cut(rest, "/")
	obj, err := unescapeSegment(objSeg, "the object name", codeInvalidName)
	if err != nil {
		return req, err
	}
	if err := validObjectName(obj); err != nil {
		return req, err
	}
	req.obj = obj
	shard, err := placement.ShardFor(ns, obj, s.b.ShardCount())
	if err != nil {
		return req, err
	}
	req.shard, req.sharded = shard, true
	switch rest {
	case "":
		req.route = "object"
		return req, nil
	case "kv":
		req.route = "list"
		return req, nil
	case "tx":
		req.route = "tx"
		return req, nil
	case "sql":
		req.route = "sql"
		return req, nil
	case "alarm":
		req.route = "alarm"
		return req, nil
	}
	keySeg, ok := strings.CutPrefix(rest, "kv/")
	if !ok {
		return req, newError(http.StatusNotFound, codeNotFound, "no such endpoint: "+truncate(p))
	}
	req.route = "kv"
	key, err := unescapeSegment(keySeg, "the key", codeInvalidKey)
	if err != nil {
		return req, err
	}
	if err := objectstore.ValidateKey(key); err != nil {
		return req, err
	}
	req.key = key
	return req, nil
}

// parseInternal parses /v1/internal/shards/{id}/{what}: the per-shard reads
// that listings spanning every shard are made of.
func (s *Server) parseInternal(req *request, rest string) (*request, error) {
	idSeg, what, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(idSeg, 10, 32)
	if err != nil || id >= uint64(s.b.ShardCount()) {
		return req, newError(http.StatusNotFound, codeNotFound, "no such shard: "+truncate(idSeg))
	}
	switch what {
	case "objects":
		req.route = "internal-objects"
	case "namespaces":
		req.route = "internal-namespaces"
	case "alarms":
		req.route = "internal-alarms"
	case "namespace-config":
		req.route = "internal-namespace-config"
	default:
		return req, newError(http.StatusNotFound, codeNotFound, "no such endpoint")
	}
	req.shard, req.sharded = uint32(id), true
	return req, nil
}

// readRequest reads what every handler needs of the request besides its
// path: the body, bounded by the route's limit, and the Idempotency-Key.
func (s *Server) readRequest(r *http.Request, req *request) error {
	if k := r.Header.Get(hdrIdempotent); k != "" {
		if len(k) > maxIdemKey || !printableASCII(k) {
			return badRequest(codeInvalidHeader, fmt.Sprintf("Idempotency-Key must be 1–%d printable ASCII characters", maxIdemKey))
		}
		req.idemKey = k
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	limit := int64(maxSmallBody)
	switch req.route {
	case "kv":
		limit = int64(objectstore.MaxEntryBytes - len(req.key))
	case "tx", "sql":
		limit = maxTxBody
	}
	var err error
	req.body, err = readBody(r, limit)
	return err
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// allowedMethods is the Allow header of a 405 answer, by route.
var allowedMethods = map[string]string{
	"healthz": "GET, HEAD", "readyz": "GET, HEAD", "metrics": "GET, HEAD", "cluster": "GET",
	"namespaces": "GET", "namespace": "GET, PUT", "unique-id": "POST", "objects": "GET",
	"alarms": "GET", "object": "DELETE", "list": "GET", "kv": "GET, HEAD, PUT, DELETE",
	"tx": "POST", "sql": "POST", "alarm": "GET, HEAD, PUT, DELETE",
	"internal-objects": "GET", "internal-namespaces": "GET", "internal-alarms": "GET",
	"internal-namespace-config": "PUT", "cluster-node": "DELETE", "cluster-node-drain": "POST",
}

// dispatch calls the handler of req's route for r's method; a request that
// concerns one shard is served by that shard's leader.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, req *request) error {
	var h handlerFunc
	switch req.route + " " + r.Method {
	case "healthz GET", "healthz HEAD":
		h = s.healthz
	case "readyz GET", "readyz HEAD":
		h = s.readyz
	case "metrics GET", "metrics HEAD":
		h = s.serveMetrics
	case "cluster GET":
		h = s.clusterStatus
	case "cluster-node DELETE":
		h = s.removeNode
	case "cluster-node-drain POST":
		h = s.drainNode
	case "namespaces GET":
		h = s.listNamespaces
	case "namespace GET":
		h = s.getNamespace
	case "namespace PUT":
		h = s.putNamespace
	case "unique-id POST":
		h = s.uniqueID
	case "objects GET":
		h = s.listObjects
	case "object DELETE":
		h = s.deleteAll
	case "list GET":
		h = s.listKV
	case "kv GET", "kv HEAD":
		h = s.getKV
	case "kv PUT":
		h = s.putKV
	case "kv DELETE":
		h = s.deleteKV
	case "tx POST":
		h = s.tx
	case "internal-objects GET":
		h = s.shardObjects
	case "internal-namespaces GET":
		h = s.shardNamespaces
	case "internal-alarms GET":
		h = s.shardAlarms
	case "internal-namespace-config PUT":
		h = s.shardNamespaceConfig
	case "sql POST":
		h = s.sql
	case "alarm GET", "alarm HEAD":
		h = s.getAlarm
	case "alarm PUT":
		h = s.putAlarm
	case "alarm DELETE":
		h = s.deleteAlarm
	case "alarms GET":
		h = s.listAlarms
	default:
		w.Header().Set("Allow", allowedMethods[req.route])
		return newError(http.StatusMethodNotAllowed, codeMethodNotAllowed, r.Method+" is not allowed on this endpoint")
	}
	if req.sharded {
		return s.serveShard(w, r, req, h)
	}
	return h(w, r, req)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ *request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": s.b.NodeID()})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ *request) error {
	if why := s.b.Route(0).OutOfCluster; why != "" {
		return newError(http.StatusServiceUnavailable, codeUnavailable, "this node is not part of the cluster: "+why)
	}
	if !s.b.Ready() {
		e := newError(http.StatusServiceUnavailable, codeUnavailable, "not every shard this node hosts has a leader yet")
		e.retryAfter = 1
		return e
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "node": s.b.NodeID()})
	return nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *request) error {
	promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

// ctx returns the request's context bounded by the server's timeout.
func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.timeout)
}

// propose encodes cmd, fixing the proposer's time and seed and the
// request's idempotency key, and commits it on shard. An answer replayed
// from an idempotency record is marked on w.
func (s *Server) propose(w http.ResponseWriter, r *http.Request, req *request, shard uint32, cmd *fsm.Command) (*fsm.Response, error) {
	cmd.Header.NowMillis = s.now().UnixMilli()
	cmd.Header.Seed = rand.Uint64()
	if cmd.Type == fsm.TypeTx {
		cmd.Header.IdempotencyKey = req.idemKey
		cmd.Header.MaxObjectBytes = s.maxObj
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	resp, err := s.b.Propose(ctx, shard, data)
	if err != nil {
		return nil, deadline(err)
	}
	if resp.Replayed {
		w.Header().Set(hdrReplayed, "true")
		s.metrics.replays.Inc()
	}
	if resp.Err != nil {
		return nil, resp.Err
	}
	return resp, nil
}

// read runs fn on shard's state with the consistency r asks for.
func (s *Server) read(r *http.Request, shard uint32, fn func(pebble.Reader) error) error {
	stale, err := staleParam(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	return deadline(s.b.Read(ctx, shard, stale, fn))
}

func deadline(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, cluster.ErrCommitUnknown) {
		return errDeadline
	}
	return err
}

// staleParam reads ?consistency=.
func staleParam(r *http.Request) (bool, error) {
	switch c := r.URL.Query().Get("consistency"); c {
	case "", "linearizable", "strong":
		return false, nil
	case "stale":
		return true, nil
	default:
		return false, badRequest(codeInvalidParameter, "consistency must be linearizable or stale, got "+strconv.Quote(truncate(c)))
	}
}

// readBody reads the whole body, refusing one larger than limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, codeTooLarge, "the body is "+strconv.FormatInt(r.ContentLength, 10)+" bytes; the limit is "+strconv.FormatInt(limit, 10))
	}
	var b []byte
	var err error
	if n := r.ContentLength; n >= 0 {
		// The usual case: the size is known (net/http stops the body there).
		b = make([]byte, n)
		_, err = io.ReadFull(r.Body, b)
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	if err != nil {
		return nil, badRequest(codeInvalidParameter, "reading the body: "+err.Error())
	}
	if int64(len(b)) > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, codeTooLarge, "the body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
	}
	return b, nil
}

// Header values shared by every answer (they are never modified).
var (
	hdrJSON    = []string{"application/json"}
	hdrProblem = []string{"application/problem+json"}
	hdrNoStore = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	h := w.Header()
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal"}`)
		h["Content-Type"] = hdrProblem
	} else {
		h["Content-Type"] = hdrJSON
	}
	h["Cache-Control"] = hdrNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(b) + 1)}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// statusWriter remembers the status code written, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
