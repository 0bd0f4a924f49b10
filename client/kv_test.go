package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cairndb/cairn/client"
)

type profile struct {
	Name  string   `json:"name"`
	Age   int      `json:"age"`
	Tags  []string `json:"tags"`
	Admin bool     `json:"admin"`
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	o := object(t, c)

	want := profile{Name: "Alice", Age: 30, Tags: []string{"a", "b"}, Admin: true}
	v1, err := o.Put(ctx, "profile", want)
	if err != nil {
		t.Fatal(err)
	}
	var got profile
	if err := o.Get(ctx, "profile", &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	var raw json.RawMessage
	if err := o.Get(ctx, "profile", &raw); err != nil || !strings.Contains(string(raw), `"name":"Alice"`) {
		t.Fatalf("Get into RawMessage = %s, %v", raw, err)
	}
	val, err := o.GetBytes(ctx, "profile")
	if err != nil {
		t.Fatal(err)
	}
	if val.ContentType != client.ContentTypeJSON || !val.IsJSON() || val.Version != v1 || val.JSON() == nil {
		t.Fatalf("GetBytes = %+v, want JSON at version %s", val, v1)
	}
	var dec profile
	if err := val.Decode(&dec); err != nil || !reflect.DeepEqual(dec, want) {
		t.Fatalf("Value.Decode = %+v, %v", dec, err)
	}

	// A later write has a greater version.
	v2, err := o.Put(ctx, "profile", map[string]any{"name": "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	if !versionLess(v1, v2) {
		t.Fatalf("versions %s then %s do not grow", v1, v2)
	}

	// Scalars, null and raw JSON.
	for key, v := range map[string]any{"int": 42, "str": "hello", "null": nil, "raw": json.RawMessage(`{"x":[1,2]}`), "float": 1.5} {
		if _, err := o.Put(ctx, key, v); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
		var back any
		if err := o.Get(ctx, key, &back); err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		wantJSON, _ := json.Marshal(v)
		gotJSON, _ := json.Marshal(back)
		if string(gotJSON) != string(wantJSON) {
			t.Fatalf("%s: got %s, want %s", key, gotJSON, wantJSON)
		}
	}

	// []byte is stored as raw bytes.
	if _, err := o.Put(ctx, "bytes", []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	val, err = o.GetBytes(ctx, "bytes")
	if err != nil || val.ContentType != client.ContentTypeBytes || string(val.Data) != "\x00\x01\x02\xff" || val.JSON() != nil {
		t.Fatalf("GetBytes(bytes) = %+v, %v", val, err)
	}
	var b []byte
	if err := o.Get(ctx, "bytes", &b); err != nil || len(b) != 4 {
		t.Fatalf("Get bytes into []byte = %v, %v", b, err)
	}
	var notJSON profile
	if err := o.Get(ctx, "bytes", &notJSON); err == nil {
		t.Fatal("Get of raw bytes into a struct succeeded")
	}

	// PutBytes with a content type.
	vt, err := o.PutBytes(ctx, "text", []byte("hi there"), "text/plain; charset=utf-8")
	if err != nil {
		t.Fatal(err)
	}
	val, err = o.GetBytes(ctx, "text")
	if err != nil || val.ContentType != "text/plain; charset=utf-8" || string(val.Data) != "hi there" || val.Version != vt {
		t.Fatalf("GetBytes(text) = %+v, %v", val, err)
	}
	var s string
	if err := o.Get(ctx, "text", &s); err != nil || s != "hi there" {
		t.Fatalf("Get text into string = %q, %v", s, err)
	}
	// An empty value.
	if _, err := o.PutBytes(ctx, "empty", nil, ""); err != nil {
		t.Fatal(err)
	}
	if val, err := o.GetBytes(ctx, "empty"); err != nil || len(val.Data) != 0 || val.ContentType != client.ContentTypeBytes {
		t.Fatalf("GetBytes(empty) = %+v, %v", val, err)
	}

	// A missing key.
	err = o.Get(ctx, "missing", &got)
	var ce *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ce) || ce.Status != 404 {
		t.Fatalf("Get missing = %v", err)
	}
	// A stale read is served too.
	if err := o.Get(ctx, "str", &s, client.Stale()); err != nil || s != "hello" {
		t.Fatalf("stale Get = %q, %v", s, err)
	}
}

// TestNames checks names and keys that need escaping reach the server
// intact: slashes, spaces, percent signs, unicode, "a//b" and "..".
func TestNames(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	ns := c.Namespace("t")
	o := ns.Object("dir/with space/%41/ünï/" + t.Name())
	keys := []string{"a/b", "a//b", "../up", "sp ace", "per%cent", "q?x=1#f", "ключ", "+plus", "a/"}
	for i, k := range keys {
		if _, err := o.Put(ctx, k, i); err != nil {
			t.Fatalf("Put %q: %v", k, err)
		}
	}
	for i, k := range keys {
		var n int
		if err := o.Get(ctx, k, &n); err != nil || n != i {
			t.Fatalf("Get %q = %d, %v; want %d", k, n, err, i)
		}
	}
	var listed []string
	for e, err := range o.All(ctx, client.ListOptions{KeysOnly: true}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, e.Key)
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	if !slices.Equal(listed, sorted) {
		t.Fatalf("listed %q, want %q", listed, sorted)
	}
	page, err := ns.Objects(ctx, client.ObjectsOptions{Prefix: "dir/with space/%41/"})
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Name != o.Name() || page.Objects[0].ID != o.ID() {
		t.Fatalf("Objects = %+v, %v; want %q with id %s", page, err, o.Name(), o.ID())
	}
}

func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	o := object(t, c)

	v1, err := o.Put(ctx, "k", "first", client.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put(ctx, "k", "second", client.IfAbsent()); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("IfAbsent on an existing key = %v, want ErrPreconditionFailed", err)
	}
	v2, err := o.Put(ctx, "k", "second", client.IfVersion(v1))
	if err != nil {
		t.Fatalf("IfVersion(current) = %v", err)
	}
	if _, err := o.Put(ctx, "k", "third", client.IfVersion(v1)); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("IfVersion(stale) = %v, want ErrPreconditionFailed", err)
	}
	var ce *client.Error
	if _, err := o.PutBytes(ctx, "k", []byte("x"), "", client.IfVersion(v1)); !errors.As(err, &ce) || ce.Status != 412 || ce.Title != "Precondition Failed" || ce.Detail == "" {
		t.Fatalf("PutBytes IfVersion(stale) = %v", err)
	}
	if _, err := o.Put(ctx, "nope", 1, client.IfExists()); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("IfExists on a missing key = %v", err)
	}
	if _, err := o.Put(ctx, "k", "third", client.IfExists()); err != nil {
		t.Fatalf("IfExists = %v", err)
	}
	if _, err := o.Put(ctx, "k", "fourth", client.IfNoneMatch(v2)); err != nil {
		t.Fatalf("IfNoneMatch(old version) = %v", err)
	}
	cur, err := o.GetBytes(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// A cached copy that is still current is not moved again.
	if _, err := o.GetBytes(ctx, "k", client.IfNoneMatch(cur.Version)); !errors.Is(err, client.ErrNotModified) {
		t.Fatalf("GetBytes IfNoneMatch(current) = %v, want ErrNotModified", err)
	}
	if v, err := o.GetBytes(ctx, "k", client.IfNoneMatch(v1)); err != nil || string(v.Data) != `"fourth"` {
		t.Fatalf("GetBytes IfNoneMatch(old) = %+v, %v", v, err)
	}
	// Conditional delete.
	if _, err := o.Delete(ctx, "k", client.IfVersion(v1)); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("Delete IfVersion(stale) = %v", err)
	}
	if ok, err := o.Delete(ctx, "k", client.IfVersion(cur.Version)); err != nil || !ok {
		t.Fatalf("Delete IfVersion(current) = %v, %v", ok, err)
	}
	// An option that does not apply fails before anything is sent.
	if _, err := o.List(ctx, client.ListOptions{}, client.IfAbsent()); err == nil || !strings.Contains(err.Error(), "IfAbsent") {
		t.Fatalf("List with IfAbsent = %v", err)
	}
	if _, err := o.Delete(ctx, "k", client.IfAbsent()); err == nil {
		t.Fatal("Delete with IfAbsent was accepted")
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	o := object(t, newClient(t))
	if _, err := o.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := o.Delete(ctx, "k"); err != nil || !ok {
		t.Fatalf("Delete existing = %v, %v", ok, err)
	}
	if ok, err := o.Delete(ctx, "k"); err != nil || ok {
		t.Fatalf("Delete missing = %v, %v", ok, err)
	}
	if err := o.Get(ctx, "k", new(int)); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	o := object(t, c)
	var keys []string
	puts := map[string]any{}
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		if i%2 == 0 {
			puts[k] = i
		} else {
			puts[k] = []byte{byte(i)}
		}
	}
	if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpPutMany(puts)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.PutBytes(ctx, "other", []byte("x"), "text/plain"); err != nil {
		t.Fatal(err)
	}
	onePage, err := o.List(ctx, client.ListOptions{Prefix: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if onePage.Cursor != "" || !slices.Equal(entryKeys(onePage.Entries), keys) {
		t.Fatalf("one-shot listing = %q (cursor %q)", entryKeys(onePage.Entries), onePage.Cursor)
	}
	for i, e := range onePage.Entries {
		if i%2 == 0 {
			var n int
			if !e.IsJSON() || e.Decode(&n) != nil || n != i {
				t.Fatalf("entry %s = %+v", e.Key, e)
			}
		} else if e.ContentType != client.ContentTypeBytes || !slices.Equal(e.Data, []byte{byte(i)}) {
			t.Fatalf("entry %s = %+v", e.Key, e)
		}
		if e.Version == "" {
			t.Fatalf("entry %s has no version", e.Key)
		}
	}
	reversed := slices.Clone(onePage.Entries)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name    string
		reverse bool
		want    []client.Entry
	}{{"forward", false, onePage.Entries}, {"reverse", true, reversed}} {
		var got []client.Entry
		for e, err := range o.All(ctx, client.ListOptions{Prefix: "k", Limit: 3, Reverse: tc.reverse}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: paged listing = %q, want %q", tc.name, entryKeys(got), entryKeys(tc.want))
		}
		// Pages by hand.
		var paged []string
		opts := client.ListOptions{Prefix: "k", Limit: 3, Reverse: tc.reverse, KeysOnly: true}
		pages := 0
		for {
			p, err := o.List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			paged = append(paged, entryKeys(p.Entries)...)
			for _, e := range p.Entries {
				if e.Data != nil || e.Version == "" {
					t.Fatalf("keysOnly entry %+v", e)
				}
			}
			if p.Cursor == "" {
				break
			}
			opts.Cursor = p.Cursor
		}
		if pages != 7 || !slices.Equal(paged, entryKeys(tc.want)) {
			t.Fatalf("%s: %d pages of %q", tc.name, pages, paged)
		}
	}
	// Breaking out of the iterator stops it.
	n := 0
	for _, err := range o.All(ctx, client.ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	for _, tc := range []struct {
		opts client.ListOptions
		want []string
	}{
		{client.ListOptions{Start: "k05", End: "k08"}, []string{"k05", "k06", "k07"}},
		{client.ListOptions{StartAfter: "k05", End: "k08"}, []string{"k06", "k07"}},
		{client.ListOptions{Prefix: "k1", Limit: 2}, []string{"k10", "k11"}},
		{client.ListOptions{Prefix: "k", Reverse: true, Limit: 2}, []string{"k19", "k18"}},
		{client.ListOptions{Start: "k18"}, []string{"k18", "k19", "other"}},
	} {
		p, err := o.List(ctx, tc.opts, client.Stale())
		if err != nil {
			t.Fatal(err)
		}
		if got := entryKeys(p.Entries); !slices.Equal(got, tc.want) {
			t.Fatalf("List(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
	p, err := o.List(ctx, client.ListOptions{Prefix: "other"})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].ContentType != "text/plain" || string(p.Entries[0].Data) != "x" {
		t.Fatalf("List(other) = %+v, %v", p, err)
	}
}

func entryKeys(es []client.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

func TestIncr(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	o := object(t, newClient(t))
	if n, err := o.Incr(ctx, "n", 5); err != nil || n != 5 {
		t.Fatalf("Incr missing = %d, %v", n, err)
	}
	if n, err := o.Incr(ctx, "n", -7); err != nil || n != -2 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	var n int64
	if err := o.Get(ctx, "n", &n); err != nil || n != -2 {
		t.Fatalf("Get = %d, %v", n, err)
	}
	if f, err := o.IncrFloat(ctx, "f", 1.5); err != nil || f != 1.5 {
		t.Fatalf("IncrFloat = %v, %v", f, err)
	}
	if f, err := o.IncrFloat(ctx, "f", 2); err != nil || f != 3.5 {
		t.Fatalf("IncrFloat = %v, %v", f, err)
	}
	if _, err := o.Incr(ctx, "f", 1); err == nil || !strings.Contains(err.Error(), "IncrFloat") {
		t.Fatalf("Incr of a float = %v", err)
	}
	if _, err := o.Put(ctx, "s", "text"); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if _, err := o.Incr(ctx, "s", 1); !errors.Is(err, client.ErrNotANumber) || !errors.As(err, &ce) || ce.Status != 409 {
		t.Fatalf("Incr of a string = %v, want ErrNotANumber", err)
	}
	if _, err := o.Put(ctx, "max", int64(1<<63-1)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Incr(ctx, "max", 1); !errors.Is(err, client.ErrNotANumber) {
		t.Fatalf("Incr overflow = %v, want ErrNotANumber", err)
	}
}

// versionLess compares two versions numerically.
func versionLess(a, b client.Version) bool {
	var x, y uint64
	fmt.Sscan(string(a), &x)
	fmt.Sscan(string(b), &y)
	return x < y
}
