package cluster

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/placement"
	"github.com/hashicorp/raft"
)

// fastRebalance rebalances quickly, with a dead-node grace of grace.
func fastRebalance(grace time.Duration) RebalanceConfig {
	return RebalanceConfig{DeadNodeGrace: grace, Interval: 50 * time.Millisecond, Settle: 300 * time.Millisecond, CatchUpSlack: 5, OrphanAge: 2 * time.Second}
}

// voters returns the voters of shard in its leader's configuration, sorted.
func (c *testCluster) voters(shard uint32) []string {
	c.t.Helper()
	leader := c.waitLeader(shard)
	st, err := leader.ShardStatus(shard)
	if err != nil {
		c.t.Fatal(err)
	}
	v := slices.Clone(st.Voters)
	slices.Sort(v)
	if len(st.NonVoters) > 0 {
		return append(v, "+nonvoters")
	}
	return v
}

// waitPlacement waits until every shard's voters are exactly its top-3
// rendezvous replicas over members, and every running node hosts exactly
// the shards it is a voter of.
func (c *testCluster) waitPlacement(members []string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for shard := uint32(0); shard < uint32(c.shards) && ok; shard++ {
			want, _ := placement.Replicas(shard, members, 3)
			want = slices.Clone(want)
			slices.Sort(want)
			if got := c.voters(shard); !slices.Equal(got, want) {
				ok = false
				if time.Now().After(deadline) {
					c.t.Fatalf("shard %d: voters %v, want %v", shard, got, want)
				}
			}
			for _, n := range c.running() {
				if (n.Shard(shard) != nil) != slices.Contains(want, n.NodeID()) {
					ok = false
					if time.Now().After(deadline) {
						c.t.Fatalf("shard %d: %s hosts it: %v; wanted on %v", shard, n.NodeID(), n.Shard(shard) != nil, want)
					}
				}
			}
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeAll writes one key per shard and returns them.
func (c *testCluster) writeAll(tag string) map[uint32]string {
	c.t.Helper()
	out := map[uint32]string{}
	for shard := uint32(0); shard < uint32(c.shards); shard++ {
		v := fmt.Sprintf("%s-%d", tag, shard)
		c.put(shard, "o", tag, v)
		out[shard] = v
	}
	return out
}

// checkAll checks that every running replica holds the values of writeAll.
func (c *testCluster) checkAll(tag string, want map[uint32]string) {
	c.t.Helper()
	for shard, v := range want {
		c.ensureSameState(shard)
		for _, n := range c.running() {
			if n.Shard(shard) == nil {
				continue
			}
			if got, ok := readStale(c.t, n, shard, "o", tag); !ok || got != v {
				c.t.Fatalf("%s shard %d: %s = %q (%v), want %q", n.NodeID(), shard, tag, got, ok, v)
			}
		}
	}
}

// configIndexes returns, per shard, the index of the latest configuration
// entry in its leader's log and that configuration's servers: they move only
// when the configuration changes. (raft's Stats cannot tell: its
// latest_configuration_index is always 0 in hashicorp/raft v1.7.)
func (c *testCluster) configIndexes() map[uint32]string {
	c.t.Helper()
	out := map[uint32]string{}
	for shard := uint32(0); shard < uint32(c.shards); shard++ {
		s := c.waitLeader(shard).Shard(shard)
		first, err := s.logs.FirstIndex()
		if err != nil {
			c.t.Fatal(err)
		}
		last, err := s.logs.LastIndex()
		if err != nil {
			c.t.Fatal(err)
		}
		index := uint64(0) // 0: compacted into a snapshot
		for i := last; i >= first && i > 0; i-- {
			var l raft.Log
			if err := s.logs.GetLog(i, &l); err != nil {
				c.t.Fatalf("shard %d: entry %d: %v", shard, i, err)
			}
			if l.Type == raft.LogConfiguration {
				index = i
				break
			}
		}
		f := s.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			c.t.Fatal(err)
		}
		out[shard] = fmt.Sprintf("%d %v", index, f.Configuration().Servers)
	}
	return out
}

func TestJoinRebalancesThreeToFive(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(time.Minute))
	before := c.writeAll("before")
	c.join("n4")
	c.join("n5")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4", "n5"})
	for _, id := range []string{"n4", "n5"} {
		if len(c.node(id).shardList()) == 0 {
			t.Fatalf("%s holds no shard after joining", id)
		}
	}
	c.checkAll("before", before)
	after := c.writeAll("after")
	c.checkAll("after", after)
}

func TestDrainFiveToThree(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(time.Minute))
	c.join("n4")
	c.join("n5")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4", "n5"})
	data := c.writeAll("data")
	for _, id := range []string{"n4", "n5"} {
		if err := c.node(id).Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c.waitPlacement([]string{"n1", "n2", "n3"})
	waitFor(t, "drained nodes to hold nothing", func() bool {
		return len(c.node("n4").shardList()) == 0 && len(c.node("n5").shardList()) == 0
	})
	c.stop("n4")
	c.stop("n5")
	c.checkAll("data", data)
}

func TestDeadNodeIsReplacedAfterGrace(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(2*time.Second))
	c.join("n4")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
	data := c.writeAll("data")
	c.stop("n4")
	c.waitPlacement([]string{"n1", "n2", "n3"})
	c.checkAll("data", data)
}

