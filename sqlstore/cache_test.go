package sqlstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/objectstore"
)

// TestWriteDoesNotWaitForRead: while a read holds an object's connection, a
// write to the object proceeds on a connection of its own; the read keeps
// its snapshot.
func TestWriteDoesNotWaitForRead(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)", "INSERT INTO t VALUES (1)")

	rd, err := s.Begin(objA, db, nil, env(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Exec(objectstore.SQLStatement{SQL: "SELECT count(*) FROM t"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := write(t, db, s, objA, env(2), stmts("INSERT INTO t VALUES (2)")...)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write waited for the read")
	}
	res, err := rd.Exec(objectstore.SQLStatement{SQL: "SELECT count(*) FROM t"})
	if err != nil || res.Rows[0][0].Int != 1 {
		t.Fatalf("the read's snapshot moved: %v %v", res, err)
	}
	rd.Rollback()
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != "2" {
		t.Fatalf("after both: %s rows", got)
	}
	if n := s.Conns(); n != 1 {
		t.Fatalf("%d connections cached, want 1 (the write's was temporary)", n)
	}
}

// TestReadsWaitTheirTurn: reads of one object share its connection one at a
// time, each within its own timeout.
func TestReadsWaitTheirTurn(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{ReadTimeout: 200 * time.Millisecond})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)")
	first, err := s.Begin(objA, db, nil, env(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Begin(objA, db, nil, env(0))
	wantErr(t, err, objectstore.ErrSQLBusy)
	first.Rollback()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := read(t, db, s, objA, objectstore.SQLStatement{SQL: "SELECT count(*) FROM t"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxOpen: the cache keeps at most MaxOpen idle connections, never
// closes one in use, and comes back under the bound when sessions end.
func TestMaxOpen(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{MaxOpen: 3})
	obj := func(i int) objectstore.Object {
		return objectstore.Object{Shard: 1, Namespace: "ns", Name: fmt.Sprint(i)}
	}
	for i := range 10 {
		mustWrite(t, db, s, obj(i), env(i), "CREATE TABLE t(v)", fmt.Sprintf("INSERT INTO t VALUES (%d)", i))
		if n := s.Conns(); n > 3 {
			t.Fatalf("%d connections open", n)
		}
	}
	var held []objectstore.SQLSession
	for i := range 5 {
		sess, err := s.Begin(obj(i), db, nil, env(0))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sess)
	}
	if n := s.Conns(); n != 5 {
		t.Fatalf("%d connections open with 5 in use, want 5", n)
	}
	for i, sess := range held {
		res, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT v FROM t"})
		if err != nil || res.Rows[0][0].Int != int64(i) {
			t.Fatalf("object %d: %v %v", i, res, err)
		}
		sess.Commit()
	}
	if n := s.Conns(); n != 3 {
		t.Fatalf("%d connections open after the sessions ended, want 3", n)
	}
	for i := range 10 {
		if got := oneValue(t, db, s, obj(i), "SELECT v FROM t"); got != fmt.Sprint(i) {
			t.Fatalf("object %d: %s", i, got)
		}
	}
}

// TestForgetInUse: Forget and ForgetShard close idle connections at once
// and busy ones when their session ends.
func TestForgetInUse(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	other := objectstore.Object{Shard: 2, Namespace: "ns", Name: "a"}
	for _, o := range []objectstore.Object{objA, objB, other} {
		mustWrite(t, db, s, o, env(1), "CREATE TABLE t(v)")
	}
	sess, err := s.Begin(objA, db, nil, env(0))
	if err != nil {
		t.Fatal(err)
	}
	c := sess.(*session).c
	s.ForgetShard(1)
	if n := s.Conns(); n != 1 {
		t.Fatalf("%d connections after ForgetShard(1), want 1", n)
	}
	if c.db == nil {
		t.Fatal("the connection in use was closed")
	}
	if _, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT count(*) FROM t"}); err != nil {
		t.Fatal(err)
	}
	sess.Rollback()
	if c.db != nil {
		t.Fatal("the forgotten connection stayed open after its session")
	}
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != "0" {
		t.Fatal(got)
	}
	s.Forget(other)
	if n := s.Conns(); n != 1 { // objA again
		t.Fatalf("%d connections, want 1", n)
	}
}

// TestClose: Begin fails after Close; a session in progress finishes.
func TestClose(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)")
	sess, err := s.Begin(objA, db, nil, env(0))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if _, err := s.Begin(objB, db, nil, env(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	if _, err := sess.Exec(objectstore.SQLStatement{SQL: "SELECT 1"}); err != nil {
		t.Fatal(err)
	}
	sess.Rollback()
	if c := sess.(*session).c; c.db != nil {
		t.Fatal("connection left open after Close and the end of its session")
	}
}

// TestConcurrentObjects runs writes and reads on many objects at once (for
// the race detector).
func TestConcurrentObjects(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{MaxOpen: 4})
	var mu sync.Mutex // one writer at a time, as a shard's state machine
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				obj := objectstore.Object{Shard: uint32(i % 2), Namespace: "ns", Name: fmt.Sprint(i % 5)}
				if g%2 == 0 {
					mu.Lock()
					_, err := write(t, db, s, obj, env(i), stmts("CREATE TABLE IF NOT EXISTS t(v)", "INSERT INTO t VALUES (random())")...)
					mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
				} else {
					_, err := read(t, db, s, obj, objectstore.SQLStatement{SQL: "SELECT count(*) FROM sqlite_schema"})
					if err != nil {
						t.Error(err)
						return
					}
				}
				if i%7 == 0 {
					s.Forget(obj)
				}
			}
		})
	}
	wg.Wait()
}
