package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// addrEntry is how to reach a node.
type addrEntry struct {
	raft string
	http string
}

// addressBook resolves node ids to addresses: Raft addresses for the
// transports (so a node that comes back with a new IP is still reached) and
// HTTP addresses for forwarding. Gossip keeps it current.
type addressBook struct {
	mu    sync.RWMutex
	addrs map[string]addrEntry
}

var _ raft.ServerAddressProvider = (*addressBook)(nil)

func newAddressBook() *addressBook { return &addressBook{addrs: map[string]addrEntry{}} }

func (b *addressBook) set(id string, e addrEntry) {
	b.mu.Lock()
	b.addrs[id] = e
	b.mu.Unlock()
}

func (b *addressBook) get(id string) (addrEntry, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	e, ok := b.addrs[id]
	return e, ok
}

// ServerAddr implements raft.ServerAddressProvider. An unknown id makes the
// transport fall back to the address in the Raft configuration.
func (b *addressBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if e, ok := b.get(string(id)); ok && e.raft != "" {
		return raft.ServerAddress(e.raft), nil
	}
	return "", fmt.Errorf("cluster: no known address for node %q", id)
}

// Route says where requests for a shard go.
type Route struct {
	// Local is true when this node leads the shard.
	Local bool
	// Hosted is true when this node holds a replica of the shard.
	Hosted bool
	// Leader is the leader's node id and LeaderHTTP its HTTP address; both
	// empty when no leader is known.
	Leader     string
	LeaderHTTP string
	// Hosts are the HTTP addresses of other nodes holding a replica, for
	// stale reads and as a fallback when no leader is known.
	Hosts []string
	// OutOfCluster, when not empty, says why this node stays out of the
	// cluster (its shard count is not the cluster's): it will route nothing
	// until it is restarted.
	OutOfCluster string
}

// Route returns where requests for shard go, as this node knows it now: its
// own Raft instance if it hosts the shard, gossip otherwise. A node that has
// not yet bootstrapped or joined a cluster knows no route: until then its
// shard count may not be the cluster's.
func (n *Node) Route(shard uint32) Route {
	var r Route
	n.mu.RLock()
	booted := n.state.Bootstrapped
	n.mu.RUnlock()
	if !booted {
		if why := n.outOfCluster.Load(); why != nil {
			r.OutOfCluster = *why
		}
		return r
	}
	if s := n.Shard(shard); s != nil {
		r.Hosted = true
		r.Local = s.IsLeader()
		r.Leader = s.Leader()
	}
	if r.Leader == "" && n.gossip != nil {
		r.Leader = n.gossip.leaderOf(shard)
	}
	if r.Leader != "" {
		if e, ok := n.addrs.get(r.Leader); ok {
			r.LeaderHTTP = e.http
		}
	}
	if n.gossip != nil {
		for _, id := range n.gossip.hostsOf(shard) {
			if e, ok := n.addrs.get(id); ok && id != n.cfg.NodeID && e.http != "" {
				r.Hosts = append(r.Hosts, e.http)
			}
		}
	}
	return r
}

// Ready reports whether this node can serve: it has bootstrapped (or joined
// a bootstrapped cluster) and every shard it hosts has a leader and a
// readable state machine.
func (n *Node) Ready() bool {
	n.mu.RLock()
	booted := n.state.Bootstrapped
	n.mu.RUnlock()
	if !booted {
		return false
	}
	for _, s := range n.shardList() {
		if s.Leader() == "" || !s.fsm.Ready() {
			return false
		}
	}
	return true
}

// WaitReady waits until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// NodeStatus describes one member of the cluster.
type NodeStatus struct {
	ID         string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	State      string // alive, suspect, dead or left
	Draining   bool
	ShardsHeld int
	ShardsLed  int
}

// Status is the cluster as this node sees it.
type Status struct {
	Nodes  []NodeStatus
	Shards []ShardStatus
}

// Status describes every member and every shard this node knows of: shards
// it hosts from their Raft state, the others from gossip.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var st Status
	held := map[string]int{}
	led := map[string]int{}
	for id := uint32(0); id < uint32(n.ShardCount()); id++ {
		ss, err := n.ShardStatus(id)
		if err == ErrUnknownShard && n.gossip != nil {
			ss = ShardStatus{ID: id, Leader: n.gossip.leaderOf(id), Voters: n.gossip.hostsOf(id)}
		} else if err != nil {
			return st, err
		}
		st.Shards = append(st.Shards, ss)
		for _, v := range append(slices.Clone(ss.Voters), ss.NonVoters...) {
			held[v]++
		}
		if ss.Leader != "" {
			led[ss.Leader]++
		}
	}
	for _, m := range n.gossip.memberList() {
		st.Nodes = append(st.Nodes, NodeStatus{
			ID:         m.ID,
			HTTPAddr:   m.Meta.HTTPAddr,
			RaftAddr:   m.Meta.RaftAddr,
			GossipAddr: m.GossipAddr,
			State:      m.State,
			Draining:   m.Meta.Draining,
			ShardsHeld: held[m.ID],
			ShardsLed:  led[m.ID],
		})
	}
	return st, ctx.Err()
}

// LedShards returns the shards this node leads now.
func (n *Node) LedShards() []uint32 {
	var out []uint32
	for _, s := range n.shardList() {
		if s.IsLeader() {
			out = append(out, s.id)
		}
	}
	return out
}
