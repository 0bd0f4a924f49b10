package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The SQL workload: every object's SQLite database holds a table t that
// only grows. Each client inserts rows with ids of its own ("c3-17": client
// 3, its 17th operation) and reads the whole table back. A grow-only set is
// easy to judge: an acknowledged insert must be in every read that began
// after it returned and at the end, a row must come from an insert that
// was tried and not refused, and reads must never lose a row once one read
// has shown it.

// Operation kinds of the SQL workload.
const (
	OpSQLInsert = "sql-insert"
	OpSQLSelect = "sql-select"
)

// SQL statements of the workload.
const (
	sqlCreate = "CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, client INTEGER NOT NULL, seq INTEGER NOT NULL)"
	sqlInsert = "INSERT INTO t(id, client, seq) VALUES (?, ?, ?)"
	sqlSelect = "SELECT id FROM t ORDER BY id"
)

// SQLOp is one recorded operation of the SQL workload.
type SQLOp struct {
	ID     int    `json:"id"`
	Client int    `json:"client"`
	Op     string `json:"op"`
	Object string `json:"object"`
	// Row is the id an insert wrote.
	Row string `json:"row,omitempty"`
	// Rows are the ids an acknowledged select read, sorted.
	Rows    []string `json:"rows,omitempty"`
	Outcome string   `json:"outcome"`
	// Call and Return are in the scenario recorder's clock (nanoseconds).
	Call     int64  `json:"call"`
	Return   int64  `json:"return"`
	Refused  bool   `json:"refused,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Status   int    `json:"status,omitempty"`
	Code     string `json:"code,omitempty"`
	Err      string `json:"error,omitempty"`
	Final    bool   `json:"final,omitempty"` // a read of the final state, on one node
}

// SQLHistory collects the SQL workload's operations, timed by the
// scenario's recorder so that they line up with the faults. Safe for
// concurrent use.
type SQLHistory struct {
	rec *Recorder
	opLog[SQLOp]
}

// NewSQLHistory starts a SQL history on rec's clock.
func NewSQLHistory(rec *Recorder) *SQLHistory { return &SQLHistory{rec: rec} }

func (h *SQLHistory) add(op SQLOp) { h.append(func(id int) SQLOp { op.ID = id; return op }) }

// opLog is a history's list of operations, safe for concurrent use; each
// operation's ID is its position.
type opLog[T any] struct {
	mu  sync.Mutex
	ops []T
}

// append adds the operation made by op from its ID.
func (l *opLog[T]) append(op func(id int) T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op(len(l.ops)))
}

// Ops returns a copy of the history so far.
func (l *opLog[T]) Ops() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// SQLCounts tallies a SQL history.
type SQLCounts struct {
	Inserts, Selects Counts
}

func (c SQLCounts) String() string {
	return fmt.Sprintf("inserts %d ok, %d refused, %d unknown; selects %d ok, %d failed",
		c.Inserts.OK, c.Inserts.Refused, c.Inserts.Unknown, c.Selects.OK, c.Selects.Failed)
}

// CountSQL tallies ops by kind and outcome; final reads are left out.
func CountSQL(ops []SQLOp) SQLCounts {
	var c SQLCounts
	for _, op := range ops {
		if op.Final {
			continue
		}
		n := &c.Inserts
		if op.Op == OpSQLSelect {
			n = &c.Selects
		}
		n.add(op.Outcome, op.Refused)
	}
	return c
}

// SQLClient is one recording client of the SQL workload, used by one
// goroutine at a time. Like Client it prefers one endpoint and moves on
// after a transport error; reads are retried on the next endpoint, writes
// never.
type SQLClient struct {
	c *Client
	h *SQLHistory
}

// NewSQLClient returns client id of h over endpoints.
func NewSQLClient(id int, endpoints []string, h *SQLHistory, cfg ClientConfig) *SQLClient {
	return &SQLClient{c: NewClient(id, endpoints, h.rec, cfg), h: h}
}

// Close releases the client's connections.
func (s *SQLClient) Close() { s.c.Close() }

func (s *SQLClient) sqlPath(obj string) string {
	return "/v1/ns/" + s.c.cfg.Namespace + "/objects/" + url.PathEscape(obj) + "/sql"
}

func sqlBody(stmt string, params ...any) []byte {
	m := map[string]any{"sql": stmt}
	if len(params) > 0 {
		m["params"] = params
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *SQLClient) record(op SQLOp, a answer) {
	op.Client = s.c.id
	op.Return = s.h.rec.Now()
	op.Endpoint, op.Status, op.Code = a.endpoint, a.status, a.code
	if a.err != nil {
		op.Err = a.err.Error()
	}
	s.h.add(op)
	s.c.answered(a)
}

// Insert adds row (client, seq) to obj's table and records it.
func (s *SQLClient) Insert(obj, row string, client, seq int) string {
	call := s.h.rec.Now()
	a := s.c.do(s.c.endpoints[s.c.pref], http.MethodPost, s.sqlPath(obj), sqlBody(sqlInsert, row, client, seq), "application/json")
	outcome, refused := writeOutcome(a)
	s.record(SQLOp{Op: OpSQLInsert, Object: obj, Row: row, Outcome: outcome, Call: call, Refused: refused}, a)
	return outcome
}

// Select reads every id of obj's table linearizably and records it,
// trying the next endpoint after a transport error.
func (s *SQLClient) Select(obj string) ([]string, bool) {
	call := s.h.rec.Now()
	n := len(s.c.endpoints)
	var a answer
	for i := 0; i < n; i++ {
		a = s.c.do(s.c.endpoints[(s.c.pref+i)%n], http.MethodPost, s.sqlPath(obj), sqlBody(sqlSelect), "application/json")
		if a.err == nil || a.status != 0 {
			break
		}
	}
	return s.finishSelect(obj, call, a, false)
}

// SelectAt reads obj's table through endpoint only: linearizably (the
// node forwards to the shard's leader) or, with stale, from the node's own
// replica. A linearizable read is recorded as a final read; a stale one,
// which is not linearizable, is not recorded.
func (s *SQLClient) SelectAt(endpoint, obj string, stale bool) ([]string, error) {
	call := s.h.rec.Now()
	path := s.sqlPath(obj)
	if stale {
		path += "?consistency=stale"
	}
	a := s.c.do(endpoint, http.MethodPost, path, sqlBody(sqlSelect), "application/json")
	if stale {
		return parseSelect(a)
	}
	rows, ok := s.finishSelect(obj, call, a, true)
	if !ok {
		return nil, fmt.Errorf("select answered %d %s %v", a.status, a.code, a.err)
	}
	return rows, nil
}

func (s *SQLClient) finishSelect(obj string, call int64, a answer, final bool) ([]string, bool) {
	op := SQLOp{Op: OpSQLSelect, Object: obj, Call: call, Final: final}
	rows, err := parseSelect(a)
	if err != nil {
		op.Outcome, op.Refused = OutcomeFailed, true
		if a.err == nil && a.status/100 == 2 {
			op.Err = err.Error()
		}
		s.record(op, a)
		return nil, false
	}
	op.Outcome, op.Rows = OutcomeOK, rows
	s.record(op, a)
	return rows, true
}

// parseSelect reads the ids of a select's answer, sorted.
func parseSelect(a answer) ([]string, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("answered %d %s", a.status, a.code)
	}
	var res struct {
		Results []struct {
			Rows [][]any `json:"rows"`
		} `json:"results"`
	}
	if err := json.Unmarshal(a.body, &res); err != nil {
		return nil, fmt.Errorf("decoding the answer: %w", err)
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("%d result sets, want 1", len(res.Results))
	}
	rows := make([]string, 0, len(res.Results[0].Rows))
	for _, r := range res.Results[0].Rows {
		id, ok := "", len(r) == 1
		if ok {
			id, ok = r[0].(string)
		}
		if !ok {
			return nil, fmt.Errorf("row %v is not one text id", r)
		}
		rows = append(rows, id)
	}
	sort.Strings(rows)
	return rows, nil
}

// SQLTrafficConfig configures the SQL workload. Zero means default.
type SQLTrafficConfig struct {
	Clients      int           // default 4
	Objects      []string      // default "sql-a", "sql-b", "sql-c"
	Duration     time.Duration // default 30 s
	MaxOps       int           // default 4000
	OpsPerSecond float64       // per client; default 10
	ReadPercent  int           // default 30; the rest are inserts
	Seed         int64
	Client       ClientConfig // Namespace defaults to "e2e-sql"
}

func (c SQLTrafficConfig) withDefaults() SQLTrafficConfig {
	if c.Clients == 0 {
		c.Clients = 4
	}
	if len(c.Objects) == 0 {
		c.Objects = []string{"sql-a", "sql-b", "sql-c"}
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxOps == 0 {
		c.MaxOps = 4000
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 10
	}
	if c.ReadPercent == 0 {
		c.ReadPercent = 30
	}
	if c.Client.Namespace == "" {
		c.Client.Namespace = "e2e-sql"
	}
	return c
}

// SetupSQL creates the table of every object of the workload (CREATE TABLE
// IF NOT EXISTS, so a retry after an unknown outcome is harmless),
// retrying each until it succeeds or ctx ends.
func SetupSQL(ctx context.Context, endpoints []string, cfg SQLTrafficConfig) error {
	cfg = cfg.withDefaults()
	c := NewClient(0, endpoints, NewRecorder(), cfg.Client)
	defer c.Close()
	s := &SQLClient{c: c}
	for _, obj := range cfg.Objects {
		for attempt := 0; ; attempt++ {
			a := c.do(endpoints[attempt%len(endpoints)], http.MethodPost, s.sqlPath(obj), sqlBody(sqlCreate), "application/json")
			if a.err == nil && a.status == http.StatusOK {
				break
			}
			if !sleep(ctx, 250*time.Millisecond) {
				return fmt.Errorf("creating the table of %s: %w (last answer %d %s %v)", obj, ctx.Err(), a.status, a.code, a.err)
			}
		}
	}
	return nil
}

// RunSQLTraffic runs the SQL workload until ctx ends, the duration passes
// or MaxOps operations have started, and waits for every client's last
// operation. SetupSQL must have created the tables.
func RunSQLTraffic(ctx context.Context, endpoints []string, h *SQLHistory, cfg SQLTrafficConfig) {
	cfg = cfg.withDefaults()
	l := load{cfg.Clients, cfg.Duration, cfg.MaxOps, cfg.OpsPerSecond}
	l.run(ctx, endpoints, h.rec, cfg.Client, func(i int, c *Client) func(seq int) {
		s := &SQLClient{c: c, h: h}
		rng := rand.New(rand.NewSource(cfg.Seed + int64(i)*104729))
		return func(seq int) {
			obj := cfg.Objects[rng.Intn(len(cfg.Objects))]
			if rng.Intn(100) < cfg.ReadPercent {
				s.Select(obj)
			} else {
				s.Insert(obj, fmt.Sprintf("c%d-%d", i, seq), i, seq)
			}
		}
	})
}

// ReadSQLFinal reads every object's table linearizably through each
// endpoint in turn, once the cluster is quiet, retrying each read until it
// succeeds or ctx ends. The reads join the history as final reads. The
// answer maps node → object → ids.
func ReadSQLFinal(ctx context.Context, c Cluster, h *SQLHistory, cfg SQLTrafficConfig) (map[string]map[string][]string, error) {
	cfg = cfg.withDefaults()
	cl := NewSQLClient(len(c.Endpoints())*1000, c.Endpoints(), h, cfg.Client)
	defer cl.Close()
	out := map[string]map[string][]string{}
	for i, ep := range c.Endpoints() {
		node := c.Nodes()[i]
		out[node] = map[string][]string{}
		for _, obj := range cfg.Objects {
			for {
				rows, err := cl.SelectAt(ep, obj, false)
				if err == nil {
					out[node][obj] = rows
					break
				}
				if !sleep(ctx, 250*time.Millisecond) {
					return out, fmt.Errorf("no final read of %s through %s: %w (last: %v)", obj, node, ctx.Err(), err)
				}
			}
		}
	}
	return out, nil
}

// maxProblems bounds how many problems a verdict lists.
const maxProblems = 8

// problems collects a verdict's findings, keeping the first maxProblems.
type problems struct {
	list []string
	n    int
}

func (p *problems) addf(format string, args ...any) {
	p.n++
	if len(p.list) < maxProblems {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) String() string {
	s := strings.Join(p.list, "; ")
	if p.n > len(p.list) {
		s += fmt.Sprintf("; … %d more", p.n-len(p.list))
	}
	return s
}

// sqlInserts indexes the inserts of a history by object and row id.
func sqlInserts(ops []SQLOp) map[string]map[string]SQLOp {
	out := map[string]map[string]SQLOp{}
	for _, op := range ops {
		if op.Op != OpSQLInsert {
			continue
		}
		if out[op.Object] == nil {
			out[op.Object] = map[string]SQLOp{}
		}
		out[op.Object][op.Row] = op
	}
	return out
}

// CheckSQLDurability checks the final tables, as each node's linearizable
// read gave them (node → object → ids): every node gave the same rows,
// every acknowledged insert is there, and every row there comes from an
// insert that was tried and not refused. Inserts with an unknown outcome
// may or may not be there.
func CheckSQLDurability(ops []SQLOp, finals map[string]map[string][]string, objects []string) Verdict {
	v := Verdict{Name: "sql-durability"}
	inserts := sqlInserts(ops)
	var p problems
	nodes := make([]string, 0, len(finals))
	for n := range finals {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return Verdict{Name: v.Name, Detail: "no final reads"}
	}
	acked, unknown, unknownApplied, rows := 0, 0, 0, 0
	for _, obj := range objects {
		ref := finals[nodes[0]][obj]
		for _, n := range nodes[1:] {
			if !slices.Equal(finals[n][obj], ref) {
				p.addf("%s: linearizable reads through %s and %s differ (%d and %d rows)", obj, nodes[0], n, len(ref), len(finals[n][obj]))
			}
		}
		present := map[string]bool{}
		for _, id := range ref {
			present[id] = true
			ins, ok := inserts[obj][id]
			switch {
			case !ok:
				p.addf("%s holds row %q, which no client inserted", obj, id)
			case ins.Refused:
				p.addf("%s holds row %q, whose insert (op #%d) was answered %d %s %s: a refused insert was applied", obj, id, ins.ID, ins.Status, ins.Code, ins.Err)
			case ins.Outcome == OutcomeUnknown:
				unknownApplied++
			}
		}
		rows += len(ref)
		for _, ins := range inserts[obj] {
			switch ins.Outcome {
			case OutcomeOK:
				acked++
				if !present[ins.Row] {
					p.addf("%s: acknowledged insert of %q (op #%d, returned at %v) is lost", obj, ins.Row, ins.ID, time.Duration(ins.Return))
				}
			case OutcomeUnknown:
				unknown++
			}
		}
	}
	if p.n > 0 {
		v.Detail = p.String()
		return v
	}
	v.OK = true
	v.Detail = fmt.Sprintf("%d objects read through %d nodes: %d rows, every one of %d acknowledged inserts present, %d of %d unknown inserts applied, no row from nowhere",
		len(objects), len(nodes), rows, acked, unknownApplied, unknown)
	return v
}

// CheckSQLReads checks every acknowledged select (the final reads
// included) against the inserts, for each object:
//   - it saw only rows whose insert was tried, not refused, and called
//     before the select returned;
//   - it saw every row acknowledged, or shown by another select, before
//     it was called (real-time order: the table never shrinks);
//   - all selects of the object are ordered by inclusion: a table that
//     only grows cannot show x without y to one reader and y without x to
//     another.
func CheckSQLReads(ops []SQLOp) Verdict {
	v := Verdict{Name: "sql-reads"}
	inserts := sqlInserts(ops)
	reads := map[string][]SQLOp{}
	for _, op := range ops {
		if op.Op == OpSQLSelect && op.Outcome == OutcomeOK {
			reads[op.Object] = append(reads[op.Object], op)
		}
	}
	objs := make([]string, 0, len(reads))
	for o := range reads {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	var p problems
	total := 0
	for _, obj := range objs {
		rs := reads[obj]
		total += len(rs)
		for _, r := range rs {
			for _, id := range r.Rows {
				ins, ok := inserts[obj][id]
				switch {
				case !ok:
					p.addf("%s: select #%d saw row %q, which no client inserted", obj, r.ID, id)
				case ins.Refused:
					p.addf("%s: select #%d saw row %q, whose insert #%d was refused (%d %s)", obj, r.ID, id, ins.ID, ins.Status, ins.Code)
				case ins.Call > r.Return:
					p.addf("%s: select #%d (returned at %v) saw row %q, inserted by #%d called later, at %v", obj, r.ID, time.Duration(r.Return), id, ins.ID, time.Duration(ins.Call))
				}
			}
		}
		checkKnownBefore(obj, rs, inserts[obj], &p)
		checkChain(obj, rs, &p)
	}
	if p.n > 0 {
		v.Detail = p.String()
		return v
	}
	v.OK = true
	v.Detail = fmt.Sprintf("%d selects of %d objects: each saw every row acknowledged or shown before it began, nothing that was not inserted yet, and all are ordered by inclusion", total, len(objs))
	return v
}

// checkKnownBefore sweeps obj's selects in the order they were called:
// every row known to be present before a select was called — its insert
// returned ok, or a select that returned showed it — must be in its rows.
func checkKnownBefore(obj string, reads []SQLOp, inserts map[string]SQLOp, p *problems) {
	type event struct {
		at   int64
		rows []string
		by   string
	}
	var events []event
	for _, ins := range inserts {
		if ins.Outcome == OutcomeOK {
			events = append(events, event{ins.Return, []string{ins.Row}, fmt.Sprintf("insert #%d", ins.ID)})
		}
	}
	for _, r := range reads {
		events = append(events, event{r.Return, r.Rows, fmt.Sprintf("select #%d", r.ID)})
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })
	byCall := slices.Clone(reads)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	known := map[string]string{} // row → what showed it first
	next := 0
	for _, r := range byCall {
		for ; next < len(events) && events[next].at < r.Call; next++ {
			for _, id := range events[next].rows {
				if _, ok := known[id]; !ok {
					known[id] = events[next].by
				}
			}
		}
		if len(known) == 0 {
			continue
		}
		have := make(map[string]bool, len(r.Rows))
		for _, id := range r.Rows {
			have[id] = true
		}
		for id, by := range known {
			if !have[id] {
				p.addf("%s: select #%d (called at %v via %s) misses row %q, shown present before by %s", obj, r.ID, time.Duration(r.Call), r.Endpoint, id, by)
			}
		}
	}
}

// checkChain checks that obj's selects are ordered by inclusion.
func checkChain(obj string, reads []SQLOp, p *problems) {
	bySize := slices.Clone(reads)
	sort.SliceStable(bySize, func(i, j int) bool { return len(bySize[i].Rows) < len(bySize[j].Rows) })
	for i := 1; i < len(bySize); i++ {
		a, b := bySize[i-1], bySize[i]
		if missing := firstMissing(a.Rows, b.Rows); missing != "" {
			p.addf("%s: selects #%d and #%d disagree: #%d saw %q, which #%d (with %d rows against %d) did not", obj, a.ID, b.ID, a.ID, missing, b.ID, len(b.Rows), len(a.Rows))
		}
	}
}

// firstMissing returns an element of sorted a that sorted b lacks, or "".
func firstMissing(a, b []string) string {
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j == len(b) || b[j] != x {
			return x
		}
	}
	return ""
}

// CheckSQLReplicas waits until every shard's replicas have applied the
// same index, then reads every object's table from each node's own
// replica (?consistency=stale) and compares it with the final rows;
// repeated until they agree or timeout passes.
func CheckSQLReplicas(c Cluster, cfg SQLTrafficConfig, final map[string][]string, timeout time.Duration) Verdict {
	cfg = cfg.withDefaults()
	ccfg := cfg.Client
	ccfg.Timeout = 3 * time.Second
	cl := NewSQLClient(0, c.Endpoints(), NewSQLHistory(NewRecorder()), ccfg)
	defer cl.Close()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var diffs []string
		if err := AppliedEqual(c); err != nil {
			diffs = append(diffs, err.Error())
		} else {
			for i, ep := range c.Endpoints() {
				for _, obj := range cfg.Objects {
					rows, err := cl.SelectAt(ep, obj, true)
					switch {
					case err != nil:
						diffs = append(diffs, fmt.Sprintf("%s %s: %v", c.Nodes()[i], obj, err))
					case !slices.Equal(rows, final[obj]):
						diffs = append(diffs, fmt.Sprintf("%s %s: %d rows, the linearizable read %d (first difference %q)",
							c.Nodes()[i], obj, len(rows), len(final[obj]), firstDifference(rows, final[obj])))
					}
				}
			}
		}
		if len(diffs) == 0 {
			return Verdict{Name: "sql-replicas", OK: true, Detail: fmt.Sprintf("%d nodes × %d tables agree with the linearizable reads (after %v)",
				len(c.Endpoints()), len(cfg.Objects), time.Since(start).Round(time.Millisecond))}
		}
		if time.Now().After(deadline) {
			return Verdict{Name: "sql-replicas", Detail: fmt.Sprintf("after %v: %s", timeout, strings.Join(diffs, "; "))}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func firstDifference(a, b []string) string {
	if x := firstMissing(a, b); x != "" {
		return x
	}
	return firstMissing(b, a)
}

// AppliedEqual asks every node for GET /v1/cluster and reports, as an
// error, the first shard whose voters (as its leader lists them) have not
// all applied the same index; each node reports the applied index of the
// shards it hosts.
func AppliedEqual(c Cluster) error {
	applied := map[uint32]map[string]uint64{}
	voters := map[uint32][]string{}
	for i, ep := range c.Endpoints() {
		self := c.Nodes()[i]
		st, err := FetchStatus(context.Background(), ep)
		if err != nil {
			return fmt.Errorf("%s: %w", self, err)
		}
		for _, sh := range st.Shards {
			if sh.AppliedIndex == 0 {
				continue // a shard this node does not host
			}
			if applied[sh.ID] == nil {
				applied[sh.ID] = map[string]uint64{}
			}
			applied[sh.ID][self] = sh.AppliedIndex
			if sh.Leader != nil && *sh.Leader == self {
				voters[sh.ID] = sh.Voters
			}
		}
	}
	ids := make([]uint32, 0, len(applied))
	for id := range applied {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		vs, ok := voters[id]
		if !ok {
			return fmt.Errorf("shard %d: no node reports leading it", id)
		}
		var want uint64
		for _, v := range vs {
			if !slices.Contains(c.Nodes(), v) {
				continue // a voter outside the cluster under test cannot be asked
			}
			got, ok := applied[id][v]
			if want == 0 {
				want = got
			}
			if !ok || got != want {
				return fmt.Errorf("shard %d: the voters' applied indexes differ: %v (voters %v)", id, applied[id], vs)
			}
		}
	}
	return nil
}

// firstFinal returns the final rows as one node's read gave them (any
// node: CheckSQLDurability fails when they differ).
func firstFinal(finals map[string]map[string][]string) map[string][]string {
	nodes := make([]string, 0, len(finals))
	for n := range finals {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return nil
	}
	return finals[nodes[0]]
}
