package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const testShard = 7

func TestOpenFresh(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, testShard)
	if f.Shard() != testShard || f.Applied() != 0 || !f.Ready() {
		t.Fatalf("fresh FSM: Shard %d Applied %d Ready %v; want %d, 0, true", f.Shard(), f.Applied(), f.Ready(), testShard)
	}
	if recs := allDump(t, db); len(recs) != 0 {
		t.Fatalf("Open wrote %d records: %v", len(recs), recs)
	}
	// A nil logger is allowed.
	if _, err := fsm.Open(db, testShard, nil); err != nil {
		t.Fatalf("Open with a nil logger: %v", err)
	}
}

func TestApplyPutThenGet(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, testShard)
	puts := []objectstore.Entry{
		entry("bytes", objectstore.ContentTypeBytes, []byte{0, 1, 2, 0xff}),
		entry("json", objectstore.ContentTypeJSON, []byte(`{"a":1}`)),
		entry("text", objectstore.ContentTypeText, []byte("héllo")),
		entry("custom", "image/png", []byte("\x89PNG")),
		entry("empty", objectstore.ContentTypeText, nil),
	}
	r := applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(puts...))}))
	if r.Tx == nil || r.Tx.Version != 1 || len(r.Tx.Results) != 1 || r.Tx.Results[0].Count != len(puts) {
		t.Fatalf("put response %+v, want version 1 and count %d", r.Tx, len(puts))
	}
	keys := []string{"text", "missing", "bytes", "json", "custom", "empty"}
	r = applyOK(t, f, 2, txData(t, 2, "o", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpGet, Keys: keys})}))
	if r.Tx.Version != 2 {
		t.Errorf("get tx version %d, want its index 2", r.Tx.Version)
	}
	got := r.Tx.Results[0].Entries
	want := []objectstore.Entry{puts[2], puts[0], puts[1], puts[3], puts[4]} // in the order asked, missing left out
	if len(got) != len(want) {
		t.Fatalf("get returned %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value.Data, want[i].Value.Data) ||
			got[i].Value.ContentType != want[i].Value.ContentType || got[i].Value.Version != 1 {
			t.Errorf("entry %d = %+v, want %+v at version 1", i, got[i], want[i])
		}
	}
	if f.Applied() != 2 || appliedIndex(t, db, testShard) != 2 {
		t.Fatalf("Applied %d, on disk %d; want 2", f.Applied(), appliedIndex(t, db, testShard))
	}
	// The same data straight from Pebble, in another namespace/object nothing.
	if v, ok := getValue(t, db, testShard, "ns", "o", "json"); !ok || string(v.Data) != `{"a":1}` || v.Version != 1 {
		t.Fatalf("GetValue = %+v, %v", v, ok)
	}
	if _, ok := getValue(t, db, testShard, "ns", "other", "json"); ok {
		t.Fatalf("a put to one object is visible in another")
	}
	if _, ok := getValue(t, db, testShard, "ns2", "o", "json"); ok {
		t.Fatalf("a put in one namespace is visible in another")
	}
}

func TestApplyVersionsAreLogIndexes(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, testShard)
	tx := func(i uint64, t2 objectstore.Tx) *fsm.Response {
		return applyOK(t, f, i, txData(t, int(i), "o", t2))
	}
	// Raft indexes need not be dense at the FSM: configuration entries and
	// barriers never reach Apply.
	tx(10, objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("1"))))})
	tx(11, objectstore.Tx{Ops: ops(putOp(entry("b", "", []byte("2"))))})
	if r := tx(12, objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpIncr, Key: "c", By: "5"})}); r.Tx.Results[0].Number != "5" {
		t.Fatalf("incr = %q, want 5", r.Tx.Results[0].Number)
	}
	tx(15, objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("3"))))})
	r := tx(16, objectstore.Tx{
		If:  []objectstore.Cond{{Kind: objectstore.CondVersionIs, Key: "a", Version: 15}, {Kind: objectstore.CondVersionIs, Key: "b", Version: 11}},
		Ops: ops(putOp(entry("d", "", []byte("4"))), objectstore.Op{Kind: objectstore.OpIncr, Key: "c", By: "1"}),
	})
	if r.Tx.Version != 16 {
		t.Fatalf("tx version %d, want 16", r.Tx.Version)
	}
	for key, want := range map[string]uint64{"a": 15, "b": 11, "c": 16, "d": 16} {
		if v, ok := getValue(t, db, testShard, "ns", "o", key); !ok || v.Version != want {
			t.Errorf("%s: version %d (found %v), want %d", key, v.Version, ok, want)
		}
	}
	if f.Applied() != 16 {
		t.Fatalf("Applied = %d, want 16", f.Applied())
	}
}