func TestRemoveDeadNodeAtOnce(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(time.Hour))
	c.join("n4")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
	if err := c.node("n1").RemoveNode("n2"); err == nil {
		t.Fatal("removing an alive node was accepted")
	}
	c.stop("n4")
	waitFor(t, "n4 dead in gossip", func() bool {
		for _, m := range c.node("n1").gossip.memberList() {
			if m.ID == "n4" {
				return m.State == StateDead
			}
		}
		return false
	})
	if err := c.node("n1").RemoveNode("n4"); err != nil {
		t.Fatal(err)
	}
	c.waitPlacement([]string{"n1", "n2", "n3"})
}

func TestRestartsAndFlapsMoveNothing(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(30*time.Second))
	c.join("n4")
	members := []string{"n1", "n2", "n3", "n4"}
	c.waitPlacement(members)
	data := c.writeAll("data")
	// From here, a rolling restart of every node, then one node flapping
	// three times, must change no configuration.
	before := c.configIndexes()
	for _, id := range members {
		c.stop(id)
		c.start(id, 3, nil, "", "")
		c.waitReady()
	}
	for i := 0; i < 3; i++ {
		c.stop("n2")
		c.start("n2", 3, nil, "", "")
	}
	c.waitReady()
	c.waitPlacement(members)
	if after := c.configIndexes(); !maps.Equal(before, after) {
		t.Fatalf("configurations changed during restarts: before %v, after %v", before, after)
	}
	c.checkAll("data", data)
}

// waitLeadersSpread waits until no running node leads more than its share
// of the shards (the share rounded up), and returns how many each leads.
func (c *testCluster) waitLeadersSpread() map[string]int {
	c.t.Helper()
	nodes := c.running()
	share := (c.shards + len(nodes) - 1) / len(nodes)
	var leads map[string]int
	waitFor(c.t, "leaders spread across nodes", func() bool {
		leads = map[string]int{}
		total := 0
		for _, n := range nodes {
			leads[n.NodeID()] = len(n.LedShards())
			total += leads[n.NodeID()]
		}
		if total != c.shards {
			return false
		}
		for _, l := range leads {
			if l > share {
				return false
			}
		}
		return true
	})
	return leads
}

func TestLeadersSpreadAfterStartAndRestart(t *testing.T) {
	c := newTestClusterWith(t, 3, 12, fastRebalance(time.Minute))
	t.Logf("after start: %v", c.waitLeadersSpread())
	// n1 goes away: the others take its leaderships. When it comes back it
	// leads nothing until the others hand it its share.
	c.stop("n1")
	waitFor(t, "n2 and n3 to lead every shard", func() bool {
		return len(c.node("n2").LedShards())+len(c.node("n3").LedShards()) == c.shards
	})
	before := c.configIndexes()
	handoffs := c.handoffs.Load()
	c.start("n1", 3, nil, "", "")
	c.waitReady()
	leads := c.waitLeadersSpread()
	if leads["n1"] != 4 {
		t.Fatalf("after the restart n1 leads %d shards, want 4: %v", leads["n1"], leads)
	}
	if after := c.configIndexes(); !maps.Equal(before, after) {
		t.Fatalf("balancing leaders changed configurations: before %v, after %v", before, after)
	}
	// Each transfer first let the leader's other work reach a clean point.
	if h := c.handoffs.Load() - handoffs; h < 4 {
		t.Fatalf("%d handoff calls for the 4 or more transfers to n1", h)
	}
	// A joining node gets leaderships too, along with replicas.
	c.join("n4")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
	if leads := c.waitLeadersSpread(); leads["n4"] != 3 {
		t.Fatalf("after the join n4 leads %d shards, want 3: %v", leads["n4"], leads)
	}
}

func TestNodeTakesNewReplicasTwoAtATime(t *testing.T) {
	c := newTestClusterWith(t, 3, 8, fastRebalance(time.Minute))
	c.join("n4")
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
	// The node that hosts the fewest shards.
	var n *Node
	var missing []uint32
	for _, cand := range c.running() {
		var lacks []uint32
		for shard := uint32(0); shard < uint32(c.shards); shard++ {
			if cand.Shard(shard) == nil {
				lacks = append(lacks, shard)
			}
		}
		if len(lacks) > len(missing) {
			n, missing = cand, lacks
		}
	}
	if len(missing) < maxCatchUps+1 {
		t.Fatalf("the most shards a node lacks is %d (%v); the test needs %d", len(missing), missing, maxCatchUps+1)
	}
	// Replicas no leader has added yet count as catching up: the node
	// takes maxCatchUps of them and refuses the next.
	for i, shard := range missing[:maxCatchUps+1] {
		resp := n.handleControl(controlRequest{Op: "create", Shard: shard})
		if busy := i == maxCatchUps; (resp.Err != "") != busy || busy && n.Shard(shard) != nil {
			t.Fatalf("create #%d (shard %d): err %q, hosted %v", i+1, shard, resp.Err, n.Shard(shard) != nil)
		}
	}
	// A replica it already hosts is no new work: creating it again is fine.
	if resp := n.handleControl(controlRequest{Op: "create", Shard: missing[0]}); resp.Err != "" {
		t.Fatalf("create of a hosted replica: %q", resp.Err)
	}
	// Nobody adds them: they are orphans, dropped after OrphanAge, and the
	// node takes new replicas again.
	waitFor(t, "the unused replicas to be dropped", func() bool { return n.catchingUp() == 0 })
	c.waitPlacement([]string{"n1", "n2", "n3", "n4"})
}
