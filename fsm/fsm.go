// Package fsm is Cairn's Raft state machine: it decodes committed commands,
// applies each deterministically as one Pebble batch that also records the
// shard's applied index, and takes and restores snapshots of one shard's key
// range. The storage semantics it applies live in package objectstore.
//
// The rules it keeps (see DESIGN.md):
//   - apply reads no clock and draws no randomness: time and seeds travel in
//     the command (Header);
//   - each entry is one Pebble batch, written without fsync (the Raft log is
//     the durable record) and holding the applied index, so state on disk is
//     never half an entry and a restart skips what it already applied;
//   - business errors (a failed precondition) are the apply's response, never
//     a skipped entry; an entry that cannot be decoded, or a storage failure,
//     panics, because continuing would let replicas diverge.
package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

var (
	// ErrBadCommand means a command payload is malformed.
	ErrBadCommand = errors.New("fsm: malformed command")
	// ErrUnknownType means a command's format version or type is unknown to
	// this release.
	ErrUnknownType = errors.New("fsm: unknown command type")
	// ErrBadSnapshot means a snapshot stream is malformed or belongs to
	// another shard.
	ErrBadSnapshot = errors.New("fsm: malformed snapshot")
	// ErrRestoring means the shard's state is being replaced by a snapshot
	// (or a restore was interrupted) and cannot be read.
	ErrRestoring = errors.New("fsm: shard is being restored from a snapshot")
)

// Response is what Apply returns for a command, delivered to the proposer
// through raft.ApplyFuture.Response.
type Response struct {
	// Tx is the result of a TypeTx command that succeeded.
	Tx *objectstore.TxResult
	// Err is a business error (an *objectstore.Error): the command was
	// committed but changed nothing.
	Err error
	// Replayed is true when the command carried an idempotency key already
	// used: the response is the first request's and nothing was applied.
	Replayed bool
}

// IdempotencyTTL is how long an idempotency key is remembered.
const IdempotencyTTL = 24 * 60 * 60 * 1000 // milliseconds

// maxExpirePerEntry bounds the records one TypeExpireIdempotency deletes,
// so that no entry makes a huge batch.
const maxExpirePerEntry = 1000

// FSM is the state machine of one shard. Apply, Snapshot and Restore are
// called by Raft from one goroutine; Applied and Ready may be called from any.
type FSM struct {
	shard   uint32
	db      *pebble.DB
	log     *slog.Logger
	applied atomic.Uint64 // the last index applied (durable or not)
	// ready is false while a restore is under way or was interrupted.
	ready atomic.Bool
	// sql runs the sql ops of transactions; nil until UseSQL.
	sql objectstore.SQL
	// onAlarms, if set, is called after an entry that may have changed the
	// shard's alarms is committed.
	onAlarms func(shard uint32)
	// alarmMoves counts the committed entries (and restores) that may have
	// added an entry to the shard's due index or moved one; see AlarmMoves.
	alarmMoves atomic.Uint64
	// persisted and restored count the bytes of snapshots this replica
	// wrote and installed: what moving replicas costs.
	persisted, restored atomic.Uint64
}

// SnapshotBytes returns the bytes of snapshots this replica persisted and
// restored since it was opened.
func (f *FSM) SnapshotBytes() (persisted, restored uint64) {
	return f.persisted.Load(), f.restored.Load()
}

// OnAlarmChange registers fn to be called (on the applying goroutine: it
// must not block) after every entry that may have changed the shard's
// alarms, and after a restore. It is called once, before Raft starts.
func (f *FSM) OnAlarmChange(fn func(shard uint32)) { f.onAlarms = fn }

// AlarmMoves counts the committed entries that may have added an entry to
// the shard's due index or moved one (set or deleted an alarm, recorded a
// retry, changed a namespace's configuration), and restores. Entries that
// only clear delivered alarms do not count. It is incremented after the
// entry is committed and before the OnAlarmChange hook runs, so a leader
// that reads it before reading the due index, and finds it unchanged later,
// knows the index gained nothing it did not add itself meanwhile; it can
// then keep reading where it stopped instead of from the head.
func (f *FSM) AlarmMoves() uint64 { return f.alarmMoves.Load() }

// movesAlarms reports whether cmd, which touches alarms, may add an entry to
// the due index or move one: anything but an alarm update that only clears.
func movesAlarms(cmd *Command) bool {
	if cmd.Type != TypeAlarmUpdate {
		return true
	}
	for i := range cmd.AlarmUpdates {
		if !cmd.AlarmUpdates[i].Clear {
			return true
		}
	}
	return false
}

