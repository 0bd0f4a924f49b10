package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/cairndb/cairn/client"
)

// exampleEndpoints are the endpoints of the node TestMain starts, so that
// the examples below run, and their output is checked, against a real
// node. In a program they are the addresses of the cluster's nodes.
func exampleEndpoints() []string { return []string{shared.url} }

// New takes the nodes' addresses; any node answers any request, and the
// client moves on to the next address when one cannot be reached. This
// example only builds a client (New does no I/O).
func ExampleNew() {
	c, err := client.New(
		[]string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"},
		client.WithToken("a-readwrite-token-from-the-tokens-file"),
		client.WithTimeout(10*time.Second), // bounds each call, its retries included
		client.WithIdempotency(),           // makes every write safe to retry
	)
	if err != nil {
		log.Fatal(err)
	}
	users := c.Namespace("users")
	alice := users.Object("alice")
	_ = alice
}

func ExampleObject_Put() {
	ctx := context.Background()
	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	alice := c.Namespace("example-users").Object("alice")
	if err := alice.DeleteAll(ctx, false); err != nil { // start from an empty object
		log.Fatal(err)
	}

	type Profile struct {
		Name   string `json:"name"`
		Visits int    `json:"visits"`
	}
	// Create the profile unless it exists.
	v1, err := alice.Put(ctx, "profile", Profile{Name: "Alice"}, client.IfAbsent())
	if err != nil {
		log.Fatal(err)
	}
	var p Profile
	if err := alice.Get(ctx, "profile", &p); err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Name, p.Visits)

	// Optimistic concurrency: write only if nobody changed it since v1.
	p.Visits++
	if _, err := alice.Put(ctx, "profile", p, client.IfVersion(v1)); err != nil {
		log.Fatal(err)
	}
	// Another write based on v1 is refused: the version moved on.
	_, err = alice.Put(ctx, "profile", p, client.IfVersion(v1))
	fmt.Println(errors.Is(err, client.ErrPreconditionFailed))

	// A missing key.
	err = alice.Get(ctx, "settings", &p)
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// Alice 0
	// true
	// true
}

func ExampleObject_Tx() {
	ctx := context.Background()
	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	acct := c.Namespace("example-bank").Object("acct-1")
	if err := acct.DeleteAll(ctx, false); err != nil {
		log.Fatal(err)
	}
	open := client.TxRequest{
		If:  []client.Cond{client.CondAbsent("balance")},
		Ops: []client.Op{client.OpPut("balance", 100), client.OpPut("owner", "alice")},
	}
	if _, err := acct.Tx(ctx, open); err != nil {
		log.Fatal(err)
	}
	// Withdraw 30 and record it, atomically, then read both back.
	res, err := acct.Tx(ctx, client.TxRequest{Ops: []client.Op{
		client.OpIncr("balance", -30),
		client.OpPut("last", map[string]int{"amount": -30}),
		client.OpGet("balance", "owner"),
	}})
	if err != nil {
		log.Fatal(err)
	}
	balance, _ := res.Results[0].Number.Int64()
	var owner string
	if err := res.Results[2].Entries["owner"].Decode(&owner); err != nil {
		log.Fatal(err)
	}
	fmt.Println(owner, balance)

	// Opening it again fails on its condition and changes nothing.
	_, err = acct.Tx(ctx, open)
	var ce *client.Error
	if errors.Is(err, client.ErrPreconditionFailed) && errors.As(err, &ce) {
		fmt.Println("condition", *ce.Condition, "failed")
	}
	// Output:
	// alice 70
	// condition 0 failed
}

func ExampleObject_SQL() {
	ctx := context.Background()
	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	room := c.Namespace("example-chat").Object("room-1")
	if err := room.DeleteAll(ctx, false); err != nil {
		log.Fatal(err)
	}
	// A batch is one transaction.
	_, err = room.Batch(ctx, []client.Statement{
		{SQL: "CREATE TABLE messages(id INTEGER PRIMARY KEY, author TEXT, body TEXT, edited INTEGER, reply_to INTEGER)"},
		{SQL: "INSERT INTO messages(author, body, edited, reply_to) VALUES (?, ?, ?, ?)", Args: []any{"alice", "hi", false, nil}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := room.SQL(ctx, "INSERT INTO messages(author, body, edited, reply_to) VALUES (?, ?, ?, ?)", "bob", "hello", true, 1); err != nil {
		log.Fatal(err)
	}
	rows, err := room.Query(ctx, "SELECT id, author, body, edited, reply_to FROM messages ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for rows.Next() {
		var (
			id           int64
			author, body string
			edited       bool
			replyTo      *int64 // nil for NULL
		)
		if err := rows.Scan(&id, &author, &body, &edited, &replyTo); err != nil {
			log.Fatal(err)
		}
		if replyTo == nil {
			fmt.Println(id, author, body, edited)
		} else {
			fmt.Println(id, author, body, edited, "reply to", *replyTo)
		}
	}
	// BEGIN is refused: a request already is one transaction.
	_, err = room.SQL(ctx, "BEGIN")
	fmt.Println(errors.Is(err, client.ErrSQLTransactionControl))
	// Output:
	// 1 alice hi false
	// 2 bob hello true reply to 1
	// true
}

func ExampleObject_All() {
	ctx := context.Background()
	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	inbox := c.Namespace("example-mail").Object("inbox")
	if err := inbox.DeleteAll(ctx, false); err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := inbox.Put(ctx, fmt.Sprintf("msg:%03d", i), fmt.Sprintf("message %d", i)); err != nil {
			log.Fatal(err)
		}
	}
	// Newest first, two per request; the iterator fetches the pages.
	for e, err := range inbox.All(ctx, client.ListOptions{Prefix: "msg:", Reverse: true, Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		var text string
		if err := e.Decode(&text); err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Key, text)
	}
	// Output:
	// msg:005 message 5
	// msg:004 message 4
	// msg:003 message 3
	// msg:002 message 2
	// msg:001 message 1
}

func ExampleObject_Incr() {
	ctx := context.Background()
	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	page := c.Namespace("example-counters").Object("home")
	if err := page.DeleteAll(ctx, false); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := page.Incr(ctx, "views", 1); err != nil {
			log.Fatal(err)
		}
	}
	n, err := page.Incr(ctx, "views", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output: 13
}

// AlarmHandler serves a namespace's alarmWebhook; a program mounts it on
// its own server (http.Handle("/alarm", client.AlarmHandler(…))).
func ExampleAlarmHandler() {
	ctx := context.Background()
	delivered := make(chan client.AlarmEvent, 1)
	hook := httptest.NewServer(client.AlarmHandler(func(ctx context.Context, ev client.AlarmEvent) error {
		// The Durable Object's alarm(): drain the work, then return nil so
		// the alarm is cleared. An error makes the node retry it.
		select {
		case delivered <- ev:
		default:
		}
		return nil
	}))
	defer hook.Close()

	c, err := client.New(exampleEndpoints())
	if err != nil {
		log.Fatal(err)
	}
	ns := c.Namespace("example-batch")
	if _, err := ns.SetConfig(ctx, client.NamespaceConfig{AlarmWebhook: hook.URL + "/alarm"}); err != nil {
		log.Fatal(err)
	}
	queue := ns.Object("queue-1")
	if err := queue.SetAlarm(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
		log.Fatal(err)
	}
	select {
	case ev := <-delivered:
		fmt.Println(ev.Namespace, ev.Object, ev.RetryCount)
	case <-time.After(10 * time.Second):
		fmt.Println("no alarm within 10s")
	}
	// Output: example-batch queue-1 0
}
