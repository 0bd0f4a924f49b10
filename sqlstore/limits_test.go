package sqlstore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// TestLimits checks each limit exactly at and one past its boundary.
func TestLimits(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})

	columns := func(n int) string {
		cols := make([]string, n)
		for i := range cols {
			cols[i] = fmt.Sprintf("c%d", i)
		}
		return strings.Join(cols, ", ")
	}
	if _, err := write(t, db, s, objA, env(1), stmts("CREATE TABLE wide100("+columns(100)+")")...); err != nil {
		t.Fatalf("100 columns: %v", err)
	}
	_, err := write(t, db, s, objA, env(2), stmts("CREATE TABLE wide101("+columns(101)+")")...)
	wantErr(t, err, objectstore.ErrSQL)

	params := func(n int) objectstore.SQLStatement {
		st := objectstore.SQLStatement{SQL: "SELECT " + strings.TrimSuffix(strings.Repeat("?,", n), ",")}
		for i := range n {
			st.Params = append(st.Params, integer(int64(i)))
		}
		return st
	}
	if _, err := read(t, db, s, objA, params(100)); err != nil {
		t.Fatalf("100 parameters: %v", err)
	}
	_, err = read(t, db, s, objA, params(101))
	wantErr(t, err, objectstore.ErrSQL)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT ?101"})
	wantErr(t, err, objectstore.ErrSQL)

	// A statement of exactly n bytes: SELECT '…' padded with spaces.
	statement := func(n int) objectstore.SQLStatement {
		sql := "SELECT 1 -- "
		return objectstore.SQLStatement{SQL: sql + strings.Repeat("x", n-len(sql))}
	}
	if _, err := read(t, db, s, objA, statement(100_000)); err != nil {
		t.Fatalf("100,000-byte statement: %v", err)
	}
	_, err = read(t, db, s, objA, statement(100_001))
	wantErr(t, err, objectstore.ErrTooLarge)
	// The limit is per statement: several statements may add up to more.
	long := "SELECT 1 -- " + strings.Repeat("x", 90_000) + "\n;"
	if _, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: long + long}); err != nil {
		t.Fatalf("two statements of 90 KB: %v", err)
	}

	// A 2,000,000-byte blob binds and round-trips; one more byte does not.
	big := bytes.Repeat([]byte{7}, 2_000_000)
	res, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT length(?)", Params: []objectstore.SQLValue{blob(big)}})
	if err != nil || res[0].Rows[0][0].Int != 2_000_000 {
		t.Fatalf("2,000,000-byte blob: %v %v", res, err)
	}
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT length(?)", Params: []objectstore.SQLValue{blob(append(big, 7))}})
	wantErr(t, err, objectstore.ErrTooLarge)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT length(?)", Params: []objectstore.SQLValue{text(strings.Repeat("é", 1_000_001))}})
	wantErr(t, err, objectstore.ErrTooLarge)
	// Values made by SQL obey it too.
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT zeroblob(2000001)"})
	wantErr(t, err, objectstore.ErrTooLarge)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT randomblob(2000001)"})
	wantErr(t, err, objectstore.ErrTooLarge)
	// A row counts as a whole: a 2,000,000-byte blob plus its header is more.
	mustWrite(t, db, s, objA, env(3), "CREATE TABLE blobs(b BLOB)")
	_, err = write(t, db, s, objA, env(4), objectstore.SQLStatement{SQL: "INSERT INTO blobs VALUES (?)", Params: []objectstore.SQLValue{blob(big)}})
	wantErr(t, err, objectstore.ErrTooLarge)
	if _, err = write(t, db, s, objA, env(5), objectstore.SQLStatement{SQL: "INSERT INTO blobs VALUES (?)", Params: []objectstore.SQLValue{blob(big[:1_999_000])}}); err != nil {
		t.Fatalf("a 1,999,000-byte row: %v", err)
	}
	if got := oneValue(t, db, s, objA, "SELECT length(b) FROM blobs"); got != "1999000" {
		t.Fatalf("stored blob length %s", got)
	}
}

