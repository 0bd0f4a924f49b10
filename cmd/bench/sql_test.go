package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/cairndb/cairn/internal/testnode"
)

func TestSQLFlags(t *testing.T) {
	c, err := parseFlags([]string{"-mode", "sql-insert"}, noenv, io.Discard)
	if err != nil || c.objects != 1 || c.stale {
		t.Fatalf("sql-insert defaults: objects %d stale %v, %v; want one object", c.objects, c.stale, err)
	}
	c, err = parseFlags([]string{"-mode", "sql-insert", "-objects", "1000"}, noenv, io.Discard)
	if err != nil || c.objects != 1000 {
		t.Fatalf("-objects 1000: %d, %v", c.objects, err)
	}
	c, err = parseFlags([]string{"-mode", "sql-select", "-stale", "-preload", "5"}, noenv, io.Discard)
	if err != nil || !c.stale || c.objects != 1 || c.preload != 5 {
		t.Fatalf("sql-select -stale: %+v, %v", c, err)
	}
	// The other modes keep their default.
	if c, _ := parseFlags([]string{"-mode", "write"}, noenv, io.Discard); c.objects != 10000 {
		t.Fatalf("write: objects %d", c.objects)
	}
	for name, args := range map[string][]string{
		"no rows to select": {"-mode", "sql-select", "-preload", "0"},
		"value past a row":  {"-mode", "sql-insert", "-value-size", "1999001"},
	} {
		if _, err := parseFlags(args, noenv, io.Discard); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
	var out strings.Builder
	run(context.Background(), []string{"-h"}, noenv, &out, io.Discard)
	for _, want := range []string{"\n  sql-insert ", "\n  sql-select ", "-stale"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// decodeSQLBody reads a /sql request body the SQL modes send.
func decodeSQLBody(t *testing.T, b []byte) (string, []json.RawMessage) {
	t.Helper()
	var s struct {
		SQL    string            `json:"sql"`
		Params []json.RawMessage `json:"params"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return s.SQL, s.Params
}

func TestSQLRequests(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWorkload(testConfig(modeSQLInsert), 7)
	seenObj := map[string]bool{}
	for range 200 {
		rq := w.next(rng)
		if rq.kind != kindWrite || rq.method != http.MethodPost || rq.contentType != "application/json" ||
			!strings.HasPrefix(rq.path, "/v1/ns/bench/objects/obj-") || !strings.HasSuffix(rq.path, "/sql") {
			t.Fatalf("insert request %+v", rq)
		}
		seenObj[rq.path] = true
		sql, params := decodeSQLBody(t, rq.body)
		var blob struct {
			ValueBase64 string `json:"valueBase64"`
		}
		if sql != sqlInsert || len(params) != 1 || json.Unmarshal(params[0], &blob) != nil {
			t.Fatalf("insert body %s", rq.body)
		}
		if v, err := base64.StdEncoding.DecodeString(blob.ValueBase64); err != nil || len(v) != 100 {
			t.Fatalf("inserted value of %d bytes (%v), want -value-size 100", len(v), err)
		}
	}
	if len(seenObj) < 40 {
		t.Fatalf("inserts went to %d of 50 objects", len(seenObj))
	}

	w = newWorkload(testConfig(modeSQLSelect), 7)
	w.preloaded = []target{{obj: 3, key: 17}}
	for _, stale := range []bool{false, true} {
		w.sqlStale = stale
		rq := w.next(rng)
		wantPath, wantKind := "/v1/ns/bench/objects/obj-3/sql", kindRead
		if stale {
			wantPath, wantKind = wantPath+"?consistency=stale", kindStaleRead
		}
		sql, params := decodeSQLBody(t, rq.body)
		if rq.path != wantPath || rq.kind != wantKind || rq.method != http.MethodPost || sql != sqlSelect ||
			len(params) != 1 || string(params[0]) != "17" {
			t.Fatalf("select (stale %v): %+v %s", stale, rq, rq.body)
		}
	}

	rq := w.sqlPreloadRequest(2, []int{4, 6, 8}, rng)
	sql, params := decodeSQLBody(t, rq.body)
	if rq.path != "/v1/ns/bench/objects/obj-2/sql" || sql != "INSERT OR REPLACE INTO bench_sql(id, v) VALUES (?, ?), (?, ?), (?, ?)" ||
		len(params) != 6 || string(params[0]) != "4" || string(params[4]) != "8" {
		t.Fatalf("preload request %s %s", rq.path, rq.body)
	}
	for size, want := range map[int]int{0: 50, 256: 50, 100_000: 39, 1_000_000: 3, maxSQLValueSize: 2} {
		if got := sqlPreloadChunk(size); got != want {
			t.Errorf("sqlPreloadChunk(%d) = %d, want %d", size, got, want)
		}
	}
}

// startSQLNode starts a single-node cluster with the SQL engine wired as
// cmd/node wires it, and serves its API; it returns the base URL.
func startSQLNode(t *testing.T) string {
	t.Helper()
	return testnode.StartT(t, testnode.Options{ID: "b1", SQLOpenDBs: 256}).URL
}

// sqlQuery runs one statement against a node and returns its rows.
func sqlQuery(t *testing.T, base, ns, obj, sql string, params ...any) [][]json.RawMessage {
	t.Helper()
	resp, err := http.Post(base+"/v1/ns/"+ns+"/objects/"+obj+"/sql", "application/json",
		strings.NewReader(string(sqlBody(sqlStmt{SQL: sql, Params: params}))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Results []struct {
			Rows [][]json.RawMessage `json:"rows"`
		} `json:"results"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 {
		t.Fatalf("%s: %d %s", sql, resp.StatusCode, b)
	}
	return out.Results[0].Rows
}

// TestSQLModesAgainstANode runs both SQL modes against a real node and
// checks what they wrote and read.
func TestSQLModesAgainstANode(t *testing.T) {
	base := startSQLNode(t)
	eachClient(t, func(t *testing.T, hc string) { testSQLModesAgainstANode(t, base, hc) })
}

func testSQLModesAgainstANode(t *testing.T, base, hc string) {
	bi, bs := "bi-"+hc, "bs-"+hc
	code, s, stderr := runJSON(t, context.Background(), "-endpoints", base, "-mode", "sql-insert", "-namespace", bi,
		"-objects", "3", "-clients", "4", "-requests", "150", "-warmup", "0", "-value-size", "64", "-http-client", hc)
	if code != 0 || s.Mode != "sql-insert" || s.OK != 150 || s.Errors != 0 || s.Objects != 3 || s.OpsPerSec <= 0 {
		t.Fatalf("sql-insert: exit %d, summary %+v\n%s", code, s, stderr)
	}
	if !strings.Contains(stderr, "setup: created table bench_sql in 3 of 3 objects") {
		t.Fatalf("stderr %q", stderr)
	}
	rows := 0
	for _, obj := range []string{"obj-0", "obj-1", "obj-2"} {
		r := sqlQuery(t, base, bi, obj, "SELECT count(*), min(length(v)), max(length(v)) FROM bench_sql")
		var n, lo, hi int
		json.Unmarshal(r[0][0], &n)
		json.Unmarshal(r[0][1], &lo)
		json.Unmarshal(r[0][2], &hi)
		if n > 0 && (lo != 64 || hi != 64) {
			t.Fatalf("%s: values of %d..%d bytes, want 64", obj, lo, hi)
		}
		rows += n
	}
	if rows != 150 {
		t.Fatalf("%d rows inserted by 150 acknowledged inserts", rows)
	}

	for _, stale := range []string{"false", "true"} {
		code, s, stderr = runJSON(t, context.Background(), "-endpoints", base, "-mode", "sql-select", "-namespace", bs,
			"-objects", "2", "-preload", "120", "-clients", "4", "-requests", "100", "-warmup", "50ms", "-stale="+stale, "-http-client", hc)
		if code != 0 || s.Mode != "sql-select" || s.Preloaded != 120 || s.OK != 100 || s.Errors != 0 {
			t.Fatalf("sql-select -stale=%s: exit %d, summary %+v\n%s", stale, code, s, stderr)
		}
		if !strings.Contains(stderr, "inserted 120 of 120 rows") {
			t.Fatalf("stderr %q", stderr)
		}
	}
	// Row j is in object j mod 2 with id j; a select the mode sends finds it.
	if r := sqlQuery(t, base, bs, "obj-1", "SELECT count(*), sum(id % 2) FROM bench_sql"); string(r[0][0]) != "60" || string(r[0][1]) != "60" {
		t.Fatalf("obj-1 holds %s", r)
	}
	w := newWorkload(config{mode: modeSQLSelect, namespace: bs, objects: 2, valueSize: 256}, 1)
	w.preloaded = []target{{obj: 1, key: 77}}
	rq := w.next(rand.New(rand.NewPCG(1, 1)))
	resp, err := http.Post(base+rq.path, rq.contentType, strings.NewReader(string(rq.body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"rows":[[77,{"valueBase64":"`) {
		t.Fatalf("the mode's SELECT: %d %s", resp.StatusCode, b)
	}
}

// TestSQLSetupFailureExits1 checks that a run whose tables cannot be
// created measures nothing and exits 1.
func TestSQLSetupFailureExits1(t *testing.T) { eachClient(t, testSQLSetupFailureExits1) }

func testSQLSetupFailureExits1(t *testing.T, hc string) {
	f := newFakeServer(t)
	f.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"status":403,"code":"forbidden"}`)
	}
	code, s, stderr := runJSON(t, context.Background(), "-endpoints", f.URL, "-mode", "sql-insert", "-objects", "3",
		"-clients", "2", "-requests", "10", "-warmup", "0", "-http-client", hc)
	if code != 1 || s.Requests != 0 || s.PreloadErrors["403 forbidden"] != 3 || !strings.Contains(stderr, "could not be created in 3 of 3 objects") {
		t.Fatalf("exit %d, summary %+v, stderr %q", code, s, stderr)
	}
	for _, r := range f.requests() {
		if sql, _ := decodeSQLBody(t, r.body); sql != sqlCreate || r.method != http.MethodPost {
			t.Fatalf("request %s %s %s after a failed setup", r.method, r.path, r.body)
		}
	}
}
