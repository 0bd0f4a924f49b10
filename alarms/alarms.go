// Package alarms delivers due alarms. On every node it runs one worker per
// shard the node leads: the worker keeps a timer on the earliest entry of the
// shard's due index that it has not taken yet (it reads the index in order,
// from where it stopped, never the whole shard), POSTs each due alarm to its
// namespace's webhook with bounded concurrency, and records the outcomes
// through Raft, many per entry: cleared when the webhook answered 2xx
// (unless the alarm was set again meanwhile), otherwise retried later with
// exponential backoff, or dropped after the namespace's maximum retries.
//
// Delivery is at least once: an alarm leaves the replicated state only once
// a delivery succeeded (or its retries ran out), so a new leader delivers
// again whatever its predecessor had in flight. It is never early: a worker
// fires an alarm only once its node's clock has reached the scheduled time.
package alarms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Node is what the scheduler needs of the node it runs on.
type Node interface {
	// DB is the node's Pebble database, for reading alarms.
	DB() *pebble.DB
	// LedShards returns the shards this node leads now.
	LedShards() []uint32
	// Propose commits an encoded fsm command on shard.
	Propose(ctx context.Context, shard uint32, cmd []byte) (*fsm.Response, error)
}

// Config configures a Scheduler. Zero fields take their defaults.
type Config struct {
	Node   Node
	Logger *slog.Logger
	// Registerer receives the alarm metrics; nil means none.
	Registerer prometheus.Registerer
	// Concurrency bounds the webhook calls in flight on this node, shared
	// by the workers of every shard it leads (default 32 per CPU the
	// process may use, at least 128). Measured on 2 CPUs with a local
	// webhook, 128 delivered a burst faster than 64 (the pipeline stays
	// full while the CPUs are contended, and outcomes are recorded in
	// bigger batches), while 256 or more kept Raft's goroutines from
	// running for long enough that shard leaders stepped down (every
	// step-down repeats the deliveries in flight). A far webhook may want
	// more: a slot is held for a round trip. See DESIGN.md.
	Concurrency int
	// Client makes the webhook calls (default: kept-alive connections, at
	// most Concurrency per webhook host; see newTransport).
	Client *http.Client
	// FirstBackoff is the delay before the first retry (default 2 s); each
	// retry doubles it, plus up to 20% jitter.
	FirstBackoff time.Duration
	// NoWebhookWait is how long a due alarm of a namespace without a webhook
	// waits before the configuration is looked at again (default 5 s). Such
	// an alarm is kept, not counted as a failure: it is delivered once a
	// webhook is configured.
	NoWebhookWait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Scheduler delivers the due alarms of the shards its node leads.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	slots   chan struct{}
	// jobs feeds the delivery goroutines: one per slot, started once, so
	// that a delivery does not pay for a new goroutine and its stack growth.
	jobs chan job

	mu      sync.Mutex
	workers map[uint32]*worker
	// starving is set when some worker found every slot busy and waits
	// for one to free (its own starved flag says which).
	starving atomic.Bool
	// stopping is set by Stop: no worker starts a delivery any more.
	stopping atomic.Bool

	// ctx ends on Close; webhook calls in flight are made under it.
	ctx       context.Context
	cancel    context.CancelFunc
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New returns a scheduler for cfg; Start runs it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Node == nil {
		return nil, errors.New("alarms: Config.Node is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = max(128, 32*runtime.GOMAXPROCS(0))
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: newTransport(cfg.Concurrency)}
	}
	if cfg.FirstBackoff <= 0 {
		cfg.FirstBackoff = 2 * time.Second
	}
	if cfg.NoWebhookWait <= 0 {
		cfg.NoWebhookWait = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scheduler{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "alarms"),
		slots:   make(chan struct{}, cfg.Concurrency),
		jobs:    make(chan job, cfg.Concurrency),
		workers: map[uint32]*worker{},
		stop:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	if cfg.Registerer != nil {
		if err := s.metrics.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newTransport returns the HTTP transport of webhook calls for concurrency
// slots. Connections are kept alive and reused: every slot may keep one idle
// connection to each webhook host, and no more connections are opened to a
// host than there are slots, so that a burst of calls neither closes
// connections it just opened (idle ones beyond the limit would be) nor opens
// spare ones (net/http dials when no connection is idle, then may use
// another that came back meanwhile).
func newTransport(concurrency int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxConnsPerHost:       concurrency,
		MaxIdleConnsPerHost:   concurrency,
		MaxIdleConns:          4 * concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// The webhook's answer is read only to keep the connection.
		DisableCompression: true,
	}
}

// leadershipPoll is how often the scheduler looks for shards it gained or
// lost the leadership of.
const leadershipPoll = 100 * time.Millisecond

// job is a delivery handed to the delivery goroutines; its slot is taken.
type job struct {
	w   *worker
	d   dueAlarm
	key string
}

// Start runs the scheduler until Close.
func (s *Scheduler) Start() {
	for range s.cfg.Concurrency {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.stop:
					return
				case j := <-s.jobs:
					j.w.deliver(j.d, j.key)
				}
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(leadershipPoll)
		defer t.Stop()
		for {
			s.reconcile()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// reconcile runs a worker for each shard this node leads and stops those of
// shards it no longer leads.
func (s *Scheduler) reconcile() {
	led := map[uint32]bool{}
	for _, id := range s.cfg.Node.LedShards() {
		led[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return // Close has stopped the workers; start no new ones
	default:
	}
	for id, w := range s.workers {
		if !led[id] {
			w.close()
			delete(s.workers, id)
		}
	}
	for id := range led {
		if _, ok := s.workers[id]; !ok {
			w := newWorker(s, id)
			s.workers[id] = w
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				w.run()
			}()
		}
	}
}

// Notify tells the scheduler that shard's alarms may have changed. It never
// blocks: the state machine calls it while applying.
func (s *Scheduler) Notify(shard uint32) {
	s.mu.Lock()
	w := s.workers[shard]
	s.mu.Unlock()
	if w != nil {
		w.notify()
	}
}

// Handoff readies shard's leadership to be handed to another node, which
// would deliver again every alarm whose outcome this node has not recorded:
// the shard's worker starts no new delivery, and Handoff waits, until ctx
// ends, for the deliveries in flight to end and their outcomes to commit.
// The node hands the leadership away next and then calls resume: if the
// node still leads the shard (the transfer failed) the worker goes on,
// otherwise it stops at once, without waiting for the next look at the
// node's leaderships. Without a worker for shard, Handoff does
// nothing.
func (s *Scheduler) Handoff(ctx context.Context, shard uint32) (resume func()) {
	s.mu.Lock()
	w := s.workers[shard]
	s.mu.Unlock()
	if w == nil {
		return func() {}
	}
	w.paused.Add(1)
	w.settle(ctx)
	return sync.OnceFunc(func() {
		if !slices.Contains(s.cfg.Node.LedShards(), shard) {
			// Handed away: stop the worker now, still paused. Should the
			// node have won the shard back meanwhile, reconcile keeps the
			// worker, and it goes on.
			s.reconcile()
			s.mu.Lock()
			kept := s.workers[shard] == w
			s.mu.Unlock()
			if !kept {
				return
			}
		}
		if w.paused.Add(-1) == 0 {
			w.poke()
		}
	})
}

// Stop is Close after a pause: no worker starts a delivery from now on, and
// Stop waits, until ctx ends, for those in flight to end and their outcomes
// to commit, so that the shards' next leaders deliver none of them again.
// A node that stops cleanly calls it before it hands its leaderships away.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.stopping.Store(true)
	s.mu.Lock()
	workers := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		workers = append(workers, w)
	}
	s.mu.Unlock()
	for _, w := range workers {
		w.settle(ctx)
	}
	return s.Close()
}

// halted reports whether a Handoff or Stop keeps w from starting
// deliveries.
func (w *worker) halted() bool { return w.paused.Load() > 0 || w.s.stopping.Load() }

// settle waits until none of w's deliveries is in flight or waits for its
// outcome to be recorded, until ctx ends, or until w stops.
func (w *worker) settle(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		w.mu.Lock()
		active := w.active
		w.mu.Unlock()
		if active == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops every worker, cancels the webhook calls in flight (their
// alarms stay pending: the shard's next leader delivers them again) and
// waits for the workers and their deliveries. It is safe to call twice.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		for id, w := range s.workers {
			w.close()
			delete(s.workers, id)
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// acquire takes a delivery slot for w, or reports that every slot is busy;
// w is then woken when one frees.
func (s *Scheduler) acquire(w *worker) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	// Ask to be woken, then try once more: a slot freed between the first
	// try and the flags would otherwise wake nobody.
	w.starved.Store(true)
	s.starving.Store(true)
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// releaseSlot frees a delivery slot and wakes the workers that found none:
// the slots are shared by every shard's worker, and a worker that got none
// has no delivery of its own whose end would wake it.
func (s *Scheduler) releaseSlot() {
	<-s.slots
	if !s.starving.Swap(false) {
		return
	}
	s.mu.Lock()
	for _, w := range s.workers {
		if w.starved.CompareAndSwap(true, false) {
			w.poke()
		}
	}
	s.mu.Unlock()
}

// worker delivers the due alarms of one shard while this node leads it.
//
// It keeps its place in the shard's due index: from, the position after the
// last entry it took. Every live entry before from is queued, in flight
// (until its outcome is recorded), or stepped over because its namespace
// has no webhook yet; so a read starts at from and costs only the entries
// it returns, not the ones in flight nor the tombstones of those cleared.
// The index is read from its head again only when that may no longer hold:
// when the shard's move count changed (an entry was added or moved by a
// write, a retry or a restore; see fsm.FSM.AlarmMoves), when a delivery
// ended without recording an outcome, or when a namespace's wait for a
// webhook ended. Such a read steps over the alarms in flight, so under load
// it runs only after a pause of a multiple of what the last one cost.
//
// Deliveries are started from the queue as slots free. An index entry holds
// a copy of its alarm; deliver uses it while the move count has not moved
// since the entry was read, and otherwise reads the alarm again, since it
// may have changed.
type worker struct {
	s     *Scheduler
	shard uint32
	stop  chan struct{}
	wake  chan struct{}
	// ctx ends when the worker stops; its webhook calls are made under it.
	ctx    context.Context
	cancel context.CancelFunc
	// starved is set while the worker waits for a free delivery slot.
	starved atomic.Bool
	// notified counts notifications: the move count of a node that does not
	// offer its shards' state machines (every notification then counts).
	notified atomic.Uint64
	// reread is set when the index may hold, before from, an alarm that is
	// neither queued nor in flight: the next dispatch reads from the head.
	reread atomic.Bool
	// paused counts the Handoffs under way: while it is above zero the
	// worker starts no delivery.
	paused atomic.Int32

	// Owned by the run goroutine.
	queue    []dueAlarm // due, not in flight, not yet started
	qhead    int        // queue[qhead:] is the queue
	from     []byte     // where the next read starts; nil: the head
	last     []byte     // the key of the last entry taken (scratch)
	full     bool       // the last read stopped at queueLimit
	next     time.Time  // when the entry at from falls due; zero: none
	moves    uint64     // the move count when the head was last read
	lastHead time.Time
	headGap  time.Duration // the least time between two reads from the head

	mu sync.Mutex
	// inflight holds the objects whose alarm is being delivered, and those
	// whose outcome was recorded since the last read began (see flight).
	inflight map[string]flight
	active   int                  // the entries of inflight being delivered
	noHook   map[string]time.Time // namespaces without a webhook, until when
	hooks    map[string]hookEntry // namespace configurations read
	acks     chan ack
}

// dueAlarm is a due-index entry read by a worker (Key nil) and the shard's
// move count before it was read: while the count has not moved, the copy of
// the alarm the entry holds is the alarm (nothing but clears happened, and
// none of an entry in the queue: see flight).
type dueAlarm struct {
	e     objectstore.DueEntry
	moves uint64
}

// flight is an alarm being delivered: the due-index entry it was taken from
// and whether a read from the head stepped over another entry of its object
// meanwhile (the alarm was set again during its delivery): the index is then
// read from the head again once the delivery ends.
//
// Once its outcome is recorded the flight stays, marked recorded, until the
// next read begins: a read in progress may have started before the outcome
// was applied and so still find the entry, which it must not take for a
// due alarm. A read that begins later sees the index with the outcome.
type flight struct {
	next     int64
	passed   bool
	recorded bool
}

// stale reports whether an entry at next, found by a read in progress, is
// the one of f whose outcome was recorded since the read began.
func (f flight) stale(next int64) bool { return f.recorded && f.next == next }

// hookEntry is a namespace's configuration as read when the shard's move
// count was moves (a configuration change moves it).
type hookEntry struct {
	cfg   objectstore.NamespaceConfig
	found bool
	moves uint64
}

// shardHost is what a cluster.Node offers beyond Node: each shard's state
// machine, whose move count tells a worker when it must read its index from
// the head again.
type shardHost interface {
	Shard(id uint32) *cluster.Shard
}

// linearReader is what a cluster.Node offers beyond Node: a read that waits
// until the node has confirmed its leadership and applied every entry of
// earlier terms.
type linearReader interface {
	Read(ctx context.Context, shard uint32, stale bool, fn func(r pebble.Reader) error) error
}

// Reads from the head take at most 1/headCostFactor of the worker's time,
// and at least every maxHeadGap one may run. queueLimit bounds the alarms a
// read queues, relative to the delivery slots. maxInflight bounds a
// worker's deliveries that called the webhook and wait for their outcome to
// be recorded (a few ack batches): they wait in the acks channel.
const (
	headCostFactor = 20
	maxHeadGap     = 500 * time.Millisecond
	queuePerSlot   = 4
	minQueueLimit  = 64
	maxQueueLimit  = 8192
	maxInflight    = 4 * maxAckBatch
	maxHooks       = 1024
)

// ack is a delivery's outcome waiting to be proposed.
type ack struct {
	key    string // the object's inflight key
	update objectstore.AlarmUpdate
}

func newWorker(s *Scheduler, shard uint32) *worker {
	w := &worker{
		s:        s,
		shard:    shard,
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		inflight: map[string]flight{},
		noHook:   map[string]time.Time{},
		hooks:    map[string]hookEntry{},
		acks:     make(chan ack, maxInflight),
	}
	w.ctx, w.cancel = context.WithCancel(s.ctx)
	w.reread.Store(true)
	return w
}

// close stops the worker and cancels its webhook calls in flight: this node
// no longer leads the shard (or is stopping), so it could not record their
// outcome; the shard's next leader delivers them again.
func (w *worker) close() {
	close(w.stop)
	w.cancel()
}

// poke wakes the worker to start deliveries from its queue.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// notify wakes the worker after a change of the shard's alarms: it looks
// at the move count to see whether to read the index from the head.
func (w *worker) notify() {
	w.notified.Add(1)
	w.poke()
}

// moveCount returns the shard's move count (fsm.FSM.AlarmMoves).
func (w *worker) moveCount() uint64 {
	if h, ok := w.s.cfg.Node.(shardHost); ok {
		if sh := h.Shard(w.shard); sh != nil {
			return sh.FSM().AlarmMoves()
		}
	}
	return w.notified.Load()
}

func objKey(ns, name string) string { return ns + "\x00" + name }

func (w *worker) queueLimit() int {
	return min(max(queuePerSlot*w.s.cfg.Concurrency, minQueueLimit), maxQueueLimit)
}

func (w *worker) queued() int { return len(w.queue) - w.qhead }

func (w *worker) run() {
	w.s.wg.Add(1)
	go func() {
		defer w.s.wg.Done()
		w.proposeAcks()
	}()
	w.catchUp()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-timer.C:
			// An alarm fell due, a namespace's wait for a webhook ended, or
			// a read from the head that had to wait may run.
		case <-w.wake:
		}
		next, err := w.dispatch()
		if err != nil {
			w.s.log.Error("reading due alarms failed", "shard", w.shard, "error", err)
			w.reread.Store(true)
			next = w.s.cfg.Now().Add(time.Second)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// catchUp waits until this node has applied every entry committed before it
// became the shard's leader: the outcomes its predecessor recorded are then
// in the index the worker reads, and those deliveries are not repeated. The
// worker goes on if that fails (its leadership is checked anyway).
func (w *worker) catchUp() {
	r, ok := w.s.cfg.Node.(linearReader)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	if err := r.Read(ctx, w.shard, false, func(pebble.Reader) error { return nil }); err != nil && w.ctx.Err() == nil {
		w.s.log.Debug("catching up with the shard's log before delivering failed", "shard", w.shard, "error", err)
	}
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// dispatch reads the index from the head if it must (and the last such
// read is long enough ago), reads on from where it stopped while the queue
// runs low and alarms are due, and starts deliveries from the queue as far
// as free slots allow. It returns when it wants to run again (zero: when
// woken; a worker waiting for a slot is woken when one frees).
func (w *worker) dispatch() (time.Time, error) {
	now := w.s.cfg.Now()
	moves := w.moveCount()
	head := w.reread.Load() || moves != w.moves
	// A namespace whose wait for a webhook ended: its alarms were stepped
	// over. A configuration change ends every wait.
	var again time.Time
	w.mu.Lock()
	for ns, until := range w.noHook {
		if moves != w.moves || !now.Before(until) {
			delete(w.noHook, ns)
			head = true
		} else {
			again = earlier(again, until)
		}
	}
	w.mu.Unlock()
	if head {
		if earliest := w.lastHead.Add(w.headGap); now.Before(earliest) {
			w.reread.Store(true) // remembered until then
			again = earlier(again, earliest)
		} else {
			// Cleared, and the count taken, before the read: a change
			// during it is seen by the next dispatch.
			w.reread.Store(false)
			w.moves = moves
			w.from, w.queue, w.qhead, w.full, w.next = nil, w.queue[:0], 0, false, time.Time{}
			w.s.metrics.headReads.Inc()
			start := time.Now()
			err := w.read(now)
			w.lastHead = w.s.cfg.Now()
			w.headGap = min(headCostFactor*time.Since(start), maxHeadGap)
			if err != nil {
				return time.Time{}, err
			}
		}
	}
	for {
		if w.queued() <= w.queueLimit()/2 && (w.full || (!w.next.IsZero() && !now.Before(w.next))) {
			if err := w.read(now); err != nil {
				return time.Time{}, err
			}
		}
		if blocked := w.feed(); blocked || !w.full {
			break
		}
	}
	if !w.next.IsZero() && !now.Before(w.next) {
		// Due, but the queue is long enough: the end of a delivery wakes
		// the worker.
		return again, nil
	}
	return earlier(w.next, again), nil
}

// read reads the index on from w.from: it queues the due alarms that are
// not in flight, up to queueLimit, moves w.from past them, and notes when
// the first one not yet due falls due.
func (w *worker) read(now time.Time) error {
	nowMs := now.UnixMilli()
	limit := w.queueLimit()
	if w.qhead == len(w.queue) {
		w.queue, w.qhead = w.queue[:0], 0
	}
	w.full, w.next = false, time.Time{}
	took := false
	moves := w.moveCount() // before the read: see dueAlarm
	// Outcomes recorded so far are in what this read sees.
	w.mu.Lock()
	for key, f := range w.inflight {
		if f.recorded {
			delete(w.inflight, key)
		}
	}
	w.mu.Unlock()
	err := objectstore.ScanDueFrom(w.s.cfg.Node.DB(), w.shard, w.from, func(e objectstore.DueEntry) bool {
		if e.NextAttempt > nowMs {
			w.next = time.UnixMilli(e.NextAttempt)
			return false
		}
		if w.queued() >= limit {
			w.full = true
			return false
		}
		w.last, took = append(w.last[:0], e.Key...), true
		key := objKey(e.Object.Namespace, e.Object.Name)
		w.mu.Lock()
		f, busy := w.inflight[key]
		switch {
		case busy && f.recorded:
			// Delivered since this read began (and cleared or retried:
			// skipped), or set again before that (a live entry).
			busy = f.stale(e.NextAttempt)
		case busy && f.next != e.NextAttempt:
			// Set again while being delivered: look again once the
			// delivery ends.
			f.passed = true
			w.inflight[key] = f
		}
		_, waiting := w.noHook[e.Object.Namespace]
		w.mu.Unlock()
		if busy || waiting {
			// In flight, or its namespace has no webhook yet (the end of
			// the wait reads from the head again).
			return true
		}
		e.Key = nil
		w.queue = append(w.queue, dueAlarm{e: e, moves: moves})
		return true
	})
	if took {
		// Not before: the iterator held w.from as its bound.
		w.from = append(append(w.from[:0], w.last...), 0)
	}
	return err
}

// feed starts deliveries of queued alarms while slots are free. It reports
// whether it stopped for want of a slot (or of room for more outcomes
// waiting to be recorded); the end of a delivery wakes the worker then.
func (w *worker) feed() (blocked bool) {
	for w.qhead < len(w.queue) {
		if w.halted() {
			return true // Handoff or Stop: resume or Close wakes it
		}
		d := w.queue[w.qhead]
		e := d.e
		key := objKey(e.Object.Namespace, e.Object.Name)
		w.mu.Lock()
		f, busy := w.inflight[key]
		if busy && f.recorded {
			busy = f.stale(e.NextAttempt) // read before its outcome was applied
		}
		full := w.active >= maxInflight
		_, waiting := w.noHook[e.Object.Namespace]
		w.mu.Unlock()
		if full {
			return true
		}
		if busy || waiting {
			// Its namespace found to have no webhook since it was queued:
			// the end of the wait reads from the head again.
			w.qhead++
			continue
		}
		if !w.s.acquire(w) {
			return true
		}
		w.mu.Lock()
		if w.halted() {
			// Checked again where settle reads active: a Handoff that began
			// since the check above either sees this delivery or stops it.
			w.mu.Unlock()
			w.s.releaseSlot()
			return true
		}
		w.inflight[key] = flight{next: e.NextAttempt}
		w.active++
		w.mu.Unlock()
		w.qhead++
		// Never blocks: a job holds a slot until a delivery goroutine took it.
		w.s.jobs <- job{w: w, d: d, key: key}
	}
	return false
}

// release ends a delivery that recorded no outcome: its object may be
// picked up again. reread says that its alarm may be due still, or was set
// again, behind the worker's place in the index: the next dispatch reads
// from the head. proposeAcks ends the other deliveries.
func (w *worker) release(key string, reread bool) {
	w.mu.Lock()
	if w.inflight[key].passed {
		reread = true
	}
	delete(w.inflight, key)
	w.active--
	w.mu.Unlock()
	if reread {
		w.reread.Store(true)
	}
	w.poke()
}

// webhookBody is what the webhook receives (API.md, "Alarms").
type webhookBody struct {
	Namespace     string `json:"namespace"`
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	IsRetry       bool   `json:"isRetry"`
}

// deliver makes one delivery attempt of the alarm of d and hands its
// outcome to proposeAcks.
func (w *worker) deliver(d dueAlarm, key string) {
	e := d.e
	slotHeld := true
	freeSlot := func() {
		if slotHeld {
			w.s.releaseSlot()
			slotHeld = false
		}
	}
	defer freeSlot()
	if w.ctx.Err() != nil {
		w.release(key, false) // the worker stopped
		return
	}

	// The index entry was read a while ago: deliver only the alarm it
	// points to, and only once it is due by this node's clock. The copy in
	// the entry is the alarm unless the move count moved since (a burst
	// reads no record); otherwise the record is read.
	a := e.Alarm
	if !e.HasAlarm || w.moveCount() != d.moves {
		var found bool
		var err error
		a, found, err = objectstore.GetAlarm(w.s.cfg.Node.DB(), e.Object)
		if err != nil || !found || a.NextAttempt != e.NextAttempt {
			// Gone (delivered or deleted meanwhile): nothing to look for.
			// Set again or retried: its new entry may be behind the read
			// position.
			freeSlot()
			w.release(key, err != nil || found)
			return
		}
	}
	if nowMs := w.s.cfg.Now().UnixMilli(); a.NextAttempt > nowMs || a.ScheduledTime > nowMs {
		freeSlot()
		w.release(key, true)
		return
	}
	cfg, found, err := w.namespaceConfig(e.Object.Namespace)
	if err != nil || !found || cfg.AlarmWebhook == "" {
		// Nowhere to deliver yet: keep the alarm, and the namespace's other
		// alarms, and look again later.
		w.mu.Lock()
		w.noHook[e.Object.Namespace] = w.s.cfg.Now().Add(w.s.cfg.NoWebhookWait)
		w.mu.Unlock()
		freeSlot()
		w.release(key, false)
		return
	}
	if a.RetryCount == 0 {
		w.s.metrics.lateness.Observe(float64(w.s.cfg.Now().UnixMilli()-a.ScheduledTime) / 1000)
	}
	err = w.post(cfg, e.Object, a)
	freeSlot()
	if err != nil && w.ctx.Err() != nil {
		// The call was canceled because the worker stopped: that is no
		// failure of the webhook, and nothing may be recorded for it.
		w.release(key, false)
		return
	}

	u := objectstore.AlarmUpdate{Namespace: e.Object.Namespace, Object: e.Object.Name, ScheduledTime: a.ScheduledTime}
	switch {
	case err == nil:
		u.Clear = true
		w.s.metrics.delivered.Inc()
	case a.RetryCount >= cfg.AlarmMaxRetries:
		u.Clear = true
		w.s.metrics.dropped.Inc()
		w.s.log.Warn("alarm dropped after its last retry", "namespace", u.Namespace, "object", u.Object,
			"scheduled_time", a.ScheduledTime, "attempts", a.RetryCount+1, "error", err)
	default:
		u.RetryCount = a.RetryCount + 1
		u.NextAttempt = ceilMillis(w.s.cfg.Now().Add(w.backoff(u.RetryCount)))
		w.s.metrics.retried.Inc()
		w.s.log.Debug("alarm delivery failed; retrying", "namespace", u.Namespace, "object", u.Object,
			"retry", u.RetryCount, "next_attempt", u.NextAttempt, "error", err)
	}
	// proposeAcks releases the object once the outcome is recorded. The
	// channel holds every delivery in flight, so this does not wait.
	select {
	case w.acks <- ack{key: key, update: u}:
	case <-w.stop:
		w.release(key, false)
	}
}

// namespaceConfig returns ns's configuration in this shard. It is read
// once and kept until the shard's move count changes (a configuration
// change moves it): a burst of deliveries reads it once.
func (w *worker) namespaceConfig(ns string) (objectstore.NamespaceConfig, bool, error) {
	moves := w.moveCount()
	w.mu.Lock()
	h, ok := w.hooks[ns]
	w.mu.Unlock()
	if ok && h.moves == moves {
		return h.cfg, h.found, nil
	}
	// Read after the count: a change in between makes the next call read
	// again.
	cfg, found, err := objectstore.GetNamespaceConfig(w.s.cfg.Node.DB(), w.shard, ns)
	if err != nil {
		return cfg, false, err
	}
	w.mu.Lock()
	if len(w.hooks) >= maxHooks {
		clear(w.hooks)
	}
	w.hooks[ns] = hookEntry{cfg: cfg, found: found, moves: moves}
	w.mu.Unlock()
	return cfg, found, nil
}

// ceilMillis is t in milliseconds since the epoch, rounded up: an attempt
// due at that millisecond is never earlier than t.
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// backoff is the delay before retry n (1-based): FirstBackoff·2^(n-1), plus
// up to 20% jitter so that alarms that failed together do not retry together.
func (w *worker) backoff(n int) time.Duration {
	d := w.s.cfg.FirstBackoff << min(n-1, 20)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// post makes the webhook call; nil means a 2xx answer.
func (w *worker) post(cfg objectstore.NamespaceConfig, obj objectstore.Object, a objectstore.Alarm) error {
	id := placement.ObjectID(obj.Namespace, obj.Name)
	body, _ := json.Marshal(webhookBody{
		Namespace:     obj.Namespace,
		Object:        obj.Name,
		ObjectID:      id,
		ScheduledTime: a.ScheduledTime,
		RetryCount:    a.RetryCount,
		IsRetry:       a.RetryCount > 0,
	})
	ctx, cancel := context.WithTimeout(w.ctx, cfg.AlarmTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.AlarmWebhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Idempotency-Key"] = []string{id + ":" + strconv.FormatInt(a.ScheduledTime, 10)}
	req.Header["User-Agent"] = []string{"cairn-alarms/1"}
	resp, err := w.s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	// Read to the end, so that the connection is kept for the next call.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Acks are proposed in batches: up to maxAckBatch outcomes per Raft entry,
// collected for at most ackLinger; while one batch is being committed the
// next collects. Under load one entry records hundreds of deliveries.
// A batch that fails to commit is proposed again (an outcome applies only
// to the alarm it was for, so applying it twice is harmless), after a pause
// from ackRetryMin doubling to ackRetryMax, for as long as the worker runs:
// giving up would deliver those alarms again, and a duplicate should come
// only from a real failure (this node losing the shard's leadership).
const (
	maxAckBatch = 512
	ackLinger   = 2 * time.Millisecond
	ackRetryMin = 20 * time.Millisecond
	ackRetryMax = time.Second
)

func (w *worker) proposeAcks() {
	linger := time.NewTimer(0)
	<-linger.C
	for {
		var batch []ack
		select {
		case <-w.stop:
			return
		case a := <-w.acks:
			batch = append(batch, a)
		}
		linger.Reset(ackLinger)
	collect:
		for len(batch) < maxAckBatch {
			select {
			case a := <-w.acks:
				batch = append(batch, a)
			case <-linger.C:
				break collect
			case <-w.stop:
				break collect
			}
		}
		if !linger.Stop() {
			select {
			case <-linger.C:
			default:
			}
		}
		cmd := &fsm.Command{Type: fsm.TypeAlarmUpdate, Header: fsm.Header{NowMillis: w.s.cfg.Now().UnixMilli()}}
		cmd.AlarmUpdates = make([]objectstore.AlarmUpdate, len(batch))
		for i, a := range batch {
			cmd.AlarmUpdates[i] = a.update
		}
		w.s.metrics.ackBatch.Observe(float64(len(batch)))
		if !w.record(cmd) {
			// Stopped: the shard's next leader delivers them again.
			w.mu.Lock()
			for _, a := range batch {
				delete(w.inflight, a.key)
			}
			w.active -= len(batch)
			w.mu.Unlock()
			return
		}
		reread := false
		w.mu.Lock()
		for _, a := range batch {
			f := w.inflight[a.key]
			if f.passed {
				reread = true
			}
			f.recorded = true
			w.inflight[a.key] = f
		}
		w.active -= len(batch)
		w.mu.Unlock()
		if reread {
			w.reread.Store(true)
		}
		// One wake-up for the whole batch: it freed room for that many.
		w.poke()
	}
}

// record commits cmd, retrying until it is committed or the worker stops;
// it reports whether it was committed.
func (w *worker) record(cmd *fsm.Command) bool {
	data, err := cmd.Encode()
	if err != nil {
		// Cannot happen for a well-formed update; nothing would ever commit it.
		w.s.log.Error("encoding alarm outcomes failed", "shard", w.shard, "error", err)
		return false
	}
	pause := ackRetryMin
	for {
		err := w.propose(data)
		if err == nil {
			return true
		}
		select {
		case <-w.stop:
			w.s.log.Debug("recording alarm outcomes failed; the shard's next leader delivers them again",
				"shard", w.shard, "count", len(cmd.AlarmUpdates), "error", err)
			return false
		default:
		}
		w.s.metrics.ackRetries.Inc()
		w.s.log.Debug("recording alarm outcomes failed; trying again", "shard", w.shard,
			"count", len(cmd.AlarmUpdates), "error", err, "pause", pause)
		t := time.NewTimer(pause)
		select {
		case <-w.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		pause = min(2*pause, ackRetryMax)
	}
}

func (w *worker) propose(data []byte) error {
	// Under w.ctx: a stopping worker does not wait for it (the outcome is
	// then unknown, and the alarm delivered again if it was not recorded).
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	_, err := w.s.cfg.Node.Propose(ctx, w.shard, data)
	return err
}
