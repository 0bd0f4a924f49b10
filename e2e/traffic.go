package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// KeyRef names one register: a key of an object.
type KeyRef struct {
	Object string
	Key    string
}

func (k KeyRef) String() string { return k.Object + "/" + k.Key }

// KVTrafficConfig configures the register workload. Zero means default.
type KVTrafficConfig struct {
	Clients  int           // concurrent clients; default 8
	Objects  []string      // default "reg-a", "reg-b"
	Keys     []string      // keys on every object; default "k0", "k1" (4 registers)
	Duration time.Duration // default 30 s
	MaxOps   int           // default 8000
	// OpsPerSecond paces each client (default 25/s, so 200/s for 8): the
	// history stays small enough to check, and the machine stays usable.
	OpsPerSecond float64
	// Mix in percent; default 40 get, 40 put, 20 cas (half of them from
	// the value the client last saw, half swaps from the value read).
	GetPercent, PutPercent int
	Seed                   int64
	Client                 ClientConfig
}

func (c KVTrafficConfig) withDefaults() KVTrafficConfig {
	if c.Clients == 0 {
		c.Clients = 8
	}
	if len(c.Objects) == 0 {
		c.Objects = []string{"reg-a", "reg-b"}
	}
	if len(c.Keys) == 0 {
		c.Keys = []string{"k0", "k1"}
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxOps == 0 {
		c.MaxOps = 8000
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 25
	}
	if c.GetPercent == 0 && c.PutPercent == 0 {
		c.GetPercent, c.PutPercent = 40, 40
	}
	return c
}

// Registers lists the registers the workload touches.
func (c KVTrafficConfig) Registers() []KeyRef {
	c = c.withDefaults()
	var out []KeyRef
	for _, o := range c.Objects {
		for _, k := range c.Keys {
			out = append(out, KeyRef{o, k})
		}
	}
	return out
}

// RunKVTraffic runs the register workload against endpoints until ctx
// ends, the duration passes or MaxOps operations have started, and waits
// for every client's last operation. Every value written is unique:
// "c<client>-<op>".
func RunKVTraffic(ctx context.Context, endpoints []string, rec *Recorder, cfg KVTrafficConfig) {
	cfg = cfg.withDefaults()
	regs := cfg.Registers()
	l := load{cfg.Clients, cfg.Duration, cfg.MaxOps, cfg.OpsPerSecond}
	l.run(ctx, endpoints, rec, cfg.Client, func(i int, c *Client) func(seq int) {
		rng := rand.New(rand.NewSource(cfg.Seed + int64(i)*7919))
		seen := map[KeyRef]string{} // the last value this client knows per register
		return func(seq int) {
			r := regs[rng.Intn(len(regs))]
			value := fmt.Sprintf("c%d-%d", i, seq)
			switch p := rng.Intn(100); {
			case p < cfg.GetPercent:
				if v, ok := c.Get(r.Object, r.Key); ok {
					seen[r] = v
				}
			case p < cfg.GetPercent+cfg.PutPercent:
				if c.Put(r.Object, r.Key, value) == OutcomeOK {
					seen[r] = value
				}
			case rng.Intn(2) == 0:
				// Half the CASes swap from what they read, so that the
				// version condition of the tx is what decides them.
				if c.Swap(r.Object, r.Key, value) == OutcomeOK {
					seen[r] = value
				}
			default:
				switch out, observed := c.CAS(r.Object, r.Key, seen[r], value); {
				case out == OutcomeOK:
					seen[r] = value
				case out == OutcomeFailed && observed != "":
					seen[r] = observed
				}
			}
		}
	})
}

// CounterTrafficConfig configures the counter workload. Zero means default.
type CounterTrafficConfig struct {
	Clients      int           // default 8
	Object       string        // default "counter"
	Key          string        // default "n"
	Duration     time.Duration // default 30 s
	MaxOps       int           // default 8000
	OpsPerSecond float64       // per client; default 25
	Client       ClientConfig
}

func (c CounterTrafficConfig) withDefaults() CounterTrafficConfig {
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.Object == "" {
		c.Object = "counter"
	}
	if c.Key == "" {
		c.Key = "n"
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxOps == 0 {
		c.MaxOps = 8000
	}
	if c.OpsPerSecond == 0 {
		c.OpsPerSecond = 25
	}
	return c
}

// RunCounterTraffic has every client increment one counter by 1 with
// POST …/tx {"ops":[{"incr":…}]} until ctx ends, the duration passes or
// MaxOps increments have started; each is recorded.
func RunCounterTraffic(ctx context.Context, endpoints []string, rec *Recorder, cfg CounterTrafficConfig) {
	cfg = cfg.withDefaults()
	l := load{cfg.Clients, cfg.Duration, cfg.MaxOps, cfg.OpsPerSecond}
	l.run(ctx, endpoints, rec, cfg.Client, func(_ int, c *Client) func(int) {
		return func(int) { c.Incr(cfg.Object, cfg.Key, 1) }
	})
}

// load is what the clients of every workload share: how many there are,
// how long they run, how many operations they start in all, and how fast
// each one goes.
type load struct {
	clients      int
	duration     time.Duration
	maxOps       int
	opsPerSecond float64
}

// run runs the clients until ctx ends, the duration passes or maxOps
// operations have started, and waits for every client's last operation.
// Client i is NewClient(i, endpoints, rec, cc); worker(i, c) returns the
// function that makes its operation number seq, called after the client's
// backoff and pacing.
func (l load) run(ctx context.Context, endpoints []string, rec *Recorder, cc ClientConfig, worker func(i int, c *Client) func(seq int)) {
	ctx, cancel := context.WithTimeout(ctx, l.duration)
	defer cancel()
	var started atomic.Int64
	var wg sync.WaitGroup
	for i := range l.clients {
		wg.Go(func() {
			c := NewClient(i, endpoints, rec, cc)
			defer c.Close()
			op := worker(i, c)
			pace := newPacer(l.opsPerSecond)
			for seq := 0; c.Backoff(ctx) && pace.wait(ctx) && started.Add(1) <= int64(l.maxOps); seq++ {
				op(seq)
			}
		})
	}
	wg.Wait()
}

// pacer spaces a client's operations at most rate per second. An operation
// slower than the interval is followed at once by the next.
type pacer struct {
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	return &pacer{every: time.Duration(float64(time.Second) / rate), next: time.Now()}
}

// wait blocks until the next operation may start; false once ctx has ended.
func (p *pacer) wait(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	d := p.next.Sub(now)
	p.next = p.next.Add(p.every)
	return d <= 0 || sleep(ctx, d)
}

// sleep waits d; false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
