package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The alarm workload: clients set alarms a few seconds ahead, mostly on
// objects of their own that never had one, sometimes again on the object
// they set last (which replaces its alarm), while a webhook receiver in
// the test process records every delivery. The verdicts: every alarm whose
// set was acknowledged and not replaced is delivered at least once, no
// delivery comes before its scheduled time, and every delivery is of an
// alarm that was set, with the body and Idempotency-Key of API.md.

// AlarmOp is one recorded alarm set.
type AlarmOp struct {
	ID            int    `json:"id"`
	Client        int    `json:"client"`
	Object        string `json:"object"`
	ScheduledTime int64  `json:"scheduledTime"` // ms since the epoch
	Outcome       string `json:"outcome"`
	Call          int64  `json:"call"` // the scenario recorder's clock
	Return        int64  `json:"return"`
	Refused       bool   `json:"refused,omitempty"`
	Endpoint      string `json:"endpoint,omitempty"`
	Status        int    `json:"status,omitempty"`
	Code          string `json:"code,omitempty"`
	Err           string `json:"error,omitempty"`
}

// AlarmHistory collects the alarm sets. Safe for concurrent use.
type AlarmHistory struct {
	rec *Recorder
	opLog[AlarmOp]
}

// NewAlarmHistory starts an alarm history on rec's clock.
func NewAlarmHistory(rec *Recorder) *AlarmHistory { return &AlarmHistory{rec: rec} }

func (h *AlarmHistory) add(op AlarmOp) { h.append(func(id int) AlarmOp { op.ID = id; return op }) }

// Delivery is one webhook call the receiver got.
type Delivery struct {
	Namespace      string `json:"namespace"`
	Object         string `json:"object"`
	ObjectID       string `json:"objectId"`
	ScheduledTime  int64  `json:"scheduledTime"`
	RetryCount     int    `json:"retryCount"`
	IsRetry        bool   `json:"isRetry"`
	IdempotencyKey string `json:"idempotencyKey"`
	// Received is when the receiver read the request's headers, in
	// nanoseconds since the epoch (this host's clock, which the nodes
	// share: processes here, containers on this kernel).
	Received int64  `json:"received"`
	From     string `json:"from"`
	BodyErr  string `json:"bodyError,omitempty"`
}

// AlarmReceiver is the alarm webhook: an HTTP server in the test process
// that answers 200 to every POST and records it.
type AlarmReceiver struct {
	URL string // what the namespace's alarmWebhook is set to

	srv *http.Server
	ln  net.Listener

	mu         sync.Mutex
	deliveries []Delivery
}

// StartAlarmReceiver listens on listen (host:port; port 0 picks one) and
// serves the webhook at http://<advertise>:<port>/alarm, advertise being
// the address the nodes reach this process at. It is closed in the test's
// cleanup.
func StartAlarmReceiver(cleanup func(func()), listen, advertise string) (*AlarmReceiver, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &AlarmReceiver{ln: ln}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	r.URL = "http://" + net.JoinHostPort(advertise, port) + "/alarm"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	cleanup(func() { r.Close() })
	return r, nil
}

