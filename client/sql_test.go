package client_test

import (
	"database/sql"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/internal/testnode"
)

// TestSQLScan round-trips every SQLite type through parameters and scans
// it back into every kind of destination.
func TestSQLScan(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	o := object(t, newClient(t))
	if _, err := o.SQL(ctx, "CREATE TABLE v(id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, n INTEGER, flag INTEGER)"); err != nil {
		t.Fatal(err)
	}
	type myInt int32
	name := "named"
	var nilStr *string
	rows := []struct {
		i    any
		f    any
		s    any
		b    any
		n    any
		flag any
	}{
		{int64(math.MaxInt64), 3.0, "text", []byte{0, 1, 255}, nil, true},
		{int64(math.MinInt64), -1.5e300, "", []byte{}, nilStr, false},
		{myInt(-7), float32(0.25), &name, []byte("x"), sql.NullInt64{}, 1},
		{uint32(7), 1e-7, sql.NullString{String: "ns", Valid: true}, []byte(nil), sql.Null[int64]{V: 9, Valid: true}, 0},
	}
	for _, r := range rows {
		res, err := o.SQL(ctx, "INSERT INTO v(i, f, s, b, n, flag) VALUES (?, ?, ?, ?, ?, ?)", r.i, r.f, r.s, r.b, r.n, r.flag)
		if err != nil {
			t.Fatal(err)
		}
		if res.RowsWritten != 1 || res.DatabaseSize == 0 {
			t.Fatalf("insert result = %+v", res)
		}
	}
	// Types as SQLite stored them: a float64 3.0 is a REAL, a []byte a BLOB.
	types, err := o.Query(ctx, "SELECT typeof(i), typeof(f), typeof(s), typeof(b), typeof(n), typeof(flag) FROM v ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := [][]any{
		{"integer", "real", "text", "blob", "null", "integer"},
		{"integer", "real", "text", "blob", "null", "integer"},
		{"integer", "real", "text", "blob", "null", "integer"},
		{"integer", "real", "text", "null", "integer", "integer"},
	}
	if got := types.Raw(); !equalRows(got, wantTypes) {
		t.Fatalf("typeof = %v, want %v", got, wantTypes)
	}

	res, err := o.Query(ctx, "SELECT i, f, s, b, n, flag FROM v ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Columns(), []string{"i", "f", "s", "b", "n", "flag"}) || res.Len() != 4 || res.RowsRead < 4 {
		t.Fatalf("columns %v, %d rows, read %d", res.Columns(), res.Len(), res.RowsRead)
	}
	// Row 0: int64 max, a REAL that reads back as 3, text, a blob, NULL, bool.
	var (
		i    int64
		f    float64
		s    string
		b    []byte
		n    *int64
		flag bool
	)
	if !res.Next() {
		t.Fatal("no row 0")
	}
	if err := res.Scan(&i, &f, &s, &b, &n, &flag); err != nil {
		t.Fatal(err)
	}
	if i != math.MaxInt64 || f != 3.0 || s != "text" || !slices.Equal(b, []byte{0, 1, 255}) || n != nil || !flag {
		t.Fatalf("row 0 = %d %v %q %v %v %v", i, f, s, b, n, flag)
	}
	if v := res.Values(); v[0] != int64(math.MaxInt64) || v[4] != nil {
		t.Fatalf("Values = %#v", v)
	}
	// Row 1: int64 min, a huge negative float, empty text and blob, NULL
	// through sql.Null and *T, false.
	var (
		ns   sql.NullInt64
		anyB any
		ps   *string
	)
	if !res.Next() {
		t.Fatal("no row 1")
	}
	if err := res.Scan(&i, &f, &ps, &anyB, &ns, &flag); err != nil {
		t.Fatal(err)
	}
	if i != math.MinInt64 || f != -1.5e300 || ps == nil || *ps != "" || ns.Valid || flag {
		t.Fatalf("row 1 = %d %v %v %v %v", i, f, ps, ns, flag)
	}
	if bb, ok := anyB.([]byte); !ok || len(bb) != 0 {
		t.Fatalf("empty blob as any = %#v", anyB)
	}
	// Row 2: into narrower and named types.
	var (
		i32 myInt
		f32 float32
		str sql.NullString
		by  string
		nn  sql.Null[int64]
		u8  uint8
	)
	if !res.Next() {
		t.Fatal("no row 2")
	}
	if err := res.Scan(&i32, &f32, &str, &by, &nn, &u8); err != nil {
		t.Fatal(err)
	}
	if i32 != -7 || f32 != 0.25 || str.String != "named" || !str.Valid || by != "x" || nn.Valid || u8 != 1 {
		t.Fatalf("row 2 = %v %v %v %q %v %v", i32, f32, str, by, nn, u8)
	}
	// Row 3: NULL blob into *[]byte, a value into **T, skipped columns.
	var (
		pb *[]byte
		pn *int64
	)
	if !res.Next() {
		t.Fatal("no row 3")
	}
	if err := res.Scan(nil, &f, &s, &pb, &pn, nil); err != nil {
		t.Fatal(err)
	}
	if f != 1e-7 || s != "ns" || pb != nil || pn == nil || *pn != 9 {
		t.Fatalf("row 3 = %v %q %v %v", f, s, pb, pn)
	}
	if res.Next() {
		t.Fatal("a fifth row")
	}
	if err := res.Scan(&i); err == nil {
		t.Fatal("Scan after the last row succeeded")
	}

	// Scan errors: NULL into a non-pointer, overflow, wrong count, bad bool.
	if err := mustQuery(t, o, "SELECT NULL").One(&i); err == nil || !strings.Contains(err.Error(), "NULL") {
		t.Fatalf("NULL into *int64 = %v", err)
	}
	if err := mustQuery(t, o, "SELECT 300").One(&u8); err == nil {
		t.Fatal("300 into uint8 succeeded")
	}
	if err := mustQuery(t, o, "SELECT 1, 2").One(&i); err == nil {
		t.Fatal("two columns into one destination succeeded")
	}
	if err := mustQuery(t, o, "SELECT 2").One(&flag); err == nil {
		t.Fatal("2 into bool succeeded")
	}
	if err := mustQuery(t, o, "SELECT 1 WHERE 0").One(&i); !errors.Is(err, client.ErrNoRows) {
		t.Fatalf("One of no rows = %v", err)
	}
	if err := mustQuery(t, o, "SELECT 1 UNION ALL SELECT 2").One(&i); err == nil {
		t.Fatal("One of two rows succeeded")
	}
	// Conversions between types.
	var txt string
	var num float64
	if err := mustQuery(t, o, "SELECT 42, '2.5'").One(&txt, &num); err != nil || txt != "42" || num != 2.5 {
		t.Fatalf("conversions = %q %v, %v", txt, num, err)
	}
	// An argument with no SQLite type fails before sending.
	if _, err := o.SQL(ctx, "SELECT ?", map[string]int{}); err == nil {
		t.Fatal("a map argument was sent")
	}
	if _, err := o.SQL(ctx, "SELECT ?", uint64(math.MaxUint64)); err == nil {
		t.Fatal("a uint64 beyond int64 was sent")
	}
	if _, err := o.SQL(ctx, "SELECT ?", math.NaN()); err == nil {
		t.Fatal("NaN was sent")
	}
}

