package fsm_test

import (
	"testing"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/hashicorp/raft"
)

// AlarmMoves counts the entries that may add or move a due-index entry,
// and only those: the OnAlarmChange hook runs for every change of alarms,
// but an alarm update that only clears delivered alarms does not count, so
// a shard's leader can keep its place in the index while it clears. The
// count is incremented before the hook runs.
func TestAlarmMoves(t *testing.T) {
	db := memDB(t)
	f := openFSM(t, db, 1)
	var hooks int
	var movesAtHook uint64
	f.OnAlarmChange(func(uint32) { hooks++; movesAtHook = f.AlarmMoves() })
	setAlarm := func(obj string, at int64) []byte {
		return txData(t, 1, obj, objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpSetAlarm, ScheduledTime: at})})
	}
	update := func(us ...objectstore.AlarmUpdate) []byte {
		return mustEncode(t, &fsm.Command{Type: fsm.TypeAlarmUpdate, Header: fsm.Header{NowMillis: 1}, AlarmUpdates: us})
	}
	steps := []struct {
		what        string
		data        []byte
		hook, moves bool
	}{
		{"set an alarm", setAlarm("a", 100), true, true},
		{"set another", setAlarm("b", 200), true, true},
		{"a KV write", txData(t, 1, "a", objectstore.Tx{Ops: ops(putOp(entry("k", "", []byte("v"))))}), false, false},
		{"clear a delivered alarm", update(objectstore.AlarmUpdate{Namespace: "ns", Object: "a", ScheduledTime: 100, Clear: true}), true, false},
		{"record a retry", update(
			objectstore.AlarmUpdate{Namespace: "ns", Object: "b", ScheduledTime: 200, RetryCount: 1, NextAttempt: 300},
			objectstore.AlarmUpdate{Namespace: "ns", Object: "x", ScheduledTime: 1, Clear: true}), true, true},
		{"configure a namespace", mustEncode(t, &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns",
			NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: "http://hook"}}), true, true},
		{"delete an alarm", txData(t, 1, "b", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpDeleteAlarm})}), true, true},
	}
	for i, s := range steps {
		hooksBefore, movesBefore := hooks, f.AlarmMoves()
		// Half through Apply, half through ApplyBatch: both count alike.
		if i%2 == 0 {
			applyOK(t, f, uint64(i+1), s.data)
		} else {
			f.ApplyBatch([]*raft.Log{logEntry(uint64(i+1), s.data)})
		}
		if got := hooks > hooksBefore; got != s.hook {
			t.Errorf("%s: hook ran %v, want %v", s.what, got, s.hook)
		}
		want := movesBefore
		if s.moves {
			want++
		}
		if got := f.AlarmMoves(); got != want {
			t.Errorf("%s: moves %d, want %d", s.what, got, want)
		}
		if s.hook && movesAtHook != f.AlarmMoves() {
			t.Errorf("%s: the hook saw moves %d, want %d", s.what, movesAtHook, f.AlarmMoves())
		}
	}

	// A restore replaces everything: it counts.
	stream := snapshotBytes(t, f)
	g := openFSM(t, memDB(t), 1)
	g.OnAlarmChange(func(uint32) {})
	if err := restoreBytes(g, stream); err != nil {
		t.Fatal(err)
	}
	if g.AlarmMoves() != 1 {
		t.Fatalf("moves after a restore: %d, want 1", g.AlarmMoves())
	}
}
