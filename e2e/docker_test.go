package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The docker suite: the same traffic, failpoint loop and verdicts as the
// process suite, against docker-compose.yml's three containers, with
// docker's faults — kill -9 of the busiest shard's leader, the cgroup
// freezer, network disconnects, a whole-cluster restart (clean, or kill -9
// of every node at once) and a rolling one —
// and membership changes: two nodes of the compose profile "scale" join,
// or are drained and stopped. Every scenario runs, on a fresh compose
// project, four workloads at once: registers (get, put, tx
// compare-and-set), a counter (incr), SQL inserts and selects, and alarms
// delivered to a webhook in the test process.

// Bounds of a docker scenario beyond the process suite's.
const (
	dockerRecoveryTimeout = 60 * time.Second // a fault cycle's recovery: restarts take longer in containers
	membersTimeout        = 30 * time.Second // gossip's convergence after traffic
	// dockerCheckTimeout bounds porcupine: a whole-cluster restart leaves
	// many unknown outcomes, each of which may linearize anywhere after its
	// call, and the search takes seconds where it took milliseconds.
	dockerCheckTimeout = 2 * time.Minute
	// settleTimeout bounds the rebalancing after a join or a drain: every
	// shard's voters where placement puts them (about 20 s on an idle
	// cluster of two CPUs).
	settleTimeout = 3 * time.Minute
	// scaleTrafficMax bounds a scale scenario's traffic, which runs until
	// the membership change is done and a while after.
	scaleTrafficMax = 6 * time.Minute
	// faultGapMax is the longest the fault loop lets traffic run unhurt
	// before a cycle (it waits 1 s to faultGapMax); it stops after
	// faultCyclesMax cycles.
	faultGapMax    = 3 * time.Second
	faultCyclesMax = 30
	// deadlineMargin is how long before go test's -timeout a scenario
	// still running saves its evidence: the timeout's panic runs no
	// cleanup.
	deadlineMargin = 30 * time.Second
)

// dockerSettings skips the test unless CAIRN_E2E_DOCKER=1, and reads the
// same knobs as the process suite (CAIRN_E2E_DURATION, CAIRN_E2E_SEED,
// CAIRN_E2E_SAVE, CAIRN_E2E_ARTIFACTS).
func dockerSettings(t *testing.T) settings {
	t.Helper()
	if os.Getenv("CAIRN_E2E_DOCKER") != "1" {
		t.Skip("the docker suite runs docker-compose.yml's cluster; run it with scripts/e2e-docker.sh " +
			"(or: scripts/build-image.sh && CAIRN_E2E_DOCKER=1 go test -v -timeout 20m -run Docker ./e2e/)")
	}
	return readSettings(t)
}

// Each fault scenario names the longest one of its cycles should take —
// the fault, its undoing and the cluster's recovery — with room for a
// loaded machine: with at most faultGapMax of traffic before each cycle,
// it fixes the fewest cycles a run must inject (minCycles).

// TestDockerKillLeader: docker kill -s KILL the leader of the busiest shard,
// docker start it after 0.2–1.5 s, repeat. A cycle: at most 1.5 s down,
// then a container start and every node ready (a few seconds): 20 s.
func TestDockerKillLeader(t *testing.T) { runDockerScenario(t, KillLeaderFailpoint{}, 20*time.Second) }

// TestDockerPause: docker pause a random node for 3 s (past the election
// timeout), unpause, repeat. A cycle: 3 s frozen, then ready again: 15 s.
func TestDockerPause(t *testing.T) {
	runDockerScenario(t, PauseFailpoint{Pause: 3 * time.Second}, 15*time.Second)
}

// TestDockerIsolateLeader: disconnect the busiest shard's leader from the
// cluster network for 4 s, reconnect it, repeat. A cycle: 4 s cut off,
// then ready again: 15 s.
func TestDockerIsolateLeader(t *testing.T) {
	runDockerScenario(t, IsolateFailpoint{Leader: true, Hold: 4 * time.Second}, 15*time.Second)
}