func TestApplyFailedPreconditionWritesNothing(t *testing.T) {
	conds := []struct {
		name string
		cond objectstore.Cond
	}{
		{"version is, other version", objectstore.Cond{Kind: objectstore.CondVersionIs, Key: "a", Version: 2}},
		{"version is, missing key", objectstore.Cond{Kind: objectstore.CondVersionIs, Key: "nope", Version: 1}},
		{"version is not, same version", objectstore.Cond{Kind: objectstore.CondVersionIsNot, Key: "a", Version: 1}},
		{"exists, missing key", objectstore.Cond{Kind: objectstore.CondExists, Key: "nope"}},
		{"missing, existing key", objectstore.Cond{Kind: objectstore.CondMissing, Key: "a"}},
	}
	for _, tc := range conds {
		t.Run(tc.name, func(t *testing.T) {
			db := memDB(t)
			f := openFSM(t, db, testShard)
			applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(
				putOp(entry("a", objectstore.ContentTypeJSON, []byte("1"))),
				objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "1"})}))
			before := shardDump(t, db, testShard)

			r := apply(t, f, 2, txData(t, 2, "o", objectstore.Tx{
				If: []objectstore.Cond{{Kind: objectstore.CondExists, Key: "a"}, tc.cond},
				Ops: ops(
					putOp(entry("x", "", []byte("x")), entry("a", "", []byte("overwritten"))),
					objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "1"},
					objectstore.Op{Kind: objectstore.OpDelete, Keys: []string{"a"}},
					objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true}),
			}))
			if r == nil || r.Tx != nil || !errors.Is(r.Err, objectstore.ErrPreconditionFailed) {
				t.Fatalf("response %+v, want only Err wrapping ErrPreconditionFailed", r)
			}
			var oe *objectstore.Error
			if !errors.As(r.Err, &oe) || oe.Condition != 1 {
				t.Fatalf("Err = %#v, want an *objectstore.Error naming condition 1", r.Err)
			}
			if f.Applied() != 2 || appliedIndex(t, db, testShard) != 2 {
				t.Fatalf("Applied %d, on disk %d; want the failed entry's index 2", f.Applied(), appliedIndex(t, db, testShard))
			}
			expectSameKV(t, "state after a failed precondition",
				withoutApplied(t, testShard, shardDump(t, db, testShard)), withoutApplied(t, testShard, before))

			// The next entry applies normally and is stamped with its own index.
			r = applyOK(t, f, 3, txData(t, 3, "o", objectstore.Tx{Ops: ops(putOp(entry("x", "", []byte("x"))))}))
			if v, ok := getValue(t, db, testShard, "ns", "o", "x"); !ok || v.Version != 3 || r.Tx.Version != 3 {
				t.Fatalf("x after the next entry: %+v %v", v, ok)
			}
		})
	}
}

