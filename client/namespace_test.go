package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/placement"
)

func TestNamespaceConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	ns := c.Namespace(uniqueNS("nsconf"))
	cfg, err := ns.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	six := 6
	if want := (client.NamespaceConfig{Name: ns.Name(), AlarmTimeout: 30 * time.Second, AlarmMaxRetries: &six}); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults = %+v, want %+v", cfg, want)
	}
	zero := 0
	set := client.NamespaceConfig{AlarmWebhook: "http://hooks.example:9000/alarm", AlarmTimeout: 1500 * time.Millisecond, AlarmMaxRetries: &zero}
	got, err := ns.SetConfig(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	set.Name = ns.Name()
	if !reflect.DeepEqual(got, set) {
		t.Fatalf("SetConfig = %+v, want %+v", got, set)
	}
	if cfg, err := ns.Config(ctx); err != nil || !reflect.DeepEqual(cfg, set) {
		t.Fatalf("Config = %+v, %v; want %+v", cfg, err, set)
	}
	all, err := c.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(n client.NamespaceConfig) bool { return n.Name == ns.Name() })
	if i < 0 || !reflect.DeepEqual(all[i], set) {
		t.Fatalf("Namespaces = %+v", all)
	}
	// An empty configuration restores the defaults.
	if cfg, err := ns.SetConfig(ctx, client.NamespaceConfig{}); err != nil || cfg.AlarmWebhook != "" || *cfg.AlarmMaxRetries != 6 || cfg.AlarmTimeout != 30*time.Second {
		t.Fatalf("reset = %+v, %v", cfg, err)
	}
}

