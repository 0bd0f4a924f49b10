package sqlstore

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/ncruces/go-sqlite3"
)

// builtin evaluates sql on a plain in-memory connection: SQLite's own
// functions, no overrides.
func builtin(t *testing.T, sql string) string {
	t.Helper()
	db, err := sqlite3.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _, err := db.Prepare(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer st.Close()
	if !st.Step() {
		t.Fatalf("%s: %v", sql, st.Err())
	}
	switch st.ColumnType(0) {
	case sqlite3.NULL:
		return "NULL"
	case sqlite3.FLOAT:
		return "FLOAT:" + strconv.FormatFloat(st.ColumnFloat(0), 'g', -1, 64)
	}
	return fmt.Sprintf("%s:%s", st.ColumnType(0), st.ColumnText(0))
}

func typed(v objectstore.SQLValue) string {
	names := map[objectstore.SQLType]string{objectstore.SQLInteger: "INTEGER", objectstore.SQLFloat: "FLOAT", objectstore.SQLText: "TEXT", objectstore.SQLBlob: "BLOB"}
	switch v.Type {
	case objectstore.SQLNull:
		return "NULL"
	case objectstore.SQLFloat:
		return "FLOAT:" + strconv.FormatFloat(v.Float, 'g', -1, 64)
	}
	return names[v.Type] + ":" + renderValue(v)
}

// TestDateFunctions: without 'now' the overrides give exactly what the
// built-ins give; with 'now' (or no time value) they give the built-in's
// answer for the session's fixed time.
func TestDateFunctions(t *testing.T) {
	if _, off := time.Now().Zone(); off != 0 {
		t.Skip("compares with SQLite's localtime, which follows the process's TZ: run with TZ=UTC")
	}
	db := memDB(t)
	s := newStore(t, Config{})
	e := env(3)
	fixed := "'" + time.UnixMilli(e.NowMillis).UTC().Format(fixedTimeLayout) + "'"
	eval := func(sql string) string {
		t.Helper()
		sess, err := s.Begin(objA, db, nil, e)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Rollback()
		res, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT " + sql})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return typed(res.Rows[0][0])
	}
	// No 'now': the same as the built-in, whatever the arguments.
	for _, expr := range []string{
		"date('2024-02-29')", "date('2024-02-29', '+1 year')", "time('12:34:56.789')",
		"datetime(1700000000, 'unixepoch')", "datetime(1700000000.5, 'unixepoch', 'subsec')",
		"datetime(2460000.5)", "julianday('2000-01-01 12:00')", "unixepoch('2038-01-19 03:14:08')",
		"strftime('%Y-%m-%d %H:%M:%f %j %w %s', '2024-07-04 05:06:07.891')", "strftime('%J', '2024-07-04')",
		"timediff('2024-03-01', '2023-02-28')", "date('2024-01-31', 'start of month', '+1 month', '-1 day')",
		"datetime('2024-06-01 10:00', 'localtime')", "datetime('2024-06-01 10:00', 'utc')",
		"datetime('2024-06-01 10:00+02:00')", "datetime('2024-06-01 10:00+02:00', 'localtime')",
		"date('not a date')", "date(NULL)", "datetime(x'323032342d30312d3031')", "date('2024-01-01', 'weekday 0')",
		"unixepoch('2024-01-01', 'auto')", "datetime(1e10, 'auto')", "julianday('2024-01-01', '+1.5 hours', 'ceiling')",
		"strftime(NULL, '2024-01-01')", "strftime()",
	} {
		if got, want := eval(expr), builtin(t, "SELECT "+expr); got != want {
			t.Errorf("%s = %s, built-in %s", expr, got, want)
		}
	}
	// 'now', in any case, or no time value at all: the fixed time.
	for expr, ref := range map[string]string{
		"datetime('now')":                    "datetime(" + fixed + ")",
		"datetime('NOW', '+1 day')":          "datetime(" + fixed + ", '+1 day')",
		"date()":                             "date(" + fixed + ")",
		"time()":                             "time(" + fixed + ")",
		"datetime()":                         "datetime(" + fixed + ")",
		"julianday('Now')":                   "julianday(" + fixed + ")",
		"unixepoch()":                        "unixepoch(" + fixed + ")",
		"unixepoch('now', 'subsec')":         "unixepoch(" + fixed + ", 'subsec')",
		"strftime('%s %f')":                  "strftime('%s %f', " + fixed + ")",
		"strftime('%Y')":                     "strftime('%Y', " + fixed + ")",
		"strftime('%Y', 'now', 'localtime')": "strftime('%Y', " + fixed + ")",
		"timediff('now', '2020-01-01')":      "timediff(" + fixed + ", '2020-01-01')",
		"datetime('now', 'localtime')":       "datetime(" + fixed + ")",
		"datetime('now', 'utc')":             "datetime(" + fixed + ")",
		"datetime(x'6e6f77')":                "datetime(" + fixed + ")", // a blob reads as text
		"datetime('now' || char(0) || 'x')":  "datetime(" + fixed + ")", // SQLite stops at NUL
		"CURRENT_TIMESTAMP":                  "datetime(" + fixed + ")",
		"CURRENT_DATE":                       "date(" + fixed + ")",
		"CURRENT_TIME":                       "time(" + fixed + ")",
	} {
		if got, want := eval(expr), builtin(t, "SELECT "+ref); got != want {
			t.Errorf("%s = %s, want %s (%s)", expr, got, want, ref)
		}
	}
	// The same session always sees the same time, and a session with
	// another time sees that one.
	if a, b := eval("datetime('now')"), eval("CURRENT_TIMESTAMP"); a != b {
		t.Errorf("datetime('now') %s vs CURRENT_TIMESTAMP %s", a, b)
	}
	e = env(4)
	if got, want := eval("unixepoch('now', 'subsec')"), "FLOAT:"+strconv.FormatFloat(float64(e.NowMillis)/1000, 'g', -1, 64); got != want {
		t.Errorf("unixepoch('now','subsec') = %s, want %s", got, want)
	}
	// Wrong arity is SQLite's error, as with the built-in.
	sess, _ := s.Begin(objA, db, nil, e)
	_, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT timediff('now')"})
	wantErr(t, err, objectstore.ErrSQL)
	sess.Rollback()
}

// TestRandom: random() and randomblob() follow the session's seed, and so
// do DEFAULT clauses that use them.
func TestRandom(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE r(a DEFAULT (random()), b DEFAULT (randomblob(8)), c)")
	sample := func(e objectstore.SQLEnv) [][]string {
		sess, err := s.Begin(objA, db, nil, e)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Rollback()
		res, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT random(), hex(randomblob(20)), hex(randomblob(0)), random() FROM json_each('[1,2]')"})
		if err != nil {
			t.Fatal(err)
		}
		return render(res.Rows)
	}
	a, b := sample(env(5)), sample(env(5))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different values: %v vs %v", a, b)
	}
	if c := sample(env(6)); reflect.DeepEqual(a, c) {
		t.Fatalf("different seeds, same values: %v", a)
	}
	if a[0][0] == a[0][3] || a[0][0] == a[1][0] {
		t.Fatalf("random() repeats within a session: %v", a)
	}
	if len(a[0][1]) != 40 || len(a[0][2]) != 2 {
		t.Fatalf("randomblob lengths: %v", a[0])
	}
	mustWrite(t, db, s, objA, env(7), "INSERT INTO r(c) VALUES (1)")
	s.Forget(objA)
	mustWrite(t, db, s, objA, env(7), "INSERT INTO r(c) VALUES (2)")
	rows := query(t, db, s, objA, "SELECT a, hex(b) FROM r ORDER BY c")
	if !reflect.DeepEqual(rows[0], rows[1]) {
		t.Fatalf("defaults differ under the same seed: %v", rows)
	}
}
