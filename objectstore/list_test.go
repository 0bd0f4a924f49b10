package objectstore

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// listKeys are the keys of the listed object, in ascending byte order.
var listKeys = []string{"a", "aa", "ab", "b", "ba", "c", "user:1", "user:2", "user:3", "z"}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// listFixture is a database holding the listed object and, around it,
// objects with overlapping keys that a listing must never show, plus the
// listed object's own alarm and SQL records.
func listFixture(t testing.TB) (*pebble.DB, Object) {
	t.Helper()
	db := newDB(t)
	obj := Object{Shard: 3, Namespace: "app", Name: "obj"}
	seedKeys(t, db, obj, 10, listKeys...)
	noise := []string{"0", "a", "a\x00", "aa", "ab0", "b", "user:0", "user:2", "user:4", "z", "zz", "\u00e9"}
	for _, o := range []Object{
		{Shard: 3, Namespace: "app", Name: "ob"},
		{Shard: 3, Namespace: "app", Name: "obj\x00"},
		{Shard: 3, Namespace: "app", Name: "obj\x00\x01"},
		{Shard: 3, Namespace: "app", Name: "obj0"},
		{Shard: 3, Namespace: "app", Name: "objx"},
		{Shard: 3, Namespace: "ap", Name: "obj"},
		{Shard: 3, Namespace: "app2", Name: "obj"},
		{Shard: 2, Namespace: "app", Name: "obj"},
		{Shard: 4, Namespace: "app", Name: "obj"},
	} {
		seedKeys(t, db, o, 99, noise...)
		putAlarm(t, db, o, 1000)
		putRaw(t, db, o.SQLKey([]byte("page")), []byte("sql"))
	}
	putAlarm(t, db, obj, 2000)
	putRaw(t, db, obj.SQLKey(nil), []byte("sql"))
	putRaw(t, db, obj.SQLKey([]byte("\x00page")), []byte("sql"))
	return db, obj
}

