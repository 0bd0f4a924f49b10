// Package cluster owns everything that makes a node part of a Cairn cluster:
// one hashicorp/raft group member per shard the node hosts, their snapshots
// on disk, the single TCP port that multiplexes every shard's Raft traffic,
// the node's Pebble database that holds every shard's Raft log and state
// machine, gossip membership, bootstrap, rebalancing, and linearizable reads.
//
// A Node's lifecycle: New validates its Config and does no I/O; Start opens
// storage and the port, starts every hosted shard and bootstraps them on a
// node's first start; Close shuts everything down in order.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/logging"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Node is one Cairn process's membership in the cluster.
type Node struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	addrs   *addressBook

	lock *os.File // flock on the data directory, held while running
	db   *pebble.DB
	ln   net.Listener
	mux  *Mux

	gossip *gossip
	sql    SQLEngine
	// createMu serializes control "create" requests (see maxCatchUps).
	createMu sync.Mutex
	// trimMu serializes trimLog, which changes a shard's Raft config.
	trimMu sync.Mutex
	rb     *rebalancer
	// started is when Start began: members not heard of since count as
	// dead since then.
	started time.Time
	// snapBytesDropped keeps the snapshot byte counts (persisted,
	// restored) of replicas this node dropped, so the counters never go
	// back.
	snapBytesDropped [2]atomic.Uint64
	// logAppended counts the bytes every shard's log store stored.
	logAppended atomic.Uint64

	// shardCount is state.Shards, readable without mu.
	shardCount atomic.Int32
	// outOfCluster says why a node that has not joined stays out of the
	// cluster it sees (another shard count), once it decided so.
	outOfCluster atomic.Pointer[string]

	mu     sync.RWMutex
	shards map[uint32]*Shard
	state  nodeState

	// stop ends the node's background goroutines; bg waits for them.
	stop    chan struct{}
	bg      sync.WaitGroup
	leaders chan raft.Observation // leadership changes of every shard

	closeOnce sync.Once
	closeErr  error
	muxDone   chan struct{}
}

// nodeState is what a node remembers about itself between starts.
type nodeState struct {
	NodeID string `json:"nodeId"`
	Shards int    `json:"shards"`
	// Bootstrapped is set once this node's shards have their first
	// configuration, or the node joined a cluster that had: a node never
	// bootstraps twice.
	Bootstrapped bool `json:"bootstrapped"`
	// Peers are gossip addresses of other members seen last time, so that
	// a whole-cluster restart finds itself again without -join.
	Peers []string `json:"peers,omitempty"`
	// BootMembers is the member set the cluster bootstrapped over, gossiped
	// so that a member that missed the moment bootstraps over the same set.
	BootMembers []string `json:"bootMembers,omitempty"`
	// Draining is set once the node was asked to drain.
	Draining bool `json:"draining,omitempty"`
	// Removed lists nodes declared gone for good through this node.
	Removed []string `json:"removed,omitempty"`
}

// New returns a node for cfg. It does no I/O; Start does.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeID),
		metrics: newMetrics(),
		addrs:   newAddressBook(),
		shards:  map[uint32]*Shard{},
		stop:    make(chan struct{}),
		leaders: make(chan raft.Observation, 64),
		muxDone: make(chan struct{}),
	}, nil
}

