package objectstore

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cockroachdb/pebble/v2"
)

// directoryFixture fills shard 3 (and, as noise, shards 2 and 4) with
// objects in several namespaces and returns the names ListObjects must show
// for namespace "alpha" of shard 3, in order.
func directoryFixture(t *testing.T) (*pebble.DB, []string) {
	t.Helper()
	db := newDB(t)
	o := func(ns, name string) Object { return Object{Shard: 3, Namespace: ns, Name: name} }
	for _, name := range []string{"a", "a\x00", "a\x00b", "ab", "user:1", "user:10", "user:2", "\u00e9"} {
		seedKeys(t, db, o("alpha", name), 1, "k")
	}
	// Only an alarm: listed.
	putAlarm(t, db, o("alpha", "b"), 1000)
	// Every key deleted: not listed.
	seedKeys(t, db, o("alpha", "c"), 1, "k1", "k2")
	mustApply(t, db, o("alpha", "c"), &Tx{Ops: []Op{{Kind: OpDelete, Keys: []string{"k1", "k2"}}}}, 2)
	// Only SQL storage: listed.
	putRaw(t, db, o("alpha", "d").SQLKey([]byte{0}), []byte("page"))
	// deleteAll of keys and SQL, no alarm: not listed.
	seedKeys(t, db, o("alpha", "del-all"), 1, "k")
	putRaw(t, db, o("alpha", "del-all").SQLKey(nil), []byte("page"))
	mustApply(t, db, o("alpha", "del-all"), &Tx{Ops: []Op{{Kind: OpDeleteAll}}}, 3)
	// deleteAll that keeps the alarm: listed.
	seedKeys(t, db, o("alpha", "del-all-alarm"), 1, "k")
	putAlarm(t, db, o("alpha", "del-all-alarm"), 1000)
	mustApply(t, db, o("alpha", "del-all-alarm"), &Tx{Ops: []Op{{Kind: OpDeleteAll}}}, 3)
	// deleteAll with the alarm: not listed.
	seedKeys(t, db, o("alpha", "del-all-true"), 1, "k")
	putAlarm(t, db, o("alpha", "del-all-true"), 1000)
	mustApply(t, db, o("alpha", "del-all-true"), &Tx{Ops: []Op{{Kind: OpDeleteAll, Alarm: true}}}, 3)
	// Many keys in one object: listed once.
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("key%04d", i)
	}
	seedKeys(t, db, o("alpha", "e"), 1, many...)
	putAlarm(t, db, o("alpha", "e"), 1000)
	putRaw(t, db, o("alpha", "e").SQLKey(nil), []byte{1})

	// Noise: other namespaces of the shard, the same namespace in other
	// shards, the namespace's config and the shard's applied index.
	for _, ns := range []string{"alph", "alpha-x", "alpha2", "alpha\x00", "b"} {
		seedKeys(t, db, o(ns, "a"), 1, "k")
		seedKeys(t, db, o(ns, "zz"), 1, "k")
	}
	for _, shard := range []uint32{2, 4} {
		seedKeys(t, db, Object{Shard: shard, Namespace: "alpha", Name: "x"}, 1, "k")
		seedKeys(t, db, Object{Shard: shard, Namespace: "alpha", Name: "a"}, 1, "k")
	}
	withBatch(t, db, func(b *pebble.Batch) error {
		if err := putNSConfig(b, 3, "alpha", NamespaceConfig{AlarmWebhook: "http://x"}); err != nil {
			return err
		}
		return SetAppliedIndex(b, 3, 100)
	})
	want := []string{"a", "a\x00", "a\x00b", "ab", "b", "d", "del-all-alarm", "e", "user:1", "user:10", "user:2", "\u00e9"}
	return db, want
}

