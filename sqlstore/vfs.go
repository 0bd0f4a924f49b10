package sqlstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// The VFS. SQLite sees an object's database as one file; its bytes live in
// Pebble, one key per page (see the package doc for the layout). The file
// reads through the session's pebble.Reader and writes into the session's
// *pebble.Batch, so a transaction's pages land in the same batch as the rest
// of the Raft entry, and a discarded batch discards them too.

const (
	// vfsName is the name the VFS is registered under.
	vfsName = "cairn"
	// pageSize is the size of SQLite's pages and of the file's chunks: one
	// chunk, one Pebble key.
	pageSize = 4096

	// Suffixes of an object's SQL keys (objectstore.Object.SQLKey).
	keyPage = 'p' // 'p' pageNo:u32be → the page's 4096 bytes (pageNo from 1)
	keySize = 's' // 's' → the file's size in bytes, u64be; absent means 0
)

// errNoSession means SQLite touched a file outside a session: a bug.
var errNoSession = errors.New("sqlstore: database file used outside a session")

// files is the registry of open database files, by the name given to
// sqlite3.Open. The VFS registry of the SQLite library is process-wide, so
// this one is too; the names are unique per process.
var files struct {
	sync.Mutex
	m    map[string]*dbFile
	next atomic.Uint64
}

var registerOnce sync.Once

// registerVFS registers the Pebble VFS with SQLite, once per process.
func registerVFS() {
	registerOnce.Do(func() {
		files.m = make(map[string]*dbFile)
		vfs.Register(vfsName, pebbleVFS{})
	})
}

// newFile registers the file of obj's database and returns it with the URI
// that opens it.
func newFile(obj objectstore.Object) (*dbFile, string) {
	registerVFS()
	name := fmt.Sprintf("cairn-%d", files.next.Add(1))
	f := &dbFile{name: name, prefix: obj.SQLKey(nil)}
	files.Lock()
	files.m[name] = f
	files.Unlock()
	return f, "file:" + name + "?vfs=" + vfsName
}

// pebbleVFS opens only the main database files registered by newFile.
// journal_mode=MEMORY and temp_store=MEMORY keep SQLite from asking for any
// other file (journal, WAL, temp database, sorter spill); such an open is
// refused with SQLITE_CANTOPEN.
type pebbleVFS struct{}

var _ vfs.VFS = pebbleVFS{}

func (pebbleVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	if flags&vfs.OPEN_MAIN_DB == 0 {
		return nil, flags, sqlite3.CANTOPEN
	}
	files.Lock()
	f := files.m[strings.TrimPrefix(name, "/")]
	files.Unlock()
	if f == nil {
		return nil, flags, sqlite3.CANTOPEN
	}
	return f, flags, nil
}

func (pebbleVFS) Delete(name string, syncDir bool) error {
	return sqlite3.IOERR_DELETE_NOENT // there are no journals to delete
}

func (pebbleVFS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	return false, nil // no journal, no WAL: nothing else exists
}

func (pebbleVFS) FullPathname(name string) (string, error) { return name, nil }

// dbFile is one object's database file. Only the session holding the
// object's connection uses it (that is what serializes it), between begin
// and end.
type dbFile struct {
	name   string
	prefix []byte // obj.SQLKey(nil)

	r pebble.Reader
	w *pebble.Batch // nil in a read session

	size      int64 // the file's size, once known in this session
	sizeKnown bool
	// seenData is set once the connection has seen the file non-empty
	// (see session.start).
	seenData bool
	// ioErr is the first storage error of the session. SQLite reports it
	// as SQLITE_IOERR without the cause, which this keeps.
	ioErr error

	key  []byte         // scratch for building keys
	page [pageSize]byte // scratch for partial page writes
}

var _ vfs.File = (*dbFile)(nil)

// begin points the file at a session's reader and batch.
func (f *dbFile) begin(r pebble.Reader, w *pebble.Batch) {
	f.r, f.w, f.sizeKnown, f.ioErr = r, w, false, nil
}

// end detaches the file from the session.
func (f *dbFile) end() {
	f.r, f.w, f.sizeKnown = nil, nil, false
}

// fail records a storage error and returns it.
func (f *dbFile) fail(err error) error {
	if f.ioErr == nil {
		f.ioErr = err
	}
	return err
}

func (f *dbFile) pageKey(pageNo int64) []byte {
	f.key = append(f.key[:0], f.prefix...)
	f.key = append(f.key, keyPage)
	return binary.BigEndian.AppendUint32(f.key, uint32(pageNo))
}

func (f *dbFile) sizeKey() []byte {
	f.key = append(f.key[:0], f.prefix...)
	return append(f.key, keySize)
}

// Close unregisters the file; SQLite closes it when its connection closes.
func (f *dbFile) Close() error {
	files.Lock()
	delete(files.m, f.name)
	files.Unlock()
	f.end()
	return nil
}

// fileSize returns the file's size, reading it once per session.
func (f *dbFile) fileSize() (int64, error) {
	if f.r == nil {
		return 0, errNoSession
	}
	if f.sizeKnown {
		return f.size, nil
	}
	v, closer, err := f.r.Get(f.sizeKey())
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		f.size = 0
	case err != nil:
		return 0, f.fail(err)
	default:
		if len(v) != 8 {
			closer.Close()
			return 0, f.fail(fmt.Errorf("sqlstore: %s: size record of %d bytes: %w", f.name, len(v), objectstore.ErrCorrupt))
		}
		f.size = int64(binary.BigEndian.Uint64(v))
		closer.Close()
	}
	f.sizeKnown = true
	f.seenData = f.seenData || f.size > 0
	return f.size, nil
}

