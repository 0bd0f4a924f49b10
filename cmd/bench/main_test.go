package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func noenv(string) string { return "" }

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, noenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.endpoints) != 1 || c.endpoints[0] != "http://127.0.0.1:8080" || c.clients != 64 ||
		c.duration != 10*time.Second || c.requests != 0 || c.warmup != time.Second || c.mode != modeWrite ||
		c.preload != 1000 || c.valueSize != 256 || c.objects != 10000 || c.keys != 10 ||
		c.namespace != "bench" || c.timeout != 10*time.Second || c.json || c.token != "" || c.httpClient != httpClientFast {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParseFlags(t *testing.T) {
	env := func(k string) string {
		if k == "CAIRN_TOKEN" {
			return "from-env"
		}
		return ""
	}
	c, err := parseFlags([]string{"-endpoints", " http://a:1/, https://b:2 ,http://c:3", "-requests", "500", "-mode", "tx", "-tx-keys", "10"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.endpoints, " ") != "http://a:1 https://b:2 http://c:3" {
		t.Fatalf("endpoints %q", c.endpoints)
	}
	if c.duration != 0 || c.requests != 500 {
		t.Fatalf("-requests alone: duration %v requests %d, want no time limit", c.duration, c.requests)
	}
	if c.token != "from-env" {
		t.Fatalf("token %q, want CAIRN_TOKEN's", c.token)
	}
	c, err = parseFlags([]string{"-requests", "500", "-duration", "3s", "-token", "flag"}, env, io.Discard)
	if err != nil || c.duration != 3*time.Second || c.requests != 500 || c.token != "flag" {
		t.Fatalf("both limits: %+v %v", c, err)
	}

	bad := map[string][]string{
		"never stops":       {"-duration", "0"},
		"negative duration": {"-duration", "-1s"},
		"mode":              {"-mode", "scan"},
		"clients":           {"-clients", "0"},
		"read ratio":        {"-mode", "mixed", "-read-ratio", "1.5"},
		"tx keys > keys":    {"-mode", "tx", "-tx-keys", "11"},
		"tx keys > 128":     {"-mode", "tx", "-keys", "1000", "-tx-keys", "129"},
		"preload":           {"-mode", "read", "-preload", "0"},
		"namespace":         {"-namespace", "Bad NS"},
		"endpoint scheme":   {"-endpoints", "127.0.0.1:8080"},
		"no endpoint":       {"-endpoints", " , "},
		"value size":        {"-value-size", "3000000"},
		"unknown flag":      {"-nope"},
		"argument":          {"extra"},
		"timeout":           {"-timeout", "0"},
		"http client":       {"-http-client", "raw"},
		"token with CRLF":   {"-token", "a\r\nX-Evil: 1"},
	}
	for name, args := range bad {
		if _, err := parseFlags(args, noenv, io.Discard); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
}

func TestHelp(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"-h"}, noenv, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, m := range modes {
		if !strings.Contains(out.String(), "\n  "+string(m)+" ") {
			t.Errorf("help does not explain mode %s:\n%s", m, out.String())
		}
	}
	for _, f := range []string{"-endpoints", "-read-ratio", "-tx-keys", "-warmup", "-json"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("help lacks %s", f)
		}
	}
}

func TestBadFlagsExit2(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"-mode", "nope"}, noenv, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "-mode") || out.Len() != 0 {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

// runJSON runs the command with -json and decodes its summary.
func runJSON(t *testing.T, ctx context.Context, args ...string) (int, summary, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(ctx, append(args, "-json"), noenv, &out, &errOut)
	var s summary
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s\nstderr: %s", err, out.String(), errOut.String())
	}
	if strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
		t.Fatalf("JSON summary is not one line: %s", out.String())
	}
	return code, s, errOut.String()
}

// httpClients are the -http-client values; the tests that send requests
// run with each.
var httpClients = []string{httpClientFast, httpClientNet}

