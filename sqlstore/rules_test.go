package sqlstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairndb/cairn/objectstore"
)

// TestRules checks every rule of API.md with its sentinel, in a write
// session, and that allowed statements pass.
func TestRules(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1),
		"CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE TABLE c(id INTEGER PRIMARY KEY, t_id REFERENCES t(id))",
		"CREATE INDEX t_v ON t(v)")
	forbidden := objectstore.ErrSQLForbidden
	txc := objectstore.ErrSQLTransactionControl
	cases := []struct {
		sql  string
		want error // nil: allowed
	}{
		{"ATTACH 'x.db' AS x", forbidden},
		{"ATTACH ':memory:' AS x", forbidden},
		{"DETACH x", forbidden},
		{"VACUUM", forbidden},
		{"  /* c */ vacuum main", forbidden},
		{"VACUUM INTO 'copy.db'", forbidden},
		{"ANALYZE", forbidden},
		{"BEGIN", txc},
		{"BEGIN IMMEDIATE", txc},
		{"COMMIT", txc},
		{"END", txc},
		{"ROLLBACK", txc},
		{"SAVEPOINT s", txc},
		{"RELEASE s", txc},
		{"ROLLBACK TO s", txc},
		{"PRAGMA journal_mode", forbidden},
		{"PRAGMA journal_mode = WAL", forbidden},
		{"PRAGMA writable_schema = ON", forbidden},
		{"PRAGMA database_list", forbidden},
		{"SELECT * FROM pragma_database_list", forbidden},
		{"SELECT * FROM pragma_data_version", forbidden},
		{"PRAGMA cache_size = 10", forbidden},
		{"PRAGMA locking_mode = EXCLUSIVE", forbidden},
		{"PRAGMA temp_store = FILE", forbidden},
		{"PRAGMA case_sensitive_like = ON", forbidden},
		{"PRAGMA recursive_triggers = ON", forbidden},
		{"PRAGMA optimize", forbidden},
		{"PRAGMA foreign_keys = OFF", forbidden},
		{"PRAGMA page_size = 8192", forbidden},
		{"PRAGMA page_count = 5", forbidden},
		{"PRAGMA temp.user_version = 3", forbidden},
		{"CREATE TEMP TABLE x(a)", forbidden},
		{"CREATE TEMPORARY VIEW x AS SELECT 1", forbidden},
		{"CREATE TABLE temp.x(a)", forbidden},
		{"CREATE TABLE _cairn_x(a)", forbidden},
		{"CREATE TABLE _CAIRN(a)", forbidden},
		{"CREATE TABLE \"_Cairn meta\"(a)", forbidden},
		{"CREATE INDEX _cairn_i ON t(v)", forbidden},
		{"CREATE VIEW _cairn_v AS SELECT 1", forbidden},
		{"CREATE TRIGGER _cairn_tr AFTER INSERT ON t BEGIN SELECT 1; END", forbidden},
		{"ALTER TABLE t RENAME TO _cairn_t", forbidden},
		// Allowed.
		{"PRAGMA user_version", nil},
		{"PRAGMA user_version = 7", nil},
		{"PRAGMA main.user_version = 8", nil},
		{"PRAGMA defer_foreign_keys", nil},
		{"PRAGMA defer_foreign_keys = ON", nil},
		{"PRAGMA table_list", nil},
		{"PRAGMA table_info(t)", nil},
		{"PRAGMA table_xinfo('t')", nil},
		{"PRAGMA index_list(t)", nil},
		{"PRAGMA index_info(t_v)", nil},
		{"PRAGMA index_xinfo(t_v)", nil},
		{"PRAGMA foreign_key_list(c)", nil},
		{"PRAGMA foreign_key_check", nil},
		{"PRAGMA foreign_key_check(c)", nil},
		{"PRAGMA foreign_keys", nil},
		{"PRAGMA integrity_check", nil},
		{"PRAGMA integrity_check(5)", nil},
		{"PRAGMA quick_check", nil},
		{"PRAGMA page_count", nil},
		{"PRAGMA page_size", nil},
		{"PRAGMA freelist_count", nil},
		{"SELECT * FROM pragma_table_info('t')", nil},
		{"SELECT name FROM sqlite_schema", nil},
		{"EXPLAIN QUERY PLAN SELECT * FROM t", nil},
		{"ALTER TABLE t RENAME TO t2", nil},
		{"CREATE TABLE cairn_ok(a)", nil},
		{"CREATE TABLE x_cairn(a)", nil},
		{"REINDEX", nil},
	}
	for _, tc := range cases {
		_, err := write(t, db, s, objA, env(2), stmts(tc.sql)...)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want it allowed", tc.sql, err)
			}
			continue
		}
		var oe *objectstore.Error
		if !errors.Is(err, tc.want) || !errors.As(err, &oe) || oe.Condition != -1 {
			t.Errorf("%s: err = %v, want %v", tc.sql, err, tc.want)
			continue
		}
		if tc.want == txc && !strings.Contains(oe.Detail, "already is one transaction") {
			t.Errorf("%s: detail %q lacks the hint", tc.sql, oe.Detail)
		}
	}
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_cairn%' ESCAPE '\\'"); got != "0" {
		t.Errorf("%s reserved names made it into the schema", got)
	}
	// A _cairn table (made here past the rules) can be neither read nor
	// written.
	c, _ := s.acquire(t.Context(), objA, true)
	b := db.NewIndexedBatch()
	sess := &session{store: s, c: c, write: true, ctx: t.Context(), cancel: func() {}}
	if err := sess.start(b, b, env(3)); err != nil {
		t.Fatal(err)
	}
	if err := c.exec("CREATE TABLE _cairn_meta(a)"); err != nil {
		t.Fatal(err)
	}
	if err := sess.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SELECT * FROM _cairn_meta",
		"SELECT count(*) FROM _Cairn_Meta",
		"INSERT INTO _cairn_meta VALUES (1)",
		"DELETE FROM _cairn_meta",
		"UPDATE _cairn_meta SET a = 2",
		"DROP TABLE _cairn_meta",
		"ALTER TABLE _cairn_meta ADD COLUMN b",
		"CREATE INDEX i ON _cairn_meta(a)",
		"CREATE VIEW v AS SELECT * FROM _cairn_meta",
	} {
		_, err := write(t, db, s, objA, env(4), stmts(sql, "SELECT * FROM v")...)
		wantErr(t, err, forbidden)
	}

	// Rules hold in reads too.
	_, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "PRAGMA database_list"})
	wantErr(t, err, forbidden)
	_, err = read(t, db, s, objA, objectstore.SQLStatement{SQL: "BEGIN"})
	wantErr(t, err, txc)
}

// TestWriteInRead: a read session refuses a statement that writes, with an
// error the caller can tell apart to retry the request as a write.
func TestWriteInRead(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(a)")
	for _, sql := range []string{
		"INSERT INTO t VALUES (1)",
		"CREATE TABLE u(a)",
		"PRAGMA user_version = 3",
		"SELECT 1; DELETE FROM t",
	} {
		_, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: sql})
		wantErr(t, err, ErrWriteInRead)
		wantErr(t, err, objectstore.ErrSQLWrites)
	}
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != "0" {
		t.Fatalf("a read wrote: %s rows", got)
	}
}
