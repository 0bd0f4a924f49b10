package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run. Workers read the phase before each request; a request
// is measured when it started in phaseMeasure.
const (
	phasePreload int32 = iota
	phaseWarmup
	phaseMeasure
	phaseStop
	numPhases
)

// bench is one run.
type bench struct {
	cfg    config
	wl     *workload
	doer   *doer
	stderr io.Writer
	seed   uint64

	phase atomic.Int32
	// stopped is closed with phaseStop, to end a worker's backoff pause.
	stopped chan struct{}
	issued  atomic.Int64 // measured requests started, against -requests
	// live counts answers per phase, for the progress lines.
	live [numPhases]liveCounters
}

type liveCounters struct{ ok, errs atomic.Int64 }

func (c *liveCounters) count(r result) {
	if r.ok() {
		c.ok.Add(1)
	} else {
		c.errs.Add(1)
	}
}

func newBench(cfg config, stderr io.Writer) *bench {
	seed := uint64(time.Now().UnixNano())
	return &bench{
		cfg:     cfg,
		wl:      newWorkload(cfg, seed),
		doer:    newDoer(cfg),
		stderr:  stderr,
		seed:    seed,
		stopped: make(chan struct{}),
	}
}

// endpoint is the base URL client i uses: round-robin over the endpoints.
func (b *bench) endpoint(i int) string { return b.cfg.endpoints[i%len(b.cfg.endpoints)] }

