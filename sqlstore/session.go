package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/ncruces/go-sqlite3"
)

// session is one transaction on one object's database.
type session struct {
	store  *Store
	c      *conn
	write  bool
	ctx    context.Context // a read's deadline
	cancel context.CancelFunc

	failed error // the first error of Exec: the transaction is lost
	done   bool  // Commit or Rollback ran
	size   int64 // the database's size when the session ended
	sizeOK bool
}

var _ objectstore.SQLSession = (*session)(nil)

// start points the connection at r and w (opening it if needed) and begins
// the transaction.
func (s *session) start(r pebble.Reader, w *pebble.Batch, env objectstore.SQLEnv) (err error) {
	c := s.c
	defer func() {
		if v := recover(); v != nil {
			err = s.recovered(v)
		}
		if err != nil {
			// A connection that failed to set up or to begin is not
			// trusted again (finish drops it).
			c.broken = true
			if c.db != nil && !c.db.GetAutocommit() {
				c.exec("ROLLBACK")
			}
		}
	}()
	if c.db != nil {
		c.file.begin(r, w)
		if c.file.seenData {
			// SQLite computes the next change counter from the one it last
			// read from page 1, and it cannot re-read it from an empty
			// file: a connection that saw pages which are gone (an entry
			// that created the database was discarded) would count on from
			// there, and write a page 1 that a fresh connection would not.
			// Start such a connection afresh.
			size, err := c.file.fileSize()
			if err != nil {
				return c.translate(err)
			}
			if size == 0 {
				c.close()
			}
		}
	}
	if c.db == nil {
		if err := c.open(r, w); err != nil {
			return err
		}
	}
	// A deferred BEGIN for writes too: BEGIN IMMEDIATE on an empty file
	// makes SQLite write page 1 at COMMIT, so a write session that only
	// read would create an empty database for an object that had none.
	// (The locks are no-ops: IMMEDIATE would guard against nothing.)
	if _, _, err := c.queryInt("BEGIN"); err != nil {
		return c.translate(err)
	}
	if s.write {
		if err := s.limitPages(env.MaxBytes); err != nil {
			return err
		}
	}
	// A statement that names sqlite_schema reads the schema now, and so a
	// stale schema or page cache, left by an entry whose batch was
	// discarded, is reloaded here, outside the statements' step budget: the
	// budget is then spent the same on a replica with a warm connection and
	// on one that just opened its connection.
	if _, _, err := c.queryInt("SELECT 1 FROM sqlite_schema LIMIT 0"); err != nil {
		return c.translate(err)
	}
	c.db.SetLastInsertRowID(0)
	c.fn.reset(env.NowMillis, env.Seed, c.db.TotalChanges())
	if s.write {
		c.budget.left = s.store.cfg.WriteStepBudget
		c.db.SetInterrupt(&c.budget)
	} else {
		c.db.SetInterrupt(s.ctx)
	}
	return nil
}

// limitPages sets the connection's max_page_count from maxBytes. SQLite
// never sets it below the pages the database has at that moment, so the
// value set is max(limit, pages) computed here from the file, the same on
// every replica whatever the connection's history; and a connection that
// has it already is spared the statement.
func (s *session) limitPages(maxBytes int64) error {
	c := s.c
	const ceiling = math.MaxUint32 - 1 // SQLite's own
	limit := int64(ceiling)
	if maxBytes > 0 {
		limit = min(max(1, maxBytes/pageSize), ceiling)
	}
	size, err := c.file.fileSize()
	if err != nil {
		return c.translate(err)
	}
	limit = max(limit, (size+pageSize-1)/pageSize)
	if limit == c.maxPages {
		return nil
	}
	c.maxPages = 0
	if err := c.exec(fmt.Sprintf("PRAGMA max_page_count=%d", limit)); err != nil {
		return c.translate(err)
	}
	c.maxPages = limit
	return nil
}

// recovered turns a panic of the SQLite library into an error and marks
// the connection broken. The library panics when a connection runs out of
// memory: that is the statement's fault (ErrTooLarge); anything else is a
// bug or a storage failure.
func (s *session) recovered(v any) error {
	s.c.broken = true
	if oomPanic(v) {
		return sqlError(objectstore.ErrTooLarge, "the statement needs more memory than an object's database may use")
	}
	return fmt.Errorf("sqlstore: panic in SQLite: %v", v)
}