// TestDockerPartition: a random node (the minority) against the other two
// (the majority) for 15 s, then heal, repeat. Unlike the leader's short
// isolation, the partition outlasts gossip's failure detection (memberlist
// declares an unreachable member dead after about 5 s in a 3-node
// cluster), so both sides must also find each other again in gossip. A
// cycle: 15 s apart, then ready again: 30 s.
func TestDockerPartition(t *testing.T) {
	runDockerScenario(t, IsolateFailpoint{Hold: 15 * time.Second}, 30*time.Second)
}

// TestDockerRestartAll: docker restart every node at once, repeat. A
// cycle: a clean stop (at most -shutdown-timeout 10 s), a start, every
// node ready: 40 s.
func TestDockerRestartAll(t *testing.T) { runDockerScenario(t, RestartAllFailpoint{}, 40*time.Second) }

// TestDockerCrashAll: docker kill -s KILL every node at once (a power
// loss: no leadership handed over, nothing flushed but what each node
// synced), docker start them all once all are down, repeat. A cycle: the
// kills (no shutdown grace), three starts and every node ready: 30 s.
func TestDockerCrashAll(t *testing.T) {
	runDockerScenario(t, RestartAllFailpoint{Kill: true}, 30*time.Second)
}

// TestDockerRollingRestart: docker restart n1, n2, n3 one by one, each once
// the cluster is ready again, repeat. A cycle: three restarts in a row:
// 60 s.
func TestDockerRollingRestart(t *testing.T) {
	runDockerScenario(t, RollingRestartFailpoint{}, 60*time.Second)
}

// TestDockerScaleOut: n1, n2, n3 under traffic; n4 and n5 start with -join
// (compose profile "scale"); traffic goes on until every shard's voters
// are where placement puts them over five nodes (n4 and n5 among them), and
// a while after.
func TestDockerScaleOut(t *testing.T) {
	d := newDockerScenario(t, "scale-out", 0)
	s, c, rec, rep, w := d.s, d.c, d.rec, d.rep, d.w
	w.side.setup(t, c)
	endpoints := c.Endpoints()
	rep.Traffic = runAround(func(ctx context.Context) { w.run(ctx, endpoints) }, func() {
		time.Sleep(s.traffic / 3)
		ev := FaultEvent{Cycle: 1, Failpoint: "scale-out", Node: strings.Join(scaleNodes, "+"), Start: rec.Now()}
		t.Logf("scale-out: starting %v", scaleNodes)
		err := c.AddNodes(scaleNodes...)
		ev.Injected = rec.Now()
		v := Verdict{Name: "scale-out"}
		if err == nil {
			var p Placement
			var took time.Duration
			p, took, err = WaitPlacement(c, c.Nodes(), 3, nil, settleTimeout)
			if err == nil {
				for _, n := range scaleNodes {
					if p.Held[n] == 0 {
						err = fmt.Errorf("%s holds no replica once settled (%v)", n, p)
					}
				}
			}
			v.Detail = fmt.Sprintf("%v joined; placement settled %v after they started (%v after they answered): %v",
				scaleNodes, time.Duration(rec.Now()-ev.Start).Round(time.Millisecond), took.Round(time.Millisecond), p)
		}
		ev.Recovered = rec.Now()
		w.scaleStep(t, rep, ev, v, err)
		time.Sleep(s.traffic / 3)
	})
	d.check()
}