// Start opens the node's storage and Raft port and starts every shard it
// hosts, bootstrapping them on the node's first start. On error, whatever it
// opened is closed again.
func (n *Node) Start() (err error) {
	n.started = time.Now()
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.prepareDataDir(); err != nil {
		return err
	}
	if err := n.loadState(); err != nil {
		return err
	}
	cache := pebble.NewCache(n.cfg.PebbleCacheBytes)
	n.db, err = pebble.Open(filepath.Join(n.cfg.DataDir, pebbleDir), n.pebbleOptions(cache))
	// The DB holds its own reference to the cache.
	cache.Unref()
	if err != nil {
		return fmt.Errorf("%w: open pebble: %v", ErrDataDir, err)
	}
	n.ln, err = net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: listen on raft address %s: %w", n.cfg.RaftAddr, err)
	}
	advertise := n.cfg.AdvertiseRaftAddr
	if advertise == "" {
		advertise = n.ln.Addr().String()
	}
	if err := checkDialable(advertise); err != nil {
		return fmt.Errorf("cluster: advertised raft address: %w", err)
	}
	advAddr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return fmt.Errorf("cluster: advertised raft address: %w", err)
	}
	n.cfg.AdvertiseRaftAddr = advertise
	if n.cfg.HTTPAddr, err = dialableHTTPAddr(n.cfg.HTTPAddr, advertise); err != nil {
		return fmt.Errorf("cluster: HTTP address: %w", err)
	}
	if n.cfg.NewSQL != nil {
		if n.sql, err = n.cfg.NewSQL(n.db); err != nil {
			return fmt.Errorf("cluster: start the SQL engine: %w", err)
		}
	}
	n.mux = NewMux(n.ln, advAddr, n.log.With("component", "mux"))
	if n.cfg.Dial != nil {
		n.mux.dial = n.cfg.Dial
	}
	n.mux.control = n.serveControl
	go func() {
		defer close(n.muxDone)
		n.mux.Serve()
	}()
	if err := n.startGossip(); err != nil {
		return err
	}
	n.cfg.AdvertiseGossipAddr = n.gossip.addr()
	n.addrs.set(n.cfg.NodeID, addrEntry{raft: advertise, http: n.cfg.HTTPAddr})

	for id := uint32(0); id < uint32(n.ShardCount()); id++ {
		has, err := n.hasShardState(id)
		if err != nil {
			return err
		}
		if has {
			if _, err := n.startShard(id); err != nil {
				return err
			}
		}
	}
	single := n.cfg.BootstrapExpect == 1 && len(n.cfg.Join) == 0 && len(n.state.Peers) == 0
	if !n.state.Bootstrapped && single {
		if err := n.bootstrap([]string{n.cfg.NodeID}, false); err != nil {
			return err
		}
	}
	if n.cfg.Registerer != nil {
		if err := n.metrics.register(n.cfg.Registerer, n); err != nil {
			return err
		}
	}
	n.goBackground(n.watchLeaders)
	n.goBackground(n.rememberPeers)
	n.goBackground(func() { n.gossip.reconnect(n.cfg.Gossip.ReconnectInterval, n.stop) })
	n.goBackground(n.collectIdempotency)
	n.rb = newRebalancer(n)
	if n.cfg.Registerer != nil {
		if err := n.cfg.Registerer.Register(n.rb.moved); err != nil {
			return err
		}
	}
	n.goBackground(n.rb.run)
	n.goBackground(n.collectOrphans)
	n.goBackground(n.trimLogs)
	if join := append(slices.Clone(n.cfg.Join), n.state.Peers...); len(join) > 0 {
		n.goBackground(func() { n.gossip.join(join, n.stop) })
	} else {
		n.gossip.joined.Store(true) // nothing to join: this node starts the cluster
	}
	// Logged before the bootstrap goroutine may change the state.
	n.log.Info("node started", "raft_addr", advertise, "gossip_addr", n.cfg.AdvertiseGossipAddr,
		"shards", n.ShardCount(), "hosted", len(n.shardList()), "bootstrapped", n.state.Bootstrapped)
	if !n.state.Bootstrapped {
		n.goBackground(n.awaitBootstrap)
	}
	return nil
}

// eachShardEvery calls f for every shard this node hosts, every d, until
// the node stops: the loop of the node's background housekeeping.
func (n *Node) eachShardEvery(d time.Duration, f func(s *Shard)) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		for _, s := range n.shardList() {
			f(s)
		}
	}
}

// goBackground runs f on a goroutine the node owns and waits for on Close.
func (n *Node) goBackground(f func()) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		f()
	}()
}

