package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// The contract tests of the Pebble-backed raft.LogStore and raft.StableStore
// hold it to what hashicorp/raft expects of raft-boltdb, which it replaces:
// an empty store answers 0 for FirstIndex and LastIndex and ErrLogNotFound
// for any entry; a missing stable key is an error whose text is "not found"
// (raft matches the text); what was acknowledged survives a crash; and the
// groups sharing one Pebble see nothing of each other.

func openLogDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: testlog.Pebble{}})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	return db
}

// logEntry is a varied entry: every field raft stores must come back.
func logEntry(index uint64) *raft.Log {
	l := &raft.Log{Index: index, Term: index/4 + 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d", index))}
	switch index % 3 {
	case 1:
		l.Type = raft.LogConfiguration
		l.Extensions = []byte{0, byte(index), 0xff}
	case 2:
		l.AppendedAt = time.Unix(1700000000, int64(index)*1001)
	}
	return l
}

func wantIndexes(t *testing.T, s *logStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("first, last index = %d, %d; want %d, %d", f, l, first, last)
	}
}

// wantEntries checks that the store holds exactly the entries from through
// to (inclusive) among 1..probe, as logEntry made them.
func wantEntries(t *testing.T, s *logStore, from, to, probe uint64) {
	t.Helper()
	for i := uint64(1); i <= probe; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		if i < from || i > to {
			if !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog(%d) outside [%d, %d]: err = %v, want raft.ErrLogNotFound", i, from, to, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := logEntry(i)
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}
}

func storeRange(t *testing.T, s *logStore, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, logEntry(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d..%d): %v", from, to, err)
	}
}

func TestLogStoreEntries(t *testing.T) {
	db := openLogDB(t, vfs.NewMem())
	defer db.Close()
	s := newLogStore(db, 3)

	// Empty.
	wantIndexes(t, s, 0, 0)
	wantEntries(t, s, 1, 0, 3)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs of nothing: %v", err)
	}
	wantIndexes(t, s, 0, 0)

	// One entry, then a batch.
	if err := s.StoreLog(logEntry(1)); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1, 1)
	storeRange(t, s, 2, 20)
	wantIndexes(t, s, 1, 20)
	wantEntries(t, s, 1, 20, 22)

	// Overwriting an entry (a follower's conflicting suffix is deleted and
	// written again, but raft may also rewrite in place) keeps the newest.
	repl := logEntry(20)
	repl.Data = []byte("rewritten")
	if err := s.StoreLog(repl); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(20, &got); err != nil || string(got.Data) != "rewritten" {
		t.Fatalf("GetLog(20) after a rewrite = %q, %v", got.Data, err)
	}
	if err := s.StoreLog(logEntry(20)); err != nil {
		t.Fatal(err)
	}

	// A prefix deleted, as compaction after a snapshot does.
	if err := s.DeleteRange(1, 5); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 6, 20)
	wantEntries(t, s, 6, 20, 22)

	// A suffix deleted, as a follower drops entries that conflict with
	// its leader's.
	if err := s.DeleteRange(16, 20); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 6, 15)
	wantEntries(t, s, 6, 15, 22)
	// And written again.
	storeRange(t, s, 16, 18)
	wantIndexes(t, s, 6, 18)
	wantEntries(t, s, 6, 18, 22)

	// A range reaching past both ends deletes what it covers.
	if err := s.DeleteRange(1, 7); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 8, 18)
	if err := s.DeleteRange(17, 100); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 8, 16)
	wantEntries(t, s, 8, 16, 22)

	// Everything deleted: empty again, as after installing a snapshot.
	if err := s.DeleteRange(8, 16); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 0, 0)
	wantEntries(t, s, 1, 0, 22)

	// The log starts again past the snapshot.
	storeRange(t, s, 100, 104)
	wantIndexes(t, s, 100, 104)
	wantEntries(t, s, 100, 104, 106)
}

func TestLogStoreStable(t *testing.T) {
	db := openLogDB(t, vfs.NewMem())
	defer db.Close()
	s := newLogStore(db, 0)

	// Missing keys: raft tells "no state yet" from a failure by the text
	// "not found" (raft.go, api.go), as raft-boltdb's ErrKeyNotFound reads.
	if v, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" || v != nil {
		t.Fatalf("Get of a missing key = %q, %v; want nil, \"not found\"", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64 of a missing key = %d, %v; want 0, \"not found\"", v, err)
	}
	has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil || has {
		t.Fatalf("HasExistingState on an empty store = %v, %v; want false, nil", has, err)
	}

	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("Get = %q, %v; want n2", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n3")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n3" {
		t.Fatalf("Get after an overwrite = %q, %v; want n3", v, err)
	}
	// The value returned is the caller's: changing it changes nothing stored.
	v, _ := s.Get([]byte("LastVoteCand"))
	v[0] = 'x'
	if v, _ := s.Get([]byte("LastVoteCand")); string(v) != "n3" {
		t.Fatalf("the stored value changed with the returned slice: %q", v)
	}

	for _, want := range []uint64{1, 7, 1 << 40, ^uint64(0)} {
		if err := s.SetUint64([]byte("CurrentTerm"), want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != want {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, want)
		}
	}
	has, err = raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil || !has {
		t.Fatalf("HasExistingState with a current term = %v, %v; want true, nil", has, err)
	}

	// Stable keys are not log entries, whatever their bytes.
	if err := s.Set([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 0, 0)
	wantEntries(t, s, 1, 0, 2)
	// A value not written by SetUint64 is refused, not misread.
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 2-byte value succeeded")
	}
}

