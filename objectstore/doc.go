// Package objectstore owns how objects are stored in Pebble: the key layout
// (shard / namespace / object / kind / key), the value record, per-object
// key/value storage with versions, Durable Objects list semantics, the
// evaluation of a transaction against a Pebble reader and batch, and the
// object and namespace directory.
//
// It knows nothing of Raft or HTTP. The state machine (package fsm) hands it a
// Pebble batch for each committed entry; the read path hands it a Pebble
// reader. Everything it writes for a shard lies inside ShardSpan(shard), which
// is what a snapshot streams and a restore replaces.
package objectstore
