// Rate limiting: the Durable Objects pattern that forgets old requests,
// counts the recent ones and records a new one if under the limit.
//
//	sql.exec('DELETE FROM requests WHERE key = ? AND timestamp < ?', key, now - window);
//	count = sql.exec('SELECT COUNT(*) …').one().count;
//	if (count >= limit) return false;
//	sql.exec('INSERT INTO requests (key, timestamp) VALUES (?, ?)', key, now);
//
// In a Durable Object the three statements cannot interleave with another
// request's. In Cairn the same holds for one /sql batch: it is atomic and
// isolated, so check-and-insert cannot race. The check and the insert are
// one statement (INSERT … SELECT … WHERE count < limit), and its
// rowsWritten says whether the request was let through: one round trip.
//
// It checks that 20 concurrent attempts against a limit of 10 let exactly
// 10 through, and that the window slides: once old requests expire, new
// ones are accepted again.
//
//	go run ./examples/rate-limiter     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// RateLimiter limits requests per key on one object.
type RateLimiter struct {
	obj *client.Object
}

func (r *RateLimiter) Init(ctx context.Context) error {
	_, err := r.obj.Batch(ctx, []client.Statement{
		{SQL: "CREATE TABLE IF NOT EXISTS requests(key TEXT NOT NULL, timestamp INTEGER NOT NULL)"},
		{SQL: "CREATE INDEX IF NOT EXISTS requests_key_time ON requests(key, timestamp)"},
	})
	return err
}

// CheckLimit records a request for key and reports whether it is within
// limit requests per window, atomically.
func (r *RateLimiter) CheckLimit(ctx context.Context, key string, limit int, window time.Duration) (bool, error) {
	now := time.Now().UnixMilli()
	res, err := r.obj.Batch(ctx, []client.Statement{
		{SQL: "DELETE FROM requests WHERE key = ? AND timestamp < ?", Args: []any{key, now - window.Milliseconds()}},
		{SQL: `INSERT INTO requests(key, timestamp)
		       SELECT ?, ? WHERE (SELECT COUNT(*) FROM requests WHERE key = ?) < ?`,
			Args: []any{key, now, key, limit}},
	})
	if err != nil {
		return false, err
	}
	return res[1].RowsWritten == 1, nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	ns := c.Namespace("examples")
	rl := &RateLimiter{obj: ns.Object("ratelimit-" + example.Suffix(ctx, ns))}
	fmt.Printf("rate limiter on object %q\n", rl.obj.Name())
	example.Check(rl.Init(ctx))

	const attempts, limit = 20, 10
	var accepted, refused atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, attempts)
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := rl.CheckLimit(ctx, "alice", limit, time.Minute)
			switch {
			case err != nil:
				errs <- err
			case ok:
				accepted.Add(1)
			default:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		example.Check(err)
	}
	fmt.Printf("%d concurrent attempts, limit %d per minute: %d accepted, %d refused\n", attempts, limit, accepted.Load(), refused.Load())
	if accepted.Load() != limit {
		example.Fail("want exactly %d accepted, got %d", limit, accepted.Load())
	}
	var stored int
	rows, err := rl.obj.Query(ctx, "SELECT COUNT(*) FROM requests WHERE key = ?", "alice")
	example.Check(err)
	example.Check(rows.One(&stored))
	if stored != limit {
		example.Fail("want %d recorded requests, got %d", limit, stored)
	}

	// The window slides: 3 per second.
	const window = time.Second
	var got []bool
	for range 4 {
		ok, err := rl.CheckLimit(ctx, "bob", 3, window)
		example.Check(err)
		got = append(got, ok)
	}
	if fmt.Sprint(got) != "[true true true false]" {
		example.Fail("bob, limit 3: got %v, want [true true true false]", got)
	}
	time.Sleep(window + 100*time.Millisecond)
	ok, err := rl.CheckLimit(ctx, "bob", 3, window)
	example.Check(err)
	if !ok {
		example.Fail("bob was refused after the window passed")
	}
	fmt.Printf("bob, limit 3 per %v: %v, and accepted again once the window passed\n", window, got)
	fmt.Println("ok")
}