func TestListTable(t *testing.T) {
	db, obj := listFixture(t)
	all := listKeys
	for _, tc := range []struct {
		name     string
		opts     ListOptions
		want     []string
		wantMore bool // a cursor is returned
	}{
		{"no options", ListOptions{}, all, false},
		{"prefix a", ListOptions{Prefix: "a"}, []string{"a", "aa", "ab"}, false},
		{"prefix user:", ListOptions{Prefix: "user:"}, []string{"user:1", "user:2", "user:3"}, false},
		{"prefix is a whole key", ListOptions{Prefix: "ba"}, []string{"ba"}, false},
		{"prefix matches nothing", ListOptions{Prefix: "nope"}, nil, false},
		{"prefix beyond every key", ListOptions{Prefix: "zz"}, nil, false},
		{"start on a key", ListOptions{Start: "b"}, []string{"b", "ba", "c", "user:1", "user:2", "user:3", "z"}, false},
		{"start between keys", ListOptions{Start: "bb"}, []string{"c", "user:1", "user:2", "user:3", "z"}, false},
		{"start before every key", ListOptions{Start: "0"}, all, false},
		{"start after every key", ListOptions{Start: "zz"}, nil, false},
		{"startAfter on a key", ListOptions{StartAfter: "b"}, []string{"ba", "c", "user:1", "user:2", "user:3", "z"}, false},
		{"startAfter between keys", ListOptions{StartAfter: "ab0"}, []string{"b", "ba", "c", "user:1", "user:2", "user:3", "z"}, false},
		{"startAfter the last key", ListOptions{StartAfter: "z"}, nil, false},
		{"startAfter a prefix of keys", ListOptions{StartAfter: "a"}, all[1:], false},
		{"end on a key", ListOptions{End: "b"}, []string{"a", "aa", "ab"}, false},
		{"end between keys", ListOptions{End: "bb"}, []string{"a", "aa", "ab", "b", "ba"}, false},
		{"end at the first key", ListOptions{End: "a"}, nil, false},
		{"end after every key", ListOptions{End: "zzz"}, all, false},
		{"start and end", ListOptions{Start: "aa", End: "c"}, []string{"aa", "ab", "b", "ba"}, false},
		{"startAfter and end", ListOptions{StartAfter: "aa", End: "c"}, []string{"ab", "b", "ba"}, false},
		{"start equals end", ListOptions{Start: "b", End: "b"}, nil, false},
		{"start after end", ListOptions{Start: "c", End: "b"}, nil, false},
		{"startAfter equals end", ListOptions{StartAfter: "b", End: "ba"}, nil, false},
		{"prefix with start before it", ListOptions{Prefix: "user:", Start: "a"}, []string{"user:1", "user:2", "user:3"}, false},
		{"prefix with start inside", ListOptions{Prefix: "user:", Start: "user:2"}, []string{"user:2", "user:3"}, false},
		{"prefix with start after it", ListOptions{Prefix: "a", Start: "b"}, nil, false},
		{"prefix with startAfter inside", ListOptions{Prefix: "a", StartAfter: "a"}, []string{"aa", "ab"}, false},
		{"prefix with end inside", ListOptions{Prefix: "user:", End: "user:3"}, []string{"user:1", "user:2"}, false},
		{"prefix with end after it", ListOptions{Prefix: "user:", End: "zz"}, []string{"user:1", "user:2", "user:3"}, false},
		{"prefix with end at it", ListOptions{Prefix: "b", End: "b"}, nil, false},
		{"prefix with start and end inside", ListOptions{Prefix: "user:", Start: "user:2", End: "user:3"}, []string{"user:2"}, false},
		{"reverse", ListOptions{Reverse: true}, reversed(all), false},
		{"reverse limit 3", ListOptions{Reverse: true, Limit: 3}, []string{"z", "user:3", "user:2"}, true},
		{"reverse limit 1", ListOptions{Reverse: true, Limit: 1}, []string{"z"}, true},
		{"reverse limit all", ListOptions{Reverse: true, Limit: len(all)}, reversed(all), false},
		{"reverse start and end", ListOptions{Reverse: true, Start: "b", End: "user:2"}, []string{"user:1", "c", "ba", "b"}, false},
		{"reverse startAfter and end", ListOptions{Reverse: true, StartAfter: "b", End: "user:2"}, []string{"user:1", "c", "ba"}, false},
		{"reverse start end limit", ListOptions{Reverse: true, Start: "b", End: "user:2", Limit: 2}, []string{"user:1", "c"}, true},
		{"reverse startAfter limit", ListOptions{Reverse: true, StartAfter: "b", Limit: 2}, []string{"z", "user:3"}, true},
		{"reverse end", ListOptions{Reverse: true, End: "b"}, []string{"ab", "aa", "a"}, false},
		{"reverse prefix", ListOptions{Reverse: true, Prefix: "a"}, []string{"ab", "aa", "a"}, false},
		{"reverse prefix limit", ListOptions{Reverse: true, Prefix: "user:", Limit: 2}, []string{"user:3", "user:2"}, true},
		{"reverse empty range", ListOptions{Reverse: true, Start: "c", End: "b"}, nil, false},
		{"limit 1", ListOptions{Limit: 1}, []string{"a"}, true},
		{"limit 3", ListOptions{Limit: 3}, []string{"a", "aa", "ab"}, true},
		{"limit one short", ListOptions{Limit: len(all) - 1}, all[:len(all)-1], true},
		{"limit exactly all", ListOptions{Limit: len(all)}, all, false},
		{"limit above all", ListOptions{Limit: len(all) + 1}, all, false},
		{"limit max", ListOptions{Limit: MaxListLimit}, all, false},
		{"limit with prefix", ListOptions{Prefix: "user:", Limit: 2}, []string{"user:1", "user:2"}, true},
		{"limit with start", ListOptions{Start: "c", Limit: 2}, []string{"c", "user:1"}, true},
		{"limit on the last keys", ListOptions{Start: "user:3", Limit: 2}, []string{"user:3", "z"}, false},
		{"keysOnly", ListOptions{KeysOnly: true}, all, false},
		{"keysOnly reverse limit", ListOptions{KeysOnly: true, Reverse: true, Limit: 2}, []string{"z", "user:3"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := db.NewSnapshot()
			defer snap.Close()
			b := db.NewIndexedBatch()
			defer b.Close()
			for rname, r := range map[string]pebble.Reader{"db": db, "snapshot": snap, "batch": b} {
				res, err := List(r, obj, tc.opts)
				if err != nil {
					t.Fatalf("%s: List(%+v): %v", rname, tc.opts, err)
				}
				sameStrings(t, rname+": keys", entryKeys(res.Entries), tc.want)
				if (res.Cursor != "") != tc.wantMore {
					t.Errorf("%s: cursor = %q, want a cursor: %v", rname, res.Cursor, tc.wantMore)
				}
				for _, e := range res.Entries {
					if e.Value.Version != 10 || e.Value.ContentType != ContentTypeText {
						t.Errorf("%s: %q has version %d, type %q; want 10, %q", rname, e.Key, e.Value.Version, e.Value.ContentType, ContentTypeText)
					}
					wantData := "v:" + e.Key
					if tc.opts.KeysOnly {
						wantData = ""
						if e.Value.Data != nil {
							t.Errorf("%s: keysOnly entry %q carries data %q", rname, e.Key, e.Value.Data)
						}
					}
					if string(e.Value.Data) != wantData {
						t.Errorf("%s: %q = %q, want %q", rname, e.Key, e.Value.Data, wantData)
					}
				}
			}
		})
	}
}

