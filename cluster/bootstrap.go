package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cairndb/cairn/placement"
	"github.com/hashicorp/raft"
)

// bootstrap gives every shard its first configuration over members: each
// shard's replicas are the top Replicas members by rendezvous hashing, and
// only the top-ranked of them bootstraps the shard, so each group is
// bootstrapped once with one configuration. Every node that computes over the
// same members opens the same replicas; it is idempotent, so a node that
// crashed half way does it again.
//
// late is true when other members bootstrapped over members before this
// node did. Either it missed the moment, and the groups it ranks first for
// wait for it; or it bootstrapped them long ago and has since lost its data
// directory, and they run without it. Gossip tells the two apart by the
// groups' leaders: a late node bootstraps a group it ranks first for only if
// no leader of it shows within lateBootstrapWait (a group that lost this
// node still elects one among its other replicas), and otherwise lets its
// replica catch up from the leader. A first configuration of its own would
// share index 1 and term 1 with the group's while perhaps differing from it
// (a new Raft address), and Raft would never repair that.
func (n *Node) bootstrap(members []string, late bool) error {
	members = slices.Clone(members)
	slices.Sort(members)
	var waitUntil time.Time // one wait for every shard
	if late {
		waitUntil = time.Now().Add(lateBootstrapWait * n.cfg.Raft.HeartbeatTimeout)
	}
	for id := uint32(0); id < uint32(n.ShardCount()); id++ {
		replicas, err := placement.Replicas(id, members, n.cfg.Replicas)
		if err != nil {
			return err
		}
		if !slices.Contains(replicas, n.cfg.NodeID) {
			continue
		}
		s, err := n.startShard(id)
		if err != nil {
			return err
		}
		if replicas[0] != n.cfg.NodeID {
			continue
		}
		if late {
			leader, err := n.awaitLeaderOf(id, waitUntil)
			if err != nil {
				return err
			}
			if leader != "" {
				n.log.Info("not bootstrapping a shard that runs already; its replica here catches up", "shard", id, "leader", leader)
				continue
			}
		}
		servers := make([]raft.Server, len(replicas))
		for i, r := range replicas {
			e, _ := n.addrs.get(r)
			servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(r), Address: raft.ServerAddress(e.raft)}
		}
		if err := s.bootstrap(servers); err != nil {
			return err
		}
	}
	err := n.updateState(func(st *nodeState) {
		st.Bootstrapped = true
		st.BootMembers = members
	})
	if err != nil {
		return err
	}
	n.gossip.setBootstrapped(members)
	n.log.Info("bootstrapped", "members", members, "hosted", len(n.shardList()))
	return nil
}

// lateBootstrapWait is how long, in Raft heartbeat timeouts, a node that
// bootstraps after the others waits to hear of a leader of a group it ranks
// first for: enough for the group's other replicas to notice a lost leader,
// elect another, and gossip it.
const lateBootstrapWait = 6

