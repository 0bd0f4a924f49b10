package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cairndb/cairn/sqlstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The harnesses of the SQL tests: real nodes with the SQL engine wired as
// cmd/node wires it (cluster.Config.NewSQL making a sqlstore.Store with the
// node's default -sql-open-dbs), the API in front of each, on loopback
// ports and temporary directories.

// sqlOpenDBs is cmd/node's default -sql-open-dbs.
const sqlOpenDBs = 256

// sqlOptions configures the nodes of a SQL harness.
type sqlOptions struct {
	tokens         *api.Tokens
	maxObjectBytes int64 // 0: the API's default
	raft           cluster.RaftConfig
}

// sqlNode is one node of a sqlCluster: its addresses survive restarts.
type sqlNode struct {
	id                             string
	dir                            string
	raftAddr, gossipAddr, httpAddr string
	url                            string

	mu   sync.Mutex
	node *cluster.Node
	hs   *http.Server
}

func (n *sqlNode) current() *cluster.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.node
}

// sqlCluster is an in-process cluster of nodes running SQL.
type sqlCluster struct {
	t      *testing.T
	shards int
	opts   sqlOptions
	net    *sqlFaultNet
	nodes  []*sqlNode
}

func sqlFastRaft() cluster.RaftConfig {
	return cluster.RaftConfig{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}
}

