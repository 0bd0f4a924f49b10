package alarms_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// (h) The node leading an object's shard is stopped while the webhook holds
// its delivery: the shard's new leader delivers the alarm again, with the
// same Idempotency-Key, and the alarm ends cleared.
func TestLeaderKilledMidDelivery(t *testing.T) {
	const ns, obj, shards = "failover", "f", 2
	c := newCluster(t, 3, shards)
	first := make(chan struct{})
	h := newWebhook(t, func(ctx context.Context, _ hookCall, attempt int) int {
		if attempt == 0 {
			close(first)
			<-ctx.Done() // hang until the caller gives up
			return http.StatusGatewayTimeout
		}
		return http.StatusOK
	})
	// The timeout is long: the retry must come from the new leader picking
	// up the alarm, not from the old one timing out.
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "30s"})
	at := ms(time.Now().Add(300 * time.Millisecond))
	setAlarm(t, c.url(1), ns, obj, at)
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("the first delivery never arrived")
	}
	shard := shardOf(t, ns, obj, shards)
	old := c.leaderOf(shard)
	stopped := time.Now()
	c.stop(old)
	if d := time.Since(stopped); d > 5*time.Second {
		t.Errorf("stopping the leader took %v with a delivery in flight", d)
	}
	newLeader := c.leaderOf(shard)
	if newLeader == old {
		t.Fatal("no new leader")
	}
	calls := h.waitRawCalls(t, obj, 2, 15*time.Second)
	for _, call := range calls {
		checkNotEarly(t, call, at)
		if call.key != calls[0].key {
			t.Errorf("Idempotency-Key %q after failover, first was %q", call.key, calls[0].key)
		}
		if call.body.ScheduledTime != at || call.body.Object != obj || call.body.Namespace != ns {
			t.Errorf("call after failover: %s", call.raw)
		}
	}
	checkCall(t, calls[0], ns, obj, at, 0)
	waitCleared(t, c, ns, obj)
	t.Logf("%s stopped; %s delivered again %v later", old.id, newLeader.id, calls[1].at.Sub(stopped))
}

// (i) Alarms fall due while the whole cluster is down; after a restart on
// the same data directories and addresses every one is delivered.
func TestWholeClusterRestart(t *testing.T) {
	const ns, shards = "restart", 4
	c := newCluster(t, 3, shards)
	h := newWebhook(t, always(http.StatusOK))
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
	objs := objectsOnShards(t, ns, "r", 8, shards)
	due := ms(time.Now().Add(2 * time.Second))
	want := map[string]int64{}
	for i, obj := range objs {
		at := due + int64(i)*10
		want[obj] = at
		setAlarm(t, c.url(i), ns, obj, at)
	}
	for _, n := range c.nodes {
		c.stop(n)
	}
	if n := h.count(); n != 0 {
		t.Fatalf("%d calls before the alarms were due; the test needs more lead", n)
	}
	// Bounded: the alarms fall due while every node is down.
	time.Sleep(time.Until(time.UnixMilli(due+int64(len(objs))*10)) + 200*time.Millisecond)
	restarted := time.Now()
	for _, n := range c.nodes {
		c.start(n, nil)
	}
	c.waitReady()
	for _, obj := range objs {
		calls := h.waitCalls(t, obj, 1, 15*time.Second)
		checkCall(t, calls[0], ns, obj, want[obj], 0)
		if calls[0].at.Before(restarted) {
			t.Errorf("%s delivered before the restart", obj)
		}
	}
	for _, obj := range objs {
		waitCleared(t, c, ns, obj)
	}
	for _, obj := range objs {
		if n := len(h.attemptsFor(t, obj)); n != 1 {
			t.Errorf("%s: %d distinct delivery attempts, want 1", obj, n)
		}
	}
	t.Logf("all %d alarms delivered within %v of the restart", len(objs), time.Since(restarted))
}

