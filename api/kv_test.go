package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairndb/cairn/placement"
)

func TestKVGetPutHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "basic"

	r := e.do("PUT", kvPath(ns, obj, "k"), []byte("hello"), "Content-Type", "text/plain").want(t, http.StatusOK)
	m := r.json(t)
	wantMembers(t, m, "version")
	v1 := m["version"].(string)
	if _, err := strconv.ParseUint(v1, 10, 64); err != nil {
		t.Fatalf("version %q is not a decimal string", v1)
	}
	if got := r.header.Get("ETag"); got != `"`+v1+`"` {
		t.Fatalf("PUT ETag %q, want %q", got, `"`+v1+`"`)
	}

	t.Run("GET", func(t *testing.T) {
		r := e.at(t).do("GET", kvPath(ns, obj, "k"), nil).want(t, http.StatusOK)
		if string(r.body) != "hello" || r.header.Get("Content-Type") != "text/plain" || r.header.Get("ETag") != `"`+v1+`"` {
			t.Fatalf("GET: body %q, Content-Type %q, ETag %q", r.body, r.header.Get("Content-Type"), r.header.Get("ETag"))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		r := e.at(t).do("HEAD", kvPath(ns, obj, "k"), nil).want(t, http.StatusOK)
		if len(r.body) != 0 || r.header.Get("Content-Length") != "5" || r.header.Get("Content-Type") != "text/plain" || r.header.Get("ETag") != `"`+v1+`"` {
			t.Fatalf("HEAD: body %q, headers %v", r.body, r.header)
		}
		e.at(t).do("HEAD", kvPath(ns, obj, "missing"), nil).want(t, http.StatusNotFound)
	})
	t.Run("If-None-Match", func(t *testing.T) {
		for _, tc := range []struct {
			inm  string
			want int
		}{
			{`"` + v1 + `"`, http.StatusNotModified},
			{`"1", "` + v1 + `"`, http.StatusNotModified},
			{`*`, http.StatusNotModified},
			{`"999999999"`, http.StatusOK},
		} {
			r := e.at(t).do("GET", kvPath(ns, obj, "k"), nil, "If-None-Match", tc.inm).want(t, tc.want)
			if r.header.Get("ETag") != `"`+v1+`"` {
				t.Errorf("If-None-Match %s: ETag %q", tc.inm, r.header.Get("ETag"))
			}
			if tc.want == http.StatusNotModified && len(r.body) != 0 {
				t.Errorf("If-None-Match %s: 304 with a body %q", tc.inm, r.body)
			}
		}
	})
	t.Run("overwrite raises the version", func(t *testing.T) {
		e := e.at(t)
		v2 := e.put(ns, obj, "k", []byte("again"), "")
		if a, b := mustUint(t, v1), mustUint(t, v2); b <= a {
			t.Fatalf("version went from %d to %d", a, b)
		}
		r := e.do("GET", kvPath(ns, obj, "k"), nil).want(t, http.StatusOK)
		if string(r.body) != "again" || r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("ETag") != `"`+v2+`"` {
			t.Fatalf("GET after overwrite: %q %v", r.body, r.header)
		}
	})
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%q is not a version: %v", s, err)
	}
	return n
}

func TestKVContentTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "types"
	for i, tc := range []struct {
		ct, body   string
		wantCT     string // as GET answers it
		wantValue  string // listing's "value" (JSON), or "" for valueBase64
		listedType string // listing's "contentType" for base64 values
	}{
		{"application/json", `{"x": 1}`, "application/json", `{"x":1}`, ""},
		{"application/json; charset=utf-8", `[1, "a"]`, "application/json", `[1,"a"]`, ""},
		{"Application/JSON", `"s"`, "application/json", `"s"`, ""},
		{"text/plain", "plain", "text/plain", "", "text/plain"},
		{"image/png", "\x00\x01\x02", "image/png", "", "image/png"},
		{"", "raw\xff", "application/octet-stream", "", ""},
		{"application/octet-stream", "bytes", "application/octet-stream", "", ""},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			e := e.at(t)
			key := "k" + strconv.Itoa(i)
			var r *resp
			if tc.ct == "" {
				r = e.do("PUT", kvPath(ns, obj, key), []byte(tc.body))
			} else {
				r = e.do("PUT", kvPath(ns, obj, key), []byte(tc.body), "Content-Type", tc.ct)
			}
			version := r.want(t, http.StatusOK).json(t)["version"].(string)
			g := e.do("GET", kvPath(ns, obj, key), nil).want(t, http.StatusOK)
			if string(g.body) != tc.body || g.header.Get("Content-Type") != tc.wantCT {
				t.Fatalf("GET: %q as %q, want %q as %q", g.body, g.header.Get("Content-Type"), tc.body, tc.wantCT)
			}
			p := e.do("GET", objPath(ns, obj, "/kv?start="+key+"&limit=1"), nil).page(t)
			if len(p.Entries) != 1 || p.Entries[0].Key != key {
				t.Fatalf("listing: %+v", p)
			}
			en := p.Entries[0]
			if en.Version != version {
				t.Errorf("listed version %s, want %s", en.Version, version)
			}
			if tc.wantValue != "" {
				if en.ValueBase64 != nil || string(en.Value) != tc.wantValue {
					t.Fatalf("listed value %s / base64 %v, want value %s", en.Value, en.ValueBase64, tc.wantValue)
				}
				return
			}
			if en.Value != nil || en.ValueBase64 == nil || *en.ValueBase64 != base64.StdEncoding.EncodeToString([]byte(tc.body)) {
				t.Fatalf("listed value %s / base64 %v, want valueBase64 of %q", en.Value, en.ValueBase64, tc.body)
			}
			if en.ContentType != tc.listedType {
				t.Errorf("listed contentType %q, want %q", en.ContentType, tc.listedType)
			}
		})
	}
}

func TestKVDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "del"
	e.put(ns, obj, "k", []byte("v"), "")
	m := e.do("DELETE", kvPath(ns, obj, "k"), nil).want(t, http.StatusOK).json(t)
	if m["deleted"] != true {
		t.Fatalf("first DELETE answered %v, want deleted:true", m)
	}
	e.do("GET", kvPath(ns, obj, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")
	m = e.do("DELETE", kvPath(ns, obj, "k"), nil).want(t, http.StatusOK).json(t)
	if m["deleted"] != false {
		t.Fatalf("second DELETE answered %v, want deleted:false", m)
	}
	for k := range m {
		if k != "deleted" && k != "version" {
			t.Errorf("DELETE answer has unexpected member %q: %v", k, m)
		}
	}
}

func TestKVPreconditions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "kv"
	for i, tc := range []struct {
		name   string
		exists bool // whether the key holds "old" before
		method string
		header string
		value  func(v string) string // the header value, given the current version
		want   int
	}{
		{"PUT If-Match current", true, "PUT", "If-Match", quote, http.StatusOK},
		{"PUT If-Match unquoted current", true, "PUT", "If-Match", same, http.StatusOK},
		{"PUT If-Match other", true, "PUT", "If-Match", other, http.StatusPreconditionFailed},
		{"PUT If-Match missing", false, "PUT", "If-Match", constant(`"5"`), http.StatusPreconditionFailed},
		{"PUT If-Match * exists", true, "PUT", "If-Match", constant("*"), http.StatusOK},
		{"PUT If-Match * missing", false, "PUT", "If-Match", constant("*"), http.StatusPreconditionFailed},
		{"PUT If-None-Match * missing", false, "PUT", "If-None-Match", constant("*"), http.StatusOK},
		{"PUT If-None-Match * exists", true, "PUT", "If-None-Match", constant("*"), http.StatusPreconditionFailed},
		{"PUT If-None-Match current", true, "PUT", "If-None-Match", quote, http.StatusPreconditionFailed},
		{"PUT If-None-Match other", true, "PUT", "If-None-Match", other, http.StatusOK},
		{"PUT If-None-Match version missing", false, "PUT", "If-None-Match", constant(`"5"`), http.StatusOK},
		{"DELETE If-Match current", true, "DELETE", "If-Match", quote, http.StatusOK},
		{"DELETE If-Match other", true, "DELETE", "If-Match", other, http.StatusPreconditionFailed},
		{"DELETE If-Match * missing", false, "DELETE", "If-Match", constant("*"), http.StatusPreconditionFailed},
		{"DELETE If-None-Match * exists", true, "DELETE", "If-None-Match", constant("*"), http.StatusPreconditionFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			obj := "pre" + strconv.Itoa(i)
			version := ""
			if tc.exists {
				version = e.put(ns, obj, "k", []byte("old"), "")
			}
			r := e.do(tc.method, kvPath(ns, obj, "k"), []byte("new"), tc.header, tc.value(version))
			switch {
			case tc.want == http.StatusPreconditionFailed:
				p := r.wantProblem(t, http.StatusPreconditionFailed, "precondition_failed")
				if p.Condition != nil && *p.Condition != 0 {
					t.Errorf("condition %d in a single-key answer", *p.Condition)
				}
				if tc.exists {
					e.wantValue(ns, obj, "k", "old", version)
				} else {
					e.wantKeys(ns, obj)
				}
			case tc.method == "PUT":
				r.want(t, http.StatusOK)
				e.wantValue(ns, obj, "k", "new", r.json(t)["version"].(string))
			default:
				if m := r.want(t, http.StatusOK).json(t); m["deleted"] != true {
					t.Fatalf("DELETE answered %v", m)
				}
				e.wantKeys(ns, obj)
			}
		})
	}
}