// The entries a listing returns are the caller's: they do not alias the
// iterator's memory.
func TestListEntriesAreCopies(t *testing.T) {
	db, obj := listFixture(t)
	res, err := List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Entries {
		for j := range res.Entries[i].Value.Data {
			res.Entries[i].Value.Data[j] = 'X'
		}
	}
	res2, err := List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res2.Entries {
		if string(e.Value.Data) != "v:"+e.Key {
			t.Fatalf("%q = %q after the caller changed an earlier result", e.Key, e.Value.Data)
		}
	}
}

func TestListInvalidOptions(t *testing.T) {
	db, obj := listFixture(t)
	fwd, err := List(db, obj, ListOptions{Limit: 2})
	if err != nil || fwd.Cursor == "" {
		t.Fatalf("forward page: %v, cursor %q", err, fwd.Cursor)
	}
	rev, err := List(db, obj, ListOptions{Limit: 2, Reverse: true})
	if err != nil || rev.Cursor == "" {
		t.Fatalf("reverse page: %v, cursor %q", err, rev.Cursor)
	}
	long := strings.Repeat("k", MaxKeyBytes+1)
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name string
		opts ListOptions
		want error
	}{
		{"start with startAfter", ListOptions{Start: "a", StartAfter: "b"}, ErrInvalidArgument},
		{"start with startAfter, same key", ListOptions{Start: "a", StartAfter: "a"}, ErrInvalidArgument},
		{"negative limit", ListOptions{Limit: -1}, ErrInvalidArgument},
		{"limit over max", ListOptions{Limit: MaxListLimit + 1}, ErrInvalidArgument},
		{"huge limit", ListOptions{Limit: 1 << 40}, ErrInvalidArgument},
		{"prefix too long", ListOptions{Prefix: long}, ErrInvalidKey},
		{"start too long", ListOptions{Start: long}, ErrInvalidKey},
		{"startAfter too long", ListOptions{StartAfter: long}, ErrInvalidKey},
		{"end too long", ListOptions{End: long}, ErrInvalidKey},
		{"forward cursor used in reverse", ListOptions{Cursor: fwd.Cursor, Reverse: true}, ErrInvalidArgument},
		{"reverse cursor used forward", ListOptions{Cursor: rev.Cursor}, ErrInvalidArgument},
		{"cursor not base64", ListOptions{Cursor: "!!not base64!!"}, ErrInvalidArgument},
		{"cursor std base64 padding", ListOptions{Cursor: base64.StdEncoding.EncodeToString([]byte{cursorVersion, cursorForward, 'a', 'b'})}, ErrInvalidArgument},
		{"cursor too short", ListOptions{Cursor: enc([]byte{cursorVersion, cursorForward})}, ErrInvalidArgument},
		{"cursor empty payload", ListOptions{Cursor: enc([]byte{cursorVersion})}, ErrInvalidArgument},
		{"cursor wrong version", ListOptions{Cursor: enc([]byte{cursorVersion + 1, cursorForward, 'a'})}, ErrInvalidArgument},
		{"cursor unknown direction", ListOptions{Cursor: enc([]byte{cursorVersion, 'x', 'a'})}, ErrInvalidArgument},
		{"cursor garbage", ListOptions{Cursor: "AAAA"}, ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.opts.Validate(), tc.want)
			res, err := List(db, obj, tc.opts)
			if err == nil {
				t.Fatalf("List(%+v) = %d entries, nil error", tc.opts, len(res.Entries))
			}
			wantErr(t, err, tc.want)
		})
	}
	// The edges of the valid ranges are accepted.
	for _, opts := range []ListOptions{
		{Limit: 0}, {Limit: 1}, {Limit: MaxListLimit},
		{Start: strings.Repeat("k", MaxKeyBytes)}, {End: strings.Repeat("k", MaxKeyBytes)},
		{Cursor: fwd.Cursor}, {Cursor: rev.Cursor, Reverse: true},
	} {
		if err := opts.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", opts, err)
		}
	}
}

