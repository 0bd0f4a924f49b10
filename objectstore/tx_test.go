package objectstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

var txObj = Object{Shard: 5, Namespace: "ns", Name: "obj"}

// getOne reads key of obj from r, failing the test on error.
func getOne(t *testing.T, r pebble.Reader, obj Object, key string) (Value, bool) {
	t.Helper()
	v, found, err := GetValue(r, obj, key)
	if err != nil {
		t.Fatalf("GetValue(%q): %v", key, err)
	}
	return v, found
}

func textPut(kv ...string) Op {
	op := Op{Kind: OpPut}
	for i := 0; i < len(kv); i += 2 {
		op.Puts = append(op.Puts, Entry{Key: kv[i], Value: Value{Data: []byte(kv[i+1]), ContentType: ContentTypeText}})
	}
	return op
}

func jsonPut(key, value string) Op {
	return Op{Kind: OpPut, Puts: []Entry{{Key: key, Value: Value{Data: []byte(value), ContentType: ContentTypeJSON}}}}
}

func TestExecConditions(t *testing.T) {
	db := newDB(t)
	putOne(t, db, txObj, "k", []byte("v"), "", 5)
	for _, tc := range []struct {
		name  string
		cond  Cond
		holds bool
	}{
		{"version is, same", Cond{Kind: CondVersionIs, Key: "k", Version: 5}, true},
		{"version is, other", Cond{Kind: CondVersionIs, Key: "k", Version: 4}, false},
		{"version is, missing", Cond{Kind: CondVersionIs, Key: "missing", Version: 5}, false},
		{"version is 0, missing", Cond{Kind: CondVersionIs, Key: "missing", Version: 0}, false},
		{"version is not, same", Cond{Kind: CondVersionIsNot, Key: "k", Version: 5}, false},
		{"version is not, other", Cond{Kind: CondVersionIsNot, Key: "k", Version: 6}, true},
		{"version is not, missing", Cond{Kind: CondVersionIsNot, Key: "missing", Version: 5}, true},
		{"version is not 0, missing", Cond{Kind: CondVersionIsNot, Key: "missing", Version: 0}, true},
		{"version is not 0, present", Cond{Kind: CondVersionIsNot, Key: "k", Version: 0}, true},
		{"exists, present", Cond{Kind: CondExists, Key: "k"}, true},
		{"exists, missing", Cond{Kind: CondExists, Key: "missing"}, false},
		{"missing, present", Cond{Kind: CondMissing, Key: "k"}, false},
		{"missing, missing", Cond{Kind: CondMissing, Key: "missing"}, true},
		{"key of a neighbour object", Cond{Kind: CondExists, Key: "other"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The tested condition is the second; the first always holds.
			tx := &Tx{
				If:  []Cond{{Kind: CondExists, Key: "k"}, tc.cond, {Kind: CondMissing, Key: "never"}},
				Ops: []Op{textPut("written", "x"), {Kind: OpGet, Keys: []string{"k"}}},
			}
			b := db.NewIndexedBatch()
			defer b.Close()
			res, err := execTx(b, b, txObj, tx, 77)
			if tc.holds {
				if err != nil {
					t.Fatalf("Exec: %v", err)
				}
				if len(res.Results) != 2 || res.Results[0].Count != 1 || len(res.Results[1].Entries) != 1 {
					t.Fatalf("results = %+v", res.Results)
				}
				if v, found := getOne(t, b, txObj, "written"); !found || v.Version != 77 {
					t.Fatalf("put did not happen: %+v, %v", v, found)
				}
				return
			}
			if err == nil {
				t.Fatalf("Exec succeeded, want a failed condition")
			}
			if res != nil {
				t.Errorf("a failed Exec returned a result: %+v", res)
			}
			wantErr(t, err, ErrPreconditionFailed)
			var e *Error
			errors.As(err, &e)
			if e.Condition != 1 {
				t.Errorf("Condition = %d, want 1", e.Condition)
			}
			if !strings.Contains(e.Detail, fmt.Sprintf("%q", tc.cond.Key)) {
				t.Errorf("Detail %q does not name key %q", e.Detail, tc.cond.Key)
			}
			if !b.Empty() || b.Count() != 0 {
				t.Errorf("a failed condition left %d writes in the batch", b.Count())
			}
		})
	}
	// A condition on the neighbour's key must not see it.
	putOne(t, db, Object{Shard: 5, Namespace: "ns", Name: "obj\x00"}, "other", []byte("x"), "", 6)
	_, err := apply(t, db, txObj, &Tx{If: []Cond{{Kind: CondExists, Key: "other"}}, Ops: []Op{textPut("a", "b")}}, 8)
	wantErr(t, err, ErrPreconditionFailed)

	// The first failing condition is reported, even when later ones fail too.
	_, err = apply(t, db, txObj, &Tx{If: []Cond{
		{Kind: CondMissing, Key: "k"},
		{Kind: CondExists, Key: "missing"},
	}, Ops: []Op{textPut("a", "b")}}, 8)
	var e *Error
	if !errors.As(err, &e) || e.Condition != 0 {
		t.Fatalf("err = %v, want condition 0 to fail", err)
	}
	// Conditions see the state before the tx, not its own writes.
	_, err = apply(t, db, txObj, &Tx{If: []Cond{{Kind: CondExists, Key: "new"}}, Ops: []Op{textPut("new", "1")}}, 9)
	wantErr(t, err, ErrPreconditionFailed)
	// A tx with only conditions is valid and checks them.
	if _, err := apply(t, db, txObj, &Tx{If: []Cond{{Kind: CondVersionIs, Key: "k", Version: 5}}}, 9); err != nil {
		t.Fatalf("conditions-only tx: %v", err)
	}
	_, err = apply(t, db, txObj, &Tx{If: []Cond{{Kind: CondVersionIs, Key: "k", Version: 9}}}, 9)
	wantErr(t, err, ErrPreconditionFailed)
}