// touchesAlarms reports whether cmd may change alarms.
func touchesAlarms(cmd *Command) bool {
	switch cmd.Type {
	case TypeAlarmUpdate, TypeSetNamespace:
		// A namespace's webhook may have appeared: alarms that were waiting
		// for one can go now.
		return true
	case TypeTx:
		for _, op := range cmd.Tx.Ops {
			if op.Kind == objectstore.OpSetAlarm || op.Kind == objectstore.OpDeleteAlarm || (op.Kind == objectstore.OpDeleteAll && op.Alarm) {
				return true
			}
		}
	}
	return false
}

// notifyAlarms runs the OnAlarmChange hook after a committed change of the
// shard's alarms; moved says whether the change may have added or moved a
// due-index entry (see AlarmMoves).
func (f *FSM) notifyAlarms(moved bool) {
	if moved {
		f.alarmMoves.Add(1)
	}
	if f.onAlarms != nil {
		f.onAlarms(f.shard)
	}
}

// UseSQL gives the state machine the SQL engine that runs sql ops. It is
// called once, before Raft starts applying.
func (f *FSM) UseSQL(s objectstore.SQL) { f.sql = s }

var (
	_ raft.BatchingFSM = (*FSM)(nil)
	_ raft.FSMSnapshot = (*snapshot)(nil)
)

// Open returns the state machine of shard over db, reading the applied index
// it recorded there.
func Open(db *pebble.DB, shard uint32, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{shard: shard, db: db, log: logger.With("shard", shard)}
	marker, err := objectstore.RestoreMarker(db, shard)
	if err != nil {
		return nil, fmt.Errorf("fsm: shard %d: read restore marker: %w", shard, err)
	}
	// Under the restore marker the shard holds part of a snapshot stream,
	// which may be corrupt: open it anyway (not Ready), so that Raft can
	// restore it again (NeedsRestore).
	idx, err := objectstore.AppliedIndex(db, shard)
	if err != nil && !(marker && errors.Is(err, objectstore.ErrCorrupt)) {
		return nil, fmt.Errorf("fsm: shard %d: read applied index: %w", shard, err)
	}
	f.applied.Store(idx)
	f.ready.Store(!marker)
	return f, nil
}

// Shard returns the shard this state machine applies.
func (f *FSM) Shard() uint32 { return f.shard }

// Applied returns the index of the last entry applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Ready reports whether the shard's state may be read: false while a
// snapshot is being restored, or after a restore that was interrupted.
func (f *FSM) Ready() bool { return f.ready.Load() }

// Apply applies one committed entry. See the package doc for its rules.
func (f *FSM) Apply(l *raft.Log) any {
	cmd, skip := f.decode(l)
	switch {
	case skip:
		return nil
	case cmd == nil:
		f.commit(nil, l.Index) // only the index of an ignored entry is recorded
		return nil
	}
	return f.applyOne(cmd, l.Index)
}

// decode decodes l. skip is true for an entry applied before a restart
// (the Pebble batch that applied it also recorded its index). cmd is nil,
// with skip false, for an ignorable command of a type this release does not
// know: nothing is applied, but the caller records its index, in order with
// the entries before it.
func (f *FSM) decode(l *raft.Log) (cmd *Command, skip bool) {
	if l.Index <= f.applied.Load() {
		return nil, true
	}
	cmd, err := Decode(l.Data)
	if errors.Is(err, ErrUnknownType) && ignorable(l.Data) {
		f.log.Warn("skipping a command of a type this release does not know", "index", l.Index, "type", l.Data[1])
		return nil, false
	}
	if err != nil {
		panic(fmt.Sprintf("fsm: shard %d: committed entry %d cannot be decoded: %v", f.shard, l.Index, err))
	}
	return cmd, false
}

// applyOne applies cmd as one Pebble batch of its own.
func (f *FSM) applyOne(cmd *Command, index uint64) *Response {
	var b *pebble.Batch
	var r pebble.Reader
	if onlyPuts(cmd) {
		// Writes only, after conditions read before any of them: the
		// committed state is the right view, and a plain batch is cheaper
		// than an indexed one. (Entries are applied one after another, so
		// the database holds every earlier entry.)
		b, r = f.db.NewBatch(), f.db
	} else {
		b = f.db.NewIndexedBatch()
		r = b
	}
	var resp *Response
	if cmd.Type == TypeTx && cmd.Header.IdempotencyKey != "" {
		resp = f.applyIdempotent(b, cmd, index)
	} else if resp = f.apply(r, b, cmd, index); resp.Err != nil {
		// Nothing of a failed command is applied; only its index is recorded.
		b.Reset()
	}
	f.commit(b, index)
	if resp.Err == nil && touchesAlarms(cmd) {
		f.notifyAlarms(movesAlarms(cmd))
	}
	return resp
}