// A business error raised by a later op discards the writes earlier ops of
// the same tx made in the batch.
func TestApplyBusinessErrorDiscardsEarlierWrites(t *testing.T) {
	tests := []struct {
		name string
		tx   objectstore.Tx
		want error
	}{
		{"incr of text", objectstore.Tx{Ops: ops(
			putOp(entry("a", "", []byte("1")), entry("t", objectstore.ContentTypeText, []byte("abc"))),
			objectstore.Op{Kind: objectstore.OpDelete, Keys: []string{"keep"}},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "t", By: "1"})}, objectstore.ErrNotANumber},
		{"incr overflow", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "big", By: "9223372036854775807"},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "big", By: "1"})}, objectstore.ErrNotANumber},
		{"empty key", objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("1")), entry("", "", []byte("1"))))}, objectstore.ErrInvalidKey},
		{"too large", objectstore.Tx{Ops: ops(putOp(entry("a", "", make([]byte, objectstore.MaxEntryBytes))))}, objectstore.ErrTooLarge},
		{"bad list cursor", objectstore.Tx{Ops: ops(
			putOp(entry("a", "", []byte("1"))),
			objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Cursor: "!!"}})}, objectstore.ErrInvalidArgument},
		{"no ops", objectstore.Tx{}, objectstore.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := memDB(t)
			f := openFSM(t, db, testShard)
			applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(entry("keep", "", []byte("k"))))}))
			before := shardDump(t, db, testShard)
			r := apply(t, f, 2, txData(t, 2, "o", tt.tx))
			if r == nil || r.Tx != nil || !errors.Is(r.Err, tt.want) {
				t.Fatalf("response %+v, want Err wrapping %v", r, tt.want)
			}
			expectSameKV(t, "state after a business error",
				withoutApplied(t, testShard, shardDump(t, db, testShard)), withoutApplied(t, testShard, before))
			if f.Applied() != 2 || appliedIndex(t, db, testShard) != 2 {
				t.Fatalf("Applied %d, on disk %d; want 2", f.Applied(), appliedIndex(t, db, testShard))
			}
		})
	}
}

// Applying the same entries again (a restart replays the Raft log from the
// last snapshot) changes nothing and answers nil.
func TestApplyReplayIsIdempotent(t *testing.T) {
	entries := workload(t, 40)
	fs := vfs.NewMem()
	db := openDB(t, fs)
	f := openFSM(t, db, testShard)
	applyRange(t, f, entries, 1, len(entries))
	once := allDump(t, db)

	for round, g := range []*fsm.FSM{f, openFSM(t, db, testShard)} {
		if g.Applied() != uint64(len(entries)) {
			t.Fatalf("round %d: Applied = %d, want %d", round, g.Applied(), len(entries))
		}
		for i, d := range entries {
			if r := g.Apply(logEntry(uint64(i+1), d)); r != nil {
				t.Fatalf("round %d: replaying entry %d returned %#v, want nil", round, i+1, r)
			}
		}
		expectSameKV(t, fmt.Sprintf("round %d: database after replay", round), allDump(t, db), once)
	}

	// Also across a restart of Pebble, replaying only a suffix.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	g := openFSM(t, db, testShard)
	for i := len(entries) / 2; i < len(entries); i++ {
		if r := g.Apply(logEntry(uint64(i+1), entries[i])); r != nil {
			t.Fatalf("after reopen: replaying entry %d returned %#v, want nil", i+1, r)
		}
	}
	expectSameKV(t, "database after reopen and replay", allDump(t, db), once)

	// Apply twice = apply once, against a run that applied each entry once.
	states, _ := referenceRun(t, testShard, entries)
	expectSameKV(t, "replayed state vs. a single run", shardDump(t, db, testShard), states[len(entries)])
}

func TestOpenReadsAppliedIndex(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	f := openFSM(t, db, testShard)
	other := openFSM(t, db, testShard+1)
	entries := workload(t, 12)
	applyRange(t, f, entries, 1, 12)
	apply(t, other, 3, entries[0])

	if g := openFSM(t, db, testShard); g.Applied() != 12 || !g.Ready() {
		t.Fatalf("reopened FSM: Applied %d Ready %v, want 12, true", g.Applied(), g.Ready())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	for shard, want := range map[uint32]uint64{testShard: 12, testShard + 1: 3, testShard + 2: 0} {
		if g := openFSM(t, db, shard); g.Applied() != want || !g.Ready() {
			t.Errorf("shard %d after a Pebble restart: Applied %d Ready %v, want %d, true", shard, g.Applied(), g.Ready(), want)
		}
	}
}

func TestApplySkipsIgnorableUnknownTypes(t *testing.T) {
	for _, data := range [][]byte{
		{1, 0x80},
		{1, 0xff},
		{1, 0x80 | byte(fsm.TypeTx)}, // the flag makes a distinct type, not a tx
		ignorableEntry(1),
		append([]byte{1, 0x93}, bytes.Repeat([]byte{0xff}, 100)...),
	} {
		t.Run(fmt.Sprintf("%x", data[:2]), func(t *testing.T) {
			db := memDB(t)
			f := openFSM(t, db, testShard)
			applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("1"))))}))
			before := shardDump(t, db, testShard)
			if r := f.Apply(logEntry(2, data)); r != nil {
				t.Fatalf("Apply of an ignorable entry = %#v, want nil", r)
			}
			if f.Applied() != 2 || appliedIndex(t, db, testShard) != 2 {
				t.Fatalf("Applied %d, on disk %d; want the skipped entry's index 2", f.Applied(), appliedIndex(t, db, testShard))
			}
			expectSameKV(t, "state after a skipped entry",
				withoutApplied(t, testShard, shardDump(t, db, testShard)), withoutApplied(t, testShard, before))
			if g := openFSM(t, db, testShard); g.Applied() != 2 {
				t.Fatalf("reopened: Applied = %d, want 2", g.Applied())
			}
			r := applyOK(t, f, 3, txData(t, 3, "o", objectstore.Tx{Ops: ops(putOp(entry("b", "", []byte("2"))))}))
			if r.Tx.Version != 3 {
				t.Fatalf("next entry's version %d, want 3", r.Tx.Version)
			}
		})
	}
}

