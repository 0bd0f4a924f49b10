package sqlstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func openDB(t testing.TB, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: testlog.Pebble{}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

// memDB returns a Pebble database on a fresh in-memory filesystem, closed
// when the test ends.
func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db := openDB(t, vfs.NewMem())
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	objA = objectstore.Object{Shard: 1, Namespace: "ns", Name: "a"}
	objB = objectstore.Object{Shard: 1, Namespace: "ns", Name: "b"}
)

// env is the SQLEnv of the i-th write of a test.
func env(i int) objectstore.SQLEnv {
	return objectstore.SQLEnv{NowMillis: 1764500000000 + int64(i)*1234, Seed: uint64(i) * 0x9e3779b97f4a7c15}
}

// stmts turns SQL strings into statements without parameters.
func stmts(sql ...string) []objectstore.SQLStatement {
	out := make([]objectstore.SQLStatement, len(sql))
	for i, s := range sql {
		out[i] = objectstore.SQLStatement{SQL: s}
	}
	return out
}

// write applies statements to obj the way the state machine applies an
// entry: one indexed batch, committed if every statement succeeded and
// discarded otherwise.
func write(t testing.TB, db *pebble.DB, s *Store, obj objectstore.Object, e objectstore.SQLEnv, sts ...objectstore.SQLStatement) ([]*objectstore.SQLResult, error) {
	t.Helper()
	b := db.NewIndexedBatch()
	defer b.Close()
	res, err := writeBatch(b, s, obj, e, sts...)
	if err != nil {
		return res, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatalf("batch commit: %v", err)
	}
	return res, nil
}

// writeBatch runs a session on b without committing b.
func writeBatch(b *pebble.Batch, s *Store, obj objectstore.Object, e objectstore.SQLEnv, sts ...objectstore.SQLStatement) ([]*objectstore.SQLResult, error) {
	sess, err := s.Begin(obj, b, b, e)
	if err != nil {
		return nil, err
	}
	var out []*objectstore.SQLResult
	for _, st := range sts {
		r, err := sess.Exec(st)
		if err != nil {
			sess.Rollback()
			return out, err
		}
		out = append(out, r)
	}
	if err := sess.Commit(); err != nil {
		return out, err
	}
	return out, nil
}

// mustWrite is write that fails the test on an error.
func mustWrite(t testing.TB, db *pebble.DB, s *Store, obj objectstore.Object, e objectstore.SQLEnv, sql ...string) []*objectstore.SQLResult {
	t.Helper()
	res, err := write(t, db, s, obj, e, stmts(sql...)...)
	if err != nil {
		t.Fatalf("write %q: %v", sql, err)
	}
	return res
}

// read runs statements as a read session on the committed state of db.
func read(t testing.TB, db *pebble.DB, s *Store, obj objectstore.Object, sts ...objectstore.SQLStatement) ([]*objectstore.SQLResult, error) {
	t.Helper()
	sess, err := s.Begin(obj, db, nil, env(0))
	if err != nil {
		return nil, err
	}
	defer sess.Rollback()
	var out []*objectstore.SQLResult
	for _, st := range sts {
		r, err := sess.Exec(st)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// query reads one statement and returns its rows rendered as text.
func query(t testing.TB, db *pebble.DB, s *Store, obj objectstore.Object, sql string, params ...objectstore.SQLValue) [][]string {
	t.Helper()
	res, err := read(t, db, s, obj, objectstore.SQLStatement{SQL: sql, Params: params})
	if err != nil {
		t.Fatalf("read %q: %v", sql, err)
	}
	return render(res[0].Rows)
}

func render(rows [][]objectstore.SQLValue) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = renderValue(v)
		}
	}
	return out
}

func renderValue(v objectstore.SQLValue) string {
	switch v.Type {
	case objectstore.SQLInteger:
		return fmt.Sprint(v.Int)
	case objectstore.SQLFloat:
		return fmt.Sprint(v.Float)
	case objectstore.SQLText:
		return v.Text
	case objectstore.SQLBlob:
		return fmt.Sprintf("x'%x'", v.Blob)
	}
	return "NULL"
}

func oneValue(t testing.TB, db *pebble.DB, s *Store, obj objectstore.Object, sql string) string {
	t.Helper()
	rows := query(t, db, s, obj, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%q returned %v, want one value", sql, rows)
	}
	return rows[0][0]
}

// kv is one Pebble record.
type kv struct{ k, v []byte }

// span returns every record of obj's SQL storage.
func span(t testing.TB, r pebble.Reader, obj objectstore.Object) []kv {
	t.Helper()
	lo, hi := obj.SQLSpan()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []kv
	for it.First(); it.Valid(); it.Next() {
		out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSpan(a, b []kv) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d records vs %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].k, b[i].k) {
			return fmt.Errorf("record %d: key %x vs %x", i, a[i].k, b[i].k)
		}
		if !bytes.Equal(a[i].v, b[i].v) {
			var diff []int
			for j := range min(len(a[i].v), len(b[i].v)) {
				if a[i].v[j] != b[i].v[j] && len(diff) < 8 {
					diff = append(diff, j)
				}
			}
			return fmt.Errorf("record %d (key %x): values differ at offsets %v (of %d, %d bytes)", i, a[i].k, diff, len(a[i].v), len(b[i].v))
		}
	}
	return nil
}

// wantErr fails the test unless err is an *objectstore.Error of sentinel.
func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	var oe *objectstore.Error
	if !errors.Is(err, sentinel) || !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an *objectstore.Error of %v", err, sentinel)
	}
	if oe.Condition != -1 {
		t.Errorf("Condition = %d, want -1", oe.Condition)
	}
}

func text(s string) objectstore.SQLValue {
	return objectstore.SQLValue{Type: objectstore.SQLText, Text: s}
}

func integer(i int64) objectstore.SQLValue {
	return objectstore.SQLValue{Type: objectstore.SQLInteger, Int: i}
}

func blob(b []byte) objectstore.SQLValue {
	return objectstore.SQLValue{Type: objectstore.SQLBlob, Blob: b}
}
