package alarms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/placement"
)

// TestDelivery runs the delivery scenarios of API.md ("Alarms") against one
// three-node cluster, each in its own namespace with its own webhook.
func TestDelivery(t *testing.T) {
	const shards = 4
	c := newCluster(t, 3, shards)

	// (a) Alarms on objects over several shards arrive at or after their
	// scheduled time, and soon after it, with the body and header API.md
	// gives; then the alarm is gone.
	t.Run("OnTimeNeverEarly", func(t *testing.T) {
		const ns = "ontime"
		h := newWebhook(t, always(http.StatusOK))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		objs := objectsOnShards(t, ns, "o", 8, shards)
		base := time.Now().Add(300 * time.Millisecond)
		want := map[string]int64{}
		acked := map[string]time.Time{}
		for i, obj := range objs {
			at := ms(base.Add(time.Duration(i) * 100 * time.Millisecond))
			want[obj] = at
			acked[obj] = setAlarm(t, c.url(i), ns, obj, at)
		}
		for _, obj := range objs {
			calls := h.waitCalls(t, obj, 1, 10*time.Second)
			call := calls[0]
			checkCall(t, call, ns, obj, want[obj], 0)
			checkNotEarly(t, call, want[obj])
			from := time.UnixMilli(want[obj])
			if acked[obj].After(from) {
				from = acked[obj]
			}
			if late := call.at.Sub(from); late > onTimeBound {
				t.Errorf("%s (shard %d): delivered %v after it was due, want ≤ %v", obj, shardOf(t, ns, obj, shards), late, onTimeBound)
			}
		}
		for i, obj := range objs {
			eventually(t, 10*time.Second, "alarm of "+obj+" cleared", func() bool {
				return getAlarm(t, c.url(i), ns, obj) == nil
			})
		}
		for _, obj := range objs {
			if n := len(h.attemptsFor(t, obj)); n != 1 {
				t.Errorf("%s: %d calls, want 1", obj, n)
			}
		}
	})

	// (b) A webhook that fails the first two attempts gets three calls,
	// retryCount 0, 1, 2, with growing gaps of at least FirstBackoff.
	t.Run("RetriesWithBackoff", func(t *testing.T) {
		const ns = "retries"
		h := newWebhook(t, failFirst(2))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		at := ms(time.Now().Add(200 * time.Millisecond))
		setAlarm(t, c.url(1), ns, "r", at)
		calls := h.waitCalls(t, "r", 3, 10*time.Second)
		for i, call := range calls {
			checkCall(t, call, ns, "r", at, i)
			checkNotEarly(t, call, at)
		}
		gap1, gap2 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at)
		if gap1 < testFirstBackoff || gap2 < testFirstBackoff || gap2 < gap1 {
			t.Errorf("gaps between attempts %v, %v: want each ≥ %v and growing", gap1, gap2, testFirstBackoff)
		}
		if gap2 < 2*testFirstBackoff {
			t.Errorf("second retry after %v, want ≥ 2×FirstBackoff = %v", gap2, 2*testFirstBackoff)
		}
		waitCleared(t, c, ns, "r")
		if n := len(h.attemptsFor(t, "r")); n != 3 {
			t.Errorf("%d calls, want 3", n)
		}
	})

	// (c) With alarmMaxRetries 2, a webhook that always fails gets exactly
	// three calls; then the alarm is dropped and counted.
	t.Run("DroppedAfterMaxRetries", func(t *testing.T) {
		const ns = "dropped"
		h := newWebhook(t, always(http.StatusServiceUnavailable))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s", "alarmMaxRetries": 2})
		droppedBefore := c.sumCounter("cairn_alarms_dropped_total")
		at := ms(time.Now().Add(200 * time.Millisecond))
		setAlarm(t, c.url(2), ns, "d", at)
		calls := h.waitCalls(t, "d", 3, 10*time.Second)
		waitCleared(t, c, ns, "d")
		for i, call := range calls {
			checkCall(t, call, ns, "d", at, i)
		}
		// Bounded: one more attempt would come after 4×FirstBackoff.
		time.Sleep(6 * testFirstBackoff)
		if n := len(h.attemptsFor(t, "d")); n != 3 {
			t.Errorf("%d calls, want exactly 3 (one attempt and two retries)", n)
		}
		eventually(t, 5*time.Second, "cairn_alarms_dropped_total to count the drop", func() bool {
			return c.sumCounter("cairn_alarms_dropped_total")-droppedBefore == 1
		})
		// Bounded: the counter must not go on counting.
		time.Sleep(100 * time.Millisecond)
		if d := c.sumCounter("cairn_alarms_dropped_total") - droppedBefore; d != 1 {
			t.Errorf("cairn_alarms_dropped_total rose by %v, want 1", d)
		}
	})

	// (d) Setting the alarm again before it fires replaces it; deleting it
	// before it fires means no call.
	t.Run("OverwriteAndDeleteBeforeFiring", func(t *testing.T) {
		const ns = "overwrite"
		h := newWebhook(t, always(http.StatusOK))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		now := time.Now()
		t1, t2 := ms(now.Add(400*time.Millisecond)), ms(now.Add(900*time.Millisecond))
		setAlarm(t, c.url(0), ns, "ow", t1)
		setAlarm(t, c.url(1), ns, "ow", t2)
		calls := h.waitCalls(t, "ow", 1, 10*time.Second)
		checkCall(t, calls[0], ns, "ow", t2, 0)
		checkNotEarly(t, calls[0], t2)
		waitCleared(t, c, ns, "ow")

		t3 := ms(time.Now().Add(300 * time.Millisecond))
		setAlarm(t, c.url(2), ns, "del", t3)
		must(t, http.MethodDelete, objURL(c.url(0), ns, "del")+"/alarm", "", nil)
		if got := getAlarm(t, c.url(1), ns, "del"); got != nil {
			t.Fatalf("alarm after DELETE: %d", *got)
		}
		// Bounded: proves that nothing is delivered until well after t3.
		time.Sleep(time.Until(time.UnixMilli(t3).Add(onTimeBound)))
		if n := len(h.attemptsFor(t, "del")); n != 0 {
			t.Errorf("a deleted alarm got %d calls", n)
		}
		if n := len(h.attemptsFor(t, "ow")); n != 1 {
			t.Errorf("an overwritten alarm got %d calls, want 1", n)
		}
	})

	// (e) An alarm set again while its delivery is in flight is kept when
	// the delivery succeeds, and fires at its new time.
	t.Run("SetAgainDuringDelivery", func(t *testing.T) {
		const ns = "setagain"
		release := make(chan struct{})
		first := make(chan struct{})
		h := newWebhook(t, func(ctx context.Context, c hookCall, attempt int) int {
			if attempt == 0 {
				close(first)
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return http.StatusOK
		})
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "10s"})
		t1 := ms(time.Now().Add(200 * time.Millisecond))
		setAlarm(t, c.url(0), ns, "sa", t1)
		select {
		case <-first:
		case <-time.After(10 * time.Second):
			t.Fatal("the first delivery never arrived")
		}
		t2 := ms(time.Now().Add(800 * time.Millisecond))
		setAlarm(t, c.url(1), ns, "sa", t2)
		close(release)
		// The first delivery's outcome must not clear the new alarm: it is
		// still there until it fires.
		for time.Until(time.UnixMilli(t2)) > 100*time.Millisecond {
			if got := getAlarm(t, c.url(2), ns, "sa"); got == nil || *got != t2 {
				t.Fatalf("alarm after the first delivery succeeded: %v, want %d", got, t2)
			}
			time.Sleep(50 * time.Millisecond)
		}
		calls := h.waitCalls(t, "sa", 2, 10*time.Second)
		checkCall(t, calls[0], ns, "sa", t1, 0)
		checkCall(t, calls[1], ns, "sa", t2, 0)
		checkNotEarly(t, calls[1], t2)
		if late := calls[1].at.Sub(time.UnixMilli(t2)); late > onTimeBound {
			t.Errorf("second alarm delivered %v late", late)
		}
		waitCleared(t, c, ns, "sa")
		if n := len(h.attemptsFor(t, "sa")); n != 2 {
			t.Errorf("%d calls, want 2", n)
		}
	})

	// (f) A time in the past fires soon.
	t.Run("PastTimeFiresSoon", func(t *testing.T) {
		const ns = "past"
		h := newWebhook(t, always(http.StatusOK))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		at := ms(time.Now().Add(-10 * time.Second))
		acked := setAlarm(t, c.url(1), ns, "p", at)
		calls := h.waitCalls(t, "p", 1, 10*time.Second)
		checkCall(t, calls[0], ns, "p", at, 0)
		if late := calls[0].at.Sub(acked); late > onTimeBound {
			t.Errorf("a past alarm was delivered %v after it was set", late)
		}
		waitCleared(t, c, ns, "p")
	})

	// (g) An alarm due while its namespace has no webhook is kept, and
	// delivered once one is configured.
	t.Run("NoWebhookYet", func(t *testing.T) {
		const ns = "nohook"
		h := newWebhook(t, always(http.StatusOK))
		objs := objectsOnShards(t, ns, "n", 3, shards)
		at := ms(time.Now().Add(100 * time.Millisecond))
		for i, obj := range objs {
			setAlarm(t, c.url(i), ns, obj, at)
		}
		// Bounded: several NoWebhookWait periods pass with the alarms due.
		time.Sleep(time.Until(time.UnixMilli(at)) + 5*testNoWebhookWait)
		for _, obj := range objs {
			if got := getAlarm(t, c.url(0), ns, obj); got == nil || *got != at {
				t.Fatalf("%s: alarm due without a webhook: %v, want it kept (%d)", obj, got, at)
			}
		}
		// A configuration without a webhook does not deliver either.
		configure(t, c.url(1), ns, map[string]any{"alarmTimeout": "2s"})
		time.Sleep(5 * testNoWebhookWait) // bounded, as above
		for _, obj := range objs {
			if got := getAlarm(t, c.url(0), ns, obj); got == nil {
				t.Fatalf("%s: alarm dropped while the namespace had no webhook", obj)
			}
		}
		configured := time.Now()
		configure(t, c.url(2), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		for _, obj := range objs {
			calls := h.waitCalls(t, obj, 1, 10*time.Second)
			checkCall(t, calls[0], ns, obj, at, 0)
			if d := calls[0].at.Sub(configured); d > time.Second {
				t.Errorf("%s delivered %v after the webhook was configured", obj, d)
			}
			waitCleared(t, c, ns, obj)
		}
	})

	// (j) deleteAll keeps the alarm unless ?alarm=true.
	t.Run("DeleteAllKeepsAlarm", func(t *testing.T) {
		const ns = "deleteall"
		at := ms(time.Now().Add(time.Hour))
		o := objURL(c.url(0), ns, "x")
		must(t, http.MethodPut, o+"/kv/k", `"v"`, nil)
		setAlarm(t, c.url(1), ns, "x", at)
		must(t, http.MethodDelete, o, "", nil)
		if code, _ := do(t, http.MethodGet, o+"/kv/k", ""); code != http.StatusNotFound {
			t.Errorf("GET key after deleteAll: %d, want 404", code)
		}
		if got := getAlarm(t, c.url(2), ns, "x"); got == nil || *got != at {
			t.Fatalf("alarm after deleteAll: %v, want kept (%d)", got, at)
		}
		must(t, http.MethodDelete, o+"?alarm=false", "", nil)
		if got := getAlarm(t, c.url(2), ns, "x"); got == nil || *got != at {
			t.Fatalf("alarm after deleteAll?alarm=false: %v, want kept (%d)", got, at)
		}
		must(t, http.MethodDelete, o+"?alarm=true", "", nil)
		if got := getAlarm(t, c.url(1), ns, "x"); got != nil {
			t.Fatalf("alarm after deleteAll?alarm=true: %d, want none", *got)
		}
		if list := listAll(t, c.url(0), ns, "", 100); len(list) != 0 {
			t.Fatalf("listing after deleteAll?alarm=true: %+v", list)
		}
		// In a tx: {"deleteAll":{}} keeps it, {"deleteAll":{"alarm":true}} not.
		setAlarm(t, c.url(1), ns, "x", at)
		must(t, http.MethodPost, o+"/tx", `{"ops":[{"deleteAll":{}},{"getAlarm":{}}]}`, nil)
		if got := getAlarm(t, c.url(2), ns, "x"); got == nil || *got != at {
			t.Fatalf("alarm after a tx deleteAll: %v, want kept", got)
		}
		must(t, http.MethodPost, o+"/tx", `{"ops":[{"deleteAll":{"alarm":true}}]}`, nil)
		if got := getAlarm(t, c.url(2), ns, "x"); got != nil {
			t.Fatalf("alarm after a tx deleteAll with alarm: %d", *got)
		}
	})

	// (k) GET /v1/ns/{ns}/alarms lists the pending alarms of every shard by
	// time, paged with from, to, limit and cursor.
	t.Run("ListAcrossShards", func(t *testing.T) {
		const ns = "listing"
		base := ms(time.Now().Add(time.Hour))
		objs := objectsOnShards(t, ns, "l", 30, shards)
		want := map[string]int64{}
		for i, obj := range objs {
			// Ties at one time across shards test the tie-break by name.
			at := base + int64(i/3)*1000
			want[obj] = at
			setAlarm(t, c.url(i), ns, obj, at)
		}
		// Another namespace's alarms are not listed.
		setAlarm(t, c.url(0), "listing-other", "z", base)

		for _, limit := range []int{1, 4, 7, 30, 1000} {
			got := listAll(t, c.url(limit), ns, "", limit)
			checkListing(t, got, want, 0, 0)
		}
		// from (inclusive) and to (exclusive).
		from, to := base+2000, base+6000
		q := fmt.Sprintf("from=%d&to=%d", from, to)
		for _, limit := range []int{2, 5, 100} {
			got := listAll(t, c.url(limit), ns, q, limit)
			checkListing(t, got, want, from, to)
		}
		// An alarm that fired is no longer listed; a set one is, once.
		var page struct {
			Alarms []listedAlarm `json:"alarms"`
		}
		must(t, http.MethodGet, c.url(0)+"/v1/ns/"+ns+"/alarms?limit=2", "", &page)
		if len(page.Alarms) != 2 || page.Alarms[0].RetryCount != 0 || page.Alarms[0].NextAttempt != page.Alarms[0].ScheduledTime ||
			page.Alarms[0].ObjectID != objectID(ns, page.Alarms[0].Object) {
			t.Fatalf("first page %+v", page.Alarms)
		}
		if code, body := do(t, http.MethodGet, c.url(0)+"/v1/ns/"+ns+"/alarms?cursor=bogus!", ""); code != http.StatusBadRequest {
			t.Errorf("bad cursor: %d %s", code, body)
		}
		for i, obj := range objs {
			must(t, http.MethodDelete, objURL(c.url(i), ns, obj)+"/alarm", "", nil)
		}
		if got := listAll(t, c.url(0), ns, "", 10); len(got) != 0 {
			t.Errorf("listing after deleting every alarm: %+v", got)
		}
		must(t, http.MethodDelete, objURL(c.url(0), "listing-other", "z")+"/alarm", "", nil)
	})

	// (l) getAlarm, setAlarm and deleteAlarm in one tx: later ops see the
	// earlier ones; the result is what the tx left.
	t.Run("TxAlarmOps", func(t *testing.T) {
		const ns = "txops"
		h := newWebhook(t, always(http.StatusOK))
		configure(t, c.url(0), ns, map[string]any{"alarmWebhook": h.url(), "alarmTimeout": "2s"})
		o := objURL(c.url(1), ns, "t")
		far := ms(time.Now().Add(time.Hour))
		soon := ms(time.Now().Add(600 * time.Millisecond))
		tx := fmt.Sprintf(`{"ops":[{"getAlarm":{}},{"setAlarm":{"scheduledTime":%d}},{"getAlarm":{}},{"deleteAlarm":{}},{"getAlarm":{}},{"setAlarm":{"scheduledTime":%d}},{"getAlarm":{}},{"put":{"k":1}}]}`, far, soon)
		var out struct {
			Results []json.RawMessage `json:"results"`
			Version string            `json:"version"`
		}
		must(t, http.MethodPost, o+"/tx", tx, &out)
		want := []string{`{"scheduledTime":null}`, `{}`, fmt.Sprintf(`{"scheduledTime":%d}`, far), `{}`,
			`{"scheduledTime":null}`, `{}`, fmt.Sprintf(`{"scheduledTime":%d}`, soon), `{"written":1}`}
		if len(out.Results) != len(want) {
			t.Fatalf("results %s", out.Results)
		}
		for i := range want {
			if string(out.Results[i]) != want[i] {
				t.Errorf("result %d: %s, want %s", i, out.Results[i], want[i])
			}
		}
		// A read-only tx reads it; the alarm the tx left fires at its time.
		var ro struct {
			Results []json.RawMessage `json:"results"`
		}
		must(t, http.MethodPost, objURL(c.url(2), ns, "t")+"/tx", `{"ops":[{"getAlarm":{}}]}`, &ro)
		if len(ro.Results) != 1 || string(ro.Results[0]) != fmt.Sprintf(`{"scheduledTime":%d}`, soon) {
			t.Errorf("read-only getAlarm: %s", ro.Results)
		}
		calls := h.waitCalls(t, "t", 1, 10*time.Second)
		checkCall(t, calls[0], ns, "t", soon, 0)
		checkNotEarly(t, calls[0], soon)
		waitCleared(t, c, ns, "t")
		// A tx that sets then deletes leaves nothing, and nothing fires.
		soon2 := ms(time.Now().Add(200 * time.Millisecond))
		must(t, http.MethodPost, o+"/tx", fmt.Sprintf(`{"ops":[{"setAlarm":{"scheduledTime":%d}},{"deleteAlarm":{}}]}`, soon2), nil)
		if got := getAlarm(t, c.url(0), ns, "t"); got != nil {
			t.Fatalf("alarm after set+delete in one tx: %d", *got)
		}
		// A failing tx changes no alarm.
		code, body := do(t, http.MethodPost, o+"/tx", fmt.Sprintf(`{"ops":[{"setAlarm":{"scheduledTime":%d}},{"put":{"k":"x"}},{"incr":{"key":"k","by":1}}]}`, soon2))
		if code != http.StatusConflict || !strings.Contains(body, "not_a_number") {
			t.Fatalf("failing tx: %d %s", code, body)
		}
		if got := getAlarm(t, c.url(0), ns, "t"); got != nil {
			t.Fatalf("alarm after a failed tx: %d", *got)
		}
		// Bounded: nothing fires for the alarms that never stuck.
		time.Sleep(time.Until(time.UnixMilli(soon2).Add(onTimeBound)))
		if n := len(h.attemptsFor(t, "t")); n != 1 {
			t.Errorf("%d calls, want 1", n)
		}
	})
}

