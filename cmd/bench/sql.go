package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The SQL modes measure POST /v1/ns/{ns}/objects/{obj}/sql:
//
//   - sql-insert: a single-row INSERT of a -value-size blob into the table
//     bench_sql of a random one of -objects objects (default 1: every
//     insert on one object's database, serialized by its shard);
//   - sql-select: a SELECT by primary key of a row written by the preload
//     (-preload rows spread over the objects), linearizable unless -stale.
//
// A setup phase, not measured, creates the table in every object (and, for
// sql-select, inserts the rows), then the run measures as the other modes
// do: warm-up, -duration or -requests, the same summary.

const (
	modeSQLInsert mode = "sql-insert"
	modeSQLSelect mode = "sql-select"
)

func init() { modes = append(modes, modeSQLInsert, modeSQLSelect) }

// isSQLMode reports whether m is one of the SQL modes.
func isSQLMode(m mode) bool { return m == modeSQLInsert || m == modeSQLSelect }

// maxSQLValueSize is the largest -value-size the SQL modes take: SQLite's
// row limit is 2,000,000 bytes including the row's header.
const maxSQLValueSize = 1_999_000

// sqlTable is the table the SQL modes create in each object.
const sqlTable = "bench_sql"

const (
	sqlCreate = "CREATE TABLE IF NOT EXISTS " + sqlTable + "(id INTEGER PRIMARY KEY, v BLOB)"
	sqlInsert = "INSERT INTO " + sqlTable + "(v) VALUES (?)"
	sqlSelect = "SELECT id, v FROM " + sqlTable + " WHERE id = ?"
)

// sqlStmt is the body of a /sql request with one statement.
type sqlStmt struct {
	SQL    string `json:"sql"`
	Params []any  `json:"params,omitempty"`
}

type blobParam struct {
	ValueBase64 string `json:"valueBase64"`
}

func (w *workload) sqlPath(obj int) string { return w.objectPath(obj) + "/sql" }

func sqlBody(s sqlStmt) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings, numbers and blobParams always marshal
	}
	return b
}

// sqlNext makes the next request of a SQL mode.
func (w *workload) sqlNext(rng *rand.Rand) request {
	if w.mode == modeSQLSelect {
		t := w.preloaded[rng.IntN(len(w.preloaded))]
		rq := request{kind: kindRead, method: http.MethodPost, path: w.sqlPath(t.obj),
			contentType: "application/json", body: sqlBody(sqlStmt{SQL: sqlSelect, Params: []any{t.key}})}
		if w.sqlStale {
			rq.kind, rq.path = kindStaleRead, rq.path+"?consistency=stale"
		}
		return rq
	}
	v := blobParam{ValueBase64: base64.StdEncoding.EncodeToString(w.value(rng))}
	return request{kind: kindWrite, method: http.MethodPost, path: w.sqlPath(rng.IntN(w.objects)),
		contentType: "application/json", body: sqlBody(sqlStmt{SQL: sqlInsert, Params: []any{v}})}
}

// sqlPreloadChunk is how many rows one preload request inserts: at most 50
// (two parameters each, of SQLite's 100), and about 4 MB of values.
func sqlPreloadChunk(valueSize int) int { return max(1, min(50, 4_000_000/(valueSize+1))) }

// sqlPreloadRequest inserts the rows ids (each value random) into object
// obj: INSERT OR REPLACE, so that a run against the same objects again
// finds the same ids.
func (w *workload) sqlPreloadRequest(obj int, ids []int, rng *rand.Rand) request {
	var sb strings.Builder
	sb.WriteString("INSERT OR REPLACE INTO " + sqlTable + "(id, v) VALUES ")
	params := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?)")
		params = append(params, id, blobParam{ValueBase64: base64.StdEncoding.EncodeToString(w.value(rng))})
	}
	return request{kind: kindWrite, method: http.MethodPost, path: w.sqlPath(obj),
		contentType: "application/json", body: sqlBody(sqlStmt{SQL: sb.String(), Params: params})}
}

