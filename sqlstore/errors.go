package sqlstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cairndb/cairn/objectstore"
	"github.com/ncruces/go-sqlite3"
)

var (
	// ErrWriteInRead means a statement of a read session (Begin with a nil
	// batch) would write. It is objectstore.ErrSQLWrites: the caller runs
	// the request again as a replicated write.
	ErrWriteInRead = fmt.Errorf("sqlstore: the statement writes, and this is a read: %w", objectstore.ErrSQLWrites)
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("sqlstore: store closed")
)

// sqlError returns the *objectstore.Error of sentinel with detail.
func sqlError(sentinel error, format string, args ...any) *objectstore.Error {
	return &objectstore.Error{Err: sentinel, Detail: fmt.Sprintf(format, args...), Condition: -1}
}

// translate turns an error of the SQLite library into what the package
// returns: an *objectstore.Error for anything the statement caused (its
// sentinel chosen by SQLite's result code), and a plain error for a storage
// failure (an I/O error from Pebble through the VFS, a corrupt database, a
// misuse), which the state machine treats as fatal.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var oe *objectstore.Error
	if errors.As(err, &oe) {
		return err
	}
	var code sqlite3.ErrorCode
	if !errors.As(err, &code) {
		return fmt.Errorf("sqlstore: %w", err)
	}
	detail := message(err)
	switch code {
	case sqlite3.INTERRUPT:
		return sqlError(objectstore.ErrSQLTimeout, "the statement ran past its limit and was interrupted")
	case sqlite3.FULL:
		return sqlError(objectstore.ErrSQLFull, "%s", detail)
	case sqlite3.TOOBIG:
		return sqlError(objectstore.ErrTooLarge, "%s", detail)
	case sqlite3.NOMEM:
		return sqlError(objectstore.ErrTooLarge, "the statement needs more memory than an object's database may use")
	case sqlite3.READONLY:
		return sqlError(ErrWriteInRead, "%s", detail)
	case sqlite3.IOERR, sqlite3.CANTOPEN, sqlite3.NOTFOUND, sqlite3.PROTOCOL,
		sqlite3.MISUSE, sqlite3.INTERNAL, sqlite3.NOLFS, sqlite3.BUSY:
		// BUSY cannot happen (the locks are no-ops): if it does, it is a bug.
		return fmt.Errorf("sqlstore: storage failure: %w", err)
	case sqlite3.CORRUPT, sqlite3.NOTADB:
		return &objectstore.Error{Err: objectstore.ErrCorrupt, Detail: detail, Condition: -1}
	}
	// ERROR, CONSTRAINT, MISMATCH, RANGE, SCHEMA, ABORT, AUTH (outside the
	// authorizer's own denials), LOCKED, PERM: the statement's fault.
	return sqlError(objectstore.ErrSQL, "%s", detail)
}

// message is SQLite's message for err without the library's prefix.
func message(err error) string {
	msg := err.Error()
	var x sqlite3.ExtendedErrorCode
	if errors.As(err, &x) {
		// "sqlite3: SQL logic error: no such table: t" → "no such table: t"
		if rest, ok := strings.CutPrefix(msg, x.Error()+": "); ok {
			return rest
		}
	}
	return strings.TrimPrefix(msg, "sqlite3: ")
}

// oomPanic reports whether a recovered panic value is the SQLite library's
// out-of-memory panic: it panics, rather than returning SQLITE_NOMEM, when a
// connection's memory is exhausted. Its text is the only way to tell.
func oomPanic(v any) bool {
	err, ok := v.(error)
	return ok && err.Error() == "sqlite3: out of memory"
}