// Exec runs the statements of stmt.SQL in order and returns the result set
// of the last one (its rows read and written are summed over all). Params
// are bound by position, and only when stmt.SQL holds one statement. After
// an error the transaction is lost: the caller must Rollback.
func (s *session) Exec(stmt objectstore.SQLStatement) (res *objectstore.SQLResult, err error) {
	if s.done {
		return nil, errors.New("sqlstore: Exec after the session ended")
	}
	if s.failed != nil {
		return nil, sqlError(objectstore.ErrSQL, "an earlier statement of this transaction failed: %v", s.failed)
	}
	defer func() {
		if v := recover(); v != nil {
			err = s.recovered(v)
			res = nil
		}
		if err != nil {
			s.failed = err
		}
	}()

	c := s.c
	res = &objectstore.SQLResult{Columns: []string{}, Rows: [][]objectstore.SQLValue{}}
	sql, first := stmt.SQL, true
	for sql != "" {
		c.denied, c.sawAlter, c.topDML = nil, false, 0
		clear(c.written)
		if objectstore.FirstKeyword(sql) == "VACUUM" {
			// VACUUM rewrites the database through an attached copy; the
			// authorizer would only see the ATTACH.
			return nil, sqlError(objectstore.ErrSQLForbidden, "VACUUM is not allowed")
		}
		st, tail, err := c.db.Prepare(sql)
		if err != nil {
			return nil, s.stmtError(err)
		}
		if st == nil {
			break // nothing but white space and comments left
		}
		params := stmt.Params
		if !first {
			params = nil
		}
		if first && len(stmt.Params) > 0 && !onlyTrivia(tail) {
			st.Close()
			return nil, sqlError(objectstore.ErrSQL, "parameters are allowed only with a single statement, and this SQL holds several")
		}
		r, err := s.run(st, params)
		st.Close()
		if err != nil {
			return nil, err
		}
		res.Columns, res.Rows = r.Columns, r.Rows
		res.RowsRead += r.RowsRead
		res.RowsWritten += r.RowsWritten
		sql, first = tail, false
	}
	if first && len(stmt.Params) > 0 {
		return nil, sqlError(objectstore.ErrSQL, "%d parameters given for SQL that holds no statement", len(stmt.Params))
	}
	return res, nil
}

