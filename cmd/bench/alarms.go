package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The alarms mode measures alarm delivery: it runs a webhook receiver,
// points a namespace's alarmWebhook at it, sets -alarms alarms on distinct
// objects with scheduled times spread evenly over -spread starting -lead
// from now, and waits until every one was delivered (or -wait after the
// window's end). It reports lateness (receive time − scheduledTime, by the
// one clock of this machine: run it on a node's machine, or keep clocks in
// sync), deliveries before the scheduled time (which must never happen),
// alarms never delivered, and duplicate deliveries.

// dupGrace is how long the receiver keeps listening after the last alarm
// arrived, to count duplicates that come late.
const dupGrace = time.Second

// alarmPlan is what a run sets: alarm i is on object "alarm-<run>-<i>" at
// windowStart + i·spread/n.
type alarmPlan struct {
	runID       string
	n           int
	windowStart int64 // ms since the epoch
	spreadMs    int64
}

func (p *alarmPlan) object(i int) string { return "alarm-" + p.runID + "-" + strconv.Itoa(i) }

func (p *alarmPlan) scheduled(i int) int64 {
	return p.windowStart + int64(i)*p.spreadMs/int64(p.n)
}

// lastScheduled is the latest scheduled time of the window.
func (p *alarmPlan) lastScheduled() int64 { return p.scheduled(p.n - 1) }

