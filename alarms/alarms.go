// Package alarms delivers due alarms. On every node it runs one worker per
// shard the node leads: the worker keeps a timer on the earliest entry of the
// shard's due index (objectstore.ScanDue reads only the head of it, never the
// whole shard), POSTs each due alarm to its namespace's webhook with bounded
// concurrency, and records the outcome through Raft: cleared when the webhook
// answered 2xx (unless the alarm was set again meanwhile), otherwise retried
// later with exponential backoff, or dropped after the namespace's maximum
// retries.
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
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

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
	// Concurrency bounds the webhook calls in flight on this node (default
	// 32 per CPU the process may use, at least 64). More does not deliver
	// a burst faster once the CPUs are busy: measured on 2 CPUs, 256 calls
	// in flight kept Raft's goroutines from running for long enough that
	// shard leaders stepped down, and every step-down repeats the
	// deliveries that were in flight.
	Concurrency int
	// Client makes the webhook calls.
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

	mu      sync.Mutex
	workers map[uint32]*worker
	// starving is set when some worker found every slot busy and waits
	// for one to free (its own starved flag says which).
	starving atomic.Bool

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
		cfg.Concurrency = max(64, 32*runtime.GOMAXPROCS(0))
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns:        cfg.Concurrency,
			MaxIdleConnsPerHost: cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
		}}
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

// leadershipPoll is how often the scheduler looks for shards it gained or
// lost the leadership of.
const leadershipPoll = 100 * time.Millisecond

// Start runs the scheduler until Close.
func (s *Scheduler) Start() {
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
// It reads the due index in scans from its head: a scan queues up to
// queueLimit due alarms, and deliveries are started from that queue as
// slots free. A scan has to step over the alarms whose delivery is in
// flight (they stay in the index until their outcome is applied), so under
// a burst it is not cheap: a scan runs only after a pause of a multiple of
// what the last one cost, and in between freed slots take the next alarms
// from the queue. Since a queued alarm may have changed by the time its
// turn comes, deliver reads it again before calling the webhook.
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
	// dirty is set when the shard's alarms may have changed in a way that
	// the queue does not show: the next dispatch scans again.
	dirty atomic.Bool

	// Owned by the run goroutine.
	queue     []objectstore.DueAlarm // due, not in flight, not yet started
	truncated bool                   // the last scan stopped at queueLimit
	next      time.Time              // when the earliest alarm not yet due falls due; zero: none known
	lastScan  time.Time
	scanGap   time.Duration // the least time between two scans

	mu       sync.Mutex
	inflight map[string]bool      // objects whose alarm is being delivered
	noHook   map[string]time.Time // namespaces without a webhook, until when
	acks     chan ack
}

// Scans take at most 1/scanCostFactor of the worker's time, and at least
// every maxScanGap one may run. queueLimit bounds the alarms a scan queues,
// relative to the delivery slots. maxInflight bounds a worker's deliveries
// that called the webhook and wait for their outcome to be recorded (a few
// ack batches): they wait in the acks channel, and every scan steps over
// them.
const (
	scanCostFactor = 20
	maxScanGap     = 500 * time.Millisecond
	queuePerSlot   = 4
	minQueueLimit  = 64
	maxQueueLimit  = 8192
	maxInflight    = 4 * maxAckBatch
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
		inflight: map[string]bool{},
		noHook:   map[string]time.Time{},
		acks:     make(chan ack, maxInflight),
	}
	w.ctx, w.cancel = context.WithCancel(s.ctx)
	w.dirty.Store(true)
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

// notify wakes the worker to scan the due index again.
func (w *worker) notify() {
	// The change may be a namespace getting its webhook: forget which
	// namespaces had none.
	w.mu.Lock()
	clear(w.noHook)
	w.mu.Unlock()
	w.dirty.Store(true)
	w.poke()
}

func objKey(ns, name string) string { return ns + "\x00" + name }

func (w *worker) queueLimit() int {
	return min(max(queuePerSlot*w.s.cfg.Concurrency, minQueueLimit), maxQueueLimit)
}