// run preloads when the mode needs it, warms up, measures and returns the
// summary. It always ends: by -duration, by -requests, or when ctx ends.
// The error is for a preload that wrote nothing to read.
func (b *bench) run(ctx context.Context) (*summary, error) {
	defer b.doer.closeIdle()
	sum := &summary{
		Mode: string(b.cfg.mode), Endpoints: b.cfg.endpoints, Clients: b.cfg.clients,
		ValueSize: b.cfg.valueSize, Objects: b.cfg.objects, Keys: b.cfg.keys,
		WarmupSeconds: b.cfg.warmup.Seconds(), ErrorsByClass: map[string]int64{},
	}
	if b.wl.needsPreload() {
		errs := b.preload(ctx)
		sum.Preloaded = len(b.wl.preloaded)
		if len(errs) > 0 {
			sum.PreloadErrors = errs
		}
		if ctx.Err() != nil {
			sum.Interrupted = true
			return sum, nil
		}
		if len(b.wl.preloaded) == 0 {
			return sum, fmt.Errorf("the preload wrote none of its keys, so there is nothing to read (%s)", errorsLine(errs))
		}
	}

	stats := make([]*workerStats, b.cfg.clients)
	var wg sync.WaitGroup
	// Without a warm-up the workers start measured: no request goes out
	// uncounted before the phase changes.
	start := time.Now()
	if b.cfg.warmup > 0 {
		b.phase.Store(phaseWarmup)
	} else {
		b.phase.Store(phaseMeasure)
	}
	for i := range stats {
		stats[i] = newWorkerStats()
		wg.Go(func() { b.worker(ctx, i, stats[i]) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	if b.cfg.warmup > 0 {
		stopProgress := b.progress("warmup", &b.live[phaseWarmup], time.Now())
		t := time.NewTimer(b.cfg.warmup)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-done:
		}
		t.Stop()
		stopProgress()
		start = time.Now()
		b.phase.Store(phaseMeasure)
	}
	stopProgress := b.progress("run", &b.live[phaseMeasure], start)
	var deadline <-chan time.Time
	if b.cfg.duration > 0 {
		t := time.NewTimer(b.cfg.duration)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case <-deadline:
	case <-ctx.Done():
	case <-done:
	}
	// Workers start no new request; the ones in flight finish (each within
	// -timeout), or end at once when ctx was canceled.
	b.phase.Store(phaseStop)
	close(b.stopped)
	<-done
	window := time.Since(start)
	stopProgress()
	sum.Interrupted = ctx.Err() != nil
	sum.finish(stats, window)
	return sum, nil
}

// worker sends one request after another until the phase is phaseStop,
// -requests measured requests have been started, or ctx ends.
func (b *bench) worker(ctx context.Context, id int, st *workerStats) {
	base := b.endpoint(id)
	rng := rand.New(rand.NewPCG(b.seed, uint64(id)))
	var bo backoff
	for ctx.Err() == nil {
		ph := b.phase.Load()
		if ph == phaseStop {
			return
		}
		measured := ph == phaseMeasure
		if measured && b.cfg.requests > 0 && b.issued.Add(1) > b.cfg.requests {
			return
		}
		rq := b.wl.next(rng)
		res := b.doer.do(ctx, base, rq)
		if res.canceled {
			return
		}
		b.live[ph].count(res)
		if measured {
			st.add(rq.kind, res)
		}
		bo.after(res, ctx.Done(), b.stopped)
	}
}

// backoff pauses a worker after a request that got no HTTP answer, so that
// a dead endpoint does not turn its workers into a busy loop that takes
// the CPU from the others (and floods the error table). The pause starts
// at 10ms and doubles, to 500ms, over consecutive transport errors; any
// HTTP answer resets it. It is not part of any request's latency.
type backoff struct{ d time.Duration }

const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 500 * time.Millisecond
)

func (bo *backoff) after(res result, done1, done2 <-chan struct{}) {
	if res.ok() || res.status != 0 {
		bo.d = 0
		return
	}
	bo.d = min(max(2*bo.d, backoffMin), backoffMax)
	t := time.NewTimer(bo.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done1:
	case <-done2:
	}
}

// preload writes the keys the read modes read, with -clients workers, and
// keeps the ones written in b.wl.preloaded. It returns the errors by class.
func (b *bench) preload(ctx context.Context) map[string]int64 {
	b.phase.Store(phasePreload)
	rng := rand.New(rand.NewPCG(b.seed, 1<<63))
	targets := b.wl.preloadTargets(rng, b.cfg.preload)
	written := make([]bool, len(targets))
	var next atomic.Int64
	workers := min(b.cfg.clients, len(targets))
	stats := make([]*workerStats, workers)
	start := time.Now()
	stopProgress := b.progress("preload", &b.live[phasePreload], start)
	var wg sync.WaitGroup
	for i := range stats {
		stats[i] = newWorkerStats()
		wg.Go(func() {
			base := b.endpoint(i)
			wrng := rand.New(rand.NewPCG(b.seed, uint64(i)|1<<62))
			var bo backoff
			for ctx.Err() == nil {
				j := int(next.Add(1) - 1)
				if j >= len(targets) {
					return
				}
				res := b.doer.do(ctx, base, b.wl.put(targets[j], wrng))
				if res.canceled {
					return
				}
				b.live[phasePreload].count(res)
				written[j] = res.ok()
				if !res.ok() {
					stats[i].errs[res.class]++
				}
				bo.after(res, ctx.Done(), nil)
			}
		})
	}
	wg.Wait()
	stopProgress()

	errs := map[string]int64{}
	for _, st := range stats {
		for c, n := range st.errs {
			errs[c] += n
		}
	}
	kept := targets[:0]
	for j, t := range targets {
		if written[j] {
			kept = append(kept, t)
		}
	}
	b.wl.preloaded = kept
	msg := fmt.Sprintf("preload: wrote %d of %d keys in %.2fs", len(kept), len(targets), time.Since(start).Seconds())
	if len(errs) > 0 {
		msg += "; errors: " + errorsLine(errs)
	}
	fmt.Fprintln(b.stderr, msg)
	return errs
}

// progress prints a line to stderr every second until the returned stop
// is called: time since start, successful requests so far and in the last
// second, errors so far.
func (b *bench) progress(label string, c *liveCounters, start time.Time) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prevOK, prevT := c.ok.Load(), start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				ok, errs := c.ok.Load(), c.errs.Load()
				rate := float64(ok-prevOK) / now.Sub(prevT).Seconds()
				fmt.Fprintf(b.stderr, "%-7s %6.1fs  ops %10d  ops/s %9.0f  errors %d\n",
					label, now.Sub(start).Seconds(), ok, rate, errs)
				prevOK, prevT = ok, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

func writeJSON(w io.Writer, s *summary) error {
	return json.NewEncoder(w).Encode(s)
}

// mergeMaps adds counts of the same class together.
func mergeMaps(ms ...map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}