// eachClient runs f as a subtest per -http-client value.
func eachClient(t *testing.T, f func(t *testing.T, hc string)) {
	t.Helper()
	for _, hc := range httpClients {
		t.Run(hc, func(t *testing.T) { f(t, hc) })
	}
}

func TestParseFlagsHTTPClient(t *testing.T) {
	for _, hc := range httpClients {
		if c, err := parseFlags([]string{"-http-client", hc}, noenv, io.Discard); err != nil || c.httpClient != hc {
			t.Fatalf("-http-client %s: %q %v", hc, c.httpClient, err)
		}
	}
	env := func(string) string { return "bad\ntoken" }
	if _, err := parseFlags(nil, env, io.Discard); err == nil || !strings.Contains(err.Error(), "-token") {
		t.Fatalf("a CAIRN_TOKEN with a newline: %v", err)
	}
}

func TestRunSpreadsClientsOverEndpoints(t *testing.T) {
	eachClient(t, testRunSpreadsClientsOverEndpoints)
}

func testRunSpreadsClientsOverEndpoints(t *testing.T, hc string) {
	fs := []*fakeServer{newFakeServer(t), newFakeServer(t), newFakeServer(t)}
	code, s, stderr := runJSON(t, context.Background(), "-endpoints", fs[0].URL+","+fs[1].URL+","+fs[2].URL,
		"-clients", "6", "-requests", "300", "-warmup", "0", "-mode", "write", "-http-client", hc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s.Requests != 300 || s.OK != 300 || s.Errors != 0 || s.OpsPerSec <= 0 || s.Latency.Count != 300 || s.Latency.P50 <= 0 {
		t.Fatalf("summary %+v", s)
	}
	total := 0
	for i, f := range fs {
		// The clients share the 300 requests, so how many each endpoint
		// gets is up to the scheduler; that its two clients reached it is
		// not.
		n := len(f.requests())
		total += n
		if n == 0 {
			t.Errorf("endpoint %d got none of the 300 requests", i)
		}
		// Each endpoint serves its two clients over kept-alive connections
		// (a few more than two only when net/http dials while a connection
		// is on its way back to the idle pool; without keep-alive, ~100).
		// fasthttp dials only when no connection is idle.
		if n := f.conns.Load(); n > 6 || hc == httpClientFast && n > 2 {
			t.Errorf("endpoint %d: %d connections for 2 clients", i, n)
		}
	}
	if total != 300 { // no warm-up: every request sent is measured
		t.Errorf("the endpoints got %d requests, want 300", total)
	}
}

func TestRunReadModePreloadsAndWarmsUp(t *testing.T) {
	eachClient(t, testRunReadModePreloadsAndWarmsUp)
}

func testRunReadModePreloadsAndWarmsUp(t *testing.T, hc string) {
	f := newFakeServer(t)
	code, s, stderr := runJSON(t, context.Background(), "-endpoints", f.URL, "-clients", "4",
		"-mode", "stale-read", "-preload", "20", "-warmup", "100ms", "-duration", "200ms", "-http-client", hc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s.Preloaded != 20 || s.Requests == 0 || s.WindowSeconds < 0.2 || s.WarmupSeconds != 0.1 || s.Interrupted {
		t.Fatalf("summary %+v", s)
	}
	if !strings.Contains(stderr, "preload: wrote 20 of 20 keys") {
		t.Fatalf("stderr %q", stderr)
	}
	puts, gets := 0, 0
	written := map[string]bool{}
	for _, r := range f.requests() {
		switch r.method {
		case http.MethodPut:
			puts++
			written[r.path] = true
		case http.MethodGet:
			gets++
			if !written[r.path] || r.rawQuery != "consistency=stale" {
				t.Fatalf("GET %s?%s of a key not preloaded", r.path, r.rawQuery)
			}
		}
	}
	// Warm-up requests reached the server but are not in the summary.
	if puts != 20 || int64(gets) <= s.Requests {
		t.Fatalf("%d PUTs, %d GETs, %d measured", puts, gets, s.Requests)
	}
}

func TestRunCountsErrorsAndStillExits0(t *testing.T) {
	eachClient(t, testRunCountsErrorsAndStillExits0)
}

func testRunCountsErrorsAndStillExits0(t *testing.T, hc string) {
	f := newFakeServer(t)
	f.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(503)
		io.WriteString(w, `{"status":503,"code":"unavailable"}`)
	}
	code, s, _ := runJSON(t, context.Background(), "-endpoints", f.URL, "-clients", "2", "-requests", "40", "-warmup", "0", "-mode", "incr", "-http-client", hc)
	if code != 0 || s.Errors != 40 || s.OK != 0 || s.ErrorsByClass["503 unavailable"] != 40 {
		t.Fatalf("exit %d summary %+v", code, s)
	}
}

func TestRunUnreachableExits1(t *testing.T) { eachClient(t, testRunUnreachableExits1) }

func testRunUnreachableExits1(t *testing.T, hc string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	code, s, stderr := runJSON(t, context.Background(), "-endpoints", addr, "-clients", "2", "-duration", "100ms", "-warmup", "0", "-http-client", hc)
	if code != 1 || s.Errors == 0 || s.ErrorsByClass["transport: connection refused"] != s.Errors {
		t.Fatalf("exit %d summary %+v", code, s)
	}
	if !strings.Contains(stderr, "unreachable") {
		t.Fatalf("stderr %q", stderr)
	}
	// In a read mode the preload already finds it unreachable.
	code, s, _ = runJSON(t, context.Background(), "-endpoints", addr, "-mode", "read", "-preload", "5", "-duration", "100ms", "-http-client", hc)
	if code != 1 || s.PreloadErrors["transport: connection refused"] != 5 {
		t.Fatalf("exit %d summary %+v", code, s)
	}
}

func TestRunInterruptedPrintsSummary(t *testing.T) { eachClient(t, testRunInterruptedPrintsSummary) }

func testRunInterruptedPrintsSummary(t *testing.T, hc string) {
	f := newFakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	var out, errOut strings.Builder
	code := run(ctx, []string{"-endpoints", f.URL, "-clients", "4", "-duration", "1m", "-warmup", "100ms", "-http-client", hc}, noenv, &out, &errOut)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v to stop after the interrupt", took)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, w := range []string{"interrupted", "throughput", "p99.9", "requests"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, out.String())
		}
	}
}