func (n *Node) startShard(id uint32) (*Shard, error) {
	if s := n.Shard(id); s != nil {
		return s, nil
	}
	s, err := n.openShard(id)
	if err != nil {
		return nil, err
	}
	s.raft.RegisterObserver(raft.NewObserver(n.leaders, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	n.mu.Lock()
	n.shards[id] = s
	n.mu.Unlock()
	n.signalLeaders()
	return s, nil
}

func (n *Node) pebbleOptions(cache *pebble.Cache) *pebble.Options {
	opts := &pebble.Options{
		Cache:              cache,
		Logger:             logging.Pebble{L: n.log},
		MemTableSize:       64 << 20,
		FormatMajorVersion: pebble.FormatNewest,
	}
	opts.EnsureDefaults()
	return opts
}

// prepareDataDir creates the data directory and checks that it is writable.
func (n *Node) prepareDataDir() error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	f, err := os.OpenFile(filepath.Join(n.cfg.DataDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %s is not writable: %v", ErrDataDir, n.cfg.DataDir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s is in use by another running node", ErrDataDir, n.cfg.DataDir)
	}
	n.lock = f
	return nil
}

// loadState reads the node's state file, or starts a new one, and checks it
// against the configuration.
func (n *Node) loadState() error {
	path := filepath.Join(n.cfg.DataDir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if entries, _ := os.ReadDir(filepath.Join(n.cfg.DataDir, raftDir)); len(entries) > 0 {
			return fmt.Errorf("%w: %s holds Raft data but no %s", ErrDataDir, n.cfg.DataDir, stateFile)
		}
		n.state = nodeState{NodeID: n.cfg.NodeID, Shards: n.cfg.Shards}
		if n.state.Shards == 0 {
			n.state.Shards = DefaultShards
		}
		n.shardCount.Store(int32(n.state.Shards))
		return n.saveStateLocked()
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if err := json.Unmarshal(b, &n.state); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDataDir, path, err)
	}
	switch {
	case n.state.NodeID != n.cfg.NodeID:
		return fmt.Errorf("%w: %s belongs to node %q, not %q", ErrDataDir, n.cfg.DataDir, n.state.NodeID, n.cfg.NodeID)
	case n.cfg.Shards != 0 && n.state.Shards != n.cfg.Shards:
		return fmt.Errorf("%w: the cluster was bootstrapped with %d shards; the shard count cannot change to %d", ErrDataDir, n.state.Shards, n.cfg.Shards)
	case n.state.Shards < 1 || n.state.Shards > MaxShards:
		return fmt.Errorf("%w: %s: bad shard count %d", ErrDataDir, path, n.state.Shards)
	}
	n.shardCount.Store(int32(n.state.Shards))
	return nil
}

// saveState writes the state file atomically: a temporary file, fsync,
// rename, fsync of the directory. The caller holds n.mu or is the only
// goroutine (Start).
func (n *Node) saveStateLocked() error {
	b, err := json.MarshalIndent(n.state, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.DataDir, stateFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	d, err := os.Open(n.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDataDir, err)
	}
	defer d.Close()
	return d.Sync()
}

// Close shuts the node down, in order: its background work, gossip (without
// announcing a leave: a stop is not a leave), every shard's Raft instance
// (waiting for each), their transports and log stores, then the Raft port,
// then Pebble, then the data directory's lock. Callers stop serving clients
// first; Shutdown hands leaderships away before calling it. It is safe to
// call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.bg.Wait()
		var errs []error
		if n.gossip != nil {
			errs = append(errs, n.gossip.shutdown())
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, s := range n.shardList() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.close(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("shard %d: %w", s.id, err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if n.sql != nil {
			errs = append(errs, n.sql.Close())
		}
		if n.mux != nil {
			errs = append(errs, n.mux.Close())
			<-n.muxDone
		} else if n.ln != nil {
			errs = append(errs, n.ln.Close())
		}
		if n.db != nil {
			errs = append(errs, n.db.Close())
		}
		if n.lock != nil {
			errs = append(errs, n.lock.Close()) // releases the flock
		}
		n.closeErr = errors.Join(errs...)
		if n.closeErr == nil {
			n.log.Info("node stopped")
		}
	})
	return n.closeErr
}

func (n *Node) droppedSnapBytes() (persisted, restored uint64) {
	return n.snapBytesDropped[0].Load(), n.snapBytesDropped[1].Load()
}