func quote(v string) string { return `"` + v + `"` }
func same(v string) string  { return v }
func other(v string) string { return `"` + strconv.Itoa(1000000+len(v)) + `"` }
func constant(s string) func(string) string {
	return func(string) string { return s }
}

func TestKVList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "list"
	keys := []string{"a", "b", "c", "d", "user:1", "user:2", "user:3"}
	for _, k := range keys {
		e.put(ns, obj, k, []byte(`"`+k+`"`), "application/json")
	}
	rev := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	for _, tc := range []struct {
		query      string
		want       []string
		moreCursor bool
	}{
		{"", keys, false},
		{"prefix=user:", []string{"user:1", "user:2", "user:3"}, false},
		{"prefix=zzz", []string{}, false},
		{"start=b", keys[1:], false},
		{"startAfter=b", keys[2:], false},
		{"end=c", []string{"a", "b"}, false},
		{"start=b&end=d", []string{"b", "c"}, false},
		{"startAfter=a&end=d", []string{"b", "c"}, false},
		{"start=d&end=b", []string{}, false},
		{"reverse=true", rev(keys), false},
		{"reverse=1", rev(keys), false},
		{"reverse=false", keys, false},
		{"reverse=true&start=b&end=d", []string{"c", "b"}, false},
		{"reverse=true&startAfter=b&end=user:2", []string{"user:1", "d", "c"}, false},
		{"reverse=true&prefix=user:&limit=2", []string{"user:3", "user:2"}, true},
		{"limit=2", []string{"a", "b"}, true},
		{"limit=7", keys, false},
		{"limit=10000", keys, false},
		{"prefix=user:&start=user:2", []string{"user:2", "user:3"}, false},
		{"consistency=stale", keys, false},
		{"consistency=linearizable", keys, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			p := e.at(t).do("GET", objPath(ns, obj, "/kv?"+tc.query), nil).page(t)
			if !slices.Equal(p.keys(), tc.want) {
				t.Fatalf("keys %q, want %q", p.keys(), tc.want)
			}
			if (p.Cursor != nil) != tc.moreCursor {
				t.Fatalf("cursor %v, want one: %v", p.Cursor, tc.moreCursor)
			}
			for _, en := range p.Entries {
				if string(en.Value) != `"`+en.Key+`"` || en.ValueBase64 != nil || en.Version == "" {
					t.Fatalf("entry %+v", en)
				}
			}
		})
	}

	t.Run("keysOnly", func(t *testing.T) {
		r := e.at(t).do("GET", objPath(ns, obj, "/kv?keysOnly=true&prefix=user:"), nil).want(t, http.StatusOK)
		var raw struct {
			Entries []map[string]any `json:"entries"`
			Cursor  *string          `json:"cursor"`
		}
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		if len(raw.Entries) != 3 || raw.Cursor != nil {
			t.Fatalf("keysOnly listing %s", r.body)
		}
		for _, en := range raw.Entries {
			wantMembers(t, en, "key", "version")
		}
	})

	t.Run("cursor paging", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"limit=2", keys},
			{"limit=1", keys},
			{"limit=3&reverse=true", rev(keys)},
			{"limit=2&prefix=user:", keys[4:]},
			{"limit=2&startAfter=a&end=user:3", keys[1:6]},
			{"limit=2&keysOnly=true&reverse=true&start=b", rev(keys[1:])},
		} {
			e := e.at(t)
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(keys)+1 {
					t.Fatalf("%s: paging does not end; got %q", tc.query, got)
				}
				q := tc.query
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				p := e.do("GET", objPath(ns, obj, "/kv?"+q), nil).page(t)
				got = append(got, p.keys()...)
				if p.Cursor == nil {
					break
				}
				if *p.Cursor == "" {
					t.Fatalf("%s: empty cursor string, want null on the last page", tc.query)
				}
				cursor = *p.Cursor
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%s: paged through %q, want %q", tc.query, got, tc.want)
			}
		}
	})
}

