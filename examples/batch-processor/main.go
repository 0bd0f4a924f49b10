// Batch processing with alarms: the Durable Objects pattern that collects
// items and processes them in one batch when the object's alarm fires.
//
//	async addItem(item) { pending.push(item); if (!await storage.getAlarm()) await storage.setAlarm(Date.now() + 5000) }
//	async alarm() { INSERT INTO processed_items … every pending item }
//
// In Cairn the pending items live in the object's SQL database (a Worker's
// memory is not durable); addItem is one tx that inserts the item and reads
// the alarm, then sets the alarm if there is none. The alarm() handler is a
// webhook: this program serves client.AlarmHandler on a local port and
// configures it as the namespace's alarmWebhook. When the alarm is due, the
// shard's leader POSTs it there, and the handler moves every pending item
// into processed_items in one /sql batch (atomic: no item is lost or
// processed twice). Delivery is at least once, so the batch carries the
// alarm's Idempotency-Key: a repeated delivery applies nothing again.
//
// One difference from Durable Objects: Cairn clears an alarm when the
// webhook has answered 2xx, so while a delivery is in flight getAlarm still
// shows it. addItem therefore also sets a new alarm when the one it sees is
// already due; a new alarm set meanwhile is not cleared by that delivery.
//
// It checks that the first item sets the alarm and later ones do not, that
// the alarm fires (not before its time) and moves exactly the items added,
// in order, that the alarm is then cleared, and that the next item starts a
// new cycle.
//
//	go run ./examples/batch-processor               # alarm 5 s after the first item
//	go run ./examples/batch-processor -delay 1s     # or CAIRN_BATCH_DELAY=1s
//
// The node must be able to reach the webhook: -listen picks the address
// (default 127.0.0.1:0), -webhook-url overrides the URL the node is given
// (for a node in a container, for instance).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// namespace is the examples' namespace with a webhook: the webhook is a
// namespace's setting, so this example keeps it apart from the others.
const namespace = "examples-batch"

// drainBatch moves every pending item into processed_items, stamped with
// the time of the write (fixed by the leader, the same on every replica),
// and empties pending: one atomic batch. It has no client-side value in
// it, so a repeated delivery sends the same request under the same
// Idempotency-Key.
var drainBatch = []client.Statement{
	{SQL: `INSERT INTO processed_items(item, timestamp)
	       SELECT item, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM pending ORDER BY id`},
	{SQL: "DELETE FROM pending"},
}

// delivery is one call of the alarm handler for this run's object.
type delivery struct {
	ev      client.AlarmEvent
	at      time.Time
	drained int64
}