func TestExecOpsSeeEarlierOps(t *testing.T) {
	db := newDB(t)
	putOne(t, db, txObj, "old", []byte("o"), ContentTypeText, 1)
	putOne(t, db, txObj, "gone", []byte("g"), ContentTypeText, 1)
	tx := &Tx{Ops: []Op{
		textPut("user:1", "one", "user:2", "two"),              // 0
		{Kind: OpGet, Keys: []string{"user:2", "user:1"}},      // 1
		{Kind: OpList, List: ListOptions{Prefix: "user:"}},     // 2
		{Kind: OpDelete, Keys: []string{"gone", "user:1"}},     // 3
		{Kind: OpGet, Keys: []string{"gone", "user:1", "old"}}, // 4
		{Kind: OpList, List: ListOptions{}},                    // 5
		{Kind: OpIncr, Key: "n", By: "2"},                      // 6
		{Kind: OpIncr, Key: "n", By: "3"},                      // 7
		{Kind: OpGet, Keys: []string{"n"}},                     // 8
		textPut("user:2", "TWO"),                               // 9
		{Kind: OpGet, Keys: []string{"user:2"}},                // 10
		{Kind: OpDeleteAll},                                    // 11
		{Kind: OpGet, Keys: []string{"old", "n", "user:2"}},    // 12
		{Kind: OpList, List: ListOptions{}},                    // 13
		textPut("after", "a"),                                  // 14
		{Kind: OpList, List: ListOptions{}},                    // 15
		{Kind: OpDelete, Keys: []string{"old", "after"}},       // 16
	}}
	res := mustApply(t, db, txObj, tx, 30)
	if res.Version != 30 || len(res.Results) != len(tx.Ops) {
		t.Fatalf("version %d, %d results", res.Version, len(res.Results))
	}
	for i, r := range res.Results {
		if r.Kind != tx.Ops[i].Kind {
			t.Errorf("result %d has kind %d, want %d", i, r.Kind, tx.Ops[i].Kind)
		}
	}
	r := res.Results
	if r[0].Count != 2 {
		t.Errorf("put count = %d, want 2", r[0].Count)
	}
	sameStrings(t, "get after put", entryKeys(r[1].Entries), []string{"user:2", "user:1"})
	if string(r[1].Entries[0].Value.Data) != "two" || r[1].Entries[0].Value.Version != 30 {
		t.Errorf("get after put = %+v", r[1].Entries[0])
	}
	sameStrings(t, "list after put", entryKeys(r[2].List.Entries), []string{"user:1", "user:2"})
	if r[3].Count != 2 {
		t.Errorf("delete count = %d, want 2", r[3].Count)
	}
	sameStrings(t, "get after delete", entryKeys(r[4].Entries), []string{"old"})
	sameStrings(t, "list after delete", entryKeys(r[5].List.Entries), []string{"old", "user:2"})
	if r[6].Number != "2" || r[7].Number != "5" {
		t.Errorf("incr results %q, %q; want 2, 5", r[6].Number, r[7].Number)
	}
	if e := r[8].Entries; len(e) != 1 || string(e[0].Value.Data) != "5" || !e[0].Value.IsJSON() {
		t.Errorf("get after incr = %+v", e)
	}
	if e := r[10].Entries; len(e) != 1 || string(e[0].Value.Data) != "TWO" {
		t.Errorf("get after overwrite = %+v", e)
	}
	sameStrings(t, "get after deleteAll", entryKeys(r[12].Entries), nil)
	sameStrings(t, "list after deleteAll", entryKeys(r[13].List.Entries), nil)
	sameStrings(t, "list after deleteAll and put", entryKeys(r[15].List.Entries), []string{"after"})
	if r[16].Count != 1 {
		t.Errorf("delete after deleteAll counted %d, want 1", r[16].Count)
	}
	after, err := List(db, txObj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "committed", entryKeys(after.Entries), nil)
}

