package api_test

// End-to-end tests of "every object gets its own SQLite database,
// replicated, atomic with its key/value storage": the rules of API.md's
// "SQL" section through POST …/sql and the sql op of a tx, on real nodes
// with the SQL engine wired as cmd/node wires it (sql_helpers_test.go).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// TestSQLParamsAndResults binds a parameter of every JSON type and reads
// every SQLite type back, through /sql and through a tx's sql op.
func TestSQLParamsAndResults(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlp", "params"

	a := e.sqlOK(ns, obj, q(`CREATE TABLE v(i INTEGER, r REAL, s TEXT, b BLOB, n, yes INTEGER, no INTEGER)`))
	wantMembers(t, e.postSQL(ns, obj, q("SELECT 1")).json(t), "results", "databaseSize")
	if len(a.Results) != 1 || len(a.Results[0].Columns) != 0 || len(a.Results[0].Rows) != 0 {
		t.Fatalf("CREATE TABLE answered %+v, want one empty result set", a)
	}

	blob := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
	text := "héllo \"wörld\"\n\x01 ✓"
	a = e.sqlOK(ns, obj, q(`INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
		json.Number("9007199254740993"), 1.5, text, blobParam(blob), nil, true, false))
	rs := a.Results[0]
	if !slices.Equal(rs.Columns, []string{"i", "r", "s", "b", "n", "yes", "no"}) || rs.RowsWritten != 1 {
		t.Fatalf("RETURNING answered columns %q, rowsWritten %d", rs.Columns, rs.RowsWritten)
	}
	wantRows(t, "RETURNING", rs, fmt.Sprintf(`[[9007199254740993, 1.5, %s, {"valueBase64": %q}, null, 1, 0]]`,
		mustMarshal(t, text), base64.StdEncoding.EncodeToString(blob)))
	// The large integer must come back exactly, not through a float.
	if got := rs.Rows[0][0].(json.Number).String(); got != "9007199254740993" {
		t.Fatalf("integer cell %s", got)
	}
	wantRows(t, "types", e.query(ns, obj, `SELECT typeof(i), typeof(r), typeof(s), typeof(b), typeof(n), yes, no, length(b), length(s) FROM v`),
		fmt.Sprintf(`[["integer","real","text","blob","null",1,0,%d,%d]]`, len(blob), len([]rune(text))))

	// Bound without a table, on the read path: extremes, and numbers
	// written as floats stay REAL.
	rs = e.query(ns, obj, `SELECT ?, ?, ?, typeof(?), typeof(?), typeof(?), typeof(?), ?, ?`,
		json.Number("-9223372036854775808"), json.Number("9223372036854775807"), json.Number("-0.25"),
		json.Number("2e3"), json.Number("3.0"), json.Number("7"), "", "", blobParam(nil))
	wantRows(t, "extremes", rs, `[[-9223372036854775808, 9223372036854775807, -0.25, "real", "real", "integer", "text", "", {"valueBase64": ""}]]`)

	// The same through a tx: one result set per sql op, the same shape.
	res := e.tx(ns, obj, `{"ops":[
		{"sql":"INSERT INTO v(i, s, b) VALUES (?, ?, ?) RETURNING i, s, b","params":[7, "tx", {"valueBase64":"AAE="}]},
		{"sql":"SELECT count(*) AS n FROM v"},
		{"sql":"SELECT ?, ?, ?, ?","params":[true, false, null, 0.5]}]}`)
	if len(res.Results) != 3 {
		t.Fatalf("%d results", len(res.Results))
	}
	wantResult(t, "tx sql result 0", res.Results[0], []string{"i", "s", "b"}, `[[7,"tx",{"valueBase64":"AAE="}]]`, 1)
	var count sqlResultSet
	if err := json.Unmarshal(res.Results[1], &count); err != nil || !slices.Equal(count.Columns, []string{"n"}) {
		t.Fatalf("tx sql result 1: %s", res.Results[1])
	}
	wantRows(t, "tx count", count, `[[2]]`)
	var lits sqlResultSet
	json.Unmarshal(res.Results[2], &lits)
	wantRows(t, "tx literals", lits, `[[1, 0, null, 0.5]]`)

	// Parameters that cannot be bound are refused before anything runs.
	for name, body := range map[string]string{
		"object":              `{"sql":"SELECT ?","params":[{"a":1}]}`,
		"array":               `{"sql":"SELECT ?","params":[[1]]}`,
		"two members":         `{"sql":"SELECT ?","params":[{"valueBase64":"AA==","x":"y"}]}`,
		"bad base64":          `{"sql":"SELECT ?","params":[{"valueBase64":"!!"}]}`,
		"sql and batch":       `{"sql":"SELECT 1","batch":[{"sql":"SELECT 2"}]}`,
		"params beside batch": `{"batch":[{"sql":"SELECT 2"}],"params":[1]}`,
		"empty batch":         `{"batch":[]}`,
		"no statement":        `{}`,
		"empty statement":     `{"sql":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			e.at(t).postSQL(ns, obj, []byte(body)).wantProblem(t, http.StatusBadRequest, "invalid_parameter")
		})
	}
	e.postSQL(ns, obj, []byte(`{"sql":"SELECT 1","extra":1}`)).wantProblem(t, http.StatusBadRequest, "invalid_json")
	e.postSQL(ns, obj, []byte(`{"sql":"SELECT 1"}]`)).wantProblem(t, http.StatusBadRequest, "invalid_json")
	e.doJSON("POST", objPath(ns, obj, "/tx"), `{"ops":[{"sql":"SELECT ?","params":[{"a":1}]}]}`).wantProblem(t, http.StatusBadRequest, "invalid_parameter")
	// More parameters than the statement has is the statement's error.
	e.postSQL(ns, obj, q("SELECT ?", 1, 2)).wantProblem(t, http.StatusBadRequest, "sql_error")
	wantRows(t, "after refusals", e.query(ns, obj, "SELECT count(*) FROM v"), `[[2]]`)
}