// pageAll lists obj page by page with opts and returns the concatenated keys
// and the number of pages.
func pageAll(t *testing.T, r pebble.Reader, obj Object, opts ListOptions) (keys []string, pages int) {
	t.Helper()
	for {
		res, err := List(r, obj, opts)
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		pages++
		keys = append(keys, entryKeys(res.Entries)...)
		if res.Cursor == "" {
			return keys, pages
		}
		if len(res.Entries) != opts.Limit {
			t.Fatalf("a page with a cursor has %d entries, limit %d", len(res.Entries), opts.Limit)
		}
		if pages > 100 {
			t.Fatalf("paging does not end")
		}
		opts.Cursor = res.Cursor
	}
}

func TestListCursorPaging(t *testing.T) {
	db, obj := listFixture(t)
	for _, base := range []ListOptions{
		{},
		{Prefix: "user:"},
		{Prefix: "a"},
		{Start: "aa", End: "user:3"},
		{StartAfter: "b"},
		{End: "c"},
		{Start: "zz"}, // empty
		{KeysOnly: true},
	} {
		for _, reverse := range []bool{false, true} {
			for _, limit := range []int{1, 2, 3, 4, 9, 10, 11} {
				opts := base
				opts.Reverse = reverse
				want, err := List(db, obj, opts)
				if err != nil || want.Cursor != "" {
					t.Fatalf("unpaged List(%+v): %v, cursor %q", opts, err, want.Cursor)
				}
				opts.Limit = limit
				got, pages := pageAll(t, db, obj, opts)
				name := fmt.Sprintf("%+v", opts)
				sameStrings(t, name, got, entryKeys(want.Entries))
				wantPages := max(1, (len(want.Entries)+limit-1)/limit)
				if pages != wantPages {
					t.Errorf("%s: %d pages for %d keys, want %d", name, pages, len(want.Entries), wantPages)
				}
			}
		}
	}
}

// A cursor names the last key returned, not a position: keys deleted or
// added between pages are handled like Durable Objects does.
func TestListCursorAcrossWrites(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		db, obj := listFixture(t)
		first, err := List(db, obj, ListOptions{Limit: 3, Reverse: reverse})
		if err != nil {
			t.Fatal(err)
		}
		last := first.Entries[2].Key // "ab" forward, "user:2" reverse
		// Delete the cursor's key, add one just past it and one already passed.
		var added, passed string
		if reverse {
			added, passed = "user:15", "user:25"
		} else {
			added, passed = "ab0", "a0"
		}
		mustApply(t, db, obj, &Tx{Ops: []Op{
			{Kind: OpDelete, Keys: []string{last}},
			{Kind: OpPut, Puts: []Entry{{Key: added, Value: Value{Data: []byte("v:" + added), ContentType: ContentTypeText}}, {Key: passed, Value: Value{Data: []byte("x")}}}},
		}}, 11)
		got, _ := pageAll(t, db, obj, ListOptions{Limit: 100, Reverse: reverse, Cursor: first.Cursor})
		var want []string
		for _, k := range append(slices.Clone(listKeys), added) {
			if (!reverse && k > last) || (reverse && k < last) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		if reverse {
			slices.Reverse(want)
		}
		sameStrings(t, fmt.Sprintf("reverse=%v after cursor %q", reverse, last), got, want)
	}
}