// TestDockerScaleIn: five nodes with their shards settled; under traffic
// (to n1, n2, n3), n4 and n5 are drained through n1 (POST
// /v1/cluster/nodes/{id}/drain) until they hold no replica and every
// shard's voters are n1, n2 and n3, then stopped; traffic goes on a while.
func TestDockerScaleIn(t *testing.T) {
	d := newDockerScenario(t, "scale-in", 0)
	s, c, rec, rep, w := d.s, d.c, d.rec, d.rep, d.w
	if err := c.AddNodes(scaleNodes...); err != nil {
		t.Fatal(err)
	}
	p, took, err := WaitPlacement(c, c.Nodes(), 3, nil, settleTimeout)
	if err != nil {
		rep.Verdicts = append(rep.Verdicts, Verdict{Name: "scale-out", Detail: "before traffic: " + err.Error()})
		d.finish(nil, nil)
		return
	}
	t.Logf("five nodes settled after %v: %v", took.Round(time.Millisecond), p)
	ctx, cancel := context.WithTimeout(context.Background(), dockerRecoveryTimeout)
	err = WaitHealthy(ctx, c)
	cancel()
	if err != nil {
		t.Fatalf("e2e: five nodes not ready: %v", err)
	}
	w.side.setup(t, c)
	stay := c.Endpoints()[:len(dockerNodes)]
	rep.Traffic = runAround(func(ctx context.Context) { w.run(ctx, stay) }, func() {
		time.Sleep(s.traffic / 3)
		ev := FaultEvent{Cycle: 1, Failpoint: "scale-in", Node: strings.Join(scaleNodes, "+"), Start: rec.Now()}
		v := Verdict{Name: "scale-in"}
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, n := range scaleNodes {
				t.Logf("scale-in: draining %s through %s", n, stay[0])
				if err := Drain(ctx, stay[0], n); err != nil {
					return err
				}
			}
			_, drained, err := WaitPlacement(c, dockerNodes, 3, scaleNodes, settleTimeout)
			if err != nil {
				return fmt.Errorf("draining: %w", err)
			}
			ev.Injected = rec.Now()
			for _, n := range scaleNodes {
				if err := c.Retire(n); err != nil {
					return err
				}
			}
			// Every shard keeps its three voters once the drained nodes
			// are gone.
			p, _, err := WaitPlacement(c, dockerNodes, 3, nil, 30*time.Second)
			if err != nil {
				return fmt.Errorf("after stopping %v: %w", scaleNodes, err)
			}
			v.Detail = fmt.Sprintf("%v drained in %v and stopped: %v", scaleNodes, drained.Round(time.Millisecond), p)
			return nil
		}()
		if ev.Injected == 0 {
			ev.Injected = rec.Now()
		}
		ev.Recovered = rec.Now()
		w.scaleStep(t, rep, ev, v, err)
		time.Sleep(s.traffic / 3)
	})
	d.check()
}

// runDockerScenario runs every workload under fp on a fresh compose
// project, then checks them all and gossip membership. cycle bounds one
// of fp's cycles.
func runDockerScenario(t *testing.T, fp Failpoint, cycle time.Duration) {
	d := newDockerScenario(t, fp.Name(), cycle)
	d.w.side.setup(t, d.c)
	d.rep.Faults, d.rep.Traffic = dockerWithFaults(t, d.c, fp, d.rec, d.s, func(ctx context.Context) {
		d.w.run(ctx, d.c.Endpoints())
	})
	d.check()
}

// dockerScenario is one docker scenario: its cluster, workloads, history
// and report, and the evidence and summary it leaves however it ends.
type dockerScenario struct {
	t     *testing.T
	s     settings
	c     *DockerCluster
	rec   *Recorder
	rep   *Report
	w     *dockerWorkloads
	fault string        // the failpoint's name, or the membership change
	cycle time.Duration // the longest a fault cycle should take; 0: one membership change

	mu      sync.Mutex // guards done and stopped
	done    bool       // the verdicts are in, or the evidence of an early end is saved
	stopped bool       // the test is ending: the deadline's timer must not save
}

// newDockerScenario brings up a fresh compose project for the test,
// configures its workloads (a scale scenario's, with cycle 0, run longer)
// and arranges for its evidence to be saved if it fails before its
// verdicts: in the test's cleanup before the project is removed (t.Fatal,
// a panic) and shortly before go test's -timeout ends the process.
func newDockerScenario(t *testing.T, fault string, cycle time.Duration) *dockerScenario {
	s := dockerSettings(t)
	d := &dockerScenario{t: t, s: s, rec: NewRecorder(), rep: &Report{Test: t.Name(), Seed: s.seed}, fault: fault, cycle: cycle}
	traffic := s.traffic
	if cycle == 0 {
		traffic = scaleTrafficMax
	}
	d.w = newDockerWorkloads(d.rec, s, traffic)
	d.c = NewDockerCluster(t, DockerClusterConfig{OnFailure: func(dc *DockerCluster) {
		d.endEarly(dc, "the test failed before its verdicts (its log says why)", false)
	}})
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) > deadlineMargin {
		timer := time.AfterFunc(time.Until(deadline)-deadlineMargin, func() {
			d.endEarly(d.c, fmt.Sprintf("go test -timeout ends the run at %s, in %v: what there is so far",
				deadline.Format(time.TimeOnly), deadlineMargin), true)
		})
		// Registered after NewDockerCluster's cleanups, so it runs first.
		t.Cleanup(func() {
			timer.Stop()
			d.mu.Lock()
			d.stopped = true
			d.mu.Unlock()
		})
	}
	return d
}