// A committed entry that cannot be decoded stops the node: it panics and
// writes nothing, not even its index.
func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	valid := txData(t, 2, "o", objectstore.Tx{Ops: ops(putOp(entry("b", "", []byte("2"))))})
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{1}},
		{"unknown required type", []byte{1, 0x05}},
		{"unknown required type with payload", append([]byte{1, 0x7f}, valid[2:]...)},
		{"unknown format version", append([]byte{2}, valid[1:]...)},
		{"unknown format version, ignorable bit", []byte{2, 0x81}},
		{"format version 0", []byte{0, 0x80}},
		{"truncated tx", valid[:len(valid)-1]},
		{"trailing bytes", append(slices.Clone(valid), 0)},
		{"unknown op kind", txData(t, 2, "o", objectstore.Tx{Ops: ops(objectstore.Op{Kind: 0x7f})})},
		{"truncated set-namespace", mustEncode(t, &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns",
			NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: "http://x"}})[:8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := memDB(t)
			f := openFSM(t, db, testShard)
			applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("1"))))}))
			before := allDump(t, db)
			p := mustPanic(t, "Apply of an undecodable entry", func() { f.Apply(logEntry(2, tt.data)) })
			if msg := fmt.Sprint(p); !strings.Contains(msg, "cannot be decoded") {
				t.Errorf("panic %q does not say the entry cannot be decoded", msg)
			}
			if f.Applied() != 1 {
				t.Errorf("Applied = %d after the panic, want 1", f.Applied())
			}
			expectSameKV(t, "database after the panic", allDump(t, db), before)
		})
	}
}

func TestApplySetNamespace(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, testShard)
	cfg := objectstore.NamespaceConfig{AlarmWebhook: "https://hooks.example/a", AlarmTimeout: 15 * time.Second, AlarmMaxRetries: 3}
	set := func(index uint64, ns string, c objectstore.NamespaceConfig) {
		t.Helper()
		r := applyOK(t, f, index, mustEncode(t, &fsm.Command{Type: fsm.TypeSetNamespace, Header: hdr(int(index)), Namespace: ns, NamespaceConfig: &c}))
		// A new configuration (version 0) takes the entry's index as its
		// version, and the response says which.
		if r.Tx == nil || r.Tx.Version != index {
			t.Fatalf("set-namespace response %+v, want version %d", r, index)
		}
	}
	get := func(ns string) (objectstore.NamespaceConfig, bool) {
		t.Helper()
		c, found, err := objectstore.GetNamespaceConfig(db, testShard, ns)
		if err != nil {
			t.Fatalf("GetNamespaceConfig(%q): %v", ns, err)
		}
		return c, found
	}
	if _, found := get("ns"); found {
		t.Fatal("a namespace is configured before any entry")
	}
	set(1, "ns", cfg)
	cfg.Version = 1
	if got, found := get("ns"); !found || got != cfg {
		t.Fatalf("config = %+v (found %v), want %+v", got, found, cfg)
	}
	if _, found := get("ns2"); found {
		t.Fatal("configuring one namespace configured another")
	}
	if _, found, _ := objectstore.GetNamespaceConfig(db, testShard+1, "ns"); found {
		t.Fatal("configuring a namespace in one shard configured it in another")
	}
	cfg2 := objectstore.NamespaceConfig{}
	set(2, "ns", cfg2)
	cfg2.Version = 2
	set(3, "", objectstore.NamespaceConfig{AlarmWebhook: "http://empty-name"})
	if got, found := get("ns"); !found || got != cfg2 {
		t.Fatalf("overwritten config = %+v (found %v), want %+v", got, found, cfg2)
	}
	if got, found := get(""); !found || got.AlarmWebhook != "http://empty-name" {
		t.Fatalf("config of the empty namespace = %+v (found %v)", got, found)
	}
	if f.Applied() != 3 {
		t.Fatalf("Applied = %d, want 3", f.Applied())
	}
}

