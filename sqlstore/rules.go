package sqlstore

import (
	"strings"

	"github.com/cairndb/cairn/objectstore"
	"github.com/ncruces/go-sqlite3"
)

// The rules of API.md, enforced by an authorizer that SQLite consults while
// it compiles each statement (and the statements of the triggers and views
// it expands). Internal statements of the store bypass it (conn.internal).

// pragmaRule is what a pragma may do.
type pragmaRule uint8

const (
	// pragmaRead may be read; its argument, if any, names what to read
	// (PRAGMA table_info(t), PRAGMA integrity_check(10)).
	pragmaRead pragmaRule = iota + 1
	// pragmaReadOnly may be read but not given an argument: setting it
	// would change per-connection or file-format state.
	pragmaReadOnly
	// pragmaReadWrite may be read and set. Both live in the replicated
	// database or in the transaction, so setting them is deterministic.
	pragmaReadWrite
)

// pragmas is the allow-list. foreign_keys is read-only because it is
// per-connection state: a replica that reopened its connection would see the
// default again. defer_foreign_keys resets at every commit, so it is per
// transaction and safe to set.
var pragmas = map[string]pragmaRule{
	"user_version":       pragmaReadWrite,
	"defer_foreign_keys": pragmaReadWrite,
	"table_list":         pragmaRead,
	"table_info":         pragmaRead,
	"table_xinfo":        pragmaRead,
	"index_list":         pragmaRead,
	"index_info":         pragmaRead,
	"index_xinfo":        pragmaRead,
	"foreign_key_list":   pragmaRead,
	"foreign_key_check":  pragmaRead,
	"integrity_check":    pragmaRead,
	"quick_check":        pragmaRead,
	"foreign_keys":       pragmaReadOnly,
	"page_count":         pragmaReadOnly,
	"page_size":          pragmaReadOnly,
	"freelist_count":     pragmaReadOnly,
}

// reservedPrefix starts the names Cairn keeps for itself.
const reservedPrefix = "_cairn"

func reserved(name string) bool {
	return len(name) >= len(reservedPrefix) && strings.EqualFold(name[:len(reservedPrefix)], reservedPrefix)
}

// schemaTable reports whether name is SQLite's schema table, which the
// statements SQLite generates for DDL insert into and update.
func schemaTable(name string) bool {
	switch strings.ToLower(name) {
	case "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema":
		return true
	}
	return false
}

const txHint = "a request already is one transaction: the statements of a /sql batch or a tx commit together, or none of them does"

