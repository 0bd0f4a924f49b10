// Counter: the Durable Objects initialization pattern and the safe counter.
//
//	constructor: blockConcurrencyWhile(async () => { this.value = (await storage.get("value")) || 0 })
//	getUniqueNumber() { val = await storage.get("counter"); await storage.put("counter", val + 1); return val }
//
// A Durable Object's input gate keeps other requests out between the get
// and the put. Cairn serializes every request to an object, and offers
// three ways to make read-modify-write safe across clients:
//
//   - initialization: a put guarded by IfAbsent (If-None-Match: *) sets
//     the first-use default exactly once; later initializers change nothing;
//   - incr: the server adds atomically, no read-modify-write at all;
//   - compare-and-set: get the value and its version, put with
//     IfVersion(version), retry on 412 (the optimistic form of the gate);
//   - SQL: UPDATE … RETURNING reads and writes in one statement.
//
// It checks that of 10 concurrent initializers exactly one sets the
// default and the value is never reset, and that N concurrent increments
// end at N with every caller given a different number, for each of incr,
// compare-and-set and SQL.
//
//	go run ./examples/counter     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// initialize sets value to 0 unless it exists, and reports whether it did.
func initialize(ctx context.Context, obj *client.Object) (bool, error) {
	_, err := obj.Put(ctx, "value", 0, client.IfAbsent())
	if errors.Is(err, client.ErrPreconditionFailed) {
		return false, nil // already initialized: leave it alone
	}
	return err == nil, err
}

// incrementCAS is getUniqueNumber with an optimistic input gate: read the
// value and its version, write value+1 only if the version is unchanged.
func incrementCAS(ctx context.Context, obj *client.Object, key string) (int64, int, error) {
	for attempt := 1; ; attempt++ {
		var n int64
		v, err := obj.GetBytes(ctx, key)
		switch {
		case errors.Is(err, client.ErrNotFound):
			_, err = obj.Put(ctx, key, 1, client.IfAbsent())
		case err != nil:
			return 0, attempt, err
		default:
			if err := v.Decode(&n); err != nil {
				return 0, attempt, err
			}
			_, err = obj.Put(ctx, key, n+1, client.IfVersion(v.Version))
		}
		if errors.Is(err, client.ErrPreconditionFailed) {
			continue // someone else incremented first: read again
		}
		return n + 1, attempt, err
	}
}

// incrementSQL increments in one statement and returns the new value.
func incrementSQL(ctx context.Context, obj *client.Object) (int64, error) {
	rows, err := obj.SQL(ctx, "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", "hits")
	if err != nil {
		return 0, err
	}
	var v int64
	return v, rows.One(&v)
}

// concurrently runs fn n times at once and returns what each returned.
func concurrently(n int, fn func() (int64, error)) []int64 {
	var wg sync.WaitGroup
	out := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = fn()
		}()
	}
	wg.Wait()
	example.Check(errors.Join(errs...))
	return out
}

// checkUnique fails unless got holds exactly 1..n (in any order).
func checkUnique(what string, got []int64, n int) {
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			example.Fail("%s: the callers got %v, want each of 1..%d once", what, got, n)
		}
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	obj := ns.Object("counter-" + example.Suffix(ctx, ns))
	fmt.Printf("counter on object %q\n", obj.Name())

	// Initialization: 10 racing constructors, one default.
	var inits atomic.Int32
	concurrently(10, func() (int64, error) {
		ok, err := initialize(ctx, obj)
		if ok {
			inits.Add(1)
		}
		return 0, err
	})
	if inits.Load() != 1 {
		example.Fail("%d initializers set the default, want exactly 1", inits.Load())
	}
	fmt.Println("10 concurrent initializers: exactly 1 set value = 0")

	// Safe counter with incr.
	const n = 50
	got := concurrently(n, func() (int64, error) { return obj.Incr(ctx, "value", 1) })
	checkUnique("incr", got, n)
	var final int64
	example.Check(obj.Get(ctx, "value", &final))
	if final != n {
		example.Fail("incr: the counter is %d after %d increments", final, n)
	}
	fmt.Printf("%d concurrent incr: final value %d, every caller got a different number\n", n, final)

	// Initialization again: the value is kept.
	ok, err := initialize(ctx, obj)
	example.Check(err)
	example.Check(obj.Get(ctx, "value", &final))
	if ok || final != n {
		example.Fail("a late initializer reset the counter to %d", final)
	}
	fmt.Printf("a late initializer left it at %d\n", final)

	// Compare-and-set: get + put If-Match, retried on 412.
	const m = 10
	var retries atomic.Int32
	got = concurrently(m, func() (int64, error) {
		v, attempts, err := incrementCAS(ctx, obj, "cas")
		retries.Add(int32(attempts - 1))
		return v, err
	})
	checkUnique("compare-and-set", got, m)
	example.Check(obj.Get(ctx, "cas", &final))
	if final != m {
		example.Fail("compare-and-set: the counter is %d after %d increments", final, m)
	}
	fmt.Printf("%d concurrent get + put If-Match: final value %d (%d retries after a 412, no update lost)\n", m, final, retries.Load())

	// SQL: UPDATE … RETURNING.
	_, err = obj.Batch(ctx, []client.Statement{
		{SQL: "CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL)"},
		{SQL: "INSERT INTO counters VALUES ('hits', 0)"},
	})
	example.Check(err)
	const k = 20
	got = concurrently(k, func() (int64, error) { return incrementSQL(ctx, obj) })
	checkUnique("UPDATE … RETURNING", got, k)
	fmt.Printf("%d concurrent UPDATE … RETURNING: every caller got a different number, the last %d\n", k, slices.Max(got))
	fmt.Println("ok")
}