// TestSQLBatchIsOneTransaction checks that a batch, and a tx that mixes KV
// and SQL, applies all of its statements or none.
func TestSQLBatchIsOneTransaction(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlb", "batch"

	a := e.sqlOK(ns, obj, batch(
		q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"),
		q("INSERT INTO t VALUES (1, 'a'), (2, 'b')"),
		q("UPDATE t SET v = v || '!' WHERE id = ?", 2),
		q("SELECT id, v FROM t ORDER BY id")))
	if len(a.Results) != 4 || a.Results[1].RowsWritten != 2 || a.Results[2].RowsWritten != 1 {
		t.Fatalf("batch answered %+v", a)
	}
	wantRows(t, "later statements see earlier ones", a.Results[3], `[[1,"a"],[2,"b!"]]`)
	const rows = `[[1,"a"],[2,"b!"]]`
	schema := func() string { return e.query(ns, obj, "SELECT name FROM sqlite_master ORDER BY name").rowsJSON() }
	schemaBefore := schema()

	for _, tc := range []struct {
		name, detail string
		b            map[string]any
	}{
		{"NOT NULL last", "NOT NULL constraint failed", batch(q("INSERT INTO t VALUES (3, 'c')"), q("UPDATE t SET v = 'changed' WHERE id = 1"), q("INSERT INTO t VALUES (4, NULL)"))},
		{"syntax error last", "syntax error", batch(q("INSERT INTO t VALUES (3, 'c')"), q("DELETE FROM t WHERE id = 2"), q("INSERT INTO t VALUES (5 'e')"))},
		{"duplicate key last", "UNIQUE constraint failed", batch(q("INSERT INTO t VALUES (6, 'f')"), q("INSERT INTO t VALUES (1, 'dup')"))},
		{"DDL, then no such table", "no such table", batch(q("CREATE TABLE u(x)"), q("INSERT INTO u VALUES (1)"), q("DROP TABLE t"), q("SELECT * FROM nope"))},
		{"user_version, then error", "no such column", batch(q("PRAGMA user_version = 42"), q("SELECT nope FROM t"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			p := e.postSQL(ns, obj, tc.b).wantProblem(t, http.StatusBadRequest, "sql_error")
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not carry SQLite's message %q", p.Detail, tc.detail)
			}
			if got := e.query(ns, obj, "SELECT id, v FROM t ORDER BY id").rowsJSON(); got != rows {
				t.Fatalf("rows after a failed batch: %s, want %s", got, rows)
			}
			if got := schema(); got != schemaBefore {
				t.Fatalf("schema after a failed batch: %s, want %s", got, schemaBefore)
			}
			wantRows(t, "user_version", e.query(ns, obj, "PRAGMA user_version"), `[[0]]`)
		})
	}

	// A tx with a KV put, an SQL insert and then a failing op rolls both back.
	e.tx(ns, obj, `{"ops":[{"put":{"word":"hello","keep":true}}]}`)
	for _, tc := range []struct {
		name   string
		fail   string
		status int
		code   string
	}{
		{"incr on a non-number", `{"incr":{"key":"word","by":1}}`, http.StatusConflict, "not_a_number"},
		{"failing SQL", `{"sql":"INSERT INTO t VALUES (1, 'dup')"}`, http.StatusBadRequest, "sql_error"},
		{"SQL limit", `{"sql":"SELECT zeroblob(2000001)"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"forbidden SQL", `{"sql":"PRAGMA journal_mode"}`, http.StatusForbidden, "sql_forbidden"},
	} {
		t.Run("tx/"+tc.name, func(t *testing.T) {
			e := e.at(t)
			body := `{"ops":[{"put":{"k":1}},{"sql":"INSERT INTO t VALUES (10, 'tx')"},{"delete":["keep"]},` + tc.fail + `]}`
			e.doJSON("POST", objPath(ns, obj, "/tx"), body).wantProblem(t, tc.status, tc.code)
			e.do("GET", kvPath(ns, obj, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")
			e.wantValue(ns, obj, "word", `"hello"`, "")
			e.wantValue(ns, obj, "keep", "true", "")
			if got := e.query(ns, obj, "SELECT id, v FROM t ORDER BY id").rowsJSON(); got != rows {
				t.Fatalf("rows after a failed tx: %s, want %s", got, rows)
			}
		})
	}
	// A failing condition applies nothing either.
	e.doJSON("POST", objPath(ns, obj, "/tx"), `{"if":[{"key":"word","exists":false}],"ops":[{"sql":"INSERT INTO t VALUES (10, 'tx')"}]}`).
		wantProblem(t, http.StatusPreconditionFailed, "precondition_failed")

	// The same tx without the failing op commits both, at one version.
	res := e.tx(ns, obj, `{"ops":[{"put":{"k":1}},{"sql":"INSERT INTO t VALUES (10, 'tx') RETURNING id"},{"get":["k"]},{"sql":"SELECT count(*) FROM t"}]}`)
	wantJSON(t, "get after put", res.Results[2], fmt.Sprintf(`{"entries":{"k":{"value":1,"version":%q}}}`, res.Version))
	wantResult(t, "count", res.Results[3], []string{"count(*)"}, `[[3]]`, 0)
	e.wantValue(ns, obj, "k", "1", res.Version)
	// Later writes build on the committed state, not on what a rolled-back
	// session left in the connection.
	wantRows(t, "after commit", e.sqlOK(ns, obj, batch(q("INSERT INTO t(v) VALUES ('next') RETURNING id"))).Results[0], `[[11]]`)
	wantRows(t, "final", e.query(ns, obj, "SELECT id, v FROM t ORDER BY id"), `[[1,"a"],[2,"b!"],[10,"tx"],[11,"next"]]`)
}

// TestSQLReadsMakeNoRaftEntry checks that a read-only batch is served
// without a Raft entry, and that a write makes exactly one.
func TestSQLReadsMakeNoRaftEntry(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlr", "reads"
	shard := shardOf(t, ns, obj, 4)
	// The first linearizable read of a leader's term commits a barrier
	// (cluster's readGate): a Raft entry the state machine never sees, so
	// it would leave a gap in the applied index. Read once before writing.
	e.sqlOK(ns, obj, q("SELECT 1"))
	e.sqlOK(ns, obj, batch(q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), q("INSERT INTO t(v) VALUES ('a'), ('b')"), q("CREATE INDEX t_v ON t(v)")))
	before := e.appliedIndex(shard)
	if m := e.metricAppliedIndex(shard); m != before {
		t.Fatalf("/metrics says applied index %d, /v1/cluster %d", m, before)
	}

	reads := []any{
		q("SELECT * FROM t ORDER BY id"),
		q("SELECT v FROM t WHERE id = ?", 1),
		batch(q("SELECT count(*) FROM t"), q("PRAGMA user_version"), q("PRAGMA table_info(t)"), q("PRAGMA index_list(t)"),
			q("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100) SELECT sum(x) FROM c"),
			q("SELECT random(), randomblob(4), datetime('now'), CURRENT_TIMESTAMP")),
		q("PRAGMA integrity_check"),
	}
	for i, r := range reads {
		e.sqlOK(ns, obj, r)
		e.sqlOK(ns, obj, r, "Idempotency-Key", fmt.Sprintf("read-%d", i))
		decodeSQLAnswer(t, e.do("POST", objPath(ns, obj, "/sql?consistency=stale"), mustMarshal(t, r)).want(t, http.StatusOK))
	}
	e.tx(ns, obj, `{"ops":[{"sql":"SELECT count(*) FROM t"},{"sql":"PRAGMA user_version"}]}`)
	// A read of an object that has no database creates none.
	e.sqlOK(ns, "never-written", q("SELECT 1"))
	if e.objectListed(ns, "never-written") {
		t.Fatal("a read created the object")
	}
	if after := e.appliedIndex(shard); after != before {
		t.Fatalf("read-only SQL moved the applied index from %d to %d", before, after)
	}
	if m := e.metricAppliedIndex(shard); m != before {
		t.Fatalf("read-only SQL moved cairn_shard_applied_index from %d to %d", before, m)
	}

	// One write, one entry: the tx's version is that entry's index.
	res := e.tx(ns, obj, `{"ops":[{"sql":"INSERT INTO t(v) VALUES ('c')"}]}`)
	if after := e.appliedIndex(shard); after != before+1 || mustUint(t, res.Version) != after {
		t.Fatalf("a write moved the applied index from %d to %d (version %s), want +1", before, after, res.Version)
	}
	// A batch that reads and then writes is one write.
	e.sqlOK(ns, obj, batch(q("SELECT count(*) FROM t"), q("DELETE FROM t WHERE v = 'c'")))
	if after, m := e.appliedIndex(shard), e.metricAppliedIndex(shard); after != before+2 || m != after {
		t.Fatalf("applied index %d (metric %d) after two writes, want %d", after, m, before+2)
	}
}

// TestSQLPragmasAndRules checks the allowed pragmas, and that what API.md
// forbids is refused with nothing applied.
func TestSQLPragmasAndRules(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlrules", "rules"
	e.sqlOK(ns, obj, batch(q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), q("CREATE INDEX t_v ON t(v)"), q("INSERT INTO t VALUES (1, 'a')")))

	// user_version, read and set, through /sql and a tx.
	wantRows(t, "user_version", e.query(ns, obj, "PRAGMA user_version"), `[[0]]`)
	e.sqlOK(ns, obj, q("PRAGMA user_version = 7"))
	wantRows(t, "user_version", e.query(ns, obj, "PRAGMA user_version"), `[[7]]`)
	e.tx(ns, obj, `{"ops":[{"sql":"PRAGMA main.user_version = 8"}]}`)
	wantRows(t, "user_version", e.query(ns, obj, "SELECT user_version FROM pragma_user_version"), `[[8]]`)

	// Allowed pragmas.
	tl := e.query(ns, obj, "PRAGMA table_list")
	if !strings.Contains(tl.rowsJSON(), `"t"`) {
		t.Fatalf("table_list %s lacks t", tl.rowsJSON())
	}
	ti := e.query(ns, obj, "PRAGMA table_info(t)")
	if len(ti.Rows) != 2 || ti.Rows[0][1] != "id" || ti.Rows[1][1] != "v" {
		t.Fatalf("table_info(t): %s", ti.rowsJSON())
	}
	wantRows(t, "pragma_table_info", e.query(ns, obj, "SELECT name, type FROM pragma_table_info('t') ORDER BY cid"), `[["id","INTEGER"],["v","TEXT"]]`)
	if il := e.query(ns, obj, "PRAGMA index_list(t)"); !strings.Contains(il.rowsJSON(), `"t_v"`) {
		t.Fatalf("index_list(t) %s lacks t_v", il.rowsJSON())
	}
	wantRows(t, "foreign_keys", e.query(ns, obj, "PRAGMA foreign_keys"), `[[1]]`)
	wantRows(t, "integrity_check", e.query(ns, obj, "PRAGMA integrity_check"), `[["ok"]]`)
	wantRows(t, "page_size", e.query(ns, obj, "PRAGMA page_size"), `[[4096]]`)
	e.sqlOK(ns, obj, q("PRAGMA index_info(t_v)"))
	e.sqlOK(ns, obj, q("PRAGMA foreign_key_list(t)"))
	e.sqlOK(ns, obj, q("PRAGMA quick_check"))

	rows := `[[1,"a"]]`
	schema := e.query(ns, obj, "SELECT type, name FROM sqlite_master ORDER BY name").rowsJSON()
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := e.query(ns, obj, "SELECT id, v FROM t ORDER BY id").rowsJSON(); got != rows {
			t.Fatalf("rows %s, want %s", got, rows)
		}
		if got := e.query(ns, obj, "SELECT type, name FROM sqlite_master ORDER BY name").rowsJSON(); got != schema {
			t.Fatalf("schema %s, want %s", got, schema)
		}
		wantRows(t, "user_version", e.query(ns, obj, "PRAGMA user_version"), `[[8]]`)
		wantRows(t, "foreign_keys", e.query(ns, obj, "PRAGMA foreign_keys"), `[[1]]`)
	}

	forbidden := []string{
		"PRAGMA journal_mode",
		"PRAGMA journal_mode = WAL",
		"PRAGMA journal_mode = DELETE",
		"PRAGMA foreign_keys = OFF",
		"PRAGMA synchronous = FULL",
		"PRAGMA cache_size = 10",
		"PRAGMA page_size = 8192",
		"PRAGMA locking_mode = EXCLUSIVE",
		"PRAGMA writable_schema = ON",
		"PRAGMA data_version",
		"PRAGMA database_list",
		"PRAGMA temp.user_version = 3",
		"SELECT * FROM pragma_data_version",
		"ATTACH DATABASE ':memory:' AS other",
		"ATTACH DATABASE 'other.db' AS other",
		"DETACH DATABASE other",
		"CREATE TABLE _cairn_x(a)",
		"CREATE TABLE _CAIRN_y(a)",
		"CREATE TABLE IF NOT EXISTS _cairn_meta(a)",
		"CREATE INDEX _cairn_i ON t(v)",
		"CREATE VIEW _cairn_v AS SELECT 1",
		"CREATE TRIGGER _cairn_tr AFTER INSERT ON t BEGIN SELECT 1; END",
		"ALTER TABLE t RENAME TO _cairn_t",
		"CREATE TEMP TABLE tt(a)",
		"CREATE TEMPORARY VIEW tv AS SELECT 1",
		"CREATE TABLE temp.tt(a)",
		"ANALYZE",
	}
	for _, sql := range forbidden {
		t.Run("forbidden/"+sql, func(t *testing.T) {
			e := e.at(t)
			e.postSQL(ns, obj, q(sql)).wantProblem(t, http.StatusForbidden, "sql_forbidden")
			// After a write in the same batch, and in a tx next to a KV put.
			e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (2, 'b')"), q(sql))).wantProblem(t, http.StatusForbidden, "sql_forbidden")
			e.doJSON("POST", objPath(ns, obj, "/tx"), fmt.Sprintf(`{"ops":[{"put":{"k":1}},{"sql":%s}]}`, mustMarshal(t, sql))).
				wantProblem(t, http.StatusForbidden, "sql_forbidden")
			e.do("GET", kvPath(ns, obj, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")
			unchanged(t)
		})
	}

	for _, sql := range []string{"BEGIN", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE TRANSACTION", "COMMIT", "END", "ROLLBACK",
		"SAVEPOINT s", "RELEASE s", "RELEASE SAVEPOINT s", "ROLLBACK TO s", "  /* hi */ begin"} {
		t.Run("transaction control/"+sql, func(t *testing.T) {
			e := e.at(t)
			p := e.postSQL(ns, obj, q(sql)).wantProblem(t, http.StatusBadRequest, "sql_transaction_control")
			if !strings.Contains(p.Detail, "already is one transaction") {
				t.Errorf("detail %q gives no hint", p.Detail)
			}
			e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (2, 'b')"), q(sql), q("INSERT INTO t VALUES (3, 'c')"))).
				wantProblem(t, http.StatusBadRequest, "sql_transaction_control")
			e.doJSON("POST", objPath(ns, obj, "/tx"), fmt.Sprintf(`{"ops":[{"sql":"INSERT INTO t VALUES (2, 'b')"},{"sql":%s}]}`, mustMarshal(t, sql))).
				wantProblem(t, http.StatusBadRequest, "sql_transaction_control")
			unchanged(t)
		})
	}
}

// TestSQLLimits checks the limits of API.md at and just past each boundary.
func TestSQLLimits(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqllim", "limits"
	e.sqlOK(ns, obj, q("CREATE TABLE t(id INTEGER PRIMARY KEY, v)"))
	count := func() string { return scalar(t, e.query(ns, obj, "SELECT count(*) FROM t")) }

	params := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	marks := func(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

	// 100 parameters (and 100 result columns) are fine; 101 are refused
	// before anything runs, even after a write in the same batch.
	rs := e.query(ns, obj, "SELECT "+marks(100), params(100)...)
	if len(rs.Columns) != 100 || len(rs.Rows[0]) != 100 {
		t.Fatalf("100 parameters: %d columns", len(rs.Columns))
	}
	e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (1, 'x')"), q("SELECT "+marks(101), params(101)...))).
		wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	// 101 placeholders with no parameters is SQLite's own limit.
	e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (1, 'x')"), q("SELECT "+marks(101)))).
		wantProblem(t, http.StatusBadRequest, "sql_error")
	e.postSQL(ns, obj, q("SELECT ?101", 1)).wantProblem(t, http.StatusBadRequest, "sql_error")

	// A statement of 100,000 bytes runs; one byte more is refused.
	stmtOf := func(n int) string {
		s := "INSERT INTO t(v) VALUES ('long') -- "
		return s + strings.Repeat("x", n-len(s))
	}
	a := e.sqlOK(ns, obj, q(stmtOf(100000)))
	if a.Results[0].RowsWritten != 1 {
		t.Fatalf("100,000-byte statement: %+v", a)
	}
	e.postSQL(ns, obj, q(stmtOf(100001))).wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (2, 'x')"), q(stmtOf(100001)))).wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	if c := count(); c != "1" {
		t.Fatalf("%s rows after refused statements, want 1", c)
	}

	// Strings and blobs: 2,000,001 bytes are refused as parameters; a row
	// of 2,000,000 is one byte past SQLite's limit with its header; a
	// 1,999,000-byte blob is stored.
	big := bytes.Repeat([]byte{0xab}, 2000001)
	e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (3, 'x')"), q("INSERT INTO t VALUES (4, ?)", blobParam(big)))).
		wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.postSQL(ns, obj, q("INSERT INTO t VALUES (4, ?)", string(bytes.Repeat([]byte("s"), 2000001)))).
		wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.postSQL(ns, obj, q("INSERT INTO t VALUES (4, ?)", blobParam(big[:2000000]))).
		wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.postSQL(ns, obj, q("INSERT INTO t VALUES (4, zeroblob(2000001))")).wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.postSQL(ns, obj, q("SELECT length(randomblob(2000001))")).wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	if c := count(); c != "1" {
		t.Fatalf("%s rows after refused values, want 1", c)
	}
	e.sqlOK(ns, obj, q("INSERT INTO t VALUES (5, ?)", blobParam(big[:1999000])))
	wantRows(t, "stored blob", e.query(ns, obj, "SELECT length(v), hex(substr(v, 1999000, 1)) FROM t WHERE id = 5"), `[[1999000,"AB"]]`)
	// 100 columns, not 101.
	cols := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "c%d", i)
		}
		return b.String()
	}
	e.sqlOK(ns, obj, q("CREATE TABLE w100("+cols(100)+")"))
	e.postSQL(ns, obj, q("CREATE TABLE w101("+cols(101)+")")).wantProblem(t, http.StatusBadRequest, "sql_error")
	// At most 128 statements in a batch.
	stmts := make([]stmt, 129)
	for i := range stmts {
		stmts[i] = q("INSERT INTO t(v) VALUES (?)", i)
	}
	e.postSQL(ns, obj, batch(stmts...)).wantProblem(t, http.StatusRequestEntityTooLarge, "too_large")
	e.sqlOK(ns, obj, batch(stmts[:128]...))
	if c := count(); c != "130" {
		t.Fatalf("%s rows, want 130", c)
	}
}

// TestSQLTimeout runs statements that never end: a write is stopped by its
// step budget, a read by its deadline, both as 400 sql_timeout with
// nothing applied. It does not run in parallel with the other tests: the
// write's budget is CPU work, and on a starved CPU it can outlast the
// request's 10 s deadline (see the 504 case below).
func TestSQLTimeout(t *testing.T) {
	if raceBuild() {
		t.Skip("the write's step budget is CPU work: under the race detector it runs for minutes")
	}
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqltime", "runaway"
	e.sqlOK(ns, obj, batch(q("CREATE TABLE t(v)"), q("INSERT INTO t VALUES (1)")))
	const forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "

	start := time.Now()
	r := e.postSQL(ns, obj, batch(q("INSERT INTO t VALUES (2)"), q(forever+"INSERT INTO t SELECT count(*) FROM c")))
	took := time.Since(start).Round(time.Millisecond)
	if r.status == http.StatusGatewayTimeout {
		// The budget outlasted the request's deadline: the client cannot
		// tell that the write failed. It did, as the rows below show.
		r.wantProblem(t, http.StatusGatewayTimeout, "commit_unknown")
		t.Logf("runaway write still running at the request deadline (%v): 504 commit_unknown instead of 400 sql_timeout", took)
		// Until its apply ends, it holds the object's database: wait for
		// that with a write queued behind it (a KV put makes the tx skip
		// the read that would wait for the database and time out).
		sqlWaitFor(t, 2*time.Minute, "the runaway write's apply to end", func() bool {
			return e.doJSON("POST", objPath(ns, obj, "/tx"), `{"ops":[{"put":{"probe":1}},{"sql":"SELECT 1"}]}`).status == http.StatusOK
		})
		t.Logf("its apply ended %v after it started", time.Since(start).Round(time.Millisecond))
	} else {
		r.wantProblem(t, http.StatusBadRequest, "sql_timeout")
		t.Logf("runaway write interrupted after %v", took)
	}
	start = time.Now()
	e.postSQL(ns, obj, q(forever+"SELECT count(*) FROM c")).wantProblem(t, http.StatusBadRequest, "sql_timeout")
	t.Logf("runaway read interrupted after %v", time.Since(start).Round(time.Millisecond))

	// Nothing was applied and the object goes on working.
	e.sqlOK(ns, obj, q("INSERT INTO t VALUES (3)"))
	wantRows(t, "after the timeouts", e.query(ns, obj, "SELECT v FROM t ORDER BY v"), `[[1],[3]]`)
}

// TestSQLObjectFull gives each object 1 MiB: inserts then fail with 507
// object_full, while reads and deletes keep working.
func TestSQLObjectFull(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	e := newSQLEnv(t, sqlOptions{maxObjectBytes: limit})
	const ns, obj = "sqlfull", "full"
	e.sqlOK(ns, obj, q("CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)"))
	stored := 0
	full := false
	for i := 0; i < 30 && !full; i++ {
		r := e.postSQL(ns, obj, q("INSERT INTO big(b) VALUES (randomblob(100000))"))
		switch r.status {
		case http.StatusOK:
			stored++
			if a := decodeSQLAnswer(t, r); a.DatabaseSize > limit {
				t.Fatalf("databaseSize %d past the limit %d", a.DatabaseSize, limit)
			}
		default:
			r.wantProblem(t, http.StatusInsufficientStorage, "object_full")
			full = true
		}
	}
	if !full || stored < 5 {
		t.Fatalf("%d inserts of 100 kB stored, full %v: want the 1 MiB database to fill after at least 5", stored, full)
	}
	t.Logf("%d rows of 100 kB fit in %d bytes", stored, limit)
	// A tx that would grow it fails the same way, KV put included.
	e.doJSON("POST", objPath(ns, obj, "/tx"), `{"ops":[{"put":{"k":1}},{"sql":"INSERT INTO big(b) VALUES (randomblob(100000))"}]}`).
		wantProblem(t, http.StatusInsufficientStorage, "object_full")
	e.do("GET", kvPath(ns, obj, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")

	wantRows(t, "reads work", e.query(ns, obj, "SELECT count(*), min(length(b)) FROM big"), fmt.Sprintf(`[[%d, 100000]]`, stored))
	a := e.sqlOK(ns, obj, q("DELETE FROM big WHERE id <= 3"))
	if a.Results[0].RowsWritten != 3 {
		t.Fatalf("DELETE on a full database: %+v", a)
	}
	// Freed pages take new rows without growing the file.
	e.sqlOK(ns, obj, q("INSERT INTO big(b) VALUES (randomblob(100000))"))
	e.sqlOK(ns, obj, q("PRAGMA user_version = 3"))
	wantRows(t, "after delete", e.query(ns, obj, "SELECT count(*) FROM big"), fmt.Sprintf(`[[%d]]`, stored-2))
	wantRows(t, "integrity", e.query(ns, obj, "PRAGMA integrity_check"), `[["ok"]]`)
}

// TestSQLDeleteAll checks that deleteAll removes the database with the
// keys, and that the object can start afresh.
func TestSQLDeleteAll(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqldel", "gone"
	if e.objectListed(ns, obj) {
		t.Fatal("listed before any write")
	}
	// A database alone makes the object exist.
	e.sqlOK(ns, obj, batch(q("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"), q("INSERT INTO t(v) VALUES ('a'), ('b')"), q("PRAGMA user_version = 3")))
	if !e.objectListed(ns, obj) {
		t.Fatal("an object with only a SQL database is not listed")
	}
	e.put(ns, obj, "k", []byte("v"), "text/plain")
	sqlSpanKeys := func() int {
		o := objectstore.Object{Shard: shardOf(t, ns, obj, 4), Namespace: ns, Name: obj}
		lo, hi := o.SQLSpan()
		it, err := e.node.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		return n
	}
	if sqlSpanKeys() == 0 {
		t.Fatal("no SQL pages in Pebble")
	}

	e.do("DELETE", objPath(ns, obj, ""), nil).want(t, http.StatusOK)
	a := e.sqlOK(ns, obj, batch(q("SELECT name FROM sqlite_master"), q("PRAGMA user_version")))
	wantRows(t, "sqlite_master", a.Results[0], `[]`)
	wantRows(t, "user_version", a.Results[1], `[[0]]`)
	if a.DatabaseSize != 0 {
		t.Fatalf("databaseSize %d after deleteAll", a.DatabaseSize)
	}
	e.do("GET", kvPath(ns, obj, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")
	if e.objectListed(ns, obj) {
		t.Fatal("the object is still listed after deleteAll")
	}
	if n := sqlSpanKeys(); n != 0 {
		t.Fatalf("%d SQL keys left in Pebble after deleteAll", n)
	}
	e.postSQL(ns, obj, q("SELECT * FROM t")).wantProblem(t, http.StatusBadRequest, "sql_error")

	// The object starts afresh: the same table can be created again.
	e.sqlOK(ns, obj, batch(q("CREATE TABLE t(id INTEGER PRIMARY KEY, w INTEGER)"), q("INSERT INTO t(w) VALUES (5)")))
	wantRows(t, "recreated", e.query(ns, obj, "SELECT * FROM t"), `[[1,5]]`)

	// deleteAll inside a tx: later sql ops see an empty database.
	res := e.tx(ns, obj, `{"ops":[
		{"sql":"INSERT INTO t(w) VALUES (6)"},
		{"put":{"k2":2}},
		{"deleteAll":{}},
		{"sql":"SELECT count(*) FROM sqlite_master"},
		{"sql":"CREATE TABLE fresh(x)"},
		{"sql":"INSERT INTO fresh VALUES (1)"}]}`)
	wantResult(t, "count after deleteAll", res.Results[3], []string{"count(*)"}, `[[0]]`, 0)
	wantRows(t, "schema", e.query(ns, obj, "SELECT name FROM sqlite_master"), `[["fresh"]]`)
	e.do("GET", kvPath(ns, obj, "k2"), nil).wantProblem(t, http.StatusNotFound, "not_found")
	wantRows(t, "integrity", e.query(ns, obj, "PRAGMA integrity_check"), `[["ok"]]`)
}

// TestSQLDatabaseSize checks that databaseSize is the file's size and
// grows with the data.
func TestSQLDatabaseSize(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlsize", "grows"
	if a := e.sqlOK(ns, obj, q("SELECT 1")); a.DatabaseSize != 0 {
		t.Fatalf("databaseSize %d of an object without a database", a.DatabaseSize)
	}
	prev := int64(0)
	for i := 0; i < 5; i++ {
		body := batch(q("CREATE TABLE IF NOT EXISTS t(b)"),
			q("INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 50) SELECT x FROM c)"),
			q("PRAGMA page_count"))
		a := e.sqlOK(ns, obj, body)
		pages, _ := strconv.ParseInt(scalar(t, a.Results[2]), 10, 64)
		if a.DatabaseSize <= prev || a.DatabaseSize != pages*4096 {
			t.Fatalf("round %d: databaseSize %d (before %d), page_count %d", i, a.DatabaseSize, prev, pages)
		}
		prev = a.DatabaseSize
	}
	if a := e.sqlOK(ns, obj, q("SELECT count(*) FROM t")); a.DatabaseSize != prev {
		t.Fatalf("a read reports databaseSize %d, the write %d", a.DatabaseSize, prev)
	}
}

// TestSQLReadonlyToken checks that a readonly token may read through SQL
// but not write.
func TestSQLReadonlyToken(t *testing.T) {
	t.Parallel()
	tokens, err := api.ParseTokens([]byte(`{"tokens":[{"token":"` + rwToken + `","role":"readwrite"},{"token":"` + roToken + `","role":"readonly"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	base := newSQLEnv(t, sqlOptions{tokens: tokens})
	rw, ro := base.as(rwToken), base.as(roToken)
	const ns, obj = "sqlauth", "ro"
	rw.sqlOK(ns, obj, batch(q("CREATE TABLE t(v)"), q("INSERT INTO t VALUES (1)"), q("PRAGMA user_version = 2")))

	wantRows(t, "read", ro.query(ns, obj, "SELECT v FROM t"), `[[1]]`)
	ro.sqlOK(ns, obj, batch(q("SELECT count(*) FROM t"), q("PRAGMA user_version"), q("PRAGMA table_info(t)")))
	ro.tx(ns, obj, `{"ops":[{"sql":"SELECT v FROM t"}]}`)
	for _, body := range []any{
		q("INSERT INTO t VALUES (2)"),
		q("PRAGMA user_version = 3"),
		q("CREATE TABLE u(x)"),
		batch(q("SELECT count(*) FROM t"), q("DELETE FROM t")),
	} {
		ro.postSQL(ns, obj, body).wantProblem(t, http.StatusForbidden, "forbidden")
	}
	ro.doJSON("POST", objPath(ns, obj, "/tx"), `{"ops":[{"sql":"UPDATE t SET v = 9"}]}`).wantProblem(t, http.StatusForbidden, "forbidden")
	// A failing read is the SQL error, with an Idempotency-Key too: a
	// readonly token wrote nothing whose first answer the log could hold.
	ro.postSQL(ns, obj, q("SELECT nope FROM t")).wantProblem(t, http.StatusBadRequest, "sql_error")
	ro.postSQL(ns, obj, q("SELECT nope FROM t"), "Idempotency-Key", "ro-read-1").wantProblem(t, http.StatusBadRequest, "sql_error")
	// A tx mixing sql with KV reads is a read too; one whose sql writes
	// is not.
	ro.tx(ns, obj, `{"ops":[{"get":["k"]},{"sql":"SELECT v FROM t"}]}`)
	ro.doJSON("POST", objPath(ns, obj, "/tx"), `{"ops":[{"get":["k"]},{"sql":"UPDATE t SET v = 9"}]}`).wantProblem(t, http.StatusForbidden, "forbidden")
	base.postSQL(ns, obj, q("SELECT 1")).wantProblem(t, http.StatusUnauthorized, "unauthorized")
	a := rw.sqlOK(ns, obj, batch(q("SELECT v FROM t"), q("PRAGMA user_version"), q("SELECT count(*) FROM sqlite_master")))
	wantRows(t, "rows", a.Results[0], `[[1]]`)
	wantRows(t, "user_version", a.Results[1], `[[2]]`)
	wantRows(t, "schema", a.Results[2], `[[1]]`)
}

// migrationSteps are the seed's schema migration, one step per version.
var migrationSteps = []string{
	"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)",
	"ALTER TABLE users ADD COLUMN email TEXT",
}

// migrationStep is the /sql batch that moves an object from version from
// to from+1. Its first statement checks the version and fails the batch
// (an error in SQL: json() of text that is not JSON) when another client
// migrated first, so that a step never runs twice.
func migrationStep(from int) map[string]any {
	return batch(
		q("SELECT CASE user_version WHEN ? THEN user_version ELSE json('user_version is ' || user_version) END FROM pragma_user_version", from),
		q(migrationSteps[from]),
		q(fmt.Sprintf("PRAGMA user_version = %d", from+1)))
}

// migrate is the seed's constructor: read user_version, then run each step
// the version calls for. It returns the steps it applied itself; a step
// another client applied first (its batch fails on the version check) is
// skipped.
func migrate(e *env, ns, obj string) int {
	e.t.Helper()
	ver, _ := strconv.Atoi(scalar(e.t, e.query(ns, obj, "PRAGMA user_version")))
	applied := 0
	for ver < len(migrationSteps) {
		r := e.postSQL(ns, obj, migrationStep(ver))
		switch r.status {
		case http.StatusOK:
			applied++
			ver++
		default:
			r.wantProblem(e.t, http.StatusBadRequest, "sql_error")
			ver, _ = strconv.Atoi(scalar(e.t, e.query(ns, obj, "PRAGMA user_version")))
		}
	}
	return applied
}

// TestSQLSeedMigration runs the seed's schema migration (PRAGMA
// user_version, CREATE TABLE, ALTER TABLE) step by step, twice, and from
// concurrent clients.
func TestSQLSeedMigration(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlmig", "users"
	if n := migrate(e, ns, obj); n != 2 {
		t.Fatalf("first run applied %d steps, want 2", n)
	}
	if n := migrate(e, ns, obj); n != 0 {
		t.Fatalf("second run applied %d steps, want none", n)
	}
	wantRows(t, "version", e.query(ns, obj, "PRAGMA user_version"), `[[2]]`)
	wantRows(t, "columns", e.query(ns, obj, "SELECT name, type FROM pragma_table_info('users') ORDER BY cid"),
		`[["id","INTEGER"],["name","TEXT"],["email","TEXT"]]`)
	// A step sent again at the wrong version changes nothing.
	e.postSQL(ns, obj, migrationStep(1)).wantProblem(t, http.StatusBadRequest, "sql_error")
	e.postSQL(ns, obj, migrationStep(0)).wantProblem(t, http.StatusBadRequest, "sql_error")
	wantRows(t, "version", e.query(ns, obj, "PRAGMA user_version"), `[[2]]`)

	// Data with the new column.
	e.sqlOK(ns, obj, batch(
		q("INSERT INTO users(name, email) VALUES (?, ?)", "Ada", "ada@example.com"),
		q("INSERT INTO users(name) VALUES (?)", "Bob")))
	wantRows(t, "users", e.query(ns, obj, "SELECT id, name, email FROM users ORDER BY id"),
		`[[1,"Ada","ada@example.com"],[2,"Bob",null]]`)

	// Eight clients migrate a fresh object at once: each step runs once.
	const clients = 8
	var wg sync.WaitGroup
	steps := make([]int, clients)
	for i := range clients {
		wg.Go(func() {
			steps[i] = migrate(e, ns, "concurrent")
		})
	}
	wg.Wait()
	total := 0
	for _, n := range steps {
		total += n
	}
	if total != 2 {
		t.Fatalf("concurrent clients applied %v steps, want 2 in all", steps)
	}
	wantRows(t, "concurrent columns", e.query(ns, "concurrent", "SELECT name FROM pragma_table_info('users') ORDER BY cid"), `[["id"],["name"],["email"]]`)
	wantRows(t, "concurrent version", e.query(ns, "concurrent", "PRAGMA user_version"), `[[2]]`)
}

// rateLimitBatch is the seed's rate limiter as one /sql batch: drop the
// key's requests older than the window, insert this one only while fewer
// than limit remain, and report whether it was inserted.
func rateLimitBatch(key string, now, window, limit int64) []stmt {
	return []stmt{
		q("DELETE FROM requests WHERE key = ? AND ts < ?", key, now-window),
		q("INSERT INTO requests(key, ts) SELECT ?1, ?2 WHERE (SELECT count(*) FROM requests WHERE key = ?1) < ?3", key, now, limit),
		q("SELECT changes()"),
	}
}

// TestSQLRateLimiter sends many concurrent check-and-insert batches: the
// limit holds exactly, whatever the interleaving.
func TestSQLRateLimiter(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlrate", "limiter"
	const window, limit = 60_000, 10
	now := time.Now().UnixMilli()
	e.sqlOK(ns, obj, batch(
		q("CREATE TABLE requests(key TEXT NOT NULL, ts INTEGER NOT NULL)"),
		q("CREATE INDEX requests_key_ts ON requests(key, ts)")))
	// Expired requests of key "a", which the first batch must clear.
	for i := range limit {
		e.sqlOK(ns, obj, q("INSERT INTO requests VALUES ('a', ?)", now-2*window-int64(i)))
	}

	const perKey = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[string]int{}
	for i := range 2 * perKey {
		wg.Go(func() {
			key := []string{"a", "b"}[i%2]
			stmts := rateLimitBatch(key, now+int64(i), window, limit)
			var results []sqlResultSet
			if key == "a" {
				results = e.sqlOK(ns, obj, batch(stmts...)).Results
			} else {
				// The same three statements as sql ops of one tx.
				ops := make([]string, len(stmts))
				for j, s := range stmts {
					ops[j] = string(mustMarshal(t, s))
				}
				r := e.tx(ns, obj, `{"ops":[`+strings.Join(ops, ",")+`]}`)
				results = make([]sqlResultSet, len(r.Results))
				for j, raw := range r.Results {
					dec := json.NewDecoder(bytes.NewReader(raw))
					dec.UseNumber()
					if err := dec.Decode(&results[j]); err != nil {
						t.Error(err)
						return
					}
				}
			}
			inserted := scalar(t, results[2])
			if want := strconv.FormatInt(results[1].RowsWritten, 10); inserted != want {
				t.Errorf("changes() = %s but rowsWritten = %s", inserted, want)
			}
			if inserted == "1" {
				mu.Lock()
				accepted[key]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted["a"] != limit || accepted["b"] != limit {
		t.Fatalf("accepted %v of %d requests per key, want exactly %d each", accepted, perKey, limit)
	}
	wantRows(t, "stored", e.query(ns, obj, "SELECT key, count(*), min(ts) >= ? FROM requests GROUP BY key ORDER BY key", now),
		fmt.Sprintf(`[["a",%d,1],["b",%d,1]]`, limit, limit))
}

// TestSQLObjectsAreIsolated gives two objects on different shards a table
// of the same name: each sees only its own.
func TestSQLObjectsAreIsolated(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns = "sqliso"
	a, b := "left", ""
	for i := 0; b == ""; i++ {
		if name := fmt.Sprintf("right-%d", i); shardOf(t, ns, name, 4) != shardOf(t, ns, a, 4) {
			b = name
		}
	}
	// The same name in another namespace is another object too.
	objs := []struct{ ns, name string }{{ns, a}, {ns, b}, {"sqliso2", a}}
	for i, o := range objs {
		e.sqlOK(o.ns, o.name, batch(q("CREATE TABLE items(name TEXT)"), q(fmt.Sprintf("PRAGMA user_version = %d", i+1))))
		for j := 0; j <= i; j++ {
			e.sqlOK(o.ns, o.name, q("INSERT INTO items VALUES (?)", fmt.Sprintf("%s/%s-%d", o.ns, o.name, j)))
		}
	}
	for i, o := range objs {
		rs := e.query(o.ns, o.name, "SELECT name FROM items ORDER BY name")
		if len(rs.Rows) != i+1 {
			t.Fatalf("%s/%s holds %s", o.ns, o.name, rs.rowsJSON())
		}
		for _, row := range rs.Rows {
			if !strings.HasPrefix(row[0].(string), o.ns+"/"+o.name+"-") {
				t.Fatalf("%s/%s sees %v", o.ns, o.name, row[0])
			}
		}
		wantRows(t, "user_version", e.query(o.ns, o.name, "PRAGMA user_version"), fmt.Sprintf(`[[%d]]`, i+1))
	}
	e.do("DELETE", objPath(ns, a, ""), nil).want(t, http.StatusOK)
	e.postSQL(ns, a, q("SELECT * FROM items")).wantProblem(t, http.StatusBadRequest, "sql_error")
	wantRows(t, "the other object", e.query(ns, b, "SELECT count(*) FROM items"), `[[2]]`)
	wantRows(t, "the other namespace", e.query("sqliso2", a, "SELECT count(*) FROM items"), `[[3]]`)
}

// sqlOutcome counts a workload's answers.
type sqlOutcome struct {
	mu      sync.Mutex
	ok      int
	sqlErr  int
	unknown int // 504 commit_unknown
	other   map[string]int
}

// sqlWorkload sends a random (fixed-seed) mix of SQL writes over objs
// through the given nodes, from workers goroutines, ops requests each.
// Every statement uses the functions that must be deterministic per entry
// (random(), randomblob(), datetime('now'), CURRENT_TIMESTAMP defaults);
// some fail on purpose. A 504 commit_unknown is an answer API.md allows
// whenever leadership moves (short Raft timeouts on a busy machine make
// elections happen): it is counted, and the replicas must agree whatever
// became of the write.
func sqlWorkload(t *testing.T, through []*sqlNode, ns string, objs []string, seed uint64, workers, ops int) *sqlOutcome {
	t.Helper()
	out := &sqlOutcome{other: map[string]int{}}
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range ops {
				obj := objs[(w+workers*rng.IntN(len(objs)/workers+1))%len(objs)]
				path, body := sqlWorkloadOp(rng, ns, obj, i)
				node := through[rng.IntN(len(through))]
				var status int
				var answer []byte
				for attempt := 0; attempt < 10; attempt++ {
					resp, err := client.Post(node.url+path, "application/json", bytes.NewReader(body))
					if err != nil {
						t.Errorf("POST %s via %s: %v", path, node.id, err)
						return
					}
					answer, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
					// 503 unavailable means nothing happened (no leader
					// yet): retry, as a client would.
					if status != http.StatusServiceUnavailable {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				out.mu.Lock()
				switch {
				case status == http.StatusOK:
					out.ok++
				case status == http.StatusBadRequest && bytes.Contains(answer, []byte(`"code":"sql_error"`)),
					status == http.StatusForbidden && bytes.Contains(answer, []byte(`"code":"sql_forbidden"`)):
					out.sqlErr++
				case status == http.StatusGatewayTimeout && bytes.Contains(answer, []byte(`"code":"commit_unknown"`)):
					out.unknown++
				default:
					out.other[fmt.Sprintf("%d %s", status, answer)]++
				}
				out.mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(out.other) > 0 {
		t.Errorf("unexpected answers: %v", out.other)
	}
	t.Logf("workload seed %d: %d ok, %d sql errors (on purpose), %d commit_unknown", seed, out.ok, out.sqlErr, out.unknown)
	return out
}

// sqlWorkloadOp makes one request of the workload: a path and a body.
func sqlWorkloadOp(rng *rand.Rand, ns, obj string, i int) (string, []byte) {
	const create = `CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, r INTEGER DEFAULT (random()),
		b BLOB DEFAULT (randomblob(8)), at TEXT DEFAULT CURRENT_TIMESTAMP, d TEXT DEFAULT (datetime('now', '+1 hour')), v TEXT)`
	sqlPath := objPath(ns, obj, "/sql")
	one := func(s stmt) []byte { b, _ := json.Marshal(s); return b }
	many := func(s ...stmt) []byte { b, _ := json.Marshal(batch(s...)); return b }
	switch k := rng.IntN(100); {
	case k < 10 || i == 0:
		return sqlPath, many(q(create), q("INSERT INTO t(v) VALUES (?)", fmt.Sprintf("row-%d", rng.IntN(1000))))
	case k < 35:
		return sqlPath, one(q("INSERT INTO t(v) VALUES (?), (hex(randomblob(4))), (datetime('now')), (CURRENT_TIMESTAMP)", rng.Int64()))
	case k < 45:
		return sqlPath, one(q(`INSERT INTO t(v, r) SELECT printf('%d-%s', x, hex(randomblob(6))), random()
			FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT x FROM c)`, 1+rng.IntN(40)))
	case k < 50:
		return sqlPath, one(q("INSERT INTO t(v, b) VALUES ('big', randomblob(?))", 5000+rng.IntN(30000)))
	case k < 62:
		return sqlPath, one(q("UPDATE t SET v = hex(randomblob(2)) || substr(v, 1, 20), r = random(), d = datetime('now') WHERE id % ? = ?", 2+rng.IntN(4), rng.IntN(2)))
	case k < 72:
		return sqlPath, one(q("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT ?)", 1+rng.IntN(4)))
	case k < 76:
		return sqlPath, one(q("INSERT INTO t(id, v) SELECT id, 'duplicate' FROM t ORDER BY random() LIMIT 1"))
	case k < 80:
		return sqlPath, many(q("INSERT INTO t(v) VALUES ('rolled back')"), q("INSERT INTO missing VALUES (1)"))
	case k < 83:
		return sqlPath, many(q("CREATE INDEX IF NOT EXISTS t_v ON t(v)"), q(fmt.Sprintf("PRAGMA user_version = %d", rng.IntN(100))))
	case k < 85:
		return sqlPath, one(q("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'x'"))
	case k < 88:
		return sqlPath, one(q("DROP INDEX IF EXISTS t_v"))
	case k < 97:
		tx := fmt.Sprintf(`{"ops":[{"put":{"last":%d}},{"sql":"INSERT INTO t(v) VALUES (hex(randomblob(3)))"},{"incr":{"key":"n"}}]}`, rng.IntN(1e6))
		return objPath(ns, obj, "/tx"), []byte(tx)
	case k < 99:
		return sqlPath, one(q("VACUUM")) // forbidden
	default:
		return objPath(ns, obj, "/tx"), []byte(`{"ops":[{"deleteAll":{}}]}`)
	}
}

// staleAnswers asks every node in nodes the same SELECTs on every object
// with ?consistency=stale and requires identical answers.
func staleAnswers(t *testing.T, nodes []*sqlNode, ns string, objs []string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	body, _ := json.Marshal(batch(
		q("SELECT * FROM t ORDER BY id"),
		q("SELECT count(*), count(DISTINCT r), count(DISTINCT b), total(length(b)) FROM t"),
		q("PRAGMA user_version"),
		q("PRAGMA integrity_check")))
	for _, obj := range objs {
		var ref []byte
		var refNode string
		for _, n := range nodes {
			resp, err := client.Post(n.url+objPath(ns, obj, "/sql?consistency=stale"), "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = append([]byte(strconv.Itoa(resp.StatusCode)+" "), got...)
			if ref == nil {
				ref, refNode = got, n.id
				if resp.StatusCode == http.StatusOK && !bytes.Contains(got, []byte(`"rows":[["ok"]]`)) {
					t.Fatalf("%s: integrity check on %s: %s", obj, n.id, got)
				}
				continue
			}
			if !bytes.Equal(got, ref) {
				t.Fatalf("%s: %s answers\n%s\nbut %s answers\n%s", obj, n.id, got, refNode, ref)
			}
		}
	}
}

// TestSQLReplication drives a random SQL workload at a 3-node cluster
// through every node and checks that every replica holds byte-identical
// SQL pages, also after a follower missed writes while stopped and after
// a follower was brought up to date by a snapshot (its log compacted away).
func TestSQLReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and a few thousand writes")
	}
	t.Parallel()
	const shards, trailing = 4, 4
	raftCfg := sqlFastRaft()
	raftCfg.TrailingLogs = trailing // compact as far as a snapshot allows
	c := startSQLCluster(t, 3, shards, sqlOptions{raft: raftCfg})
	const ns = "sqlrepl"
	var objs []string
	for i := range 24 {
		objs = append(objs, fmt.Sprintf("o-%02d", i))
	}
	perShard := map[uint32]int{}
	for _, o := range objs {
		perShard[shardOf(t, ns, o, shards)]++
	}
	if len(perShard) != shards {
		t.Fatalf("the objects cover shards %v, want all %d", perShard, shards)
	}
	checkAll := func(what string) {
		t.Helper()
		sqlKeys := 0
		var terms []string
		for s := range uint32(shards) {
			contents := c.ensureSameState(s)
			terms = append(terms, c.leader(s).current().Shard(s).Raft().Stats()["term"])
			for _, kv := range contents {
				for _, o := range objs {
					lo, hi := objectstore.Object{Shard: s, Namespace: ns, Name: o}.SQLSpan()
					if bytes.Compare(kv[0], lo) >= 0 && bytes.Compare(kv[0], hi) < 0 {
						sqlKeys++
					}
				}
			}
		}
		if sqlKeys == 0 {
			t.Fatalf("%s: no SQL pages in any shard", what)
		}
		staleAnswers(t, c.running(), ns, objs)
		t.Logf("%s: %d shards identical on %d nodes, %d SQL keys; Raft terms by shard %v", what, shards, len(c.running()), sqlKeys, terms)
	}

	// 1. Writes through every node.
	sqlWorkload(t, c.nodes, ns, objs, 1, 6, 60)
	checkAll("after the workload")

	// 2. A follower stops, misses writes, restarts and catches up.
	down := c.nodes[2]
	c.stop(down)
	for s := range uint32(shards) {
		c.leader(s)
	}
	sqlWorkload(t, c.running(), ns, objs, 2, 6, 40)
	c.restart(down)
	c.waitReady()
	checkAll("after a follower restarted")

	// 3. A follower is cut off with its connections warm, the others
	// write and compact their logs past it: it catches up by snapshot.
	cut, rest := c.nodes[1], []*sqlNode{c.nodes[0], c.nodes[2]}
	staleAnswers(t, []*sqlNode{cut}, ns, objs)
	c.net.isolate(cut.id, []string{rest[0].id, rest[1].id})
	behind := map[uint32]uint64{}
	for s := range uint32(shards) {
		behind[s] = cut.current().Shard(s).FSM().Applied()
	}
	leaderOf := func(s uint32) *sqlNode {
		var l *sqlNode
		sqlWaitFor(t, 30*time.Second, fmt.Sprintf("a leader of shard %d among the connected nodes", s), func() bool {
			l = nil
			for _, n := range rest {
				if n.current().Shard(s).IsLeader() {
					l = n
				}
			}
			return l != nil && rest[0].current().Shard(s).Leader() == l.id && rest[1].current().Shard(s).Leader() == l.id
		})
		return l
	}
	for s := range uint32(shards) {
		leaderOf(s)
	}
	// The cut node may still think it leads a shard: none of these
	// requests goes to it.
	sqlWorkload(t, rest, ns, objs, 3, 6, 60)
	for s := range uint32(shards) {
		l := leaderOf(s)
		for l.current().Shard(s).FSM().Applied() <= behind[s]+trailing+10 {
			// Too few writes on this shard to compact past the cut node.
			for _, o := range objs {
				if shardOf(t, ns, o, shards) == s {
					resp, err := http.Post(l.url+objPath(ns, o, "/sql"), "application/json",
						bytes.NewReader(mustMarshal(t, q("CREATE TABLE IF NOT EXISTS pad(x); INSERT INTO pad VALUES (random())"))))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					break
				}
			}
		}
		// Both connected nodes snapshot and compact, so that whichever
		// leads after the heal has no log old enough for the cut node.
		want := l.current().Shard(s).FSM().Applied()
		behind[s] = cut.current().Shard(s).FSM().Applied()
		for _, n := range rest {
			sqlWaitFor(t, 30*time.Second, fmt.Sprintf("%s applied %d of shard %d", n.id, want, s), func() bool {
				return n.current().Shard(s).FSM().Applied() >= want
			})
			r := n.current().Shard(s).Raft()
			if err := r.Snapshot().Error(); err != nil {
				t.Fatalf("snapshot of shard %d on %s: %v", s, n.id, err)
			}
			snapIdx, _ := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
			if snapIdx <= behind[s]+trailing+5 {
				t.Fatalf("shard %d: %s's snapshot at %d keeps the log the cut node needs (it applied %d)", s, n.id, snapIdx, behind[s])
			}
		}
	}
	c.net.heal()
	checkAll("after a snapshot caught the cut follower up")
	for s := range uint32(shards) {
		if idx := cut.current().Shard(s).Raft().Stats()["last_snapshot_index"]; idx == "0" || idx == "" {
			t.Fatalf("shard %d on %s: no snapshot installed (last_snapshot_index %q)", s, cut.id, idx)
		}
	}

	// 4. The restored node goes on applying like the others.
	sqlWorkload(t, c.nodes, ns, objs, 4, 6, 30)
	checkAll("after more writes")
}

// TestMixedReadSeesOneState checks that a tx mixing KV reads with SQL
// reads is served as a read, without a Raft entry, from one state: while
// writers keep a KV counter and a table's row count equal (each tx puts n
// and inserts the n-th row atomically), no mixed read ever sees them differ.
func TestMixedReadSeesOneState(t *testing.T) {
	t.Parallel()
	e := newSQLEnv(t, sqlOptions{})
	const ns, obj = "sqlmix", "one-state"
	shard := shardOf(t, ns, obj, 4)
	e.tx(ns, obj, `{"ops":[{"put":{"n":0}},{"sql":"CREATE TABLE t(i INTEGER PRIMARY KEY)"}]}`)
	readBody := []byte(`{"ops":[{"get":["n"]},{"sql":"SELECT count(*) FROM t"}]}`)
	type mixed struct {
		Results []struct {
			Entries map[string]struct {
				Value json.RawMessage `json:"value"`
			} `json:"entries"`
			Rows [][]json.RawMessage `json:"rows"`
		} `json:"results"`
	}
	// read returns the counter and the row count one mixed read saw.
	read := func() (string, string, error) {
		res, err := e.c.Post(e.url+objPath(ns, obj, "/tx"), "application/json", bytes.NewReader(readBody))
		if err != nil {
			return "", "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			return "", "", fmt.Errorf("status %d, %v: %s", res.StatusCode, err, b)
		}
		var m mixed
		if err := json.Unmarshal(b, &m); err != nil || len(m.Results) != 2 || len(m.Results[1].Rows) != 1 {
			return "", "", fmt.Errorf("answer %s: %v", b, err)
		}
		return string(m.Results[0].Entries["n"].Value), string(m.Results[1].Rows[0][0]), nil
	}
	if n, rows, err := read(); err != nil || n != "0" || rows != "0" {
		t.Fatalf("first read: n %s, rows %s, %v", n, rows, err)
	}

	const writes = 40
	done := make(chan error, 1)
	versions := make([]uint64, 0, writes) // the writer's, read after done
	go func() {
		for i := 1; i <= writes; i++ {
			body := fmt.Sprintf(`{"ops":[{"put":{"n":%d}},{"sql":"INSERT INTO t(i) VALUES (?)","params":[%d]}]}`, i, i)
			res, err := e.c.Post(e.url+objPath(ns, obj, "/tx"), "application/json", strings.NewReader(body))
			if err != nil {
				done <- err
				return
			}
			var ans struct{ Version string }
			err = json.NewDecoder(res.Body).Decode(&ans)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || err != nil {
				done <- fmt.Errorf("write %d: status %d, %v", i, res.StatusCode, err)
				return
			}
			v, err := strconv.ParseUint(ans.Version, 10, 64)
			if err != nil {
				done <- fmt.Errorf("write %d: version %q", i, ans.Version)
				return
			}
			versions = append(versions, v)
		}
		done <- nil
	}()
	reads, seenMoving := 0, map[string]bool{}
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		n, rows, err := read()
		if err != nil {
			t.Fatal(err)
		}
		if n != rows {
			t.Fatalf("a mixed read saw the counter at %s but %s rows: two states", n, rows)
		}
		reads++
		seenMoving[n] = true
	}
	t.Logf("%d mixed reads saw %d distinct states", reads, len(seenMoving))
	if n, rows, err := read(); err != nil || n != fmt.Sprint(writes) || rows != n {
		t.Fatalf("after the writes: n %s, rows %s, %v; want %d both", n, rows, err, writes)
	}
	// The writes' entries follow one another, and nothing came after the
	// last: the reads in between made no entry.
	for i := 1; i < len(versions); i++ {
		if versions[i] != versions[i-1]+1 {
			t.Fatalf("write %d has version %d after %d: an entry came between them", i+1, versions[i], versions[i-1])
		}
	}
	if after := e.appliedIndex(shard); after != versions[writes-1] {
		t.Fatalf("applied index %d after the last write's %d", after, versions[writes-1])
	}
}
