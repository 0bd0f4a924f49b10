package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// On-disk names below Config.DataDir, and fixed timeouts.
const (
	pebbleDir      = "pebble"
	raftDir        = "raft"
	snapshotDir    = "snapshots"
	stateFile      = "node.json"
	lockFile       = "LOCK"
	snapshotRetain = 2

	transportPool = 3
	transportIO   = 10 * time.Second
	// Each shard's log cache holds up to logCacheEntries of its newest
	// entries, logCacheBytes in all (see logCache).
	logCacheEntries = 512
	logCacheBytes   = 2 << 20
)

// Shard counts: a new cluster's default and the most a cluster may have.
const (
	DefaultShards = 16
	MaxShards     = 4096
)

// Config configures a Node. The zero value of a field means its default,
// which DefaultConfig spells out.
type Config struct {
	// NodeID names this node in every shard's Raft configuration. It must be
	// stable across restarts.
	NodeID string
	// DataDir holds Pebble, every shard's Raft log and snapshots, and the
	// node's own state file.
	DataDir string
	// RaftAddr is the address the multiplexed Raft port listens on.
	RaftAddr string
	// AdvertiseRaftAddr is the address other nodes dial to reach RaftAddr;
	// by default the address the listener bound, which must then name a
	// specific host (not 0.0.0.0).
	AdvertiseRaftAddr string
	// HTTPAddr is the address clients and other nodes reach this node's
	// HTTP API on, as shown in the cluster status. Without a host, or with
	// an unspecified one (0.0.0.0, ::), the advertised Raft address's host
	// stands in: peers forward requests here.
	HTTPAddr string
	// GossipAddr is the address the gossip (membership) port listens on;
	// port 0 picks a free one.
	GossipAddr string
	// AdvertiseGossipAddr is the address other nodes gossip with this one
	// on; by default the bound address.
	AdvertiseGossipAddr string
	// Join lists gossip addresses of nodes to join; tried until one answers.
	Join []string
	// BootstrapExpect is how many nodes must be alive before the cluster's
	// first bootstrap. 1 with no Join bootstraps a single-node cluster at
	// once.
	BootstrapExpect int
	// Replicas is the number of replicas of each shard (fewer while the
	// cluster has fewer nodes).
	Replicas int
	// GossipKey, if set, encrypts gossip (16, 24 or 32 bytes: AES).
	GossipKey []byte
	// Gossip tunes memberlist.
	Gossip GossipConfig
	// Rebalance tunes moving replicas as members join, leave and die.
	Rebalance RebalanceConfig
	// NewSQL, if set, makes the SQL engine over the node's Pebble database
	// (package sqlstore's); without it sql ops fail.
	NewSQL func(db *pebble.DB) (SQLEngine, error)
	// OnAlarmChange, if set, is called after an entry that may have changed
	// a shard's alarms is applied on this node. It must not block.
	OnAlarmChange func(shard uint32)
	// OnHandoff, if set, is called before this node hands a shard's
	// leadership to another node on purpose (rebalancing, a clean stop), so
	// that work only the leader does can reach a clean point first (the
	// alarm scheduler records its deliveries' outcomes). It may block until
	// ctx ends; the node calls resume once the transfer ended either way
	// (or, in Shutdown, once the shutdown's context ended).
	OnHandoff func(ctx context.Context, shard uint32) (resume func())
	// Dial opens the node's outgoing Raft connections; nil means
	// net.DialTimeout. Tests replace it to cut links between nodes.
	Dial func(network, address string, timeout time.Duration) (net.Conn, error)
	// Shards is the number of shards, fixed when the cluster bootstraps.
	// Zero means the count the node's data directory holds or, for a new
	// node, the running cluster's count when it joins one and DefaultShards
	// when it starts a new one. A count that is set and differs from the
	// data directory's fails Start; one that differs from the running
	// cluster's keeps the node out of it (logged, never ready).
	Shards int
	// Raft holds the Raft timings.
	Raft RaftConfig
	// Logger receives every log line of the node and its libraries.
	Logger *slog.Logger
	// Registerer receives the node's metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// PebbleCacheBytes is the size of Pebble's block cache.
	PebbleCacheBytes int64
}

// SQLEngine runs objects' SQL; Close is called after every shard stopped.
type SQLEngine interface {
	objectstore.SQL
	io.Closer
}

// RaftConfig is the Raft tuning shared by every shard of a node. The
// reasons for the defaults are in cluster/DESIGN.md.
type RaftConfig struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	// MaxLogBytes bounds each shard's log in bytes as the entry counts
	// above cannot (see trimLog).
	MaxLogBytes int64
}