func (f *dbFile) setSize(size int64) error {
	var err error
	if size == 0 {
		// An empty database is no keys at all, as after deleteAll.
		err = f.w.Delete(f.sizeKey(), nil)
	} else {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(size))
		err = f.w.Set(f.sizeKey(), b[:], nil)
	}
	if err != nil {
		return f.fail(err)
	}
	f.size, f.sizeKnown = size, true
	f.seenData = f.seenData || size > 0
	return nil
}

// readPage copies bytes [in, in+len(dst)) of page pageNo into dst; a page
// that was never written reads as zeros.
func (f *dbFile) readPage(dst []byte, pageNo, in int64) error {
	v, closer, err := f.r.Get(f.pageKey(pageNo))
	if errors.Is(err, pebble.ErrNotFound) {
		clear(dst)
		return nil
	}
	if err != nil {
		return f.fail(err)
	}
	defer closer.Close()
	if len(v) != pageSize {
		return f.fail(fmt.Errorf("sqlstore: %s: page %d of %d bytes: %w", f.name, pageNo, len(v), objectstore.ErrCorrupt))
	}
	copy(dst, v[in:])
	return nil
}

// ReadAt reads any range: SQLite reads whole pages, and parts of page 1
// (its header, the change counter).
func (f *dbFile) ReadAt(p []byte, off int64) (int, error) {
	size, err := f.fileSize()
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) && off+int64(n) < size {
		pos := off + int64(n)
		in := pos % pageSize
		chunk := min(pageSize-in, int64(len(p)-n), size-pos)
		if err := f.readPage(p[n:n+int(chunk)], pos/pageSize+1, in); err != nil {
			return n, err
		}
		n += int(chunk)
	}
	if n < len(p) {
		return n, io.EOF // SQLite zero-fills the rest: a short read
	}
	return n, nil
}

// WriteAt writes any range into the session's batch, whole pages as they
// are and partial pages by read-modify-write.
func (f *dbFile) WriteAt(p []byte, off int64) (int, error) {
	if f.r == nil {
		return 0, errNoSession
	}
	if f.w == nil {
		// A read session never writes; SQLite reports "attempt to write a
		// readonly database" rather than an I/O error.
		return 0, sqlite3.READONLY
	}
	size, err := f.fileSize()
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		pageNo, in := pos/pageSize+1, pos%pageSize
		chunk := min(pageSize-in, int64(len(p)-n))
		src := p[n : n+int(chunk)]
		if chunk != pageSize {
			// The rest of the page keeps its bytes (zeros past the end).
			pageStart := (pageNo - 1) * pageSize
			if pageStart < size {
				if err := f.readPage(f.page[:], pageNo, 0); err != nil {
					return n, err
				}
				if keep := size - pageStart; keep < pageSize {
					clear(f.page[keep:])
				}
			} else {
				clear(f.page[:])
			}
			copy(f.page[in:], src)
			src = f.page[:]
		}
		if err := f.w.Set(f.pageKey(pageNo), src, nil); err != nil {
			return n, f.fail(err)
		}
		n += int(chunk)
	}
	if end := off + int64(len(p)); end > size {
		if err := f.setSize(end); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Truncate deletes the pages past size (SQLite truncates when a transaction
// that grew the file rolls back).
func (f *dbFile) Truncate(size int64) error {
	if f.r == nil {
		return errNoSession
	}
	if f.w == nil {
		return sqlite3.READONLY
	}
	cur, err := f.fileSize()
	if err != nil {
		return err
	}
	if size >= cur {
		if size == cur {
			return nil
		}
		return f.setSize(size)
	}
	keep := (size + pageSize - 1) / pageSize // pages that keep some bytes
	last := (cur + pageSize - 1) / pageSize
	for pageNo := keep + 1; pageNo <= last; pageNo++ {
		if err := f.w.Delete(f.pageKey(pageNo), nil); err != nil {
			return f.fail(err)
		}
	}
	if in := size % pageSize; in != 0 {
		if err := f.readPage(f.page[:], keep, 0); err != nil {
			return err
		}
		clear(f.page[in:])
		if err := f.w.Set(f.pageKey(keep), f.page[:], nil); err != nil {
			return f.fail(err)
		}
	}
	return f.setSize(size)
}

// Size returns the file's size.
func (f *dbFile) Size() (int64, error) { return f.fileSize() }

// Sync does nothing: durability is the Raft log's and the Pebble batch's.
func (f *dbFile) Sync(vfs.SyncFlag) error { return nil }

// Locks do nothing: one connection uses the file at a time (the store
// serializes sessions) and each connection has its own file.
func (f *dbFile) Lock(vfs.LockLevel) error         { return nil }
func (f *dbFile) Unlock(vfs.LockLevel) error       { return nil }
func (f *dbFile) CheckReservedLock() (bool, error) { return false, nil }
func (f *dbFile) SectorSize() int                  { return pageSize }
func (f *dbFile) DeviceCharacteristics() vfs.DeviceCharacteristic {
	// A page write is one Pebble Set: atomic, never torn, and it never
	// touches its neighbours.
	return vfs.IOCAP_ATOMIC4K | vfs.IOCAP_SAFE_APPEND | vfs.IOCAP_SEQUENTIAL |
		vfs.IOCAP_POWERSAFE_OVERWRITE | vfs.IOCAP_UNDELETABLE_WHEN_OPEN
}
