package objectstore

import (
	"errors"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// SQL values, statements and results, as a tx's sql op and the /sql endpoint
// carry them. The SQL engine itself lives in package sqlstore, which
// implements the SQL interface below; objectstore only routes sql ops to it,
// so that it stays free of SQLite.

// SQLType is the storage class of a SQL value.
type SQLType uint8

// The SQLite storage classes.
const (
	SQLNull    SQLType = 0
	SQLInteger SQLType = 1
	SQLFloat   SQLType = 2
	SQLText    SQLType = 3
	SQLBlob    SQLType = 4
)

// SQLValue is one SQL value: a bound parameter or a result cell.
type SQLValue struct {
	Type  SQLType
	Int   int64   // SQLInteger
	Float float64 // SQLFloat
	Text  string  // SQLText
	Blob  []byte  // SQLBlob
}

// SQLStatement is one statement (or several separated by semicolons, in
// which case Params may only be given when there is exactly one) and its
// positional parameters.
type SQLStatement struct {
	SQL    string
	Params []SQLValue
}

// SQLResult is the result set of one statement.
type SQLResult struct {
	Columns     []string
	Rows        [][]SQLValue
	RowsRead    int64
	RowsWritten int64
}

// SQLEnv is what the proposer fixed for the SQL of one command: every
// replica runs with the same values, so every replica computes the same
// result and the same pages (DESIGN.md, rule 2).
type SQLEnv struct {
	// NowMillis is the time that 'now', CURRENT_TIMESTAMP and the other
	// time functions see.
	NowMillis int64
	// Seed seeds random() and randomblob().
	Seed uint64
	// MaxBytes bounds the size of the object's database; a write that would
	// grow it further fails with ErrSQLFull.
	MaxBytes int64
}

// SQL runs the SQL of one object. Package sqlstore implements it.
type SQL interface {
	// Begin starts a transaction on obj's database. Reads go to r; writes,
	// if w is not nil, go to w (for a write, r and w are the same indexed
	// batch). The session holds the object until Commit or Rollback.
	Begin(obj Object, r pebble.Reader, w *pebble.Batch, env SQLEnv) (SQLSession, error)
	// Forget drops what is cached about obj's database (an open connection
	// and its page cache), after its pages changed other than through a
	// session: deleteAll.
	Forget(obj Object)
	// ForgetShard drops what is cached about every database of shard, after
	// a snapshot replaced the shard's state.
	ForgetShard(shard uint32)
}

// SQLSession is one transaction on one object's database.
type SQLSession interface {
	// Exec runs one statement and returns its result set.
	Exec(stmt SQLStatement) (*SQLResult, error)
	// Commit commits the transaction: its pages are in w.
	Commit() error
	// Rollback abandons the transaction. It is safe after a failed Exec.
	Rollback()
	// Size returns the database's size in bytes.
	Size() (int64, error)
}

// Errors of SQL execution. Each is wrapped in an *Error whose Detail is
// SQLite's message.
var (
	// ErrSQL is an error SQLite reported: a syntax error, a constraint, a
	// missing table.
	ErrSQL = errors.New("objectstore: sql error")
	// ErrSQLForbidden means a statement uses something Cairn does not allow:
	// ATTACH, a pragma outside the allowed list, a _cairn name.
	ErrSQLForbidden = errors.New("objectstore: sql statement not allowed")
	// ErrSQLTransactionControl means a statement tried BEGIN, COMMIT,
	// ROLLBACK or SAVEPOINT: a request already is one transaction.
	ErrSQLTransactionControl = errors.New("objectstore: sql transaction control is not allowed")
	// ErrSQLTimeout means a statement ran past its limit and was interrupted.
	ErrSQLTimeout = errors.New("objectstore: sql statement interrupted: it ran too long")
	// ErrSQLFull means the write would grow the object's database past its
	// size limit.
	ErrSQLFull = errors.New("objectstore: the object's database is full")
	// ErrSQLWrites is returned by a read session (no batch) for a statement
	// that would write: the caller runs the request as a write instead.
	ErrSQLWrites = errors.New("objectstore: the sql statement writes")
	// ErrSQLBusy is returned by a read session that could not have the
	// object's database in time (a long write holds it): nothing ran.
	ErrSQLBusy = errors.New("objectstore: the object's database is busy")
)

// FirstKeyword returns the first keyword of a statement, upper-cased,
// skipping white space and comments.
func FirstKeyword(sql string) string {
	for {
		sql = strings.TrimLeft(sql, " \t\n\r\f\v")
		switch {
		case strings.HasPrefix(sql, "--"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return ""
			}
			sql = sql[i+1:]
			continue
		case strings.HasPrefix(sql, "/*"):
			i := strings.Index(sql[2:], "*/")
			if i < 0 {
				return ""
			}
			sql = sql[i+4:]
			continue
		}
		break
	}
	end := 0
	for end < len(sql) {
		b := sql[end]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_') {
			break
		}
		end++
	}
	return strings.ToUpper(sql[:end])
}

// writingKeywords begin only statements that write.
var writingKeywords = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "REPLACE": true,
	"CREATE": true, "DROP": true, "ALTER": true,
}

// SQLSurelyWrites reports whether an sql op of tx begins with a keyword
// that only a writing statement begins with, so that running the tx as a
// read first would be wasted work. False means only "not sure": running it
// tells (ErrSQLWrites).
func (tx *Tx) SQLSurelyWrites() bool {
	for i := range tx.Ops {
		if op := &tx.Ops[i]; op.Kind == OpSQL && writingKeywords[FirstKeyword(op.SQL.SQL)] {
			return true
		}
	}
	return false
}
