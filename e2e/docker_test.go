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
)

// The docker suite: the same traffic, failpoint loop and verdicts as the
// process suite, against docker-compose.yml's three containers, with
// docker's faults — kill -9 of the busiest shard's leader, the cgroup
// freezer, network disconnects, a whole-cluster restart and a rolling one —
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

// TestDockerKillLeader: docker kill -s KILL the leader of the busiest shard,
// docker start it after 0.2–1.5 s, repeat.
func TestDockerKillLeader(t *testing.T) { runDockerScenario(t, KillLeaderFailpoint{}) }

// TestDockerPause: docker pause a random node for 3 s (past the election
// timeout), unpause, repeat.
func TestDockerPause(t *testing.T) { runDockerScenario(t, PauseFailpoint{Pause: 3 * time.Second}) }

// TestDockerIsolateLeader: disconnect the busiest shard's leader from the
// cluster network for 4 s, reconnect it, repeat.
func TestDockerIsolateLeader(t *testing.T) {
	runDockerScenario(t, IsolateFailpoint{Leader: true, Hold: 4 * time.Second})
}

// TestDockerPartition: a random node (the minority) against the other two
// (the majority) for 15 s, then heal, repeat. Unlike the leader's short
// isolation, the partition outlasts gossip's failure detection (memberlist
// declares an unreachable member dead after about 5 s in a 3-node
// cluster), so both sides must also find each other again in gossip.
func TestDockerPartition(t *testing.T) {
	runDockerScenario(t, IsolateFailpoint{Hold: 15 * time.Second})
}

// TestDockerRestartAll: docker restart every node at once, repeat.
func TestDockerRestartAll(t *testing.T) { runDockerScenario(t, RestartAllFailpoint{}) }

// TestDockerRollingRestart: docker restart n1, n2, n3 one by one, each once
// the cluster is ready again, repeat.
func TestDockerRollingRestart(t *testing.T) { runDockerScenario(t, RollingRestartFailpoint{}) }

// TestDockerScaleOut: n1, n2, n3 under traffic; n4 and n5 start with -join
// (compose profile "scale"); traffic goes on until every shard's voters
// are where placement puts them over five nodes (n4 and n5 among them), and
// a while after.
func TestDockerScaleOut(t *testing.T) {
	s := dockerSettings(t)
	c := NewDockerCluster(t, DockerClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	w := newDockerWorkloads(rec, s, scaleTrafficMax)
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
	w.check(t, c, rep)
}

// TestDockerScaleIn: five nodes with their shards settled; under traffic
// (to n1, n2, n3), n4 and n5 are drained through n1 (POST
// /v1/cluster/nodes/{id}/drain) until they hold no replica and every
// shard's voters are n1, n2 and n3, then stopped; traffic goes on a while.
func TestDockerScaleIn(t *testing.T) {
	s := dockerSettings(t)
	c := NewDockerCluster(t, DockerClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	if err := c.AddNodes(scaleNodes...); err != nil {
		t.Fatal(err)
	}
	p, took, err := WaitPlacement(c, c.Nodes(), 3, nil, settleTimeout)
	if err != nil {
		rep.Verdicts = append(rep.Verdicts, Verdict{Name: "scale-out", Detail: "before traffic: " + err.Error()})
		finish(t, c, rep, nil, nil)
		return
	}
	t.Logf("five nodes settled after %v: %v", took.Round(time.Millisecond), p)
	ctx, cancel := context.WithTimeout(context.Background(), dockerRecoveryTimeout)
	err = WaitHealthy(ctx, c)
	cancel()
	if err != nil {
		t.Fatalf("e2e: five nodes not ready: %v", err)
	}
	w := newDockerWorkloads(rec, s, scaleTrafficMax)
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
	w.check(t, c, rep)
}

// runDockerScenario runs every workload under fp on a fresh compose
// project, then checks them all and gossip membership.
func runDockerScenario(t *testing.T, fp Failpoint) {
	s := dockerSettings(t)
	c := NewDockerCluster(t, DockerClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	w := newDockerWorkloads(rec, s, s.traffic)
	w.side.setup(t, c)
	rep.Faults, rep.Traffic = dockerWithFaults(t, c, fp, rec, s, func(ctx context.Context) {
		w.run(ctx, c.Endpoints())
	})
	w.check(t, c, rep)
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
// SQL and alarm workloads and gossip membership; then reports.
func (w *dockerWorkloads) check(t *testing.T, c Cluster, rep *Report) {
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
	finish(t, c, rep, records, &info)
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
		rep = RunFailpoints(ctx, c, fp, rec, FaultConfig{Seed: s.seed, Logf: t.Logf, RecoveryTimeout: dockerRecoveryTimeout})
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