// ServeHTTP records one delivery and answers 200.
func (r *AlarmReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	received := time.Now().UnixNano()
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	d := Delivery{Received: received, From: req.RemoteAddr, IdempotencyKey: req.Header.Get("Idempotency-Key")}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err == nil {
		// Fields beyond the contract's are an extension, not an error.
		err = json.Unmarshal(body, &d)
		d.Received, d.From, d.IdempotencyKey = received, req.RemoteAddr, req.Header.Get("Idempotency-Key")
	}
	if err != nil {
		d.BodyErr = fmt.Sprintf("%v: %q", err, body)
	}
	r.mu.Lock()
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// Deliveries returns a copy of what was received so far.
func (r *AlarmReceiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// Close stops the receiver.
func (r *AlarmReceiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// AlarmTrafficConfig configures the alarm workload. Zero means default.
type AlarmTrafficConfig struct {
	Clients      int           // default 4
	Duration     time.Duration // default 30 s
	MaxOps       int           // default 2000
	OpsPerSecond float64       // per client; default 4
	// Alarms are set for a time in [MinAhead, MaxAhead] from now; default
	// 0.5 s … 5 s.
	MinAhead, MaxAhead time.Duration
	// OverwritePercent of the sets replace the alarm of the object the
	// client set last (default 20); the others go to a new object.
	OverwritePercent int
	Seed             int64
	Client           ClientConfig // Namespace defaults to "e2e-alarms"
}

func (c AlarmTrafficConfig) withDefaults() AlarmTrafficConfig {
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxOps == 0 {
		c.MaxOps = 2000
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 4
	}
	if c.MaxAhead == 0 {
		c.MinAhead, c.MaxAhead = 500*time.Millisecond, 5*time.Second
	}
	if c.OverwritePercent == 0 {
		c.OverwritePercent = 20
	}
	if c.Client.Namespace == "" {
		c.Client.Namespace = "e2e-alarms"
	}
	return c
}

// ConfigureWebhook points the workload's namespace at webhook with
// PUT /v1/ns/{ns}, retrying until a node answers 200 or ctx ends.
func ConfigureWebhook(ctx context.Context, endpoints []string, cfg AlarmTrafficConfig, webhook string) error {
	cfg = cfg.withDefaults()
	c := NewClient(0, endpoints, NewRecorder(), cfg.Client)
	defer c.Close()
	body, _ := json.Marshal(map[string]any{"alarmWebhook": webhook})
	for attempt := 0; ; attempt++ {
		a := c.do(endpoints[attempt%len(endpoints)], http.MethodPut, "/v1/ns/"+cfg.Client.Namespace, body, "application/json")
		if a.err == nil && a.status == http.StatusOK {
			return nil
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return fmt.Errorf("configuring the webhook of %s: %w (last answer %d %s %v)", cfg.Client.Namespace, ctx.Err(), a.status, a.code, a.err)
		}
	}
}

// setAlarm sends PUT …/alarm and records it.
func setAlarm(c *Client, h *AlarmHistory, obj string, at int64) string {
	call := h.rec.Now()
	body := []byte(`{"scheduledTime":` + strconv.FormatInt(at, 10) + `}`)
	path := "/v1/ns/" + c.cfg.Namespace + "/objects/" + url.PathEscape(obj) + "/alarm"
	a := c.do(c.endpoints[c.pref], http.MethodPut, path, body, "application/json")
	outcome, refused := writeOutcome(a)
	op := AlarmOp{Client: c.id, Object: obj, ScheduledTime: at, Outcome: outcome, Call: call, Return: h.rec.Now(),
		Refused: refused, Endpoint: a.endpoint, Status: a.status, Code: a.code}
	if a.err != nil {
		op.Err = a.err.Error()
	}
	h.add(op)
	c.answered(a)
	return outcome
}

// RunAlarmTraffic runs the alarm workload until ctx ends, the duration
// passes or MaxOps sets have started, and waits for every client's last
// set. ConfigureWebhook must have pointed the namespace at a receiver.
func RunAlarmTraffic(ctx context.Context, endpoints []string, h *AlarmHistory, cfg AlarmTrafficConfig) {
	cfg = cfg.withDefaults()
	l := load{cfg.Clients, cfg.Duration, cfg.MaxOps, cfg.OpsPerSecond}
	l.run(ctx, endpoints, h.rec, cfg.Client, func(i int, c *Client) func(seq int) {
		rng := rand.New(rand.NewSource(cfg.Seed + int64(i)*15485863))
		last, lastAt := "", int64(0)
		return func(seq int) {
			at := time.Now().Add(between(rng, cfg.MinAhead, cfg.MaxAhead)).UnixMilli()
			obj := fmt.Sprintf("alarm-c%d-%d", i, seq)
			if last != "" && rng.Intn(100) < cfg.OverwritePercent {
				obj = last
				if at == lastAt {
					at++ // a replacement is told apart by its time
				}
			}
			setAlarm(c, h, obj, at)
			last, lastAt = obj, at
		}
	})
}

// AlarmExpectation is what must be delivered for one object: at least one
// of Candidates. The object's last set that may have taken effect (ok or
// unknown) is the last candidate; the earlier ones are the sets from its
// last acknowledged one on, any of which may be what the object ends with
// when the later sets had no effect.
type AlarmExpectation struct {
	Object     string
	Candidates []int64
}

// ExpectedAlarms returns what must be delivered: one expectation per
// object with an acknowledged set. Objects whose sets all had an unknown
// outcome or were refused need nothing.
func ExpectedAlarms(ops []AlarmOp) []AlarmExpectation {
	byObj := map[string][]AlarmOp{}
	for _, op := range ops {
		if op.Outcome == OutcomeOK || op.Outcome == OutcomeUnknown {
			byObj[op.Object] = append(byObj[op.Object], op)
		}
	}
	var out []AlarmExpectation
	for obj, sets := range byObj {
		// One client owns an object and sets it one at a time: call order
		// is the order of the sets.
		sort.Slice(sets, func(i, j int) bool { return sets[i].Call < sets[j].Call })
		lastOK := -1
		for i, s := range sets {
			if s.Outcome == OutcomeOK {
				lastOK = i
			}
		}
		if lastOK < 0 {
			continue
		}
		e := AlarmExpectation{Object: obj}
		for _, s := range sets[lastOK:] {
			e.Candidates = append(e.Candidates, s.ScheduledTime)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out
}

// missingAlarms returns the expectations that no delivery meets.
func missingAlarms(exp []AlarmExpectation, ds []Delivery) []AlarmExpectation {
	got := map[string]map[int64]bool{}
	for _, d := range ds {
		if got[d.Object] == nil {
			got[d.Object] = map[int64]bool{}
		}
		got[d.Object][d.ScheduledTime] = true
	}
	var out []AlarmExpectation
	for _, e := range exp {
		if !slices.ContainsFunc(e.Candidates, func(t int64) bool { return got[e.Object][t] }) {
			out = append(out, e)
		}
	}
	return out
}

// WaitAlarms polls the receiver until every expected alarm has been
// delivered or timeout passes, and returns how long it waited.
func WaitAlarms(r *AlarmReceiver, exp []AlarmExpectation, timeout time.Duration) time.Duration {
	start := time.Now()
	for len(missingAlarms(exp, r.Deliveries())) > 0 && time.Since(start) < timeout {
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start)
}

// AlarmCounts tallies the alarm sets.
func AlarmCounts(ops []AlarmOp) Counts {
	var c Counts
	for _, op := range ops {
		c.add(op.Outcome, op.Refused)
	}
	return c
}

// CheckAlarmsDelivered checks that every expected alarm was delivered and
// reports the duplicates (deliveries of an alarm after its first:
// delivery is at least once) and retries.
func CheckAlarmsDelivered(ops []AlarmOp, ds []Delivery, waited time.Duration) Verdict {
	exp := ExpectedAlarms(ops)
	missing := missingAlarms(exp, ds)
	seen := map[string]int{}
	dups, retries := 0, 0
	most, mostOf := 0, ""
	for _, d := range ds {
		k := d.Object + "\x00" + strconv.FormatInt(d.ScheduledTime, 10)
		if seen[k] > 0 {
			dups++
		}
		seen[k]++
		if seen[k] > most {
			most, mostOf = seen[k], fmt.Sprintf("%s at %d", d.Object, d.ScheduledTime)
		}
		if d.IsRetry {
			retries++
		}
	}
	unknown, unknownDelivered := 0, 0
	for _, op := range ops {
		if op.Outcome == OutcomeUnknown {
			unknown++
			if seen[op.Object+"\x00"+strconv.FormatInt(op.ScheduledTime, 10)] > 0 {
				unknownDelivered++
			}
		}
	}
	stats := fmt.Sprintf("%d deliveries, %d duplicates, %d retries; %d of %d sets with an unknown outcome delivered; waited %v after traffic",
		len(ds), dups, retries, unknownDelivered, unknown, waited.Round(time.Millisecond))
	if most > 1 {
		stats += fmt.Sprintf("; most deliveries of one alarm: %d (%s)", most, mostOf)
	}
	if len(missing) > 0 {
		var p problems
		byObj := map[string][]AlarmOp{}
		for _, op := range ops {
			byObj[op.Object] = append(byObj[op.Object], op)
		}
		for _, e := range missing {
			var sets []string
			for _, op := range byObj[e.Object] {
				sets = append(sets, fmt.Sprintf("#%d %d %s via %s at %v", op.ID, op.ScheduledTime, op.Outcome, op.Endpoint, time.Duration(op.Call)))
			}
			p.addf("%s: none of %v delivered (sets: %s)", e.Object, e.Candidates, sets)
		}
		return Verdict{Name: "alarms-delivered", Detail: fmt.Sprintf("%d of %d acknowledged alarms never delivered: %s; %s", len(missing), len(exp), p.String(), stats)}
	}
	acked := 0
	for _, op := range ops {
		if op.Outcome == OutcomeOK {
			acked++
		}
	}
	return Verdict{Name: "alarms-delivered", OK: true, Detail: fmt.Sprintf("every object's last acknowledged alarm delivered (%d objects, %d acknowledged sets); %s", len(exp), acked, stats)}
}

// CheckAlarmsOnTime checks that no delivery came before its scheduled
// time, and reports how late they came (for information: lateness under
// faults is no failure).
func CheckAlarmsOnTime(ds []Delivery) Verdict {
	var p problems
	var late []time.Duration
	for _, d := range ds {
		early := d.ScheduledTime*int64(time.Millisecond) - d.Received
		if early > 0 {
			p.addf("%s delivered %v before its time %d (retry %d, from %s)", d.Object, time.Duration(early), d.ScheduledTime, d.RetryCount, d.From)
			continue
		}
		if d.RetryCount == 0 {
			late = append(late, time.Duration(-early))
		}
	}
	if p.n > 0 {
		return Verdict{Name: "alarms-on-time", Detail: fmt.Sprintf("%d of %d deliveries early: %s", p.n, len(ds), p.String())}
	}
	detail := fmt.Sprintf("none of %d deliveries before its scheduled time", len(ds))
	if len(late) > 0 {
		slices.Sort(late)
		detail += fmt.Sprintf(" (first attempts late by p50 %v, max %v)",
			late[len(late)/2].Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond))
	}
	return Verdict{Name: "alarms-on-time", OK: true, Detail: detail}
}

// CheckAlarmDeliveries checks each delivery against the sets and API.md:
// it is of an alarm some set with an ok or unknown outcome asked for (a
// refused set must have had no effect), in the workload's namespace, with
// objectId hex(sha256(ns + "\x00" + name)), Idempotency-Key
// <objectId>:<scheduledTime>, and isRetry exactly when retryCount > 0.
func CheckAlarmDeliveries(ops []AlarmOp, ds []Delivery, ns string) Verdict {
	type set struct {
		obj string
		at  int64
	}
	effective := map[set]bool{}
	refused := map[set]AlarmOp{}
	for _, op := range ops {
		k := set{op.Object, op.ScheduledTime}
		if op.Refused {
			refused[k] = op
		} else {
			effective[k] = true
		}
	}
	var p problems
	for _, d := range ds {
		if d.BodyErr != "" {
			p.addf("a delivery from %s has a bad body: %s", d.From, d.BodyErr)
			continue
		}
		k := set{d.Object, d.ScheduledTime}
		switch r, wasRefused := refused[k]; {
		case effective[k]:
		case wasRefused:
			p.addf("%s delivered for %d, set by #%d which was answered %d %s %s: a refused set took effect", d.Object, d.ScheduledTime, r.ID, r.Status, r.Code, r.Err)
		default:
			p.addf("%s delivered for %d, which no client set", d.Object, d.ScheduledTime)
		}
		sum := sha256.Sum256([]byte(ns + "\x00" + d.Object))
		id := hex.EncodeToString(sum[:])
		if d.Namespace != ns {
			p.addf("%s delivered with namespace %q, want %q", d.Object, d.Namespace, ns)
		}
		if d.ObjectID != id {
			p.addf("%s delivered with objectId %q, want %q", d.Object, d.ObjectID, id)
		}
		if want := id + ":" + strconv.FormatInt(d.ScheduledTime, 10); d.IdempotencyKey != want {
			p.addf("%s delivered with Idempotency-Key %q, want %q", d.Object, d.IdempotencyKey, want)
		}
		if d.IsRetry != (d.RetryCount > 0) {
			p.addf("%s delivered with isRetry %v and retryCount %d", d.Object, d.IsRetry, d.RetryCount)
		}
	}
	if p.n > 0 {
		return Verdict{Name: "alarms-valid", Detail: p.String()}
	}
	return Verdict{Name: "alarms-valid", OK: true, Detail: fmt.Sprintf("every one of %d deliveries is of an alarm that was set, with the body and Idempotency-Key of the contract", len(ds))}
}