// awaitLeaderOf returns the leader gossip names for shard, waiting for one
// until the time until; "" if none showed by then. It fails with ErrClosed
// if the node stops first.
func (n *Node) awaitLeaderOf(shard uint32, until time.Time) (string, error) {
	for {
		if leader := n.gossip.leaderOf(shard); leader != "" && leader != n.cfg.NodeID {
			return leader, nil
		}
		if !time.Now().Before(until) {
			return "", nil
		}
		select {
		case <-n.stop:
			return "", ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// awaitBootstrap waits, on a node that has never bootstrapped, until it can:
// when BootstrapExpect members that have not bootstrapped either are alive,
// it bootstraps over them; when a member says it bootstrapped over a set that
// includes this node, it bootstraps over that same set; when the cluster
// bootstrapped without it, it has joined a running cluster and bootstraps
// nothing. Every member must agree on the shard count, since it decides
// where each object lives: a node started without one takes the running
// cluster's, and a node whose count differs stays out and says why.
func (n *Node) awaitBootstrap() {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	warned := map[string]bool{}
	warnOnce := func(why string, args ...any) {
		if !warned[why] {
			warned[why] = true
			n.log.Error(why, args...)
		}
	}
	stayOut := func(why string, args ...any) {
		n.outOfCluster.Store(&why)
		warnOnce(why, args...)
	}
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-n.gossip.changed:
		}
		if !n.gossip.joined.Load() {
			// Until it has reached the cluster it was told to join, a node
			// cannot tell a fresh cluster from one it has not heard of yet.
			continue
		}
		var fresh []string
		var bootedWith []string
		joined := false
		clusterShards := 0 // the running cluster's shard count
		otherShards := ""  // a fresh member whose shard count differs
		for _, m := range n.gossip.memberList() {
			if m.State != StateAlive && m.State != StateSuspect {
				continue
			}
			switch {
			case m.Meta.Bootstrapped && slices.Contains(m.Meta.BootMembers, n.cfg.NodeID):
				bootedWith = m.Meta.BootMembers
				clusterShards = max(clusterShards, m.Meta.Shards)
			case m.Meta.Bootstrapped:
				joined = true
				clusterShards = max(clusterShards, m.Meta.Shards)
			default:
				fresh = append(fresh, m.ID)
				if m.Meta.Shards != 0 && m.Meta.Shards != n.ShardCount() {
					otherShards = m.ID
				}
			}
		}
		if clusterShards != 0 && clusterShards != n.ShardCount() {
			if n.cfg.Shards != 0 {
				stayOut("the running cluster has another shard count; this node stays out of it until restarted with the cluster's -shards",
					"cluster_shards", clusterShards, "shards", n.ShardCount())
				continue
			}
			if err := n.adoptShardCount(clusterShards); err != nil {
				stayOut("taking the running cluster's shard count failed; this node stays out of it", "error", err)
				continue
			}
		}
		if bootedWith == nil && !joined && otherShards != "" {
			stayOut("a member waiting to bootstrap has another shard count; start every node with the same -shards",
				"member", otherShards, "shards", n.ShardCount())
			continue
		}
		switch {
		case bootedWith != nil:
			err := n.bootstrap(bootedWith, true)
			if err == nil || errors.Is(err, ErrClosed) {
				return
			}
			n.log.Error("bootstrap failed; retrying", "error", err)
		case joined:
			if err := n.updateState(func(st *nodeState) { st.Bootstrapped = true }); err != nil {
				n.log.Error("recording the join failed; retrying", "error", err)
				continue
			}
			n.gossip.setBootstrapped(nil)
			n.log.Info("joined a running cluster; shards move here as the cluster rebalances")
			return
		case len(fresh) == n.cfg.BootstrapExpect:
			err := n.bootstrap(fresh, false)
			if err == nil {
				return
			}
			n.log.Error("bootstrap failed; retrying", "error", err)
		case len(fresh) > n.cfg.BootstrapExpect:
			warnOnce("more nodes than -bootstrap-expect are waiting to bootstrap; start them with the same -bootstrap-expect", "waiting", fresh, "expect", n.cfg.BootstrapExpect)
		}
	}
}

// adoptShardCount makes a new node, started without a shard count, take the
// running cluster's before it bootstraps or joins: it hosts no shard yet and
// routes nothing (Route waits for Bootstrapped), so nothing was placed by
// the old count.
func (n *Node) adoptShardCount(count int) error {
	if count < 1 || count > MaxShards {
		return fmt.Errorf("cluster: a member gossips a bad shard count %d", count)
	}
	if hosted := len(n.shardList()); hosted > 0 {
		return fmt.Errorf("cluster: this node already holds %d shards of %d; it cannot take the cluster's count %d", hosted, n.ShardCount(), count)
	}
	if err := n.updateState(func(st *nodeState) { st.Shards = count }); err != nil {
		return err
	}
	n.shardCount.Store(int32(count))
	n.gossip.setShardCount(count)
	n.log.Info("took the running cluster's shard count", "shards", count)
	return nil
}

// updateState changes the node's state file under the lock.
func (n *Node) updateState(f func(*nodeState)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.state)
	return n.saveStateLocked()
}

