package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairndb/cairn/api"
)

const (
	adminToken    = "admin-token-0123456789"
	rwToken       = "readwrite-token-0123456789"
	roToken       = "readonly-token-0123456789"
	rwATokenValue = "readwrite-a-token-0123456789"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	tokens, err := api.ParseTokens([]byte(`{"tokens":[
		{"token":"` + adminToken + `","role":"admin"},
		{"token":"` + rwToken + `","role":"readwrite"},
		{"token":"` + roToken + `","role":"readonly"},
		{"token":"` + rwATokenValue + `","role":"readwrite","namespaces":["a"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	base := newEnv(t, tokens)
	admin, rw, ro, rwA := base.as(adminToken), base.as(rwToken), base.as(roToken), base.as(rwATokenValue)
	admin.put("a", "o", "k", []byte("a-value"), "")
	vB := admin.put("b", "o", "k", []byte("b-value"), "")

	t.Run("unauthenticated", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			e       *env
			headers []string
		}{
			{"no header", base, nil},
			{"wrong token", base.as("not-a-token-0123456789"), nil},
			{"a token's prefix", base.as(adminToken[:16]), nil},
			{"empty bearer", base, []string{"Authorization", "Bearer "}},
			{"basic auth", base, []string{"Authorization", "Basic YWRtaW46YWRtaW4="}},
			{"no scheme", base, []string{"Authorization", adminToken}},
			{"token in the scheme's place", base, []string{"Authorization", adminToken + " " + adminToken}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := tc.e.at(t)
				for _, req := range []struct{ method, path, body string }{
					{"GET", kvPath("a", "o", "k"), ""},
					{"PUT", kvPath("a", "o", "k"), "changed"},
					{"POST", objPath("a", "o", "/tx"), `{"ops":[{"put":{"k":1}}]}`},
					{"GET", "/v1/ns", ""},
					{"GET", "/v1/cluster", ""},
					{"GET", "/metrics", ""},
					{"PUT", "/v1/ns/a", "{}"},
				} {
					r := e.do(req.method, req.path, []byte(req.body), tc.headers...)
					r.wantProblem(t, http.StatusUnauthorized, "unauthorized")
					if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("401 without WWW-Authenticate: Bearer: %v", r.header)
					}
				}
				admin.at(t).wantValue("a", "o", "k", "a-value", "")
			})
		}
	})

	t.Run("scheme is case-insensitive", func(t *testing.T) {
		for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
			base.at(t).do("GET", kvPath("a", "o", "k"), nil, "Authorization", scheme+" "+adminToken).want(t, http.StatusOK)
		}
	})

	t.Run("open endpoints", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			base.at(t).do("GET", p, nil).want(t, http.StatusOK)
		}
		for _, e := range []*env{admin, rw, ro, rwA} {
			e.at(t).do("GET", "/metrics", nil).want(t, http.StatusOK)
		}
	})

	t.Run("readwrite and admin write", func(t *testing.T) {
		for _, e := range []*env{admin, rw} {
			e := e.at(t)
			e.put("c", "o", "k", []byte("x"), "")
			e.tx("c", "o", `{"ops":[{"put":{"t":1}}]}`)
			e.do("PUT", "/v1/ns/c", []byte(`{"alarmMaxRetries":2}`)).want(t, http.StatusOK)
			e.do("DELETE", objPath("c", "o", ""), nil).want(t, http.StatusOK)
			e.do("POST", "/v1/ns/c/unique-id", nil).want(t, http.StatusOK)
		}
	})

	t.Run("readonly", func(t *testing.T) {
		e := ro.at(t)
		e.wantValue("b", "o", "k", "b-value", vB)
		e.do("GET", objPath("b", "o", "/kv"), nil).want(t, http.StatusOK)
		e.do("GET", "/v1/ns/b", nil).want(t, http.StatusOK)
		e.do("GET", "/v1/ns/b/objects", nil).want(t, http.StatusOK)
		e.do("GET", "/v1/cluster", nil).want(t, http.StatusOK)
		e.tx("b", "o", `{"if":[{"key":"k","exists":true}],"ops":[{"get":["k"]},{"list":{}}]}`)
		for _, req := range []struct{ method, path, body string }{
			{"PUT", kvPath("b", "o", "k"), "changed"},
			{"PUT", kvPath("b", "o", "new"), "new"},
			{"DELETE", kvPath("b", "o", "k"), ""},
			{"POST", objPath("b", "o", "/tx"), `{"ops":[{"get":["k"]},{"put":{"k":1}}]}`},
			{"POST", objPath("b", "o", "/tx"), `{"ops":[{"delete":["k"]}]}`},
			{"POST", objPath("b", "o", "/tx"), `{"ops":[{"incr":{"key":"n"}}]}`},
			{"POST", objPath("b", "o", "/tx"), `{"ops":[{"deleteAll":{}}]}`},
			{"DELETE", objPath("b", "o", ""), ""},
			{"PUT", "/v1/ns/b", `{"alarmMaxRetries":1}`},
			{"PUT", objPath("b", "o", "/alarm"), `{"scheduledTime":1}`},
		} {
			e.do(req.method, req.path, []byte(req.body)).wantProblem(t, http.StatusForbidden, "forbidden")
		}
		admin := admin.at(t)
		admin.wantKeys("b", "o", "k")
		admin.wantValue("b", "o", "k", "b-value", vB)
		admin.wantNamespaceDefaults("b")
	})

	t.Run("namespace-limited", func(t *testing.T) {
		e := rwA.at(t)
		e.wantValue("a", "o", "k", "a-value", "")
		e.put("a", "o", "k2", []byte("v"), "")
		e.tx("a", "o", `{"ops":[{"put":{"k3":1}}]}`)
		for _, req := range []struct{ method, path, body string }{
			{"GET", kvPath("b", "o", "k"), ""},
			{"PUT", kvPath("b", "o", "k"), "changed"},
			{"POST", objPath("b", "o", "/tx"), `{"ops":[{"get":["k"]}]}`},
			{"GET", objPath("b", "o", "/kv"), ""},
			{"GET", "/v1/ns/b/objects", ""},
			{"GET", "/v1/ns/b", ""},
			{"PUT", "/v1/ns/b", "{}"},
			{"DELETE", objPath("b", "o", ""), ""},
			{"POST", "/v1/ns/b/unique-id", ""},
		} {
			e.do(req.method, req.path, []byte(req.body)).wantProblem(t, http.StatusForbidden, "forbidden")
		}
		admin.at(t).wantValue("b", "o", "k", "b-value", vB)

		// The per-shard reads that listings are made of keep to the
		// token's namespaces too.
		for shard := range 4 {
			p := "/v1/internal/shards/" + strconv.Itoa(shard)
			e.do("GET", p+"/objects?ns=b&limit=10", nil).wantProblem(t, http.StatusForbidden, "forbidden")
			e.do("GET", p+"/objects?ns=a&limit=10", nil).want(t, http.StatusOK)
			var l struct {
				Namespaces []string `json:"namespaces"`
			}
			if err := json.Unmarshal(e.do("GET", p+"/namespaces", nil).want(t, http.StatusOK).body, &l); err != nil {
				t.Fatal(err)
			}
			for _, ns := range l.Namespaces {
				if ns != "a" {
					t.Fatalf("shard %d shows the token limited to a namespace %q", shard, ns)
				}
			}
			base.at(t).do("GET", p+"/namespaces", nil).wantProblem(t, http.StatusUnauthorized, "unauthorized")
		}

		listNS := func(e *env) []string {
			r := e.do("GET", "/v1/ns", nil).want(t, http.StatusOK)
			var l struct {
				Namespaces []struct{ Name string } `json:"namespaces"`
			}
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, n := range l.Namespaces {
				out = append(out, n.Name)
			}
			return out
		}
		if got := listNS(e); strings.Join(got, ",") != "a" {
			t.Fatalf("the token limited to a lists namespaces %q", got)
		}
		if got := listNS(admin.at(t)); strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("admin lists namespaces %q", got)
		}
	})
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file string
		ok         bool
	}{
		{"every role", `{"tokens":[{"token":"0123456789abcdef","role":"admin"},{"token":"0123456789abcdeg","role":"readwrite","namespaces":["a","b-1"]},{"token":"0123456789abcdeh","role":"readonly"}]}`, true},
		{"short token", `{"tokens":[{"token":"0123456789abcde","role":"admin"}]}`, false},
		{"empty token", `{"tokens":[{"token":"","role":"admin"}]}`, false},
		{"bad role", `{"tokens":[{"token":"0123456789abcdef","role":"root"}]}`, false},
		{"missing role", `{"tokens":[{"token":"0123456789abcdef"}]}`, false},
		{"role in upper case", `{"tokens":[{"token":"0123456789abcdef","role":"ADMIN"}]}`, false},
		{"duplicate", `{"tokens":[{"token":"0123456789abcdef","role":"admin"},{"token":"0123456789abcdef","role":"readonly"}]}`, false},
		{"unknown field", `{"tokens":[{"token":"0123456789abcdef","role":"admin","expires":"never"}]}`, false},
		{"unknown top-level field", `{"tokens":[{"token":"0123456789abcdef","role":"admin"}],"version":1}`, false},
		{"bad namespace", `{"tokens":[{"token":"0123456789abcdef","role":"readwrite","namespaces":["Bad"]}]}`, false},
		{"empty list", `{"tokens":[]}`, false},
		{"no list", `{}`, false},
		{"not JSON", `tokens: []`, false},
		{"empty file", ``, false},
		{"trailing data", `{"tokens":[{"token":"0123456789abcdef","role":"admin"}]} {"tokens":[]}`, false},
		{"trailing ]", `{"tokens":[{"token":"0123456789abcdef","role":"admin"}]}]`, false},
		{"trailing whitespace", "{\"tokens\":[{\"token\":\"0123456789abcdef\",\"role\":\"admin\"}]}\n\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens, err := api.ParseTokens([]byte(tc.file))
			if tc.ok != (err == nil) || (err == nil) != (tokens != nil) {
				t.Fatalf("ParseTokens: %v, %v; want ok: %v", tokens, err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "api: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}

	t.Run("LoadTokens", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tokens.json")
		if err := os.WriteFile(path, []byte(`{"tokens":[{"token":"0123456789abcdef","role":"admin"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := api.LoadTokens(path); err != nil {
			t.Fatal(err)
		}
		if _, err := api.LoadTokens(filepath.Join(t.TempDir(), "missing.json")); err == nil {
			t.Fatal("LoadTokens of a missing file succeeded")
		}
	})
}
