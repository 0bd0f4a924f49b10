package sqlstore

import (
	"bytes"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestMigration is the seed's schema migration pattern: PRAGMA user_version
// read and set, one step per committed batch.
func TestMigration(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	migrations := []string{
		"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
		"ALTER TABLE users ADD COLUMN email TEXT",
	}
	for step := 0; step < 3; step++ {
		v := oneValue(t, db, s, objA, "PRAGMA user_version")
		if v != itoa(step) {
			t.Fatalf("step %d: user_version = %s", step, v)
		}
		if step == len(migrations) {
			break
		}
		mustWrite(t, db, s, objA, env(step+1), migrations[step], "PRAGMA user_version = "+itoa(step+1))
	}
	mustWrite(t, db, s, objA, env(9), "INSERT INTO users(name, email) VALUES ('ada', 'ada@example.com')")
	got := query(t, db, s, objA, "SELECT id, name, email FROM users")
	if want := [][]string{{"1", "ada", "ada@example.com"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
	cols := query(t, db, s, objA, "SELECT name FROM pragma_table_info('users') ORDER BY cid")
	if want := [][]string{{"id"}, {"name"}, {"email"}}; !reflect.DeepEqual(cols, want) {
		t.Fatalf("columns = %v, want %v", cols, want)
	}
	if v := oneValue(t, db, s, objA, "PRAGMA user_version"); v != "2" {
		t.Fatalf("user_version = %s, want 2", v)
	}
	// A fresh store reads the same from Pebble alone.
	s2 := newStore(t, Config{})
	if v := oneValue(t, db, s2, objA, "PRAGMA user_version"); v != "2" {
		t.Fatalf("fresh store: user_version = %s, want 2", v)
	}
	if v := oneValue(t, db, s2, objA, "PRAGMA page_size"); v != "4096" {
		t.Fatalf("page_size = %s, want 4096", v)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestFailedBatchRollsBack: a batch whose last statement fails leaves
// nothing behind, in Pebble or in the connection.
func TestFailedBatchRollsBack(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1),
		"CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)",
		"INSERT INTO t(v) VALUES ('one')")
	before := span(t, db, objA)

	_, err := write(t, db, s, objA, env(2), stmts(
		"INSERT INTO t(v) SELECT 'x' || value FROM json_each('[1,2,3,4,5,6,7,8,9]')",
		"UPDATE t SET v = v || '!' WHERE id = 1",
		"CREATE TABLE u(x)",
		"INSERT INTO t(v) VALUES ('x1')", // UNIQUE fails
	)...)
	wantErr(t, err, objectstore.ErrSQL)
	if err := sameSpan(before, span(t, db, objA)); err != nil {
		t.Fatalf("pages changed by a failed batch: %v", err)
	}
	if got := query(t, db, s, objA, "SELECT id, v FROM t"); !reflect.DeepEqual(got, [][]string{{"1", "one"}}) {
		t.Fatalf("after the failed batch: %v", got)
	}
	if got := query(t, db, s, objA, "SELECT count(*) FROM sqlite_schema WHERE name = 'u'"); got[0][0] != "0" {
		t.Fatalf("table u survived the failed batch")
	}
	if got := oneValue(t, db, s, objA, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
}

// TestFailedStatementInsideBatch: SQLite undoes a failed statement (its
// statement journal is in memory), and what the caller does with the batch
// decides the rest.
func TestFailedStatementInsideBatch(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v INTEGER CHECK (v < 100))")
	b := db.NewIndexedBatch()
	defer b.Close()
	sess, err := s.Begin(objA, b, b, env(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Exec(objectstore.SQLStatement{SQL: "INSERT INTO t VALUES (1)"}); err != nil {
		t.Fatal(err)
	}
	// A multi-row insert that fails on its third row leaves none of its rows.
	_, err = sess.Exec(objectstore.SQLStatement{SQL: "INSERT INTO t VALUES (2), (3), (300)"})
	wantErr(t, err, objectstore.ErrSQL)
	// The transaction is lost: Exec keeps failing, and Commit refuses.
	_, err = sess.Exec(objectstore.SQLStatement{SQL: "SELECT 1"})
	wantErr(t, err, objectstore.ErrSQL)
	wantErr(t, sess.Commit(), objectstore.ErrSQL)
	sess.Rollback() // safe after the session ended
	if got := query(t, db, s, objA, "SELECT count(*) FROM t"); got[0][0] != "0" {
		t.Fatalf("rows after a rolled-back session: %s", got[0][0])
	}
}

// TestDiscardAfterCommit: the session commits, but the entry fails later and
// its batch is discarded. The connection's page cache and schema hold a state
// Pebble never got; the next session must not see it, even when the next
// committed state has the same change counter.
func TestDiscardAfterCommit(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	ref := newStore(t, Config{}) // replays only what was committed
	refDB := memDB(t)
	apply := func(i int, sql ...string) {
		mustWrite(t, db, s, objA, env(i), sql...)
		mustWrite(t, refDB, ref, objA, env(i), sql...)
	}
	// The entry that creates the database is discarded: the file is empty
	// again, and SQLite cannot re-read the change counter it counts from.
	b := db.NewIndexedBatch()
	if _, err := writeBatch(b, s, objA, env(0), stmts("CREATE TABLE early(x)", "INSERT INTO early VALUES (1)")...); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := span(t, db, objA); len(got) != 0 {
		t.Fatalf("a discarded batch left %d records", len(got))
	}
	apply(1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)", "INSERT INTO t(v) VALUES ('committed')")
	if err := sameSpan(span(t, db, objA), span(t, refDB, objA)); err != nil {
		t.Fatalf("after a discarded creation: pages differ from a replica that never saw it: %v", err)
	}

	for round := 0; round < 3; round++ {
		b := db.NewIndexedBatch()
		if _, err := writeBatch(b, s, objA, env(10+round), stmts(
			"INSERT INTO t(v) VALUES ('discarded')",
			"CREATE TABLE gone(x)",
			"CREATE INDEX t_v ON t(v)")...); err != nil {
			t.Fatal(err)
		}
		b.Close() // a later op of the entry failed: the batch is dropped

		if got := query(t, db, s, objA, "SELECT v FROM t ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"committed"}}) {
			t.Fatalf("round %d: read after a discarded batch: %v", round, got)
		}
		// The next committed write reaches the same change counter as the
		// discarded one did, with different pages.
		apply(20+round, "INSERT INTO t(v) VALUES ('other')", "DELETE FROM t WHERE v = 'other'")
		if err := sameSpan(span(t, db, objA), span(t, refDB, objA)); err != nil {
			t.Fatalf("round %d: pages differ from a replica that never saw the discarded batch: %v", round, err)
		}
		if got := oneValue(t, db, s, objA, "PRAGMA integrity_check"); got != "ok" {
			t.Fatalf("integrity_check: %s", got)
		}
		if got := query(t, db, s, objA, "SELECT name FROM sqlite_schema ORDER BY name"); !reflect.DeepEqual(got, [][]string{{"t"}}) {
			t.Fatalf("schema after discarded DDL: %v", got)
		}
	}
}

// TestIsolation: objects with the same table name hold their own data, in
// one shard or across shards and namespaces.
func TestIsolation(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	objs := []objectstore.Object{
		objA, objB,
		{Shard: 2, Namespace: "ns", Name: "a"},
		{Shard: 1, Namespace: "ns2", Name: "a"},
		{Shard: 1, Namespace: "ns", Name: "a\x00"}, // a name that extends another
	}
	for i, o := range objs {
		mustWrite(t, db, s, o, env(i), "CREATE TABLE t(v)", "INSERT INTO t VALUES ('"+itoa(i)+"')", "PRAGMA user_version = "+itoa(i+1))
	}
	for i, o := range objs {
		if got := query(t, db, s, o, "SELECT v FROM t"); !reflect.DeepEqual(got, [][]string{{itoa(i)}}) {
			t.Errorf("%v: rows %v", o, got)
		}
		if got := oneValue(t, db, s, o, "PRAGMA user_version"); got != itoa(i+1) {
			t.Errorf("%v: user_version %s", o, got)
		}
	}
	// Each object's records lie in its own SQL span.
	total := 0
	for _, o := range objs {
		total += len(span(t, db, o))
	}
	it, _ := db.NewIter(nil)
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	if n != total {
		t.Errorf("%d records in Pebble, %d in the objects' SQL spans", n, total)
	}
}

// TestDeleteAll: after the caller deletes obj.SQLSpan() in a batch and
// calls Forget, the database is empty: no tables, user_version 0. The same
// entry may go on to use SQL on the now empty database.
func TestDeleteAll(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)", "INSERT INTO t VALUES (1)", "PRAGMA user_version = 5")
	mustWrite(t, db, s, objB, env(1), "CREATE TABLE t(v)", "INSERT INTO t VALUES (1)")

	deleteAll := func(b *pebble.Batch, obj objectstore.Object) {
		lo, hi := obj.SQLSpan()
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			t.Fatal(err)
		}
		s.Forget(obj)
	}
	b := db.NewIndexedBatch()
	deleteAll(b, objA)
	// In the same entry, after deleteAll: a new database.
	if _, err := writeBatch(b, s, objA, env(2), stmts("SELECT count(*) FROM sqlite_schema", "CREATE TABLE fresh(x)")...); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := query(t, db, s, objA, "SELECT name FROM sqlite_schema"); !reflect.DeepEqual(got, [][]string{{"fresh"}}) {
		t.Fatalf("schema after deleteAll + create: %v", got)
	}
	if got := oneValue(t, db, s, objA, "PRAGMA user_version"); got != "0" {
		t.Fatalf("user_version after deleteAll: %s", got)
	}

	b = db.NewIndexedBatch()
	deleteAll(b, objA)
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got := query(t, db, s, objA, "SELECT count(*) FROM sqlite_schema"); got[0][0] != "0" {
		t.Fatalf("tables after deleteAll: %v", got)
	}
	if got := oneValue(t, db, s, objA, "PRAGMA user_version"); got != "0" {
		t.Fatalf("user_version after deleteAll: %s", got)
	}
	if got := span(t, db, objA); len(got) != 0 {
		t.Fatalf("%d records left after deleteAll and a read", len(got))
	}
	// The other object is untouched.
	if got := oneValue(t, db, s, objB, "SELECT count(*) FROM t"); got != "1" {
		t.Fatalf("objB: %s rows", got)
	}
}

// TestReopen: committed batches survive closing Pebble (crash-style: the
// state a restart sees) and a fresh Store reads them.
func TestReopen(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openDB(t, fs)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(id INTEGER PRIMARY KEY, v, ts DEFAULT CURRENT_TIMESTAMP)")
	for i := range 50 {
		mustWrite(t, db, s, objA, env(2+i), "INSERT INTO t(v) VALUES (randomblob(100))")
	}
	want := query(t, db, s, objA, "SELECT id, hex(v), ts FROM t ORDER BY id")
	if err := db.Flush(); err != nil { // what a sync of the WAL would keep
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	db.Close()

	db2 := openDB(t, crashed)
	defer db2.Close()
	s2 := newStore(t, Config{})
	if got := query(t, db2, s2, objA, "SELECT id, hex(v), ts FROM t ORDER BY id"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening: %d rows, want %d", len(got), len(want))
	}
	if got := oneValue(t, db2, s2, objA, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
	mustWrite(t, db2, s2, objA, env(100), "INSERT INTO t(v) VALUES (1)")
	if got := oneValue(t, db2, s2, objA, "SELECT count(*) FROM t"); got != "51" {
		t.Fatalf("rows after one more insert: %s", got)
	}
}

// TestRowCounts: rowsRead and rowsWritten.
func TestRowCounts(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)",
		"CREATE TABLE log(x)",
		"CREATE TRIGGER tr AFTER DELETE ON t BEGIN INSERT INTO log VALUES (old.id); END",
		"INSERT INTO t(v) SELECT value FROM json_each('[1,2,3,4,5,6,7,8,9,10]')")
	cases := []struct {
		sql           string
		read, written int64
	}{
		{"SELECT * FROM t", 10, 0},
		{"SELECT * FROM t WHERE id = 3", 1, 0},
		{"SELECT * FROM t WHERE id > 7", 3, 0},
		{"SELECT count(*) FROM t WHERE v > 5", 10, 0},
		{"SELECT * FROM t WHERE v = 100", 10, 0},
		{"INSERT INTO t(v) VALUES (11), (12)", 0, 2},
		{"UPDATE t SET v = v + 1 WHERE id = 1", 1, 1},
		{"UPDATE t SET v = v + 1 WHERE v > 10", 12, 2},
		{"DELETE FROM t WHERE id IN (1, 2)", 2, 2}, // the trigger's rows are not counted
		{"INSERT INTO t(v) VALUES (1) RETURNING id", 1, 1},
		{"CREATE TABLE u(x)", 0, 0},
		{"PRAGMA user_version = 3", 0, 0},
		{"SELECT changes(), total_changes()", 1, 0},
	}
	for _, tc := range cases {
		res, err := write(t, db, s, objA, env(2), stmts(tc.sql)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		if r := res[0]; r.RowsRead != tc.read || r.RowsWritten != tc.written {
			t.Errorf("%s: rowsRead %d, rowsWritten %d; want %d, %d", tc.sql, r.RowsRead, r.RowsWritten, tc.read, tc.written)
		}
	}
	// changes() and total_changes() count within the session; several
	// statements in one SQL string add up.
	res, err := write(t, db, s, objA, env(3), stmts(
		"SELECT changes(), total_changes(), last_insert_rowid()",
		"INSERT INTO t(v) VALUES (1), (2); DELETE FROM t WHERE id = 3; SELECT changes(), total_changes(), last_insert_rowid()")...)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res[0].Rows); !reflect.DeepEqual(got, [][]string{{"0", "0", "0"}}) {
		t.Errorf("at the start of a session: changes, total_changes, last_insert_rowid = %v", got)
	}
	last := query(t, db, s, objA, "SELECT max(id) FROM t")[0][0]
	if got := render(res[1].Rows); !reflect.DeepEqual(got, [][]string{{"1", "4", last}}) {
		t.Errorf("after insert 2, delete 1 (+1 by trigger): %v, want [[1 4 %s]]", got, last)
	}
	if res[1].RowsWritten != 3 {
		t.Errorf("rowsWritten summed over the statements: %d", res[1].RowsWritten)
	}
}

// TestTypes: every SQL type round-trips through parameters and results.
func TestTypes(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE v(id INTEGER PRIMARY KEY, x ANY) STRICT")
	values := []objectstore.SQLValue{
		{Type: objectstore.SQLNull},
		integer(0), integer(-1), integer(math.MaxInt64), integer(math.MinInt64),
		{Type: objectstore.SQLFloat, Float: 0.1},
		{Type: objectstore.SQLFloat, Float: -1e308},
		{Type: objectstore.SQLFloat, Float: math.SmallestNonzeroFloat64},
		{Type: objectstore.SQLFloat, Float: math.Inf(1)},
		{Type: objectstore.SQLFloat, Float: 2.5},
		text(""), text("héllo"), text("nul\x00inside"), text(strings.Repeat("x", 100_000)),
		blob([]byte{}), blob([]byte{0, 1, 2, 0xff}), blob(bytes.Repeat([]byte{9}, 70_000)),
	}
	for i, v := range values {
		_, err := write(t, db, s, objA, env(2+i), objectstore.SQLStatement{SQL: "INSERT INTO v(id, x) VALUES (?, ?)", Params: []objectstore.SQLValue{integer(int64(i)), v}})
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	res, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT x, typeof(x) FROM v ORDER BY id"})
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range res[0].Rows {
		got, want := row[0], values[i]
		if want.Type == objectstore.SQLBlob && want.Blob == nil {
			want.Blob = []byte{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("value %d: got %+v (%s), want %+v", i, got.Type, row[1].Text, want.Type)
		}
	}
	// An empty blob is not NULL.
	if got := query(t, db, s, objA, "SELECT x IS NULL, length(x) FROM v WHERE id = 14"); !reflect.DeepEqual(got, [][]string{{"0", "0"}}) {
		t.Errorf("empty blob: %v", got)
	}
}

// TestForeignKeys: foreign keys are enforced; a deferred violation fails at
// Commit, which rolls back.
func TestForeignKeys(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1),
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))")
	if got := oneValue(t, db, s, objA, "PRAGMA foreign_keys"); got != "1" {
		t.Fatalf("foreign_keys = %s", got)
	}
	_, err := write(t, db, s, objA, env(2), stmts("INSERT INTO child(p) VALUES (7)")...)
	wantErr(t, err, objectstore.ErrSQL)

	before := span(t, db, objA)
	_, err = write(t, db, s, objA, env(3), stmts(
		"PRAGMA defer_foreign_keys = ON",
		"INSERT INTO child(p) VALUES (7)", // fine until the commit
	)...)
	wantErr(t, err, objectstore.ErrSQL)
	if err := sameSpan(before, span(t, db, objA)); err != nil {
		t.Fatalf("a failed commit changed pages: %v", err)
	}
	mustWrite(t, db, s, objA, env(4), "PRAGMA defer_foreign_keys = ON", "INSERT INTO child(p) VALUES (7)", "INSERT INTO parent VALUES (7)")
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM child"); got != "1" {
		t.Fatalf("%s children", got)
	}
	// defer_foreign_keys does not outlive its transaction.
	if got := oneValue(t, db, s, objA, "PRAGMA defer_foreign_keys"); got != "0" {
		t.Fatalf("defer_foreign_keys = %s in a new transaction", got)
	}
}

// TestSize: Size inside the session and after it.
func TestSize(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	b := db.NewIndexedBatch()
	defer b.Close()
	sess, err := s.Begin(objA, b, b, env(1))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sess.Size(); err != nil || n != 0 {
		t.Fatalf("empty database: Size = %d, %v", n, err)
	}
	if _, err := sess.Exec(objectstore.SQLStatement{SQL: "CREATE TABLE t(v); INSERT INTO t SELECT zeroblob(10000)"}); err != nil {
		t.Fatal(err)
	}
	inside, err := sess.Size()
	if err != nil || inside < 3*pageSize {
		t.Fatalf("inside: Size = %d, %v", inside, err)
	}
	if err := sess.Commit(); err != nil {
		t.Fatal(err)
	}
	if after, err := sess.Size(); err != nil || after != inside {
		t.Fatalf("after Commit: Size = %d, %v; want %d", after, err, inside)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	// A write session that only reads creates no database.
	if _, err := write(t, db, s, objB, env(2), stmts("SELECT 1", "PRAGMA user_version", "SELECT * FROM sqlite_schema")...); err != nil {
		t.Fatal(err)
	}
	if got := span(t, db, objB); len(got) != 0 {
		t.Fatalf("a read-only write session left %d records", len(got))
	}
	if got := oneValue(t, db, s, objA, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size"); got != strconv.FormatInt(inside, 10) {
		t.Fatalf("page_count * page_size = %s, Size said %d", got, inside)
	}
}

// TestMaxRowid: a table may not hold the largest rowid, after which SQLite
// would choose rowids at random.
func TestMaxRowid(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(id INTEGER PRIMARY KEY, v)", "CREATE TABLE u(v)",
		"CREATE TABLE w(k PRIMARY KEY, v) WITHOUT ROWID", "CREATE VIEW vw AS SELECT * FROM t",
		"CREATE TRIGGER tr AFTER INSERT ON u BEGIN INSERT INTO t(id, v) VALUES (new.v, 'via trigger'); END")
	for _, sql := range []string{
		"INSERT INTO t(id, v) VALUES (9223372036854775807, 1)",
		"INSERT INTO t(id, v) VALUES (1, 1); UPDATE t SET id = 9223372036854775807 WHERE id = 1",
		"INSERT INTO u(rowid, v) VALUES (9223372036854775807, 1)",
		"INSERT INTO u(v) VALUES (9223372036854775807)", // through the trigger
	} {
		_, err := write(t, db, s, objA, env(2), stmts(sql)...)
		wantErr(t, err, objectstore.ErrSQL)
	}
	mustWrite(t, db, s, objA, env(3), "INSERT INTO t(id, v) VALUES (9223372036854775806, 1)", "INSERT INTO w VALUES (9223372036854775807, 1)")
	if got := query(t, db, s, objA, "SELECT count(*) FROM t"); got[0][0] != "1" {
		t.Fatalf("%s rows", got[0][0])
	}
}
