package e2e

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuild()
	os.Exit(code)
}

// Bounds of a scenario beyond its traffic.
const (
	defaultTraffic  = 30 * time.Second
	recoverTimeout  = 30 * time.Second // the cluster's recovery after traffic
	finalReadWait   = 30 * time.Second
	replicasTimeout = 20 * time.Second
	checkTimeout    = 30 * time.Second // porcupine; a few thousand operations take well under 1 s
)

// settings are a run's knobs, from the environment.
type settings struct {
	traffic time.Duration
	seed    int64
}

// e2eSettings skips the test unless CAIRN_E2E=1, and reads
// CAIRN_E2E_DURATION (traffic per scenario) and CAIRN_E2E_SEED (replay).
func e2eSettings(t *testing.T) settings {
	t.Helper()
	if os.Getenv("CAIRN_E2E") != "1" {
		t.Skip("the robustness suite runs real node processes; run it with: CAIRN_E2E=1 go test -v -timeout 15m ./e2e/")
	}
	return readSettings(t)
}

// readSettings reads CAIRN_E2E_DURATION and CAIRN_E2E_SEED.
func readSettings(t *testing.T) settings {
	t.Helper()
	s := settings{traffic: defaultTraffic, seed: time.Now().UnixNano()}
	if v := os.Getenv("CAIRN_E2E_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CAIRN_E2E_DURATION=%q: want a positive duration such as 30s", v)
		}
		s.traffic = d
	}
	if v := os.Getenv("CAIRN_E2E_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CAIRN_E2E_SEED=%q: want an integer", v)
		}
		s.seed = n
	}
	t.Logf("seed %d (replay the fault schedule and the workload's choices with CAIRN_E2E_SEED=%d), traffic %v", s.seed, s.seed, s.traffic)
	return s
}

// TestRobustnessKill: kill -9 a random node, restart it, repeat.
func TestRobustnessKill(t *testing.T) { runRegisterScenario(t, KillFailpoint{}) }

// TestRobustnessPause: SIGSTOP a random node past the election timeout,
// then SIGCONT, repeat.
func TestRobustnessPause(t *testing.T) { runRegisterScenario(t, PauseFailpoint{}) }

// TestRobustnessRestart: SIGTERM a random node and start it again, repeat.
func TestRobustnessRestart(t *testing.T) { runRegisterScenario(t, RestartFailpoint{}) }

