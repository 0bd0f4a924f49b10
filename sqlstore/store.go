package sqlstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/ncruces/go-sqlite3"
)

// Defaults and limits.
const (
	// DefaultMaxOpen is the default Config.MaxOpen.
	DefaultMaxOpen = 1024
	// DefaultReadTimeout is the default Config.ReadTimeout.
	DefaultReadTimeout = 5 * time.Second
	// DefaultWriteStepBudget is the default Config.WriteStepBudget: about
	// 20 million VM instructions, 0.65 to 1.0 s of work on the machine
	// DESIGN.md measured.
	DefaultWriteStepBudget = 20_000
	// DefaultCacheKiB is the default Config.CacheKiB.
	DefaultCacheKiB = 256
	// DefaultMaxMemory is the default Config.MaxMemory.
	DefaultMaxMemory = 128 << 20
	// DefaultMaxResultBytes is the default Config.MaxResultBytes.
	DefaultMaxResultBytes = 64 << 20

	// The limits of API.md (as Durable Objects), set on every connection.
	limitColumns   = 100       // columns of a table, a result, an index
	limitVariables = 100       // bound parameters of a statement
	limitSQLLength = 100_000   // bytes of one statement's text
	limitLength    = 2_000_000 // bytes of a string, a blob, a row
)

// Config configures a Store. The zero value of a field means its default.
type Config struct {
	// MaxOpen bounds the connections the store keeps open, one per object
	// recently used; the least recently used idle one is closed first.
	// Connections in use are never closed, so the bound may be exceeded
	// while more than MaxOpen objects are in use at once.
	MaxOpen int
	// ReadTimeout bounds a read session (Begin with a nil batch), from
	// Begin, waiting for the object's connection included: past it, the
	// statement running is interrupted with ErrSQLTimeout.
	ReadTimeout time.Duration
	// WriteStepBudget bounds a write session deterministically: the number
	// of interrupt checks it may make, about one per 1000 SQLite VM
	// instructions plus one per row stepped and per statement prepared.
	// Past it, the statement running fails with ErrSQLTimeout, on every
	// replica alike.
	WriteStepBudget int64
	// CacheKiB is the page cache of each connection, in KiB.
	CacheKiB int
	// MaxMemory bounds the memory of each connection (SQLite's heap, its
	// page cache included), in bytes. A statement that needs more fails
	// with objectstore.ErrTooLarge. At most 4 GiB.
	MaxMemory int64
	// MaxResultBytes bounds the size of one statement's result set: more
	// fails with objectstore.ErrTooLarge.
	MaxResultBytes int64
	// Logger receives the store's rare warnings. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		MaxOpen:         DefaultMaxOpen,
		ReadTimeout:     DefaultReadTimeout,
		WriteStepBudget: DefaultWriteStepBudget,
		CacheKiB:        DefaultCacheKiB,
		MaxMemory:       DefaultMaxMemory,
		MaxResultBytes:  DefaultMaxResultBytes,
	}
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.MaxOpen < 0:
		return fmt.Errorf("sqlstore: MaxOpen %d is negative", c.MaxOpen)
	case c.ReadTimeout < 0:
		return fmt.Errorf("sqlstore: ReadTimeout %v is negative", c.ReadTimeout)
	case c.WriteStepBudget < 0:
		return fmt.Errorf("sqlstore: WriteStepBudget %d is negative", c.WriteStepBudget)
	case c.CacheKiB < 0:
		return fmt.Errorf("sqlstore: CacheKiB %d is negative", c.CacheKiB)
	case c.MaxMemory < 0:
		return fmt.Errorf("sqlstore: MaxMemory %d is negative", c.MaxMemory)
	case c.MaxMemory != 0 && c.MaxMemory < 4<<20:
		return fmt.Errorf("sqlstore: MaxMemory %d is below 4 MiB: a connection needs more to open", c.MaxMemory)
	case c.MaxMemory > 4<<30:
		return fmt.Errorf("sqlstore: MaxMemory %d is above 4 GiB, what a connection can address", c.MaxMemory)
	case c.MaxResultBytes < 0:
		return fmt.Errorf("sqlstore: MaxResultBytes %d is negative", c.MaxResultBytes)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxOpen == 0 {
		c.MaxOpen = d.MaxOpen
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteStepBudget == 0 {
		c.WriteStepBudget = d.WriteStepBudget
	}
	if c.CacheKiB == 0 {
		c.CacheKiB = d.CacheKiB
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = d.MaxMemory
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = d.MaxResultBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store runs the SQL of every object of a node: it implements
// objectstore.SQL. It keeps one SQLite connection per object recently used
// (at most Config.MaxOpen idle ones); a session holds its object's
// connection from Begin until Commit or Rollback, so the state machine and
// the read path never share a connection at once.
//
// All methods are safe for concurrent use; a session is used by one
// goroutine at a time.
type Store struct {
	cfg     Config
	log     *slog.Logger
	helpers helperPool

	mu     sync.Mutex
	conns  map[objKey]*conn // the cached connections
	lru    list.List        // of *conn, most recently used first
	closed bool
}

var _ objectstore.SQL = (*Store)(nil)

// objKey identifies an object across shards.
type objKey struct {
	shard    uint32
	ns, name string
}

func keyOf(obj objectstore.Object) objKey {
	return objKey{shard: obj.Shard, ns: obj.Namespace, name: obj.Name}
}

// New returns a store. It opens nothing until the first Begin.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	registerVFS()
	return &Store{cfg: cfg, log: cfg.Logger, conns: make(map[objKey]*conn)}, nil
}

// Close closes every idle connection and the helper connections; a
// connection in use is closed when its session ends. Begin fails after
// Close (with ErrClosed, which the state machine would take as fatal: close
// the store after Raft has shut down). Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var all []*conn
	for _, c := range s.conns {
		all = append(all, c)
	}
	s.removeLocked(all...)
	s.mu.Unlock()
	for _, c := range all {
		c.closeIfIdle()
	}
	s.helpers.close()
	return nil
}

