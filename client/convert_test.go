package client

import (
	"database/sql"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestEncodeParam(t *testing.T) {
	type myStr string
	type myBytes []byte
	s := "p"
	var nilPtr *int
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, `null`}, {true, `true`}, {false, `false`},
		{int8(-8), `-8`}, {uint16(16), `16`}, {int64(math.MinInt64), `-9223372036854775808`},
		{uint64(math.MaxInt64), `9223372036854775807`},
		{3.0, `3.0`}, {float32(0.5), `0.5`}, {1e21, `1e+21`}, {-2.5e-8, `-2.5e-08`},
		{"a\"b", `"a\"b"`}, {myStr("named"), `"named"`}, {&s, `"p"`}, {nilPtr, `null`},
		{[]byte{1, 2}, `{"valueBase64":"AQI="}`}, {myBytes{3}, `{"valueBase64":"Aw=="}`}, {[]byte(nil), `null`},
		{sql.NullString{}, `null`}, {sql.NullFloat64{Float64: 2, Valid: true}, `2.0`}, {json.Number("12"), `12`},
	} {
		got, err := encodeParam(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("encodeParam(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{math.Inf(-1), uint64(math.MaxUint64), struct{}{}, []int{1}, time.Now(), json.Number("x"), map[string]int{}} {
		if got, err := encodeParam(bad); err == nil {
			t.Errorf("encodeParam(%#v) = %s, want an error", bad, got)
		}
	}
}

func TestDecodeCell(t *testing.T) {
	for in, want := range map[string]any{
		`null`: nil, `true`: true, `"x"`: "x", `42`: int64(42), `-9223372036854775808`: int64(math.MinInt64),
		`1.5`: 1.5, `1e+300`: 1e300, `{"valueBase64":"AQI="}`: []byte{1, 2}, `9223372036854775808`: 9223372036854775808.0,
	} {
		got, err := decodeCell(json.RawMessage(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decodeCell(%s) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `{"x":"y"}`, `{"valueBase64":"!!"}`, `[1]`, `nope`} {
		if got, err := decodeCell(json.RawMessage(bad)); err == nil {
			t.Errorf("decodeCell(%s) = %#v, want an error", bad, got)
		}
	}
}

func TestConvertAssign(t *testing.T) {
	var (
		i64 int64
		i8  int8
		u   uint
		f32 float32
		s   string
		b   []byte
		ok  bool
		a   any
		pi  *int64
		ns  sql.NullString
	)
	for _, tc := range []struct {
		dest, src, want any
	}{
		{&i64, int64(7), int64(7)}, {&i64, 7.0, int64(7)}, {&i64, "8", int64(8)}, {&i64, []byte("9"), int64(9)}, {&i64, true, int64(1)},
		{&i8, int64(-128), int8(-128)}, {&u, int64(5), uint(5)},
		{&f32, int64(2), float32(2)}, {&f32, "0.5", float32(0.5)},
		{&s, int64(10), "10"}, {&s, 2.5, "2.5"}, {&s, []byte("b"), "b"}, {&s, true, "true"},
		{&b, "str", []byte("str")}, {&b, int64(3), []byte("3")},
		{&ok, int64(1), true}, {&ok, "false", false}, {&ok, true, true},
		{&a, []byte{1}, []byte{1}}, {&pi, nil, (*int64)(nil)}, {&ns, "v", sql.NullString{String: "v", Valid: true}},
	} {
		if err := convertAssign(tc.dest, tc.src); err != nil {
			t.Errorf("convertAssign(%T, %#v): %v", tc.dest, tc.src, err)
			continue
		}
		if got := reflect.ValueOf(tc.dest).Elem().Interface(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("convertAssign(%T, %#v) = %#v, want %#v", tc.dest, tc.src, got, tc.want)
		}
	}
	for _, tc := range []struct{ dest, src any }{
		{&i64, 1.5}, {&i64, "x"}, {&i64, nil}, {&i8, int64(128)}, {&u, int64(-1)}, {&f32, 1e300}, {&f32, true},
		{&ok, int64(2)}, {&ok, 1.0}, {i64, int64(1)}, {(*int64)(nil), int64(1)}, {&struct{}{}, int64(1)},
	} {
		if err := convertAssign(tc.dest, tc.src); err == nil {
			t.Errorf("convertAssign(%T, %#v) succeeded", tc.dest, tc.src)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond, maxBackoff: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 20 {
			if got := c.backoffFor(n); got < want/2 || got > want {
				t.Fatalf("backoffFor(%d) = %v, want in [%v, %v]", n, got, want/2, want)
			}
		}
	}
}

func TestErrorText(t *testing.T) {
	cond := 2
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrNotFound, "cairn: not_found"},
		{&Error{Status: 412, Code: "precondition_failed", Detail: "d", Condition: &cond, Op: "POST /v1/x"}, "cairn: POST /v1/x: 412 precondition_failed: d (condition 2)"},
		{&Error{Status: 502, Detail: "bad gateway"}, "cairn: 502 Bad Gateway: bad gateway"},
		{&Error{Code: "commit_unknown", Detail: "d", Err: http.ErrHandlerTimeout}, "cairn: commit_unknown: d: " + http.ErrHandlerTimeout.Error()},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if OpGet("k").Kind() != KindGet || OpSQL("x").Kind() != KindSQL {
		t.Error("Op.Kind")
	}
}

// TestReadsOnly: what the client sends as a read, without a generated
// Idempotency-Key. Every doubt must be a "no".
func TestReadsOnly(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                                           true,
		"  select * from t where a = ?;  ":                   true,
		"-- note\n/* more */ SELECT 1;;":                     true,
		"VALUES (1), (2)":                                    true,
		"WITH x AS (SELECT 1) SELECT * FROM x":               true,
		"PRAGMA user_version":                                true,
		"pragma main.user_version;":                          true,
		"SELECT 1; DELETE FROM t":                            false, // two statements
		"SELECT ';'":                                         false, // any ";" inside
		"SELECT 1 -- ;\nDELETE FROM t":                       false,
		"WITH x AS (SELECT 1) DELETE FROM t":                 false,
		"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x": false,
		"WITH x AS (SELECT 'update') SELECT * FROM x":        false, // a word in a string: in doubt
		"PRAGMA user_version = 3":                            false,
		"PRAGMA user_version(3)":                             false,
		"PRAGMA table_info(t)":                               false, // reads, but has an argument
		"INSERT INTO t VALUES (1)":                           false,
		"SELECTED":                                           false,
		"EXPLAIN SELECT 1":                                   false,
		"/* unterminated SELECT 1":                           false,
		"-- SELECT 1":                                        false,
		"":                                                   false,
	} {
		if got := readsOnly(q); got != want {
			t.Errorf("readsOnly(%q) = %v, want %v", q, got, want)
		}
	}
}