// check checks the workloads and the number of fault cycles, and
// finishes.
func (d *dockerScenario) check() {
	records, info := d.w.check(d.t, d.c, d.rep)
	d.finish(records, &info)
}

// finish adds the fault-cycles verdict, reports (saving the evidence if
// a verdict failed), and writes the summary line.
func (d *dockerScenario) finish(records []Record, info *porcupine.LinearizationInfo) {
	d.t.Helper()
	d.mu.Lock()
	d.done = true // the deadline's timer, if it fires now, has nothing to add
	d.mu.Unlock()
	rep := d.rep
	rep.Verdicts = append(rep.Verdicts, d.cyclesVerdict())
	finish(d.t, d.c, rep, records, info)
	var failed []string
	for _, v := range rep.Verdicts {
		if !v.OK {
			failed = append(failed, v.Name)
		}
	}
	line := fmt.Sprintf("%d %s cycles (min %d) in %v of traffic; checked %s; %d/%d verdicts pass",
		rep.Faults.Cycles, d.fault, d.minCycles(rep.Traffic), rep.Traffic.Round(100*time.Millisecond),
		d.w.opCounts(records), len(rep.Verdicts)-len(failed), len(rep.Verdicts))
	if len(failed) > 0 {
		line += ", failed: " + strings.Join(failed, " ")
	}
	if rep.Faults.Err != nil {
		line += "; fault loop stopped: " + rep.Faults.Err.Error()
	}
	d.summarize(rep, line)
}

// minCycles is the fewest fault cycles traffic of the given length must
// have seen. The loop waits at most faultGapMax before each cycle, and a
// cycle takes at most d.cycle, so cycle k starts by k·faultGapMax +
// (k−1)·d.cycle, and one that starts before traffic ends runs to its end.
// At least 1, however short the traffic: a chaos run that injected
// nothing proves nothing. A scale scenario makes its one change.
func (d *dockerScenario) minCycles(traffic time.Duration) int {
	n := 1
	for d.cycle > 0 && n < faultCyclesMax && time.Duration(n+1)*faultGapMax+time.Duration(n)*d.cycle < traffic {
		n++
	}
	return n
}

// cyclesVerdict fails a run that injected fewer cycles than minCycles.
func (d *dockerScenario) cyclesVerdict() Verdict {
	n, least := d.rep.Faults.Cycles, d.minCycles(d.rep.Traffic)
	v := Verdict{Name: "fault-cycles", OK: n >= least,
		Detail: fmt.Sprintf("%d cycles of %s in %v of traffic; at least %d", n, d.fault, d.rep.Traffic.Round(100*time.Millisecond), least)}
	if d.cycle > 0 {
		v.Detail += fmt.Sprintf(" (each within %v of the last and taking at most %v)", faultGapMax, d.cycle)
	}
	return v
}

// endEarly saves what a scenario that ends before its verdicts has — the
// register, counter, SQL and alarm histories so far and every node's log —
// under the artifacts directory, and writes its summary line. It does
// nothing once the scenario has finished, nor, called by the deadline's
// timer, once the test is ending.
func (d *dockerScenario) endEarly(c Cluster, why string, timer bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done || timer && d.stopped {
		return
	}
	d.done = true
	rep := &Report{Test: d.t.Name(), Seed: d.s.seed, Verdicts: []Verdict{{Name: "ended-early", Detail: why}},
		Histories: d.w.histories()}
	records := d.rec.Records()
	dir, err := SaveArtifacts(c, rep, records, nil)
	if err != nil {
		d.t.Logf("e2e: saving the evidence in %s: %v", dir, err)
	}
	d.t.Logf("e2e: %s; history and node logs in %s", why, dir)
	// The fault loop's report is not in yet: the node logs' "=== e2e:"
	// lines show the faults.
	d.summarize(rep, fmt.Sprintf("ended early: %s; recorded %s", why, d.w.opCounts(records)))
}