// Conns reports how many connections the store holds open in its cache.
func (s *Store) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Forget closes the cached connection of obj, at once if it is idle, or
// when its session ends. The next session opens a new one, with an empty
// page cache and schema.
func (s *Store) Forget(obj objectstore.Object) {
	s.mu.Lock()
	c := s.conns[keyOf(obj)]
	if c != nil {
		s.removeLocked(c)
	}
	s.mu.Unlock()
	if c != nil {
		c.closeIfIdle()
	}
}

// ForgetShard is Forget for every object of shard.
func (s *Store) ForgetShard(shard uint32) {
	s.mu.Lock()
	var drop []*conn
	for k, c := range s.conns {
		if k.shard == shard {
			drop = append(drop, c)
		}
	}
	s.removeLocked(drop...)
	s.mu.Unlock()
	for _, c := range drop {
		c.closeIfIdle()
	}
}

// removeLocked takes connections out of the cache and marks them closed:
// whoever holds or next takes one closes it.
func (s *Store) removeLocked(cs ...*conn) {
	for _, c := range cs {
		if c.elem != nil {
			s.lru.Remove(c.elem)
			c.elem = nil
			delete(s.conns, c.key)
		}
		c.closed = true
	}
}

// evictLocked takes least recently used idle connections out of the cache
// until it holds at most MaxOpen, and returns them, held, for the caller to
// close (outside s.mu) and release.
func (s *Store) evictLocked() []*conn {
	var out []*conn
	for e := s.lru.Back(); e != nil && len(s.conns) > s.cfg.MaxOpen; {
		c := e.Value.(*conn)
		e = e.Prev()
		select {
		case c.sem <- struct{}{}:
			s.removeLocked(c)
			out = append(out, c)
		default: // in use
		}
	}
	return out
}

// closeHeld closes connections the caller holds and releases them.
func closeHeld(cs []*conn) {
	for _, c := range cs {
		c.close()
		<-c.sem
	}
}

// acquire returns obj's connection, held by the caller. A new connection is
// returned unopened (db == nil). A write never waits for a read: if the
// cached connection is busy, it gets a temporary one of its own.
func (s *Store) acquire(ctx context.Context, obj objectstore.Object, write bool) (*conn, error) {
	key := keyOf(obj)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		c := s.conns[key]
		if c == nil {
			c = newConn(s, obj)
			c.sem <- struct{}{}
			c.elem = s.lru.PushFront(c)
			s.conns[key] = c
			evicted := s.evictLocked()
			s.mu.Unlock()
			closeHeld(evicted)
			return c, nil
		}
		s.lru.MoveToFront(c.elem)
		s.mu.Unlock()

		select {
		case c.sem <- struct{}{}:
		default:
			if write {
				// The state machine must not stall behind a slow read of
				// the same object: it works on a connection of its own,
				// closed when its session ends.
				t := newConn(s, obj)
				t.temp = true
				t.sem <- struct{}{}
				return t, nil
			}
			select {
			case c.sem <- struct{}{}:
			case <-ctx.Done():
				return nil, sqlError(objectstore.ErrSQLBusy, "timed out waiting for the object's database, held by other requests")
			}
		}
		s.mu.Lock()
		closed := c.closed
		s.mu.Unlock()
		if !closed {
			return c, nil
		}
		// Evicted or forgotten while we waited: close it if nobody did,
		// and look again.
		c.close()
		<-c.sem
	}
}

