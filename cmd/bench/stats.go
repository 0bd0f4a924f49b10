package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is the outcome of one request.
type result struct {
	latency time.Duration
	// status is the HTTP status, 0 when no answer arrived.
	status int
	// class is "" for a 2xx answer, otherwise the error class:
	// "<status> <code>" or "transport: <what>".
	class string
	// canceled is set when the run's context ended the request (SIGINT);
	// such a request is neither a success nor an error and is not counted.
	canceled bool
}

func (r result) ok() bool { return r.class == "" }

// workerStats is what one worker measured; each worker has its own, so
// recording takes no lock. They are merged once, at the end of the run.
type workerStats struct {
	lat  [numKinds][]time.Duration // latencies of successful requests, per kind
	errs map[string]int64          // error class → count
}

func newWorkerStats() *workerStats { return &workerStats{errs: map[string]int64{}} }

func (s *workerStats) add(k opKind, r result) {
	if r.ok() {
		s.lat[k] = append(s.lat[k], r.latency)
	} else {
		s.errs[r.class]++
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are less than or equal to it. It is 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := int64(len(sorted))
	if n == 0 {
		return 0
	}
	// p in thousandths of a percent, in integers, so that 99.9% of 1000
	// values is rank 999 and not 1000 by a rounding error.
	milli := int64(math.Round(p * 1000))
	rank := (milli*n + 100_000 - 1) / 100_000
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// latencySummary describes a set of latencies, in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99.9"`
	Max   float64 `json:"max"`
}

// summarize sorts lat in place and describes it.
func summarize(lat []time.Duration) latencySummary {
	slices.Sort(lat)
	s := latencySummary{Count: int64(len(lat))}
	if len(lat) == 0 {
		return s
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	s.Mean = ms(sum / time.Duration(len(lat)))
	s.P50 = ms(percentile(lat, 50))
	s.P90 = ms(percentile(lat, 90))
	s.P99 = ms(percentile(lat, 99))
	s.P999 = ms(percentile(lat, 99.9))
	s.Max = ms(lat[len(lat)-1])
	return s
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// httpErrorClass names a non-2xx answer by its status and the "code" of its
// problem+json body, e.g. "503 unavailable" or "504 commit_unknown".
func httpErrorClass(status int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return strconv.Itoa(status) + " " + sanitizeClass(p.Code)
	}
	return strconv.Itoa(status) + " (no code)"
}

// sanitizeClass keeps a server-chosen string from making the error table
// unreadable: printable, no spaces, at most 40 bytes.
func sanitizeClass(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// transportClass names an error that kept a request from getting an HTTP
// answer by a short, stable class, e.g. "transport: connection refused".
func transportClass(err error) string {
	return "transport: " + transportKind(err)
}

func transportKind(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ECONNABORTED):
		return "connection aborted"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available (out of local ports?)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return "dns lookup failed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed early (EOF)"
	}
	// Anything else: the innermost message, which is short and carries no
	// address ("dial tcp 10.0.0.1:8080: …" is the outer layer).
	inner := err
	for {
		u := errors.Unwrap(inner)
		if u == nil {
			break
		}
		inner = u
	}
	msg := inner.Error()
	if len(msg) > 60 {
		msg = msg[:60] + "…"
	}
	return msg
}

// summary is the final report of a run.
type summary struct {
	Mode          string   `json:"mode"`
	Endpoints     []string `json:"endpoints"`
	Clients       int      `json:"clients"`
	ValueSize     int      `json:"valueSize"`
	Objects       int      `json:"objects"`
	Keys          int      `json:"keys"`
	Preloaded     int      `json:"preloaded,omitempty"`
	WarmupSeconds float64  `json:"warmupSeconds"`
	// WindowSeconds is the measured window: from the end of the warm-up to
	// the end of the last measured request.
	WindowSeconds float64 `json:"windowSeconds"`
	Interrupted   bool    `json:"interrupted"`
	// Requests = OK + Errors: every measured request that got an answer or
	// a transport error.
	Requests       int64   `json:"requests"`
	OK             int64   `json:"ok"`
	Errors         int64   `json:"errors"`
	OpsPerSec      float64 `json:"opsPerSec"`      // successful requests per second
	RequestsPerSec float64 `json:"requestsPerSec"` // all requests per second
	// Latency is over the successful requests, in milliseconds.
	Latency latencySummary `json:"latencyMs"`
	// ByOp splits Latency by operation when a mode mixes several (mixed).
	ByOp          map[string]latencySummary `json:"byOpLatencyMs,omitempty"`
	ErrorsByClass map[string]int64          `json:"errorsByClass"`
	PreloadErrors map[string]int64          `json:"preloadErrorsByClass,omitempty"`
}

// finish merges the workers' stats into s, given the measured window.
func (s *summary) finish(stats []*workerStats, window time.Duration) {
	s.WindowSeconds = window.Seconds()
	s.ErrorsByClass = map[string]int64{}
	var all []time.Duration
	var perKind [numKinds][]time.Duration
	for _, st := range stats {
		for k := range st.lat {
			perKind[k] = append(perKind[k], st.lat[k]...)
		}
		for c, n := range st.errs {
			s.ErrorsByClass[c] += n
			s.Errors += n
		}
	}
	kinds := 0
	for k := range perKind {
		if len(perKind[k]) > 0 {
			kinds++
		}
		all = append(all, perKind[k]...)
	}
	if kinds > 1 {
		s.ByOp = map[string]latencySummary{}
		for k := range perKind {
			if len(perKind[k]) > 0 {
				s.ByOp[opKind(k).String()] = summarize(perKind[k])
			}
		}
	}
	s.Latency = summarize(all)
	s.OK = s.Latency.Count
	s.Requests = s.OK + s.Errors
	if window > 0 {
		s.OpsPerSec = float64(s.OK) / window.Seconds()
		s.RequestsPerSec = float64(s.Requests) / window.Seconds()
	}
}

// writeText prints s for a person.
func (s *summary) writeText(w io.Writer) {
	plural := "s"
	if len(s.Endpoints) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "cairn bench: mode %s, %d clients, %d endpoint%s, %d-byte values, %d objects x %d keys\n",
		s.Mode, s.Clients, len(s.Endpoints), plural, s.ValueSize, s.Objects, s.Keys)
	if s.Preloaded > 0 {
		fmt.Fprintf(w, "preloaded   %d keys\n", s.Preloaded)
	}
	note := ""
	if s.Interrupted {
		note = ", interrupted"
	}
	fmt.Fprintf(w, "window      %.2fs measured (after %gs warm-up%s)\n", s.WindowSeconds, s.WarmupSeconds, note)
	errPct := 0.0
	if s.Requests > 0 {
		errPct = 100 * float64(s.Errors) / float64(s.Requests)
	}
	fmt.Fprintf(w, "requests    %d (%d ok, %d errors = %.2f%%)\n", s.Requests, s.OK, s.Errors, errPct)
	fmt.Fprintf(w, "throughput  %.1f ops/s ok (%.1f req/s including errors)\n", s.OpsPerSec, s.RequestsPerSec)
	fmt.Fprintf(w, "latency     %s   (successful requests)\n", s.Latency.line())
	if len(s.ByOp) > 0 {
		for _, k := range sortedKeys(s.ByOp) {
			fmt.Fprintf(w, "  %-10s %s\n", k, s.ByOp[k].line())
		}
	}
	writeErrorTable(w, "errors", s.ErrorsByClass)
	writeErrorTable(w, "preload errors", s.PreloadErrors)
}

func (l latencySummary) line() string {
	return fmt.Sprintf("n=%d p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s",
		l.Count, fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), fmtMs(l.Mean))
}

// fmtMs prints a millisecond value with a unit that suits it.
func fmtMs(v float64) string {
	switch {
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + "µs"
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(v/1000, 'f', 3, 64) + "s"
	}
}

// writeErrorTable prints counts by class, most frequent first.
func writeErrorTable(w io.Writer, title string, m map[string]int64) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, c := range errorClassesByCount(m) {
		fmt.Fprintf(w, "  %10d  %s\n", m[c], c)
	}
}

// errorClassesByCount orders classes by descending count, then by name.
func errorClassesByCount(m map[string]int64) []string {
	cs := sortedKeys(m)
	slices.SortStableFunc(cs, func(a, b string) int { return int(m[b] - m[a]) })
	return cs
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// errorsLine is m on one line, for messages: "3 × 401 unauthorized, …".
func errorsLine(m map[string]int64) string {
	var parts []string
	for _, c := range errorClassesByCount(m) {
		parts = append(parts, fmt.Sprintf("%d × %s", m[c], c))
	}
	return strings.Join(parts, ", ")
}