func TestObjectsAndUniqueID(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	ns := c.Namespace(uniqueNS("nsobjects"))
	var want []client.ObjectInfo
	for i := range 7 {
		o := ns.Object(fmt.Sprintf("obj-%d", i))
		if _, err := o.Put(ctx, "k", i); err != nil {
			t.Fatal(err)
		}
		want = append(want, client.ObjectInfo{Name: o.Name(), ID: o.ID()})
	}
	// An object with only an alarm is listed too.
	alarmOnly := ns.Object("z-alarm-only")
	if err := alarmOnly.SetAlarm(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want = append(want, client.ObjectInfo{Name: alarmOnly.Name(), ID: alarmOnly.ID()})

	var got []client.ObjectInfo
	for info, err := range ns.AllObjects(ctx, client.ObjectsOptions{Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AllObjects = %+v, want %+v", got, want)
	}
	page, err := ns.Objects(ctx, client.ObjectsOptions{Limit: 5})
	if err != nil || len(page.Objects) != 5 || page.Cursor == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = ns.Objects(ctx, client.ObjectsOptions{Limit: 5, Cursor: page.Cursor}, client.Stale())
	if err != nil || len(page.Objects) != 3 || page.Cursor != "" {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	page, err = ns.Objects(ctx, client.ObjectsOptions{Prefix: "obj-1"})
	if err != nil || len(page.Objects) != 1 || page.Objects[0] != want[1] {
		t.Fatalf("prefix = %+v, %v", page, err)
	}

	o1, err := ns.UniqueID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := ns.UniqueID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(o1.Name()) != 64 || strings.Trim(o1.Name(), "0123456789abcdef") != "" || o1.Name() == o2.Name() || o1.Namespace() != ns {
		t.Fatalf("UniqueID = %q, %q", o1.Name(), o2.Name())
	}
	if o1.ID() != client.ObjectID(ns.Name(), o1.Name()) {
		t.Fatal("ID mismatch")
	}
	if _, err := o1.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	page, err = ns.Objects(ctx, client.ObjectsOptions{Prefix: o1.Name()})
	if err != nil || len(page.Objects) != 1 || page.Objects[0].ID != o1.ID() {
		t.Fatalf("the unique object listed = %+v, %v (want id %s)", page, err, o1.ID())
	}
}

func TestAlarms(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	ns := c.Namespace(uniqueNS("nsalarms")) // no webhook: alarms stay pending
	base := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	var want []client.PendingAlarm
	for i := range 5 {
		o := ns.Object(fmt.Sprintf("a%d", i))
		at := base.Add(time.Duration(5-i) * time.Minute) // a4 first
		if err := o.SetAlarm(ctx, at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := o.SetAlarm(ctx, at); err != nil { // replaces the first
			t.Fatal(err)
		}
		if got, err := o.GetAlarm(ctx); err != nil || !got.Equal(at) {
			t.Fatalf("GetAlarm = %v, %v; want %v", got, err, at)
		}
		want = append([]client.PendingAlarm{{Object: o.Name(), ObjectID: o.ID(), ScheduledTime: at, NextAttempt: at}}, want...)
	}
	var got []client.PendingAlarm
	for a, err := range ns.AllAlarms(ctx, client.AlarmsOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AllAlarms = %+v\nwant %+v", got, want)
	}
	page, err := ns.Alarms(ctx, client.AlarmsOptions{From: want[1].ScheduledTime, To: want[3].ScheduledTime}, client.Stale())
	if err != nil || !reflect.DeepEqual(page.Alarms, want[1:3]) || page.Cursor != "" {
		t.Fatalf("Alarms(from, to) = %+v, %v", page, err)
	}
	o := ns.Object("a0")
	if err := o.DeleteAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	if at, err := o.GetAlarm(ctx, client.Stale()); err != nil || !at.IsZero() {
		t.Fatalf("GetAlarm after DeleteAlarm = %v, %v", at, err)
	}
	// deleteAll keeps the alarm unless asked.
	o = ns.Object("a1")
	if _, err := o.Put(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	if at, err := o.GetAlarm(ctx); err != nil || at.IsZero() {
		t.Fatalf("alarm after DeleteAll(false) = %v, %v", at, err)
	}
	if err := o.Get(ctx, "k", new(int)); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("key after DeleteAll = %v", err)
	}
	if err := o.DeleteAll(ctx, true); err != nil {
		t.Fatal(err)
	}
	if at, err := o.GetAlarm(ctx); err != nil || !at.IsZero() {
		t.Fatalf("alarm after DeleteAll(true) = %v, %v", at, err)
	}
}

// TestAlarmWebhook has the node's scheduler deliver a real alarm to an
// AlarmHandler: the first delivery fails, the retry succeeds and clears it.
func TestAlarmWebhook(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	events := make(chan client.AlarmEvent, 16)
	var calls atomic.Int32
	wh := httptest.NewServer(client.AlarmHandler(func(ctx context.Context, ev client.AlarmEvent) error {
		events <- ev
		if calls.Add(1) == 1 {
			return errors.New("not yet")
		}
		return nil
	}))
	defer wh.Close()
	ns := c.Namespace(uniqueNS("nshook"))
	three := 3
	if _, err := ns.SetConfig(ctx, client.NamespaceConfig{AlarmWebhook: wh.URL + "/alarm", AlarmTimeout: 2 * time.Second, AlarmMaxRetries: &three}); err != nil {
		t.Fatal(err)
	}
	o := ns.Object("batch/1")
	at := time.UnixMilli(time.Now().Add(300 * time.Millisecond).UnixMilli())
	if err := o.SetAlarm(ctx, at); err != nil {
		t.Fatal(err)
	}
	next := func() client.AlarmEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(15 * time.Second):
			t.Fatal("no alarm delivered")
		}
		return client.AlarmEvent{}
	}
	want := client.AlarmEvent{Namespace: ns.Name(), Object: "batch/1", ObjectID: o.ID(), ScheduledTime: at,
		IdempotencyKey: fmt.Sprintf("%s:%d", o.ID(), at.UnixMilli())}
	ev := next()
	if time.Now().Before(at) {
		t.Fatalf("delivered before %v", at)
	}
	if !ev.ScheduledTime.Equal(at) {
		t.Fatalf("scheduledTime %v, want %v", ev.ScheduledTime, at)
	}
	ev.ScheduledTime = at
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("first delivery = %+v\nwant %+v", ev, want)
	}
	ev = next()
	want.RetryCount, want.IsRetry = 1, true
	ev.ScheduledTime = at
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("retry = %+v\nwant %+v", ev, want)
	}
	waitFor(t, "the delivered alarm to be cleared", 10*time.Second, func() bool {
		got, err := o.GetAlarm(ctx)
		return err == nil && got.IsZero()
	})
	if page, err := ns.Alarms(ctx, client.AlarmsOptions{}); err != nil || len(page.Alarms) != 0 {
		t.Fatalf("pending alarms = %+v, %v", page, err)
	}
}