func TestListDefaultLimit(t *testing.T) {
	db := newDB(t)
	obj := Object{Shard: 1, Namespace: "ns", Name: "big"}
	keys := make([]string, DefaultListLimit+5)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%05d", i)
	}
	seedKeys(t, db, obj, 1, keys...)
	res, err := List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != DefaultListLimit || res.Cursor == "" {
		t.Fatalf("limit 0: %d entries, cursor %q; want %d and a cursor", len(res.Entries), res.Cursor, DefaultListLimit)
	}
	sameStrings(t, "first page", entryKeys(res.Entries), keys[:DefaultListLimit])
	rest, err := List(db, obj, ListOptions{Cursor: res.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "second page", entryKeys(rest.Entries), keys[DefaultListLimit:])
	if rest.Cursor != "" {
		t.Errorf("last page has cursor %q", rest.Cursor)
	}
	all, err := List(db, obj, ListOptions{Limit: MaxListLimit})
	if err != nil || len(all.Entries) != len(keys) || all.Cursor != "" {
		t.Fatalf("limit max: %v, %d entries, cursor %q", err, len(all.Entries), all.Cursor)
	}
}

// A page ends early, with a cursor, once its values reach MaxListBytes; a
// keysOnly page does not count values.
func TestListByteLimit(t *testing.T) {
	db := newDB(t)
	obj := Object{Shard: 1, Namespace: "ns", Name: "fat"}
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	for i, k := range keys {
		data := bytes.Repeat([]byte{byte('a' + i)}, MaxEntryBytes-len(k))
		putOne(t, db, obj, k, data, ContentTypeBytes, uint64(i+1))
	}
	perPage := (MaxListBytes + MaxEntryBytes - 1) / MaxEntryBytes // entries that reach the limit
	res, err := List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != perPage || res.Cursor == "" {
		t.Fatalf("first page: %d entries, cursor %q; want %d and a cursor", len(res.Entries), res.Cursor, perPage)
	}
	for i, e := range res.Entries {
		if len(e.Value.Data) != MaxEntryBytes-len(e.Key) || e.Value.Data[0] != byte('a'+i) {
			t.Fatalf("entry %q: %d bytes starting %q", e.Key, len(e.Value.Data), e.Value.Data[:1])
		}
	}
	rest, err := List(db, obj, ListOptions{Cursor: res.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "pages", append(entryKeys(res.Entries), entryKeys(rest.Entries)...), keys)
	if rest.Cursor != "" {
		t.Errorf("last page has cursor %q", rest.Cursor)
	}
	ko, err := List(db, obj, ListOptions{KeysOnly: true})
	if err != nil || len(ko.Entries) != len(keys) || ko.Cursor != "" {
		t.Fatalf("keysOnly: %v, %d entries, cursor %q", err, len(ko.Entries), ko.Cursor)
	}
}

func TestListUTF8ByteOrder(t *testing.T) {
	db := newDB(t)
	obj := Object{Shard: 1, Namespace: "ns", Name: "utf8"}
	keys := []string{
		"Z", "a", "z", "~", "\u007f",
		"\u00e9",       // C3 A9
		"\u00ff",       // C3 BF
		"\u0100",       // C4 80
		"\u65e5\u672c", // E6 97 A5 ...
		"\uff21",       // EF BC A1: after U+1F600 in UTF-16 order, before it in UTF-8
		"\U0001f600",   // F0 9F 98 80
		"e\u0301",      // decomposed é sorts with "e"
		"e",
		"\x00",
		"\x01",
	}
	seedKeys(t, db, obj, 1, keys...)
	want := slices.Clone(keys)
	slices.Sort(want) // Go string order is byte order
	res, err := List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "ascending", entryKeys(res.Entries), want)
	if i, j := slices.Index(want, "\uff21"), slices.Index(want, "\U0001f600"); i > j {
		t.Fatalf("U+FF21 sorts after U+1F600")
	}
	res, err = List(db, obj, ListOptions{Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "descending", entryKeys(res.Entries), reversed(want))
	res, err = List(db, obj, ListOptions{Prefix: "\u00e9"})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "prefix é", entryKeys(res.Entries), []string{"\u00e9"})
	res, err = List(db, obj, ListOptions{Start: "\u00e9", End: "\uff21"})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "start é end Ａ", entryKeys(res.Entries), []string{"\u00e9", "\u00ff", "\u0100", "\u65e5\u672c"})
	// Paging through multi-byte keys.
	got, _ := pageAll(t, db, obj, ListOptions{Limit: 2})
	sameStrings(t, "paged", got, want)
	got, _ = pageAll(t, db, obj, ListOptions{Limit: 3, Reverse: true})
	sameStrings(t, "paged reverse", got, reversed(want))
}