// run binds params to st, steps it to the end and returns its result set.
func (s *session) run(st *sqlite3.Stmt, params []objectstore.SQLValue) (*objectstore.SQLResult, error) {
	c := s.c
	if n := st.BindCount(); n != len(params) {
		return nil, sqlError(objectstore.ErrSQL, "the statement has %d parameters and %d were given", n, len(params))
	}
	for i, p := range params {
		if err := bind(st, i+1, p); err != nil {
			return nil, s.stmtError(err)
		}
	}
	if !s.write && !st.ReadOnly() {
		return nil, sqlError(ErrWriteInRead, "the statement writes to the database, and the request was run as a read")
	}

	res := &objectstore.SQLResult{Columns: make([]string, st.ColumnCount()), Rows: [][]objectstore.SQLValue{}}
	for i := range res.Columns {
		res.Columns[i] = st.ColumnName(i)
	}
	var bytes int64
	for st.Step() {
		row := make([]objectstore.SQLValue, len(res.Columns))
		for i := range row {
			row[i] = column(st, i)
			bytes += int64(16 + len(row[i].Text) + len(row[i].Blob))
		}
		if bytes > s.store.cfg.MaxResultBytes {
			return nil, sqlError(objectstore.ErrTooLarge, "the result set is larger than %d bytes", s.store.cfg.MaxResultBytes)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := st.Err(); err != nil {
		return nil, s.stmtError(err)
	}

	// RowsWritten: the rows the statement itself inserted, updated or
	// deleted (sqlite3_changes), for an INSERT, UPDATE or DELETE only.
	if c.topDML != 0 {
		res.RowsWritten = c.db.Changes()
		c.fn.lastChanges = res.RowsWritten
	}
	// RowsRead: SQLite counts no rows read. A full scan steps over n rows
	// with n-1 FULLSCAN_STEPs; a lookup or a range scan reads the rows it
	// returns, and an UPDATE or DELETE the rows it changes. Deterministic,
	// as every counter here.
	read := int64(len(res.Rows))
	if fs := int64(st.Status(sqlite3.STMTSTATUS_FULLSCAN_STEP, false)); fs > 0 {
		read = max(read, fs+1)
	}
	if c.topDML == sqlite3.AUTH_UPDATE || c.topDML == sqlite3.AUTH_DELETE {
		read = max(read, res.RowsWritten)
	}
	res.RowsRead = read

	if err := s.checkRowids(); err != nil {
		return nil, err
	}
	if c.sawAlter {
		// ALTER TABLE … RENAME TO may have given a table a reserved name.
		_, found, err := c.queryInt(`SELECT 1 FROM sqlite_schema WHERE name LIKE '\_cairn%' ESCAPE '\' LIMIT 1`)
		if err != nil {
			return nil, c.translate(err)
		}
		if found {
			return nil, sqlError(objectstore.ErrSQLForbidden, "names starting with _cairn are reserved")
		}
	}
	return res, nil
}

// maxRowid is the largest rowid. When a table holds it, SQLite picks the
// rowid of the next row it inserts at random, from a generator seeded per
// connection from crypto/rand that the library gives no way to seed: the
// replicas would disagree. So no table may hold it: a statement that
// leaves it in a table it wrote fails.
const maxRowid = math.MaxInt64

// checkRowids fails the statement if a table it inserted into or updated
// now holds maxRowid.
func (s *session) checkRowids() error {
	c := s.c
	for table := range c.written {
		q, ok := c.rowidQuery[table]
		if !ok {
			q = "SELECT max(_rowid_) = 9223372036854775807 FROM main." + sqlite3.QuoteIdentifier(table)
			if c.rowidQuery == nil {
				c.rowidQuery = make(map[string]string)
			}
			c.rowidQuery[table] = q
		}
		v, _, err := c.queryInt(q)
		if err != nil {
			if errors.Is(err, sqlite3.ERROR) && c.file.ioErr == nil {
				// A view, or a table without rowid: nothing to check.
				continue
			}
			return c.translate(err)
		}
		if v == 1 {
			return sqlError(objectstore.ErrSQL, "rowid %d is not allowed in %s: SQLite would choose the next rowid at random, which replicas cannot agree on", int64(maxRowid), table)
		}
	}
	return nil
}

// stmtError translates an error of a user statement: an authorizer denial
// is reported with the reason the authorizer recorded.
func (s *session) stmtError(err error) error {
	if s.c.denied != nil && errors.Is(err, sqlite3.AUTH) {
		return s.c.denied
	}
	return s.c.translate(err)
}

func bind(st *sqlite3.Stmt, i int, v objectstore.SQLValue) error {
	switch v.Type {
	case objectstore.SQLNull:
		return st.BindNull(i)
	case objectstore.SQLInteger:
		return st.BindInt64(i, v.Int)
	case objectstore.SQLFloat:
		return st.BindFloat(i, v.Float)
	case objectstore.SQLText:
		return st.BindText(i, v.Text)
	case objectstore.SQLBlob:
		if len(v.Blob) == 0 {
			return st.BindZeroBlob(i, 0) // an empty blob, not NULL
		}
		return st.BindBlob(i, v.Blob)
	}
	return sqlError(objectstore.ErrSQL, "parameter %d has unknown type %d", i, v.Type)
}

func column(st *sqlite3.Stmt, i int) objectstore.SQLValue {
	switch st.ColumnType(i) {
	case sqlite3.INTEGER:
		return objectstore.SQLValue{Type: objectstore.SQLInteger, Int: st.ColumnInt64(i)}
	case sqlite3.FLOAT:
		return objectstore.SQLValue{Type: objectstore.SQLFloat, Float: st.ColumnFloat(i)}
	case sqlite3.TEXT:
		return objectstore.SQLValue{Type: objectstore.SQLText, Text: st.ColumnText(i)}
	case sqlite3.BLOB:
		return objectstore.SQLValue{Type: objectstore.SQLBlob, Blob: append([]byte{}, st.ColumnRawBlob(i)...)}
	}
	return objectstore.SQLValue{Type: objectstore.SQLNull}
}

// onlyTrivia reports whether sql holds no statement: only white space,
// comments and semicolons.
func onlyTrivia(sql string) bool {
	for {
		sql = strings.TrimLeft(sql, " \t\n\r\f\v;")
		switch {
		case sql == "":
			return true
		case strings.HasPrefix(sql, "--"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return true
			}
			sql = sql[i+1:]
		case strings.HasPrefix(sql, "/*"):
			i := strings.Index(sql[2:], "*/")
			if i < 0 {
				return true // SQLite reads an unterminated comment to the end
			}
			sql = sql[i+4:]
		default:
			return false
		}
	}
}

// Commit commits the transaction; its pages are in the batch. The session
// ends whether or not Commit succeeds (a failed Commit rolls back).
func (s *session) Commit() (err error) {
	if s.done {
		return errors.New("sqlstore: Commit after the session ended")
	}
	defer func() {
		if v := recover(); v != nil {
			err = s.recovered(v)
		}
		if err != nil {
			s.rollback()
		}
		s.finish()
	}()
	if s.failed != nil {
		return sqlError(objectstore.ErrSQL, "the transaction cannot commit: a statement failed: %v", s.failed)
	}
	c := s.c
	if c.db.GetAutocommit() {
		// SQLite rolled the transaction back itself (it does after some
		// errors): there is nothing left to commit.
		return sqlError(objectstore.ErrSQL, "the transaction was rolled back")
	}
	if _, _, err := c.queryInt("COMMIT"); err != nil {
		// A deferred foreign key violation fails here.
		return c.translate(err)
	}
	return s.measure()
}

// Rollback abandons the transaction. It is safe after a failed Exec and
// after the session ended.
func (s *session) Rollback() {
	if s.done {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v)
		}
		s.finish()
	}()
	s.rollback()
	if !s.c.broken {
		s.measure()
	}
}

