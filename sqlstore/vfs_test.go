package sqlstore

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// TestFileRandomIO checks the VFS file against a byte slice: reads and
// writes at any offset and length, truncation, and a fresh file handle
// reading what was committed.
func TestFileRandomIO(t *testing.T) {
	db := memDB(t)
	rng := rand.New(rand.NewPCG(7, 7))
	f, _ := newFile(objA)
	defer f.Close()
	var model []byte
	b := db.NewIndexedBatch()
	f.begin(b, b)
	for i := range 2000 {
		switch op := rng.IntN(10); {
		case op < 5: // write
			off := rng.Int64N(5 * pageSize)
			if rng.IntN(2) == 0 {
				off = off / pageSize * pageSize
			}
			n := 1 + rng.IntN(2*pageSize)
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			if end := off + int64(n); end > int64(len(model)) {
				model = append(model, make([]byte, end-int64(len(model)))...)
			}
			copy(model[off:], p)
		case op < 8: // read
			off := rng.Int64N(6 * pageSize)
			p := make([]byte, 1+rng.IntN(2*pageSize))
			n, err := f.ReadAt(p, off)
			want := 0
			if off < int64(len(model)) {
				want = copy(make([]byte, len(p)), model[off:])
			}
			if n != want || (n < len(p)) != errors.Is(err, io.EOF) || err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("op %d: ReadAt(%d bytes at %d) = %d, %v; want %d", i, len(p), off, n, err, want)
			}
			if n > 0 && !bytes.Equal(p[:n], model[off:off+int64(n)]) {
				t.Fatalf("op %d: ReadAt(%d bytes at %d): wrong bytes", i, len(p), off)
			}
		case op < 9: // truncate
			size := rng.Int64N(int64(len(model)) + 1)
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			model = model[:size]
		default: // commit, and look through a fresh batch
			if err := b.Commit(nil); err != nil {
				t.Fatal(err)
			}
			b.Close()
			b = db.NewIndexedBatch()
			f.begin(b, b)
		}
		if size, err := f.Size(); err != nil || size != int64(len(model)) {
			t.Fatalf("op %d: Size = %d, %v; want %d", i, size, err, len(model))
		}
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Whole pages only, none past the end, and the size record.
	recs := span(t, db, objA)
	pages := (len(model) + pageSize - 1) / pageSize
	if len(model) > 0 && len(recs) > pages+1 {
		t.Fatalf("%d records for %d pages", len(recs), pages)
	}
	for _, r := range recs {
		if k := r.k[len(r.k)-5]; k == keyPage && len(r.v) != pageSize {
			t.Fatalf("page record of %d bytes", len(r.v))
		}
	}
	f.end()
	if err := f.Truncate(0); err == nil {
		t.Fatal("Truncate outside a session succeeded")
	}
}

// failingReader fails every Get after the first n.
type failingReader struct {
	pebble.Reader
	n int
}

var errDisk = errors.New("disk on fire")

func (r *failingReader) Get(k []byte) ([]byte, io.Closer, error) {
	if r.n <= 0 {
		return nil, nil, errDisk
	}
	r.n--
	return r.Reader.Get(k)
}

// TestStorageErrorIsNotAnSQLError: a Pebble error inside the VFS comes
// back as an I/O error that is not an *objectstore.Error: the state machine
// treats it as fatal rather than as the client's fault.
func TestStorageErrorIsNotAnSQLError(t *testing.T) {
	db := memDB(t)
	s := newStore(t, Config{})
	mustWrite(t, db, s, objA, env(1), "CREATE TABLE t(v)", "INSERT INTO t SELECT zeroblob(3000) FROM json_each('[1,2,3,4,5,6,7,8]')")
	s.Forget(objA) // start from an empty page cache
	for n := 0; n < 8; n++ {
		snap := db.NewSnapshot()
		sess, err := s.Begin(objA, &failingReader{Reader: snap, n: n}, nil, env(2))
		if err == nil {
			_, err = sess.Exec(objectstore.SQLStatement{SQL: "SELECT sum(length(v)) FROM t"})
			sess.Rollback()
		}
		snap.Close()
		var oe *objectstore.Error
		if err == nil || errors.As(err, &oe) || !errors.Is(err, errDisk) {
			t.Fatalf("after %d good reads: err = %v, want a plain error wrapping the disk's", n, err)
		}
		s.Forget(objA)
	}
	// And the store still works.
	if got := oneValue(t, db, s, objA, "SELECT count(*) FROM t"); got != "8" {
		t.Fatalf("after the failures: %s rows", got)
	}
}