// runSQL is a SQL mode, start to end; it returns the exit status as run
// does.
func runSQL(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	b := newBench(cfg, stderr)
	b.wl.sqlStale = cfg.stale
	defer b.doer.closeIdle()
	setupErrs, err := b.sqlSetup(ctx)
	var sum *summary
	if err == nil && ctx.Err() == nil {
		sum, err = b.run(ctx)
	} else {
		sum = &summary{Mode: string(cfg.mode), Endpoints: cfg.endpoints, Clients: cfg.clients,
			ValueSize: cfg.valueSize, Objects: cfg.objects, WarmupSeconds: cfg.warmup.Seconds(),
			ErrorsByClass: map[string]int64{}, Interrupted: ctx.Err() != nil}
	}
	sum.Preloaded = len(b.wl.preloaded)
	if len(setupErrs) > 0 {
		sum.PreloadErrors = setupErrs
	}
	if cfg.json {
		if err := writeJSON(stdout, sum); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	} else {
		sum.writeText(stdout)
	}
	if b.doer.attempts.Load() > 0 && b.doer.responses.Load() == 0 {
		fmt.Fprintf(stderr, "bench: the target was unreachable for every request (%s)\n",
			errorsLine(mergeMaps(sum.ErrorsByClass, sum.PreloadErrors)))
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// sqlRetryable reports whether a failed setup request may be sent again:
// no answer, or an answer that says "later" or "maybe" (the setup's
// requests are idempotent).
func sqlRetryable(r result) bool {
	switch r.status {
	case 0, http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// sqlSetup creates the table in every object and, for sql-select, inserts
// the preload's rows, with -clients workers. It fails when an object could
// not be set up: the run would measure errors. It returns the errors of
// the requests that failed for good, by class.
func (b *bench) sqlSetup(ctx context.Context) (map[string]int64, error) {
	b.phase.Store(phasePreload)
	type job struct {
		obj int
		ids []int // rows to insert; none: create the table
	}
	var jobs []job
	for o := range b.cfg.objects {
		jobs = append(jobs, job{obj: o})
	}
	creates := len(jobs)
	if b.cfg.mode == modeSQLSelect {
		// Row j lives in object j mod objects, with id j.
		perObj := make([][]int, b.cfg.objects)
		for j := range b.cfg.preload {
			perObj[j%b.cfg.objects] = append(perObj[j%b.cfg.objects], j)
		}
		chunk := sqlPreloadChunk(b.cfg.valueSize)
		for o, ids := range perObj {
			for len(ids) > 0 {
				n := min(chunk, len(ids))
				jobs = append(jobs, job{obj: o, ids: ids[:n]})
				ids = ids[n:]
			}
		}
	}

	start := time.Now()
	stopProgress := b.progress("setup", &b.live[phasePreload], start)
	errs := map[string]int64{}
	var mu sync.Mutex
	done := make([]bool, len(jobs))
	// The tables first, then the rows that go in them.
	for _, part := range [][2]int{{0, creates}, {creates, len(jobs)}} {
		var next atomic.Int64
		next.Store(int64(part[0]))
		var wg sync.WaitGroup
		for i := range min(b.cfg.clients, part[1]-part[0]) {
			wg.Go(func() {
				base := b.endpoint(i)
				rng := rand.New(rand.NewPCG(b.seed, uint64(i)|1<<61))
				var bo backoff
				for ctx.Err() == nil {
					j := int(next.Add(1) - 1)
					if j >= part[1] {
						return
					}
					rq := request{kind: kindWrite, method: http.MethodPost, path: b.wl.sqlPath(jobs[j].obj),
						contentType: "application/json", body: sqlBody(sqlStmt{SQL: sqlCreate})}
					if jobs[j].ids != nil {
						rq = b.wl.sqlPreloadRequest(jobs[j].obj, jobs[j].ids, rng)
					}
					var res result
					for attempt := 0; attempt < 5; attempt++ {
						res = b.doer.do(ctx, base, rq)
						if res.ok() || res.canceled || !sqlRetryable(res) {
							break
						}
						bo.after(res, ctx.Done(), nil)
						if res.status != 0 {
							t := time.NewTimer(50 * time.Millisecond)
							select {
							case <-t.C:
							case <-ctx.Done():
							}
							t.Stop()
						}
					}
					if res.canceled {
						return
					}
					b.live[phasePreload].count(res)
					done[j] = res.ok()
					if !res.ok() {
						mu.Lock()
						errs[res.class]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			break
		}
	}
	stopProgress()

	tables := 0
	for j := range creates {
		if done[j] {
			tables++
		}
	}
	var kept []target
	for j := creates; j < len(jobs); j++ {
		if done[j] {
			for _, id := range jobs[j].ids {
				kept = append(kept, target{obj: jobs[j].obj, key: id})
			}
		}
	}
	b.wl.preloaded = kept
	msg := fmt.Sprintf("setup: created table %s in %d of %d objects", sqlTable, tables, creates)
	if b.cfg.mode == modeSQLSelect {
		msg += fmt.Sprintf(", inserted %d of %d rows", len(kept), b.cfg.preload)
	}
	msg += fmt.Sprintf(" in %.2fs", time.Since(start).Seconds())
	if len(errs) > 0 {
		msg += "; errors: " + errorsLine(errs)
	}
	fmt.Fprintln(b.stderr, msg)
	switch {
	case ctx.Err() != nil:
		return errs, nil
	case tables < creates:
		return errs, fmt.Errorf("setup: the table could not be created in %d of %d objects (%s)", creates-tables, creates, errorsLine(errs))
	case b.cfg.mode == modeSQLSelect && len(kept) == 0:
		return errs, fmt.Errorf("setup: none of the %d rows could be inserted, so there is nothing to select (%s)", b.cfg.preload, errorsLine(errs))
	}
	return errs, nil
}
