package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func durations(n int) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond // 1ms … n ms
	}
	return d
}

func TestPercentile(t *testing.T) {
	cases := []struct {
		n    int
		p    float64
		want time.Duration
	}{
		{0, 50, 0},
		{1, 50, 1 * time.Millisecond},
		{1, 99.9, 1 * time.Millisecond},
		{2, 50, 1 * time.Millisecond},
		{4, 50, 2 * time.Millisecond},
		{4, 75, 3 * time.Millisecond},
		{4, 76, 4 * time.Millisecond},
		{10, 90, 9 * time.Millisecond},
		{10, 99, 10 * time.Millisecond},
		{100, 50, 50 * time.Millisecond},
		{100, 99, 99 * time.Millisecond},
		{100, 99.9, 100 * time.Millisecond},
		// 99.9% of 1000 is exactly rank 999, not 1000 by a float rounding error.
		{1000, 99.9, 999 * time.Millisecond},
		{1000, 99, 990 * time.Millisecond},
		{1000, 100, 1000 * time.Millisecond},
		{1000, 0, 1 * time.Millisecond},
		{10000, 99.9, 9990 * time.Millisecond},
		{10001, 99.9, 9991 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(durations(c.n), c.p); got != c.want {
			t.Errorf("percentile(1..%d ms, %g) = %v, want %v", c.n, c.p, got, c.want)
		}
	}
}

func TestSummarizeSortsAndDescribes(t *testing.T) {
	lat := durations(1000)
	// Reverse, so summarize has to sort.
	slices.Reverse(lat)
	s := summarize(lat)
	want := latencySummary{Count: 1000, Mean: 500.5, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if s != want {
		t.Fatalf("summarize = %+v, want %+v", s, want)
	}
	if (summarize(nil) != latencySummary{}) {
		t.Fatalf("summarize(nil) = %+v, want zero", summarize(nil))
	}
	// Sub-millisecond values keep microsecond precision.
	if s := summarize([]time.Duration{1500 * time.Microsecond, 250 * time.Microsecond}); s.P50 != 0.25 || s.Max != 1.5 {
		t.Fatalf("µs precision lost: %+v", s)
	}
}

func TestHTTPErrorClass(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{503, `{"type":"about:blank","title":"Service Unavailable","status":503,"code":"unavailable","detail":"no leader"}`, "503 unavailable"},
		{504, `{"code":"commit_unknown"}` + "\n", "504 commit_unknown"},
		{412, `{"code":"precondition_failed","condition":0}`, "412 precondition_failed"},
		{502, `<html>bad gateway</html>`, "502 (no code)"},
		{500, ``, "500 (no code)"},
		{429, `{"code":""}`, "429 (no code)"},
		{418, `{"code":"has space\nand newline"}`, "418 has_space_and_newline"},
		{400, `{"code":"` + strings.Repeat("x", 100) + `"}`, "400 " + strings.Repeat("x", 40) + "…"},
	}
	for _, c := range cases {
		if got := httpErrorClass(c.status, []byte(c.body)); got != c.want {
			t.Errorf("httpErrorClass(%d, %q) = %q, want %q", c.status, c.body, got, c.want)
		}
	}
}

// wrapped builds the error chain net/http returns for a failed round trip.
func wrapped(op string, err error) error {
	return &url.Error{Op: "Put", URL: "http://10.0.0.1:8080/v1/ns/b/objects/o/kv/k",
		Err: &net.OpError{Op: op, Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8080},
			Err: os.NewSyscallError(op, err)}}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "net/http: Client.Timeout exceeded while awaiting headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransportClass(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{wrapped("connect", syscall.ECONNREFUSED), "transport: connection refused"},
		{wrapped("read", syscall.ECONNRESET), "transport: connection reset"},
		{wrapped("write", syscall.EPIPE), "transport: broken pipe"},
		{wrapped("connect", syscall.EHOSTUNREACH), "transport: host unreachable"},
		{wrapped("connect", syscall.EADDRNOTAVAIL), "transport: address not available (out of local ports?)"},
		{wrapped("socket", syscall.EMFILE), "transport: too many open files"},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nohost", IsNotFound: true}}}, "transport: no such host"},
		{&url.Error{Op: "Get", URL: "http://x", Err: timeoutErr{}}, "transport: timeout"},
		{&url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, "transport: timeout"},
		{fmt.Errorf("reading body: %w", os.ErrDeadlineExceeded), "transport: timeout"},
		{&url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, "transport: connection closed early (EOF)"},
		{io.ErrUnexpectedEOF, "transport: connection closed early (EOF)"},
		{&url.Error{Op: "Get", URL: "http://x", Err: context.Canceled}, "transport: canceled"},
		// Unknown errors: the innermost message, without the address.
		{&url.Error{Op: "Get", URL: "http://10.0.0.1:1/", Err: &net.OpError{Op: "dial", Err: errors.New("something odd")}}, "transport: something odd"},
		{errors.New(strings.Repeat("y", 80)), "transport: " + strings.Repeat("y", 60) + "…"},
	}
	for _, c := range cases {
		if got := transportClass(c.err); got != c.want {
			t.Errorf("transportClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestSummaryFinish(t *testing.T) {
	a, b := newWorkerStats(), newWorkerStats()
	for i := 1; i <= 6; i++ {
		a.add(kindRead, result{latency: time.Duration(i) * time.Millisecond})
	}
	for i := 7; i <= 10; i++ {
		b.add(kindWrite, result{latency: time.Duration(i) * time.Millisecond})
	}
	a.add(kindWrite, result{status: 503, class: "503 unavailable"})
	b.add(kindWrite, result{status: 503, class: "503 unavailable"})
	b.add(kindRead, result{class: "transport: connection refused"})

	s := &summary{}
	s.finish([]*workerStats{a, b}, 2*time.Second)
	if s.Requests != 13 || s.OK != 10 || s.Errors != 3 {
		t.Fatalf("requests/ok/errors = %d/%d/%d, want 13/10/3", s.Requests, s.OK, s.Errors)
	}
	if s.OpsPerSec != 5 || s.RequestsPerSec != 6.5 {
		t.Fatalf("ops/s %g req/s %g, want 5 and 6.5", s.OpsPerSec, s.RequestsPerSec)
	}
	if s.Latency.P50 != 5 || s.Latency.Max != 10 {
		t.Fatalf("latency %+v", s.Latency)
	}
	if len(s.ByOp) != 2 || s.ByOp["read"].Count != 6 || s.ByOp["write"].Max != 10 {
		t.Fatalf("by op %+v", s.ByOp)
	}
	want := map[string]int64{"503 unavailable": 2, "transport: connection refused": 1}
	if fmt.Sprint(s.ErrorsByClass) != fmt.Sprint(want) {
		t.Fatalf("errors %v, want %v", s.ErrorsByClass, want)
	}
	var out strings.Builder
	s.writeText(&out)
	for _, w := range []string{"13 (10 ok, 3 errors", "5.0 ops/s", "p50 5.00ms", "p99.9 10.00ms", "2  503 unavailable", "1  transport: connection refused", "  read "} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("text summary lacks %q:\n%s", w, out.String())
		}
	}

	// One kind only: no per-op split. No window: no rates, no division by 0.
	s = &summary{}
	s.finish([]*workerStats{newWorkerStats()}, 0)
	if s.ByOp != nil || s.OpsPerSec != 0 || s.Requests != 0 {
		t.Fatalf("empty summary %+v", s)
	}
}

func TestErrorClassesByCount(t *testing.T) {
	m := map[string]int64{"b": 2, "a": 2, "c": 9, "d": 1}
	if got := errorClassesByCount(m); !slices.Equal(got, []string{"c", "a", "b", "d"}) {
		t.Fatalf("order %v", got)
	}
	if got := errorsLine(map[string]int64{"x": 3, "y": 4}); got != "4 × y, 3 × x" {
		t.Fatalf("errorsLine = %q", got)
	}
}

func TestFmtMs(t *testing.T) {
	for v, want := range map[float64]string{0.25: "250µs", 0: "0µs", 1: "1.00ms", 12.346: "12.35ms", 1500: "1.500s"} {
		if got := fmtMs(v); got != want {
			t.Errorf("fmtMs(%g) = %q, want %q", v, got, want)
		}
	}
}
