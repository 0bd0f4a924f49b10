package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"time"
)

// A Failpoint hurts one node of a cluster and undoes the harm (restarts,
// resumes) before it returns; the loop then waits for the cluster to
// recover.
type Failpoint interface {
	Name() string
	Inject(c Cluster, node string, rng *rand.Rand) error
}

// KillFailpoint kills a node with SIGKILL and restarts it on the same data
// after a short random delay.
type KillFailpoint struct {
	MinDelay, MaxDelay time.Duration // default 200 ms … 1.5 s
}

// Name implements Failpoint.
func (KillFailpoint) Name() string { return "kill" }

// Inject implements Failpoint.
func (f KillFailpoint) Inject(c Cluster, node string, rng *rand.Rand) error {
	if f.MaxDelay == 0 {
		f.MinDelay, f.MaxDelay = 200*time.Millisecond, 1500*time.Millisecond
	}
	if err := c.Kill(node); err != nil {
		return err
	}
	time.Sleep(between(rng, f.MinDelay, f.MaxDelay))
	return c.Start(node)
}

// PauseFailpoint freezes a node with SIGSTOP for longer than the election
// timeout, then thaws it with SIGCONT.
type PauseFailpoint struct {
	Pause time.Duration // default 3 s (Raft's default election timeout is 500 ms)
}

// Name implements Failpoint.
func (PauseFailpoint) Name() string { return "pause" }

// Inject implements Failpoint.
func (f PauseFailpoint) Inject(c Cluster, node string, _ *rand.Rand) error {
	if f.Pause == 0 {
		f.Pause = 3 * time.Second
	}
	if err := c.Pause(node); err != nil {
		return err
	}
	time.Sleep(f.Pause)
	return c.Resume(node)
}

// A NodePicker is a Failpoint that chooses its own target when a cycle
// starts (a shard's leader, every node) instead of RunFailpoints' random
// node; the name it returns is passed to Inject and recorded in the event.
type NodePicker interface {
	PickNode(c Cluster, rng *rand.Rand) (string, error)
}

// RestartFailpoint stops a node cleanly with SIGTERM (it hands its shard
// leaderships over) and starts it again.
type RestartFailpoint struct{}

// Name implements Failpoint.
func (RestartFailpoint) Name() string { return "restart" }

// Inject implements Failpoint.
func (RestartFailpoint) Inject(c Cluster, node string, _ *rand.Rand) error {
	stopErr := c.Stop(node)
	if err := c.Start(node); err != nil {
		return errors.Join(stopErr, err)
	}
	return stopErr
}

// FaultConfig configures RunFailpoints. Zero means default.
type FaultConfig struct {
	Seed int64
	// Traffic runs unhurt for a random time in [MinInterval, MaxInterval]
	// between the recovery from one fault and the next fault.
	MinInterval, MaxInterval time.Duration // default 1 s … 3 s
	MaxCycles                int           // default 30
	RecoveryTimeout          time.Duration // default 30 s
	Logf                     func(format string, args ...any)
}

// FaultEvent is one fault cycle, in the recorder's clock.
type FaultEvent struct {
	Cycle     int    `json:"cycle"`
	Failpoint string `json:"failpoint"`
	Node      string `json:"node"`
	Start     int64  `json:"start"`
	Injected  int64  `json:"injected"` // when the node was back (restarted, resumed)
	Recovered int64  `json:"recovered"`
	Err       string `json:"error,omitempty"`
}

// FaultReport is what RunFailpoints did.
type FaultReport struct {
	Cycles int
	Events []FaultEvent
	// Err is set when a fault could not be injected or undone, or when
	// the cluster did not recover in time; the loop stops there.
	Err error
}

// RunFailpoints injects fp into random nodes of c (chosen by a generator
// seeded with cfg.Seed, so a run's schedule can be replayed) until ctx
// ends or MaxCycles cycles are done. A cycle that has started always
// finishes: the node is brought back and the cluster's recovery awaited
// (/readyz on every node), even after ctx has ended.
func RunFailpoints(ctx context.Context, c Cluster, fp Failpoint, rec *Recorder, cfg FaultConfig) FaultReport {
	if cfg.MaxInterval == 0 {
		cfg.MinInterval, cfg.MaxInterval = time.Second, 3*time.Second
	}
	if cfg.MaxCycles == 0 {
		cfg.MaxCycles = 30
	}
	if cfg.RecoveryTimeout == 0 {
		cfg.RecoveryTimeout = 30 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	var rep FaultReport
	for rep.Cycles < cfg.MaxCycles {
		wait := between(rng, cfg.MinInterval, cfg.MaxInterval)
		nodes := c.Nodes()
		node := nodes[rng.Intn(len(nodes))]
		if !sleep(ctx, wait) {
			return rep
		}
		if ctx.Err() != nil {
			return rep
		}
		var err error
		if p, ok := fp.(NodePicker); ok {
			node, err = p.PickNode(c, rng)
		}
		ev := FaultEvent{Cycle: rep.Cycles + 1, Failpoint: fp.Name(), Node: node, Start: rec.Now()}
		cfg.Logf("fault %d: %s %s", ev.Cycle, fp.Name(), node)
		if err == nil {
			err = fp.Inject(c, node, rng)
		}
		ev.Injected = rec.Now()
		if err == nil {
			rctx, cancel := context.WithTimeout(context.Background(), cfg.RecoveryTimeout)
			if herr := WaitHealthy(rctx, c); herr != nil {
				err = fmt.Errorf("the cluster did not recover within %v after %s %s: %w", cfg.RecoveryTimeout, fp.Name(), node, herr)
			}
			cancel()
		}
		ev.Recovered = rec.Now()
		if err != nil {
			ev.Err = err.Error()
			rep.Events = append(rep.Events, ev)
			rep.Err = fmt.Errorf("fault %d (%s %s): %w", ev.Cycle, fp.Name(), node, err)
			return rep
		}
		cfg.Logf("fault %d: recovered after %v", ev.Cycle, time.Duration(ev.Recovered-ev.Start).Round(time.Millisecond))
		rep.Events = append(rep.Events, ev)
		rep.Cycles++
	}
	return rep
}

// between returns a random duration in [lo, hi].
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int63n(int64(hi-lo)+1))
}