func TestListObjects(t *testing.T) {
	db, all := directoryFixture(t)
	list := func(prefix, after string, limit int) ([]string, bool) {
		t.Helper()
		names, more, err := ListObjects(db, 3, "alpha", prefix, after, limit)
		if err != nil {
			t.Fatalf("ListObjects(%q, %q, %d): %v", prefix, after, limit, err)
		}
		return names, more
	}
	for _, tc := range []struct {
		name          string
		prefix, after string
		limit         int
		want          []string
		more          bool
	}{
		{"everything", "", "", 100, all, false},
		{"limit exactly all", "", "", len(all), all, false},
		{"limit one short", "", "", len(all) - 1, all[:len(all)-1], true},
		{"limit 1", "", "", 1, []string{"a"}, true},
		{"limit 0", "", "", 0, nil, true},
		{"limit 0 past the end", "", "\u00e9", 0, nil, false},
		{"limit 3", "", "", 3, []string{"a", "a\x00", "a\x00b"}, true},
		{"prefix a", "a", "", 100, []string{"a", "a\x00", "a\x00b", "ab"}, false},
		{"prefix a limit 4", "a", "", 4, []string{"a", "a\x00", "a\x00b", "ab"}, false},
		{"prefix a limit 3", "a", "", 3, []string{"a", "a\x00", "a\x00b"}, true},
		{"prefix a\\x00", "a\x00", "", 100, []string{"a\x00", "a\x00b"}, false},
		{"prefix user:", "user:", "", 100, []string{"user:1", "user:10", "user:2"}, false},
		{"prefix user:1", "user:1", "", 100, []string{"user:1", "user:10"}, false},
		{"prefix of one whole name", "ab", "", 100, []string{"ab"}, false},
		{"prefix del-all", "del-all", "", 100, []string{"del-all-alarm"}, false},
		{"prefix é", "\u00e9", "", 100, []string{"\u00e9"}, false},
		{"prefix matching nothing", "zz", "", 100, nil, false},
		{"prefix c (deleted)", "c", "", 100, nil, false},
		{"after a", "", "a", 100, all[1:], false},
		{"after a\\x00", "", "a\x00", 100, all[2:], false},
		{"after a missing name", "", "aa", 100, all[3:], false},
		{"after b", "", "b", 3, []string{"d", "del-all-alarm", "e"}, true},
		{"after c (deleted)", "", "c", 2, []string{"d", "del-all-alarm"}, true},
		{"after the last", "", "\u00e9", 100, nil, false},
		{"after beyond the last", "", "\uffff", 100, nil, false},
		{"after the second to last", "", "user:2", 1, []string{"\u00e9"}, false},
		{"prefix and after inside", "user:", "user:1", 100, []string{"user:10", "user:2"}, false},
		{"prefix and after before it", "user:", "b", 100, []string{"user:1", "user:10", "user:2"}, false},
		{"prefix and after past it", "a", "b", 100, nil, false},
		{"prefix and after its last", "a", "ab", 100, nil, false},
		{"prefix and after, limit", "user:", "user:1", 1, []string{"user:10"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, more := list(tc.prefix, tc.after, tc.limit)
			sameStrings(t, "names", names, tc.want)
			if more != tc.more {
				t.Errorf("more = %v, want %v", more, tc.more)
			}
		})
	}

	// Paging with after = the last name of the previous page.
	for _, prefix := range []string{"", "a", "user:"} {
		var want []string
		for _, n := range all {
			if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
				want = append(want, n)
			}
		}
		for limit := 1; limit <= len(all)+1; limit++ {
			var got []string
			after, pages := "", 0
			for {
				names, more := list(prefix, after, limit)
				pages++
				got = append(got, names...)
				if !more {
					break
				}
				if len(names) != limit {
					t.Fatalf("prefix %q limit %d: a page with more=true has %d names", prefix, limit, len(names))
				}
				if pages > len(all)+1 {
					t.Fatalf("prefix %q limit %d: paging does not end: %q", prefix, limit, got)
				}
				after = names[len(names)-1]
			}
			sameStrings(t, fmt.Sprintf("prefix %q limit %d paged", prefix, limit), got, want)
			if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
				t.Errorf("prefix %q limit %d: %d pages, want %d", prefix, limit, pages, wantPages)
			}
		}
	}

	// Other namespaces and shards.
	for _, tc := range []struct {
		shard uint32
		ns    string
		want  []string
	}{
		{3, "alph", []string{"a", "zz"}},
		{3, "alpha2", []string{"a", "zz"}},
		{3, "alpha\x00", []string{"a", "zz"}},
		{3, "alp", nil},
		{3, "nothing", nil},
		{3, "", nil},
		{2, "alpha", []string{"a", "x"}},
		{4, "alpha", []string{"a", "x"}},
		{5, "alpha", nil},
	} {
		names, more, err := ListObjects(db, tc.shard, tc.ns, "", "", 100)
		if err != nil || more {
			t.Fatalf("ListObjects(%d, %q): %v, more %v", tc.shard, tc.ns, err, more)
		}
		sameStrings(t, fmt.Sprintf("shard %d ns %q", tc.shard, tc.ns), names, tc.want)
	}
}

