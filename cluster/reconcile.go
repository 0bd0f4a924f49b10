package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cairndb/cairn/placement"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Rebalancing. On every node, a loop looks at each shard the node leads and
// moves its Raft configuration one step toward the desired replica set: the
// top Replicas eligible members by rendezvous hashing. One step is one of,
// in this order:
//
//  1. a non-voter that is desired and has caught up is promoted to voter; one
//     that is not desired is removed;
//  2. a desired member missing from the configuration is given an empty
//     replica (control "create") and added as a non-voter: it catches up,
//     from a snapshot streamed out of Pebble and then the log, without
//     counting toward the quorum;
//  3. once every desired member is a voter, a voter that is not desired is
//     removed — after the leader hands its leadership to a desired voter, if
//     it is the one leaving — and told to drop its copy (control "drop");
//  4. leadership moves to the caught-up voter leading the fewest shards
//     when this node leads more than its share (see balanceLeader).
//
// Never two changes at once (Raft allows only one, and the loop waits for
// each), never fewer voters than desired members, and Raft's configuration,
// not gossip, says who is a voter.
//
// Eligible members are the alive ones that are not draining, and the dead
// ones whose death is younger than the grace period: a node that restarts
// or flaps keeps its replicas. A member the node has not heard of since it
// started counts as dead since the start.

// RebalanceConfig tunes rebalancing. Zero fields take their defaults.
type RebalanceConfig struct {
	// DeadNodeGrace is how long a dead node keeps its replicas (default 5 m).
	DeadNodeGrace time.Duration
	// Interval is how often each led shard is looked at (default 1 s).
	Interval time.Duration
	// Settle is how long after start a node waits before rebalancing, so
	// that gossip has told it who is alive (default 10 s).
	Settle time.Duration
	// CatchUpSlack is how far, in log entries, a new replica may trail the
	// commit index and count as caught up (default 100).
	CatchUpSlack uint64
	// OrphanAge is how long a replica must have existed before its node
	// asks the shard's leader whether it is still a member, and drops it if
	// not (default 2 m): a replica just created for a move is not in the
	// configuration yet.
	OrphanAge time.Duration
	// Disabled turns rebalancing off (tests of other things).
	Disabled bool
}

func (c RebalanceConfig) withDefaults() RebalanceConfig {
	if c.DeadNodeGrace <= 0 {
		c.DeadNodeGrace = 5 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 10 * time.Second
	}
	if c.CatchUpSlack == 0 {
		c.CatchUpSlack = 100
	}
	if c.OrphanAge <= 0 {
		c.OrphanAge = 2 * time.Minute
	}
	return c
}

// rebalancer is a node's rebalancing state.
type rebalancer struct {
	n            *Node
	cfg          RebalanceConfig
	mu           sync.Mutex
	moves        map[uint32]string // shard → the move in progress, for status
	lastTransfer time.Time
	moved        *prometheus.CounterVec
}

func newRebalancer(n *Node) *rebalancer {
	return &rebalancer{
		n:     n,
		cfg:   n.cfg.Rebalance.withDefaults(),
		moves: map[uint32]string{},
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_rebalance_changes_total",
			Help: "Raft configuration changes and leadership transfers made by rebalancing, by kind (add, promote, remove, transfer).",
		}, []string{"kind"}),
	}
}

// run rebalances every led shard each interval until the node stops.
func (rb *rebalancer) run() {
	if rb.cfg.Disabled {
		return
	}
	select {
	case <-rb.n.stop:
		return
	case <-time.After(rb.cfg.Settle):
	}
	tick := time.NewTicker(rb.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-rb.n.stop:
			return
		case <-tick.C:
		}
		for _, s := range rb.n.shardList() {
			if !s.IsLeader() {
				rb.setMove(s.id, "")
				continue
			}
			if err := rb.step(s); err != nil && !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				rb.n.log.Warn("rebalancing step failed", "shard", s.id, "error", err)
			}
		}
	}
}

func (rb *rebalancer) setMove(shard uint32, what string) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if what == "" {
		delete(rb.moves, shard)
	} else {
		rb.moves[shard] = what
	}
}

// move returns the move in progress on shard, if this node leads it.
func (rb *rebalancer) move(shard uint32) string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.moves[shard]
}