// Shards sharing one Pebble database never see each other's entries.
func TestApplyShardsAreIsolated(t *testing.T) {
	db := memDB(t)
	entries := workload(t, 30)
	a := openFSM(t, db, 1)
	b := openFSM(t, db, 2)
	applyRange(t, a, entries, 1, 30)
	bBefore := shardDump(t, db, 2)
	if len(bBefore) != 0 {
		t.Fatalf("shard 2 holds %d records after entries to shard 1", len(bBefore))
	}
	applyRange(t, b, entries[:10], 1, 10)
	if a.Applied() != 30 || b.Applied() != 10 {
		t.Fatalf("Applied: shard 1 %d, shard 2 %d; want 30, 10", a.Applied(), b.Applied())
	}
	states, _ := referenceRun(t, 1, entries)
	expectSameKV(t, "shard 1", shardDump(t, db, 1), states[30])
	states2, _ := referenceRun(t, 2, entries[:10])
	expectSameKV(t, "shard 2", shardDump(t, db, 2), states2[10])
	// Every record in the database belongs to shard 1 or 2.
	if got, want := len(allDump(t, db)), len(states[30])+len(states2[10]); got != want {
		t.Fatalf("database holds %d records, want %d", got, want)
	}
}

// Two replicas applying the same entries end in byte-identical state and
// return identical responses.
func TestApplyIsDeterministic(t *testing.T) {
	entries := workload(t, 50)
	s1, r1 := referenceRun(t, testShard, entries)
	s2, r2 := referenceRun(t, testShard, entries)
	for i := range s1 {
		expectSameKV(t, fmt.Sprintf("state after %d entries", i), s2[i], s1[i])
		if !reflect.DeepEqual(r1[i], r2[i]) {
			t.Fatalf("response %d differs: %+v vs %+v", i, r1[i], r2[i])
		}
	}
	// The workload exercises what it claims to.
	var failed, skipped, ok int
	for _, r := range r1[1:] {
		switch {
		case r == nil:
			skipped++
		case r.Err != nil:
			failed++
		default:
			ok++
		}
	}
	if failed == 0 || skipped == 0 || ok == 0 {
		t.Fatalf("workload: %d ok, %d failed, %d skipped; want some of each", ok, failed, skipped)
	}
}

// A stored record that cannot be decoded is a storage failure, not the
// client's error: apply panics rather than answer.
func TestApplyPanicsOnCorruptRecord(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, testShard)
	applyOK(t, f, 1, txData(t, 1, "o", objectstore.Tx{Ops: ops(putOp(entry("a", "", []byte("1"))))}))
	recs := withoutApplied(t, testShard, shardDump(t, db, testShard))
	if len(recs) != 1 {
		t.Fatalf("want exactly the record of key a, got %v", recs)
	}
	if err := db.Set(recs[0].key, []byte{0x05, 0x77}, pebble.Sync); err != nil { // version 5, unknown content-type code
		t.Fatal(err)
	}
	p := mustPanic(t, "Apply over a corrupt record", func() {
		f.Apply(logEntry(2, txData(t, 2, "o", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpGet, Keys: []string{"a"}})})))
	})
	if msg := fmt.Sprint(p); !strings.Contains(msg, "storage failure") {
		t.Errorf("panic %q does not name a storage failure", msg)
	}
	if f.Applied() != 1 {
		t.Errorf("Applied = %d after the panic, want 1", f.Applied())
	}
}