// TestLogStoreSurvivesCrash writes through the store and, after each
// acknowledged write, keeps only what the filesystem synced so far (a
// crash): entries, deletions and stable values must each be there after a
// restart from the crash that followed them, and from a clean close.
func TestLogStoreSurvivesCrash(t *testing.T) {
	type state struct {
		first, last uint64
		term        uint64 // 0: not set
		vote        string // "": not set
	}
	fs := vfs.NewCrashableMem()
	db := openLogDB(t, fs)
	s := newLogStore(db, 1)
	steps := []struct {
		name  string
		write func() error
		want  state
	}{
		{"entries stored", func() error {
			var logs []*raft.Log
			for i := uint64(1); i <= 30; i++ {
				logs = append(logs, logEntry(i))
			}
			return s.StoreLogs(logs)
		}, state{1, 30, 0, ""}},
		{"one more entry", func() error { return s.StoreLog(logEntry(31)) }, state{1, 31, 0, ""}},
		{"prefix deleted", func() error { return s.DeleteRange(1, 10) }, state{11, 31, 0, ""}},
		{"suffix deleted", func() error { return s.DeleteRange(26, 31) }, state{11, 25, 0, ""}},
		{"term set", func() error { return s.SetUint64([]byte("CurrentTerm"), 9) }, state{11, 25, 9, ""}},
		{"vote set", func() error { return s.Set([]byte("LastVoteCand"), []byte("n1")) }, state{11, 25, 9, "n1"}},
	}
	check := func(t *testing.T, fs vfs.FS, want state) {
		t.Helper()
		db := openLogDB(t, fs)
		defer db.Close()
		s := newLogStore(db, 1)
		wantIndexes(t, s, want.first, want.last)
		wantEntries(t, s, want.first, want.last, 32)
		term, err := s.GetUint64([]byte("CurrentTerm"))
		if want.term == 0 && (err == nil || err.Error() != "not found") || want.term != 0 && (err != nil || term != want.term) {
			t.Fatalf("CurrentTerm = %d, %v; want %d", term, err, want.term)
		}
		vote, err := s.Get([]byte("LastVoteCand"))
		if want.vote == "" && err == nil || want.vote != "" && (err != nil || string(vote) != want.vote) {
			t.Fatalf("LastVoteCand = %q, %v; want %q", vote, err, want.vote)
		}
		if has, err := hasLogState(db, 1); err != nil || !has {
			t.Fatalf("hasLogState = %v, %v; want true", has, err)
		}
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		t.Run("crash after "+st.name, func(t *testing.T) { check(t, crashed, st.want) })
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("clean close", func(t *testing.T) { check(t, fs, steps[len(steps)-1].want) })
}

// TestLogStoreGroupsAreApart keeps several groups' logs in one Pebble,
// neighbours by shard id, and checks that none sees another's entries,
// stable values, deletions or drop.
func TestLogStoreGroupsAreApart(t *testing.T) {
	db := openLogDB(t, vfs.NewMem())
	defer db.Close()
	a, b, c := newLogStore(db, 1), newLogStore(db, 2), newLogStore(db, 256)
	storeRange(t, a, 1, 10)
	storeRange(t, b, 5, 20)
	if err := a.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}

	wantIndexes(t, a, 1, 10)
	wantIndexes(t, b, 5, 20)
	wantIndexes(t, c, 0, 0)
	wantEntries(t, a, 1, 10, 22)
	wantEntries(t, b, 5, 20, 22)
	wantEntries(t, c, 1, 0, 22)
	if _, err := b.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("group 2 sees group 1's current term: err = %v", err)
	}
	if has, _ := hasLogState(db, 0); has {
		t.Fatal("shard 0 has log state it never wrote")
	}

	// A deletion in one group leaves the others alone, even over indexes
	// they hold too.
	if err := a.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, a, 0, 0)
	wantIndexes(t, b, 5, 20)
	wantEntries(t, b, 5, 20, 22)

	// drop forgets a group's entries and stable values, and only its own.
	storeRange(t, a, 30, 31)
	if err := b.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := a.drop(); err != nil {
		t.Fatal(err)
	}
	if has, err := hasLogState(db, 1); err != nil || has {
		t.Fatalf("hasLogState of a dropped group = %v, %v", has, err)
	}
	wantIndexes(t, a, 0, 0)
	wantIndexes(t, newLogStore(db, 1), 0, 0)
	if _, err := a.GetUint64([]byte("CurrentTerm")); err == nil {
		t.Fatal("a dropped group kept its current term")
	}
	wantIndexes(t, b, 5, 20)
	wantEntries(t, b, 5, 20, 22)
	if v, err := b.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("group 2's current term after group 1's drop = %d, %v", v, err)
	}
	if has, err := hasLogState(db, 2); err != nil || !has {
		t.Fatalf("hasLogState of group 2 = %v, %v", has, err)
	}
}