// ListObjects reads the state of an indexed batch, including its deletes.
func TestListObjectsInBatch(t *testing.T) {
	db, all := directoryFixture(t)
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := DeleteAll(b, b, Object{Shard: 3, Namespace: "alpha", Name: "ab"}, true); err != nil {
		t.Fatal(err)
	}
	putOneInBatch(t, b, Object{Shard: 3, Namespace: "alpha", Name: "aa"}, "k", 9)
	names, more, err := ListObjects(b, 3, "alpha", "a", "", 100)
	if err != nil || more {
		t.Fatalf("ListObjects: %v, more %v", err, more)
	}
	sameStrings(t, "in batch", names, []string{"a", "a\x00", "a\x00b", "aa"})
	names, _, err = ListObjects(db, 3, "alpha", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "db before commit", names, all)
}

func TestListNamespaces(t *testing.T) {
	db := newDB(t)
	if got, err := ListNamespaces(db, 2); err != nil || len(got) != 0 {
		t.Fatalf("empty shard: %q, %v", got, err)
	}
	for _, ns := range []string{"b-ns", "a-ns", "c", "ns", "ns-2"} {
		seedKeys(t, db, Object{Shard: 2, Namespace: ns, Name: "obj1"}, 1, "k")
		seedKeys(t, db, Object{Shard: 2, Namespace: ns, Name: "obj2"}, 1, "k")
	}
	putAlarm(t, db, Object{Shard: 2, Namespace: "alarm-only", Name: "o"}, 1000)
	// A namespace whose only object lost its keys is not listed.
	seedKeys(t, db, Object{Shard: 2, Namespace: "gone", Name: "o"}, 1, "k")
	mustApply(t, db, Object{Shard: 2, Namespace: "gone", Name: "o"}, &Tx{Ops: []Op{{Kind: OpDeleteAll}}}, 2)
	// Noise in other shards.
	seedKeys(t, db, Object{Shard: 1, Namespace: "other", Name: "o"}, 1, "k")
	seedKeys(t, db, Object{Shard: 3, Namespace: "other3", Name: "o"}, 1, "k")
	withBatch(t, db, func(b *pebble.Batch) error {
		for _, ns := range []string{"a-ns", "z-only", "0first", "ns_"} {
			if err := putNSConfig(b, 2, ns, NamespaceConfig{AlarmMaxRetries: 1}); err != nil {
				return err
			}
		}
		if err := putNSConfig(b, 3, "other-cfg", NamespaceConfig{}); err != nil {
			return err
		}
		return SetAppliedIndex(b, 2, 9)
	})
	got, err := ListNamespaces(db, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0first", "a-ns", "alarm-only", "b-ns", "c", "ns", "ns-2", "ns_", "z-only"}
	sameStrings(t, "shard 2", got, want)
	if !slices.IsSorted(got) {
		t.Errorf("not sorted: %q", got)
	}
	got, err = ListNamespaces(db, 3)
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "shard 3", got, []string{"other-cfg", "other3"})
	got, err = ListNamespaces(db, 1)
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "shard 1", got, []string{"other"})
}