// release ends a session's hold on c: it is closed if it was taken out of
// the cache (or is temporary, or broken), and otherwise goes back to the
// cache, which may now evict others.
func (s *Store) release(c *conn) {
	s.mu.Lock()
	if c.broken && !c.closed {
		s.removeLocked(c)
	}
	drop := c.closed || c.temp
	var evicted []*conn
	if !drop {
		evicted = s.evictLocked()
	}
	s.mu.Unlock()
	if drop {
		c.close()
	}
	<-c.sem
	closeHeld(evicted)
}

// Begin starts a transaction on obj's database: see objectstore.SQL. For a
// write, r must be w, an indexed batch (the pages SQLite reads must include
// those it wrote). For a read, r should be a consistent view (a snapshot, a
// batch); given the live *pebble.DB, Begin takes a snapshot of it for the
// session. The session must end with Commit or Rollback.
func (s *Store) Begin(obj objectstore.Object, r pebble.Reader, w *pebble.Batch, env objectstore.SQLEnv) (objectstore.SQLSession, error) {
	if r == nil {
		return nil, errors.New("sqlstore: Begin without a reader")
	}
	if w != nil && (r != pebble.Reader(w) || !w.Indexed()) {
		return nil, errors.New("sqlstore: a write session must read its own indexed batch")
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if w == nil {
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ReadTimeout)
		if db, ok := r.(*pebble.DB); ok {
			// SQLite reads a transaction's pages one at a time: from the
			// live database, a write committed in between would tear them.
			snap := db.NewSnapshot()
			r = snap
			cancelTimeout := cancel
			cancel = func() {
				cancelTimeout()
				snap.Close()
			}
		}
	}
	c, err := s.acquire(ctx, obj, w != nil)
	if err != nil {
		cancel()
		return nil, err
	}
	sess := &session{store: s, c: c, write: w != nil, ctx: ctx, cancel: cancel}
	if err := sess.start(r, w, env); err != nil {
		sess.finish()
		return nil, err
	}
	return sess, nil
}

// conn is one object's connection and the state its callbacks read.
type conn struct {
	store *Store
	key   objKey
	obj   objectstore.Object
	sem   chan struct{} // full while a session (or the store) holds it

	// Guarded by store.mu.
	elem   *list.Element // in store.lru; nil once out of the cache
	closed bool          // out of the cache: close it when released
	temp   bool          // never cached

	// Used only by the holder.
	db     *sqlite3.Conn
	file   *dbFile
	broken bool // an internal failure or a panic: do not reuse

	internal   bool                         // the store's own statement: skip the authorizer
	denied     *objectstore.Error           // why the authorizer refused the statement
	sawAlter   bool                         // the statement is an ALTER TABLE
	topDML     sqlite3.AuthorizerActionCode // the statement's INSERT, UPDATE or DELETE, if any
	written    map[string]bool              // tables the statement may insert into or update
	rowidQuery map[string]string            // checkRowids' query, by table
	fn         sessionFuncs
	budget     stepBudget
	prepared   map[string]*sqlite3.Stmt // the store's own statements
	maxPages   int64                    // the max_page_count set; 0: unknown
}

func newConn(s *Store, obj objectstore.Object) *conn {
	return &conn{store: s, key: keyOf(obj), obj: obj, sem: make(chan struct{}, 1)}
}

// closeIfIdle closes c now if nobody holds it; otherwise its holder will,
// since it is marked closed.
func (c *conn) closeIfIdle() {
	select {
	case c.sem <- struct{}{}:
		c.close()
		<-c.sem
	default:
	}
}

