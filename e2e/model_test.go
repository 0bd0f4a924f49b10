package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// These run without CAIRN_E2E: they check the model and the verdicts on
// hand-written histories, so a broken checker cannot pass the suite.

func rec(id, client int, in Input, out Output, call, ret int64) Record {
	return Record{ID: id, Client: client, Stream: client, Input: in, Output: out, Call: call, Return: ret}
}

func put(k, v string) Input    { return Input{Op: OpPut, Object: "o", Key: k, Value: v} }
func get(k string) Input       { return Input{Op: OpGet, Object: "o", Key: k} }
func cas(k, e, v string) Input { return Input{Op: OpCAS, Object: "o", Key: k, Expected: e, Value: v} }
func ok() Output               { return Output{Outcome: OutcomeOK} }
func read(v string) Output     { return Output{Outcome: OutcomeOK, Value: v} }
func unknown() Output          { return Output{Outcome: OutcomeUnknown} }
func casFailed() Output        { return Output{Outcome: OutcomeFailed} }
func casSaw(v string) Output   { return Output{Outcome: OutcomeFailed, Value: v, Observed: true} }
func refused(r Record) Record  { r.Refused = true; r.Output.Outcome = OutcomeFailed; return r }
func final(r Record) Record    { r.Final = true; return r }
func check(rs ...Record) porcupine.CheckResult {
	res, _ := porcupine.CheckOperationsVerbose(RegisterModel, PorcupineHistory(rs), 5*time.Second)
	return res
}

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
		want porcupine.CheckResult
	}{
		{"read your write", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, get("a"), read("x"), 20, 30),
		}, porcupine.Ok},
		{"stale read", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 0, put("a", "y"), ok(), 11, 15),
			rec(2, 1, get("a"), read("x"), 20, 30),
		}, porcupine.Illegal},
		{"missing key reads empty", []Record{
			rec(0, 1, get("a"), read(""), 0, 5),
			rec(1, 0, put("a", "x"), ok(), 10, 20),
		}, porcupine.Ok},
		{"no going back once a concurrent write was seen", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 100),
			rec(1, 1, get("a"), read("x"), 10, 20),
			rec(2, 2, get("a"), read(""), 30, 40),
		}, porcupine.Illegal},
		{"unknown put may apply late", []Record{
			rec(0, 0, put("a", "x"), unknown(), 0, 10),
			rec(1, 1, get("a"), read(""), 20, 30),
			rec(2, 1, get("a"), read("x"), 40, 50),
		}, porcupine.Ok},
		{"unknown put may never apply", []Record{
			rec(0, 0, put("a", "x"), unknown(), 0, 10),
			rec(1, 1, put("a", "y"), ok(), 20, 30),
			rec(2, 1, get("a"), read("y"), 40, 50),
		}, porcupine.Ok},
		{"refused put must not apply", []Record{
			refused(rec(0, 0, put("a", "x"), ok(), 0, 10)),
			rec(1, 1, get("a"), read("x"), 20, 30),
		}, porcupine.Illegal},
		{"cas ok", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, cas("a", "x", "y"), ok(), 20, 30),
			rec(2, 0, get("a"), read("y"), 40, 50),
		}, porcupine.Ok},
		{"cas ok on a wrong value", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, cas("a", "z", "y"), ok(), 20, 30),
		}, porcupine.Illegal},
		{"cas failed while it held", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, cas("a", "x", "y"), casFailed(), 20, 30),
		}, porcupine.Illegal},
		{"cas failed, concurrent write", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, cas("a", "x", "y"), casFailed(), 20, 30),
			rec(2, 0, put("a", "z"), ok(), 25, 35),
		}, porcupine.Ok},
		{"cas saw a value never written", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, cas("a", "q", "y"), casSaw("w"), 20, 30),
		}, porcupine.Illegal},
		{"keys are independent", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 1, get("b"), read(""), 20, 30),
		}, porcupine.Ok},
		{"lost acknowledged write at the end", []Record{
			rec(0, 0, put("a", "x"), ok(), 0, 10),
			rec(1, 0, put("a", "y"), ok(), 20, 30),
			final(rec(2, 9, get("a"), read("x"), 100, 110)),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(tc.recs...); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDurability(t *testing.T) {
	k := KeyRef{"o", "a"}
	base := []Record{
		rec(0, 0, put("a", "x"), ok(), 0, 10),
		rec(1, 1, put("a", "y"), ok(), 20, 30),
		rec(2, 2, put("a", "z"), unknown(), 25, 26),
		refused(rec(3, 3, put("a", "r"), ok(), 40, 41)),
	}
	for _, tc := range []struct {
		final string
		ok    bool
	}{
		{"y", true},  // the last acknowledged write
		{"z", true},  // an unknown write concurrent with it
		{"x", false}, // x returned before y was called: y lost
		{"", false},  // everything lost
		{"r", false}, // a refused write applied
		{"q", false}, // never written
	} {
		v := CheckDurability(base, map[KeyRef]string{k: tc.final})
		if v.OK != tc.ok {
			t.Errorf("final %q: verdict %v, want ok=%v", tc.final, v, tc.ok)
		}
	}
}

func TestCounterVerdict(t *testing.T) {
	s := CounterStats{Acked: 10, Unknown: 3, MaxAcked: 11}
	for final, want := range map[int64]bool{9: false, 10: false, 11: true, 13: true, 14: false} {
		if v := CheckCounter(s, final); v.OK != want {
			t.Errorf("final %d: %v, want ok=%v", final, v, want)
		}
	}
	s.Duplicates = []int64{4}
	if v := CheckCounter(s, 12); v.OK {
		t.Errorf("duplicates passed: %v", v)
	}
}

func TestWriteOutcome(t *testing.T) {
	for _, tc := range []struct {
		a       answer
		outcome string
		refused bool
	}{
		{answer{status: 200, sent: true}, OutcomeOK, false},
		{answer{status: 400, code: "invalid_json", sent: true}, OutcomeFailed, true},
		{answer{status: 429, code: "overloaded", sent: true}, OutcomeFailed, true},
		{answer{status: 503, code: "unavailable", sent: true}, OutcomeFailed, true},
		{answer{status: 503, code: "commit_unknown", sent: true}, OutcomeUnknown, false},
		{answer{status: 504, code: "commit_unknown", sent: true}, OutcomeUnknown, false},
		{answer{status: 500, code: "internal", sent: true}, OutcomeUnknown, false},
		{answer{err: errTest, sent: true}, OutcomeUnknown, false},
		{answer{err: errTest, sent: false}, OutcomeFailed, true},
	} {
		if o, r := writeOutcome(tc.a); o != tc.outcome || r != tc.refused {
			t.Errorf("%+v: got %s refused=%v, want %s refused=%v", tc.a, o, r, tc.outcome, tc.refused)
		}
	}
}

var errTest = testError("boom")

type testError string

func (e testError) Error() string { return string(e) }

// fakeCluster is a Cluster with logs only, to test the artifacts.
type fakeCluster struct{}

func (fakeCluster) Endpoints() []string     { return []string{"http://127.0.0.1:1"} }
func (fakeCluster) Nodes() []string         { return []string{"n1"} }
func (fakeCluster) Kill(string) error       { return nil }
func (fakeCluster) Stop(string) error       { return nil }
func (fakeCluster) Start(string) error      { return nil }
func (fakeCluster) Pause(string) error      { return nil }
func (fakeCluster) Resume(string) error     { return nil }
func (fakeCluster) Logs(node string) string { return "log of " + node + "\n" }

func TestSaveArtifactsOnIllegalHistory(t *testing.T) {
	t.Setenv("CAIRN_E2E_ARTIFACTS", t.TempDir())
	records := []Record{
		rec(0, 0, put("a", "x"), ok(), 0, 10),
		rec(1, 0, put("a", "y"), ok(), 20, 30),
		rec(2, 1, get("a"), read("x"), 40, 50),
		rec(3, 2, put("a", "z"), unknown(), 45, 46),
	}
	v, info := CheckLinearizable(PorcupineHistory(records), 5*time.Second)
	if v.OK {
		t.Fatalf("stale read passed: %v", v)
	}
	rep := &Report{Test: t.Name(), Seed: 1, Verdicts: []Verdict{v},
		Faults: FaultReport{Cycles: 1, Events: []FaultEvent{{Cycle: 1, Failpoint: "kill", Node: "n1", Start: 12, Injected: 15, Recovered: 18}}}}
	dir, err := SaveArtifacts(fakeCluster{}, rep, records, &info)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"history.json", "history.html", "summary.txt", "n1.log"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if rep.Artifacts != dir || !strings.Contains(rep.String(), "FAIL") {
		t.Errorf("report does not point at the artifacts or show the failure:\n%s", rep)
	}
}