func TestExecGet(t *testing.T) {
	db := newDB(t)
	putOne(t, db, txObj, "a", []byte("A"), ContentTypeText, 3)
	putOne(t, db, txObj, "b", []byte(`{"x":1}`), ContentTypeJSON, 4)
	putOne(t, db, txObj, "c", []byte{0, 1, 2}, "", 5)
	putOne(t, db, txObj, "d", []byte("img"), "image/png", 6)
	putOne(t, db, Object{Shard: 5, Namespace: "ns", Name: "obj2"}, "e", []byte("E"), "", 7)
	res := mustApply(t, db, txObj, &Tx{Ops: []Op{{Kind: OpGet, Keys: []string{"c", "missing", "a", "e", "d", "b", "zz"}}}}, 99)
	got := res.Results[0].Entries
	sameStrings(t, "get keys", entryKeys(got), []string{"c", "a", "d", "b"})
	want := map[string]Value{
		"a": {Data: []byte("A"), ContentType: ContentTypeText, Version: 3},
		"b": {Data: []byte(`{"x":1}`), ContentType: ContentTypeJSON, Version: 4},
		"c": {Data: []byte{0, 1, 2}, ContentType: ContentTypeBytes, Version: 5},
		"d": {Data: []byte("img"), ContentType: "image/png", Version: 6},
	}
	for _, e := range got {
		w := want[e.Key]
		if !bytes.Equal(e.Value.Data, w.Data) || e.Value.ContentType != w.ContentType || e.Value.Version != w.Version {
			t.Errorf("%q = %+v, want %+v", e.Key, e.Value, w)
		}
	}
	// Only missing keys: no entries.
	res = mustApply(t, db, txObj, &Tx{Ops: []Op{{Kind: OpGet, Keys: []string{"x", "y"}}}}, 99)
	if len(res.Results[0].Entries) != 0 {
		t.Errorf("get of missing keys = %+v", res.Results[0].Entries)
	}
	// A read-only tx runs on a snapshot with no batch.
	snap := db.NewSnapshot()
	defer snap.Close()
	res, err := execTx(snap, nil, txObj, &Tx{
		If:  []Cond{{Kind: CondVersionIs, Key: "a", Version: 3}},
		Ops: []Op{{Kind: OpGet, Keys: []string{"a"}}, {Kind: OpList, List: ListOptions{Reverse: true, Limit: 2}}},
	}, 5)
	if err != nil {
		t.Fatalf("read-only Exec without a batch: %v", err)
	}
	sameStrings(t, "read-only get", entryKeys(res.Results[0].Entries), []string{"a"})
	sameStrings(t, "read-only list", entryKeys(res.Results[1].List.Entries), []string{"d", "c"})
	// A writing tx without a batch is refused.
	for _, op := range []Op{textPut("a", "b"), {Kind: OpDelete, Keys: []string{"a"}}, {Kind: OpIncr, Key: "n", By: "1"}, {Kind: OpDeleteAll}} {
		_, err := execTx(snap, nil, txObj, &Tx{Ops: []Op{{Kind: OpGet, Keys: []string{"a"}}, op}}, 5)
		wantErr(t, err, ErrInvalidArgument)
	}
}

func TestExecDeleteCounts(t *testing.T) {
	db := newDB(t)
	seedKeys(t, db, txObj, 1, "a", "b", "c")
	seedKeys(t, db, Object{Shard: 5, Namespace: "ns", Name: "objx"}, 1, "d")
	res := mustApply(t, db, txObj, &Tx{Ops: []Op{
		{Kind: OpDelete, Keys: []string{"a", "missing", "b", "a", "d"}},
		{Kind: OpDelete, Keys: []string{"a", "b"}},
		{Kind: OpDelete, Keys: []string{"c"}},
	}}, 2)
	for i, want := range []int{2, 0, 1} {
		if got := res.Results[i].Count; got != want {
			t.Errorf("delete op %d counted %d, want %d", i, got, want)
		}
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, found := getOne(t, db, txObj, k); found {
			t.Errorf("%q survived its delete", k)
		}
	}
	if _, found := getOne(t, db, Object{Shard: 5, Namespace: "ns", Name: "objx"}, "d"); !found {
		t.Errorf("delete removed a neighbour's key")
	}
	// Deleting only missing keys writes nothing.
	b := db.NewIndexedBatch()
	defer b.Close()
	res, err := execTx(b, b, txObj, &Tx{Ops: []Op{{Kind: OpDelete, Keys: []string{"a", "zz"}}}}, 3)
	if err != nil || res.Results[0].Count != 0 {
		t.Fatalf("delete of missing keys: %v, %+v", err, res)
	}
	if !b.Empty() {
		t.Errorf("delete of missing keys wrote %d records", b.Count())
	}
}

