package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// txResult is the answer of a tx.
type txResult struct {
	Results []json.RawMessage `json:"results"`
	Version string            `json:"version"`
}

// tx posts body to obj's tx endpoint and wants 200.
func (e *env) tx(ns, obj string, body string) txResult {
	e.t.Helper()
	r := e.doJSON("POST", objPath(ns, obj, "/tx"), body).want(e.t, http.StatusOK)
	wantMembers(e.t, r.json(e.t), "results", "version")
	var res txResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		e.t.Fatal(err)
	}
	mustUint(e.t, res.Version)
	return res
}

// wantJSON fails the test unless got and want are equal JSON values.
func wantJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want %s: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("%s: got %s, want %s", what, gb, wb)
	}
}

func TestTxEveryOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "tx", "every"

	setup := e.tx(ns, obj, `{"ops":[{"put":{"counter":41,"c":"gone soon"}}]}`)
	wantJSON(t, "setup results", mustMarshal(t, setup.Results), `[{"written":2}]`)
	v := setup.Version

	body := fmt.Sprintf(`{"if":  [{"key":"counter","version":%q}, {"key":"lock","exists":false}],
	 "ops": [{"get": ["counter","b"]},
	         {"put": {"counter": 42, "b": {"x": 1}}},
	         {"put": {"blob": {"valueBase64": "AAEC"}}},
	         {"delete": ["c", "never"]},
	         {"incr": {"key": "hits", "by": 1}},
	         {"incr": {"key": "hits"}},
	         {"incr": {"key": "counter", "by": -2.5}},
	         {"list": {"prefix": "", "limit": 10}},
	         {"get": ["counter", "blob", "b"]}]}`, v)
	res := e.tx(ns, obj, body)
	tv := res.Version
	if mustUint(t, tv) <= mustUint(t, v) {
		t.Fatalf("tx version %s, not after %s", tv, v)
	}
	want := []string{
		fmt.Sprintf(`{"entries":{"counter":{"value":41,"version":%q}}}`, v),
		`{"written":2}`,
		`{"written":1}`,
		`{"deleted":1}`,
		`{"value":1}`,
		`{"value":2}`,
		`{"value":39.5}`,
		fmt.Sprintf(`{"entries":[
			{"key":"b","value":{"x":1},"version":%[1]q},
			{"key":"blob","valueBase64":"AAEC","version":%[1]q},
			{"key":"counter","value":39.5,"version":%[1]q},
			{"key":"hits","value":2,"version":%[1]q}],"cursor":null}`, tv),
		fmt.Sprintf(`{"entries":{"counter":{"value":39.5,"version":%[1]q},"blob":{"valueBase64":"AAEC","version":%[1]q},"b":{"value":{"x":1},"version":%[1]q}}}`, tv),
	}
	if len(res.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(res.Results), len(want))
	}
	for i := range want {
		wantJSON(t, "result "+strconv.Itoa(i), res.Results[i], want[i])
	}

	// The single-key endpoints see the tx's writes, all with its version.
	e.wantValue(ns, obj, "counter", "39.5", tv)
	e.wantValue(ns, obj, "b", `{"x":1}`, tv)
	e.wantValue(ns, obj, "blob", "\x00\x01\x02", tv)
	e.wantValue(ns, obj, "hits", "2", tv)
	if ct := e.do("GET", kvPath(ns, obj, "blob"), nil).header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("blob's Content-Type %q", ct)
	}
	if ct := e.do("GET", kvPath(ns, obj, "b"), nil).header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("b's Content-Type %q", ct)
	}
	e.wantKeys(ns, obj, "b", "blob", "counter", "hits")

	t.Run("read-only tx is a read at the applied index", func(t *testing.T) {
		e := e.at(t)
		for range 2 {
			r := e.tx(ns, obj, `{"if":[{"key":"hits","exists":true}],"ops":[{"get":["hits"]},{"list":{"keysOnly":true,"limit":1}}]}`)
			if r.Version != tv {
				t.Fatalf("read-only tx version %s, want the applied index %s", r.Version, tv)
			}
			wantJSON(t, "get", r.Results[0], fmt.Sprintf(`{"entries":{"hits":{"value":2,"version":%q}}}`, tv))
			wantJSON(t, "list", r.Results[1], fmt.Sprintf(`{"entries":[{"key":"b","version":%q}],"cursor":%q}`, tv, *e.do("GET", objPath(ns, obj, "/kv?limit=1"), nil).page(t).Cursor))
		}
		r := e.tx(ns, obj, `{"if":[{"key":"hits","exists":true}],"ops":[]}`)
		if r.Version != tv || len(r.Results) != 0 {
			t.Fatalf("conditions-only tx: %+v", r)
		}
		r = e.tx(ns, obj, `{"ops":[{"get":["nope"]}]}`)
		wantJSON(t, "get missing", r.Results[0], `{"entries":{}}`)
		e.wantValue(ns, obj, "hits", "2", tv)
	})

	t.Run("later ops see earlier ones", func(t *testing.T) {
		e := e.at(t)
		r := e.tx(ns, "seq", `{"ops":[{"put":{"a":1}},{"get":["a"]},{"delete":["a"]},{"get":["a"]},{"incr":{"key":"a","by":5}},{"incr":{"key":"a","by":5}}]}`)
		wantJSON(t, "results", mustMarshal(t, r.Results), fmt.Sprintf(
			`[{"written":1},{"entries":{"a":{"value":1,"version":%[1]q}}},{"deleted":1},{"entries":{}},{"value":5},{"value":10}]`, r.Version))
		e.wantValue(ns, "seq", "a", "10", r.Version)
	})

	t.Run("deleteAll", func(t *testing.T) {
		e := e.at(t)
		e.tx(ns, "wipe", `{"ops":[{"put":{"x":1,"y":2,"z":3}}]}`)
		r := e.tx(ns, "wipe", `{"ops":[{"deleteAll":{}},{"list":{}},{"put":{"after":true}}]}`)
		wantJSON(t, "results", mustMarshal(t, r.Results), `[{},{"entries":[],"cursor":null},{"written":1}]`)
		e.wantKeys(ns, "wipe", "after")
	})

	t.Run("valueBase64 look-alikes are JSON", func(t *testing.T) {
		e := e.at(t)
		e.tx(ns, "b64", `{"ops":[{"put":{"two":{"valueBase64":"AAEC","x":1},"other":{"valueBase64x":"AAEC"},"empty":{"valueBase64":""}}}]}`)
		e.wantValue(ns, "b64", "two", `{"valueBase64":"AAEC","x":1}`, "")
		e.wantValue(ns, "b64", "other", `{"valueBase64x":"AAEC"}`, "")
		e.wantValue(ns, "b64", "empty", "", "")
	})

	t.Run("128 keys per op", func(t *testing.T) {
		e := e.at(t)
		puts := map[string]int{}
		var keys []string
		for i := range 128 {
			k := fmt.Sprintf("k%03d", i)
			puts[k] = i
			keys = append(keys, k)
		}
		pb, _ := json.Marshal(puts)
		kb, _ := json.Marshal(keys)
		r := e.tx(ns, "many", fmt.Sprintf(`{"ops":[{"put":%s},{"get":%s}]}`, pb, kb))
		wantJSON(t, "put", r.Results[0], `{"written":128}`)
		var got struct {
			Entries map[string]json.RawMessage `json:"entries"`
		}
		if err := json.Unmarshal(r.Results[1], &got); err != nil || len(got.Entries) != 128 {
			t.Fatalf("get of 128 keys: %d entries, %v", len(got.Entries), err)
		}
		r = e.tx(ns, "many", fmt.Sprintf(`{"ops":[{"delete":%s}]}`, kb))
		wantJSON(t, "delete", r.Results[0], `{"deleted":128}`)
		e.wantKeys(ns, "many")
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTxConditions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "tx"
	for i, tc := range []struct {
		name     string
		conds    func(v string) string // the "if" list, given a's version
		failed   int                   // index of the failing condition; -1 if none
		readOnly bool
	}{
		{"version matches", func(v string) string { return `[{"key":"a","version":"` + v + `"}]` }, -1, false},
		{"version as a number", func(v string) string { return `[{"key":"a","version":` + v + `}]` }, -1, false},
		{"version and exists true", func(v string) string { return `[{"key":"a","version":"` + v + `","exists":true}]` }, -1, false},
		{"exists true", constant(`[{"key":"a","exists":true}]`), -1, false},
		{"exists false", constant(`[{"key":"nope","exists":false}]`), -1, false},
		{"version mismatch", constant(`[{"key":"a","version":"1"}]`), 0, false},
		{"version of a missing key", constant(`[{"key":"nope","version":"1"}]`), 0, false},
		{"exists true on missing", constant(`[{"key":"nope","exists":true}]`), 0, false},
		{"exists false on present", constant(`[{"key":"a","exists":false}]`), 0, false},
		{"second fails", func(v string) string {
			return `[{"key":"a","version":"` + v + `"},{"key":"a","exists":false},{"key":"nope","exists":true}]`
		}, 1, false},
		{"third fails", constant(`[{"key":"a","exists":true},{"key":"nope","exists":false},{"key":"nope","exists":true}]`), 2, false},
		{"read-only fails", constant(`[{"key":"nope","exists":true}]`), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.at(t)
			obj := "cond" + strconv.Itoa(i)
			v := e.put(ns, obj, "a", []byte(`"old"`), "application/json")
			ops := `[{"put":{"a":"new","marker":1}},{"delete":["a"]},{"put":{"a":"newer"}}]`
			if tc.readOnly {
				ops = `[{"get":["a"]}]`
			}
			r := e.doJSON("POST", objPath(ns, obj, "/tx"), `{"if":`+tc.conds(v)+`,"ops":`+ops+`}`)
			if tc.failed < 0 {
				r.want(t, http.StatusOK)
				e.wantValue(ns, obj, "a", `"newer"`, "")
				e.wantKeys(ns, obj, "a", "marker")
				return
			}
			p := r.wantProblem(t, http.StatusPreconditionFailed, "precondition_failed")
			if p.Condition == nil || *p.Condition != tc.failed {
				t.Fatalf("condition %v, want %d: %s", p.Condition, tc.failed, r.body)
			}
			e.wantValue(ns, obj, "a", `"old"`, v)
			e.wantKeys(ns, obj, "a")
		})
	}
}