// index returns the alarm number of an object of this run.
func (p *alarmPlan) index(obj string) (int, bool) {
	rest, ok := strings.CutPrefix(obj, "alarm-"+p.runID+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= p.n || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

// receiver is the webhook: it answers 200 at once and records, per alarm,
// when the first delivery arrived and how many arrived.
type receiver struct {
	plan      *alarmPlan
	namespace string
	now       func() time.Time

	first []atomic.Int64 // unix ns of the first delivery; 0: none yet
	calls []atomic.Int32
	// unique counts alarms with at least one delivery; lastFirst is the
	// unix ns of the latest first delivery.
	unique    atomic.Int64
	lastFirst atomic.Int64

	total     atomic.Int64 // every call
	early     atomic.Int64 // calls received before their scheduledTime
	retries   atomic.Int64 // calls with isRetry
	badKey    atomic.Int64 // calls whose Idempotency-Key is not objectId:scheduledTime
	wrongTime atomic.Int64 // calls whose scheduledTime is not the one set
	foreign   atomic.Int64 // calls for objects this run did not set
	malformed atomic.Int64 // calls whose body is not the webhook's JSON
}

func newReceiver(plan *alarmPlan, namespace string) *receiver {
	return &receiver{plan: plan, namespace: namespace, now: time.Now,
		first: make([]atomic.Int64, plan.n), calls: make([]atomic.Int32, plan.n)}
}

// webhookCall is the body of an alarm delivery (API.md, "Alarms").
type webhookCall struct {
	Namespace     string `json:"namespace"`
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	IsRetry       bool   `json:"isRetry"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := r.now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		body = nil
	}
	r.receive(body, req.Header.Get("Idempotency-Key"), at)
	w.WriteHeader(http.StatusOK)
}

// serveFast is ServeHTTP for fasthttp's server.
func (r *receiver) serveFast(ctx *fasthttp.RequestCtx) {
	at := r.now()
	r.receive(ctx.PostBody(), string(ctx.Request.Header.Peek("Idempotency-Key")), at)
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// receive counts one call with body and Idempotency-Key that arrived at at.
func (r *receiver) receive(body []byte, key string, at time.Time) {
	var c webhookCall
	if body == nil || json.Unmarshal(body, &c) != nil {
		r.total.Add(1)
		r.malformed.Add(1)
		return
	}
	r.record(c, key, at)
}

// record counts one delivery of c that arrived at at.
func (r *receiver) record(c webhookCall, key string, at time.Time) {
	r.total.Add(1)
	i, ok := r.plan.index(c.Object)
	if !ok || c.Namespace != r.namespace {
		r.foreign.Add(1)
		return
	}
	if at.Before(time.UnixMilli(c.ScheduledTime)) {
		r.early.Add(1)
	}
	if c.IsRetry {
		r.retries.Add(1)
	}
	if c.ScheduledTime != r.plan.scheduled(i) {
		r.wrongTime.Add(1)
	}
	sum := sha256.Sum256([]byte(r.namespace + "\x00" + c.Object))
	if key != hex.EncodeToString(sum[:])+":"+strconv.FormatInt(c.ScheduledTime, 10) {
		r.badKey.Add(1)
	}
	r.calls[i].Add(1)
	ns := at.UnixNano()
	if r.first[i].CompareAndSwap(0, ns) {
		r.unique.Add(1)
		for {
			last := r.lastFirst.Load()
			if ns <= last || r.lastFirst.CompareAndSwap(last, ns) {
				break
			}
		}
	}
}

// alarmSummary is the report of an alarms run.
type alarmSummary struct {
	Mode          string   `json:"mode"`
	Endpoints     []string `json:"endpoints"`
	Clients       int      `json:"clients"`
	Namespace     string   `json:"namespace"`
	RunID         string   `json:"runId"`
	Webhook       string   `json:"webhook"`
	LeadSeconds   float64  `json:"leadSeconds"`
	SpreadSeconds float64  `json:"spreadSeconds"`
	// Alarms is how many were to be set; Set how many were acknowledged.
	Alarms           int              `json:"alarms"`
	Set              int64            `json:"set"`
	SetErrors        int64            `json:"setErrors"`
	SetErrorsByClass map[string]int64 `json:"setErrorsByClass,omitempty"`
	SetSeconds       float64          `json:"setSeconds"`
	SetPerSec        float64          `json:"setPerSec"`
	// Delivered counts the acknowledged alarms delivered at least once;
	// Missing those never delivered. DeliveredUnacked counts alarms whose
	// set failed or timed out but that were delivered anyway.
	Delivered        int64 `json:"delivered"`
	Missing          int64 `json:"missing"`
	DeliveredUnacked int64 `json:"deliveredUnacked"`
	// Calls is every webhook call; Duplicates the calls beyond the first
	// for an alarm; Early the calls received before their scheduledTime.
	Calls      int64 `json:"calls"`
	Duplicates int64 `json:"duplicates"`
	Early      int64 `json:"early"`
	Retries    int64 `json:"retries"`
	BadKeys    int64 `json:"badIdempotencyKeys"`
	WrongTimes int64 `json:"wrongScheduledTimes"`
	Foreign    int64 `json:"foreignCalls"`
	Malformed  int64 `json:"malformedCalls"`
	// Lateness is receive time − scheduledTime of each alarm's first
	// delivery, in milliseconds.
	Lateness latencySummary `json:"latenessMs"`
	// LastDeliveryAfterWindowMs is the time from the window's last
	// scheduled time to the last first delivery.
	LastDeliveryAfterWindowMs float64 `json:"lastDeliveryAfterWindowMs"`
	TimedOut                  bool    `json:"timedOut"`
	Interrupted               bool    `json:"interrupted"`
	Aborted                   string  `json:"aborted,omitempty"`
}

// finish fills in the delivery figures from what r received, given which
// alarms were acknowledged as set.
func (s *alarmSummary) finish(r *receiver, set []bool) {
	var lateness []time.Duration
	s.Set, s.Delivered, s.Missing, s.DeliveredUnacked, s.Duplicates = 0, 0, 0, 0, 0
	for i := range r.plan.n {
		first := r.first[i].Load()
		if n := r.calls[i].Load(); n > 1 {
			s.Duplicates += int64(n - 1)
		}
		switch {
		case set[i] && first != 0:
			s.Set++
			s.Delivered++
			lateness = append(lateness, time.Duration(first-r.plan.scheduled(i)*int64(time.Millisecond)))
		case set[i]:
			s.Set++
			s.Missing++
		case first != 0:
			s.DeliveredUnacked++
		}
	}
	s.Lateness = summarize(lateness)
	s.Calls = r.total.Load()
	s.Early = r.early.Load()
	s.Retries = r.retries.Load()
	s.BadKeys = r.badKey.Load()
	s.WrongTimes = r.wrongTime.Load()
	s.Foreign = r.foreign.Load()
	s.Malformed = r.malformed.Load()
	if last := r.lastFirst.Load(); last != 0 && s.Delivered > 0 {
		s.LastDeliveryAfterWindowMs = ms(time.Duration(last - r.plan.lastScheduled()*int64(time.Millisecond)))
	}
}

// failed says why the run does not hold up alarm delivery's promises, or
// "" when every acknowledged alarm was delivered once or more, none early.
func (s *alarmSummary) failed() string {
	var why []string
	if s.Aborted != "" {
		why = append(why, "aborted")
	}
	if s.Missing > 0 {
		why = append(why, fmt.Sprintf("%d alarms never delivered", s.Missing))
	}
	if s.Early > 0 {
		why = append(why, fmt.Sprintf("%d deliveries before their scheduled time", s.Early))
	}
	if s.BadKeys > 0 || s.WrongTimes > 0 || s.Malformed > 0 {
		why = append(why, fmt.Sprintf("%d bad Idempotency-Keys, %d wrong scheduled times, %d malformed calls", s.BadKeys, s.WrongTimes, s.Malformed))
	}
	return strings.Join(why, "; ")
}

func (s *alarmSummary) writeText(w io.Writer) {
	plural := "s"
	if len(s.Endpoints) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "cairn bench: mode alarms, %d clients, %d endpoint%s, namespace %s, run %s, webhook %s\n",
		s.Clients, len(s.Endpoints), plural, s.Namespace, s.RunID, s.Webhook)
	fmt.Fprintf(w, "set         %d of %d alarms in %.2fs (%.0f/s; lead %gs, spread %gs), %d errors\n",
		s.Set, s.Alarms, s.SetSeconds, s.SetPerSec, s.LeadSeconds, s.SpreadSeconds, s.SetErrors)
	if s.Aborted != "" {
		fmt.Fprintf(w, "aborted     %s\n", s.Aborted)
	}
	note := ""
	switch {
	case s.Aborted != "":
		note = " (of the alarms set before the abort; their lateness is not meaningful)"
	case s.Interrupted:
		note = " (interrupted)"
	case s.TimedOut:
		note = " (gave up waiting)"
	}
	fmt.Fprintf(w, "delivered   %d unique%s; missing %d, duplicates %d, early %d, retries %d\n",
		s.Delivered, note, s.Missing, s.Duplicates, s.Early, s.Retries)
	if s.DeliveredUnacked+s.BadKeys+s.WrongTimes+s.Foreign+s.Malformed > 0 {
		fmt.Fprintf(w, "odd calls   %d delivered without an acknowledged set, %d bad Idempotency-Keys, %d wrong scheduled times, %d of other runs, %d malformed\n",
			s.DeliveredUnacked, s.BadKeys, s.WrongTimes, s.Foreign, s.Malformed)
	}
	l := s.Lateness
	fmt.Fprintf(w, "lateness    n=%d p50 %s  p90 %s  p99 %s  max %s  mean %s   (receive time - scheduledTime)\n",
		l.Count, fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.Max), fmtMs(l.Mean))
	if s.Delivered > 0 {
		fmt.Fprintf(w, "last        delivered %s after the window's last scheduled time\n", fmtMs(s.LastDeliveryAfterWindowMs))
	}
	writeErrorTable(w, "set errors", s.SetErrorsByClass)
}

// alarmBench is one alarms run.
type alarmBench struct {
	cfg    config
	doer   *doer
	stderr io.Writer
	plan   *alarmPlan
	recv   *receiver
}

// runAlarms is the alarms mode, start to end; it returns the exit status.
func runAlarms(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	var idb [4]byte
	rand.Read(idb[:])
	a := &alarmBench{
		cfg:    cfg,
		doer:   newDoer(cfg),
		stderr: stderr,
		plan:   &alarmPlan{runID: hex.EncodeToString(idb[:]), n: cfg.alarms, spreadMs: cfg.spread.Milliseconds()},
	}
	defer a.doer.closeIdle()
	a.recv = newReceiver(a.plan, cfg.namespace)
	sum, err := a.run(ctx)
	if sum != nil {
		if cfg.json {
			if err := json.NewEncoder(stdout).Encode(sum); err != nil {
				fmt.Fprintln(stderr, "bench:", err)
			}
		} else {
			sum.writeText(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if why := sum.failed(); why != "" && !sum.Interrupted {
		fmt.Fprintln(stderr, "bench: alarm delivery failed its promises:", why)
		return 1
	}
	return 0
}

// run starts the receiver, configures the namespace, sets the alarms and
// waits for them. The summary is nil when nothing could start.
func (a *alarmBench) run(ctx context.Context) (*alarmSummary, error) {
	ln, err := net.Listen("tcp", a.cfg.webhookAddr)
	if err != nil {
		return nil, fmt.Errorf("the webhook receiver cannot listen on -webhook-addr %s: %w", a.cfg.webhookAddr, err)
	}
	stop := a.serve(ln)
	defer stop()
	hook := a.cfg.webhookURL
	if hook == "" {
		hook = "http://" + reachable(ln.Addr().String()) + "/alarm"
	}
	sum := &alarmSummary{
		Mode: string(modeAlarms), Endpoints: a.cfg.endpoints, Clients: a.cfg.clients, Namespace: a.cfg.namespace,
		RunID: a.plan.runID, Webhook: hook, Alarms: a.plan.n,
		LeadSeconds: a.cfg.lead.Seconds(), SpreadSeconds: a.cfg.spread.Seconds(),
	}
	if err := a.configure(ctx, hook); err != nil {
		return nil, err
	}

	setStart := time.Now()
	windowStart := setStart.Add(a.cfg.lead)
	a.plan.windowStart = windowStart.UnixMilli()
	set, errs := a.setAll(ctx, windowStart)
	setTook := time.Since(setStart)
	sum.SetSeconds = setTook.Seconds()
	for _, ok := range set {
		if ok {
			sum.Set++
		}
	}
	sum.SetPerSec = float64(sum.Set) / setTook.Seconds()
	for _, n := range errs {
		sum.SetErrors += n
	}
	if len(errs) > 0 {
		sum.SetErrorsByClass = errs
	}
	fmt.Fprintf(a.stderr, "set: %d of %d alarms in %.2fs (%.0f/s), %d errors\n", sum.Set, a.plan.n, sum.SetSeconds, sum.SetPerSec, sum.SetErrors)
	if ctx.Err() != nil {
		sum.Interrupted = true
		sum.finish(a.recv, set)
		return sum, nil
	}
	if time.Now().After(windowStart) {
		sum.Aborted = fmt.Sprintf("setting the alarms took %.2fs (still going at the deadline), longer than -lead %v: the first ones fell due "+
			"before all were set, so lateness would measure the setup; run again with a larger -lead (at %.0f alarms/s, about %.0fs) or fewer -alarms",
			setTook.Seconds(), a.cfg.lead, sum.SetPerSec, 1.5*float64(a.plan.n)/max(sum.SetPerSec, 1))
		fmt.Fprintf(a.stderr, "bench: %s\nbench: still receiving the %d alarms already set, so that they do not retry against a closed webhook (interrupt to stop now)\n",
			sum.Aborted, sum.Set)
		if sum.Set > 0 {
			sum.TimedOut = !a.wait(ctx, sum.Set, set)
		}
		sum.Interrupted = ctx.Err() != nil
		sum.finish(a.recv, set)
		return sum, errors.New("aborted: -lead too short for setting every alarm")
	}
	if sum.Set == 0 {
		sum.finish(a.recv, set)
		return sum, fmt.Errorf("no alarm could be set (%s)", errorsLine(errs))
	}
	sum.TimedOut = !a.wait(ctx, sum.Set, set)
	sum.Interrupted = ctx.Err() != nil
	sum.finish(a.recv, set)
	return sum, nil
}

// serve runs the receiver on ln until stop is called. With -http-client
// fast (the default) it is served by fasthttp's server: the receiver runs on
// the machine under test, and fasthttp's server takes about half the CPU
// per call that net/http's does, which is left to the nodes being measured.
// Either keeps the nodes' connections alive for longer than they keep them
// idle (90s), so that no delivery meets a connection the receiver closed.
func (a *alarmBench) serve(ln net.Listener) (stop func()) {
	// Deliveries in flight get a moment to finish.
	const grace = time.Second
	if a.cfg.httpClient == httpClientNet {
		srv := &http.Server{Handler: a.recv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		go srv.Serve(ln)
		return func() {
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			srv.Shutdown(sctx)
			srv.Close()
		}
	}
	srv := &fasthttp.Server{
		Handler:                       a.recv.serveFast,
		Name:                          "cairn-bench",
		IdleTimeout:                   5 * time.Minute,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
	}
	go srv.Serve(ln)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		srv.ShutdownWithContext(sctx)
	}
}

// reachable turns a listen address into one to give others: an unspecified
// host (":9099", "0.0.0.0:9099") becomes loopback.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// configure points the namespace's alarmWebhook at the receiver.
func (a *alarmBench) configure(ctx context.Context, hook string) error {
	body, _ := json.Marshal(map[string]string{"alarmWebhook": hook})
	rq := request{kind: kindWrite, method: http.MethodPut, path: "/v1/ns/" + url.PathEscape(a.cfg.namespace),
		contentType: "application/json", body: body}
	var res result
	for attempt := range 20 {
		res = a.doer.do(ctx, a.cfg.endpoints[attempt%len(a.cfg.endpoints)], rq)
		if res.ok() || res.canceled || (res.status != 0 && res.status != http.StatusServiceUnavailable) {
			break
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
	switch {
	case res.canceled:
		return ctx.Err()
	case !res.ok():
		return fmt.Errorf("configuring namespace %s failed: %s", a.cfg.namespace, res.class)
	}
	return nil
}

// setAll sets every alarm of the plan with -clients workers and returns
// which were acknowledged, and the errors by class. It stops at deadline:
// setting after the first alarm is due would measure the setup.
func (a *alarmBench) setAll(ctx context.Context, deadline time.Time) ([]bool, map[string]int64) {
	set := make([]bool, a.plan.n)
	var next, done, failed atomic.Int64
	workers := min(a.cfg.clients, a.plan.n)
	errs := make([]map[string]int64, workers)
	start := time.Now()
	stopProgress := a.progress(func(now time.Time) string {
		return fmt.Sprintf("set     %6.1fs  alarms %10d  errors %d", now.Sub(start).Seconds(), done.Load(), failed.Load())
	})
	var wg sync.WaitGroup
	for wi := range workers {
		errs[wi] = map[string]int64{}
		wg.Go(func() {
			base := a.cfg.endpoints[wi%len(a.cfg.endpoints)]
			var bo backoff
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= a.plan.n {
					return
				}
				rq := request{kind: kindWrite, method: http.MethodPut,
					path:        "/v1/ns/" + url.PathEscape(a.cfg.namespace) + "/objects/" + url.PathEscape(a.plan.object(i)) + "/alarm",
					contentType: "application/json", body: []byte(`{"scheduledTime":` + strconv.FormatInt(a.plan.scheduled(i), 10) + `}`)}
				// Setting an alarm again to the same time is harmless, so
				// answers that leave the outcome open are retried.
				var res result
				for attempt := 0; attempt < 5; attempt++ {
					res = a.doer.do(ctx, base, rq)
					if res.ok() || res.canceled || !retryable(res) || !time.Now().Before(deadline) {
						break
					}
					bo.after(res, ctx.Done(), nil) // pauses after no answer
					if res.status != 0 {
						sleepCtx(ctx, 50*time.Millisecond)
					}
				}
				if res.canceled {
					return
				}
				if res.ok() {
					set[i] = true
					done.Add(1)
				} else {
					errs[wi][res.class]++
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	stopProgress()
	all := map[string]int64{}
	for _, m := range errs {
		for c, n := range m {
			all[c] += n
		}
	}
	return set, all
}

// retryable reports whether a failed set may be repeated: no answer, or an
// answer that says "later" or "maybe".
func retryable(r result) bool {
	switch r.status {
	case 0, http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// wait waits until every acknowledged alarm was delivered (then dupGrace
// more, for late duplicates), until -wait after the window's last
// scheduled time, or until ctx ends. It reports whether all arrived.
func (a *alarmBench) wait(ctx context.Context, want int64, set []bool) bool {
	deadline := time.UnixMilli(a.plan.lastScheduled()).Add(a.cfg.wait)
	windowEnd := time.UnixMilli(a.plan.lastScheduled())
	stopProgress := a.progress(func(now time.Time) string {
		rel := now.Sub(windowEnd).Seconds()
		return fmt.Sprintf("wait    %+6.1fs  delivered %10d of %d  calls %d", rel, a.recv.unique.Load(), want, a.recv.total.Load())
	})
	defer stopProgress()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if a.deliveredSet(set, want) >= want {
			sleepCtx(ctx, dupGrace)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case now := <-tick.C:
			if now.After(deadline) {
				return false
			}
		}
	}
}

// deliveredSet counts the acknowledged alarms delivered so far. The
// receiver's count of alarms delivered (acknowledged or not) bounds it, so
// the scan runs only once that count is high enough.
func (a *alarmBench) deliveredSet(set []bool, want int64) int64 {
	if u := a.recv.unique.Load(); u < want {
		return u
	}
	var n int64
	for i, ok := range set {
		if ok && a.recv.first[i].Load() != 0 {
			n++
		}
	}
	return n
}

// progress prints line(now) to stderr every second until stop is called.
func (a *alarmBench) progress(line func(now time.Time) string) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				fmt.Fprintln(a.stderr, line(now))
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
