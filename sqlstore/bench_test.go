package sqlstore

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Benchmarks of the paths the state machine and the read path take. Run:
//
//	go test -run '^$' -bench . -benchmem ./sqlstore/
//
// DESIGN.md records the numbers.

// cpuTime reports, as cpu-ns/op, the CPU time the process spent per
// iteration (all goroutines: Pebble's and the GC's too). On a shared
// machine it varies far less than wall time. Call it as
// defer cpuTime(b)().
func cpuTime(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsert: one single-row INSERT per session, each session in its
// own indexed batch committed like the state machine commits an entry.
func BenchmarkInsert(b *testing.B) {
	db := memDB(b)
	s := newStore(b, Config{})
	mustWrite(b, db, s, objA, env(0), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	st := objectstore.SQLStatement{SQL: "INSERT INTO t(v) VALUES (?)", Params: []objectstore.SQLValue{text("some value of forty bytes, more or less")}}
	defer cpuTime(b)()
	for i := 0; b.Loop(); i++ {
		batch := db.NewIndexedBatch()
		if _, err := writeBatch(batch, s, objA, env(i), st); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
}

// BenchmarkInsert100 is 100 single-row INSERTs in one session and batch.
func BenchmarkInsert100(b *testing.B) {
	db := memDB(b)
	s := newStore(b, Config{})
	mustWrite(b, db, s, objA, env(0), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	st := objectstore.SQLStatement{SQL: "INSERT INTO t(v) VALUES (?)", Params: []objectstore.SQLValue{text("some value of forty bytes, more or less")}}
	sts := make([]objectstore.SQLStatement, 100)
	for i := range sts {
		sts[i] = st
	}
	defer cpuTime(b)()
	for i := 0; b.Loop(); i++ {
		batch := db.NewIndexedBatch()
		if _, err := writeBatch(batch, s, objA, env(i), sts...); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
}

// BenchmarkSelectPK: one read session with a primary-key lookup, on a
// table of 10,000 rows.
func BenchmarkSelectPK(b *testing.B) {
	db := memDB(b)
	s := newStore(b, Config{})
	mustWrite(b, db, s, objA, env(0), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO t(v) SELECT printf('value %d', value) FROM generate_series(1, 10000)")
	defer cpuTime(b)()
	for i := 0; b.Loop(); i++ {
		sess, err := s.Begin(objA, db, nil, env(0))
		if err != nil {
			b.Fatal(err)
		}
		res, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT v FROM t WHERE id = ?", Params: []objectstore.SQLValue{integer(int64(1 + i%10000))}})
		if err != nil || len(res.Rows) != 1 {
			b.Fatal(res, err)
		}
		sess.Rollback()
	}
}

// BenchmarkOpen: a read session on an object whose connection is not
// cached: open, set up, read the schema, one query.
func BenchmarkOpen(b *testing.B) {
	db := memDB(b)
	s := newStore(b, Config{})
	mustWrite(b, db, s, objA, env(0), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES ('x')")
	defer cpuTime(b)()
	for b.Loop() {
		s.Forget(objA)
		sess, err := s.Begin(objA, db, nil, env(0))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT v FROM t WHERE id = 1"}); err != nil {
			b.Fatal(err)
		}
		sess.Rollback()
	}
}

// BenchmarkSteps measures how many VM steps a second a write session runs,
// the basis of DefaultWriteStepBudget.
func BenchmarkSteps(b *testing.B) {
	db := memDB(b)
	s := newStore(b, Config{WriteStepBudget: 1 << 40})
	var spent int64
	for b.Loop() {
		left, err := budgetLeftB(b, s, db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) SELECT count(*) FROM c")
		if err != nil {
			b.Fatal(err)
		}
		spent += 1<<40 - left
	}
	b.ReportMetric(float64(spent)/b.Elapsed().Seconds(), "budget/s")
}

func budgetLeftB(b *testing.B, s *Store, db *pebble.DB, sql string) (int64, error) {
	batch := db.NewIndexedBatch()
	defer batch.Close()
	sess, err := s.Begin(objA, batch, batch, env(2))
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Rollback()
	_, err = sess.Exec(objectstore.SQLStatement{SQL: sql})
	return sess.(*session).c.budget.left, err
}

// TestConnectionCost opens 200 connections and reports what one costs: Go
// heap (runtime.MemStats) and resident memory (the SQLite heap of each
// connection is memory-mapped, outside the Go heap), and the time to open.
func TestConnectionCost(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures memory (the race detector distorts it) and takes seconds")
	}
	const n = 200
	// A small block cache, and no flush or compaction under way while
	// measuring: Pebble's in-memory files and cache are Go heap too.
	cache := pebble.NewCache(1 << 20)
	defer cache.Unref()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: testlog.Pebble{}, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := newStore(t, Config{MaxOpen: 2 * n})
	obj := func(i int) objectstore.Object {
		return objectstore.Object{Shard: 1, Namespace: "cost", Name: strconv.Itoa(i)}
	}
	for i := range n {
		mustWrite(t, db, s, obj(i), env(i), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
			"INSERT INTO t(v) SELECT randomblob(1000) FROM generate_series(1, 400)") // 400 KB each, more than the page cache
	}
	s.ForgetShard(1)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}

	heap0, rss0 := memory()
	start := time.Now()
	for i := range n {
		query(t, db, s, obj(i), "SELECT v FROM t WHERE id = 1")
	}
	opened := time.Since(start)
	heap1, rss1 := memory()
	for i := range n { // a full scan fills the page cache
		query(t, db, s, obj(i), "SELECT count(*), sum(length(v)) FROM t")
	}
	heap2, rss2 := memory()
	if s.Conns() != n {
		t.Fatalf("%d connections open", s.Conns())
	}
	t.Logf("open + first query: %v per connection", opened/n)
	t.Logf("after a point query: Go heap %+.0f KiB, RSS %+.0f KiB per connection", perConn(heap0, heap1, n), perConn(rss0, rss1, n))
	t.Logf("after a full scan (page cache %d KiB): Go heap %+.0f KiB, RSS %+.0f KiB per connection",
		DefaultCacheKiB, perConn(heap0, heap2, n), perConn(rss0, rss2, n))
	s.ForgetShard(1)
	heap3, rss3 := memory()
	t.Logf("after closing them: Go heap %+.0f KiB, RSS %+.0f KiB per connection still held", perConn(heap0, heap3, n), perConn(rss0, rss3, n))
}

func perConn(before, after uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n) / 1024
}

// memory returns the Go heap in use after a GC and the process's resident
// set size (0 where /proc is missing).
func memory() (heap, rss uint64) {
	debug.FreeOSMemory() // a GC, and the freed heap back to the OS: a stable RSS
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := bytes.Fields(b)
		if len(f) > 1 {
			pages, _ := strconv.ParseUint(string(f[1]), 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return ms.HeapAlloc, rss
}