// ApplyBatch applies the entries Raft committed together. Consecutive
// plain KV transactions on distinct objects share one Pebble batch, and one
// commit, recording the index of the last of them: each entry is applied
// whole or not at all, as with Apply, but a group of small writes costs one
// commit instead of one each. An entry on an object already in the group,
// and any other kind of entry, first commits the group (so that what it
// reads is in the database), then is applied as with Apply.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var g *pebble.Batch
	var last uint64
	touched := map[string]bool{}
	flush := func() {
		if g != nil {
			f.commit(g, last)
			g = nil
			clear(touched)
		}
	}
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue // configuration changes do not reach the state machine
		}
		cmd, skip := f.decode(l)
		if skip {
			continue
		}
		if cmd == nil {
			// An ignored entry: its index is recorded with the group, if
			// there is one, so that it never runs ahead of the entries
			// before it.
			if g == nil {
				f.commit(nil, l.Index)
			} else {
				last = l.Index
			}
			continue
		}
		if !groupable(cmd) {
			flush()
			out[i] = f.applyOne(cmd, l.Index)
			continue
		}
		key := cmd.Namespace + "\x00" + cmd.Object
		if touched[key] {
			flush()
		}
		if g == nil {
			g = f.db.NewBatch()
		}
		out[i] = f.applyGrouped(g, cmd, l.Index)
		touched[key] = true
		last = l.Index
	}
	flush()
	return out
}

