package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/internal/testlog"
)

// env is one real single-node cluster with the API in front of it. Tests of
// one test function share it; each uses its own objects so they do not see
// each other's data.
type env struct {
	t     *testing.T
	node  *cluster.Node
	url   string
	c     *http.Client
	token string // sent as a bearer token when not empty
}

// newEnv starts a 4-shard node with fast Raft timings and serves the API
// for it, with tokens if not nil. Both are closed when t ends.
func newEnv(t *testing.T, tokens *api.Tokens) *env {
	t.Helper()
	node, err := cluster.New(cluster.Config{
		NodeID:   "n1",
		DataDir:  t.TempDir(),
		RaftAddr: "127.0.0.1:0",
		Shards:   4,
		Raft: cluster.RaftConfig{
			HeartbeatTimeout:   100 * time.Millisecond,
			ElectionTimeout:    100 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
		},
		Logger: testlog.New(t, slog.LevelError),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.WaitReady(ctx); err != nil {
		t.Fatalf("node not ready: %v", err)
	}
	srv, err := api.New(api.Config{Backend: node, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, node: node, url: hs.URL, c: hs.Client()}
}

// at returns a copy of e that reports to t (a subtest's).
func (e *env) at(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// as returns a copy of e that sends token.
func (e *env) as(token string) *env {
	c := *e
	c.token = token
	return &c
}

// resp is an answer, read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. path is sent as is (already escaped); headers are
// name, value pairs.
func (e *env) do(method, path string, body []byte, headers ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// doJSON sends v as a JSON body.
func (e *env) doJSON(method, path string, v any) *resp {
	e.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		if s, isStr := v.(string); isStr {
			b = []byte(s)
		} else {
			var err error
			if b, err = json.Marshal(v); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	return e.do(method, path, b, "Content-Type", "application/json")
}

// objPath is the path of object obj of namespace ns, plus rest.
func objPath(ns, obj, rest string) string {
	return "/v1/ns/" + ns + "/objects/" + url.PathEscape(obj) + rest
}

// kvPath is the path of key of object obj of namespace ns.
func kvPath(ns, obj, key string) string { return objPath(ns, obj, "/kv/"+url.PathEscape(key)) }

// want fails the test unless r has status code status.
func (r *resp) want(t *testing.T, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// json decodes r's JSON body (numbers as json.Number), after checking its
// content type.
func (r *resp) json(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body: %s", ct, r.body)
	}
	return decodeMap(t, r.body)
}

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, b)
	}
	return m
}

// problem is the problem+json body of API.md's "Errors".
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	Condition *int   `json:"condition"`
}

// wantProblem fails the test unless r is a problem+json answer with status
// and code, and every member API.md names.
func (r *resp) wantProblem(t *testing.T, status int, code string) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s); body: %s", r.status, status, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body: %s", ct, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	var p problem
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body: %v: %s", err, r.body)
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(status) || p.Status != status || p.Code != code || p.Detail == "" {
		t.Fatalf("problem %+v, want type about:blank, title %q, status %d, code %s and a detail", p, http.StatusText(status), status, code)
	}
	return p
}

// members returns m's member names, sorted.
func members(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wantMembers fails the test unless m has exactly the members names.
func wantMembers(t *testing.T, m map[string]any, names ...string) {
	t.Helper()
	slices.Sort(names)
	if got := members(m); !slices.Equal(got, names) {
		t.Fatalf("members %v, want %v in %v", got, names, m)
	}
}

// entry is one listed key/value.
type entry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ValueBase64 *string         `json:"valueBase64"`
	ContentType string          `json:"contentType"`
	Version     string          `json:"version"`
}

// page is one page of a listing.
type page struct {
	Entries []entry `json:"entries"`
	Cursor  *string `json:"cursor"`
}

func (r *resp) page(t *testing.T) page {
	t.Helper()
	r.want(t, http.StatusOK)
	m := r.json(t)
	wantMembers(t, m, "entries", "cursor")
	var p page
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Entries == nil {
		t.Fatalf("entries is null, want an array: %s", r.body)
	}
	return p
}

func (p page) keys() []string {
	out := make([]string, 0, len(p.Entries))
	for _, e := range p.Entries {
		out = append(out, e.Key)
	}
	return out
}

// list lists the keys of an object (as every key, up to 10000).
func (e *env) list(ns, obj string) page {
	e.t.Helper()
	return e.do("GET", objPath(ns, obj, "/kv?limit=10000"), nil).page(e.t)
}

// put writes a key with a content type and returns its version.
func (e *env) put(ns, obj, key string, value []byte, contentType string) string {
	e.t.Helper()
	r := e.do("PUT", kvPath(ns, obj, key), value, "Content-Type", contentType).want(e.t, http.StatusOK)
	m := r.json(e.t)
	v, _ := m["version"].(string)
	if v == "" {
		e.t.Fatalf("PUT answered %s, want a version", r.body)
	}
	return v
}

// wantKeys fails the test unless the object holds exactly keys.
func (e *env) wantKeys(ns, obj string, keys ...string) {
	e.t.Helper()
	got := e.list(ns, obj).keys()
	if keys == nil {
		keys = []string{}
	}
	if !slices.Equal(got, keys) {
		e.t.Fatalf("object %s/%q holds keys %q, want %q", ns, obj, got, keys)
	}
}

// wantValue fails the test unless key holds exactly value, with version if
// not empty.
func (e *env) wantValue(ns, obj, key, value, version string) {
	e.t.Helper()
	r := e.do("GET", kvPath(ns, obj, key), nil).want(e.t, http.StatusOK)
	if string(r.body) != value {
		e.t.Fatalf("key %q holds %q, want %q", key, r.body, value)
	}
	if version != "" && r.header.Get("ETag") != `"`+version+`"` {
		e.t.Fatalf("key %q has ETag %s, want version %s", key, r.header.Get("ETag"), version)
	}
}
