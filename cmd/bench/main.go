// Command bench is Cairn's load generator. It drives a Cairn cluster through
// its HTTP API with many concurrent keep-alive clients, spread round-robin
// over the given endpoints, for a fixed duration or number of requests, and
// reports throughput, exact latency percentiles (p50, p90, p99, p99.9, max)
// and errors grouped by HTTP status and problem code ("503 unavailable") or
// by transport failure ("transport: connection refused").
//
// Modes: write (PUT single keys), read and stale-read (GET keys written by a
// preload phase), mixed (reads and writes by -read-ratio), tx (multi-key
// put transactions) and incr (counter increments in a transaction); alarms
// (alarms.go) measures alarm delivery through a webhook receiver it runs;
// sql-insert and sql-select (sql.go) measure single-row INSERTs and
// primary-key SELECTs through /sql. Requests go over fasthttp's client
// (fasthttp.go; -http-client net: net/http's). A warm-up runs first and is not
// measured. A progress line per second goes to stderr, the summary to
// stdout (-json: one JSON object). SIGINT stops the run early and still
// prints the summary; a second SIGINT kills it.
//
// It speaks HTTP itself rather than through package client: a load
// generator must cost the machine it shares with the nodes as little CPU as
// it can (fasthttp measured cheaper than net/http), keep exactly one request
// in flight per worker, and count every answer, where the client would
// retry and fail over behind its back.
//
//	go run ./cmd/bench -endpoints http://127.0.0.1:8080 -mode write -duration 30s
//	go run ./cmd/bench -endpoints http://n1:8080,http://n2:8080,http://n3:8080 \
//		-mode mixed -read-ratio 0.9 -clients 128 -json > result.json
//
// Exit status: 0 when it ran (even with errors), 1 when no request got any
// HTTP answer (or the preload wrote nothing to read), 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the next SIGINT kills the process at once
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is everything a run is started with.
type config struct {
	endpoints []string
	clients   int
	duration  time.Duration
	requests  int64
	warmup    time.Duration
	mode      mode
	readRatio float64
	preload   int
	valueSize int
	objects   int
	keys      int
	txKeys    int
	namespace string
	token     string
	timeout   time.Duration
	json      bool
	stale     bool // sql-select: ?consistency=stale
	// httpClient is the -http-client: httpClientFast or httpClientNet.
	httpClient string
	// alarms mode
	alarms      int
	webhookAddr string
	webhookURL  string
	spread      time.Duration
	lead        time.Duration
	wait        time.Duration
}

var errHelp = errors.New("help requested")

// The -http-client values.
const (
	httpClientFast = "fast" // valyala/fasthttp, fasthttp.go
	httpClientNet  = "net"  // net/http's client
)

const usageHead = `Usage: bench [flags]

Drives load at a Cairn cluster through its HTTP API and reports throughput,
latency percentiles (p50 p90 p99 p99.9 max) and errors by status and code.
Progress goes to stderr once a second, the summary to stdout.

Modes (-mode):
  write       PUT a random -value-size value to a random key of a random object
  read        linearizable GET of keys written by a preload phase (-preload keys)
  stale-read  GET of preloaded keys with ?consistency=stale (any replica answers)
  mixed       read (as in read) with probability -read-ratio, otherwise write
  tx          POST .../tx putting -tx-keys keys of one random object atomically
  incr        POST .../tx incrementing the counter "n" of a random object by 1
  alarms      measure alarm delivery: run a webhook receiver on -webhook-addr,
              point the namespace's alarmWebhook at it, set -alarms alarms
              on distinct objects due evenly over -spread starting -lead
              from now, wait for them (at most -wait after the last is due)
              and report delivered, missing, duplicates, early deliveries
              and lateness (receive time - scheduledTime) p50/p90/p99/max
  sql-insert  POST .../sql: a single-row INSERT of a -value-size blob into a
              table created in each of -objects objects first (for the SQL
              modes -objects defaults to 1: one object's database)
  sql-select  POST .../sql: SELECT by primary key of one of -preload rows
              inserted first, spread over -objects; linearizable, or from
              any replica with -stale

Except in alarms mode, the run lasts -duration, or -requests measured
requests, whichever comes first; -requests alone (with -duration left at its
default) has no time limit.
Requests go over fasthttp's client, with a keep-alive connection pool per
endpoint, which costs the load generator less CPU than net/http's client
does (-http-client fast); -http-client net uses net/http instead.
Each client keeps one request in flight. After a request that got no HTTP
answer (connection refused, timeout) a client pauses 10ms, doubling to 500ms
while such errors go on, so a dead endpoint does not become a busy loop.

Flags:
`

