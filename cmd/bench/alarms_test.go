package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAlarmPlan(t *testing.T) {
	p := &alarmPlan{runID: "ab12", n: 4, windowStart: 1_000_000, spreadMs: 1000}
	want := []int64{1_000_000, 1_000_250, 1_000_500, 1_000_750}
	for i, w := range want {
		if got := p.scheduled(i); got != w {
			t.Errorf("scheduled(%d) = %d, want %d", i, got, w)
		}
		if j, ok := p.index(p.object(i)); !ok || j != i {
			t.Errorf("index(%q) = %d %v", p.object(i), j, ok)
		}
	}
	if p.lastScheduled() != 1_000_750 {
		t.Errorf("lastScheduled %d", p.lastScheduled())
	}
	for _, bad := range []string{"alarm-ab12-4", "alarm-ab12--1", "alarm-ab12-01", "alarm-cd34-1", "alarm-ab12-", "x"} {
		if _, ok := p.index(bad); ok {
			t.Errorf("index(%q) accepted", bad)
		}
	}
	// A spread of 0 puts every alarm at the window's start.
	p0 := &alarmPlan{runID: "x", n: 3, windowStart: 5}
	if p0.scheduled(2) != 5 || p0.lastScheduled() != 5 {
		t.Errorf("spread 0: %d", p0.scheduled(2))
	}
}

// idemKey is the Idempotency-Key a node sends for obj of ns at scheduled.
func idemKey(ns, obj string, scheduled int64) string {
	h := sha256.Sum256([]byte(ns + "\x00" + obj))
	return hex.EncodeToString(h[:]) + ":" + fmt.Sprint(scheduled)
}

// TestAlarmSummaryMaths feeds a receiver a known set of deliveries and
// checks every figure of the summary.
func TestAlarmSummaryMaths(t *testing.T) {
	const ns = "bench"
	p := &alarmPlan{runID: "r1", n: 6, windowStart: 1_700_000_000_000, spreadMs: 600}
	r := newReceiver(p, ns)
	deliver := func(i int, offset time.Duration, retry int) {
		obj := p.object(i)
		r.record(webhookCall{Namespace: ns, Object: obj, ScheduledTime: p.scheduled(i), RetryCount: retry, IsRetry: retry > 0},
			idemKey(ns, obj, p.scheduled(i)), time.UnixMilli(p.scheduled(i)).Add(offset))
	}
	deliver(0, 10*time.Millisecond, 0)
	deliver(1, 20*time.Millisecond, 0)
	deliver(1, 2*time.Second, 1) // a duplicate (a retry), late
	deliver(2, -5*time.Millisecond, 0)
	deliver(3, 40*time.Millisecond, 0)
	deliver(3, 50*time.Millisecond, 0) // another duplicate
	// 4 is never delivered; 5 is delivered but its set was not acknowledged.
	deliver(5, 30*time.Millisecond, 0)
	// Odd calls: another run's alarm, a wrong key, a wrong time.
	r.record(webhookCall{Namespace: ns, Object: "alarm-other-1", ScheduledTime: 1}, "k", time.Now())
	r.record(webhookCall{Namespace: "elsewhere", Object: p.object(0), ScheduledTime: p.scheduled(0)}, "k", time.Now())
	r.record(webhookCall{Namespace: ns, Object: p.object(0), ScheduledTime: p.scheduled(0)}, "wrong",
		time.UnixMilli(p.scheduled(0)).Add(time.Second))
	r.record(webhookCall{Namespace: ns, Object: p.object(2), ScheduledTime: p.scheduled(2) + 1}, idemKey(ns, p.object(2), p.scheduled(2)+1),
		time.UnixMilli(p.scheduled(2)).Add(time.Second))

	set := []bool{true, true, true, true, true, false}
	var s alarmSummary
	s.finish(r, set)
	if s.Set != 5 || s.Delivered != 4 || s.Missing != 1 || s.DeliveredUnacked != 1 {
		t.Errorf("set %d delivered %d missing %d unacked %d, want 5 4 1 1", s.Set, s.Delivered, s.Missing, s.DeliveredUnacked)
	}
	// Duplicates: one more for 1, one more for 3, and the two odd calls on
	// 0 and 2 that count as deliveries of those objects.
	if s.Duplicates != 4 {
		t.Errorf("duplicates %d, want 4", s.Duplicates)
	}
	if s.Calls != 11 || s.Early != 1 || s.Retries != 1 || s.Foreign != 2 || s.BadKeys != 1 || s.WrongTimes != 1 || s.Malformed != 0 {
		t.Errorf("calls %d early %d retries %d foreign %d badKeys %d wrongTimes %d malformed %d",
			s.Calls, s.Early, s.Retries, s.Foreign, s.BadKeys, s.WrongTimes, s.Malformed)
	}
	// Lateness of the acknowledged alarms' first deliveries: -5, 10, 20, 40 ms.
	l := s.Lateness
	if l.Count != 4 || l.P50 != 10 || l.P90 != 40 || l.P99 != 40 || l.Max != 40 || l.Mean != 16.25 {
		t.Errorf("lateness %+v", l)
	}
	// The latest first delivery is 5's, at scheduled(5)+30ms, which is the
	// window's last scheduled time.
	if s.LastDeliveryAfterWindowMs != 30 {
		t.Errorf("last delivery after the window: %v ms, want 30", s.LastDeliveryAfterWindowMs)
	}
	if why := s.failed(); !strings.Contains(why, "1 alarms never delivered") || !strings.Contains(why, "1 deliveries before") {
		t.Errorf("failed() = %q", why)
	}
	var text strings.Builder
	s.writeText(&text)
	for _, w := range []string{"missing 1", "duplicates 4", "early 1", "p50 10.00ms", "p99 40.00ms", "after the window's last scheduled time"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, text.String())
		}
	}
	// All well: nothing fails.
	ok := alarmSummary{Set: 3, Delivered: 3}
	if why := ok.failed(); why != "" {
		t.Errorf("failed() = %q for a clean run", why)
	}
}

