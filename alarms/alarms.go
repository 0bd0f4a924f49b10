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
	"sync"
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
	// Concurrency bounds the deliveries in flight on this node (default 256).
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

	stop chan struct{}
	wg   sync.WaitGroup
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
		cfg.Concurrency = 256
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
	for id, w := range s.workers {
		if !led[id] {
			close(w.stop)
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
		w.poke()
	}
}

// Close stops every worker and waits for them and their deliveries.
func (s *Scheduler) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	s.mu.Lock()
	for id, w := range s.workers {
		close(w.stop)
		delete(s.workers, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// worker delivers the due alarms of one shard while this node leads it.
type worker struct {
	s     *Scheduler
	shard uint32
	stop  chan struct{}
	wake  chan struct{}

	mu       sync.Mutex
	inflight map[string]bool      // objects whose alarm is being delivered
	noHook   map[string]time.Time // namespaces without a webhook, until when
	acks     chan ack
}

// ack is a delivery's outcome waiting to be proposed.
type ack struct {
	update objectstore.AlarmUpdate
	done   func(error)
}

func newWorker(s *Scheduler, shard uint32) *worker {
	return &worker{
		s:        s,
		shard:    shard,
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		inflight: map[string]bool{},
		noHook:   map[string]time.Time{},
		acks:     make(chan ack, 1024),
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func objKey(ns, name string) string { return ns + "\x00" + name }

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
		case <-w.wake:
		}
		next, err := w.dispatch()
		if err != nil {
			w.s.log.Error("reading due alarms failed", "shard", w.shard, "error", err)
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

// dispatch starts a delivery for every due alarm not already in flight, as
// far as free slots allow, and returns when the next one falls due (zero if
// none is pending, or if it must wait for a slot, which wakes it).
func (w *worker) dispatch() (time.Time, error) {
	now := w.s.cfg.Now()
	nowMs := now.UnixMilli()
	var next time.Time
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
			if next.IsZero() || until.Before(next) {
				next = until
			}
			return true
		}
		if d.Alarm.NextAttempt > nowMs || d.Alarm.ScheduledTime > nowMs {
			due := time.UnixMilli(max(d.Alarm.NextAttempt, d.Alarm.ScheduledTime))
			if next.IsZero() || due.Before(next) {
				next = due
			}
			return false
		}
		select {
		case w.s.slots <- struct{}{}:
		default:
			return false // every slot is busy; a finished delivery wakes us
		}
		w.mu.Lock()
		w.inflight[key] = true
		w.mu.Unlock()
		w.s.wg.Add(1)
		go func() {
			defer w.s.wg.Done()
			w.deliver(d)
		}()
		return true
	})
	return next, err
}

// release ends a delivery: its slot is free and its object may be picked up
// again (once the outcome is in the state, or at once if it never got
// there).
func (w *worker) release(key string) {
	w.mu.Lock()
	delete(w.inflight, key)
	w.mu.Unlock()
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

// deliver makes one delivery attempt of d and proposes its outcome.
func (w *worker) deliver(d objectstore.DueAlarm) {
	key := objKey(d.Object.Namespace, d.Object.Name)
	slotHeld := true
	freeSlot := func() {
		if slotHeld {
			<-w.s.slots
			slotHeld = false
		}
	}
	defer freeSlot()

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
		u.NextAttempt = w.s.cfg.Now().Add(w.backoff(u.RetryCount)).UnixMilli()
		w.s.metrics.retried.Inc()
		w.s.log.Debug("alarm delivery failed; retrying", "namespace", u.Namespace, "object", u.Object,
			"retry", u.RetryCount, "next_attempt", u.NextAttempt, "error", err)
	}
	done := make(chan error, 1)
	select {
	case w.acks <- ack{update: u, done: func(err error) { done <- err }}:
		select {
		case <-done:
		case <-w.stop:
		}
	case <-w.stop:
	}
	w.release(key)
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
	ctx, cancel := context.WithTimeout(context.Background(), cfg.AlarmTimeout)
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
		for _, a := range batch {
			a.done(err)
		}
	}
}

func (w *worker) propose(cmd *fsm.Command) error {
	data, err := cmd.Encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = w.s.cfg.Node.Propose(ctx, w.shard, data)
	return err
}
