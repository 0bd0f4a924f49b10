package sqlstore

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// TestDeterminism applies the same randomized sequence of batches to two
// replicas — two Pebble databases, two stores — and requires identical
// results and byte-identical SQL pages. Replica B forgets connections at
// random and keeps at most two open, so it often runs on a connection that
// just opened where A's is warm. Some batches fail (and are discarded on
// both), some are discarded after the SQL committed (a later op of the entry
// failed).
func TestDeterminism(t *testing.T) {
	seeds, n := uint64(4), 150
	if raceEnabled || testing.Short() {
		seeds, n = 1, 60
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { testDeterminism(t, seed, n) })
	}
}

func testDeterminism(t *testing.T, seed uint64, n int) {
	objs := []objectstore.Object{
		{Shard: 1, Namespace: "ns", Name: "a"},
		{Shard: 1, Namespace: "ns", Name: "b"},
		{Shard: 2, Namespace: "ns", Name: "a"},
		{Shard: 2, Namespace: "other", Name: "c\x00d"},
	}
	dbA, dbB := memDB(t), memDB(t)
	sA := newStore(t, Config{WriteStepBudget: 600})
	sB := newStore(t, Config{WriteStepBudget: 600, MaxOpen: 2})
	rng := rand.New(rand.NewPCG(seed, 42))
	gen := &workload{rng: rng}

	for i := range n {
		obj := objs[rng.IntN(len(objs))]
		e := env(i)
		if rng.IntN(4) == 0 {
			e.MaxBytes = int64(8+rng.IntN(40)) * pageSize
		}
		sts := gen.batch()
		discard := rng.IntN(8) == 0

		resA, errA := applyEntry(dbA, sA, obj, e, sts, discard)
		resB, errB := applyEntry(dbB, sB, obj, e, sts, discard)
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("batch %d on %v: errors differ:\n A: %v\n B: %v\nSQL: %v", i, obj, errA, errB, sts)
		}
		if !reflect.DeepEqual(resA, resB) {
			t.Fatalf("batch %d on %v: results differ:\n A: %v\n B: %v\nSQL: %v", i, obj, resA, resB, sts)
		}
		switch rng.IntN(6) {
		case 0:
			sB.Forget(objs[rng.IntN(len(objs))])
		case 1:
			sB.ForgetShard(uint32(1 + rng.IntN(2)))
		}
		if i%10 == 9 || i == n-1 {
			for _, o := range objs {
				if err := sameSpan(span(t, dbA, o), span(t, dbB, o)); err != nil {
					t.Fatalf("after batch %d: %v pages differ: %v", i, o, err)
				}
			}
		}
	}
	for _, o := range objs {
		if got := oneValue(t, dbA, sA, o, "PRAGMA integrity_check"); got != "ok" {
			t.Fatalf("%v: integrity_check: %s", o, got)
		}
	}
	t.Logf("seed %d: %d batches, %d failed, pages identical; %s schema entries in %v", seed, n, gen.failed,
		countRows(t, dbA, sA, objs[0]), objs[0])
}

// applyEntry applies a batch as the state machine would: discarded when it
// fails, or when discard is set (a later op of the entry failed).
func applyEntry(db *pebble.DB, s *Store, obj objectstore.Object, e objectstore.SQLEnv, sts []objectstore.SQLStatement, discard bool) ([]*objectstore.SQLResult, error) {
	b := db.NewIndexedBatch()
	defer b.Close()
	res, err := writeBatch(b, s, obj, e, sts...)
	if err != nil || discard {
		return res, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		panic(err)
	}
	return res, nil
}

func countRows(t *testing.T, db *pebble.DB, s *Store, obj objectstore.Object) string {
	rows := query(t, db, s, obj, "SELECT (SELECT count(*) FROM sqlite_schema)")
	return rows[0][0]
}

// workload generates batches of statements.
type workload struct {
	rng    *rand.Rand
	failed int
}

func (w *workload) batch() []objectstore.SQLStatement {
	n := 1 + w.rng.IntN(5)
	var out []objectstore.SQLStatement
	for range n {
		out = append(out, w.statement())
	}
	return out
}

func (w *workload) statement() objectstore.SQLStatement {
	tbl := fmt.Sprintf("t%d", w.rng.IntN(3))
	create := "CREATE TABLE IF NOT EXISTS " + tbl + `(
		id INTEGER PRIMARY KEY,
		r INTEGER DEFAULT (random()),
		b BLOB DEFAULT (randomblob(16)),
		ts TEXT DEFAULT CURRENT_TIMESTAMP,
		d TEXT DEFAULT (datetime('now', '+1 day')),
		v)`
	st := func(sql string, params ...objectstore.SQLValue) objectstore.SQLStatement {
		return objectstore.SQLStatement{SQL: sql, Params: params}
	}
	switch w.rng.IntN(16) {
	case 0, 1:
		return st(create)
	case 2, 3:
		// Parameters need a single statement: the table may be missing.
		return st("INSERT INTO "+tbl+"(v) VALUES (?)", text(fmt.Sprint("v", w.rng.IntN(1000))))
	case 4:
		return st(create + "; INSERT INTO " + tbl + "(v) SELECT hex(randomblob(4)) || random() FROM json_each('[1,2,3]')")
	case 5:
		return st(create + "; INSERT INTO " + tbl + `(v) VALUES (strftime('%s %f', 'now') || julianday('now') || date() || time('now', 'localtime')
			|| unixepoch('NOW') || datetime('now', 'utc', 'subsec') || current_date || current_time || timediff('now', '2020-01-01'))`)
	case 6:
		return st(create + "; UPDATE " + tbl + " SET v = v || random() WHERE id % 3 = " + fmt.Sprint(w.rng.IntN(3)))
	case 7:
		return st(create + "; DELETE FROM " + tbl + " WHERE id IN (SELECT id FROM " + tbl + " ORDER BY r LIMIT 2)")
	case 8:
		return st(create + "; INSERT INTO " + tbl + "(v) SELECT zeroblob(1000 + abs(random()) % 9000)")
	case 9:
		w.failed++
		return st("INSERT INTO missing VALUES (1)")
	case 10:
		return st(create + "; INSERT OR IGNORE INTO " + tbl + "(id, v) VALUES (1, 'first')")
	case 11:
		return st(create + "; SELECT id, r, hex(b), ts, d, v FROM " + tbl + " ORDER BY id")
	case 12:
		return st(create + "; INSERT INTO " + tbl + "(v) VALUES (1); SELECT changes(), total_changes(), last_insert_rowid()")
	case 13:
		return st(create + "; CREATE INDEX IF NOT EXISTS " + tbl + "_v ON " + tbl + "(v)")
	case 14:
		if w.rng.IntN(3) == 0 {
			w.failed++
			return st(runaway) // runs out of budget on both replicas
		}
		return st("PRAGMA user_version = " + fmt.Sprint(w.rng.IntN(100)))
	default:
		return st(create + "; SELECT count(*), sum(length(b)), max(ts) FROM " + tbl)
	}
}