// rollback rolls the transaction back, if SQLite has not already. The
// memory journal restores the pages the transaction changed, in the batch.
func (s *session) rollback() {
	c := s.c
	if c.db == nil || c.db.GetAutocommit() {
		return
	}
	if _, _, err := c.queryInt("ROLLBACK"); err != nil {
		s.store.log.Warn("sqlstore: rollback failed; dropping the connection",
			"namespace", c.obj.Namespace, "object", c.obj.Name, "err", err)
		c.broken = true
	}
}

// measure records the database's size at the end of the session: outside
// a transaction, the file holds the whole database.
func (s *session) measure() error {
	size, err := s.c.file.fileSize()
	if err != nil {
		return s.c.translate(err)
	}
	s.size, s.sizeOK = size, true
	return nil
}

// Size returns the database's size in bytes: now, or when the session
// ended.
func (s *session) Size() (size int64, err error) {
	if s.done {
		if !s.sizeOK {
			return 0, errors.New("sqlstore: the database's size is unknown: the session failed")
		}
		return s.size, nil
	}
	defer func() {
		if v := recover(); v != nil {
			err = s.recovered(v)
		}
	}()
	// Inside the transaction, pages may still be in the cache only.
	c := s.c
	pages, _, err := c.queryInt("PRAGMA page_count")
	if err != nil {
		return 0, c.translate(err)
	}
	return pages * pageSize, nil
}

// finish detaches the connection from the session's reader and batch and
// gives it back to the store.
func (s *session) finish() {
	if s.done {
		return
	}
	s.done = true
	c := s.c
	if c.db != nil {
		c.db.SetInterrupt(context.Background())
		if !c.broken && !c.db.GetAutocommit() {
			// Never hand on a connection inside a transaction.
			c.broken = true
		}
	}
	if c.file != nil {
		c.file.end()
	}
	s.cancel()
	s.store.release(c)
}
