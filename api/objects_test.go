package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cairndb/cairn/placement"
)

// objectPage is one page of GET /v1/ns/{ns}/objects.
type objectPage struct {
	Objects []struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"objects"`
	Cursor *string `json:"cursor"`
}

func (e *env) objects(ns, query string) objectPage {
	e.t.Helper()
	r := e.do("GET", "/v1/ns/"+ns+"/objects?"+query, nil).want(e.t, http.StatusOK)
	wantMembers(e.t, r.json(e.t), "objects", "cursor")
	var p objectPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatal(err)
	}
	if p.Objects == nil {
		e.t.Fatalf("objects is null: %s", r.body)
	}
	for _, o := range p.Objects {
		if o.ID != sha256Hex(ns+"\x00"+o.Name) {
			e.t.Fatalf("object %q has id %s", o.Name, o.ID)
		}
	}
	return p
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestObjectsListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "objs"
	var names []string
	shards := map[uint32]bool{}
	for i := range 30 {
		n := fmt.Sprintf("obj-%02d", i)
		names = append(names, n)
		s, err := placement.ShardFor(ns, n, 4)
		if err != nil {
			t.Fatal(err)
		}
		shards[s] = true
	}
	if len(shards) < 3 {
		t.Fatalf("the objects use only %d shards; the test needs them spread", len(shards))
	}
	// Write them in an order other than the listing's.
	for i := range names {
		n := names[(i*7)%len(names)]
		e.put(ns, n, "k", []byte(n), "")
	}
	// An object of another namespace must not show.
	e.put("objs2", "obj-99", "k", []byte("x"), "")

	page := func(t *testing.T, query string, limit int) []string {
		e := e.at(t)
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > len(names) {
				t.Fatalf("paging does not end: %q", got)
			}
			q := fmt.Sprintf("%slimit=%d", query, limit)
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			p := e.objects(ns, q)
			if len(p.Objects) > limit {
				t.Fatalf("page of %d objects, limit %d", len(p.Objects), limit)
			}
			for _, o := range p.Objects {
				got = append(got, o.Name)
			}
			if p.Cursor == nil {
				return got
			}
			if len(p.Objects) == 0 {
				t.Fatalf("an empty page with a cursor")
			}
			cursor = *p.Cursor
		}
	}
	for _, tc := range []struct {
		query string
		limit int
		want  []string
	}{
		{"", 7, names},
		{"", 1, names},
		{"", 30, names},
		{"", 1000, names},
		{"prefix=obj-1&", 3, names[10:20]},
		{"prefix=obj-2&", 7, names[20:30]},
		{"prefix=none&", 7, nil},
	} {
		t.Run(fmt.Sprintf("%slimit=%d", tc.query, tc.limit), func(t *testing.T) {
			got := page(t, tc.query, tc.limit)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("paged through %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("default limit, no cursor", func(t *testing.T) {
		p := e.at(t).objects(ns, "")
		if len(p.Objects) != 30 || p.Cursor != nil {
			t.Fatalf("%d objects, cursor %v", len(p.Objects), p.Cursor)
		}
	})

	t.Run("deleteAll removes the object", func(t *testing.T) {
		e := e.at(t)
		const gone = "obj-13"
		e.put(ns, gone, "k2", []byte(`"more"`), "application/json")
		r := e.do("DELETE", objPath(ns, gone, ""), nil).want(t, http.StatusOK)
		mustUint(t, r.json(t)["version"].(string))
		e.wantKeys(ns, gone)
		e.do("GET", kvPath(ns, gone, "k"), nil).wantProblem(t, http.StatusNotFound, "not_found")
		want := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == gone })
		if got := page(t, "", 7); !slices.Equal(got, want) {
			t.Fatalf("after deleteAll: %q, want %q", got, want)
		}
		// deleteAll of an object with nothing is fine too.
		e.do("DELETE", objPath(ns, "never-was", "?alarm=true"), nil).want(t, http.StatusOK)
		e.wantKeys(ns, "never-was")
		// The object can be written again.
		e.put(ns, gone, "k", []byte("back"), "")
		if got := page(t, "", 7); !slices.Equal(got, names) {
			t.Fatalf("after rewriting: %q", got)
		}
	})
}

func TestUniqueID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 5 {
		r := e.do("POST", "/v1/ns/uniq/unique-id", nil).want(t, http.StatusOK)
		m := r.json(t)
		wantMembers(t, m, "name", "id")
		name, id := m["name"].(string), m["id"].(string)
		if !hex64.MatchString(name) || id != sha256Hex("uniq\x00"+name) {
			t.Fatalf("unique-id %s", r.body)
		}
		if seen[name] {
			t.Fatalf("unique-id repeated %s", name)
		}
		seen[name] = true
		// The name is usable as an object name.
		e.put("uniq", name, "k", []byte("v"), "")
	}
}

func TestNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.wantNamespaceDefaults("fresh")
	wantNamespaces := func(t *testing.T, want ...string) {
		t.Helper()
		r := e.at(t).do("GET", "/v1/ns", nil).want(t, http.StatusOK)
		wantMembers(t, r.json(t), "namespaces")
		var l struct {
			Namespaces []map[string]any `json:"namespaces"`
		}
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, n := range l.Namespaces {
			wantMembers(t, n, "name", "alarmWebhook", "alarmTimeout", "alarmMaxRetries")
			got = append(got, n["name"].(string))
		}
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("namespaces %q, want %q", got, want)
		}
	}
	wantNamespaces(t)

	const ns = "cfg"
	r := e.doJSON("PUT", "/v1/ns/"+ns, `{"alarmWebhook":"https://example.com/hook?x=1","alarmTimeout":"5s","alarmMaxRetries":3}`).want(t, http.StatusOK)
	want := `{"name":"cfg","alarmWebhook":"https://example.com/hook?x=1","alarmTimeout":"5s","alarmMaxRetries":3}`
	wantJSON(t, "PUT answer", r.body, want)
	wantJSON(t, "GET", e.do("GET", "/v1/ns/"+ns, nil).want(t, http.StatusOK).body, want)

	for _, tc := range []struct{ name, body string }{
		{"webhook ftp", `{"alarmWebhook":"ftp://example.com/x"}`},
		{"webhook relative", `{"alarmWebhook":"/hook"}`},
		{"webhook without host", `{"alarmWebhook":"http:///hook"}`},
		{"webhook with credentials", `{"alarmWebhook":"http://u:p@example.com/"}`},
		{"webhook with fragment", `{"alarmWebhook":"http://example.com/#f"}`},
		{"webhook not a URL", `{"alarmWebhook":"http://exa mple.com/"}`},
		{"webhook too long", `{"alarmWebhook":"http://example.com/` + strings.Repeat("x", 2048) + `"}`},
		{"timeout not a duration", `{"alarmTimeout":"30"}`},
		{"timeout too short", `{"alarmTimeout":"99ms"}`},
		{"timeout too long", `{"alarmTimeout":"5m1s"}`},
		{"timeout negative", `{"alarmTimeout":"-1s"}`},
		{"retries negative", `{"alarmMaxRetries":-1}`},
		{"retries too many", `{"alarmMaxRetries":101}`},
		{"name of another namespace", `{"name":"other"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			e.doJSON("PUT", "/v1/ns/"+ns, tc.body).wantProblem(t, http.StatusBadRequest, "invalid_parameter")
			wantJSON(t, "GET after a rejected PUT", e.do("GET", "/v1/ns/"+ns, nil).want(t, http.StatusOK).body, want)
		})
	}
	t.Run("retries type", func(t *testing.T) {
		e := e.at(t)
		e.doJSON("PUT", "/v1/ns/"+ns, `{"alarmMaxRetries":"3"}`).wantProblem(t, http.StatusBadRequest, "invalid_json")
		wantJSON(t, "GET after a rejected PUT", e.do("GET", "/v1/ns/"+ns, nil).want(t, http.StatusOK).body, want)
	})

	t.Run("bounds accepted", func(t *testing.T) {
		e := e.at(t)
		r := e.doJSON("PUT", "/v1/ns/bounds", `{"name":"bounds","alarmTimeout":"100ms","alarmMaxRetries":0}`).want(t, http.StatusOK)
		wantJSON(t, "lower", r.body, `{"name":"bounds","alarmWebhook":null,"alarmTimeout":"100ms","alarmMaxRetries":0}`)
		r = e.doJSON("PUT", "/v1/ns/bounds", `{"alarmWebhook":"http://127.0.0.1:9/x","alarmTimeout":"5m","alarmMaxRetries":100}`).want(t, http.StatusOK)
		wantJSON(t, "upper", r.body, `{"name":"bounds","alarmWebhook":"http://127.0.0.1:9/x","alarmTimeout":"5m0s","alarmMaxRetries":100}`)
	})
	t.Run("an empty body restores the defaults", func(t *testing.T) {
		e := e.at(t)
		e.doJSON("PUT", "/v1/ns/bounds", `{}`).want(t, http.StatusOK)
		e.wantNamespaceDefaults("bounds")
	})

	// A namespace with objects is listed without configuration.
	e.put("withdata", "o", "k", []byte("v"), "")
	wantNamespaces(t, "bounds", "cfg", "withdata")
}

func TestClusterAndOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t.Run("cluster", func(t *testing.T) {
		r := e.at(t).do("GET", "/v1/cluster", nil).want(t, http.StatusOK)
		m := r.json(t)
		wantMembers(t, m, "nodes", "shards")
		nodes := m["nodes"].([]any)
		if len(nodes) != 1 {
			t.Fatalf("nodes %v", nodes)
		}
		n := nodes[0].(map[string]any)
		wantMembers(t, n, "id", "httpAddr", "raftAddr", "gossipAddr", "state", "shardsHeld", "shardsLed")
		if n["id"] != "n1" || n["raftAddr"] != e.node.RaftAddr() || n["state"] != "alive" ||
			n["shardsHeld"] != json.Number("4") || n["shardsLed"] != json.Number("4") {
			t.Fatalf("node %v", n)
		}
		shards := m["shards"].([]any)
		if len(shards) != 4 {
			t.Fatalf("shards %v", shards)
		}
		for i, s := range shards {
			s := s.(map[string]any)
			wantMembers(t, s, "id", "leader", "voters", "nonVoters", "appliedIndex")
			if s["id"] != json.Number(fmt.Sprint(i)) || s["leader"] != "n1" {
				t.Fatalf("shard %d: %v", i, s)
			}
			if v := s["voters"].([]any); len(v) != 1 || v[0] != "n1" {
				t.Fatalf("shard %d voters %v", i, v)
			}
			if nv := s["nonVoters"].([]any); len(nv) != 0 {
				t.Fatalf("shard %d nonVoters %v", i, nv)
			}
			mustUint(t, string(s["appliedIndex"].(json.Number)))
		}
	})
	t.Run("healthz and readyz", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			r := e.at(t).do("GET", p, nil).want(t, http.StatusOK)
			m := r.json(t)
			if m["node"] != "n1" {
				t.Fatalf("%s: %v", p, m)
			}
			e.at(t).do("HEAD", p, nil).want(t, http.StatusOK)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		e := e.at(t)
		e.do("GET", kvPath("m", "o", "missing"), nil).want(t, http.StatusNotFound)
		r := e.do("GET", "/metrics", nil).want(t, http.StatusOK)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("Content-Type %q", ct)
		}
		body := string(r.body)
		for _, want := range []string{
			"# TYPE cairn_http_requests_total counter",
			`cairn_http_requests_total{code="404",method="GET",route="kv"} 1`,
			`cairn_http_requests_total{code="200",method="GET",route="cluster"}`,
			"cairn_http_request_duration_seconds_bucket",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}
