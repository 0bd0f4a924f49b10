package fsm_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/hashicorp/raft"
)

// randomCommand makes a command on one of a few objects: puts, deletes,
// incrs (some on non-numbers: they fail), lists, conditional writes (some
// fail), deleteAll, idempotent writes and alarms (which are not grouped),
// and entries of a type this release does not know (which are skipped).
func randomCommand(t *testing.T, rng *rand.Rand, i int) []byte {
	if rng.IntN(12) == 0 {
		return ignorableEntry(i)
	}
	obj := fmt.Sprintf("o%d", rng.IntN(4))
	key := fmt.Sprintf("k%d", rng.IntN(3))
	var tx objectstore.Tx
	hdr := fsm.Header{NowMillis: int64(1000 + i), Seed: uint64(i)}
	switch rng.IntN(9) {
	case 0, 1, 2:
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpPut, Puts: []objectstore.Entry{
			{Key: key, Value: objectstore.Value{Data: []byte(fmt.Sprint(i)), ContentType: objectstore.ContentTypeJSON}}}}}
	case 3:
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpIncr, Key: key, By: "2"}}
	case 4:
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: key, Value: objectstore.Value{Data: []byte("x")}}}},
			{Kind: objectstore.OpIncr, Key: key, By: "1"}} // fails: not a number; the put must not stay
	case 5:
		tx.If = []objectstore.Cond{{Kind: objectstore.CondMissing, Key: key}}
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: key, Value: objectstore.Value{Data: []byte("new")}}}}}
	case 6:
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpDelete, Keys: []string{key}}, {Kind: objectstore.OpList, List: objectstore.ListOptions{}}}
	case 7:
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpDeleteAll, Alarm: rng.IntN(2) == 0}}
	case 8:
		hdr.IdempotencyKey = fmt.Sprintf("idem-%d", rng.IntN(3))
		tx.Ops = []objectstore.Op{{Kind: objectstore.OpSetAlarm, ScheduledTime: int64(i)}, {Kind: objectstore.OpIncr, Key: "n", By: "1"}}
	}
	return mustEncode(t, &fsm.Command{Type: fsm.TypeTx, Header: hdr, Namespace: "ns", Object: obj, Tx: &tx})
}

// TestApplyBatchEqualsApply: applying entries in batches, whose plain KV
// transactions share Pebble batches, gives exactly the state and the answers
// of applying them one by one.
func TestApplyBatchEqualsApply(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		var logs []*raft.Log
		for i := 1; i <= 200; i++ {
			logs = append(logs, logEntry(uint64(i), randomCommand(t, rng, i)))
		}
		one, batched := memDB(t), memDB(t)
		f1, f2 := openFSM(t, one, testShard), openFSM(t, batched, testShard)
		var want []any
		for _, l := range logs {
			want = append(want, f1.Apply(l))
		}
		var got []any
		for start := 0; start < len(logs); {
			n := 1 + rng.IntN(16)
			end := min(start+n, len(logs))
			got = append(got, f2.ApplyBatch(logs[start:end])...)
			// The applied index is the batch's last, whatever kind of
			// entry ends it, in memory and in the database.
			if last := logs[end-1].Index; f2.Applied() != last || appliedIndex(t, batched, testShard) != last {
				t.Fatalf("seed %d: after a batch ending at %d, Applied() = %d and the database says %d",
					seed, last, f2.Applied(), appliedIndex(t, batched, testShard))
			}
			start = end
		}
		expectSameKV(t, fmt.Sprintf("seed %d: state", seed), shardDump(t, batched, testShard), shardDump(t, one, testShard))
		if f1.Applied() != f2.Applied() {
			t.Fatalf("seed %d: applied %d one by one, %d in batches", seed, f1.Applied(), f2.Applied())
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("seed %d: entry %d answered %+v in a batch, %+v alone", seed, i+1, got[i], want[i])
			}
		}
		// Replaying the whole log in batches after that changes nothing.
		f2.ApplyBatch(logs)
		expectSameKV(t, fmt.Sprintf("seed %d: after replay", seed), shardDump(t, batched, testShard), shardDump(t, one, testShard))
	}
}