func TestProgressLines(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over a second")
	}
	eachClient(t, testProgressLines)
}

func testProgressLines(t *testing.T, hc string) {
	f := newFakeServer(t)
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"-endpoints", f.URL, "-clients", "2", "-duration", "1200ms", "-warmup", "0", "-http-client", hc}, noenv, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	line := strings.TrimSpace(errOut.String())
	if !strings.HasPrefix(line, "run") || !strings.Contains(line, "ops/s") || !strings.Contains(line, "errors 0") || strings.Count(line, "\n") != 0 {
		t.Fatalf("progress %q, want one line", errOut.String())
	}
}

func TestBackoff(t *testing.T) {
	var bo backoff
	refused := result{class: "transport: connection refused"}
	closed := make(chan struct{})
	close(closed) // pauses end at once, so the test is fast
	var got []time.Duration
	for range 8 {
		bo.after(refused, closed, nil)
		got = append(got, bo.d)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 320, 500, 500}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms", got, want)
		}
	}
	// An HTTP answer, even an error, resets it; so does a success.
	bo.after(result{status: 503, class: "503 unavailable"}, closed, nil)
	if bo.d != 0 {
		t.Fatalf("pause %v after an HTTP answer", bo.d)
	}
	bo.after(refused, closed, nil)
	bo.after(result{status: 200}, closed, nil)
	if bo.d != 0 {
		t.Fatalf("pause %v after a success", bo.d)
	}
	// A real pause takes about its length.
	start := time.Now()
	bo.after(refused, nil, nil)
	if took := time.Since(start); took < 10*time.Millisecond || took > time.Second {
		t.Fatalf("first pause took %v", took)
	}
}