// summarize logs the scenario's one-line summary — PASS or FAIL, what
// says (fault cycles, operations checked per workload, verdicts), the
// artifacts — and appends it to $CAIRN_E2E_SUMMARY if set
// (scripts/e2e-docker.sh prints that file at the end).
func (d *dockerScenario) summarize(rep *Report, what string) {
	status := "PASS"
	if rep.Failed() {
		status = "FAIL"
	}
	line := rep.Test + " " + status + ": " + what
	if rep.Artifacts != "" {
		line += "; artifacts " + rep.Artifacts
	}
	d.t.Logf("summary: %s", line)
	if path := os.Getenv("CAIRN_E2E_SUMMARY"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, line)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			d.t.Logf("e2e: writing the summary to %s: %v", path, err)
		}
	}
}

// dockerWorkloads are a docker scenario's four workloads.
type dockerWorkloads struct {
	rec  *Recorder
	kv   KVTrafficConfig
	ctr  CounterTrafficConfig
	side *sideWorkloads
}

// newDockerWorkloads configures the workloads for traffic of duration. A
// long traffic (a scale scenario's, ended by the scenario) is paced slower
// and bounded higher, so that it lasts and its history stays checkable.
func newDockerWorkloads(rec *Recorder, s settings, duration time.Duration) *dockerWorkloads {
	w := &dockerWorkloads{
		rec: rec,
		kv:  KVTrafficConfig{Duration: duration, Seed: s.seed},
		ctr: CounterTrafficConfig{Duration: duration, Clients: 4, OpsPerSecond: 10},
	}
	sql := &SQLTrafficConfig{Duration: duration, Seed: s.seed}
	alarms := &AlarmTrafficConfig{Duration: duration, Seed: s.seed}
	if duration == scaleTrafficMax {
		w.kv.OpsPerSecond, w.kv.MaxOps = 10, 20000
		w.ctr.MaxOps = 12000
		sql.MaxOps = 12000
		alarms.MaxOps = 6000
	}
	w.side = newSideWorkloads(rec, sql, alarms)
	return w
}

// run runs every workload against endpoints until ctx ends or the
// duration passes.
func (w *dockerWorkloads) run(ctx context.Context, endpoints []string) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); RunKVTraffic(ctx, endpoints, w.rec, w.kv) }()
	go func() { defer wg.Done(); RunCounterTraffic(ctx, endpoints, w.rec, w.ctr) }()
	go func() { defer wg.Done(); w.side.run(ctx, endpoints) }()
	wg.Wait()
}

// scaleStep records a membership change as the report's fault event and
// its verdict.
func (w *dockerWorkloads) scaleStep(t *testing.T, rep *Report, ev FaultEvent, v Verdict, err error) {
	if err != nil {
		ev.Err = err.Error()
		v.Detail = err.Error()
	} else {
		v.OK = true
		rep.Faults.Cycles++
	}
	t.Logf("%s: %s", v.Name, v.Detail)
	rep.Faults.Events = append(rep.Faults.Events, ev)
	rep.Verdicts = append(rep.Verdicts, v)
}

