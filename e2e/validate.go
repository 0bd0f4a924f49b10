package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the result of one check.
type Verdict struct {
	Name   string
	OK     bool
	Detail string
}

func (v Verdict) String() string {
	s := "PASS"
	if !v.OK {
		s = "FAIL"
	}
	return fmt.Sprintf("%-16s %s  %s", v.Name, s, v.Detail)
}

// CheckLinearizable checks history against RegisterModel within timeout.
// A timeout is not a pass: the verdict fails and says so.
func CheckLinearizable(history []porcupine.Operation, timeout time.Duration) (Verdict, porcupine.LinearizationInfo) {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, history, timeout)
	took := time.Since(start).Round(time.Millisecond)
	v := Verdict{Name: "linearizable", OK: res == porcupine.Ok}
	switch res {
	case porcupine.Ok:
		v.Detail = fmt.Sprintf("%d operations checked in %v", len(history), took)
	case porcupine.Illegal:
		v.Detail = fmt.Sprintf("NOT linearizable: %d operations, checked in %v (see the visualization)", len(history), took)
	default:
		v.Detail = fmt.Sprintf("the check timed out after %v on %d operations: no verdict", took, len(history))
	}
	return v, info
}

// ReadFinal reads every register linearizably once the cluster is quiet,
// retrying until each has a definite answer or ctx ends. The reads are
// recorded (marked Final) so that they join the checked history.
func ReadFinal(ctx context.Context, endpoints []string, rec *Recorder, regs []KeyRef, cfg ClientConfig) (map[KeyRef]string, error) {
	c := NewClient(len(endpoints)*1000, endpoints, rec, cfg)
	c.final = true
	defer c.Close()
	out := map[KeyRef]string{}
	for _, r := range regs {
		for {
			if v, ok := c.Get(r.Object, r.Key); ok {
				out[r] = v
				break
			}
			select {
			case <-ctx.Done():
				return out, fmt.Errorf("no definite final read of %s: %w", r, ctx.Err())
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return out, nil
}

// CheckDurability checks that every acknowledged write survived unless a
// write that may have come after it replaced it. For each register, with
// final value f:
//   - f must have been written by an ok or unknown write, or be "" with no
//     acknowledged write at all; a value written by an operation that was
//     answered as refused means a refusal was applied;
//   - the write x of f must not have returned before an acknowledged write
//     y was called: y then certainly came after x, so y was lost.
func CheckDurability(records []Record, finals map[KeyRef]string) Verdict {
	writes := map[KeyRef][]Record{}
	refusedByValue := map[string]Record{}
	for _, r := range records {
		if r.Input.Op != OpPut && r.Input.Op != OpCAS {
			continue
		}
		k := KeyRef{r.Input.Object, r.Input.Key}
		switch {
		case r.Refused:
			refusedByValue[r.Input.Value] = r
		case r.Output.Outcome == OutcomeOK, r.Output.Outcome == OutcomeUnknown:
			writes[k] = append(writes[k], r)
		}
	}
	var problems []string
	keys := sortedKeys(finals)
	acked := 0
	for _, k := range keys {
		f := finals[k]
		var x *Record
		nOK := 0
		for i, w := range writes[k] {
			if w.Output.Outcome == OutcomeOK {
				nOK++
			}
			if f != "" && w.Input.Value == f {
				x = &writes[k][i]
			}
		}
		acked += nOK
		switch {
		case f == "" && nOK > 0:
			problems = append(problems, fmt.Sprintf("%s is missing at the end, but %d writes to it were acknowledged", k, nOK))
		case f == "":
		case x == nil:
			if r, ok := refusedByValue[f]; ok {
				problems = append(problems, fmt.Sprintf("%s ends as %q, written by op #%d which was answered %d %s (refused: nothing should have been proposed)", k, f, r.ID, r.Status, r.Code))
			} else {
				problems = append(problems, fmt.Sprintf("%s ends as %q, which no ok or unknown write wrote", k, f))
			}
		case x.Output.Outcome == OutcomeOK:
			for _, y := range writes[k] {
				if y.ID != x.ID && y.Output.Outcome == OutcomeOK && x.Return < y.Call {
					problems = append(problems, fmt.Sprintf("%s: acknowledged write #%d (%s %q, called at %v) is lost: the final value %q is from #%d, which returned at %v, before it",
						k, y.ID, y.Input.Op, y.Input.Value, time.Duration(y.Call), f, x.ID, time.Duration(x.Return)))
				}
			}
		}
	}
	if len(problems) > 0 {
		return Verdict{Name: "durability", Detail: strings.Join(problems, "; ")}
	}
	return Verdict{Name: "durability", OK: true, Detail: fmt.Sprintf("%d registers: every one of %d acknowledged writes is the final value or may have been overwritten", len(keys), acked)}
}

// CheckReplicas polls until every node's local replica (a stale read)
// holds each register's final linearizable value, or timeout passes.
func CheckReplicas(c Cluster, regs []KeyRef, finals map[KeyRef]string, timeout time.Duration, cfg ClientConfig) Verdict {
	cfg.Timeout = 3 * time.Second
	cl := NewClient(0, c.Endpoints(), NewRecorder(), cfg)
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		var diffs []string
		for i, ep := range c.Endpoints() {
			for _, r := range regs {
				v, err := cl.StaleGet(ep, r.Object, r.Key)
				switch {
				case err != nil:
					diffs = append(diffs, fmt.Sprintf("%s %s: %v", c.Nodes()[i], r, err))
				case v != finals[r]:
					diffs = append(diffs, fmt.Sprintf("%s %s = %q, linearizable read = %q", c.Nodes()[i], r, v, finals[r]))
				}
			}
		}
		if len(diffs) == 0 {
			return Verdict{Name: "replicas-equal", OK: true, Detail: fmt.Sprintf("%d nodes × %d registers agree (after %v)", len(c.Endpoints()), len(regs), time.Since(start).Round(time.Millisecond))}
		}
		if time.Now().After(deadline) {
			return Verdict{Name: "replicas-equal", Detail: fmt.Sprintf("after %v: %s", timeout, strings.Join(diffs, "; "))}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// CounterStats tallies the increments of a counter history.
type CounterStats struct {
	Acked, Unknown, Failed int
	// Duplicates are values returned to more than one acknowledged incr:
	// each applied increment yields a different value.
	Duplicates []int64
	MaxAcked   int64
}

// CountIncrements tallies the incr records.
func CountIncrements(records []Record) CounterStats {
	var s CounterStats
	seen := map[int64]bool{}
	for _, r := range records {
		if r.Input.Op != OpIncr {
			continue
		}
		switch r.Output.Outcome {
		case OutcomeOK:
			s.Acked++
			if seen[r.Output.Count] {
				s.Duplicates = append(s.Duplicates, r.Output.Count)
			}
			seen[r.Output.Count] = true
			s.MaxAcked = max(s.MaxAcked, r.Output.Count)
		case OutcomeUnknown:
			s.Unknown++
		default:
			s.Failed++
		}
	}
	return s
}

// CheckCounter checks the final value of a counter that only ever grew by
// 1: acked ≤ final ≤ acked + unknown, no value handed out twice, and no
// acknowledged value above the final one.
func CheckCounter(s CounterStats, final int64) Verdict {
	v := Verdict{Name: "counter", Detail: fmt.Sprintf("final %d, acked %d, unknown %d (must be %d ≤ final ≤ %d)", final, s.Acked, s.Unknown, s.Acked, s.Acked+s.Unknown)}
	var problems []string
	if final < int64(s.Acked) {
		problems = append(problems, fmt.Sprintf("%d acknowledged increments are lost", int64(s.Acked)-final))
	}
	if final > int64(s.Acked+s.Unknown) {
		problems = append(problems, fmt.Sprintf("%d increments more than were sent with a possible success were applied", final-int64(s.Acked+s.Unknown)))
	}
	if len(s.Duplicates) > 0 {
		problems = append(problems, fmt.Sprintf("values returned to more than one acknowledged incr: %v", s.Duplicates))
	}
	if s.MaxAcked > final {
		problems = append(problems, fmt.Sprintf("an acknowledged incr returned %d, above the final value", s.MaxAcked))
	}
	v.OK = len(problems) == 0
	if !v.OK {
		v.Detail += ": " + strings.Join(problems, "; ")
	}
	return v
}

// Report is a scenario's outcome.
type Report struct {
	Test    string
	Seed    int64
	Traffic time.Duration // how long traffic ran
	Faults  FaultReport
	Counts  Counts // of the register and counter workloads
	// Workloads are a line each about the other workloads (SQL, alarms)
	// and cluster changes, printed after the operations.
	Workloads []string
	Verdicts  []Verdict
	Artifacts string
	// Histories are saved beside history.json, each as <name>.json: the
	// other workloads' operations, the webhook's deliveries.
	Histories map[string]any
}

// Failed reports whether any verdict failed.
func (r *Report) Failed() bool {
	for _, v := range r.Verdicts {
		if !v.OK {
			return true
		}
	}
	return r.Faults.Err != nil
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: seed %d (replay with CAIRN_E2E_SEED=%d)\n", r.Test, r.Seed, r.Seed)
	fmt.Fprintf(&b, "  traffic:        %v\n", r.Traffic.Round(time.Millisecond))
	fmt.Fprintf(&b, "  fault cycles:   %d", r.Faults.Cycles)
	if r.Faults.Err != nil {
		fmt.Fprintf(&b, " (stopped: %v)", r.Faults.Err)
	}
	b.WriteString("\n")
	if c := r.Counts; c.OK+c.Failed+c.Unknown > 0 {
		fmt.Fprintf(&b, "  operations:     %s\n", c)
	}
	for _, w := range r.Workloads {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	for _, v := range r.Verdicts {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	if r.Artifacts != "" {
		fmt.Fprintf(&b, "  artifacts:      %s\n", r.Artifacts)
	}
	return b.String()
}

// artifactsRoot is where failed runs leave their evidence:
// $CAIRN_E2E_ARTIFACTS, or artifacts/ beside the tests.
func artifactsRoot() string {
	if d := os.Getenv("CAIRN_E2E_ARTIFACTS"); d != "" {
		return d
	}
	if d, err := filepath.Abs("artifacts"); err == nil {
		return d
	}
	return "artifacts"
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// SaveArtifacts writes a run's evidence under
// <artifactsRoot>/<test>-<timestamp>/: history.json (every record and
// fault), history.html (porcupine's visualization, when info is given),
// the report's other histories (sql.json, alarms.json), summary.txt and
// every node's log. It returns the directory.
func SaveArtifacts(c Cluster, rep *Report, records []Record, info *porcupine.LinearizationInfo) (string, error) {
	dir := filepath.Join(artifactsRoot(), unsafeName.ReplaceAllString(rep.Test, "_")+"-"+time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	hist, err := json.MarshalIndent(map[string]any{
		"test": rep.Test, "seed": rep.Seed, "faults": rep.Faults.Events, "records": records,
	}, "", " ")
	if err != nil {
		return dir, err
	}
	if err := os.WriteFile(filepath.Join(dir, "history.json"), hist, 0o644); err != nil {
		return dir, err
	}
	if info != nil {
		var ann []porcupine.Annotation
		for _, ev := range rep.Faults.Events {
			ann = append(ann, porcupine.Annotation{
				Tag: "faults", Start: ev.Start, End: ev.Recovered,
				Description: fmt.Sprintf("%s %s", ev.Failpoint, ev.Node),
				Details:     fmt.Sprintf("cycle %d; back after %v, recovered after %v %s", ev.Cycle, time.Duration(ev.Injected-ev.Start), time.Duration(ev.Recovered-ev.Start), ev.Err),
			})
		}
		info.AddAnnotations(ann)
		if err := porcupine.VisualizePath(RegisterModel, *info, filepath.Join(dir, "history.html")); err != nil {
			return dir, fmt.Errorf("visualization: %w", err)
		}
	}
	rep.Artifacts = dir
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(rep.String()), 0o644); err != nil {
		return dir, err
	}
	for name, h := range rep.Histories {
		b, err := json.MarshalIndent(h, "", " ")
		if err != nil {
			return dir, err
		}
		if err := os.WriteFile(filepath.Join(dir, unsafeName.ReplaceAllString(name, "_")+".json"), b, 0o644); err != nil {
			return dir, err
		}
	}
	nodes := c.Nodes()
	if l, ok := c.(interface{ LoggedNodes() []string }); ok {
		nodes = l.LoggedNodes() // nodes scaled in too
	}
	for _, n := range nodes {
		if err := os.WriteFile(filepath.Join(dir, n+".log"), []byte(c.Logs(n)), 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

func sortedKeys(m map[KeyRef]string) []KeyRef {
	keys := make([]KeyRef, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