const usageTail = `
Examples:
  bench -endpoints http://127.0.0.1:8080 -mode write -duration 30s
  bench -endpoints http://n1:8080,http://n2:8080,http://n3:8080 -mode mixed -read-ratio 0.9 -json
  bench -endpoints http://n1:8080,http://n2:8080 -mode alarms -alarms 100000 -spread 1s -lead 20s

Exit status: 0 ran (even with errors), 1 the target was unreachable for every
request, 2 bad flags. In alarms mode, 1 also when setting the alarms took
longer than -lead, or an alarm was missing or delivered early.
`

var namespaceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// parseFlags reads args; getenv supplies CAIRN_TOKEN. Help goes to out.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoints := fs.String("endpoints", "http://127.0.0.1:8080", "comma-separated base URLs of nodes; client i uses endpoint i mod n")
	fs.IntVar(&c.clients, "clients", 64, "concurrent workers, each with one request in flight")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to measure, after the warm-up")
	fs.Int64Var(&c.requests, "requests", 0, "stop after this many measured requests (0: no limit)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "run this long before measuring; these requests are not counted")
	modeFlag := fs.String("mode", "write", "write, read, stale-read, mixed, tx or incr")
	fs.Float64Var(&c.readRatio, "read-ratio", 0.9, "mixed: fraction of requests that are reads, 0..1")
	fs.IntVar(&c.preload, "preload", 1000, "read, stale-read, mixed: distinct keys written before the run, for the reads")
	fs.IntVar(&c.valueSize, "value-size", 256, "bytes in each written value")
	fs.IntVar(&c.objects, "objects", 10000, "distinct objects, each request picks one uniformly at random")
	fs.IntVar(&c.keys, "keys", 10, "distinct keys per object")
	fs.IntVar(&c.txKeys, "tx-keys", 4, "tx: keys each transaction puts (at most -keys and 128)")
	fs.StringVar(&c.namespace, "namespace", "bench", "namespace of the objects")
	fs.StringVar(&c.token, "token", "", "bearer token (default: $CAIRN_TOKEN)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-request timeout, from connecting to the answer's last byte")
	fs.BoolVar(&c.json, "json", false, "print the summary as one JSON object")
	fs.BoolVar(&c.stale, "stale", false, "sql-select: read with ?consistency=stale (any replica answers)")
	fs.StringVar(&c.httpClient, "http-client", httpClientFast, "HTTP client: fast (valyala/fasthttp) or net (net/http)")
	fs.IntVar(&c.alarms, "alarms", 10000, "alarms: how many alarms to set, each on its own object")
	fs.StringVar(&c.webhookAddr, "webhook-addr", "127.0.0.1:9099", "alarms: address the webhook receiver listens on")
	fs.StringVar(&c.webhookURL, "webhook-url", "", "alarms: the alarmWebhook URL the nodes call (default: http://<webhook-addr>/alarm)")
	fs.DurationVar(&c.spread, "spread", time.Second, "alarms: the scheduled times spread evenly over this window")
	fs.DurationVar(&c.lead, "lead", 20*time.Second, "alarms: the window starts this long after the run starts; every alarm must be set by then")
	fs.DurationVar(&c.wait, "wait", 60*time.Second, "alarms: give up waiting for deliveries this long after the last alarm is due")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, usageHead)
			fs.SetOutput(out)
			fs.PrintDefaults()
			fmt.Fprint(out, usageTail)
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.token == "" && !set["token"] {
		c.token = getenv("CAIRN_TOKEN")
	}
	// -requests alone means "this many requests", not "this many, or 10s".
	if c.requests > 0 && !set["duration"] {
		c.duration = 0
	}
	c.mode = mode(*modeFlag)
	if isSQLMode(c.mode) && !set["objects"] {
		c.objects = 1
	}

	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	badEndpoint := false
	for _, e := range strings.Split(*endpoints, ",") {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("-endpoints: %q is not an http:// or https:// base URL", e)
			badEndpoint = true
			continue
		}
		c.endpoints = append(c.endpoints, e)
	}
	if len(c.endpoints) == 0 && !badEndpoint {
		bad("-endpoints: need at least one base URL")
	}
	validMode := false
	for _, m := range modes {
		validMode = validMode || c.mode == m
	}
	if !validMode {
		bad("-mode %q: must be one of write, read, stale-read, mixed, tx, incr, alarms, sql-insert, sql-select", c.mode)
	}
	if c.clients < 1 || c.clients > 100_000 {
		bad("-clients must be between 1 and 100000, got %d", c.clients)
	}
	if c.duration < 0 || c.requests < 0 || c.warmup < 0 {
		bad("-duration, -requests and -warmup must not be negative")
	} else if c.duration == 0 && c.requests == 0 && c.mode != modeAlarms {
		bad("-duration and -requests are both 0: the run would never stop")
	}
	if c.httpClient != httpClientFast && c.httpClient != httpClientNet {
		bad("-http-client %q: must be fast or net", c.httpClient)
	}
	if !httpguts.ValidHeaderFieldValue(c.token) {
		bad("-token (or $CAIRN_TOKEN) holds control characters: it cannot go in a header")
	}
	if c.timeout <= 0 {
		bad("-timeout must be positive, got %s", c.timeout)
	}
	if math.IsNaN(c.readRatio) || c.readRatio < 0 || c.readRatio > 1 {
		bad("-read-ratio must be between 0 and 1, got %g", c.readRatio)
	}
	if c.valueSize < 0 || c.valueSize > 2<<20 {
		bad("-value-size must be between 0 and 2097152 (2 MiB), got %d", c.valueSize)
	}
	if c.objects < 1 || c.objects > 1<<31 {
		bad("-objects must be between 1 and 2^31, got %d", c.objects)
	}
	if c.keys < 1 || c.keys > 1<<20 {
		bad("-keys must be between 1 and 2^20, got %d", c.keys)
	}
	if c.mode == modeTx && (c.txKeys < 1 || c.txKeys > 128 || c.txKeys > c.keys) {
		bad("-tx-keys must be between 1 and min(128, -keys=%d), got %d", c.keys, c.txKeys)
	}
	needsPreload := c.mode == modeRead || c.mode == modeStaleRead || c.mode == modeSQLSelect || (c.mode == modeMixed && c.readRatio > 0)
	if needsPreload && (c.preload < 1 || c.preload > 10_000_000) {
		bad("-preload must be between 1 and 10000000 for -mode %s, got %d", c.mode, c.preload)
	}
	if c.mode == modeAlarms {
		if c.alarms < 1 || c.alarms > 10_000_000 {
			bad("-alarms must be between 1 and 10000000, got %d", c.alarms)
		}
		if c.spread < 0 || c.lead <= 0 || c.wait <= 0 {
			bad("-spread must not be negative, -lead and -wait must be positive")
		}
		if _, _, err := net.SplitHostPort(c.webhookAddr); err != nil {
			bad("-webhook-addr %q: want host:port", c.webhookAddr)
		}
		if c.webhookURL != "" {
			if u, err := url.Parse(c.webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("-webhook-url %q: want an http:// or https:// URL", c.webhookURL)
			}
		}
	}
	if isSQLMode(c.mode) && c.valueSize > maxSQLValueSize {
		bad("-value-size must be at most %d for -mode %s (SQLite's row limit), got %d", maxSQLValueSize, c.mode, c.valueSize)
	}
	if !namespaceRE.MatchString(c.namespace) {
		bad("-namespace %q: must match [a-z0-9][a-z0-9_-]{0,62}", c.namespace)
	}
	return c, errors.Join(errs...)
}

// run is the whole command: flags, the run, the summary. It returns the
// exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", strings.ReplaceAll(err.Error(), "\n", "\nbench: "))
		fmt.Fprintln(stderr, "bench: run with -h for help")
		return 2
	}
	if cfg.mode == modeAlarms {
		return runAlarms(ctx, cfg, stdout, stderr)
	}
	if isSQLMode(cfg.mode) {
		return runSQL(ctx, cfg, stdout, stderr)
	}
	b := newBench(cfg, stderr)
	sum, runErr := b.run(ctx)
	if cfg.json {
		if err := writeJSON(stdout, sum); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	} else {
		sum.writeText(stdout)
	}
	if b.doer.attempts.Load() > 0 && b.doer.responses.Load() == 0 {
		fmt.Fprintf(stderr, "bench: the target was unreachable for every request (%s)\n",
			errorsLine(mergeMaps(sum.ErrorsByClass, sum.PreloadErrors)))
		return 1
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "bench:", runErr)
		return 1
	}
	return 0
}