// TestParams: parameters bind by position, only with a single statement,
// and their number must match.
func TestParams(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	_, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT ?; SELECT 2", Params: []objectstore.SQLValue{integer(1)}})
	wantErr(t, err, objectstore.ErrSQL)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT ?, ?", Params: []objectstore.SQLValue{integer(1)}})
	wantErr(t, err, objectstore.ErrSQL)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT 1", Params: []objectstore.SQLValue{integer(1)}})
	wantErr(t, err, objectstore.ErrSQL)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT 1; SELECT ?"})
	wantErr(t, err, objectstore.ErrSQL)
	// One statement followed by trivia is one statement.
	res, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT ?2, ?1 ; -- done\n /* really */ ;", Params: []objectstore.SQLValue{integer(1), text("two")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res[0].Rows); fmt.Sprint(got) != "[[two 1]]" {
		t.Fatalf("rows %v", got)
	}
	// Several statements: the result set is the last one's.
	res, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT 1 AS a; SELECT 2 AS b, 3 AS c;"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res[0].Columns, render(res[0].Rows)) != "[b c] [[2 3]]" {
		t.Fatalf("result %v %v", res[0].Columns, res[0].Rows)
	}
	// Empty SQL is an empty result.
	res, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: " -- nothing"})
	if err != nil || len(res[0].Columns) != 0 || len(res[0].Rows) != 0 {
		t.Fatalf("empty SQL: %v %v", res, err)
	}
}

const runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"

// budgetLeft runs sql in a write session on db and returns the step budget
// left when it ended.
func budgetLeft(t *testing.T, s *Store, db *pebble.DB, sql string) (int64, error) {
	t.Helper()
	b := db.NewIndexedBatch()
	defer b.Close()
	sess, err := s.Begin(objA, b, b, env(2))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Rollback()
	_, err = sess.Exec(objectstore.SQLStatement{SQL: sql})
	return sess.(*session).c.budget.left, err
}

// TestStepBudget: a write is interrupted by a budget of VM steps, spent the
// same on every run, on a fresh connection as on a warm one.
func TestStepBudget(t *testing.T) {
	const budget = 400 // about 400,000 VM instructions
	setup := []string{
		"CREATE TABLE t(x INTEGER PRIMARY KEY, y)",
		"INSERT INTO t(y) SELECT value FROM json_each('[1,2,3,4,5,6,7,8,9,10]')",
	}
	dbA, dbB := memDB(t), memDB(t)
	warm := newStore(t, Config{WriteStepBudget: budget})
	fresh := newStore(t, Config{WriteStepBudget: budget})
	mustWrite(t, dbA, warm, objA, env(1), setup...)
	mustWrite(t, dbB, fresh, objA, env(1), setup...)
	query(t, dbA, warm, objA, "SELECT * FROM t") // a warm schema and page cache

	bounded := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10000) SELECT count(*) FROM c"
	for _, sql := range []string{bounded, "INSERT INTO t(y) SELECT y * 2 FROM t", runaway} {
		var lefts []int64
		for i := 0; i < 3; i++ {
			var left int64
			var err error
			if i == 1 {
				fresh.Forget(objA) // a replica that just reopened its connection
				left, err = budgetLeft(t, fresh, dbB, sql)
			} else {
				left, err = budgetLeft(t, warm, dbA, sql)
			}
			if sql == runaway {
				wantErr(t, err, objectstore.ErrSQLTimeout)
			} else if err != nil {
				t.Fatalf("%.30s…: %v", sql, err)
			}
			lefts = append(lefts, left)
		}
		if lefts[0] != lefts[1] || lefts[1] != lefts[2] {
			t.Errorf("%.40s…: budget left %v, want the same on every run", sql, lefts)
		}
	}

	// At the boundary: a budget of exactly what the statement spends is
	// enough, one less is not, on warm and fresh connections alike.
	left, err := budgetLeft(t, warm, dbA, bounded)
	if err != nil {
		t.Fatal(err)
	}
	spent := budget - left
	t.Logf("%q spends %d of the step budget", bounded, spent)
	for _, b := range []int64{spent, spent - 1} {
		s := newStore(t, Config{WriteStepBudget: b})
		for i := 0; i < 2; i++ { // fresh, then warm
			_, err := budgetLeft(t, s, dbA, bounded)
			if b == spent && err != nil {
				t.Errorf("budget %d (run %d): %v", b, i, err)
			}
			if b < spent {
				wantErr(t, err, objectstore.ErrSQLTimeout)
			}
		}
	}
}