// startSQLCluster starts size nodes that bootstrap together and waits until
// every shard has a leader.
func startSQLCluster(t *testing.T, size, shards int, opts sqlOptions) *sqlCluster {
	t.Helper()
	c := &sqlCluster{t: t, shards: shards, opts: opts, net: newSQLFaultNet()}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	for i := 1; i <= size; i++ {
		n := &sqlNode{id: fmt.Sprintf("n%d", i), dir: t.TempDir(),
			raftAddr: "127.0.0.1:0", gossipAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0"}
		c.nodes = append(c.nodes, n)
		var join []string
		if i > 1 {
			join = []string{c.nodes[0].gossipAddr}
		}
		c.start(n, size, join)
	}
	c.waitReady()
	return c
}

// start starts (or restarts) n on its directory and addresses.
func (c *sqlCluster) start(n *sqlNode, expect int, join []string) {
	c.t.Helper()
	ln, err := net.Listen("tcp", n.httpAddr)
	if err != nil {
		c.t.Fatalf("%s: listen for HTTP on %s: %v", n.id, n.httpAddr, err)
	}
	n.httpAddr = ln.Addr().String()
	n.url = "http://" + n.httpAddr
	// A single node logs its errors to the test; a cluster's Raft logs an
	// error for every cut or closed link, too many to read.
	logger := slog.New(slog.DiscardHandler)
	if len(c.nodes) == 1 {
		logger = testlog.New(c.t, slog.LevelError).With("node", n.id)
	}
	reg := prometheus.NewRegistry()
	raftCfg := c.opts.raft
	if raftCfg.HeartbeatTimeout == 0 {
		raftCfg = sqlFastRaft()
	}
	node, err := cluster.New(cluster.Config{
		NodeID:          n.id,
		DataDir:         n.dir,
		RaftAddr:        n.raftAddr,
		GossipAddr:      n.gossipAddr,
		HTTPAddr:        n.httpAddr,
		Join:            join,
		BootstrapExpect: expect,
		Shards:          c.shards,
		Raft:            raftCfg,
		Gossip: cluster.GossipConfig{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
			SuspicionMult: 2, GossipInterval: 20 * time.Millisecond, PushPullInterval: 300 * time.Millisecond},
		Logger:     logger,
		Registerer: reg,
		Dial:       c.net.dialer(n.id),
		// As cmd/node's run.go does.
		NewSQL: func(*pebble.DB) (cluster.SQLEngine, error) {
			return sqlstore.New(sqlstore.Config{MaxOpen: sqlOpenDBs, Logger: logger})
		},
	})
	if err != nil {
		ln.Close()
		c.t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		ln.Close()
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.raftAddr, n.gossipAddr = node.RaftAddr(), node.GossipAddr()
	c.net.own(n.raftAddr, n.id)
	srv, err := api.New(api.Config{Backend: node, Logger: logger, Registry: reg, Tokens: c.opts.tokens, MaxObjectBytes: c.opts.maxObjectBytes})
	if err != nil {
		c.t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	n.mu.Lock()
	n.node, n.hs = node, hs
	n.mu.Unlock()
}

// stop closes n's API and node: to the others, a crash.
func (c *sqlCluster) stop(n *sqlNode) {
	n.mu.Lock()
	node, hs := n.node, n.hs
	n.node, n.hs = nil, nil
	n.mu.Unlock()
	if node == nil {
		return
	}
	hs.Close()
	if err := node.Close(); err != nil {
		c.t.Errorf("close %s: %v", n.id, err)
	}
}

// restart starts a stopped node again on its old addresses.
func (c *sqlCluster) restart(n *sqlNode) {
	c.t.Helper()
	var join []string
	for _, o := range c.running() {
		if o != n {
			join = append(join, o.gossipAddr)
		}
	}
	c.start(n, len(c.nodes), join)
}

func (c *sqlCluster) running() []*sqlNode {
	var out []*sqlNode
	for _, n := range c.nodes {
		if n.current() != nil {
			out = append(out, n)
		}
	}
	return out
}

// sqlWaitFor polls cond every 10 ms until it holds or timeout passes.
func sqlWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *sqlCluster) waitReady() {
	c.t.Helper()
	sqlWaitFor(c.t, 30*time.Second, "every running node ready", func() bool {
		for _, n := range c.running() {
			if !n.current().Ready() {
				return false
			}
		}
		return true
	})
}

// leader waits until exactly one running node leads shard, every running
// member agrees, and returns it.
func (c *sqlCluster) leader(shard uint32) *sqlNode {
	c.t.Helper()
	var leader *sqlNode
	sqlWaitFor(c.t, 30*time.Second, fmt.Sprintf("an agreed leader of shard %d", shard), func() bool {
		leader = nil
		for _, n := range c.running() {
			if s := n.current().Shard(shard); s != nil && s.IsLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range c.running() {
			if s := n.current().Shard(shard); s != nil && s.Leader() != leader.id {
				return false
			}
		}
		return true
	})
	return leader
}

// sqlShardContents returns every key and value of shard in node's Pebble
// database (as cluster's shardContents does).
func sqlShardContents(t testing.TB, node *cluster.Node, shard uint32) [][2][]byte {
	t.Helper()
	lo, hi := objectstore.ShardSpan(shard)
	it, err := node.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ensureSameState waits until every running replica of shard has applied
// what its leader has, then requires the shard's Pebble span to be
// byte-identical on all of them. It returns the leader's contents.
func (c *sqlCluster) ensureSameState(shard uint32) [][2][]byte {
	c.t.Helper()
	leader := c.leader(shard)
	want := leader.current().Shard(shard).FSM().Applied()
	sqlWaitFor(c.t, 30*time.Second, fmt.Sprintf("shard %d applied %d everywhere", shard, want), func() bool {
		for _, n := range c.running() {
			if s := n.current().Shard(shard); s != nil && s.FSM().Applied() < want {
				return false
			}
		}
		return true
	})
	ref := sqlShardContents(c.t, leader.current(), shard)
	for _, n := range c.running() {
		if n == leader || n.current().Shard(shard) == nil {
			continue
		}
		got := sqlShardContents(c.t, n.current(), shard)
		if len(got) != len(ref) {
			c.t.Fatalf("shard %d: %s holds %d records, leader %s holds %d", shard, n.id, len(got), leader.id, len(ref))
		}
		for i := range got {
			if !bytes.Equal(got[i][0], ref[i][0]) || !bytes.Equal(got[i][1], ref[i][1]) {
				c.t.Fatalf("shard %d: %s differs from leader %s at record %d: key %x", shard, n.id, leader.id, i, got[i][0])
			}
		}
	}
	return ref
}

// sqlFaultNet cuts Raft links between chosen nodes (cluster's faultNet):
// dials between cut nodes fail and their open connections are closed.
type sqlFaultNet struct {
	mu    sync.Mutex
	owner map[string]string // raft address → node id
	cut   map[[2]string]bool
	conns map[string][]net.Conn
}

func newSQLFaultNet() *sqlFaultNet {
	return &sqlFaultNet{owner: map[string]string{}, cut: map[[2]string]bool{}, conns: map[string][]net.Conn{}}
}

func (f *sqlFaultNet) own(addr, id string) {
	f.mu.Lock()
	f.owner[addr] = id
	f.mu.Unlock()
}

func (f *sqlFaultNet) dialer(from string) func(string, string, time.Duration) (net.Conn, error) {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		f.mu.Lock()
		if to := f.owner[addr]; f.cut[[2]string{from, to}] {
			f.mu.Unlock()
			return nil, fmt.Errorf("faultnet: %s → %s is cut", from, to)
		}
		f.mu.Unlock()
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.conns[from] = append(f.conns[from], c)
		f.mu.Unlock()
		return c, nil
	}
}

// isolate cuts every Raft link between id and the others.
func (f *sqlFaultNet) isolate(id string, others []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range others {
		f.cut[[2]string{id, o}] = true
		f.cut[[2]string{o, id}] = true
	}
	for from, conns := range f.conns {
		kept := conns[:0]
		for _, c := range conns {
			if f.cut[[2]string{from, f.owner[c.RemoteAddr().String()]}] {
				c.Close()
			} else {
				kept = append(kept, c)
			}
		}
		f.conns[from] = kept
	}
}

func (f *sqlFaultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}

// newSQLEnv starts a single-node cluster of 4 shards with SQL and returns
// an env (helpers_test.go) for it.
func newSQLEnv(t *testing.T, opts sqlOptions) *env {
	t.Helper()
	c := startSQLCluster(t, 1, 4, opts)
	n := c.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.current().WaitReady(ctx); err != nil {
		t.Fatalf("node not ready: %v", err)
	}
	return &env{t: t, node: n.current(), url: n.url, c: &http.Client{Timeout: time.Minute}}
}

// stmt is one statement of a /sql body or an sql op of a tx.
type stmt struct {
	SQL    string `json:"sql"`
	Params []any  `json:"params,omitempty"`
}

func q(sql string, params ...any) stmt { return stmt{SQL: sql, Params: params} }

// batch is the body of a /sql batch.
func batch(stmts ...stmt) map[string]any { return map[string]any{"batch": stmts} }

// blobParam is a BLOB parameter (and how a BLOB cell comes back).
func blobParam(b []byte) map[string]string {
	return map[string]string{"valueBase64": base64.StdEncoding.EncodeToString(b)}
}

// sqlResultSet is one result set of a /sql answer.
type sqlResultSet struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	RowsRead    int64    `json:"rowsRead"`
	RowsWritten int64    `json:"rowsWritten"`
}

// sqlAnswer is the answer of POST …/sql.
type sqlAnswer struct {
	Results      []sqlResultSet `json:"results"`
	DatabaseSize int64          `json:"databaseSize"`
}

// postSQL sends body (a stmt, a batch or raw JSON) to obj's /sql.
func (e *env) postSQL(ns, obj string, body any, headers ...string) *resp {
	e.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.do("POST", objPath(ns, obj, "/sql"), b, append([]string{"Content-Type", "application/json"}, headers...)...)
}

// sqlOK sends body to /sql, wants 200 and decodes the answer strictly.
func (e *env) sqlOK(ns, obj string, body any, headers ...string) sqlAnswer {
	e.t.Helper()
	r := e.postSQL(ns, obj, body, headers...).want(e.t, http.StatusOK)
	return decodeSQLAnswer(e.t, r)
}

func decodeSQLAnswer(t testing.TB, r *resp) sqlAnswer {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q; body %s", ct, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var a sqlAnswer
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("sql answer: %v: %s", err, r.body)
	}
	for i, rs := range a.Results {
		if rs.Columns == nil || rs.Rows == nil {
			t.Fatalf("result %d has a null columns or rows, want arrays: %s", i, r.body)
		}
	}
	return a
}

// rowsJSON is a result set's rows as compact JSON.
func (rs sqlResultSet) rowsJSON() string {
	b, _ := json.Marshal(rs.Rows)
	return string(b)
}

// wantRows fails the test unless rs's rows are the JSON want.
func wantRows(t testing.TB, what string, rs sqlResultSet, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want %s: %v", what, want, err)
	}
	wb, _ := json.Marshal(w)
	var g any
	json.Unmarshal([]byte(rs.rowsJSON()), &g)
	gb, _ := json.Marshal(g)
	if string(gb) != string(wb) {
		t.Fatalf("%s: rows %s, want %s", what, gb, wb)
	}
}