func TestNamespaceConfigRoundTrip(t *testing.T) {
	db := newDB(t)
	if c, found, err := GetNamespaceConfig(db, 1, "ns"); err != nil || found || c != (NamespaceConfig{}) {
		t.Fatalf("missing config: %+v, %v, %v", c, found, err)
	}
	configs := map[string]NamespaceConfig{
		"ns":   {AlarmWebhook: "http://example.com/hook?a=b", AlarmTimeout: 30 * time.Second, AlarmMaxRetries: 6, Version: 10},
		"zero": {},
		"odd":  {AlarmWebhook: "\x00\xff", AlarmTimeout: -1, AlarmMaxRetries: -5, Version: 1},
		"max":  {AlarmTimeout: math.MaxInt64, AlarmMaxRetries: math.MaxInt32, Version: math.MaxUint64},
		"ns-2": {AlarmWebhook: "http://other", AlarmTimeout: time.Millisecond, Version: 3},
	}
	withBatch(t, db, func(b *pebble.Batch) error {
		for ns, c := range configs {
			wrote, err := PutNamespaceConfig(b, b, 1, ns, c)
			if err != nil {
				return err
			}
			if !wrote {
				t.Errorf("PutNamespaceConfig(%q) of a new namespace did not write", ns)
			}
		}
		return nil
	})
	for ns, want := range configs {
		got, found, err := GetNamespaceConfig(db, 1, ns)
		if err != nil || !found || got != want {
			t.Errorf("GetNamespaceConfig(%q) = %+v, %v, %v; want %+v", ns, got, found, err, want)
		}
		if _, found, err := GetNamespaceConfig(db, 2, ns); err != nil || found {
			t.Errorf("config of %q found in another shard: %v, %v", ns, found, err)
		}
	}
	if _, found, err := GetNamespaceConfig(db, 1, "n"); err != nil || found {
		t.Errorf("config of a prefix namespace found: %v, %v", found, err)
	}
	// A copy is replaced only by a newer version.
	for _, tc := range []struct {
		version uint64
		wrote   bool
	}{{9, false}, {10, false}, {11, true}, {11, false}, {12, true}} {
		c := NamespaceConfig{AlarmMaxRetries: int(tc.version), Version: tc.version}
		var wrote bool
		withBatch(t, db, func(b *pebble.Batch) error {
			var err error
			wrote, err = PutNamespaceConfig(b, b, 1, "ns", c)
			return err
		})
		if wrote != tc.wrote {
			t.Errorf("PutNamespaceConfig(version %d) wrote %v, want %v", tc.version, wrote, tc.wrote)
		}
	}
	if got, found, err := GetNamespaceConfig(db, 1, "ns"); err != nil || !found || got != (NamespaceConfig{AlarmMaxRetries: 12, Version: 12}) {
		t.Errorf("after overwrites: %+v, %v, %v", got, found, err)
	}
	// The config lies inside the shard's span.
	lo, hi := ShardSpan(1)
	if k := namespaceKey(1, "ns"); !inSpan(k, lo, hi) {
		t.Errorf("namespace key %x outside ShardSpan(1)", k)
	}
	// Corrupt records.
	nsConfig := configs["ns"]
	for name, rec := range map[string][]byte{
		"empty":         {},
		"wrong version": {namespaceConfigVersion + 1, 0, 0, 0},
		"truncated":     {namespaceConfigVersion, 5, 'h'},
		"trailing":      append(nsConfig.AppendBinary([]byte{namespaceConfigVersion}), 0),
	} {
		putRaw(t, db, namespaceKey(1, "bad"), rec)
		_, found, err := GetNamespaceConfig(db, 1, "bad")
		if found || err == nil {
			t.Errorf("%s: found %v, err %v; want ErrCorrupt", name, found, err)
			continue
		}
		wantErr(t, err, ErrCorrupt)
	}
}

func TestNamespaceConfigBinary(t *testing.T) {
	for _, c := range []NamespaceConfig{
		{},
		{AlarmWebhook: "http://h", AlarmTimeout: 2 * time.Second, AlarmMaxRetries: 3},
		{AlarmTimeout: math.MinInt64, AlarmMaxRetries: math.MinInt32, Version: math.MaxUint64},
	} {
		b := c.AppendBinary([]byte("head"))
		d := wire.NewDecoder(b[4:])
		got := ReadNamespaceConfig(d)
		if d.Err() != nil || d.Len() != 0 || got != c {
			t.Errorf("round trip of %+v = %+v (err %v, %d left)", c, got, d.Err(), d.Len())
		}
		if string(b[:4]) != "head" {
			t.Errorf("AppendBinary overwrote the head of its buffer")
		}
	}
	d := wire.NewDecoder([]byte{3, 'a'})
	ReadNamespaceConfig(d)
	if d.Err() == nil {
		t.Errorf("ReadNamespaceConfig of a truncated record: no error")
	}
}
