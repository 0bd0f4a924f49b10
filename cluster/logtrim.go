package cluster

import (
	"errors"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/hashicorp/raft"
)

// Raft compacts a shard's log after a snapshot, and takes snapshots by
// count of entries (SnapshotThreshold), keeping TrailingLogs entries behind.
// Counts are blind to size: with values near the 2 MiB limit, 16,384
// entries are 32 GiB of log per shard. trimLogs bounds the log by bytes as
// well: a shard whose log holds more than MaxLogBytes, and more than the
// shard's own data (a snapshot writes the data out, so it must free more
// than it costs), gets a snapshot now, compacted down to about a quarter of
// MaxLogBytes of trailing entries; not while a new replica catches up. The
// size is an estimate (see logStore.bytes): a trim too early costs only a
// snapshot.

// logTrimEvery is how often each shard's log size is looked at.
const logTrimEvery = 5 * time.Second

// minTrailingLogs is the fewest entries a trim keeps behind a snapshot, so
// that a follower a moment behind still catches up from the log.
const minTrailingLogs = 16

// trimLogs trims the shards' logs every logTrimEvery until the node stops.
func (n *Node) trimLogs() {
	n.eachShardEvery(logTrimEvery, func(s *Shard) {
		if err := n.trimLog(s); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
			n.log.Warn("trimming the raft log failed", "shard", s.id, "error", err)
		}
	})
}

// trimLog snapshots shard s with fewer trailing entries when its log is
// over MaxLogBytes and larger than its data, and no replica is catching up.
func (n *Node) trimLog(s *Shard) error {
	n.trimMu.Lock() // the read-modify-write of the Raft config below
	defer n.trimMu.Unlock()
	limit := n.cfg.Raft.MaxLogBytes
	bytes, entries, err := s.logs.size()
	if err != nil || bytes <= limit || entries <= minTrailingLogs {
		return err
	}
	if s.hasNonVoter() {
		// A new replica is catching up, perhaps from the entries a trim
		// would drop: forcing it to start over from a snapshot could repeat
		// for as long as the shard takes writes faster than a snapshot moves.
		return nil
	}
	lo, hi := objectstore.ShardSpan(s.id)
	data, err := n.db.EstimateDiskUsage(lo, hi)
	if err != nil {
		return err
	}
	if bytes <= int64(data) {
		return nil
	}
	rc := s.raft.ReloadableConfig()
	keep := max(uint64(float64(entries)*float64(limit/4)/float64(bytes)), minTrailingLogs)
	if keep >= rc.TrailingLogs {
		return nil
	}
	trim := rc
	trim.TrailingLogs = keep
	if err := s.raft.ReloadConfig(trim); err != nil {
		return err
	}
	err = s.raft.Snapshot().Error()
	if rerr := s.raft.ReloadConfig(rc); err == nil {
		err = rerr
	}
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	if err == nil {
		n.log.Info("trimmed the raft log", "shard", s.id, "bytes", bytes, "entries", entries, "kept", keep)
	}
	return err
}

// hasNonVoter reports whether s's configuration has a non-voter (a new
// replica catching up), or may have: true when it cannot be read.
func (s *Shard) hasNonVoter() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage != raft.Voter {
			return true
		}
	}
	return false
}