// check waits for the cluster's recovery, reads the final state, and
// checks linearizability, durability, the counter, replica agreement, the
// SQL and alarm workloads and gossip membership. It returns the checked
// history and porcupine's account of it.
func (w *dockerWorkloads) check(t *testing.T, c Cluster, rep *Report) ([]Record, porcupine.LinearizationInfo) {
	rec := w.rec
	rep.Counts = CountRecords(rec.Records())

	// The final reads need a cluster that recovered; the history is
	// checked either way.
	var (
		finals  map[KeyRef]string
		counter int64
		cerr    = errors.New("the cluster did not recover")
	)
	kv, ctr := w.kv, w.ctr.withDefaults()
	ok := recovered(t, c, rep)
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), finalReadWait)
		var err error
		finals, err = ReadFinal(ctx, c.Endpoints(), rec, kv.Registers(), kv.Client)
		cancel()
		if err != nil {
			rep.Verdicts = append(rep.Verdicts, Verdict{Name: "final-read", Detail: err.Error()})
			finals = nil
		}
		if counter, cerr = readCounterFinal(c, ctr); cerr != nil {
			rep.Verdicts = append(rep.Verdicts, Verdict{Name: "final-read", Detail: "counter: " + cerr.Error()})
		}
	}

	records := rec.Records()
	lin, info := CheckLinearizable(PorcupineHistory(records), dockerCheckTimeout)
	rep.Verdicts = append(rep.Verdicts, lin)
	if finals != nil {
		rep.Verdicts = append(rep.Verdicts, CheckDurability(records, finals))
	}
	if cerr == nil {
		rep.Verdicts = append(rep.Verdicts, CheckCounter(CountIncrements(records), counter))
	}
	if finals != nil && cerr == nil {
		regs := append(kv.Registers(), KeyRef{ctr.Object, ctr.Key})
		finals[KeyRef{ctr.Object, ctr.Key}] = strconv.FormatInt(counter, 10)
		rep.Verdicts = append(rep.Verdicts, CheckReplicas(c, regs, finals, replicasTimeout, kv.Client))
	}
	w.side.check(c, rep, ok)
	if ok {
		rep.Verdicts = append(rep.Verdicts, CheckMembership(c, membersTimeout))
	}
	return records, info
}

// opCounts says how many operations of each workload the verdicts judged
// (or, before them, were recorded): register gets, puts and CASes
// (refused ones left out, as the linearizability check leaves them),
// counter increments, SQL inserts and selects, alarm sets.
func (w *dockerWorkloads) opCounts(records []Record) string {
	regs, incrs := 0, 0
	for _, r := range records {
		switch {
		case r.Input.Op == OpIncr:
			incrs++
		case !r.Refused:
			regs++
		}
	}
	return fmt.Sprintf("%d register ops, %d counter incrs, %d SQL ops, %d alarms",
		regs, incrs, len(w.side.sqlHist.Ops()), len(w.side.alarmHist.Ops()))
}

// histories returns the SQL and alarm histories so far, as the report
// keeps them.
func (w *dockerWorkloads) histories() map[string]any {
	var ds []Delivery
	if w.side.recv != nil {
		ds = w.side.recv.Deliveries()
	}
	return map[string]any{"sql": w.side.sqlHist.Ops(), "alarms": map[string]any{"sets": w.side.alarmHist.Ops(), "deliveries": ds}}
}

// runAround runs traffic while script runs, stops it when script returns,
// and returns how long traffic ran.
func runAround(traffic func(context.Context), script func()) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); traffic(ctx) }()
	script()
	cancel()
	<-done
	return time.Since(start)
}

// dockerWithFaults is withFaults with the docker suite's recovery bound.
func dockerWithFaults(t *testing.T, c Cluster, fp Failpoint, rec *Recorder, s settings, traffic func(context.Context)) (FaultReport, time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		rep FaultReport
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep = RunFailpoints(ctx, c, fp, rec, FaultConfig{Seed: s.seed, Logf: t.Logf, RecoveryTimeout: dockerRecoveryTimeout,
			MinInterval: time.Second, MaxInterval: faultGapMax, MaxCycles: faultCyclesMax})
	}()
	start := time.Now()
	traffic(ctx)
	took := time.Since(start)
	cancel()
	wg.Wait()
	return rep, took
}

// readCounterFinal reads the counter linearizably once the cluster is
// quiet, retrying for up to finalReadWait.
func readCounterFinal(c Cluster, cfg CounterTrafficConfig) (int64, error) {
	cl := NewClient(0, c.Endpoints(), NewRecorder(), cfg.Client)
	defer cl.Close()
	deadline := time.Now().Add(finalReadWait)
	for {
		v, err := cl.ReadCounter(cfg.Object, cfg.Key)
		if err == nil || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}