// TestReadTimeout: a read is bounded by wall time.
func TestReadTimeout(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{ReadTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: runaway})
	wantErr(t, err, objectstore.ErrSQLTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("interrupted after %v", d)
	}
	// The connection is fine afterwards.
	if got := oneValue(t, db, s, objA, "SELECT 40 + 2"); got != "42" {
		t.Fatalf("after a timeout: %s", got)
	}
}

// TestMaxBytes: a write that would grow the database past SQLEnv.MaxBytes
// fails with ErrSQLFull; reads and deletes still work.
func TestMaxBytes(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	limited := func(i int) objectstore.SQLEnv {
		e := env(i)
		e.MaxBytes = 64 << 10 // 16 pages
		return e
	}
	mustWrite(t, db, s, objA, limited(1), "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
	var err error
	n := 0
	for ; n < 100; n++ {
		_, err = write(t, db, s, objA, limited(2+n), objectstore.SQLStatement{SQL: "INSERT INTO t(b) VALUES (randomblob(3000))"})
		if err != nil {
			break
		}
	}
	wantErr(t, err, objectstore.ErrSQLFull)
	if n == 0 {
		t.Fatal("not a single row fit")
	}
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != fmt.Sprint(n) {
		t.Fatalf("%s rows, want %d", got, n)
	}
	if got := oneValue(t, db, s, objA, "SELECT page_count <= 16 FROM pragma_page_count"); got != "1" {
		t.Fatalf("page_count past the limit")
	}
	res, err := write(t, db, s, objA, limited(200), objectstore.SQLStatement{SQL: "DELETE FROM t WHERE id <= 3"})
	if err != nil {
		t.Fatalf("DELETE on a full database: %v", err)
	}
	if res[0].RowsWritten != 3 {
		t.Fatalf("deleted %d rows", res[0].RowsWritten)
	}
	// The freed pages are reused.
	if _, err := write(t, db, s, objA, limited(201), objectstore.SQLStatement{SQL: "INSERT INTO t(b) VALUES (randomblob(3000))"}); err != nil {
		t.Fatalf("insert after delete: %v", err)
	}
	// A larger limit lets it grow again.
	if _, err := write(t, db, s, objA, env(202), objectstore.SQLStatement{SQL: "INSERT INTO t(b) VALUES (randomblob(30000))"}); err != nil {
		t.Fatalf("insert without a limit: %v", err)
	}
}

// TestMemoryLimit: a statement that needs more memory than a connection may
// use fails with ErrTooLarge (the library panics; the store recovers), the
// connection is dropped, and the store goes on.
func TestMemoryLimit(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{MaxMemory: 8 << 20})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)")
	_, err := write(t, db, s, objA, env(2), stmts(
		"INSERT INTO t SELECT randomblob(1000) FROM generate_series(1, 50000) ORDER BY 1")...)
	wantErr(t, err, objectstore.ErrTooLarge)
	if n := s.Conns(); n != 0 {
		t.Fatalf("%d connections cached after running out of memory, want 0", n)
	}
	mustWrite(t, db, s, objA, env(3), "INSERT INTO t VALUES (1)")
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != "1" {
		t.Fatalf("%s rows", got)
	}
}

// TestLargeSortStaysInMemory: big sorts and index builds never ask the VFS
// for a temporary file (which it refuses).
func TestLargeSortStaysInMemory(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{CacheKiB: 256, ReadTimeout: time.Minute})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
		"INSERT INTO t(v) SELECT randomblob(500) FROM generate_series(1, 5000)")
	mustWrite(t, db, s, objA, env(2), "CREATE INDEX t_v ON t(v)")
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM (SELECT v FROM t ORDER BY random())"); got != "5000" {
		t.Fatalf("sorted %s rows", got)
	}
	if got := oneValue(t, db, s, objA, "SELECT count(DISTINCT hex(v)) FROM t"); got != "5000" {
		t.Fatalf("distinct %s", got)
	}
	if got := oneValue(t, db, s, objA, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
}