// TestRobustnessCounter: concurrent increments of one counter under kill -9.
func TestRobustnessCounter(t *testing.T) {
	s := e2eSettings(t)
	c := NewProcessCluster(t, ProcessClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	cfg := CounterTrafficConfig{Duration: s.traffic}
	rep.Faults, rep.Traffic = withFaults(t, c, KillFailpoint{}, rec, s, func(ctx context.Context) {
		RunCounterTraffic(ctx, c.Endpoints(), rec, cfg)
	})
	records := rec.Records()
	rep.Counts = CountRecords(records)
	if !recovered(t, c, rep) {
		finish(t, c, rep, records, nil)
		return
	}
	cfg = cfg.withDefaults()
	cl := NewClient(0, c.Endpoints(), NewRecorder(), cfg.Client)
	defer cl.Close()
	var final int64
	var err error
	deadline := time.Now().Add(finalReadWait)
	for final, err = cl.ReadCounter(cfg.Object, cfg.Key); err != nil && time.Now().Before(deadline); final, err = cl.ReadCounter(cfg.Object, cfg.Key) {
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		rep.Verdicts = append(rep.Verdicts, Verdict{Name: "final-read", Detail: err.Error()})
		finish(t, c, rep, records, nil)
		return
	}
	reg := KeyRef{cfg.Object, cfg.Key}
	rep.Verdicts = append(rep.Verdicts,
		CheckCounter(CountIncrements(records), final),
		CheckReplicas(c, []KeyRef{reg}, map[KeyRef]string{reg: strconv.FormatInt(final, 10)}, replicasTimeout, cfg.Client),
	)
	finish(t, c, rep, records, nil)
}

// TestRobustnessSQL: inserts into and reads of the SQLite databases of a
// few objects under kill -9 of a random node and its restart.
func TestRobustnessSQL(t *testing.T) {
	s := e2eSettings(t)
	runSideScenario(t, s, KillFailpoint{}, &SQLTrafficConfig{Duration: s.traffic, Seed: s.seed, Clients: 6, OpsPerSecond: 15}, nil)
}

// TestRobustnessAlarms: alarms set 0.5–5 s ahead, delivered to a webhook
// in the test process, under kill -9 of a random node and its restart.
func TestRobustnessAlarms(t *testing.T) {
	s := e2eSettings(t)
	runSideScenario(t, s, KillFailpoint{}, nil, &AlarmTrafficConfig{Duration: s.traffic, Seed: s.seed})
}

// runSideScenario runs the SQL and/or the alarm workload under fp on a
// fresh process cluster, then checks them.
func runSideScenario(t *testing.T, s settings, fp Failpoint, sql *SQLTrafficConfig, alarms *AlarmTrafficConfig) {
	c := NewProcessCluster(t, ProcessClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	side := newSideWorkloads(rec, sql, alarms)
	side.setup(t, c)
	rep.Faults, rep.Traffic = withFaults(t, c, fp, rec, s, func(ctx context.Context) {
		side.run(ctx, c.Endpoints())
	})
	side.check(c, rep, recovered(t, c, rep))
	finish(t, c, rep, nil, nil)
}

// runRegisterScenario runs the register workload under fp, then checks
// linearizability, durability and replica agreement.
func runRegisterScenario(t *testing.T, fp Failpoint) {
	s := e2eSettings(t)
	c := NewProcessCluster(t, ProcessClusterConfig{})
	rec := NewRecorder()
	rep := &Report{Test: t.Name(), Seed: s.seed}
	cfg := KVTrafficConfig{Duration: s.traffic, Seed: s.seed}
	rep.Faults, rep.Traffic = withFaults(t, c, fp, rec, s, func(ctx context.Context) {
		RunKVTraffic(ctx, c.Endpoints(), rec, cfg)
	})
	rep.Counts = CountRecords(rec.Records())

	var finals map[KeyRef]string
	if recovered(t, c, rep) {
		ctx, cancel := context.WithTimeout(context.Background(), finalReadWait)
		var err error
		finals, err = ReadFinal(ctx, c.Endpoints(), rec, cfg.Registers(), cfg.Client)
		cancel()
		if err != nil {
			rep.Verdicts = append(rep.Verdicts, Verdict{Name: "final-read", Detail: err.Error()})
			finals = nil
		}
	}
	records := rec.Records()
	lin, info := CheckLinearizable(PorcupineHistory(records), checkTimeout)
	rep.Verdicts = append(rep.Verdicts, lin)
	if finals != nil {
		rep.Verdicts = append(rep.Verdicts,
			CheckDurability(records, finals),
			CheckReplicas(c, cfg.Registers(), finals, replicasTimeout, cfg.Client),
		)
	}
	finish(t, c, rep, records, &info)
}

// withFaults runs traffic while a failpoint loop hurts the cluster, stops
// the loop when traffic ends (a started cycle completes), and returns what
// the loop did and how long traffic ran.
func withFaults(t *testing.T, c Cluster, fp Failpoint, rec *Recorder, s settings, traffic func(context.Context)) (FaultReport, time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		rep FaultReport
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep = RunFailpoints(ctx, c, fp, rec, FaultConfig{Seed: s.seed, Logf: t.Logf})
	}()
	start := time.Now()
	traffic(ctx)
	took := time.Since(start)
	cancel()
	wg.Wait()
	return rep, took
}

// recovered waits for every node to be ready after traffic and records a
// failed verdict if they are not.
func recovered(t *testing.T, c Cluster, rep *Report) bool {
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	if err := WaitHealthy(ctx, c); err != nil {
		rep.Verdicts = append(rep.Verdicts, Verdict{Name: "recovered", Detail: err.Error()})
		return false
	}
	return true
}

// finish prints the report and, if anything failed, saves the evidence and
// fails the test.
func finish(t *testing.T, c Cluster, rep *Report, records []Record, info *porcupine.LinearizationInfo) {
	t.Helper()
	if rep.Failed() || os.Getenv("CAIRN_E2E_SAVE") == "1" {
		dir, err := SaveArtifacts(c, rep, records, info)
		if err != nil {
			t.Logf("saving artifacts in %s: %v", dir, err)
		}
	}
	t.Logf("\n%s", rep)
	if rep.Failed() {
		t.Errorf("robustness verdicts failed; history, visualization and node logs in %s (history.json, history.html, n*.log)", rep.Artifacts)
	}
}
