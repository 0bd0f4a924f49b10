// Package sqlstore runs the SQL of Cairn's objects: every object has its own
// SQLite database (github.com/ncruces/go-sqlite3, pure Go, so the binary
// stays static), and every database lives in the node's one Pebble database,
// next to the object's KV records. It implements objectstore.SQL.
//
// # On-disk layout
//
// SQLite sees each object's database as one file, through a VFS ("cairn")
// whose file is a set of Pebble keys under the object's SQL prefix
// (objectstore.Object.SQLKey, inside Object.SQLSpan):
//
//	SQLKey("p" pageNo:u32be)   the 4096 bytes of page pageNo (from 1)
//	SQLKey("s")                the file's size in bytes, u64be
//
// An empty database (never written, or after deleteAll) has no keys at all.
// The page size is 4096, fixed before the first write, so that one SQLite
// page is one Pebble key: a page write is one Set, never a read-modify-write,
// and a page read is one Get. Big-endian page numbers keep an object's pages
// in file order, so a snapshot or a range delete of the object moves them
// as one contiguous run.
//
// # Why a VFS over Pebble
//
// Pages in Pebble means one storage engine, one atomic batch per Raft entry
// and one snapshot per shard: a transaction's SQL pages land in the same
// batch as its KV writes and its applied index (DESIGN.md, rule 3), deleteAll
// is a range delete, a shard's snapshot carries its databases, and a crash
// never leaves a database half applied. The file reads through the session's
// pebble.Reader (the entry's indexed batch during apply, so it sees the
// entry's own earlier writes) and writes only into the session's batch. Each
// database runs with journal_mode=MEMORY (the rollback journal, including the
// statement journal that undoes a failed statement, stays in memory: no other
// file is ever opened) and temp_store=MEMORY; Sync and the locks are no-ops,
// because durability is Raft's plus Pebble's and the store serializes the
// sessions of one connection.
//
// # Determinism
//
// Statements are replicated, not pages: every replica runs the same
// statements on the same pages and must compute the same result and the same
// pages. The functions that read a clock or randomness are overridden per
// connection from the SQLEnv the proposer fixed (see funcs.go), a write is
// bounded by a budget of VM steps rather than by wall time (budget.go), and
// the authorizer refuses what would depend on one node's connection: pragmas
// outside an allow-list, ATTACH, temporary objects, ANALYZE (rules.go).
//
// DESIGN.md, next to this file, explains the choices and the measurements
// behind them.
package sqlstore