// A listing inside one indexed batch sees the batch's own puts, deletes and
// DeleteAll, and nothing of it leaks to readers of the database before commit.
func TestListSeesEarlierWritesInBatch(t *testing.T) {
	db, obj := listFixture(t)
	b := db.NewIndexedBatch()
	defer b.Close()
	puts := []Entry{{Key: "b0", Value: Value{Data: []byte("new")}}, {Key: "aa", Value: Value{Data: []byte("over")}}}
	if _, err := execTx(b, b, obj, &Tx{Ops: []Op{
		{Kind: OpPut, Puts: puts},
		{Kind: OpDelete, Keys: []string{"ba", "user:2", "missing"}},
	}}, 20); err != nil {
		t.Fatal(err)
	}
	res, err := List(b, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "aa", "ab", "b", "b0", "c", "user:1", "user:3", "z"}
	sameStrings(t, "after put and delete", entryKeys(res.Entries), want)
	for _, e := range res.Entries {
		wantVersion := uint64(10)
		if e.Key == "b0" || e.Key == "aa" {
			wantVersion = 20
		}
		if e.Value.Version != wantVersion {
			t.Errorf("%q: version %d, want %d", e.Key, e.Value.Version, wantVersion)
		}
	}
	res, err = List(b, obj, ListOptions{Reverse: true, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "reverse after put and delete", entryKeys(res.Entries), []string{"z", "user:3", "user:1"})
	got, _ := pageAll(t, b, obj, ListOptions{Limit: 2})
	sameStrings(t, "paged in batch", got, want)

	// Not committed: the database still holds the old keys.
	res, err = List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "db before commit", entryKeys(res.Entries), listKeys)

	// DeleteAll, then a put, all in the same batch.
	if err := DeleteAll(b, b, obj, false); err != nil {
		t.Fatal(err)
	}
	res, err = List(b, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "after DeleteAll", entryKeys(res.Entries), nil)
	putOneInBatch(t, b, obj, "fresh", 21)
	res, err = List(b, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "after DeleteAll and put", entryKeys(res.Entries), []string{"fresh"})
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	res, err = List(db, obj, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "db after commit", entryKeys(res.Entries), []string{"fresh"})
	// The neighbours are untouched.
	res, err = List(db, Object{Shard: 3, Namespace: "app", Name: "obj\x00"}, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 12 {
		t.Errorf("neighbour object lost keys: %q", entryKeys(res.Entries))
	}
}

func putOneInBatch(t *testing.T, b *pebble.Batch, obj Object, key string, version uint64) {
	t.Helper()
	if _, err := execTx(b, b, obj, &Tx{Ops: []Op{{Kind: OpPut, Puts: []Entry{{Key: key, Value: Value{Data: []byte("v")}}}}}}, version); err != nil {
		t.Fatal(err)
	}
}