func TestExecVersions(t *testing.T) {
	db := newDB(t)
	seedKeys(t, db, txObj, 7, "keep", "over")
	res := mustApply(t, db, txObj, &Tx{Ops: []Op{
		{Kind: OpPut, Puts: []Entry{
			{Key: "p1", Value: Value{Data: []byte("1"), Version: 3}}, // Value.Version is ignored
			{Key: "over", Value: Value{Data: []byte("2")}},
		}},
		{Kind: OpIncr, Key: "n", By: "1"},
		{Kind: OpIncr, Key: "n", By: "1"},
		jsonPut("j", `"x"`),
	}}, 1234)
	if res.Version != 1234 {
		t.Errorf("TxResult.Version = %d, want 1234", res.Version)
	}
	l, err := List(db, txObj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"keep": 7, "over": 1234, "p1": 1234, "n": 1234, "j": 1234}
	sameStrings(t, "keys", entryKeys(l.Entries), []string{"j", "keep", "n", "over", "p1"})
	for _, e := range l.Entries {
		if e.Value.Version != want[e.Key] {
			t.Errorf("%q: version %d, want %d", e.Key, e.Value.Version, want[e.Key])
		}
	}
	// A later tx that rewrites one key moves only that key's version.
	mustApply(t, db, txObj, &Tx{Ops: []Op{textPut("p1", "again")}}, 1300)
	if v, _ := getOne(t, db, txObj, "p1"); v.Version != 1300 {
		t.Errorf("p1: version %d, want 1300", v.Version)
	}
	if v, _ := getOne(t, db, txObj, "over"); v.Version != 1234 {
		t.Errorf("over: version %d, want 1234", v.Version)
	}
}