// oddKeys are keys that a path router could mangle.
var oddKeys = []string{
	"a/b", "a//b", "/lead", "trail/", "//", "..", "../x", "a/../b", "a/./b", ".",
	"100%", "%41", "%2F", "with space", " ", "plus+sign", "q?x=1&y", "hash#frag", "semi;colon",
	"back\\slash", "tab\tkey", "ünïcødé", "日本語/キー", "emoji 😀", "~tilde", "quote\"d", "ctl\x01",
}

func TestKVKeysRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "odd"
	for _, k := range oddKeys {
		t.Run(k, func(t *testing.T) {
			e := e.at(t)
			v := e.put(ns, obj, k, []byte("value of "+k), "")
			e.wantValue(ns, obj, k, "value of "+k, v)
		})
	}
	want := slices.Clone(oddKeys)
	slices.Sort(want) // Go orders strings by their UTF-8 bytes, as the API does
	e.wantKeys(ns, obj, want...)

	t.Run("delete", func(t *testing.T) {
		e := e.at(t)
		for _, k := range oddKeys {
			if m := e.do("DELETE", kvPath(ns, obj, k), nil).want(t, http.StatusOK).json(t); m["deleted"] != true {
				t.Fatalf("DELETE %q: %v", k, m)
			}
		}
		e.wantKeys(ns, obj)
	})

	t.Run("unescaped slashes", func(t *testing.T) {
		// A client that does not escape '/' still gets its key verbatim:
		// the path is not cleaned.
		e := e.at(t)
		const obj = "raw"
		for _, k := range []string{"x/y", "x//y", "x/../y", "x/./y", "x/y/"} {
			e.do("PUT", objPath(ns, obj, "/kv/"+k), []byte(k)).want(t, http.StatusOK)
		}
		for _, k := range []string{"x/y", "x//y", "x/../y", "x/./y", "x/y/"} {
			e.wantValue(ns, obj, k, k, "")
		}
		e.wantKeys(ns, obj, "x/../y", "x/./y", "x//y", "x/y", "x/y/")
	})
}

func TestObjectNamesRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "names"
	names := []string{"a/b", "a//b", "/", "..", "ünï", "日本", "with space", "100%", "q?#", strings.Repeat("é", 512)}
	for _, n := range names {
		e.put(ns, n, "k", []byte(n), "")
	}
	for _, n := range names {
		e.wantValue(ns, n, "k", n, "")
	}
	r := e.do("GET", "/v1/ns/"+ns+"/objects", nil).want(t, http.StatusOK)
	var got struct {
		Objects []struct{ Name, ID string } `json:"objects"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	var gotNames []string
	for _, o := range got.Objects {
		gotNames = append(gotNames, o.Name)
		if o.ID != placement.ObjectID(ns, o.Name) {
			t.Errorf("object %q: id %s", o.Name, o.ID)
		}
	}
	if !slices.Equal(gotNames, want) {
		t.Fatalf("objects %q, want %q", gotNames, want)
	}
}

func TestKVLimitsAtTheBoundary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "kv", "limits"
	const maxEntry = 2 << 20
	for _, tc := range []struct {
		name, key string
		valueLen  int
	}{
		{"2048-byte key", strings.Repeat("k", 2048), 1},
		{"2048-byte multibyte key", strings.Repeat("é", 1024), 1},
		{"key + value = 2 MiB", "big", maxEntry - 3},
		{"2048-byte key + value = 2 MiB", strings.Repeat("z", 2048), maxEntry - 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			value := bytes.Repeat([]byte{0xAB}, tc.valueLen)
			v := e.put(ns, obj, tc.key, value, "")
			r := e.do("GET", kvPath(ns, obj, tc.key), nil).want(t, http.StatusOK)
			if !bytes.Equal(r.body, value) || r.header.Get("ETag") != quote(v) {
				t.Fatalf("GET: %d bytes, ETag %s", len(r.body), r.header.Get("ETag"))
			}
		})
	}
}