// eligible returns the members that may hold replicas, with the ids in the
// configuration servers that gossip has not seen counted as dead since the
// node started.
func (rb *rebalancer) eligible(servers []raft.Server) []string {
	grace := rb.cfg.DeadNodeGrace
	known := map[string]bool{}
	var out []string
	removed := rb.n.gossip.removedSet()
	for _, m := range rb.n.gossip.memberList() {
		known[m.ID] = true
		if m.Meta.Draining {
			continue
		}
		switch m.State {
		case StateAlive, StateSuspect:
			out = append(out, m.ID)
		case StateDead:
			if !removed[m.ID] && time.Since(m.Since) < grace {
				out = append(out, m.ID)
			}
		}
	}
	for _, srv := range servers {
		id := string(srv.ID)
		if !known[id] && !removed[id] && time.Since(rb.n.started) < grace {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// step makes at most one change to shard s's configuration or leadership.
func (rb *rebalancer) step(s *Shard) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	eligible := rb.eligible(servers)
	if len(eligible) == 0 {
		return nil
	}
	desired, err := placement.Replicas(s.id, eligible, rb.n.cfg.Replicas)
	if err != nil {
		return err
	}
	self := rb.n.cfg.NodeID
	var voters, nonVoters []string
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, string(srv.ID))
		} else {
			nonVoters = append(nonVoters, string(srv.ID))
		}
	}
	timeout := 10 * time.Second

	// 1. Non-voters: promote the caught-up desired ones, remove the others.
	for _, id := range nonVoters {
		if !slices.Contains(desired, id) {
			rb.setMove(s.id, "removing non-voter "+id)
			err := s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
			rb.count("remove", err)
			rb.dropRemote(s.id, id)
			return err
		}
		if !rb.caughtUp(s, id) {
			rb.setMove(s.id, "adding "+id+" (catching up)")
			return nil
		}
		rb.setMove(s.id, "promoting "+id)
		err := s.raft.AddVoter(raft.ServerID(id), rb.raftAddr(id), 0, timeout).Error()
		rb.count("promote", err)
		return err
	}
	// 2. A desired member missing: open a replica on it and add it as a
	// non-voter.
	for _, id := range desired {
		if slices.Contains(voters, id) {
			continue
		}
		if _, err := rb.n.controlNode(id, controlRequest{Op: "create", Shard: s.id}); err != nil {
			rb.setMove(s.id, "waiting to add "+id)
			return nil // it may be down within its grace period
		}
		rb.setMove(s.id, "adding "+id)
		err := s.raft.AddNonvoter(raft.ServerID(id), rb.raftAddr(id), 0, timeout).Error()
		rb.count("add", err)
		return err
	}
	// 3. Every desired member votes: remove one voter that is not desired.
	for _, id := range voters {
		if slices.Contains(desired, id) || len(voters)-1 < len(desired) {
			continue
		}
		if id == self {
			// Leave through the front door: hand leadership to a desired
			// voter; the next leader removes this node.
			rb.setMove(s.id, "handing leadership away before removing "+id)
			return rb.transfer(s, desired[0])
		}
		if !slices.Contains(eligible, id) && !rb.draining(id) {
			// Gossip says it is dead, but gossip can be wrong (a healed
			// partition it has not noticed yet): a voter that answers is
			// not removed.
			if _, err := rb.n.controlNode(id, controlRequest{Op: "status", Shard: s.id}); err == nil {
				rb.setMove(s.id, "keeping "+id+": gossip says it is dead but it answers")
				return nil
			}
		}
		rb.setMove(s.id, "removing "+id)
		err := s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
		rb.count("remove", err)
		if err == nil {
			rb.dropRemote(s.id, id)
		}
		return err
	}
	rb.setMove(s.id, "")
	// 4. Balance leadership.
	return rb.balanceLeader(s, desired, len(eligible))
}

// balanceLeader hands s's leadership to another voter when this node leads
// more than its share of the shards and that voter leads at least two fewer
// than this node, so that every transfer narrows the spread and none is
// undone by the next: after joins, restarts and failovers the leaders
// spread out by themselves. A node hands away at most one leadership per
// five rebalancing intervals for balance; each costs the shard a moment
// without a leader. Among voters that qualify, the one leading the fewest
// wins, ties going to the higher in s's rendezvous order (desired).
func (rb *rebalancer) balanceLeader(s *Shard, desired []string, members int) error {
	led := len(rb.n.LedShards())
	if led <= (rb.n.ShardCount()+members-1)/members {
		return nil
	}
	rb.mu.Lock()
	due := time.Since(rb.lastTransfer) > 5*rb.cfg.Interval
	rb.mu.Unlock()
	if !due {
		return nil
	}
	self := rb.n.cfg.NodeID
	target, fewest := "", led-1
	for _, id := range desired {
		if id == self || rb.draining(id) {
			continue
		}
		resp, err := rb.n.controlNode(id, controlRequest{Op: "status", Shard: s.id})
		if err != nil || !resp.Hosted || resp.Leads == nil || resp.Applied+rb.cfg.CatchUpSlack < s.raft.CommitIndex() {
			continue // (a node too old to say how many it leads: not a target)
		}
		if *resp.Leads < fewest {
			target, fewest = id, *resp.Leads
		}
	}
	if target == "" {
		return nil
	}
	rb.mu.Lock()
	rb.lastTransfer = time.Now()
	rb.mu.Unlock()
	return rb.transfer(s, target)
}