func main() {
	defDelay := 5 * time.Second
	if s := os.Getenv("CAIRN_BATCH_DELAY"); s != "" {
		d, err := time.ParseDuration(s)
		example.Check(err)
		defDelay = d
	}
	delay := flag.Duration("delay", defDelay, "how long after the first item the batch runs (env CAIRN_BATCH_DELAY)")
	listen := flag.String("listen", "127.0.0.1:0", "address of the alarm webhook")
	webhookURL := flag.String("webhook-url", "", "URL the node calls for alarms (default http://<listen address>/alarm)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *delay*2+time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace(namespace)
	obj := ns.Object("batch-" + example.Suffix(ctx, ns))
	fmt.Printf("batch processor on object %q, alarm %v after the first item\n", obj.Name(), *delay)

	// The alarm() handler.
	deliveries := make(chan delivery, 16)
	handler := client.AlarmHandler(func(ctx context.Context, ev client.AlarmEvent) error {
		target := c.Namespace(ev.Namespace).Object(ev.Object)
		res, err := target.Batch(ctx, drainBatch, client.IdempotencyKey(ev.IdempotencyKey))
		if err != nil {
			return err // 500: the node retries with backoff
		}
		if ev.Object == obj.Name() {
			deliveries <- delivery{ev: ev, at: time.Now(), drained: res[0].RowsWritten}
		}
		return nil
	})
	ln, err := net.Listen("tcp", *listen)
	example.Check(err)
	mux := http.NewServeMux()
	mux.Handle("/alarm", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	hook := *webhookURL
	if hook == "" {
		hook = "http://" + ln.Addr().String() + "/alarm"
	}
	_, err = ns.SetConfig(ctx, client.NamespaceConfig{AlarmWebhook: hook, AlarmTimeout: 10 * time.Second})
	example.Check(err)
	fmt.Printf("serving the alarm webhook at %s (namespace %s)\n", hook, namespace)

	_, err = obj.Batch(ctx, []client.Statement{
		{SQL: "CREATE TABLE IF NOT EXISTS pending(id INTEGER PRIMARY KEY, item TEXT NOT NULL)"},
		{SQL: "CREATE TABLE IF NOT EXISTS processed_items(item TEXT NOT NULL, timestamp INTEGER NOT NULL)"},
	})
	example.Check(err)

	items := []string{"apple", "banana", "cherry", "date", "elderberry"}
	var scheduledAt time.Time
	for i, item := range items {
		at, err := addItem(ctx, obj, item, *delay)
		example.Check(err)
		switch {
		case i == 0 && at.IsZero():
			example.Fail("the first item did not set the alarm")
		case i == 0:
			scheduledAt = at
			fmt.Printf("added %q: no alarm yet, set it for %s\n", item, at.Format(time.TimeOnly+".000"))
		case !at.IsZero():
			example.Fail("item %d set the alarm again although one was pending", i)
		default:
			fmt.Printf("added %q: the alarm is already set\n", item)
		}
	}

	d := await(ctx, deliveries, scheduledAt, *delay)
	checkDelivery(d, scheduledAt, len(items))
	waitCleared(ctx, obj)
	processed := processedItems(ctx, obj)
	if !slices.Equal(processed, items) {
		example.Fail("processed_items holds %v, want %v", processed, items)
	}
	fmt.Printf("processed_items: %v; pending is empty; the alarm is cleared\n", processed)

	// The next item starts a new cycle.
	at, err := addItem(ctx, obj, "fig", *delay)
	example.Check(err)
	if at.IsZero() {
		example.Fail("after the batch ran, a new item did not set the alarm")
	}
	fmt.Printf("added %q: no alarm pending, set it for %s\n", "fig", at.Format(time.TimeOnly+".000"))
	d = await(ctx, deliveries, at, *delay)
	checkDelivery(d, at, 1)
	waitCleared(ctx, obj)
	if got := processedItems(ctx, obj); !slices.Equal(got, append(items, "fig")) {
		example.Fail("processed_items holds %v after the second batch", got)
	}
	fmt.Println("ok")
}

// addItem stores item as pending and reads the alarm in one tx; if no
// alarm is pending (or the one there is already due: being delivered),
// it sets one delay from now and returns its time.
func addItem(ctx context.Context, obj *client.Object, item string, delay time.Duration) (time.Time, error) {
	res, err := obj.Tx(ctx, client.TxRequest{Ops: []client.Op{
		client.OpSQL("INSERT INTO pending(item) VALUES (?)", item),
		client.OpGetAlarm(),
	}})
	if err != nil {
		return time.Time{}, err
	}
	if cur := res.Results[1].Alarm; !cur.IsZero() && cur.After(time.Now()) {
		return time.Time{}, nil
	}
	at := time.Now().Add(delay).Truncate(time.Millisecond)
	return at, obj.SetAlarm(ctx, at)
}

// await returns the delivery of the alarm set for scheduled. Delivery is
// at least once: a repeated delivery of an earlier alarm is skipped.
func await(ctx context.Context, deliveries <-chan delivery, scheduled time.Time, delay time.Duration) delivery {
	timeout := time.After(delay + 30*time.Second)
	for {
		select {
		case d := <-deliveries:
			if d.ev.ScheduledTime.Equal(scheduled) {
				return d
			}
			fmt.Printf("(a repeated delivery of the alarm of %s: its batch was not applied again)\n", d.ev.ScheduledTime.Format(time.TimeOnly+".000"))
		case <-timeout:
			example.Fail("the alarm did not fire within %v", delay+30*time.Second)
		case <-ctx.Done():
			example.Fail("%v", ctx.Err())
		}
	}
}

func checkDelivery(d delivery, scheduled time.Time, items int) {
	// Never before its time, by the node's clock (here the same machine's;
	// allow for a little skew between clocks).
	if d.at.Before(scheduled.Add(-250 * time.Millisecond)) {
		example.Fail("the alarm fired %v early", scheduled.Sub(d.at))
	}
	if d.drained != int64(items) {
		example.Fail("the alarm moved %d items, want %d", d.drained, items)
	}
	fmt.Printf("alarm fired %v after its time (retry %d): moved %d pending item(s) to processed_items\n",
		d.at.Sub(scheduled).Round(time.Millisecond), d.ev.RetryCount, d.drained)
}

// waitCleared waits until the node has cleared the delivered alarm.
func waitCleared(ctx context.Context, obj *client.Object) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		t, err := obj.GetAlarm(ctx)
		example.Check(err)
		if t.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			example.Fail("the alarm was not cleared after its delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processedItems(ctx context.Context, obj *client.Object) []string {
	rows, err := obj.Query(ctx, "SELECT item FROM processed_items ORDER BY rowid")
	example.Check(err)
	var out []string
	for rows.Next() {
		var s string
		example.Check(rows.Scan(&s))
		out = append(out, s)
	}
	var pending int
	r, err := obj.Query(ctx, "SELECT COUNT(*) FROM pending")
	example.Check(err)
	example.Check(r.One(&pending))
	if pending != 0 {
		example.Fail("%d items still pending", pending)
	}
	return out
}