func mustQuery(t *testing.T, o *client.Object, q string, args ...any) *client.Rows {
	t.Helper()
	r, err := o.Query(testCtx(t), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func equalRows(a, b [][]any) bool {
	return slices.EqualFunc(a, b, func(x, y []any) bool { return slices.Equal(x, y) })
}

// TestSQLMigrationAndBatch runs the seed's schema migration with PRAGMA
// user_version, and checks that a batch is one transaction.
func TestSQLMigrationAndBatch(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	o := object(t, newClient(t))
	migrate := func() {
		var ver int
		if err := mustQuery(t, o, "PRAGMA user_version").One(&ver); err != nil {
			t.Fatal(err)
		}
		if ver == 0 {
			if _, err := o.Batch(ctx, []client.Statement{{SQL: "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)"}, {SQL: "PRAGMA user_version = 1"}}); err != nil {
				t.Fatal(err)
			}
			ver = 1
		}
		if ver == 1 {
			if _, err := o.Batch(ctx, []client.Statement{{SQL: "ALTER TABLE users ADD COLUMN email TEXT"}, {SQL: "PRAGMA user_version = 2"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	migrate()
	migrate() // a second run finds version 2 and does nothing
	var ver int
	if err := mustQuery(t, o, "PRAGMA user_version").One(&ver); err != nil || ver != 2 {
		t.Fatalf("user_version = %d, %v", ver, err)
	}
	results, err := o.Batch(ctx, []client.Statement{
		{SQL: "INSERT INTO users(name, email) VALUES (?, ?)", Args: []any{"a", "a@x"}},
		{SQL: "INSERT INTO users(name, email) VALUES (?, ?)", Args: []any{"b", nil}},
		{SQL: "SELECT count(*) AS n FROM users"},
	})
	if err != nil || len(results) != 3 {
		t.Fatalf("Batch = %v, %v", results, err)
	}
	var n int
	if err := results[2].One(&n); err != nil || n != 2 {
		t.Fatalf("count in batch = %d, %v", n, err)
	}
	// A failing statement rolls back the whole batch.
	_, err = o.Batch(ctx, []client.Statement{
		{SQL: "INSERT INTO users(name) VALUES ('c')"},
		{SQL: "INSERT INTO nope VALUES (1)"},
	})
	if !errors.Is(err, client.ErrSQL) {
		t.Fatalf("failing batch = %v, want ErrSQL", err)
	}
	if err := mustQuery(t, o, "SELECT count(*) FROM users").One(&n); err != nil || n != 2 {
		t.Fatalf("count after failed batch = %d, %v", n, err)
	}
	// A read-only batch, declared so.
	results, err = o.Batch(ctx, []client.Statement{{SQL: "SELECT name FROM users ORDER BY id"}, {SQL: "SELECT email FROM users ORDER BY id"}}, client.ReadOnly(), client.Stale())
	if err != nil || !equalRows(results[0].Raw(), [][]any{{"a"}, {"b"}}) || !equalRows(results[1].Raw(), [][]any{{"a@x"}, {nil}}) {
		t.Fatalf("read batch = %v, %v", results, err)
	}
	// Several statements in one string without parameters.
	r, err := o.SQL(ctx, "UPDATE users SET name = upper(name); SELECT group_concat(name) FROM users")
	var names string
	if err != nil || r.One(&names) != nil || names != "A,B" {
		t.Fatalf("multi-statement = %q, %v", names, err)
	}
	// UPDATE … RETURNING: the seed's safe counter in SQL.
	if _, err := o.SQL(ctx, "CREATE TABLE c(id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO c VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		r, err := o.SQL(ctx, "UPDATE c SET n = n + 1 WHERE id = ? RETURNING n", 1)
		if err != nil || r.One(&n) != nil || n != want {
			t.Fatalf("counter = %d, %v; want %d", n, err, want)
		}
	}
}

// TestFailingReadOnlySQL: SQL the client knows only reads goes without an
// Idempotency-Key, so the server answers a failing one as the read it is:
// ErrSQL even for a readonly token, and no Raft entry. On a node of its
// own, with one shard, so that nothing else moves the applied index.
func TestFailingReadOnlySQL(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	tokens, err := api.ParseTokens([]byte(`{"tokens":[{"token":"` + tokenRO + `","role":"readonly"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := testnode.Start(t.TempDir(), testnode.Options{ID: "ro", Shards: 1, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	// Both clients key every write they send (WithIdempotency): reads must
	// still go without a key.
	admin := newClientAt(t, []string{n.URL}, client.WithIdempotency())
	ro := newClientAt(t, []string{n.AuthURL}, client.WithToken(tokenRO), client.WithIdempotency())
	if _, err := admin.Namespace("t").Object("o").SQL(ctx, "CREATE TABLE t(a)"); err != nil {
		t.Fatal(err)
	}
	applied := func() uint64 {
		st, err := admin.ClusterStatus(ctx)
		if err != nil || len(st.Shards) != 1 {
			t.Fatalf("ClusterStatus = %+v, %v", st, err)
		}
		return st.Shards[0].AppliedIndex
	}
	before := applied()

	const bad = "SELECT nope FROM t"
	for name, c := range map[string]*client.Client{"readonly": ro, "admin": admin} {
		o := c.Namespace("t").Object("o")
		for call, f := range map[string]func() error{
			"Query":          func() error { _, err := o.Query(ctx, bad); return err },
			"Query Stale":    func() error { _, err := o.Query(ctx, bad, client.Stale()); return err },
			"SQL":            func() error { _, err := o.SQL(ctx, bad); return err },
			"Batch":          func() error { _, err := o.Batch(ctx, []client.Statement{{SQL: "SELECT 1"}, {SQL: bad}}); return err },
			"Batch ReadOnly": func() error { _, err := o.Batch(ctx, []client.Statement{{SQL: bad}}, client.ReadOnly()); return err },
			"Tx": func() error {
				// sql ops only: one that also reads keys goes through the log.
				_, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpSQL("SELECT 1"), client.OpSQL(bad)}})
				return err
			},
		} {
			if err := f(); !errors.Is(err, client.ErrSQL) {
				t.Errorf("%s, %s of a bad SELECT = %v, want ErrSQL", name, call, err)
			}
		}
	}
	if _, err := ro.Namespace("t").Object("o").Query(ctx, "SELECT count(*) FROM t"); err != nil {
		t.Fatal(err)
	}
	if after := applied(); after != before {
		t.Fatalf("failing reads moved the applied index from %d to %d", before, after)
	}
}

// TestReadOnlySQLKeys checks which SQL calls carry an Idempotency-Key:
// none that the client knows only reads; a generated one on a write, and on
// a declared read the client cannot check, where the key keeps a mistaken
// declaration from applying a write twice.
func TestReadOnlySQLKeys(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t, client.WithIdempotency())
	o := object(t, c)
	var (
		mu   sync.Mutex
		keys []string
	)
	rec := shared.faults.add(&fault{times: -1, match: func(r *http.Request) bool {
		if forObject(o)(r) {
			mu.Lock()
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			mu.Unlock()
		}
		return false
	}})
	defer shared.faults.remove(rec)
	for _, c := range []struct {
		name  string
		call  func() error
		keyed bool
	}{
		{"SQL write", func() error { _, err := o.SQL(ctx, "CREATE TABLE t(a)"); return err }, true},
		{"Query", func() error { _, err := o.Query(ctx, "SELECT * FROM t"); return err }, false},
		{"SQL of a SELECT", func() error { _, err := o.SQL(ctx, "SELECT * FROM t WHERE a = ?", 1); return err }, false},
		{"Batch of reads", func() error {
			_, err := o.Batch(ctx, []client.Statement{{SQL: "SELECT 1"}, {SQL: "PRAGMA user_version"}})
			return err
		}, false},
		{"Tx of reads", func() error {
			_, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpGet("k"), client.OpSQL("SELECT 1")}})
			return err
		}, false},
		{"Query the client cannot check", func() error { _, err := o.Query(ctx, "PRAGMA table_info(t)"); return err }, true},
	} {
		mu.Lock()
		keys = nil
		mu.Unlock()
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		mu.Lock()
		got := keys
		mu.Unlock()
		if len(got) != 1 || (got[0] != "") != c.keyed {
			t.Errorf("%s sent Idempotency-Keys %q, want keyed %v", c.name, got, c.keyed)
		}
	}
}

// TestSQLCallOptions: SQL and Query take their options among the
// arguments, which bind without them.
func TestSQLCallOptions(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	o := object(t, newClient(t))
	if _, err := o.SQL(ctx, "CREATE TABLE t(a, b)"); err != nil {
		t.Fatal(err)
	}

	// IdempotencyKey: the lost answer of an insert is retried, applied once.
	f := shared.faults.add(&fault{match: method("POST", forObject(o)), times: 1, drop: true})
	rows, err := o.SQL(ctx, "INSERT INTO t VALUES (?, ?) RETURNING a, b", 1, client.IdempotencyKey("sql-opt-1"), "x")
	shared.faults.remove(f)
	var a int
	var b string
	if err != nil || rows.One(&a, &b) != nil || a != 1 || b != "x" || f.hits.Load() != 1 {
		t.Fatalf("keyed SQL after a lost answer = (%d, %q), %v (dropped %d)", a, b, err, f.hits.Load())
	}
	var n int
	if err := mustQuery(t, o, "SELECT count(*) FROM t").One(&n); err != nil || n != 1 {
		t.Fatalf("%d rows, want 1: applied twice?", n)
	}

	// Stale: ?consistency=stale.
	var query string
	rec := shared.faults.add(&fault{times: -1, match: func(r *http.Request) bool {
		if forObject(o)(r) {
			query = r.URL.RawQuery
		}
		return false
	}})
	rows, err = o.Query(ctx, "SELECT b FROM t WHERE a = ?", client.Stale(), 1)
	shared.faults.remove(rec)
	if err != nil || rows.One(&b) != nil || b != "x" || query != "consistency=stale" {
		t.Fatalf("Query with Stale = %q, %v (query %q)", b, err, query)
	}

	// Options a call does not take: ErrInvalidCall, nothing sent.
	for name, err := range map[string]error{
		"Query IdempotencyKey": second(o.Query(ctx, "SELECT 1", client.IdempotencyKey("k"))),
		"SQL IfAbsent":         second(o.SQL(ctx, "SELECT 1", client.IfAbsent())),
		"Batch IfExists":       second(o.Batch(ctx, []client.Statement{{SQL: "SELECT 1"}}, client.IfExists())),
		"Tx ReadOnly with put": second(o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpPut("k", 1)}}, client.ReadOnly())),
		"unencodable argument": second(o.SQL(ctx, "SELECT ?", make(chan int))),
	} {
		var ce *client.Error
		if !errors.Is(err, client.ErrInvalidCall) || errors.As(err, &ce) {
			t.Errorf("%s = %v, want ErrInvalidCall", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
