package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

func TestClusterBootstrapsEveryShardOnThreeVoters(t *testing.T) {
	c := newTestCluster(t, 3, 8)
	for shard := uint32(0); shard < 8; shard++ {
		leader := c.waitLeader(shard)
		st, err := leader.ShardStatus(shard)
		if err != nil {
			t.Fatal(err)
		}
		voters := slices.Clone(st.Voters)
		slices.Sort(voters)
		if !slices.Equal(voters, []string{"n1", "n2", "n3"}) {
			t.Fatalf("shard %d voters %v", shard, st.Voters)
		}
		for _, n := range c.running() {
			if n.Shard(shard) == nil {
				t.Fatalf("%s does not host shard %d", n.NodeID(), shard)
			}
		}
	}
	// Writes on every shard reach every replica.
	for shard := uint32(0); shard < 8; shard++ {
		c.put(shard, "o", "k", fmt.Sprintf("v%d", shard))
		c.ensureSameState(shard)
		for _, n := range c.running() {
			if got, ok := readStale(t, n, shard, "o", "k"); !ok || got != fmt.Sprintf("v%d", shard) {
				t.Fatalf("%s shard %d: %q %v", n.NodeID(), shard, got, ok)
			}
		}
	}
	// Gossip tells every node where each shard's leader is.
	for _, n := range c.running() {
		for shard := uint32(0); shard < 8; shard++ {
			want := c.waitLeader(shard).NodeID()
			waitFor(t, "gossip to learn the leader", func() bool { return n.gossip.leaderOf(shard) == want })
		}
	}
}

func TestClusterReadsOnlyOnLeaderUnlessStale(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	c.put(0, "o", "k", "v")
	leader := c.waitLeader(0)
	for _, n := range c.running() {
		err := n.Read(context.Background(), 0, false, func(pebble.Reader) error { return nil })
		if n == leader && err != nil {
			t.Fatalf("linearizable read on the leader: %v", err)
		}
		if n != leader && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("linearizable read on follower %s: err = %v, want ErrNotLeader", n.NodeID(), err)
		}
	}
}

func TestClusterSurvivesLeaderLossAndRestart(t *testing.T) {
	c := newTestCluster(t, 3, 2)
	v1 := c.put(0, "o", "before", "1")
	old := c.waitLeader(0).NodeID()
	c.stop(old)
	next := c.waitLeader(0)
	if next.NodeID() == old {
		t.Fatal("the stopped node still leads")
	}
	v2 := c.put(0, "o", "after", "2")
	if v2 <= v1 {
		t.Fatalf("version went backwards: %d then %d", v1, v2)
	}
	// The old leader comes back and catches up.
	c.start(old, 3, nil, "", "")
	c.waitReady()
	c.ensureSameState(0)
	if got, ok := readStale(t, c.node(old), 0, "o", "after"); !ok || got != "2" {
		t.Fatalf("restarted node missed a write: %q %v", got, ok)
	}
}

func TestClusterFollowerRestartCatchesUp(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	leader := c.waitLeader(0).NodeID()
	var follower string
	for _, id := range c.ids {
		if id != leader {
			follower = id
			break
		}
	}
	c.stop(follower)
	for i := 0; i < 50; i++ {
		c.put(0, "o", fmt.Sprintf("k%d", i), "v")
	}
	c.start(follower, 3, nil, "", "")
	c.waitReady()
	c.ensureSameState(0)
}

func TestPartitionedLeaderAcknowledgesNothing(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	c.put(0, "o", "k", "before")
	leader := c.waitLeader(0)
	others := c.othersThan(leader.NodeID())
	c.net.partition([]string{leader.NodeID()}, others)

	// A write proposed on the isolated leader must never be acknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	resp, err := leader.Propose(ctx, 0, putCmd(t, "o", "k", "isolated"))
	cancel()
	if err == nil {
		t.Fatalf("the isolated leader acknowledged a write: %+v", resp)
	}
	if !errors.Is(err, ErrCommitUnknown) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("isolated write: err = %v, want ErrCommitUnknown or ErrNotLeader", err)
	}
	// The majority elects a new leader and goes on.
	waitFor(t, "a leader on the majority side", func() bool {
		for _, id := range others {
			if s := c.node(id).Shard(0); s.IsLeader() {
				return true
			}
		}
		return false
	})
	var majorityLeader *Node
	for _, id := range others {
		if c.node(id).Shard(0).IsLeader() {
			majorityLeader = c.node(id)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = majorityLeader.Propose(ctx, 0, putCmd(t, "o", "k", "majority"))
	cancel()
	if err != nil {
		t.Fatalf("write on the majority: %v", err)
	}
	c.net.heal()
	c.ensureSameState(0)
	for _, n := range c.running() {
		if got, _ := readStale(t, n, 0, "o", "k"); got != "majority" {
			t.Fatalf("%s holds %q after healing, want the majority's write", n.NodeID(), got)
		}
	}
}

func TestWholeClusterRestart(t *testing.T) {
	c := newTestCluster(t, 3, 4)
	for shard := uint32(0); shard < 4; shard++ {
		c.put(shard, "o", "k", fmt.Sprintf("v%d", shard))
	}
	for _, id := range c.ids {
		c.stop(id)
	}
	// Every node comes back on its old addresses but n3, whose Raft port
	// changes (a new container IP, say): gossip tells the others.
	for _, id := range c.ids {
		raftAddr := ""
		if id == "n3" {
			raftAddr = "127.0.0.1:0"
		}
		c.start(id, 3, nil, raftAddr, "")
	}
	c.waitReady()
	for shard := uint32(0); shard < 4; shard++ {
		c.put(shard, "o", "after", "x")
		c.ensureSameState(shard)
		for _, n := range c.running() {
			if got, ok := readStale(t, n, shard, "o", "k"); !ok || got != fmt.Sprintf("v%d", shard) {
				t.Fatalf("%s shard %d after restart: %q %v", n.NodeID(), shard, got, ok)
			}
		}
	}
}

// TestLeadershipLostMidCommitIsCommitUnknown checks that a write whose
// leader loses office after the entry reached its log, but before it
// committed, is answered ErrCommitUnknown (the entry may yet commit under
// the next leader, or vanish): never success, never a plain refusal. A
// leader can step down in the moment between the cut and the proposal; the
// entry then never reached its log (ErrNotLeader), and the test cuts again.
func TestLeadershipLostMidCommitIsCommitUnknown(t *testing.T) {
	c := newTestCluster(t, 3, 1)
	c.put(0, "o", "k", "before")
	for attempt := 1; attempt <= 5; attempt++ {
		leader := c.waitLeader(0)
		c.net.partition([]string{leader.NodeID()}, c.othersThan(leader.NodeID()))
		// Far longer than the leader lease (50 ms): the leader steps down
		// long before the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := leader.Propose(ctx, 0, putCmd(t, "o", "k", fmt.Sprintf("lost-%d", attempt)))
		cancel()
		c.net.heal()
		switch {
		case errors.Is(err, ErrNotLeader):
			t.Logf("attempt %d: %s stepped down before proposing", attempt, leader.NodeID())
			continue
		case !errors.Is(err, ErrCommitUnknown):
			t.Fatalf("a write whose leader lost office: err = %v, want ErrCommitUnknown", err)
		case !strings.Contains(err.Error(), raft.ErrLeadershipLost.Error()):
			t.Fatalf("ErrCommitUnknown for another reason than the lost leadership: %v", err)
		}
		c.ensureSameState(0)
		return
	}
	t.Fatal("in 5 attempts the cut leader never took the write into its log")
}