func TestExecIncr(t *testing.T) {
	type stored struct {
		data, contentType string
	}
	for _, tc := range []struct {
		name    string
		initial *stored
		by      string
		want    string
		wantErr error
	}{
		{"missing counts as zero", nil, "1", "1", nil},
		{"missing, negative by", nil, "-3", "-3", nil},
		{"missing, float by", nil, "0.5", "0.5", nil},
		{"missing, zero", nil, "0", "0", nil},
		{"integer sum", &stored{"41", ContentTypeJSON}, "1", "42", nil},
		{"negative by", &stored{"10", ContentTypeJSON}, "-15", "-5", nil},
		{"negative stored", &stored{"-7", ContentTypeJSON}, "7", "0", nil},
		{"minus zero", &stored{"-0", ContentTypeJSON}, "0", "0", nil},
		{"float sum", &stored{"0.5", ContentTypeJSON}, "0.25", "0.75", nil},
		{"int plus float", &stored{"1", ContentTypeJSON}, "0.5", "1.5", nil},
		{"float to integral", &stored{"1.5", ContentTypeJSON}, "-1.5", "0", nil},
		{"exponent stored", &stored{"1e2", ContentTypeJSON}, "1", "101", nil},
		{"exponent by", &stored{"1", ContentTypeJSON}, "1E+2", "101", nil},
		{"large float", &stored{"1e300", ContentTypeJSON}, "1e300", "2e+300", nil},
		{"int64 max", &stored{"9223372036854775806", ContentTypeJSON}, "1", "9223372036854775807", nil},
		{"int64 min", &stored{"-9223372036854775807", ContentTypeJSON}, "-1", "-9223372036854775808", nil},
		{"beyond int64 is a float", &stored{"9223372036854775808", ContentTypeJSON}, "1", "9.223372036854776e+18", nil},
		{"JSON whitespace around the number", &stored{" 5\n", ContentTypeJSON}, "1", "6", nil},
		{"JSON whitespace of every kind", &stored{"\t\r\n 0.5 \n", ContentTypeJSON}, "0.25", "0.75", nil},
		{"only whitespace", &stored{" \n", ContentTypeJSON}, "1", "", ErrNotANumber},
		{"non-JSON whitespace", &stored{"\v5", ContentTypeJSON}, "1", "", ErrNotANumber},
		{"int64 overflow", &stored{"9223372036854775807", ContentTypeJSON}, "1", "", ErrNotANumber},
		{"int64 underflow", &stored{"-9223372036854775808", ContentTypeJSON}, "-1", "", ErrNotANumber},
		{"int64 overflow by max", &stored{"2", ContentTypeJSON}, "9223372036854775807", "", ErrNotANumber},
		{"float overflow", &stored{"1.7e308", ContentTypeJSON}, "1.7e308", "", ErrNotANumber},
		{"stored float out of range", &stored{"1e400", ContentTypeJSON}, "1", "", ErrNotANumber},
		{"JSON string", &stored{`"5"`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"JSON object", &stored{`{"n":5}`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"JSON array", &stored{`[5]`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"JSON true", &stored{`true`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"JSON null", &stored{`null`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"not JSON", &stored{`five`, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"empty JSON value", &stored{``, ContentTypeJSON}, "1", "", ErrNotANumber},
		{"bytes holding digits", &stored{"5", ContentTypeBytes}, "1", "", ErrNotANumber},
		{"text holding digits", &stored{"5", ContentTypeText}, "1", "", ErrNotANumber},
		{"custom type holding digits", &stored{"5", "application/x-number"}, "1", "", ErrNotANumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			if tc.initial != nil {
				putOne(t, db, txObj, "n", []byte(tc.initial.data), tc.initial.contentType, 1)
			}
			res, err := apply(t, db, txObj, &Tx{Ops: []Op{{Kind: OpIncr, Key: "n", By: tc.by}}}, 2)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr)
				v, found := getOne(t, db, txObj, "n")
				if (tc.initial != nil) != found || (found && (string(v.Data) != tc.initial.data || v.Version != 1)) {
					t.Errorf("a failed incr changed the key: %+v, %v", v, found)
				}
				return
			}
			if err != nil {
				t.Fatalf("incr: %v", err)
			}
			if got := res.Results[0].Number; got != tc.want {
				t.Errorf("incr = %q, want %q", got, tc.want)
			}
			if !isJSONNumber(res.Results[0].Number) {
				t.Errorf("incr result %q is not a JSON number", res.Results[0].Number)
			}
			v, found := getOne(t, db, txObj, "n")
			if !found || string(v.Data) != tc.want || v.ContentType != ContentTypeJSON || v.Version != 2 {
				t.Errorf("stored %+v (found %v), want %q as %s at version 2", v, found, tc.want, ContentTypeJSON)
			}
		})
	}
}

func TestIncrInvalidBy(t *testing.T) {
	for _, by := range []string{"", "abc", "01", "1.", ".5", "+1", " 1", "1 ", "1e400", "-1e400", "NaN", "Infinity", `"1"`, "null"} {
		tx := &Tx{Ops: []Op{{Kind: OpIncr, Key: "n", By: by}}}
		wantErr(t, tx.Validate(), ErrInvalidArgument)
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"0", true},
		{"-0", true},
		{"1", true},
		{"-1", true},
		{"10", true},
		{"1234567890", true},
		{"0.5", true},
		{"-0.5", true},
		{"1.25", true},
		{"1e5", true},
		{"1E5", true},
		{"1e+5", true},
		{"1E+2", true},
		{"1e-5", true},
		{"1.5e10", true},
		{"0e0", true},
		{"-0.0e-0", true},
		{"1e007", true},
		{"99999999999999999999999999", true},
		{"", false},
		{"-", false},
		{"+", false},
		{"+1", false},
		{"01", false},
		{"-01", false},
		{"00", false},
		{"1.", false},
		{".5", false},
		{"-.5", false},
		{"1.e5", false},
		{"1e", false},
		{"1e+", false},
		{"1e-", false},
		{"1E", false},
		{"e5", false},
		{"1.2.3", false},
		{"1e5e5", false},
		{"1e5.5", false},
		{"--1", false},
		{"0x10", false},
		{"1_000", false},
		{" 1", false},
		{"1 ", false},
		{"NaN", false},
		{"Infinity", false},
		{"-Infinity", false},
		{"1,5", false},
		{"١", false}, // Arabic-Indic digit one
		{`"1"`, false},
	} {
		if got := isJSONNumber(tc.s); got != tc.want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// objectRecords writes a KV key, an alarm and SQL pages for obj.
func objectRecords(t *testing.T, db *pebble.DB, obj Object) {
	t.Helper()
	seedKeys(t, db, obj, 1, "a", "k", "\x00", "\U0001f600")
	putAlarm(t, db, obj, 5000)
	putRaw(t, db, obj.SQLKey(nil), []byte("hdr"))
	putRaw(t, db, obj.SQLKey([]byte{0, 0, 0, 1}), []byte("page1"))
	putRaw(t, db, obj.SQLKey([]byte{0xff, 0xff}), []byte("pageN"))
}

func TestExecDeleteAll(t *testing.T) {
	neighbours := []Object{
		{Shard: 5, Namespace: "ns", Name: "ob"},
		{Shard: 5, Namespace: "ns", Name: "obj\x00"},
		{Shard: 5, Namespace: "ns", Name: "obj\x00\x01"},
		{Shard: 5, Namespace: "ns", Name: "obj0"},
		{Shard: 5, Namespace: "ns", Name: "objects"},
		{Shard: 5, Namespace: "n", Name: "obj"},
		{Shard: 5, Namespace: "ns2", Name: "obj"},
		{Shard: 4, Namespace: "ns", Name: "obj"},
		{Shard: 6, Namespace: "ns", Name: "obj"},
	}
	for _, alarm := range []bool{false, true} {
		t.Run(fmt.Sprintf("alarm=%v", alarm), func(t *testing.T) {
			db := newDB(t)
			objectRecords(t, db, txObj)
			for _, o := range neighbours {
				objectRecords(t, db, o)
			}
			withBatch(t, db, func(b *pebble.Batch) error { return SetAppliedIndex(b, 5, 42) })
			lo, hi := txObj.Span()
			beforeKeys, beforeValues := allKeys(t, db)

			res := mustApply(t, db, txObj, &Tx{Ops: []Op{{Kind: OpDeleteAll, Alarm: alarm}}}, 50)
			if len(res.Results) != 1 || res.Results[0].Kind != OpDeleteAll {
				t.Fatalf("results = %+v", res.Results)
			}

			left := keysIn(t, db, lo, hi)
			if alarm {
				if len(left) != 0 {
					t.Errorf("deleteAll(alarm) left %x", left)
				}
			} else if len(left) != 1 || !bytes.Equal(left[0], txObj.alarmKey()) {
				t.Errorf("deleteAll left %x, want only the alarm %x", left, txObj.alarmKey())
			}
			if l, err := List(db, txObj, ListOptions{}); err != nil || len(l.Entries) != 0 {
				t.Errorf("list after deleteAll: %v, %q", err, entryKeys(l.Entries))
			}
			sqlLo, sqlHi := txObj.SQLSpan()
			if k := keysIn(t, db, sqlLo, sqlHi); len(k) != 0 {
				t.Errorf("deleteAll left SQL records %x", k)
			}

			// Every other object, and the shard's applied index, is byte
			// for byte as before. (Shard-level alarm bookkeeping may change
			// when the alarm goes; that is alarm.go's business.)
			keep := func(k []byte) bool {
				if bytes.Equal(k, appliedKey(5)) {
					return true
				}
				_, _, isObject := parseObjectKey(k)
				return isObject && !inSpan(k, lo, hi)
			}
			filter := func(keys, values [][]byte) (fk, fv [][]byte) {
				for i, k := range keys {
					if keep(k) {
						fk, fv = append(fk, k), append(fv, values[i])
					}
				}
				return fk, fv
			}
			wantKeys, wantValues := filter(beforeKeys, beforeValues)
			afterKeys, afterValues := filter(allKeys(t, db))
			if len(wantKeys) < len(neighbours)*8 {
				t.Fatalf("the fixture holds only %d neighbour records", len(wantKeys))
			}
			if len(afterKeys) != len(wantKeys) {
				t.Fatalf("after deleteAll: %d keys of other objects, want %d", len(afterKeys), len(wantKeys))
			}
			for i := range wantKeys {
				if !bytes.Equal(afterKeys[i], wantKeys[i]) || !bytes.Equal(afterValues[i], wantValues[i]) {
					t.Fatalf("after deleteAll: key %d is %x=%x, want %x=%x", i, afterKeys[i], afterValues[i], wantKeys[i], wantValues[i])
				}
			}
			if _, found, err := GetAlarm(db, txObj); err != nil || found == alarm {
				t.Errorf("GetAlarm after deleteAll(alarm=%v): found %v, err %v", alarm, found, err)
			}
			// The object can be written again.
			putOne(t, db, txObj, "again", []byte("1"), "", 51)
			if l, err := List(db, txObj, ListOptions{}); err != nil || len(l.Entries) != 1 {
				t.Errorf("list after rewrite: %v, %+v", err, l)
			}
		})
	}
}

func TestTxValidate(t *testing.T) {
	okKey := "k"
	long := strings.Repeat("k", MaxKeyBytes)
	tooLong := strings.Repeat("k", MaxKeyBytes+1)
	invalidUTF8 := "bad\xff"
	keys := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("key%03d", i)
		}
		return out
	}
	puts := func(n int) []Entry {
		out := make([]Entry, n)
		for i, k := range keys(n) {
			out[i] = Entry{Key: k, Value: Value{Data: []byte("v")}}
		}
		return out
	}
	entry := func(key string, valueLen int) []Entry {
		return []Entry{{Key: key, Value: Value{Data: make([]byte, valueLen)}}}
	}
	get := func(ks ...string) Op { return Op{Kind: OpGet, Keys: ks} }
	del := func(ks ...string) Op { return Op{Kind: OpDelete, Keys: ks} }
	for _, tc := range []struct {
		name string
		tx   Tx
		want error // nil: valid
	}{
		{"empty tx", Tx{}, ErrInvalidArgument},
		{"empty ops slice", Tx{Ops: []Op{}}, ErrInvalidArgument},
		{"conditions only", Tx{If: []Cond{{Kind: CondExists, Key: okKey}}}, nil},
		{"get key length 1", Tx{Ops: []Op{get("k")}}, nil},
		{"get key length 0", Tx{Ops: []Op{get("")}}, ErrInvalidKey},
		{"get key length 2048", Tx{Ops: []Op{get(long)}}, nil},
		{"get key length 2049", Tx{Ops: []Op{get(tooLong)}}, ErrInvalidKey},
		{"get invalid UTF-8", Tx{Ops: []Op{get(invalidUTF8)}}, ErrInvalidKey},
		{"get surrogate half", Tx{Ops: []Op{get("\xed\xa0\x80")}}, ErrInvalidKey},
		{"get 128 keys", Tx{Ops: []Op{get(keys(128)...)}}, nil},
		{"get 129 keys", Tx{Ops: []Op{get(keys(129)...)}}, ErrTooLarge},
		{"get no keys", Tx{Ops: []Op{get()}}, ErrInvalidArgument},
		{"delete key length 0", Tx{Ops: []Op{del("")}}, ErrInvalidKey},
		{"delete key length 2048", Tx{Ops: []Op{del(long)}}, nil},
		{"delete key length 2049", Tx{Ops: []Op{del(tooLong)}}, ErrInvalidKey},
		{"delete invalid UTF-8", Tx{Ops: []Op{del(invalidUTF8)}}, ErrInvalidKey},
		{"delete 128 keys", Tx{Ops: []Op{del(keys(128)...)}}, nil},
		{"delete 129 keys", Tx{Ops: []Op{del(keys(129)...)}}, ErrTooLarge},
		{"delete no keys", Tx{Ops: []Op{del()}}, ErrInvalidArgument},
		{"put key length 0", Tx{Ops: []Op{{Kind: OpPut, Puts: entry("", 1)}}}, ErrInvalidKey},
		{"put key length 2048", Tx{Ops: []Op{{Kind: OpPut, Puts: entry(long, 1)}}}, nil},
		{"put key length 2049", Tx{Ops: []Op{{Kind: OpPut, Puts: entry(tooLong, 1)}}}, ErrInvalidKey},
		{"put invalid UTF-8", Tx{Ops: []Op{{Kind: OpPut, Puts: entry(invalidUTF8, 1)}}}, ErrInvalidKey},
		{"put 128 keys", Tx{Ops: []Op{{Kind: OpPut, Puts: puts(128)}}}, nil},
		{"put 129 keys", Tx{Ops: []Op{{Kind: OpPut, Puts: puts(129)}}}, ErrTooLarge},
		{"put no keys", Tx{Ops: []Op{{Kind: OpPut}}}, ErrInvalidArgument},
		{"put empty value", Tx{Ops: []Op{{Kind: OpPut, Puts: entry("k", 0)}}}, nil},
		{"put key+value at the limit", Tx{Ops: []Op{{Kind: OpPut, Puts: entry("k", MaxEntryBytes-1)}}}, nil},
		{"put key+value one over", Tx{Ops: []Op{{Kind: OpPut, Puts: entry("k", MaxEntryBytes)}}}, ErrTooLarge},
		{"put long key+value at the limit", Tx{Ops: []Op{{Kind: OpPut, Puts: entry(long, MaxEntryBytes-MaxKeyBytes)}}}, nil},
		{"put long key+value one over", Tx{Ops: []Op{{Kind: OpPut, Puts: entry(long, MaxEntryBytes-MaxKeyBytes+1)}}}, ErrTooLarge},
		{"incr", Tx{Ops: []Op{{Kind: OpIncr, Key: "n", By: "1"}}}, nil},
		{"incr key length 0", Tx{Ops: []Op{{Kind: OpIncr, Key: "", By: "1"}}}, ErrInvalidKey},
		{"incr key length 2049", Tx{Ops: []Op{{Kind: OpIncr, Key: tooLong, By: "1"}}}, ErrInvalidKey},
		{"incr invalid UTF-8", Tx{Ops: []Op{{Kind: OpIncr, Key: invalidUTF8, By: "1"}}}, ErrInvalidKey},
		{"incr without by", Tx{Ops: []Op{{Kind: OpIncr, Key: "n"}}}, ErrInvalidArgument},
		{"list", Tx{Ops: []Op{{Kind: OpList, List: ListOptions{Prefix: "p", Limit: 10}}}}, nil},
		{"list start and startAfter", Tx{Ops: []Op{{Kind: OpList, List: ListOptions{Start: "a", StartAfter: "b"}}}}, ErrInvalidArgument},
		{"list limit over max", Tx{Ops: []Op{{Kind: OpList, List: ListOptions{Limit: MaxListLimit + 1}}}}, ErrInvalidArgument},
		{"list bad cursor", Tx{Ops: []Op{{Kind: OpList, List: ListOptions{Cursor: "%%"}}}}, ErrInvalidArgument},
		{"deleteAll", Tx{Ops: []Op{{Kind: OpDeleteAll}}}, nil},
		{"deleteAll with alarm", Tx{Ops: []Op{{Kind: OpDeleteAll, Alarm: true}}}, nil},
		{"unknown op kind 0", Tx{Ops: []Op{{Kind: 0}}}, ErrInvalidArgument},
		{"unknown op kind 200", Tx{Ops: []Op{{Kind: 200}}}, ErrInvalidArgument},
		{"unknown op kind 255", Tx{Ops: []Op{{Kind: 255, Keys: []string{"k"}}}}, ErrInvalidArgument},
		{"bad op after good ops", Tx{Ops: []Op{get("a"), del("b"), get("")}}, ErrInvalidKey},
		{"condition key length 0", Tx{If: []Cond{{Kind: CondExists, Key: ""}}, Ops: []Op{get("a")}}, ErrInvalidKey},
		{"condition key length 2048", Tx{If: []Cond{{Kind: CondExists, Key: long}}, Ops: []Op{get("a")}}, nil},
		{"condition key length 2049", Tx{If: []Cond{{Kind: CondExists, Key: tooLong}}, Ops: []Op{get("a")}}, ErrInvalidKey},
		{"condition invalid UTF-8", Tx{If: []Cond{{Kind: CondMissing, Key: invalidUTF8}}, Ops: []Op{get("a")}}, ErrInvalidKey},
		{"condition kind 0", Tx{If: []Cond{{Kind: 0, Key: "k"}}, Ops: []Op{get("a")}}, ErrInvalidArgument},
		{"condition kind 5", Tx{If: []Cond{{Kind: 5, Key: "k"}}, Ops: []Op{get("a")}}, ErrInvalidArgument},
		{"every condition kind", Tx{If: []Cond{
			{Kind: CondVersionIs, Key: "a", Version: 1}, {Kind: CondVersionIsNot, Key: "a"},
			{Kind: CondExists, Key: "a"}, {Kind: CondMissing, Key: "a"},
		}, Ops: []Op{get("a")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tx.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
			} else {
				wantErr(t, err, tc.want)
			}
			// Exec validates too, and an invalid tx writes nothing.
			db := newDB(t)
			b := db.NewIndexedBatch()
			defer b.Close()
			_, err = execTx(b, b, txObj, &tc.tx, 1)
			if tc.want == nil {
				if err != nil && !errors.Is(err, ErrPreconditionFailed) {
					t.Fatalf("Exec of a valid tx: %v", err)
				}
				return
			}
			wantErr(t, err, tc.want)
			if !b.Empty() {
				t.Errorf("an invalid tx left %d writes in the batch", b.Count())
			}
		})
	}
}

// A value of exactly MaxEntryBytes with its key is stored and read back whole.
func TestExecEntryAtLimit(t *testing.T) {
	db := newDB(t)
	key := "big"
	data := bytes.Repeat([]byte{0x5a}, MaxEntryBytes-len(key))
	putOne(t, db, txObj, key, data, "", 3)
	v, found := getOne(t, db, txObj, key)
	if !found || !bytes.Equal(v.Data, data) || v.Version != 3 {
		t.Fatalf("read back %d bytes (found %v), want %d", len(v.Data), found, len(data))
	}
	_, err := apply(t, db, txObj, &Tx{Ops: []Op{{Kind: OpPut, Puts: []Entry{{Key: key, Value: Value{Data: append(data, 0)}}}}}}, 4)
	wantErr(t, err, ErrTooLarge)
	if v, _ := getOne(t, db, txObj, key); v.Version != 3 {
		t.Errorf("the rejected put changed the key: version %d", v.Version)
	}
}

func TestWrites(t *testing.T) {
	for _, tc := range []struct {
		kind OpKind
		want bool
	}{
		{OpGet, false}, {OpList, false},
		{OpPut, true}, {OpDelete, true}, {OpIncr, true}, {OpDeleteAll, true},
		{OpGetAlarm, false}, {OpSetAlarm, true}, {OpDeleteAlarm, true},
		{0, false}, {99, false},
	} {
		op := Op{Kind: tc.kind}
		if op.Writes() != tc.want {
			t.Errorf("Op{Kind: %d}.Writes() = %v, want %v", tc.kind, op.Writes(), tc.want)
		}
		tx := Tx{Ops: []Op{{Kind: OpGet}, op, {Kind: OpList}}}
		if tx.Writes() != tc.want {
			t.Errorf("Tx with op %d: Writes() = %v, want %v", tc.kind, tx.Writes(), tc.want)
		}
	}
	if (&Tx{}).Writes() || (&Tx{If: []Cond{{Kind: CondExists, Key: "k"}}}).Writes() {
		t.Errorf("a tx without ops writes")
	}
}

func TestErrorType(t *testing.T) {
	e := errorf(ErrTooLarge, "thing %d", 7)
	if e.Condition != -1 || e.Detail != "thing 7" || !errors.Is(e, ErrTooLarge) || errors.Is(e, ErrInvalidKey) {
		t.Fatalf("errorf = %+v", e)
	}
	if !strings.Contains(e.Error(), "thing 7") || !strings.Contains(e.Error(), ErrTooLarge.Error()) {
		t.Errorf("Error() = %q", e.Error())
	}
	wrapped := fmt.Errorf("apply: %w", e)
	var got *Error
	if !errors.As(wrapped, &got) || got != e || !errors.Is(wrapped, ErrTooLarge) {
		t.Errorf("a wrapped *Error is not found")
	}
	// Long keys are shortened in details.
	err := ValidateEntry(strings.Repeat("x", 1000), MaxEntryBytes)
	wantErr(t, err, ErrTooLarge)
	if len(err.Error()) > 300 {
		t.Errorf("error detail is %d bytes long: %q", len(err.Error()), err.Error())
	}
}