// transfer hands s's leadership to node id.
func (rb *rebalancer) transfer(s *Shard, id string) error {
	resume := rb.n.handoff(context.Background(), s.id)
	defer resume()
	err := s.raft.LeadershipTransferToServer(raft.ServerID(id), rb.raftAddr(id)).Error()
	rb.count("transfer", err)
	return err
}

// draining reports whether gossip says node id is draining.
func (rb *rebalancer) draining(id string) bool {
	for _, m := range rb.n.gossip.memberList() {
		if m.ID == id {
			return m.Meta.Draining
		}
	}
	return false
}

// caughtUp reports whether node id's replica of s is close enough to the
// commit index to vote without slowing the group down.
func (rb *rebalancer) caughtUp(s *Shard, id string) bool {
	resp, err := rb.n.controlNode(id, controlRequest{Op: "status", Shard: s.id})
	if err != nil || !resp.Hosted {
		return false
	}
	return resp.Applied+rb.cfg.CatchUpSlack >= s.raft.CommitIndex()
}

func (rb *rebalancer) raftAddr(id string) raft.ServerAddress {
	e, _ := rb.n.addrs.get(id)
	return raft.ServerAddress(e.raft)
}

// dropRemote tells a removed node to drop its copy; if it is down, it finds
// out itself later (see collectOrphans).
func (rb *rebalancer) dropRemote(shard uint32, id string) {
	go func() {
		if _, err := rb.n.controlNode(id, controlRequest{Op: "drop", Shard: shard}); err != nil {
			rb.n.log.Debug("telling a removed node to drop its replica failed", "shard", shard, "node", id, "error", err)
		}
	}()
}

func (rb *rebalancer) count(kind string, err error) {
	if err == nil {
		rb.moved.WithLabelValues(kind).Inc()
	}
}

// collectOrphans drops replicas this node holds of shards whose leader does
// not count it as a member: it was removed while it was down, or a move that
// created the replica was abandoned.
func (n *Node) collectOrphans() {
	age := n.rb.cfg.OrphanAge
	n.eachShardEvery(age/4, func(s *Shard) {
		if s.IsLeader() || time.Since(s.opened) < age {
			return
		}
		leader := s.Leader()
		if leader == "" {
			leader = n.gossip.leaderOf(s.id)
		}
		if leader == "" || leader == n.cfg.NodeID {
			return
		}
		resp, err := n.controlNode(leader, controlRequest{Op: "members", Shard: s.id})
		if err != nil || !resp.Leader || len(resp.Members) == 0 {
			return
		}
		if !slices.Contains(resp.Members, n.cfg.NodeID) {
			if err := n.dropShard(s.id); err != nil {
				n.log.Warn("dropping an orphaned replica failed", "shard", s.id, "error", err)
			}
		}
	})
}

// Drain makes this node leave every shard: it gossips that it is draining,
// and each shard's leader moves the replica (and leadership) elsewhere.
// Status shows the node's ShardsHeld reach 0; then it may stop.
func (n *Node) Drain(ctx context.Context) error {
	if err := n.updateState(func(st *nodeState) { st.Draining = true }); err != nil {
		return err
	}
	n.gossip.setDraining(true)
	n.log.Info("draining: replicas and leadership move to other nodes")
	return ctx.Err()
}

// RemoveNode declares a dead node gone for good: its replicas are replaced
// now instead of after the grace period. It is refused for a node that is
// alive (drain it instead).
func (n *Node) RemoveNode(id string) error {
	for _, m := range n.gossip.memberList() {
		if m.ID == id && (m.State == StateAlive || m.State == StateSuspect) {
			return ErrNodeAlive
		}
	}
	n.gossip.remove(id)
	return nil
}
