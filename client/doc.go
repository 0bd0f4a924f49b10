// Package client is the Go client of Cairn, a replicated Durable Objects
// store. It speaks Cairn's HTTP API (API.md, docs/api.md) and nothing
// else, with the standard library only, and reads like the Durable Objects
// storage API:
//
//	c, err := client.New([]string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"},
//		client.WithToken(token))
//	users := c.Namespace("users")      // a Durable Objects class binding
//	alice := users.Object("alice")     // idFromName("alice")
//
//	_, err = alice.Put(ctx, "profile", Profile{Name: "Alice"}) // storage.put
//	err = alice.Get(ctx, "profile", &p)                        // storage.get
//	n, err := alice.Incr(ctx, "visits", 1)                     // atomic counter
//	for e, err := range alice.All(ctx, client.ListOptions{Prefix: "msg:"}) { … } // storage.list
//	res, err := alice.Tx(ctx, client.TxRequest{…})             // storage.transaction
//	rows, err := alice.SQL(ctx, "SELECT id, name FROM t WHERE id = ?", 1) // sql.exec
//	err = alice.SetAlarm(ctx, time.Now().Add(time.Minute))     // setAlarm
//	err = alice.DeleteAll(ctx, false)                          // deleteAll
//
// Every call takes a context and returns, on failure, an *Error whose Code
// is the server's stable problem code; compare it with the sentinels
// (errors.Is(err, client.ErrPreconditionFailed)).
//
// # Values
//
// Put stores a Go value as JSON and Get decodes JSON into one; a []byte is
// stored as raw bytes (application/octet-stream). PutBytes and GetBytes move
// raw bytes with any content type and the key's Version. In listings and
// transactions values come back as Value (bytes, content type, version):
// Value.Decode and Value.JSON read JSON, and the {"valueBase64": …} form the
// API uses for bytes is decoded for you.
//
// # Endpoints and failover
//
// Any node answers any request (it forwards to the object's shard leader),
// so the endpoints are interchangeable. A call goes to the endpoint that
// answered last; when it cannot connect (refused, DNS, dial timeout, or any
// failure before the request was written), it moves on to the next
// endpoint at once, which is safe for every call because nothing was sent.
// When every endpoint has failed that way in a row, the call counts one
// attempt and backs off; when attempts run out it fails with ErrUnavailable
// (Status 0).
//
// An endpoint that accepts connections but never answers is cut short too:
// an attempt waits at most WithAttemptTimeout (default 15 s) for its
// answer to begin, and the client's own transport gives up a dial after
// 5 s, well within the call's deadline. If nothing was sent, the call moves
// on as above; if the request was sent, it is a request sent without an
// answer (below): a read or a keyed write goes on to the next endpoint,
// any other write is ErrCommitUnknown.
//
// # Retries
//
// A call makes at most WithMaxAttempts attempts (default 5) within its
// deadline (WithTimeout, default 30 s, or the context's, whichever ends
// first). Before each retry it waits a backoff that starts at 100 ms and
// doubles up to 2 s (WithBackoff), half of it random; if the server sent
// Retry-After, it waits at least that long, and if that would pass the
// deadline it gives up at once rather than sleep in vain. It retries:
//
//   - 429 overloaded and 503 unavailable, for every call: the server
//     promises nothing was applied. A 503 moves on to the next endpoint.
//   - a request that was sent but got no answer (connection reset, EOF,
//     the attempt timeout), 504 commit_unknown, and a 502/503/504 that is
//     not a Cairn problem (a proxy's), only when the call is safe to
//     repeat; the next attempt goes to the next endpoint:
//   - reads: Get, GetBytes, List, All, GetAlarm, the namespace and cluster
//     listings, Config, UniqueID, a Tx whose ops are all get, list and
//     getAlarm, SQL, Batch and Tx whose statements the client can tell
//     only read (a SELECT, see ReadOnly), and calls declared ReadOnly
//     (Query, or SQL, Batch and Tx with the ReadOnly option);
//   - SetConfig, which replaces the whole configuration;
//   - writes that carry an Idempotency-Key: one given with the option
//     IdempotencyKey, or one the client generates for every write when
//     made WithIdempotency (one key per call, the same on each of its
//     attempts). The server applies a keyed write at most once and answers
//     its repetitions with the first answer.
//
// Nothing else is retried: any other 4xx or 5xx answer is the result.
//
// # Writes with an unknown outcome
//
// A write that may have reached a server but whose answer never came is
// reported as ErrCommitUnknown, whether the server said so (504
// commit_unknown, Status 504) or the client saw it happen (Status 0, Err
// the network failure, context.DeadlineExceeded, or the *Error of a
// proxy's 502/503/504, which may have passed the write on): treat it as
// maybe-applied. Without an Idempotency-Key the client never resends such
// a write. With one, it resends it while attempts and the deadline last;
// if they run out, the error is still ErrCommitUnknown and
// Error.IdempotencyKey holds the key, so repeating the call later with
// IdempotencyKey(key) settles it: the first answer if it was applied, else
// it applies now.
//
// # SQL
//
// SQL runs a statement and returns its Rows, scanned like database/sql's
// (rows.Next, rows.Scan(&id, &name)); Query is SQL for statements that
// only read; Batch runs several statements as one transaction. SQL and
// Query take their options among the arguments, which are not bound:
// o.SQL(ctx, "INSERT INTO t VALUES (?)", 1, client.IdempotencyKey(k)). Explicit
// BEGIN/COMMIT are refused (ErrSQLTransactionControl): a request already is
// one transaction.
//
// # Alarms
//
// SetAlarm, GetAlarm and DeleteAlarm manage an object's one alarm. When it
// is due, the shard's leader POSTs it to the namespace's alarmWebhook
// (Namespace.SetConfig); AlarmHandler turns that POST into a call of a Go
// function, answering 200 on success (the alarm is cleared) and 500 on
// error (the node retries it with backoff).
package client
