// Write coalescing: the Durable Objects pattern where many puts issued
// without awaiting are committed together, atomically, and the response
// waits for that one commit (the output gate).
//
//	for (const action of actions) {
//	  storage.put(`user:${userId}:lastAction`, action.type);
//	  storage.put(`user:${userId}:count`, await storage.get(`user:${userId}:count`) + 1);
//	}
//	return new Response("OK")   // after all writes are confirmed
//
// Over HTTP the coalescing is explicit: the client gathers the writes and
// sends them as one tx (last write of a key wins, as in the Durable Objects pattern), here a
// multi-key put plus an incr for the count. One tx is one Raft entry: all
// its writes are applied together or not at all, every key it writes gets
// the same version (the entry's log index), and the answer comes only once
// the entry is committed by a quorum and applied.
//
// It checks that one tx wrote every key at one version (the tx's), that
// the count and last action are right, and that a second batch of actions
// is again one version, a later one.
//
//	go run ./examples/write-coalescing     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// Action is something a user did.
type Action struct {
	Type string `json:"type"`
	At   int64  `json:"at"`
}

// UpdateMetrics records a user's actions: every write in one tx.
func UpdateMetrics(ctx context.Context, obj *client.Object, userID string, actions []Action) (client.Version, error) {
	prefix := "user:" + userID + ":"
	puts := map[string]any{}
	for _, a := range actions {
		puts[prefix+"lastAction"] = a.Type // coalesced: the last one wins
		puts[prefix+"action:"+strconv.FormatInt(a.At, 10)] = a
	}
	res, err := obj.Tx(ctx, client.TxRequest{Ops: []client.Op{
		client.OpPutMany(puts),
		client.OpIncr(prefix+"count", int64(len(actions))),
	}})
	if err != nil {
		return "", err
	}
	return res.Version, nil // answered after the commit: the output gate
}

// checkState fails unless the user's keys hold count and last, and every
// key written at version v has exactly that version.
func checkState(ctx context.Context, obj *client.Object, userID string, v client.Version, count int64, last string, written int) {
	prefix := "user:" + userID + ":"
	atV := 0
	for e, err := range obj.All(ctx, client.ListOptions{Prefix: prefix}) {
		example.Check(err)
		if e.Version == v {
			atV++
		}
		switch e.Key {
		case prefix + "count":
			var n int64
			example.Check(e.Decode(&n))
			if n != count || e.Version != v {
				example.Fail("count is %d at version %s, want %d at %s", n, e.Version, count, v)
			}
		case prefix + "lastAction":
			var s string
			example.Check(e.Decode(&s))
			if s != last || e.Version != v {
				example.Fail("lastAction is %q at version %s, want %q at %s", s, e.Version, last, v)
			}
		}
	}
	if atV != written {
		example.Fail("%d keys have version %s, want the %d the tx wrote", atV, v, written)
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	obj := ns.Object("metrics-" + example.Suffix(ctx, ns))
	fmt.Printf("write coalescing on object %q\n", obj.Name())

	now := time.Now().UnixMilli()
	first := []Action{{"login", now}, {"view", now + 1}, {"edit", now + 2}, {"view", now + 3}, {"logout", now + 4}}
	v1, err := UpdateMetrics(ctx, obj, "u1", first)
	example.Check(err)
	// 5 action keys + lastAction + count.
	checkState(ctx, obj, "u1", v1, 5, "logout", len(first)+2)
	fmt.Printf("%d actions → 1 tx: %d keys written, all at version %s; count 5, lastAction logout\n", len(first), len(first)+2, v1)

	second := []Action{{"login", now + 10}, {"share", now + 11}}
	v2, err := UpdateMetrics(ctx, obj, "u1", second)
	example.Check(err)
	n1, _ := strconv.ParseUint(string(v1), 10, 64)
	n2, _ := strconv.ParseUint(string(v2), 10, 64)
	if n2 <= n1 {
		example.Fail("the second tx has version %s, not after %s", v2, v1)
	}
	checkState(ctx, obj, "u1", v2, 7, "share", len(second)+2)
	fmt.Printf("%d more actions → 1 tx at version %s; count 7, lastAction share; the first batch's action keys keep version %s\n", len(second), v2, v1)
	fmt.Println("ok")
}
