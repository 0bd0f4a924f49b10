package api_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestErrors sends one bad request per row and checks the problem+json
// answer. Every row runs against the same object, which holds one key
// before and must hold exactly it, unchanged, after: no rejected request
// writes anything, anywhere in the namespace.
func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "err", "ew"
	keepVersion := e.put(ns, obj, "keep", []byte("12"), "")
	e.put(ns, obj, "json", []byte(`"not a number"`), "application/json")

	const maxEntry = 2 << 20
	kv := func(key string) string { return kvPath(ns, obj, key) }
	list := objPath(ns, obj, "/kv")
	txp := objPath(ns, obj, "/tx")
	nKeys := func(n int) string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%d", i)
		}
		b, _ := json.Marshal(keys)
		return string(b)
	}
	nPuts := func(n int) string {
		m := map[string]int{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = i
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	nOps := func(n int, op string) string {
		return `{"ops":[` + strings.TrimSuffix(strings.Repeat(op+",", n), ",") + `]}`
	}
	nConds := func(n int) string {
		c := make([]string, n)
		for i := range c {
			c[i] = fmt.Sprintf(`{"key":"c%d","exists":false}`, i)
		}
		return `{"if":[` + strings.Join(c, ",") + `],"ops":[{"put":{"x":1}}]}`
	}
	longObj := url.PathEscape(strings.Repeat("o", 1025))
	hdr := func(kv ...string) []string { return kv }

	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		code    string
	}{
		// invalid_name
		{"upper-case namespace", "GET", "/v1/ns/Bad/objects", "", nil, 400, "invalid_name"},
		{"namespace starting with -", "PUT", "/v1/ns/-x/objects/o/kv/k", "v", nil, 400, "invalid_name"},
		{"namespace of 64 bytes", "GET", "/v1/ns/" + strings.Repeat("a", 64), "", nil, 400, "invalid_name"},
		{"namespace with a dot", "PUT", "/v1/ns/a.b", "{}", nil, 400, "invalid_name"},
		{"empty namespace", "GET", "/v1/ns//objects", "", nil, 400, "invalid_name"},
		{"namespace %FF", "GET", "/v1/ns/%FF", "", nil, 400, "invalid_name"},
		{"empty object", "PUT", "/v1/ns/" + ns + "/objects//kv/k", "v", nil, 400, "invalid_name"},
		{"empty object tx", "POST", "/v1/ns/" + ns + "/objects//tx", `{"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_name"},
		{"object of 1025 bytes", "PUT", "/v1/ns/" + ns + "/objects/" + longObj + "/kv/k", "v", nil, 400, "invalid_name"},
		{"object not UTF-8", "PUT", "/v1/ns/" + ns + "/objects/%FF/kv/k", "v", nil, 400, "invalid_name"},
		{"object not UTF-8 deleteAll", "DELETE", "/v1/ns/" + ns + "/objects/a%C3", "", nil, 400, "invalid_name"},

		// invalid_key
		{"empty key", "PUT", objPath(ns, obj, "/kv/"), "v", nil, 400, "invalid_key"},
		{"2049-byte key", "PUT", kv(strings.Repeat("k", 2049)), "v", nil, 400, "invalid_key"},
		{"2049-byte key GET", "GET", kv(strings.Repeat("k", 2049)), "", nil, 400, "invalid_key"},
		{"key not UTF-8", "PUT", objPath(ns, obj, "/kv/%FF"), "v", nil, 400, "invalid_key"},
		{"key with a broken sequence", "PUT", objPath(ns, obj, "/kv/a%E6%97"), "v", nil, 400, "invalid_key"},
		{"tx empty key", "POST", txp, `{"ops":[{"put":{"":1}}]}`, nil, 400, "invalid_key"},
		{"tx 2049-byte key", "POST", txp, `{"ops":[{"delete":["` + strings.Repeat("k", 2049) + `"]}]}`, nil, 400, "invalid_key"},
		{"tx condition empty key", "POST", txp, `{"if":[{"key":"","exists":true}],"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_key"},
		{"list prefix of 2049 bytes", "GET", list + "?prefix=" + strings.Repeat("p", 2049), "", nil, 400, "invalid_key"},

		// invalid_json
		{"tx not JSON", "POST", txp, `{`, nil, 400, "invalid_json"},
		{"tx empty body", "POST", txp, ``, nil, 400, "invalid_json"},
		{"tx unknown field", "POST", txp, `{"ops":[{"put":{"a":1}}],"x":1}`, nil, 400, "invalid_json"},
		{"tx trailing data", "POST", txp, `{"ops":[{"put":{"a":1}}]} {}`, nil, 400, "invalid_json"},
		{"tx trailing garbage", "POST", txp, `{"ops":[{"put":{"a":1}}]}x`, nil, 400, "invalid_json"},
		{"tx trailing ]", "POST", txp, `{"ops":[{"put":{"a":1}}]}]`, nil, 400, "invalid_json"},
		{"tx trailing }", "POST", txp, "{\"ops\":[{\"put\":{\"a\":1}}]}\n}", nil, 400, "invalid_json"},
		{"tx ops not a list", "POST", txp, `{"ops":{"put":{"a":1}}}`, nil, 400, "invalid_json"},
		{"tx op not an object", "POST", txp, `{"ops":[1]}`, nil, 400, "invalid_json"},
		{"tx put not base64", "POST", txp, `{"ops":[{"put":{"a":{"valueBase64":"!!!"}}}]}`, nil, 400, "invalid_json"},
		{"tx put base64 not a string", "POST", txp, `{"ops":[{"put":{"a":{"valueBase64":5}}}]}`, nil, 400, "invalid_json"},
		{"tx put not an object", "POST", txp, `{"ops":[{"put":["a",1]}]}`, nil, 400, "invalid_json"},
		{"tx get key not a string", "POST", txp, `{"ops":[{"get":[1]}]}`, nil, 400, "invalid_json"},
		{"tx condition unknown field", "POST", txp, `{"if":[{"key":"a","exists":true,"x":1}],"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_json"},
		{"tx incr unknown field", "POST", txp, `{"ops":[{"put":{"a":1}},{"incr":{"key":"n","step":1}}]}`, nil, 400, "invalid_json"},
		{"tx list unknown field", "POST", txp, `{"ops":[{"put":{"a":1}},{"list":{"after":"a"}}]}`, nil, 400, "invalid_json"},
		{"PUT application/json not JSON", "PUT", kv("k"), `{nope`, hdr("Content-Type", "application/json"), 400, "invalid_json"},
		{"PUT application/json empty", "PUT", kv("k"), ``, hdr("Content-Type", "application/json"), 400, "invalid_json"},
		{"PUT application/json two values", "PUT", kv("k"), `1 2`, hdr("Content-Type", "application/json; charset=utf-8"), 400, "invalid_json"},
		{"namespace body not JSON", "PUT", "/v1/ns/" + ns, `{`, nil, 400, "invalid_json"},
		{"namespace body unknown field", "PUT", "/v1/ns/" + ns, `{"alarmHook":"http://x"}`, nil, 400, "invalid_json"},
		{"namespace body trailing ]", "PUT", "/v1/ns/" + ns, `{"alarmMaxRetries":1}]`, nil, 400, "invalid_json"},

		// invalid_parameter
		{"tx unknown op", "POST", txp, `{"ops":[{"put":{"a":1}},{"frob":{}}]}`, nil, 400, "invalid_parameter"},
		{"tx op with two names", "POST", txp, `{"ops":[{"get":["a"],"put":{"a":1}}]}`, nil, 400, "invalid_parameter"},
		{"tx empty op", "POST", txp, `{"ops":[{"put":{"a":1}},{}]}`, nil, 400, "invalid_parameter"},
		{"tx with nothing", "POST", txp, `{}`, nil, 400, "invalid_parameter"},
		{"tx get without keys", "POST", txp, `{"ops":[{"put":{"a":1}},{"get":[]}]}`, nil, 400, "invalid_parameter"},
		{"tx put without keys", "POST", txp, `{"ops":[{"put":{}}]}`, nil, 400, "invalid_parameter"},
		{"tx put key twice", "POST", txp, `{"ops":[{"put":{"a":1,"a":2}}]}`, nil, 400, "invalid_parameter"},
		{"tx condition without test", "POST", txp, `{"if":[{"key":"a"}],"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_parameter"},
		{"tx condition version and exists false", "POST", txp, `{"if":[{"key":"keep","version":"` + keepVersion + `","exists":false}],"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_parameter"},
		{"tx condition bad version", "POST", txp, `{"if":[{"key":"a","version":"v1"}],"ops":[{"put":{"a":1}}]}`, nil, 400, "invalid_parameter"},
		{"tx list start and startAfter", "POST", txp, `{"ops":[{"put":{"a":1}},{"list":{"start":"a","startAfter":"b"}}]}`, nil, 400, "invalid_parameter"},
		{"tx list limit 0", "POST", txp, `{"ops":[{"put":{"a":1}},{"list":{"limit":0}}]}`, nil, 400, "invalid_parameter"},
		{"tx list limit 10001", "POST", txp, `{"ops":[{"list":{"limit":10001}}]}`, nil, 400, "invalid_parameter"},
		{"tx list bad cursor", "POST", txp, `{"ops":[{"put":{"a":1}},{"list":{"cursor":"%%%"}}]}`, nil, 400, "invalid_parameter"},
		{"tx incr by not finite", "POST", txp, `{"ops":[{"incr":{"key":"n","by":1e999}}]}`, nil, 400, "invalid_parameter"},
		{"list start and startAfter", "GET", list + "?start=a&startAfter=b", "", nil, 400, "invalid_parameter"},
		{"list limit 0", "GET", list + "?limit=0", "", nil, 400, "invalid_parameter"},
		{"list limit 10001", "GET", list + "?limit=10001", "", nil, 400, "invalid_parameter"},
		{"list limit -1", "GET", list + "?limit=-1", "", nil, 400, "invalid_parameter"},
		{"list limit x", "GET", list + "?limit=x", "", nil, 400, "invalid_parameter"},
		{"list bad cursor", "GET", list + "?cursor=!!!", "", nil, 400, "invalid_parameter"},
		{"list cursor not issued", "GET", list + "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("xyz")), "", nil, 400, "invalid_parameter"},
		{"list cursor of the other direction", "GET", list + "?reverse=true&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("\x01fa")), "", nil, 400, "invalid_parameter"},
		{"list reverse=maybe", "GET", list + "?reverse=maybe", "", nil, 400, "invalid_parameter"},
		{"list keysOnly=yes", "GET", list + "?keysOnly=yes", "", nil, 400, "invalid_parameter"},
		{"list consistency=bogus", "GET", list + "?consistency=bogus", "", nil, 400, "invalid_parameter"},
		{"GET consistency=bogus", "GET", kv("keep") + "?consistency=bogus", "", nil, 400, "invalid_parameter"},
		{"read tx consistency=bogus", "POST", txp + "?consistency=bogus", `{"ops":[{"get":["keep"]}]}`, nil, 400, "invalid_parameter"},
		{"deleteAll alarm=maybe", "DELETE", objPath(ns, obj, "?alarm=maybe"), "", nil, 400, "invalid_parameter"},
		{"objects limit 0", "GET", "/v1/ns/" + ns + "/objects?limit=0", "", nil, 400, "invalid_parameter"},
		{"objects limit 10001", "GET", "/v1/ns/" + ns + "/objects?limit=10001", "", nil, 400, "invalid_parameter"},
		{"objects bad cursor", "GET", "/v1/ns/" + ns + "/objects?cursor=!!!", "", nil, 400, "invalid_parameter"},
		{"namespace bad alarmTimeout", "PUT", "/v1/ns/" + ns, `{"alarmTimeout":"soon"}`, nil, 400, "invalid_parameter"},

		// invalid_header
		{"If-Match garbage", "PUT", kv("keep"), "v", hdr("If-Match", "garbage"), 400, "invalid_header"},
		{"If-Match negative", "PUT", kv("keep"), "v", hdr("If-Match", `"-1"`), 400, "invalid_header"},
		{"If-None-Match garbage", "PUT", kv("keep"), "v", hdr("If-None-Match", `"x"`), 400, "invalid_header"},
		{"DELETE If-Match garbage", "DELETE", kv("keep"), "", hdr("If-Match", "garbage"), 400, "invalid_header"},
		{"Content-Type garbage", "PUT", kv("k"), "v", hdr("Content-Type", "/"), 400, "invalid_header"},
		{"Content-Type too long", "PUT", kv("k"), "v", hdr("Content-Type", "text/"+strings.Repeat("x", 300)), 400, "invalid_header"},

		// too_large
		{"PUT key + value = 2 MiB + 1", "PUT", kv("big"), strings.Repeat("v", maxEntry-3+1), nil, 413, "too_large"},
		{"PUT 2048-byte key + value = 2 MiB + 1", "PUT", kv(strings.Repeat("z", 2048)), strings.Repeat("v", maxEntry-2048+1), nil, 413, "too_large"},
		{"tx put key + value = 2 MiB + 1", "POST", txp, `{"ops":[{"put":{"big":{"valueBase64":"` + base64.StdEncoding.EncodeToString(make([]byte, maxEntry-3+1)) + `"}}}]}`, nil, 413, "too_large"},
		{"tx put of 129 keys", "POST", txp, `{"ops":[{"put":` + nPuts(129) + `}]}`, nil, 413, "too_large"},
		{"tx get of 129 keys", "POST", txp, `{"ops":[{"put":{"a":1}},{"get":` + nKeys(129) + `}]}`, nil, 413, "too_large"},
		{"tx delete of 129 keys", "POST", txp, `{"ops":[{"delete":` + nKeys(129) + `}]}`, nil, 413, "too_large"},
		{"tx of 129 ops", "POST", txp, nOps(129, `{"put":{"a":1}}`), nil, 413, "too_large"},
		{"tx of 129 conditions", "POST", txp, nConds(129), nil, 413, "too_large"},

		// not_found
		{"missing key", "GET", kv("missing"), "", nil, 404, "not_found"},
		{"missing object's key", "GET", kvPath(ns, "nobody", "k"), "", nil, 404, "not_found"},
		{"root", "GET", "/", "", nil, 404, "not_found"},
		{"other version", "GET", "/v2/ns", "", nil, 404, "not_found"},
		{"unknown namespace endpoint", "GET", "/v1/ns/" + ns + "/bogus", "", nil, 404, "not_found"},
		{"unknown object endpoint", "POST", objPath(ns, obj, "/nope"), "", nil, 404, "not_found"},
		{"unknown PUT", "PUT", "/v1/nope", "x", nil, 404, "not_found"},

		// method_not_allowed
		{"PATCH kv", "PATCH", kv("keep"), "v", nil, 405, "method_not_allowed"},
		{"POST kv", "POST", kv("keep"), "v", nil, 405, "method_not_allowed"},
		{"PUT list", "PUT", list, "v", nil, 405, "method_not_allowed"},
		{"DELETE list", "DELETE", list, "", nil, 405, "method_not_allowed"},
		{"GET tx", "GET", txp, "", nil, 405, "method_not_allowed"},
		{"PUT tx", "PUT", txp, `{"ops":[{"put":{"a":1}}]}`, nil, 405, "method_not_allowed"},
		{"PUT object", "PUT", objPath(ns, obj, ""), "", nil, 405, "method_not_allowed"},
		{"POST objects", "POST", "/v1/ns/" + ns + "/objects", "{}", nil, 405, "method_not_allowed"},
		{"GET unique-id", "GET", "/v1/ns/" + ns + "/unique-id", "", nil, 405, "method_not_allowed"},
		{"DELETE namespace", "DELETE", "/v1/ns/" + ns, "", nil, 405, "method_not_allowed"},
		{"POST namespaces", "POST", "/v1/ns", "{}", nil, 405, "method_not_allowed"},
		{"PUT cluster", "PUT", "/v1/cluster", "{}", nil, 405, "method_not_allowed"},
		{"POST healthz", "POST", "/healthz", "", nil, 405, "method_not_allowed"},
		{"DELETE metrics", "DELETE", "/metrics", "", nil, 405, "method_not_allowed"},

		// precondition_failed and not_a_number
		{"PUT If-Match stale", "PUT", kv("keep"), "v", hdr("If-Match", `"1"`), 412, "precondition_failed"},
		{"PUT If-None-Match *", "PUT", kv("keep"), "v", hdr("If-None-Match", "*"), 412, "precondition_failed"},
		{"PUT If-None-Match current", "PUT", kv("keep"), "v", hdr("If-None-Match", `"`+keepVersion+`"`), 412, "precondition_failed"},
		{"DELETE If-Match stale", "DELETE", kv("keep"), "", hdr("If-Match", `"1"`), 412, "precondition_failed"},
		{"tx condition", "POST", txp, `{"if":[{"key":"keep","exists":false}],"ops":[{"put":{"a":1}}]}`, nil, 412, "precondition_failed"},
		{"tx incr on bytes", "POST", txp, `{"ops":[{"put":{"a":1}},{"incr":{"key":"keep"}}]}`, nil, 409, "not_a_number"},
		{"tx incr on a JSON string", "POST", txp, `{"ops":[{"delete":["keep"]},{"incr":{"key":"json","by":2}}]}`, nil, 409, "not_a_number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			var body []byte
			if tc.body != "" || tc.method == "PUT" || tc.method == "POST" {
				body = []byte(tc.body)
			}
			r := e.do(tc.method, tc.path, body, tc.headers...)
			p := r.wantProblem(t, tc.status, tc.code)
			if tc.status == http.StatusPreconditionFailed && tc.method == "POST" && (p.Condition == nil || *p.Condition != 0) {
				t.Errorf("tx 412 without condition 0: %s", r.body)
			}
			if tc.method != "GET" {
				e.wantKeys(ns, obj, "json", "keep")
				e.wantValue(ns, obj, "keep", "12", keepVersion)
				e.wantValue(ns, obj, "json", `"not a number"`, "")
				e.wantObjects(ns, obj)
				e.wantNamespaceDefaults(ns)
			}
		})
	}

	t.Run("HEAD of a missing key", func(t *testing.T) {
		r := e.at(t).do("HEAD", kv("missing"), nil).want(t, http.StatusNotFound)
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("Content-Type %q", ct)
		}
	})

	t.Run("bad percent-encoding", func(t *testing.T) {
		// net/http refuses a request line whose path is not valid
		// percent-encoding before any handler runs: the answer is a plain
		// 400 and nothing is written.
		for _, p := range []string{
			objPath(ns, obj, "/kv/%ZZ"), objPath(ns, obj, "/kv/abc%"), objPath(ns, obj, "/kv/%4"),
			"/v1/ns/" + ns + "/objects/%G0/kv/k", "/v1/ns/%/objects/o/kv/k",
		} {
			if status := rawRequest(t, e.url, "PUT "+p+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv"); status != http.StatusBadRequest {
				t.Errorf("PUT %s: status %d, want 400", p, status)
			}
		}
		e := e.at(t)
		e.wantKeys(ns, obj, "json", "keep")
		e.wantObjects(ns, obj)
	})
}

// rawRequest writes req on a new connection to the server at base and
// returns the answer's status code.
func rawRequest(t *testing.T, base, req string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// wantObjects fails the test unless the namespace lists exactly objects.
func (e *env) wantObjects(ns string, objects ...string) {
	e.t.Helper()
	r := e.do("GET", "/v1/ns/"+ns+"/objects", nil).want(e.t, http.StatusOK)
	got := objectNames(e.t, r.body)
	if objects == nil {
		objects = []string{}
	}
	if !slices.Equal(got, objects) {
		e.t.Fatalf("namespace %s lists objects %q, want %q", ns, got, objects)
	}
}

func objectNames(t *testing.T, body []byte) []string {
	t.Helper()
	var l struct {
		Objects []struct {
			Name string `json:"name"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, o := range l.Objects {
		out = append(out, o.Name)
	}
	return out
}

// wantNamespaceDefaults fails the test unless ns has the default
// configuration.
func (e *env) wantNamespaceDefaults(ns string) {
	e.t.Helper()
	r := e.do("GET", "/v1/ns/"+ns, nil).want(e.t, http.StatusOK)
	want := `{"name":"` + ns + `","alarmWebhook":null,"alarmTimeout":"30s","alarmMaxRetries":6}`
	if got := string(bytes.TrimSpace(r.body)); got != want {
		e.t.Fatalf("namespace %s: %s, want %s", ns, got, want)
	}
}
