package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/logging"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Shard is this node's replica of one shard: its Raft group member, log
// store, snapshot store, transport and state machine.
type Shard struct {
	id    uint32
	node  *Node
	dir   string
	fsm   *fsm.FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	logs  *logStore
	snaps raft.SnapshotStore
	gate  readGate
	// opened is when this replica was opened on this node.
	opened time.Time

	closeOnce sync.Once
	closeErr  error
}

// ID returns the shard's id.
func (s *Shard) ID() uint32 { return s.id }

// FSM returns the shard's state machine.
func (s *Shard) FSM() *fsm.FSM { return s.fsm }

// Raft returns the shard's Raft instance.
func (s *Shard) Raft() *raft.Raft { return s.raft }

func shardDir(dataDir string, shard uint32) string {
	return filepath.Join(dataDir, raftDir, fmt.Sprintf("%05d", shard))
}

// hasShardState reports whether this node holds Raft state for shard.
func (n *Node) hasShardState(shard uint32) (bool, error) {
	return hasLogState(n.db, shard)
}

// openShard opens (creating if needed) this node's replica of shard and
// starts its Raft instance. A half-opened shard is closed again on error.
func (n *Node) openShard(id uint32) (s *Shard, err error) {
	s = &Shard{id: id, node: n, dir: shardDir(n.cfg.DataDir, id), opened: time.Now()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	logger := n.log.With("shard", id)
	hlog := logging.HCLog(logger, "raft", hclog.Info)

	s.fsm, err = fsm.Open(n.db, id, logger)
	if err != nil {
		return nil, err
	}
	if n.sql != nil {
		s.fsm.UseSQL(n.sql)
	}
	if n.cfg.OnAlarmChange != nil {
		s.fsm.OnAlarmChange(n.cfg.OnAlarmChange)
	}
	s.logs = newLogStore(n.db, id)
	s.logs.appended = &n.logAppended
	cached := newLogCache(s.logs, logCacheEntries, logCacheBytes)
	s.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(s.dir, snapshotDir), snapshotRetain, hlog)
	if err != nil {
		return nil, fmt.Errorf("%w: shard %d snapshots: %v", ErrDataDir, id, err)
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: n.addrs,
		Logger:                hlog,
		Stream:                n.mux.Layer(id),
		MaxPool:               transportPool,
		Timeout:               transportIO,
		// 1 turns the pipelining path off. It gains little next to
		// BatchApplyCh (hashicorp/raft#541), and its sender can block for
		// good when the pipeline's decoder stops on a broken connection,
		// which wedges the group's replication to that peer and its
		// Shutdown: seen here when a link was cut or a peer dropped its
		// replica.
		MaxRPCsInFlight: 1,
	})

	restore, err := s.fsm.NeedsRestore(s.snaps)
	if err != nil {
		return nil, err
	}
	if restore {
		logger.Warn("the state machine is older than the newest snapshot; restoring it before serving")
	}
	conf := n.raftConfig(logger)
	conf.NoSnapshotRestoreOnStart = !restore

	s.raft, err = raft.NewRaft(conf, s.fsm, cached, s.logs, s.snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("cluster: shard %d: start raft: %w", id, err)
	}
	s.gate.raft = s.raft
	return s, nil
}

func (n *Node) raftConfig(logger *slog.Logger) *raft.Config {
	r := n.cfg.Raft
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.NodeID)
	c.HeartbeatTimeout = r.HeartbeatTimeout
	c.ElectionTimeout = r.ElectionTimeout
	c.LeaderLeaseTimeout = r.LeaderLeaseTimeout
	c.CommitTimeout = r.CommitTimeout
	c.MaxAppendEntries = r.MaxAppendEntries
	c.BatchApplyCh = true
	c.SnapshotInterval = r.SnapshotInterval
	c.SnapshotThreshold = r.SnapshotThreshold
	c.TrailingLogs = r.TrailingLogs
	c.NoLegacyTelemetry = true
	c.Logger = logging.HCLog(logger, "raft", hclog.Warn)
	return c
}

// bootstrap makes the shard's first configuration voters. It is called at
// most once per shard in the life of a cluster, on one node.
func (s *Shard) bootstrap(voters []raft.Server) error {
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: voters}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("cluster: shard %d: bootstrap: %w", s.id, err)
	}
	return nil
}

// close shuts the shard down: Raft first (waiting for it), then its
// transport, then the log store. It is safe to call more than once.
func (s *Shard) close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.raft != nil {
			errs = append(errs, s.raft.Shutdown().Error())
		}
		if s.trans != nil {
			errs = append(errs, s.trans.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// IsLeader reports whether this node leads the shard.
func (s *Shard) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the id of the shard's leader as this node knows it, or ""
// when it knows of none.
func (s *Shard) Leader() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// propose submits data as a Raft entry and waits until it is applied on this
// node (the leader), returning the state machine's response.
func (s *Shard) propose(ctx context.Context, data []byte) (*fsm.Response, error) {
	if s.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	enqueue := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		enqueue = time.Until(dl)
		if enqueue <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	start := time.Now()
	f := s.raft.Apply(data, enqueue)
	done := make(chan struct{})
	go func() {
		_ = f.Error()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, ctx.Err())
	}
	s.node.metrics.applyLatency.Observe(time.Since(start).Seconds())
	switch err := f.Error(); {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it reached the log.
		return nil, ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, ErrOverloaded
	default:
		// ErrLeadershipLost, ErrRaftShutdown, ErrAbortedByRestore: the entry
		// may be in the log and may yet be committed.
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, err)
	}
	resp, ok := f.Response().(*fsm.Response)
	if !ok {
		// Apply returns nil only for entries it skipped as already applied,
		// which a fresh proposal never is.
		return nil, fmt.Errorf("cluster: shard %d: state machine answered %T", s.id, f.Response())
	}
	return resp, nil
}