// authorize is the connection's authorizer callback.
func (c *conn) authorize(action sqlite3.AuthorizerActionCode, name3, name4, schema, inner string) sqlite3.AuthorizerReturnCode {
	if c.internal {
		return sqlite3.AUTH_OK
	}
	deny := func(sentinel error, format string, args ...any) sqlite3.AuthorizerReturnCode {
		if c.denied == nil {
			c.denied = sqlError(sentinel, format, args...)
		}
		return sqlite3.AUTH_DENY
	}
	forbidden := func(format string, args ...any) sqlite3.AuthorizerReturnCode {
		return deny(objectstore.ErrSQLForbidden, format, args...)
	}
	reservedName := func(names ...string) bool {
		for _, n := range names {
			if reserved(n) {
				return true
			}
		}
		return false
	}
	const reservedMsg = "names starting with _cairn are reserved"

	switch action {
	case sqlite3.AUTH_CREATE_TABLE, sqlite3.AUTH_CREATE_INDEX, sqlite3.AUTH_CREATE_TRIGGER,
		sqlite3.AUTH_CREATE_VIEW, sqlite3.AUTH_CREATE_VTABLE, sqlite3.AUTH_INSERT,
		sqlite3.AUTH_UPDATE, sqlite3.AUTH_DELETE, sqlite3.AUTH_ALTER_TABLE:
		// CREATE TABLE temp.x is not reported as a temporary table.
		if strings.EqualFold(schema, "temp") && !schemaTable(name3) {
			return forbidden("temporary tables, indexes, triggers and views are not allowed")
		}
	}

	switch action {
	case sqlite3.AUTH_ATTACH, sqlite3.AUTH_DETACH:
		return forbidden("ATTACH and DETACH are not allowed: an object has exactly one database")

	case sqlite3.AUTH_TRANSACTION:
		return deny(objectstore.ErrSQLTransactionControl, "%s is not allowed: %s", name3, txHint)
	case sqlite3.AUTH_SAVEPOINT:
		op := "SAVEPOINT"
		if name3 != "BEGIN" {
			op = name3 // RELEASE, ROLLBACK (TO)
		}
		return deny(objectstore.ErrSQLTransactionControl, "%s is not allowed: %s", op, txHint)

	case sqlite3.AUTH_PRAGMA:
		name := strings.ToLower(name3)
		rule, ok := pragmas[name]
		switch {
		case !ok:
			return forbidden("PRAGMA %s is not allowed", name)
		case rule == pragmaReadOnly && name4 != "":
			return forbidden("PRAGMA %s is read-only", name)
		case rule == pragmaReadWrite && name4 != "" && schema != "" && !strings.EqualFold(schema, "main"):
			return forbidden("PRAGMA %s.%s cannot be set: only the main database is replicated", schema, name)
		}

	case sqlite3.AUTH_CREATE_TEMP_TABLE, sqlite3.AUTH_CREATE_TEMP_INDEX,
		sqlite3.AUTH_CREATE_TEMP_TRIGGER, sqlite3.AUTH_CREATE_TEMP_VIEW:
		// A temporary object lives in one node's connection, not in the
		// replicated database: replicas would disagree about it.
		return forbidden("temporary tables, indexes, triggers and views are not allowed")

	case sqlite3.AUTH_ANALYZE:
		// Statistics steer the query planner, and the planner decides the
		// order of unordered results and how many VM steps a statement
		// takes: a connection must never plan with statistics other than
		// the stored ones, which a discarded entry would make possible.
		return forbidden("ANALYZE is not allowed")

	case sqlite3.AUTH_FUNCTION:
		if nondeterministic[strings.ToLower(name4)] {
			return forbidden("%s() is not allowed: it would give each replica a different result", name4)
		}

	case sqlite3.AUTH_CREATE_TABLE, sqlite3.AUTH_CREATE_VIEW, sqlite3.AUTH_DROP_TABLE,
		sqlite3.AUTH_DROP_VIEW, sqlite3.AUTH_REINDEX, sqlite3.AUTH_DROP_TEMP_TABLE,
		sqlite3.AUTH_DROP_TEMP_VIEW:
		if reservedName(name3) {
			return forbidden(reservedMsg)
		}
	case sqlite3.AUTH_CREATE_INDEX, sqlite3.AUTH_CREATE_TRIGGER, sqlite3.AUTH_DROP_INDEX,
		sqlite3.AUTH_DROP_TRIGGER, sqlite3.AUTH_CREATE_VTABLE, sqlite3.AUTH_DROP_VTABLE,
		sqlite3.AUTH_DROP_TEMP_INDEX, sqlite3.AUTH_DROP_TEMP_TRIGGER:
		if reservedName(name3, name4) {
			return forbidden(reservedMsg)
		}
	case sqlite3.AUTH_ALTER_TABLE:
		if reservedName(name4) {
			return forbidden(reservedMsg)
		}
		// ALTER TABLE … RENAME TO shows the authorizer only the old name:
		// the new one is checked once the statement has run.
		c.sawAlter = true
	case sqlite3.AUTH_READ:
		if reservedName(name3) {
			return forbidden(reservedMsg)
		}
	case sqlite3.AUTH_INSERT, sqlite3.AUTH_UPDATE, sqlite3.AUTH_DELETE:
		if reservedName(name3) {
			return forbidden(reservedMsg)
		}
		if schemaTable(name3) {
			break
		}
		if inner == "" {
			c.topDML = action
		}
		if action == sqlite3.AUTH_INSERT || action == sqlite3.AUTH_UPDATE {
			// Directly or through a trigger: see checkRowids.
			if c.written == nil {
				c.written = make(map[string]bool)
			}
			c.written[name3] = true
		}
	}
	return sqlite3.AUTH_OK
}

// nondeterministic lists functions of the SQLite library that would give
// replicas different results and that the store does not override.
// (uuid() is registered by the library only when built with Go 1.27+.)
var nondeterministic = map[string]bool{
	"uuid": true,
}
