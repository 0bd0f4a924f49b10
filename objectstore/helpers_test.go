package objectstore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// newDB opens an empty Pebble database on an in-memory filesystem.
func newDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: testlog.Pebble{}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("db.Close: %v", err)
		}
	})
	return db
}

// apply runs tx on obj the way the state machine does: in one indexed batch
// that is both the reader and the writer, committed only on success.
func apply(t testing.TB, db *pebble.DB, obj Object, tx *Tx, version uint64) (*TxResult, error) {
	t.Helper()
	b := db.NewIndexedBatch()
	res, err := execTx(b, b, obj, tx, version)
	if err != nil {
		if cerr := b.Close(); cerr != nil {
			t.Fatalf("batch.Close: %v", cerr)
		}
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("batch.Commit: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("batch.Close: %v", err)
	}
	return res, nil
}

// execTx is Exec with no SQL engine: this package's tests cover KV, list
// and directory semantics, not SQL.
func execTx(r pebble.Reader, w *pebble.Batch, obj Object, tx *Tx, version uint64) (*TxResult, error) {
	return Exec(r, w, obj, tx, version, ExecEnv{})
}

// putAlarm writes obj's alarm record directly (no due index, no count): an
// object that holds nothing but an alarm.
func putAlarm(t testing.TB, db *pebble.DB, obj Object, scheduled int64) {
	t.Helper()
	putRaw(t, db, obj.alarmKey(), Alarm{ScheduledTime: scheduled, NextAttempt: scheduled}.encode())
}

// putNSConfig writes ns's configuration in shard through b.
func putNSConfig(b *pebble.Batch, shard uint32, ns string, c NamespaceConfig) error {
	_, err := PutNamespaceConfig(b, b, shard, ns, c)
	return err
}

// mustApply is apply that fails the test on error.
func mustApply(t testing.TB, db *pebble.DB, obj Object, tx *Tx, version uint64) *TxResult {
	t.Helper()
	res, err := apply(t, db, obj, tx, version)
	if err != nil {
		t.Fatalf("Exec(%+v): %v", tx, err)
	}
	return res
}

// seedKeys puts every key of keys into obj at version, each with the value
// "v:"+key as text.
func seedKeys(t testing.TB, db *pebble.DB, obj Object, version uint64, keys ...string) {
	t.Helper()
	for len(keys) > 0 {
		n := min(len(keys), MaxKeysPerOp)
		puts := make([]Entry, 0, n)
		for _, k := range keys[:n] {
			puts = append(puts, Entry{Key: k, Value: Value{Data: []byte("v:" + k), ContentType: ContentTypeText}})
		}
		mustApply(t, db, obj, &Tx{Ops: []Op{{Kind: OpPut, Puts: puts}}}, version)
		keys = keys[n:]
	}
}

// putRaw writes one raw key/value pair directly and commits it.
func putRaw(t testing.TB, db *pebble.DB, key, value []byte) {
	t.Helper()
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatalf("db.Set: %v", err)
	}
}

// putOne writes one KV entry through a transaction.
func putOne(t testing.TB, db *pebble.DB, obj Object, key string, data []byte, contentType string, version uint64) {
	t.Helper()
	mustApply(t, db, obj, &Tx{Ops: []Op{{Kind: OpPut, Puts: []Entry{{Key: key, Value: Value{Data: data, ContentType: contentType}}}}}}, version)
}

// entryKeys returns the keys of es, in order.
func entryKeys(es []Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

// allKeys returns every raw key in r, in order, with its value.
func allKeys(t testing.TB, r pebble.Reader) (keys, values [][]byte) {
	t.Helper()
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatalf("NewIter: %v", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatalf("ValueAndErr: %v", err)
		}
		values = append(values, bytes.Clone(v))
	}
	if err := it.Error(); err != nil {
		t.Fatalf("iterator: %v", err)
	}
	return keys, values
}

// keysIn returns the raw keys of r that lie in [lo, hi).
func keysIn(t testing.TB, r pebble.Reader, lo, hi []byte) [][]byte {
	t.Helper()
	keys, _ := allKeys(t, r)
	var out [][]byte
	for _, k := range keys {
		if inSpan(k, lo, hi) {
			out = append(out, k)
		}
	}
	return out
}

// inSpan reports whether k lies in [lo, hi); hi nil means unbounded.
func inSpan(k, lo, hi []byte) bool {
	return bytes.Compare(k, lo) >= 0 && (hi == nil || bytes.Compare(k, hi) < 0)
}

// wantErr fails the test unless err is an instance of sentinel. For the
// package's own sentinels it also checks that err is an *Error.
func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, sentinel)
	}
	if sentinel == ErrCorrupt {
		return // decodeValue returns the bare sentinel
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want an *Error", err, err)
	}
	if e.Detail == "" {
		t.Errorf("err %v has an empty Detail", err)
	}
}

// sameStrings reports a difference between got and want, printing both.
func sameStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// withBatch runs fn on a fresh batch and commits it.
func withBatch(t testing.TB, db *pebble.DB, fn func(b *pebble.Batch) error) {
	t.Helper()
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("batch.Commit: %v", err)
	}
}