// watchLeaders publishes this node's shard state over gossip whenever a
// leadership changes, and once a second in case an observation was dropped.
func (n *Node) watchLeaders() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.leaders:
		case <-tick.C:
		}
		var hosted []uint32
		led := map[uint32]uint64{}
		for _, s := range n.shardList() {
			hosted = append(hosted, s.id)
			if s.IsLeader() {
				led[s.id] = s.raft.CurrentTerm()
			}
		}
		n.gossip.publish(hosted, led)
	}
}

// signalLeaders asks watchLeaders to publish now.
func (n *Node) signalLeaders() {
	select {
	case n.leaders <- raft.Observation{}:
	default:
	}
}

// rememberPeers keeps the gossip addresses of the other members in the state
// file whenever membership changes, so that a restart of the whole cluster
// finds itself again.
func (n *Node) rememberPeers() {
	for {
		select {
		case <-n.stop:
			return
		case <-n.gossip.peersCh:
		}
		var peers []string
		for _, m := range n.gossip.memberList() {
			if m.ID != n.cfg.NodeID && m.State != StateLeft && m.GossipAddr != "" {
				peers = append(peers, m.GossipAddr)
			}
		}
		slices.Sort(peers)
		n.mu.RLock()
		same := slices.Equal(peers, n.state.Peers)
		n.mu.RUnlock()
		if same || len(peers) == 0 {
			continue
		}
		if err := n.updateState(func(st *nodeState) { st.Peers = peers }); err != nil {
			n.log.Warn("saving peer addresses failed", "error", err)
		}
	}
}

// Shutdown stops the node cleanly: it hands every shard it leads to another
// voter (bounded by ctx), so that clients see no election timeout, then
// closes the node. Its replicas stay: a restart is not a leave.
func (n *Node) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range n.shardList() {
		if !s.IsLeader() || !s.hasOtherVoters() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resume := n.handoff(ctx, s.id)
			defer resume()
			done := make(chan error, 1)
			go func() { done <- s.raft.LeadershipTransfer().Error() }()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, raft.ErrNotLeader) {
					n.log.Warn("leadership transfer failed", "shard", s.id, "error", err)
				}
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	return n.Close()
}

// handoffWait bounds how long a planned leadership transfer waits for
// Config.OnHandoff.
const handoffWait = 2 * time.Second

// handoff calls Config.OnHandoff for shard, for at most handoffWait, and
// returns its resume function.
func (n *Node) handoff(ctx context.Context, shard uint32) (resume func()) {
	if n.cfg.OnHandoff == nil {
		return func() {}
	}
	ctx, cancel := context.WithTimeout(ctx, handoffWait)
	defer cancel()
	return n.cfg.OnHandoff(ctx, shard)
}

// hasOtherVoters reports whether the shard's configuration has a voter
// besides this node.
func (s *Shard) hasOtherVoters() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter && string(srv.ID) != s.node.cfg.NodeID {
			return true
		}
	}
	return false
}

// idempotencyGCInterval is how often a leader looks for expired
// idempotency records in the shards it leads.
const idempotencyGCInterval = time.Minute

// collectIdempotency proposes, on every shard this node leads that holds
// expired idempotency records, a command that deletes them. The expiry time
// travels in the command, so every replica deletes the same records.
func (n *Node) collectIdempotency() {
	n.eachShardEvery(idempotencyGCInterval, func(s *Shard) {
		if _, err := n.collectExpiredIdempotency(s, time.Now().UnixMilli()); err != nil {
			n.log.Debug("collecting idempotency records failed", "shard", s.id, "error", err)
		}
	})
}

// collectExpiredIdempotency proposes, on a shard this node leads that holds
// idempotency records expired at now (ms), the entry that deletes them on
// every replica. It reports whether it proposed one.
func (n *Node) collectExpiredIdempotency(s *Shard, now int64) (bool, error) {
	if !s.IsLeader() {
		return false, nil
	}
	expired, err := objectstore.HasExpiredIdempotency(n.db, s.id, now)
	if err != nil || !expired {
		return false, err
	}
	cmd, err := (&fsm.Command{Type: fsm.TypeExpireIdempotency, Header: fsm.Header{NowMillis: now}}).Encode()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.propose(ctx, cmd)
	return err == nil, err
}