// scalar returns the single cell of a one-row, one-column result as text.
func scalar(t testing.TB, rs sqlResultSet) string {
	t.Helper()
	if len(rs.Rows) != 1 || len(rs.Rows[0]) != 1 {
		t.Fatalf("want one cell, got rows %s", rs.rowsJSON())
	}
	switch v := rs.Rows[0][0].(type) {
	case json.Number:
		return v.String()
	case string:
		return v
	case nil:
		return "null"
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// query runs one read statement and returns its single result set.
func (e *env) query(ns, obj, sql string, params ...any) sqlResultSet {
	e.t.Helper()
	a := e.sqlOK(ns, obj, q(sql, params...))
	if len(a.Results) != 1 {
		e.t.Fatalf("%d result sets for one statement", len(a.Results))
	}
	return a.Results[0]
}

// shardOf is the shard of ns/obj in a cluster of shards shards.
func shardOf(t testing.TB, ns, obj string, shards int) uint32 {
	t.Helper()
	s, err := placement.ShardFor(ns, obj, shards)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appliedIndex reads shard's applied index from GET /v1/cluster.
func (e *env) appliedIndex(shard uint32) uint64 {
	e.t.Helper()
	r := e.do("GET", "/v1/cluster", nil).want(e.t, http.StatusOK)
	var st struct {
		Shards []struct {
			ID           uint32 `json:"id"`
			AppliedIndex uint64 `json:"appliedIndex"`
		} `json:"shards"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st.Shards {
		if s.ID == shard {
			return s.AppliedIndex
		}
	}
	e.t.Fatalf("shard %d not in /v1/cluster: %s", shard, r.body)
	return 0
}

// metricAppliedIndex reads cairn_shard_applied_index{shard} from /metrics.
func (e *env) metricAppliedIndex(shard uint32) uint64 {
	e.t.Helper()
	r := e.do("GET", "/metrics", nil).want(e.t, http.StatusOK)
	prefix := []byte(`cairn_shard_applied_index{shard="` + strconv.FormatUint(uint64(shard), 10) + `"} `)
	for _, line := range bytes.Split(r.body, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(string(rest), 64)
			if err != nil {
				e.t.Fatalf("metric line %q: %v", line, err)
			}
			return uint64(f)
		}
	}
	e.t.Fatalf("no cairn_shard_applied_index for shard %d in /metrics", shard)
	return 0
}

// objectListed reports whether GET /v1/ns/{ns}/objects lists obj.
func (e *env) objectListed(ns, obj string) bool {
	e.t.Helper()
	r := e.do("GET", "/v1/ns/"+ns+"/objects?limit=10000", nil).want(e.t, http.StatusOK)
	var out struct {
		Objects []struct {
			Name string `json:"name"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	return slices.ContainsFunc(out.Objects, func(o struct {
		Name string `json:"name"`
	}) bool {
		return o.Name == obj
	})
}

// wantResult fails the test unless raw, one sql result of a tx, has
// columns, the JSON rows and rowsWritten.
func wantResult(t testing.TB, what string, raw json.RawMessage, columns []string, rows string, written int64) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var rs sqlResultSet
	if err := dec.Decode(&rs); err != nil {
		t.Fatalf("%s: %v: %s", what, err, raw)
	}
	if !slices.Equal(rs.Columns, columns) || rs.RowsWritten != written {
		t.Fatalf("%s: %s, want columns %q and rowsWritten %d", what, raw, columns, written)
	}
	wantRows(t, what, rs, rows)
}

// raceBuild reports whether the test binary was built with -race, which
// makes the SQLite library (Go translated from WebAssembly) some 30 times
// slower.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
