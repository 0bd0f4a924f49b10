package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Hand-written histories of the SQL and alarm workloads: each verdict must
// pass what is legal and fail what is not (these run without CAIRN_E2E).

func ins(id int, row string, outcome string, call, ret int64) SQLOp {
	op := SQLOp{ID: id, Op: OpSQLInsert, Object: "o", Row: row, Outcome: outcome, Call: call, Return: ret}
	if outcome == OutcomeFailed {
		op.Refused = true
	}
	return op
}

func sel(id int, call, ret int64, rows ...string) SQLOp {
	return SQLOp{ID: id, Op: OpSQLSelect, Object: "o", Rows: rows, Outcome: OutcomeOK, Call: call, Return: ret}
}

func TestSQLReadsVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []SQLOp
		ok   bool
		want string // in the detail of a failure
	}{
		{"reads grow", []SQLOp{
			ins(0, "a", OutcomeOK, 0, 10),
			sel(1, 20, 30, "a"),
			ins(2, "b", OutcomeOK, 25, 40),
			sel(3, 35, 45, "a", "b"),
		}, true, ""},
		{"a concurrent insert may or may not be seen", []SQLOp{
			ins(0, "a", OutcomeOK, 0, 100),
			sel(1, 10, 20),
			sel(2, 30, 40, "a"),
		}, true, ""},
		{"an unknown insert may show up late", []SQLOp{
			ins(0, "a", OutcomeUnknown, 0, 10),
			sel(1, 20, 30),
			sel(2, 40, 50, "a"),
		}, true, ""},
		{"acknowledged insert missing from a later read", []SQLOp{
			ins(0, "a", OutcomeOK, 0, 10),
			sel(1, 20, 30),
		}, false, `misses row "a"`},
		{"a row disappears", []SQLOp{
			ins(0, "a", OutcomeUnknown, 0, 10),
			sel(1, 20, 30, "a"),
			sel(2, 40, 50),
		}, false, `misses row "a"`},
		{"incomparable reads", []SQLOp{
			ins(0, "a", OutcomeUnknown, 0, 10),
			ins(1, "b", OutcomeUnknown, 0, 10),
			sel(2, 20, 100, "a"),
			sel(3, 20, 100, "b"),
		}, false, "disagree"},
		{"row from nowhere", []SQLOp{
			sel(0, 20, 30, "zz"),
		}, false, "no client inserted"},
		{"refused insert seen", []SQLOp{
			ins(0, "a", OutcomeFailed, 0, 10),
			sel(1, 20, 30, "a"),
		}, false, "refused"},
		{"a read sees the future", []SQLOp{
			sel(0, 0, 10, "a"),
			ins(1, "a", OutcomeOK, 20, 30),
		}, false, "called later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckSQLReads(tc.ops)
			if v.OK != tc.ok || !strings.Contains(v.Detail, tc.want) {
				t.Errorf("got %v, want ok=%v with %q", v, tc.ok, tc.want)
			}
		})
	}
}

func TestSQLDurabilityVerdict(t *testing.T) {
	ops := []SQLOp{
		ins(0, "a", OutcomeOK, 0, 10),
		ins(1, "b", OutcomeUnknown, 0, 10),
		ins(2, "c", OutcomeUnknown, 0, 10),
		ins(3, "d", OutcomeFailed, 0, 10),
	}
	for _, tc := range []struct {
		name   string
		finals map[string]map[string][]string
		ok     bool
		want   string
	}{
		{"acknowledged present, unknown either way", map[string]map[string][]string{
			"n1": {"o": {"a", "b"}}, "n2": {"o": {"a", "b"}},
		}, true, "1 of 2 unknown inserts applied"},
		{"acknowledged insert lost", map[string]map[string][]string{
			"n1": {"o": {"b"}},
		}, false, `"a" (op #0`},
		{"refused insert applied", map[string]map[string][]string{
			"n1": {"o": {"a", "d"}},
		}, false, "a refused insert was applied"},
		{"row from nowhere", map[string]map[string][]string{
			"n1": {"o": {"a", "x"}},
		}, false, "no client inserted"},
		{"nodes disagree", map[string]map[string][]string{
			"n1": {"o": {"a"}}, "n2": {"o": {"a", "b"}},
		}, false, "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckSQLDurability(ops, tc.finals, []string{"o"})
			if v.OK != tc.ok || !strings.Contains(v.Detail, tc.want) {
				t.Errorf("got %v, want ok=%v with %q", v, tc.ok, tc.want)
			}
		})
	}
}

func TestParseSelect(t *testing.T) {
	rows, err := parseSelect(answer{status: 200, body: []byte(`{"results":[{"columns":["id"],"rows":[["b"],["a"]]}],"databaseSize":8192}`)})
	if err != nil || strings.Join(rows, ",") != "a,b" {
		t.Errorf("got %v %v, want [a b]", rows, err)
	}
	if _, err := parseSelect(answer{status: 200, body: []byte(`{"results":[{"rows":[[1]]}]}`)}); err == nil {
		t.Error("a non-text id was accepted")
	}
	if _, err := parseSelect(answer{status: 503, code: "unavailable"}); err == nil {
		t.Error("a 503 was accepted")
	}
}

func alarmSet(id int, obj string, at int64, outcome string, call int64) AlarmOp {
	return AlarmOp{ID: id, Object: obj, ScheduledTime: at, Outcome: outcome, Call: call, Return: call + 5, Refused: outcome == OutcomeFailed}
}