// DefaultConfig returns the defaults of every field but NodeID.
func DefaultConfig() Config {
	return Config{
		DataDir:          "data",
		RaftAddr:         "127.0.0.1:7000",
		GossipAddr:       "127.0.0.1:0",
		BootstrapExpect:  1,
		Replicas:         3,
		Raft:             DefaultRaftConfig(),
		PebbleCacheBytes: 128 << 20,
	}
}

// DefaultRaftConfig returns the production Raft timings.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		MaxAppendEntries:   64,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		MaxLogBytes:        128 << 20,
	}
}

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.RaftAddr == "" {
		c.RaftAddr = d.RaftAddr
	}
	if c.GossipAddr == "" {
		c.GossipAddr = d.GossipAddr
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = d.BootstrapExpect
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	if c.PebbleCacheBytes == 0 {
		c.PebbleCacheBytes = d.PebbleCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	r, dr := &c.Raft, d.Raft
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&r.HeartbeatTimeout, dr.HeartbeatTimeout}, {&r.ElectionTimeout, dr.ElectionTimeout},
		{&r.LeaderLeaseTimeout, dr.LeaderLeaseTimeout}, {&r.CommitTimeout, dr.CommitTimeout},
		{&r.SnapshotInterval, dr.SnapshotInterval},
	} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if r.MaxAppendEntries == 0 {
		r.MaxAppendEntries = dr.MaxAppendEntries
	}
	if r.SnapshotThreshold == 0 {
		r.SnapshotThreshold = dr.SnapshotThreshold
	}
	if r.TrailingLogs == 0 {
		r.TrailingLogs = dr.TrailingLogs
	}
	if r.MaxLogBytes == 0 {
		r.MaxLogBytes = dr.MaxLogBytes
	}
	return c
}

// Validate checks c (after defaults) and says precisely what is wrong.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("cluster: NodeID must not be empty"))
	}
	if len(c.NodeID) > 128 {
		errs = append(errs, fmt.Errorf("cluster: NodeID is at most 128 bytes, got %d", len(c.NodeID)))
	}
	if c.Shards < 0 || c.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("cluster: Shards must be between 1 and %d (or 0 for the default), got %d", MaxShards, c.Shards))
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		errs = append(errs, fmt.Errorf("cluster: RaftAddr %q: %v", c.RaftAddr, err))
	}
	if c.AdvertiseRaftAddr != "" {
		if err := checkDialable(c.AdvertiseRaftAddr); err != nil {
			errs = append(errs, fmt.Errorf("cluster: AdvertiseRaftAddr: %w", err))
		}
	}
	if c.BootstrapExpect < 1 {
		errs = append(errs, fmt.Errorf("cluster: BootstrapExpect must be at least 1, got %d", c.BootstrapExpect))
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		errs = append(errs, fmt.Errorf("cluster: Replicas must be between 1 and 7, got %d", c.Replicas))
	}
	if k := len(c.GossipKey); k != 0 && k != 16 && k != 24 && k != 32 {
		errs = append(errs, fmt.Errorf("cluster: GossipKey must be 16, 24 or 32 bytes, got %d", k))
	}
	if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
		errs = append(errs, fmt.Errorf("cluster: GossipAddr %q: %v", c.GossipAddr, err))
	}
	r := c.Raft
	if r.ElectionTimeout < r.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("cluster: Raft ElectionTimeout (%v) must be at least HeartbeatTimeout (%v)", r.ElectionTimeout, r.HeartbeatTimeout))
	}
	if r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("cluster: Raft LeaderLeaseTimeout (%v) must not exceed HeartbeatTimeout (%v)", r.LeaderLeaseTimeout, r.HeartbeatTimeout))
	}
	return errors.Join(errs...)
}

// dialableHTTPAddr returns the HTTP address to gossip for httpAddr: itself,
// or, when it names no host or an unspecified one, the same port on the
// host of the advertised Raft address.
func dialableHTTPAddr(httpAddr, raftAdvertise string) (string, error) {
	if httpAddr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("%q: %v", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		raftHost, _, _ := net.SplitHostPort(raftAdvertise)
		httpAddr = net.JoinHostPort(raftHost, port)
	}
	return httpAddr, checkDialable(httpAddr)
}

// checkDialable checks that addr names a host and a port peers can dial.
func checkDialable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == "0" || port == "" {
		return fmt.Errorf("%q must name a host and port that peers can dial (set an advertise address)", addr)
	}
	return nil
}