// (j) Handing a shard's leadership away on purpose (rebalancing, a clean
// stop) waits for the deliveries in flight to record their outcomes and
// starts no new one meanwhile, so the next leader repeats none of them.
func TestHandoffRecordsOutcomesFirst(t *testing.T) {
	const ns = "handoff"
	c := newCluster(t, 3, 1)
	release, started := make(chan struct{}), make(chan struct{})
	h := newWebhook(t, func(ctx context.Context, call hookCall, attempt int) int {
		if call.body.Object == "a" && attempt == 0 {
			close(started)
			select {
			case <-release:
			case <-ctx.Done():
				return http.StatusGatewayTimeout
			}
		}
		return http.StatusOK
	})
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "30s"})
	setAlarm(t, c.url(0), ns, "a", ms(time.Now().Add(200*time.Millisecond)))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery of a never arrived")
	}
	leader := c.leaderOf(0)
	handedOff := make(chan func(), 1)
	go func() { handedOff <- leader.sched.Handoff(context.Background(), 0) }()

	// While a's delivery is in flight, Handoff waits, and b, due in a
	// moment (time for the goroutine above to pause the worker), is not
	// started.
	setAlarm(t, c.url(0), ns, "b", ms(time.Now().Add(300*time.Millisecond)))
	time.Sleep(800 * time.Millisecond)
	select {
	case <-handedOff:
		t.Fatal("Handoff returned while a delivery was in flight")
	default:
	}
	if n := len(h.callsFor("b")); n != 0 {
		t.Fatalf("b was delivered %d times during the handoff", n)
	}
	close(release)
	var resume func()
	select {
	case resume = <-handedOff:
	case <-time.After(10 * time.Second):
		t.Fatal("Handoff did not return after the delivery ended")
	}
	// a's outcome is committed: a next leader would not deliver it again.
	if got := getAlarm(t, c.url(1), ns, "a"); got != nil {
		t.Fatalf("a still pending (%d) when Handoff returned", *got)
	}
	// The transfer did not happen: the worker goes on.
	resume()
	h.waitCalls(t, "b", 1, 10*time.Second)
	waitCleared(t, c, ns, "b")
	if n := len(h.callsFor("a")); n != 1 {
		t.Fatalf("a delivered %d times", n)
	}

	// Now the transfer happens: c, due during the handoff, is delivered by
	// the next leader alone; the old leader's worker stops still paused.
	resume = leader.sched.Handoff(context.Background(), 0)
	setAlarm(t, c.url(0), ns, "c", ms(time.Now())) // due while paused
	if err := leader.node.Shard(0).Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	resume()
	h.waitCalls(t, "c", 1, 10*time.Second)
	waitCleared(t, c, ns, "c")
	time.Sleep(500 * time.Millisecond)
	if n := len(h.callsFor("c")); n != 1 {
		t.Fatalf("c delivered %d times across a planned transfer", n)
	}
}

// (k) A leader stopped cleanly (SIGTERM) while the webhook is answering a
// delivery: the outcome is recorded before the leadership moves, and the
// next leader does not deliver the alarm again.
func TestCleanStopMidDeliveryDeliversOnce(t *testing.T) {
	const ns, obj = "cleanstop", "s"
	c := newCluster(t, 3, 1)
	started := make(chan struct{})
	h := newWebhook(t, func(ctx context.Context, call hookCall, attempt int) int {
		if attempt == 0 {
			close(started)
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return http.StatusGatewayTimeout
			}
		}
		return http.StatusOK
	})
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "30s"})
	setAlarm(t, c.url(0), ns, obj, ms(time.Now().Add(200*time.Millisecond)))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery never arrived")
	}
	old := c.leaderOf(0)
	c.stopClean(old)
	if c.leaderOf(0) == old {
		t.Fatal("no new leader")
	}
	waitCleared(t, c, ns, obj)
	// Long enough for a new leader to have delivered it again.
	time.Sleep(time.Second)
	if n := len(h.callsFor(obj)); n != 1 {
		t.Fatalf("delivered %d times across a clean stop of the leader", n)
	}
}