func delivery(ns, obj string, at int64, received time.Duration) Delivery {
	sum := sha256.Sum256([]byte(ns + "\x00" + obj))
	id := hex.EncodeToString(sum[:])
	return Delivery{Namespace: ns, Object: obj, ObjectID: id, ScheduledTime: at,
		IdempotencyKey: fmt.Sprintf("%s:%d", id, at), Received: at*int64(time.Millisecond) + int64(received)}
}

func TestExpectedAlarms(t *testing.T) {
	ops := []AlarmOp{
		alarmSet(0, "a", 100, OutcomeOK, 0),
		alarmSet(1, "b", 100, OutcomeOK, 0),
		alarmSet(2, "b", 200, OutcomeOK, 10), // replaces b's first alarm
		alarmSet(3, "c", 100, OutcomeOK, 0),
		alarmSet(4, "c", 200, OutcomeUnknown, 10), // c ends with 100 or 200
		alarmSet(5, "c", 300, OutcomeFailed, 20),  // no effect
		alarmSet(6, "d", 100, OutcomeUnknown, 0),  // nothing required
		alarmSet(7, "e", 100, OutcomeFailed, 0),
	}
	got := fmt.Sprint(ExpectedAlarms(ops))
	if want := "[{a [100]} {b [200]} {c [100 200]}]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	const ns = "e2e-alarms"
	all := []Delivery{delivery(ns, "a", 100, time.Millisecond), delivery(ns, "b", 200, 0), delivery(ns, "c", 200, 0)}
	if v := CheckAlarmsDelivered(ops, all, time.Second); !v.OK {
		t.Errorf("every alarm delivered: %v", v)
	}
	if v := CheckAlarmsDelivered(ops, all[:2], time.Second); v.OK || !strings.Contains(v.Detail, "c: none of [100 200]") {
		t.Errorf("c never delivered: %v", v)
	}
	dup := append(all, delivery(ns, "a", 100, 2*time.Second))
	if v := CheckAlarmsDelivered(ops, dup, time.Second); !v.OK || !strings.Contains(v.Detail, "1 duplicates") {
		t.Errorf("a duplicate is allowed and counted: %v", v)
	}
	if v := CheckAlarmDeliveries(ops, all, ns); !v.OK {
		t.Errorf("valid deliveries: %v", v)
	}
	for _, tc := range []struct {
		name string
		d    Delivery
		want string
	}{
		{"never set", delivery(ns, "a", 999, 0), "which no client set"},
		{"refused set", delivery(ns, "e", 100, 0), "a refused set took effect"},
		{"wrong key", func() Delivery { d := delivery(ns, "a", 100, 0); d.IdempotencyKey = "x"; return d }(), "Idempotency-Key"},
		{"wrong id", func() Delivery { d := delivery(ns, "a", 100, 0); d.ObjectID = "x"; return d }(), "objectId"},
		{"retry flag", func() Delivery { d := delivery(ns, "a", 100, 0); d.RetryCount = 1; return d }(), "isRetry"},
	} {
		if v := CheckAlarmDeliveries(ops, []Delivery{tc.d}, ns); v.OK || !strings.Contains(v.Detail, tc.want) {
			t.Errorf("%s: got %v, want a failure with %q", tc.name, v, tc.want)
		}
	}
	if v := CheckAlarmsOnTime(all); !v.OK {
		t.Errorf("on time: %v", v)
	}
	if v := CheckAlarmsOnTime([]Delivery{delivery(ns, "a", 100, -time.Millisecond)}); v.OK {
		t.Errorf("a delivery 1 ms early passed: %v", v)
	}
}

func TestAlarmReceiver(t *testing.T) {
	r, err := StartAlarmReceiver(t.Cleanup, "127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.URL, bytes.NewReader([]byte(
		`{"namespace":"n","object":"o","objectId":"i","scheduledTime":5,"retryCount":1,"isRetry":true}`)))
	req.Header.Set("Idempotency-Key", "i:5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ds := r.Deliveries()
	if resp.StatusCode != 200 || len(ds) != 1 || ds[0].Object != "o" || ds[0].ScheduledTime != 5 ||
		ds[0].IdempotencyKey != "i:5" || !ds[0].IsRetry || ds[0].Received == 0 || ds[0].BodyErr != "" {
		t.Errorf("got %d %+v", resp.StatusCode, ds)
	}
}

func TestClientBackoff(t *testing.T) {
	c := NewClient(0, []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}, NewRecorder(), ClientConfig{})
	defer c.Close()
	start := time.Now()
	if !c.Backoff(context.Background()) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("a client without errors waited %v", time.Since(start))
	}
	c.answered(answer{err: errors.New("connection reset")})
	if c.pref != 1 || c.failures != 1 {
		t.Fatalf("after a transport error: endpoint %d, failures %d", c.pref, c.failures)
	}
	start = time.Now()
	if !c.Backoff(context.Background()) || time.Since(start) < firstBackoff {
		t.Fatalf("after a transport error the client waited only %v", time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c.Backoff(ctx) {
		t.Fatal("Backoff went on after its context ended")
	}
	c.answered(answer{status: 503, code: "unavailable"})
	if c.failures != 0 {
		t.Fatalf("an answer did not reset the failures: %d", c.failures)
	}
}
