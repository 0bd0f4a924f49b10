package objectstore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// setAlarmAt gives obj an alarm at scheduled, as OpSetAlarm does.
func setAlarmAt(t *testing.T, db *pebble.DB, obj Object, scheduled int64) {
	t.Helper()
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := SetAlarm(b, b, obj, Alarm{ScheduledTime: scheduled, NextAttempt: scheduled}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// dueEntries reads shard's whole due index from from on.
func dueEntries(t *testing.T, db *pebble.DB, shard uint32, from []byte) (names []string, keys [][]byte) {
	t.Helper()
	err := ScanDueFrom(db, shard, from, func(e DueEntry) bool {
		names = append(names, e.Object.Name)
		keys = append(keys, bytes.Clone(e.Key))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return names, keys
}

// ScanDueFrom reads the index in order of next attempt and resumes at a
// position: at an entry (its key) or just after it (DueAfter).
func TestScanDueFrom(t *testing.T) {
	db := newDB(t)
	const shard = 3
	at := map[string]int64{"c": 300, "a": 100, "b": 200, "b2": 200, "d": 400}
	for name, ms := range at {
		setAlarmAt(t, db, Object{Shard: shard, Namespace: "ns", Name: name}, ms)
	}
	// Another shard's alarm is not read.
	setAlarmAt(t, db, Object{Shard: shard + 1, Namespace: "ns", Name: "other"}, 50)

	names, keys := dueEntries(t, db, shard, nil)
	if want := []string{"a", "b", "b2", "c", "d"}; !slices.Equal(names, want) {
		t.Fatalf("from the head: %v, want %v", names, want)
	}
	var got []int64
	ScanDueFrom(db, shard, nil, func(e DueEntry) bool {
		got = append(got, e.NextAttempt)
		if e.Object.Shard != shard || e.Object.Namespace != "ns" {
			t.Errorf("entry %+v", e.Object)
		}
		return true
	})
	if want := []int64{100, 200, 200, 300, 400}; !slices.Equal(got, want) {
		t.Fatalf("next attempts %v, want %v", got, want)
	}
	if names, _ := dueEntries(t, db, shard, DueAfter(keys[1])); !slices.Equal(names, []string{"b2", "c", "d"}) {
		t.Fatalf("after b: %v", names)
	}
	if names, _ := dueEntries(t, db, shard, keys[1]); !slices.Equal(names, []string{"b", "b2", "c", "d"}) {
		t.Fatalf("at b: %v", names)
	}
	if names, _ := dueEntries(t, db, shard, DueAfter(keys[4])); len(names) != 0 {
		t.Fatalf("after the last: %v", names)
	}
	// Stopping early reads no further.
	n := 0
	ScanDueFrom(db, shard, nil, func(DueEntry) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("fn called %d times after returning false at 2", n)
	}
	// Each entry holds a copy of its alarm.
	ScanDueFrom(db, shard, nil, func(e DueEntry) bool {
		rec, found, err := GetAlarm(db, e.Object)
		if err != nil || !found || !e.HasAlarm || e.Alarm != rec {
			t.Errorf("%s: entry holds %+v (%v), record %+v (%v, %v)", e.Object.Name, e.Alarm, e.HasAlarm, rec, found, err)
		}
		return true
	})
	// An entry written by an earlier release holds none; one whose copy
	// disagrees with its key is corrupt.
	legacy := Object{Shard: shard, Namespace: "ns", Name: "legacy"}
	putRaw(t, db, alarmDueKey(shard, 450, legacy.objSuffix()), nil)
	var last DueEntry
	ScanDueFrom(db, shard, DueAfter(keys[4]), func(e DueEntry) bool { last = e; return true })
	if last.Object != legacy || last.HasAlarm || last.NextAttempt != 450 {
		t.Fatalf("legacy entry read as %+v", last)
	}
	putRaw(t, db, alarmDueKey(shard, 460, legacy.objSuffix()), Alarm{ScheduledTime: 1, NextAttempt: 1}.encode())
	if err := ScanDueFrom(db, shard, nil, func(DueEntry) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an entry whose copy disagrees with its key: %v, want ErrCorrupt", err)
	}
	b := db.NewBatch()
	b.Delete(alarmDueKey(shard, 460, legacy.objSuffix()), nil)
	b.Delete(alarmDueKey(shard, 450, legacy.objSuffix()), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// A position outside the shard's index is refused.
	if err := ScanDueFrom(db, shard, []byte("x"), func(DueEntry) bool { return true }); err == nil {
		t.Fatal("a foreign position was accepted")
	}
	// An alarm set earlier than a position is before it: a reader that
	// keeps its place finds it only from the head.
	setAlarmAt(t, db, Object{Shard: shard, Namespace: "ns", Name: "early"}, 150)
	if names, _ := dueEntries(t, db, shard, DueAfter(keys[1])); !slices.Equal(names, []string{"b2", "c", "d"}) {
		t.Fatalf("after b, with an earlier alarm added: %v", names)
	}
}

// ApplyAlarmUpdates applies a batch of outcomes as the single updates
// would, one after another: clears, retries and stale outcomes mixed, an
// object updated twice, and the shard's count kept.
func TestApplyAlarmUpdates(t *testing.T) {
	const shard = 1
	obj := func(name string) Object { return Object{Shard: shard, Namespace: "ns", Name: name} }
	setup := func(db *pebble.DB) {
		for i, name := range []string{"clear", "retry", "stale", "twice", "kept"} {
			setAlarmAt(t, db, obj(name), int64(1000+i))
		}
	}
	updates := []AlarmUpdate{
		{Namespace: "ns", Object: "clear", ScheduledTime: 1000, Clear: true},
		{Namespace: "ns", Object: "retry", ScheduledTime: 1001, RetryCount: 1, NextAttempt: 5000},
		{Namespace: "ns", Object: "stale", ScheduledTime: 999, Clear: true}, // set again since: kept
		{Namespace: "ns", Object: "twice", ScheduledTime: 1003, RetryCount: 1, NextAttempt: 6000},
		{Namespace: "ns", Object: "twice", ScheduledTime: 1003, Clear: true},
		{Namespace: "ns", Object: "gone", ScheduledTime: 7, Clear: true}, // no alarm
	}

	batched := newDB(t)
	setup(batched)
	b := batched.NewIndexedBatch()
	n, err := ApplyAlarmUpdates(b, b, shard, updates)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if n != 4 {
		t.Fatalf("matched %d, want 4", n)
	}

	single := newDB(t)
	setup(single)
	for _, u := range updates {
		b := single.NewIndexedBatch()
		if _, err := ApplyAlarmUpdate(b, b, shard, u); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	lo, hi := ShardSpan(shard)
	if got, want := dumpRange(t, batched, lo, hi), dumpRange(t, single, lo, hi); got != want {
		t.Fatalf("batched and single updates differ:\n%s\nvs\n%s", got, want)
	}

	if c, err := AlarmCount(batched, shard); err != nil || c != 3 {
		t.Fatalf("count %d %v, want 3 (retry, stale, kept)", c, err)
	}
	if a, found, _ := GetAlarm(batched, obj("retry")); !found || a != (Alarm{ScheduledTime: 1001, RetryCount: 1, NextAttempt: 5000}) {
		t.Fatalf("retry: %+v %v", a, found)
	}
	names, _ := dueEntries(t, batched, shard, nil)
	if want := []string{"stale", "kept", "retry"}; !slices.Equal(names, want) {
		t.Fatalf("due index %v, want %v", names, want)
	}
}

// dumpRange renders every record in [lo, hi).
func dumpRange(t *testing.T, db *pebble.DB, lo, hi []byte) string {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for valid := it.First(); valid; valid = it.Next() {
		buf.WriteString(string(it.Key()) + "=" + string(it.Value()) + "\n")
	}
	return buf.String()
}
