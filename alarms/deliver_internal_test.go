package alarms

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// fakeNode is a Node over a Pebble database that leads shard 0 and
// proposes nothing.
type fakeNode struct{ db *pebble.DB }

func (n fakeNode) DB() *pebble.DB      { return n.db }
func (n fakeNode) LedShards() []uint32 { return []uint32{0} }
func (n fakeNode) Propose(context.Context, uint32, []byte) (*fsm.Response, error) {
	return &fsm.Response{}, nil
}

// A delivery uses the copy of the alarm its index entry holds only while
// the shard's move count has not moved since the entry was read; after a
// move it reads the record, and delivers nothing if the alarm is gone or
// changed.
func TestDeliverUsesCopyOnlyWhileNothingMoved(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: testlog.Pebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer hook.Close()
	b := db.NewIndexedBatch()
	if _, err := objectstore.PutNamespaceConfig(b, b, 0, "ns", objectstore.NamespaceConfig{AlarmWebhook: hook.URL, AlarmTimeout: time.Second, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Node: fakeNode{db}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newWorker(s, 0)
	defer w.close()

	// An entry as read from the index: it holds a copy of an alarm whose
	// record is not there (deleted since it was read).
	due := time.Now().Add(-time.Second).UnixMilli()
	obj := objectstore.Object{Shard: 0, Namespace: "ns", Name: "o"}
	d := dueAlarm{e: objectstore.DueEntry{Object: obj, NextAttempt: due,
		Alarm: objectstore.Alarm{ScheduledTime: due, NextAttempt: due}, HasAlarm: true}}
	deliver := func(d dueAlarm) (acked bool) {
		t.Helper()
		key := objKey(obj.Namespace, obj.Name)
		w.inflight[key] = flight{next: d.e.NextAttempt}
		w.active++
		s.slots <- struct{}{}
		w.deliver(d, key)
		select {
		case a := <-w.acks:
			if !a.update.Clear || a.update.ScheduledTime != due {
				t.Fatalf("outcome %+v", a.update)
			}
			return true
		default:
			return false
		}
	}

	// Nothing moved since the read: the copy is the alarm.
	d.moves = w.moveCount()
	if !deliver(d) || calls.Load() != 1 {
		t.Fatalf("with nothing moved: %d calls, want the copy delivered", calls.Load())
	}
	// Something moved (here: a notification, this node offers no move
	// count): the record is read, and it is gone.
	w.notify()
	if deliver(d) || calls.Load() != 1 {
		t.Fatalf("after a move, an alarm no longer there was delivered (%d calls)", calls.Load())
	}
	// An entry without a copy (written by an earlier release) reads the
	// record too.
	d.e.HasAlarm, d.moves = false, w.moveCount()
	if deliver(d) || calls.Load() != 1 {
		t.Fatalf("an entry without a copy was delivered without its record (%d calls)", calls.Load())
	}
	// With the record there, both deliver.
	b = db.NewIndexedBatch()
	if err := objectstore.SetAlarm(b, b, obj, objectstore.Alarm{ScheduledTime: due, NextAttempt: due}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if !deliver(d) || calls.Load() != 2 {
		t.Fatalf("an entry without a copy, record present: %d calls, want 2", calls.Load())
	}
	// A copy that is not due by this node's clock is never delivered.
	late := time.Now().Add(time.Hour).UnixMilli()
	d = dueAlarm{e: objectstore.DueEntry{Object: obj, NextAttempt: late,
		Alarm: objectstore.Alarm{ScheduledTime: late, NextAttempt: late}, HasAlarm: true}, moves: w.moveCount()}
	if deliver(d) || calls.Load() != 2 {
		t.Fatalf("an alarm not yet due was delivered (%d calls)", calls.Load())
	}
}
