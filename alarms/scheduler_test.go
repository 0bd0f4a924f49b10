package alarms_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// With fewer delivery slots than shards falling due at once, every shard's
// alarms are still delivered: a worker that found every slot busy must be
// woken when another shard's delivery frees one.
func TestSlotsSharedAcrossShards(t *testing.T) {
	const ns, shards = "slots", 4
	c := newCluster(t, 1, shards, func(c *testCluster) { c.alarmCfg.Concurrency = 1 })
	h := newWebhook(t, func(ctx context.Context, _ hookCall, _ int) int {
		// Slow enough that every shard's worker finds the slot busy.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
		return http.StatusOK
	})
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
	objs := objectsOnShards(t, ns, "s", 24, shards)
	at := ms(time.Now().Add(500 * time.Millisecond))
	for _, obj := range objs {
		setAlarm(t, c.url(0), ns, obj, at)
	}
	for _, obj := range objs {
		calls := h.waitCalls(t, obj, 1, 10*time.Second)
		checkNotEarly(t, calls[0], at)
	}
	for _, obj := range objs {
		waitCleared(t, c, ns, obj)
	}
}

// Closing a scheduler does not wait for a webhook that does not answer: it
// cancels the calls in flight (the shard's next leader delivers again).
func TestCloseDoesNotWaitForHungWebhook(t *testing.T) {
	const ns = "hung"
	c := newCluster(t, 1, 1)
	first := make(chan struct{}, 1)
	h := newWebhook(t, func(ctx context.Context, _ hookCall, _ int) int {
		select {
		case first <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return http.StatusGatewayTimeout
	})
	configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "5m"})
	setAlarm(t, c.url(0), ns, "h", ms(time.Now()))
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	n := c.nodes[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.sched.Close()
		n.sched.Close() // idempotent
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a webhook call that hangs")
		<-done
	}
	// The alarm was not delivered and stays.
	if got := getAlarm(t, c.url(0), ns, "h"); got == nil {
		t.Fatal("the alarm whose delivery was canceled is gone")
	}
}
