// Cleanup: the Durable Objects pattern that removes everything an object
// holds.
//
//	await storage.deleteAlarm();   // separate from deleteAll
//	await storage.deleteAll();
//
// deleteAll removes every key and the SQL database, atomically, but, as in
// Durable Objects, not the alarm: an object with an alarm still exists (it
// is listed, and its alarm will fire). So the alarm goes first
// (DELETE …/alarm), then the storage (DELETE …/objects/{obj}); or both at
// once with ?alarm=true.
//
// It checks that after deleteAlarm + deleteAll the object has no keys, no
// tables, no alarm and is no longer listed; that deleteAll alone leaves the
// alarm and the object listed; and that deleteAll with the alarm removes
// both.
//
//	go run ./examples/cleanup     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// Cleanup is the Durable Objects pattern's cleanup(): the alarm, then the storage.
func Cleanup(ctx context.Context, obj *client.Object) error {
	if err := obj.DeleteAlarm(ctx); err != nil {
		return err
	}
	return obj.DeleteAll(ctx, false)
}

// fill gives obj keys, a table and an alarm an hour away.
func fill(ctx context.Context, obj *client.Object) {
	_, err := obj.Tx(ctx, client.TxRequest{Ops: []client.Op{
		client.OpPutMany(map[string]any{"a": 1, "b": "two", "c": []byte{3}}),
		client.OpSQL("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)"),
		client.OpSQL("INSERT INTO notes(body) VALUES ('hello')"),
		client.OpSetAlarm(time.Now().Add(time.Hour)),
	}})
	example.Check(err)
}

// state is what an object holds.
type state struct {
	keys, tables int
	alarm        bool
	listed       bool
}

func inspect(ctx context.Context, obj *client.Object) state {
	var s state
	page, err := obj.List(ctx, client.ListOptions{KeysOnly: true})
	example.Check(err)
	s.keys = len(page.Entries)
	rows, err := obj.Query(ctx, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cairn%' ESCAPE '\\'")
	example.Check(err)
	example.Check(rows.One(&s.tables))
	t, err := obj.GetAlarm(ctx)
	example.Check(err)
	s.alarm = !t.IsZero()
	objs, err := obj.Namespace().Objects(ctx, client.ObjectsOptions{Prefix: obj.Name()})
	example.Check(err)
	for _, o := range objs.Objects {
		s.listed = s.listed || o.Name == obj.Name()
	}
	return s
}

func (s state) String() string {
	return fmt.Sprintf("%d keys, %d tables, alarm %v, listed %v", s.keys, s.tables, s.alarm, s.listed)
}

func expect(what string, got, want state) {
	if got != want {
		example.Fail("%s: %v, want %v", what, got, want)
	}
	fmt.Printf("%s: %v\n", what, got)
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	sfx := example.Suffix(ctx, ns)
	full := state{keys: 3, tables: 1, alarm: true, listed: true}

	obj := ns.Object("cleanup-" + sfx)
	fmt.Printf("cleanup of object %q\n", obj.Name())
	fill(ctx, obj)
	expect("filled", inspect(ctx, obj), full)
	example.Check(Cleanup(ctx, obj))
	expect("after deleteAlarm + deleteAll", inspect(ctx, obj), state{})

	// Why the alarm goes first: deleteAll keeps it.
	other := ns.Object("cleanup-" + sfx + "-keeps-alarm")
	fill(ctx, other)
	example.Check(other.DeleteAll(ctx, false))
	expect("deleteAll alone (another object)", inspect(ctx, other), state{alarm: true, listed: true})
	example.Check(other.DeleteAll(ctx, true))
	expect("then deleteAll with ?alarm=true", inspect(ctx, other), state{})
	fmt.Println("ok")
}
