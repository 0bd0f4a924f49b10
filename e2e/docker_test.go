package e2e

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The docker suite: the same traffic, failpoint loop and verdicts as the
// process suite, against docker-compose.yml's three containers, with
// docker's faults — kill -9 of the busiest shard's leader, the cgroup
// freezer, network disconnects, a whole-cluster restart and a rolling one.
// Every scenario runs the register workload (get, put, tx compare-and-set)
// and the counter workload (incr) at once, on a fresh compose project.

// Bounds of a docker scenario beyond the process suite's.
const (
	dockerRecoveryTimeout = 60 * time.Second // a fault cycle's recovery: restarts take longer in containers
	membersTimeout        = 30 * time.Second // gossip's convergence after traffic
	// dockerCheckTimeout bounds porcupine: a whole-cluster restart leaves
	// many unknown outcomes, each of which may linearize anywhere after its
	// call, and the search takes seconds where it took milliseconds.
	dockerCheckTimeout = 2 * time.Minute
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

// runDockerScenario runs both workloads under fp on a fresh compose
// project, then checks linearizability, durability, the counter, replica
// agreement and gossip membership.
func runDockerScenario(t *testing.T, fp Failpoint) {
	s := dockerSettings(t)
	c := NewDockerCluster(t, DockerClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	kv := KVTrafficConfig{Duration: s.traffic, Seed: s.seed}
	ctr := CounterTrafficConfig{Duration: s.traffic, Clients: 4, OpsPerSecond: 10}
	rep.Faults, rep.Traffic = dockerWithFaults(t, c, fp, rec, s, func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); RunKVTraffic(ctx, c.Endpoints(), rec, kv) }()
		go func() { defer wg.Done(); RunCounterTraffic(ctx, c.Endpoints(), rec, ctr) }()
		wg.Wait()
	})
	rep.Counts = CountRecords(rec.Records())

	// The final reads need a cluster that recovered; the history is
	// checked either way.
	var (
		finals  map[KeyRef]string
		counter int64
		cerr    = errors.New("the cluster did not recover")
	)
	ctr = ctr.withDefaults()
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
	if ok {
		rep.Verdicts = append(rep.Verdicts, CheckMembership(c, membersTimeout))
	}
	finish(t, c, rep, records, &info)
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