func TestReceiverServesHTTP(t *testing.T) {
	p := &alarmPlan{runID: "r", n: 2, windowStart: 1000, spreadMs: 10}
	r := newReceiver(p, "ns")
	srv := httptest.NewServer(r)
	defer srv.Close()
	body := fmt.Sprintf(`{"namespace":"ns","object":%q,"objectId":"x","scheduledTime":1000,"retryCount":0,"isRetry":false}`, p.object(0))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/alarm", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", idemKey("ns", p.object(0), 1000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(srv.URL+"/alarm", "application/json", strings.NewReader("not json"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	if r.unique.Load() != 1 || r.calls[0].Load() != 1 || r.malformed.Load() != 1 || r.badKey.Load() != 0 || r.total.Load() != 2 {
		t.Fatalf("unique %d calls %d malformed %d badKey %d total %d", r.unique.Load(), r.calls[0].Load(), r.malformed.Load(), r.badKey.Load(), r.total.Load())
	}
}

// The receiver behind fasthttp's server (the default) counts as it does
// behind net/http's.
func TestReceiverServesFastHTTP(t *testing.T) {
	p := &alarmPlan{runID: "r", n: 2, windowStart: 1000, spreadMs: 10}
	a := &alarmBench{cfg: config{httpClient: httpClientFast}, recv: newReceiver(p, "ns")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := a.serve(ln)
	defer stop()
	url := "http://" + ln.Addr().String() + "/alarm"
	body := fmt.Sprintf(`{"namespace":"ns","object":%q,"objectId":"x","scheduledTime":1000,"retryCount":0,"isRetry":false}`, p.object(1))
	for _, b := range []string{body, body, "not json"} {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(b))
		req.Header.Set("Idempotency-Key", idemKey("ns", p.object(1), 1000))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r := a.recv
	if r.unique.Load() != 1 || r.calls[1].Load() != 2 || r.malformed.Load() != 1 || r.badKey.Load() != 0 || r.total.Load() != 3 {
		t.Fatalf("unique %d calls %d malformed %d badKey %d total %d", r.unique.Load(), r.calls[1].Load(), r.malformed.Load(), r.badKey.Load(), r.total.Load())
	}
}

// fakeAlarmCluster plays a cluster: it takes PUT /v1/ns/{ns} and PUT
// …/alarm, and calls the configured webhook at each alarm's time.
type fakeAlarmCluster struct {
	*httptest.Server
	mu    sync.Mutex
	hook  string
	puts  int
	delay time.Duration
	// dupSuffix: objects whose name ends so are delivered twice.
	dupSuffix string
	timers    []*time.Timer
}

func newFakeAlarmCluster(t *testing.T) *fakeAlarmCluster {
	f := &fakeAlarmCluster{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, tm := range f.timers {
			tm.Stop()
		}
	})
	return f
}

func (f *fakeAlarmCluster) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/ns/"), "/")
	switch {
	case r.Method == http.MethodPut && len(parts) == 1:
		var cfg struct {
			AlarmWebhook string `json:"alarmWebhook"`
		}
		json.Unmarshal(body, &cfg)
		f.mu.Lock()
		f.hook = cfg.AlarmWebhook
		f.mu.Unlock()
		io.WriteString(w, `{}`)
	case r.Method == http.MethodPut && len(parts) == 4 && parts[1] == "objects" && parts[3] == "alarm":
		time.Sleep(f.delay)
		ns := parts[0]
		obj, _ := url.PathUnescape(parts[2])
		var in struct {
			ScheduledTime int64 `json:"scheduledTime"`
		}
		json.Unmarshal(body, &in)
		f.mu.Lock()
		f.puts++
		hook := f.hook
		times := 1
		if f.dupSuffix != "" && strings.HasSuffix(obj, f.dupSuffix) {
			times = 2
		}
		for range times {
			f.timers = append(f.timers, time.AfterFunc(time.Until(time.UnixMilli(in.ScheduledTime)), func() {
				b, _ := json.Marshal(webhookCall{Namespace: ns, Object: obj, ScheduledTime: in.ScheduledTime})
				req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader(string(b)))
				req.Header.Set("Idempotency-Key", idemKey(ns, obj, in.ScheduledTime))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}))
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"scheduledTime":%d}`, in.ScheduledTime)
	default:
		http.Error(w, "unexpected", http.StatusNotFound)
	}
}

func runAlarmsJSON(t *testing.T, args ...string) (int, alarmSummary, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(context.Background(), append(args, "-mode", "alarms", "-json", "-webhook-addr", "127.0.0.1:0"), noenv, &out, &errOut)
	var s alarmSummary
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s\nstderr: %s", err, out.String(), errOut.String())
	}
	return code, s, errOut.String()
}

func TestAlarmsModeEndToEnd(t *testing.T) { eachClient(t, testAlarmsModeEndToEnd) }

func testAlarmsModeEndToEnd(t *testing.T, hc string) {
	f := newFakeAlarmCluster(t)
	// The run's object names are random; alarm number 7 is delivered twice.
	f.dupSuffix = "-7"
	code, s, stderr := runAlarmsJSON(t, "-endpoints", f.URL, "-clients", "4", "-alarms", "50",
		"-spread", "300ms", "-lead", "1s", "-wait", "5s", "-http-client", hc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s.Alarms != 50 || s.Set != 50 || s.Delivered != 50 || s.Missing != 0 || s.Early != 0 || s.Duplicates != 1 ||
		s.BadKeys != 0 || s.WrongTimes != 0 || s.TimedOut || s.Aborted != "" || s.Lateness.Count != 50 {
		t.Fatalf("summary %+v", s)
	}
	if s.Lateness.P50 < 0 || s.Lateness.Max > 1000 || s.LastDeliveryAfterWindowMs < 0 {
		t.Fatalf("lateness %+v, last %v", s.Lateness, s.LastDeliveryAfterWindowMs)
	}
	if !strings.HasPrefix(s.Webhook, "http://127.0.0.1:") || !strings.Contains(stderr, "set: 50 of 50 alarms") {
		t.Fatalf("webhook %q stderr %q", s.Webhook, stderr)
	}
}

func TestAlarmsModeAbortsWhenLeadTooShort(t *testing.T) {
	eachClient(t, testAlarmsModeAbortsWhenLeadTooShort)
}

func testAlarmsModeAbortsWhenLeadTooShort(t *testing.T, hc string) {
	f := newFakeAlarmCluster(t)
	f.delay = 20 * time.Millisecond
	start := time.Now()
	code, s, stderr := runAlarmsJSON(t, "-endpoints", f.URL, "-clients", "1", "-alarms", "100",
		"-spread", "100ms", "-lead", "200ms", "-wait", "5s", "-http-client", hc)
	if code != 1 || s.Aborted == "" || !strings.Contains(stderr, "-lead") || s.Delivered != s.Set || s.Missing != 0 {
		t.Fatalf("exit %d summary %+v stderr %q", code, s, stderr)
	}
	// Setting stops at the deadline rather than going on for 2 s; the
	// alarms already set are still received (then a second for late
	// duplicates).
	if s.SetSeconds > 0.5 {
		t.Fatalf("setting went on for %.2fs after the deadline", s.SetSeconds)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("took %v", took)
	}
	if s.Set == 0 || s.Set >= 100 {
		t.Fatalf("set %d", s.Set)
	}
}

func TestAlarmsModeReportsMissing(t *testing.T) { eachClient(t, testAlarmsModeReportsMissing) }

func testAlarmsModeReportsMissing(t *testing.T, hc string) {
	// A cluster that acknowledges alarms but never delivers them.
	f := newFakeServer(t)
	code, s, stderr := runAlarmsJSON(t, "-endpoints", f.URL, "-clients", "2", "-alarms", "10",
		"-spread", "0s", "-lead", "300ms", "-wait", "300ms", "-http-client", hc)
	if code != 1 || s.Set != 10 || s.Missing != 10 || s.Delivered != 0 || !s.TimedOut || !strings.Contains(stderr, "never delivered") {
		t.Fatalf("exit %d summary %+v stderr %q", code, s, stderr)
	}
}

func TestAlarmsFlags(t *testing.T) {
	c, err := parseFlags([]string{"-mode", "alarms"}, noenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.alarms != 10000 || c.webhookAddr != "127.0.0.1:9099" || c.spread != time.Second || c.lead != 20*time.Second || c.wait != time.Minute {
		t.Fatalf("defaults %+v", c)
	}
	for name, args := range map[string][]string{
		"alarms":      {"-alarms", "0"},
		"lead":        {"-lead", "0s"},
		"wait":        {"-wait", "0s"},
		"spread":      {"-spread", "-1s"},
		"addr":        {"-webhook-addr", "nohost"},
		"webhook-url": {"-webhook-url", "ftp://x"},
	} {
		if _, err := parseFlags(append([]string{"-mode", "alarms"}, args...), noenv, io.Discard); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
	if got := reachable("0.0.0.0:9099"); got != "127.0.0.1:9099" {
		t.Errorf("reachable(0.0.0.0:9099) = %s", got)
	}
	if got := reachable(":9099"); got != "127.0.0.1:9099" {
		t.Errorf("reachable(:9099) = %s", got)
	}
	if got := reachable("10.1.2.3:9099"); got != "10.1.2.3:9099" {
		t.Errorf("reachable(10.1.2.3:9099) = %s", got)
	}
}