// TestAlarmHandlerHTTP checks AlarmHandler's answers to good and bad
// requests.
func TestAlarmHandlerHTTP(t *testing.T) {
	t.Parallel()
	var got client.AlarmEvent
	fail := false
	h := client.AlarmHandler(func(ctx context.Context, ev client.AlarmEvent) error {
		got = ev
		if fail {
			return errors.New("storage is on fire")
		}
		return nil
	})
	serve := func(method, body string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/alarm", strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	good := `{"namespace":"ns","object":"o","objectId":"abc","scheduledTime":1764500000000,"retryCount":2,"isRetry":true,"future":"ignored"}`
	w := serve("POST", good, "Idempotency-Key", "abc:1764500000000")
	want := client.AlarmEvent{Namespace: "ns", Object: "o", ObjectID: "abc", ScheduledTime: time.UnixMilli(1764500000000),
		RetryCount: 2, IsRetry: true, IdempotencyKey: "abc:1764500000000"}
	if w.Code != 200 || !reflect.DeepEqual(got, want) {
		t.Fatalf("good = %d, %+v", w.Code, got)
	}
	fail = true
	w = serve("POST", good)
	if body, _ := io.ReadAll(w.Body); w.Code != 500 || !strings.Contains(string(body), "storage is on fire") {
		t.Fatalf("failing fn = %d %q", w.Code, body)
	}
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		if w := serve(m, good); w.Code != 405 || w.Header().Get("Allow") != "POST" {
			t.Fatalf("%s = %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	for _, bad := range []string{"", "{", `[]`, `{"namespace":"ns","object":"o"}`, `{"object":"o","scheduledTime":1}`, `{"namespace":"ns","object":"o","scheduledTime":"soon"}`, strings.Repeat(" ", 70<<10) + "{}"} {
		if w := serve("POST", bad); w.Code != 400 {
			t.Fatalf("bad body %.40q = %d", bad, w.Code)
		}
	}
}

func TestClusterAndHealth(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "n1" || st.Nodes[0].State != client.NodeAlive || st.Nodes[0].ShardsLed != 4 || st.Nodes[0].ShardsHeld != 4 {
		t.Fatalf("nodes = %+v", st.Nodes)
	}
	if len(st.Shards) != 4 {
		t.Fatalf("shards = %+v", st.Shards)
	}
	for i, s := range st.Shards {
		if s.ID != uint32(i) || s.Leader != "n1" || !slices.Equal(s.Voters, []string{"n1"}) || len(s.NonVoters) != 0 {
			t.Fatalf("shard %d = %+v", i, s)
		}
	}
	// A write to an object of each shard moves that shard's applied index
	// on. (Other tests write to the same node at the same time, so only the
	// direction is known.)
	for shard := range uint32(len(st.Shards)) {
		ns := uniqueNS("status")
		for i := 0; ; i++ {
			name := fmt.Sprintf("o%d", i)
			if s, err := placement.ShardFor(ns, name, len(st.Shards)); err != nil {
				t.Fatal(err)
			} else if s != shard {
				continue
			}
			if _, err := c.Namespace(ns).Object(name).Put(ctx, "k", 1); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	after, err := c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range after.Shards {
		if s.AppliedIndex <= st.Shards[i].AppliedIndex {
			t.Fatalf("shard %d: applied index %d before a write to it, %d after", i, st.Shards[i].AppliedIndex, s.AppliedIndex)
		}
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Readyz(ctx); err != nil {
		t.Fatal(err)
	}
}