func (w *worker) run() {
	w.s.wg.Add(1)
	go func() {
		defer w.s.wg.Done()
		w.proposeAcks()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-timer.C:
			// An alarm fell due, a namespace's wait for a webhook ended, or
			// a scan that had to wait may run.
			w.dirty.Store(true)
		case <-w.wake:
		}
		next, err := w.dispatch()
		if err != nil {
			w.s.log.Error("reading due alarms failed", "shard", w.shard, "error", err)
			w.dirty.Store(true)
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

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// dispatch scans the due index when it may have changed (and the last scan
// is long enough ago), then starts a delivery for queued alarms as far as
// free slots allow. It returns when it wants to run again (zero: when woken;
// a worker waiting for a slot is woken when one frees).
func (w *worker) dispatch() (time.Time, error) {
	now := w.s.cfg.Now()
	var again time.Time
	if w.dirty.Load() || (len(w.queue) == 0 && w.truncated) {
		if earliest := w.lastScan.Add(w.scanGap); now.Before(earliest) {
			again = earliest
		} else {
			// Cleared before the scan: a change during it sets it again.
			w.dirty.Store(false)
			if err := w.scan(now); err != nil {
				return time.Time{}, err
			}
		}
	}
	w.feed(now)
	if len(w.queue) == 0 && w.truncated {
		again = earlier(again, w.lastScan.Add(w.scanGap))
	}
	return earlier(w.next, again), nil
}

// scan reads the head of the due index: it queues the due alarms that are
// not in flight, up to queueLimit, and notes when the first one not yet due
// falls due.
func (w *worker) scan(now time.Time) error {
	start := time.Now()
	nowMs := now.UnixMilli()
	limit := w.queueLimit()
	w.queue, w.truncated, w.next = w.queue[:0], false, time.Time{}
	err := objectstore.ScanDue(w.s.cfg.Node.DB(), w.shard, func(d objectstore.DueAlarm) bool {
		key := objKey(d.Object.Namespace, d.Object.Name)
		w.mu.Lock()
		busy := w.inflight[key]
		until, waiting := w.noHook[d.Object.Namespace]
		if waiting && !now.Before(until) {
			delete(w.noHook, d.Object.Namespace)
			waiting = false
		}
		w.mu.Unlock()
		if busy {
			return true
		}
		if waiting {
			// Its namespace has no webhook yet: keep it, look again later.
			w.next = earlier(w.next, until)
			return true
		}
		if d.Alarm.NextAttempt > nowMs || d.Alarm.ScheduledTime > nowMs {
			w.next = earlier(w.next, time.UnixMilli(max(d.Alarm.NextAttempt, d.Alarm.ScheduledTime)))
			return false
		}
		if len(w.queue) >= limit {
			w.truncated = true
			return false
		}
		w.queue = append(w.queue, d)
		return true
	})
	took := time.Since(start)
	w.lastScan = w.s.cfg.Now()
	w.scanGap = min(scanCostFactor*took, maxScanGap)
	return err
}

// feed starts deliveries of queued alarms while slots are free.
func (w *worker) feed(now time.Time) {
	for len(w.queue) > 0 {
		d := w.queue[0]
		key := objKey(d.Object.Namespace, d.Object.Name)
		w.mu.Lock()
		busy := w.inflight[key]
		full := len(w.inflight) >= maxInflight
		until, waiting := w.noHook[d.Object.Namespace]
		if waiting && !now.Before(until) {
			delete(w.noHook, d.Object.Namespace)
			waiting = false
		}
		w.mu.Unlock()
		if full {
			return // the end of a delivery wakes us
		}
		if busy || waiting {
			// In flight already, or its namespace has no webhook yet: the
			// scan after the wait finds it again.
			if waiting {
				w.next = earlier(w.next, until)
			}
			w.queue = w.queue[1:]
			continue
		}
		if !w.s.acquire(w) {
			return // every slot is busy; a freed one wakes us
		}
		w.mu.Lock()
		w.inflight[key] = true
		w.mu.Unlock()
		w.queue = w.queue[1:]
		w.s.wg.Add(1)
		go func() {
			defer w.s.wg.Done()
			w.deliver(d)
		}()
	}
}

// release ends a delivery that recorded no outcome: its object may be
// picked up again. The worker scans again: the alarm may be due still, or
// set again meanwhile (a scan steps over the objects in flight without
// looking at their time). proposeAcks ends the others.
func (w *worker) release(key string) {
	w.mu.Lock()
	delete(w.inflight, key)
	w.mu.Unlock()
	w.notify()
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

// deliver makes one delivery attempt of d and hands its outcome to
// proposeAcks.
func (w *worker) deliver(d objectstore.DueAlarm) {
	key := objKey(d.Object.Namespace, d.Object.Name)
	slotHeld := true
	freeSlot := func() {
		if slotHeld {
			w.s.releaseSlot()
			slotHeld = false
		}
	}
	defer freeSlot()

	// The alarm was queued a while ago: deliver it only if it is still the
	// one that was found due (not delivered meanwhile, deleted, set again
	// or retried).
	cur, found, err := objectstore.GetAlarm(w.s.cfg.Node.DB(), d.Object)
	if err != nil || !found || cur != d.Alarm {
		freeSlot()
		w.release(key)
		return
	}
	cfg, found, err := objectstore.GetNamespaceConfig(w.s.cfg.Node.DB(), w.shard, d.Object.Namespace)
	if err != nil || !found || cfg.AlarmWebhook == "" {
		// Nowhere to deliver yet: keep the alarm, and the namespace's other
		// alarms, and look again later.
		w.mu.Lock()
		w.noHook[d.Object.Namespace] = w.s.cfg.Now().Add(w.s.cfg.NoWebhookWait)
		w.mu.Unlock()
		freeSlot()
		w.release(key)
		return
	}
	a := d.Alarm
	if a.RetryCount == 0 {
		w.s.metrics.lateness.Observe(float64(w.s.cfg.Now().UnixMilli()-a.ScheduledTime) / 1000)
	}
	err = w.post(cfg, d)
	freeSlot()
	if err != nil && w.ctx.Err() != nil {
		// The call was canceled because the worker stopped: that is no
		// failure of the webhook, and nothing may be recorded for it.
		w.release(key)
		return
	}

	u := objectstore.AlarmUpdate{Namespace: d.Object.Namespace, Object: d.Object.Name, ScheduledTime: a.ScheduledTime}
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
	// proposeAcks releases the object once the outcome is recorded (or
	// failed to be). The channel holds every delivery in flight, so this
	// does not wait.
	select {
	case w.acks <- ack{key: key, update: u}:
	case <-w.stop:
		w.release(key)
	}
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
func (w *worker) post(cfg objectstore.NamespaceConfig, d objectstore.DueAlarm) error {
	obj := d.Object
	body, _ := json.Marshal(webhookBody{
		Namespace:     obj.Namespace,
		Object:        obj.Name,
		ObjectID:      placement.ObjectID(obj.Namespace, obj.Name),
		ScheduledTime: d.Alarm.ScheduledTime,
		RetryCount:    d.Alarm.RetryCount,
		IsRetry:       d.Alarm.RetryCount > 0,
	})
	ctx, cancel := context.WithTimeout(w.ctx, cfg.AlarmTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.AlarmWebhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s:%d", placement.ObjectID(obj.Namespace, obj.Name), d.Alarm.ScheduledTime))
	req.Header.Set("User-Agent", "cairn-alarms/1")
	resp, err := w.s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Acks are proposed in batches: up to maxAckBatch outcomes per Raft entry,
// collected for at most ackLinger. Under load one entry records hundreds of
// deliveries.
const (
	maxAckBatch = 512
	ackLinger   = 2 * time.Millisecond
)

func (w *worker) proposeAcks() {
	for {
		var batch []ack
		select {
		case <-w.stop:
			return
		case a := <-w.acks:
			batch = append(batch, a)
		}
		linger := time.NewTimer(ackLinger)
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
		linger.Stop()
		cmd := &fsm.Command{Type: fsm.TypeAlarmUpdate, Header: fsm.Header{NowMillis: w.s.cfg.Now().UnixMilli()}}
		for _, a := range batch {
			cmd.AlarmUpdates = append(cmd.AlarmUpdates, a.update)
		}
		err := w.propose(cmd)
		if err != nil {
			w.s.log.Debug("recording alarm outcomes failed; the shard's next leader delivers them again", "shard", w.shard, "count", len(batch), "error", err)
		}
		// One release for the whole batch: under a burst, one wake-up of
		// the worker instead of hundreds.
		w.mu.Lock()
		for _, a := range batch {
			delete(w.inflight, a.key)
		}
		w.mu.Unlock()
		w.notify()
	}
}

func (w *worker) propose(cmd *fsm.Command) error {
	data, err := cmd.Encode()
	if err != nil {
		return err
	}
	// Under w.ctx: a stopping worker does not wait for it (the outcome is
	// then unknown, and the alarm delivered again if it was not recorded).
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	_, err = w.s.cfg.Node.Propose(ctx, w.shard, data)
	return err
}