// close closes the connection; it is idempotent. The caller holds c.
func (c *conn) close() {
	c.prepared, c.maxPages, c.rowidQuery = nil, 0, nil
	if c.db != nil {
		// Every statement, the store's own and any a panic left behind:
		// SQLite refuses to close a connection that still has some.
		var stmts []*sqlite3.Stmt
		for st := range c.db.Stmts() {
			stmts = append(stmts, st)
		}
		for _, st := range stmts {
			// A statement that failed for want of memory fails (and the
			// library panics) again as it is finalized.
			noPanic(st.Close)
		}
		if err := noPanic(c.db.Close); err != nil {
			c.store.log.Warn("sqlstore: closing a connection", "namespace", c.obj.Namespace, "object", c.obj.Name, "err", err)
		}
		c.db = nil
	}
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
}

// noPanic calls fn, turning a panic into an error.
func noPanic(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("sqlstore: panic: %v", v)
		}
	}()
	return fn()
}

// open opens the connection, its file pointed at the session's reader and
// batch (SQLite reads the header while it sets up), and sets it up.
func (c *conn) open(r pebble.Reader, w *pebble.Batch) error {
	cfg := &c.store.cfg
	f, uri := newFile(c.obj)
	c.file = f
	f.begin(r, w)
	ctx := sqlite3.WithMaxMemory(context.Background(), cfg.MaxMemory)
	db, err := sqlite3.OpenContext(ctx, uri)
	if err != nil {
		return fmt.Errorf("sqlstore: open: %w", c.translate(err))
	}
	c.db = db
	db.Limit(sqlite3.LIMIT_COLUMN, limitColumns)
	db.Limit(sqlite3.LIMIT_VARIABLE_NUMBER, limitVariables)
	db.Limit(sqlite3.LIMIT_SQL_LENGTH, limitSQLLength)
	db.Limit(sqlite3.LIMIT_LENGTH, limitLength)
	db.Limit(sqlite3.LIMIT_ATTACHED, 0)
	if _, err := db.Config(sqlite3.DBCONFIG_DEFENSIVE, true); err != nil {
		return fmt.Errorf("sqlstore: open: %w", err)
	}
	if _, err := db.Config(sqlite3.DBCONFIG_TRUSTED_SCHEMA, false); err != nil {
		return fmt.Errorf("sqlstore: open: %w", err)
	}
	if err := db.SetAuthorizer(c.authorize); err != nil {
		return fmt.Errorf("sqlstore: open: %w", err)
	}
	if err := c.registerFuncs(); err != nil {
		return fmt.Errorf("sqlstore: open: %w", err)
	}
	// page_size matters only before the first write; journal_mode=MEMORY
	// and temp_store=MEMORY keep every file but the database in memory;
	// synchronous=OFF spares calls to the no-op Sync.
	setup := fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=MEMORY; PRAGMA temp_store=MEMORY;
		PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON; PRAGMA cache_size=%d`, pageSize, -cfg.CacheKiB)
	if err := c.exec(setup); err != nil {
		return fmt.Errorf("sqlstore: open: %w", c.translate(err))
	}
	return nil
}

// translate is the package's translate, except that a storage error met
// by the file is reported as the cause, whatever SQLite made of it.
func (c *conn) translate(err error) error {
	if c.file != nil && c.file.ioErr != nil {
		return fmt.Errorf("sqlstore: storage failure: %w (%w)", c.file.ioErr, err)
	}
	return translate(err)
}

// exec runs the store's own SQL, past the authorizer and the limits of the
// session.
func (c *conn) exec(sql string) error {
	c.internal = true
	old := c.db.SetInterrupt(context.Background())
	err := c.db.Exec(sql)
	c.db.SetInterrupt(old)
	c.internal = false
	return err
}

// queryInt runs one of the store's own statements, prepared once per
// connection and kept, and returns the first column of its first row.
func (c *conn) queryInt(sql string) (v int64, found bool, err error) {
	c.internal = true
	old := c.db.SetInterrupt(context.Background())
	defer func() {
		c.db.SetInterrupt(old)
		c.internal = false
	}()
	stmt := c.prepared[sql]
	if stmt == nil {
		stmt, _, err = c.db.Prepare(sql)
		if err != nil {
			return 0, false, err
		}
		if c.prepared == nil {
			c.prepared = make(map[string]*sqlite3.Stmt)
		}
		c.prepared[sql] = stmt
	}
	if stmt.Step() {
		v, found = stmt.ColumnInt64(0), true
		for stmt.Step() {
		}
	}
	return v, found, stmt.Reset()
}