func TestTxIncrNotANumber(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "tx", "nan"
	vBytes := e.put(ns, obj, "bytes", []byte("12"), "")
	vText := e.put(ns, obj, "text", []byte(`"twelve"`), "application/json")
	vObj := e.put(ns, obj, "object", []byte(`{"n":1}`), "application/json")
	vBig := e.put(ns, obj, "big", []byte(`9223372036854775807`), "application/json")
	vVictim := e.put(ns, obj, "victim", []byte(`1`), "application/json")
	for _, tc := range []struct{ key, by string }{
		{"bytes", "1"}, {"text", "1"}, {"object", "1"}, {"big", "1"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			e := e.at(t)
			body := `{"ops":[{"put":{"marker":1}},{"delete":["victim"]},{"incr":{"key":"victim"}},{"incr":{"key":"` + tc.key + `","by":` + tc.by + `}}]}`
			e.doJSON("POST", objPath(ns, obj, "/tx"), body).wantProblem(t, http.StatusConflict, "not_a_number")
			e.wantKeys(ns, obj, "big", "bytes", "object", "text", "victim")
			e.wantValue(ns, obj, "victim", "1", vVictim)
			e.wantValue(ns, obj, "bytes", "12", vBytes)
			e.wantValue(ns, obj, "text", `"twelve"`, vText)
			e.wantValue(ns, obj, "object", `{"n":1}`, vObj)
			e.wantValue(ns, obj, "big", `9223372036854775807`, vBig)
		})
	}
}

func TestTxIncr(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns, obj = "tx", "incr"
	// A raw PUT keeps the bytes as sent: insignificant JSON whitespace
	// around a number must not make it "not a number".
	e.put(ns, obj, "ws", []byte(" 5\n"), "application/json")
	e.put(ns, obj, "float", []byte("1.5"), "application/json")
	e.put(ns, obj, "neg", []byte("-3"), "application/json")
	for _, tc := range []struct{ op, want string }{
		{`{"key":"ws"}`, "6"},
		{`{"key":"ws","by":10}`, "16"},
		{`{"key":"float","by":1}`, "2.5"},
		{`{"key":"neg","by":-2}`, "-5"},
		{`{"key":"new","by":0.25}`, "0.25"},
		{`{"key":"new2","by":-7}`, "-7"},
	} {
		r := e.tx(ns, obj, `{"ops":[{"incr":`+tc.op+`}]}`)
		wantJSON(t, tc.op, r.Results[0], `{"value":`+tc.want+`}`)
	}
	e.wantValue(ns, obj, "ws", "16", "")
	e.wantValue(ns, obj, "new", "0.25", "")
	if ct := e.do("GET", kvPath(ns, obj, "new"), nil).header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("incr stored %q", ct)
	}
}