// NodeID returns this node's id.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// ShardCount returns the cluster's number of shards. It is fixed, except
// that a new node started without a count takes the running cluster's as it
// joins, before it hosts or routes anything.
func (n *Node) ShardCount() int { return int(n.shardCount.Load()) }

// GossipAddr returns the address peers gossip with this node on.
func (n *Node) GossipAddr() string { return n.cfg.AdvertiseGossipAddr }

// RaftAddr returns the address peers reach this node's Raft port on.
func (n *Node) RaftAddr() string { return n.cfg.AdvertiseRaftAddr }

// DB returns the node's Pebble database, for reads.
func (n *Node) DB() *pebble.DB { return n.db }

// Shard returns this node's replica of shard id, or nil.
func (n *Node) Shard(id uint32) *Shard {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.shards[id]
}

// shardList returns the hosted shards ordered by id.
func (n *Node) shardList() []*Shard {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]*Shard, 0, len(n.shards))
	for _, s := range n.shards {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Shard) int { return int(a.id) - int(b.id) })
	return out
}

// Propose commits cmd (an encoded fsm command) on shard's Raft group and
// returns the state machine's response once it is applied on this node. It
// answers ErrNotLeader without proposing when this node does not lead the
// shard, and ErrCommitUnknown when the write may or may not have happened.
func (n *Node) Propose(ctx context.Context, shard uint32, cmd []byte) (*fsm.Response, error) {
	s := n.Shard(shard)
	if s == nil {
		return nil, ErrUnknownShard
	}
	return s.propose(ctx, cmd)
}

// Read calls fn with a consistent view of this node's state of shard once it
// is safe to: for a linearizable read, after this node has confirmed it leads
// the shard (ErrNotLeader otherwise); for a stale read, at once, on any
// replica. The snapshot is valid only during fn.
func (n *Node) Read(ctx context.Context, shard uint32, stale bool, fn func(r pebble.Reader) error) error {
	if err := n.readGate(ctx, shard, stale); err != nil {
		return err
	}
	snap := n.db.NewSnapshot()
	defer snap.Close()
	return fn(snap)
}

// ReadLive is Read with the live database instead of a snapshot: for SQL
// reads, which the SQL engine serializes with the writes of the object.
func (n *Node) ReadLive(ctx context.Context, shard uint32, stale bool, fn func(r pebble.Reader) error) error {
	if err := n.readGate(ctx, shard, stale); err != nil {
		return err
	}
	return fn(n.db)
}

func (n *Node) readGate(ctx context.Context, shard uint32, stale bool) error {
	s := n.Shard(shard)
	if s == nil {
		return ErrUnknownShard
	}
	if !stale {
		if err := s.gate.wait(ctx); err != nil {
			return err
		}
	}
	if !s.fsm.Ready() {
		return ErrShardNotReady
	}
	return nil
}

// SQL returns the node's SQL engine (nil if it runs without one).
func (n *Node) SQL() objectstore.SQL {
	if n.sql == nil {
		return nil
	}
	return n.sql
}

// ShardStatus describes one shard as this node sees it.
type ShardStatus struct {
	ID           uint32
	Leader       string // node id; "" while there is none
	Voters       []string
	NonVoters    []string
	AppliedIndex uint64
	// Move is the rebalancing step in progress, if this node leads the
	// shard and is moving a replica.
	Move string
}

// ShardStatus returns what this node knows of a shard it hosts.
func (n *Node) ShardStatus(id uint32) (ShardStatus, error) {
	s := n.Shard(id)
	if s == nil {
		return ShardStatus{}, ErrUnknownShard
	}
	st := ShardStatus{ID: id, Leader: s.Leader(), AppliedIndex: s.fsm.Applied()}
	if n.rb != nil {
		st.Move = n.rb.move(id)
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, leadershipError(err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			st.Voters = append(st.Voters, string(srv.ID))
		} else {
			st.NonVoters = append(st.NonVoters, string(srv.ID))
		}
	}
	return st, nil
}