// groupable reports whether cmd may share a batch with other entries: a
// KV transaction without an idempotency key, touching only its object's KV
// records (no SQL, no alarm and its shard-wide indexes).
func groupable(cmd *Command) bool {
	if cmd.Type != TypeTx || cmd.Header.IdempotencyKey != "" {
		return false
	}
	for i := range cmd.Tx.Ops {
		switch op := &cmd.Tx.Ops[i]; op.Kind {
		case objectstore.OpGet, objectstore.OpPut, objectstore.OpDelete, objectstore.OpIncr, objectstore.OpList:
		case objectstore.OpDeleteAll:
			if op.Alarm {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// applyGrouped applies a groupable cmd into the group batch g. Its object
// is not in g yet, so the database holds everything about it an earlier
// entry wrote.
func (f *FSM) applyGrouped(g *pebble.Batch, cmd *Command, index uint64) *Response {
	obj := objectstore.Object{Shard: f.shard, Namespace: cmd.Namespace, Name: cmd.Object}
	if onlyPuts(cmd) {
		// A put-only tx fails (if at all) before it writes anything.
		res, err := objectstore.Exec(f.db, g, obj, cmd.Tx, index, f.execEnv(cmd, index))
		return f.response(res, err, index)
	}
	b := f.db.NewIndexedBatch()
	defer b.Close()
	res, err := objectstore.Exec(b, b, obj, cmd.Tx, index, f.execEnv(cmd, index))
	resp := f.response(res, err, index)
	if resp.Err == nil {
		if err := g.Apply(b, nil); err != nil {
			f.fatal(index, err)
		}
	}
	return resp
}

// applyIdempotent applies a keyed tx: a key seen before (and not expired at
// the command's time) returns the recorded answer and applies nothing; a new
// key applies the tx and records its answer, success or business error.
func (f *FSM) applyIdempotent(b *pebble.Batch, cmd *Command, index uint64) *Response {
	obj := objectstore.Object{Shard: f.shard, Namespace: cmd.Namespace, Name: cmd.Object}
	key := cmd.Header.IdempotencyKey
	hash := sha256.Sum256(appendTx(nil, cmd.Tx))
	rec, found, err := objectstore.GetIdempotency(b, obj, key)
	if err != nil {
		f.fatal(index, err)
	}
	if found && rec.ExpiresMillis > cmd.Header.NowMillis {
		if !bytes.Equal(rec.RequestHash, hash[:]) {
			return &Response{Err: &objectstore.Error{Err: objectstore.ErrIdempotencyMismatch, Condition: -1,
				Detail: "Idempotency-Key " + strconv.Quote(key) + " was used for a different request on this object"}}
		}
		resp, err := decodeResponse(rec.Response)
		if err != nil {
			f.fatal(index, err)
		}
		resp.Replayed = true
		return resp
	}
	resp := f.apply(b, b, cmd, index)
	if resp.Err != nil {
		b.Reset()
	}
	enc, err := encodeResponse(resp)
	if err != nil {
		f.fatal(index, err)
	}
	err = objectstore.PutIdempotency(b, b, obj, key, objectstore.IdempotencyRecord{
		ExpiresMillis: cmd.Header.NowMillis + IdempotencyTTL,
		RequestHash:   hash[:],
		Response:      enc,
	})
	if err != nil {
		f.fatal(index, err)
	}
	return resp
}

// apply runs cmd against b and returns its response.
func (f *FSM) apply(r pebble.Reader, b *pebble.Batch, cmd *Command, index uint64) *Response {
	switch cmd.Type {
	case TypeTx:
		obj := objectstore.Object{Shard: f.shard, Namespace: cmd.Namespace, Name: cmd.Object}
		res, err := objectstore.Exec(r, b, obj, cmd.Tx, index, f.execEnv(cmd, index))
		return f.response(res, err, index)
	case TypeSetNamespace:
		c := *cmd.NamespaceConfig
		if c.Version == 0 {
			c.Version = index
		}
		if _, err := objectstore.PutNamespaceConfig(b, b, f.shard, cmd.Namespace, c); err != nil {
			f.fatal(index, err)
		}
		return &Response{Tx: &objectstore.TxResult{Version: c.Version}}
	case TypeAlarmUpdate:
		if _, err := objectstore.ApplyAlarmUpdates(b, b, f.shard, cmd.AlarmUpdates); err != nil {
			f.fatal(index, err)
		}
		return &Response{}
	case TypeExpireIdempotency:
		if _, err := objectstore.ExpireIdempotency(b, b, f.shard, cmd.Header.NowMillis, maxExpirePerEntry); err != nil {
			f.fatal(index, err)
		}
		return &Response{}
	}
	panic(fmt.Sprintf("fsm: shard %d: entry %d: no apply for %v", f.shard, index, cmd.Type))
}

// onlyPuts reports whether cmd is a tx, without an idempotency key, whose
// ops are all puts: its reads (the conditions) all happen before its writes.
func onlyPuts(cmd *Command) bool {
	if cmd.Type != TypeTx || cmd.Header.IdempotencyKey != "" {
		return false
	}
	for i := range cmd.Tx.Ops {
		if cmd.Tx.Ops[i].Kind != objectstore.OpPut {
			return false
		}
	}
	return true
}

// execEnv fixes what SQL sees for cmd: the proposer's clock, a seed mixed
// from the proposer's and the log position, and the size limit.
func (f *FSM) execEnv(cmd *Command, index uint64) objectstore.ExecEnv {
	return objectstore.ExecEnv{
		SQL: f.sql,
		SQLEnv: objectstore.SQLEnv{
			NowMillis: cmd.Header.NowMillis,
			Seed:      cmd.Header.Seed ^ (index * 0x9E3779B97F4A7C15),
			MaxBytes:  cmd.Header.MaxObjectBytes,
		},
	}
}

// response turns the outcome of an objectstore call into a Response. A
// business error is the client's; any other error is a storage failure that
// stops the node.
func (f *FSM) response(res *objectstore.TxResult, err error, index uint64) *Response {
	var oe *objectstore.Error
	switch {
	case err == nil:
		return &Response{Tx: res}
	case errors.As(err, &oe) && !errors.Is(err, objectstore.ErrCorrupt):
		return &Response{Err: err}
	}
	f.fatal(index, err)
	return nil
}

// commit records index as applied, in b (created if nil), and commits b.
func (f *FSM) commit(b *pebble.Batch, index uint64) {
	if b == nil {
		b = f.db.NewBatch()
	}
	defer b.Close()
	if err := objectstore.SetAppliedIndex(b, f.shard, index); err != nil {
		f.fatal(index, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		f.fatal(index, err)
	}
	f.applied.Store(index)
}

func (f *FSM) fatal(index uint64, err error) {
	panic(fmt.Sprintf("fsm: shard %d: entry %d: storage failure: %v", f.shard, index, err))
}