func shardOf(t *testing.T, ns, obj string, shards int) uint32 {
	s, err := placement.ShardFor(ns, obj, shards)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listedAlarm is one alarm of GET /v1/ns/{ns}/alarms.
type listedAlarm struct {
	Object        string `json:"object"`
	ObjectID      string `json:"objectId"`
	ScheduledTime int64  `json:"scheduledTime"`
	RetryCount    int    `json:"retryCount"`
	NextAttempt   int64  `json:"nextAttempt"`
}

// listAll pages through GET /v1/ns/{ns}/alarms with limit per page.
func listAll(t *testing.T, base, ns, query string, limit int) []listedAlarm {
	t.Helper()
	var all []listedAlarm
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the listing never ends")
		}
		u := fmt.Sprintf("%s/v1/ns/%s/alarms?limit=%d", base, ns, limit)
		if query != "" {
			u += "&" + query
		}
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		var page struct {
			Alarms []listedAlarm `json:"alarms"`
			Cursor *string       `json:"cursor"`
		}
		must(t, http.MethodGet, u, "", &page)
		if len(page.Alarms) > limit {
			t.Fatalf("page of %d alarms with limit %d", len(page.Alarms), limit)
		}
		all = append(all, page.Alarms...)
		if page.Cursor == nil {
			return all
		}
		if len(page.Alarms) == 0 {
			t.Fatalf("an empty page with a cursor")
		}
		cursor = *page.Cursor
	}
}

// checkListing checks that got holds every alarm of want in [from, to)
// exactly once (to 0: no bound), ordered by time and then name.
func checkListing(t *testing.T, got []listedAlarm, want map[string]int64, from, to int64) {
	t.Helper()
	var exp []listedAlarm
	for obj, at := range want {
		if at >= from && (to == 0 || at < to) {
			exp = append(exp, listedAlarm{Object: obj, ScheduledTime: at})
		}
	}
	slices.SortFunc(exp, func(a, b listedAlarm) int {
		if a.ScheduledTime != b.ScheduledTime {
			return int(a.ScheduledTime - b.ScheduledTime)
		}
		return strings.Compare(a.Object, b.Object)
	})
	if len(got) != len(exp) {
		t.Fatalf("listing (from %d to %d) has %d alarms, want %d: %+v", from, to, len(got), len(exp), got)
	}
	for i := range exp {
		if got[i].Object != exp[i].Object || got[i].ScheduledTime != exp[i].ScheduledTime {
			t.Fatalf("listing (from %d to %d) at %d: %s@%d, want %s@%d", from, to, i,
				got[i].Object, got[i].ScheduledTime, exp[i].Object, exp[i].ScheduledTime)
		}
	}
}
