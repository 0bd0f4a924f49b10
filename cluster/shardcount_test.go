package cluster

import "testing"

// The shard count decides where every object lives, so every member must
// agree on it. A node started without one keeps its data directory's count,
// or a new one takes the running cluster's; a node given another count stays
// out of the cluster rather than route objects to the wrong shards.

func TestRestartWithoutShardCountKeepsTheDataDirectorys(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, 3)
	if _, err := n.Propose(t.Context(), 2, putCmd(t, "o", "k", "v")); err != nil {
		t.Fatal(err)
	}
	n.Close()

	n = startNode(t, dir, 0)
	defer n.Close()
	if got := n.ShardCount(); got != 3 {
		t.Fatalf("ShardCount after a restart without a count = %d, want the data directory's 3", got)
	}
	if got, found := readKey(t, n, 2, "o", "k"); !found || got != "v" {
		t.Fatalf("shard 2 after restart: got %q (found %v), want \"v\"", got, found)
	}
}

func TestNewNodeWithoutShardCountStartsWithTheDefault(t *testing.T) {
	n := startNode(t, t.TempDir(), 0)
	defer n.Close()
	if got := n.ShardCount(); got != DefaultShards {
		t.Fatalf("ShardCount = %d, want DefaultShards (%d)", got, DefaultShards)
	}
}

func TestJoiningNodeTakesTheClustersShardCount(t *testing.T) {
	c := newTestCluster(t, 3, 4)
	c.shards = 0 // n4 is started without a count
	n4 := c.join("n4")
	waitFor(t, "n4 to join", n4.Ready)
	if got := n4.ShardCount(); got != 4 {
		t.Fatalf("n4's ShardCount = %d, want the cluster's 4", got)
	}
	// It routes by the cluster's count, and keeps that count across a
	// restart without one.
	for shard := uint32(0); shard < 4; shard++ {
		if r := n4.Route(shard); r.Leader == "" {
			t.Fatalf("n4 knows no leader of shard %d", shard)
		}
	}
	c.stop("n4")
	n4 = c.start("n4", 3, nil, "", "")
	if got := n4.ShardCount(); got != 4 {
		t.Fatalf("n4's ShardCount after a restart = %d, want 4", got)
	}
}

func TestJoiningNodeWithAnotherShardCountStaysOut(t *testing.T) {
	c := newTestCluster(t, 3, 4)
	c.shards = 8
	n4 := c.join("n4")
	waitFor(t, "n4 to decide it stays out", func() bool { return n4.outOfCluster.Load() != nil })
	t.Logf("n4 stays out: %s", *n4.outOfCluster.Load())
	if n4.Ready() {
		t.Fatal("n4, started with 8 shards, became ready in a 4-shard cluster")
	}
	if got := n4.ShardCount(); got != 8 {
		t.Fatalf("n4's ShardCount = %d, want its own 8 (it must not adopt a count it was given)", got)
	}
	for shard := uint32(0); shard < 8; shard++ {
		r := n4.Route(shard)
		if r.Leader != "" || r.Hosted || len(r.Hosts) > 0 {
			t.Fatalf("n4 routes shard %d to %+v; it must route nothing outside the cluster", shard, r)
		}
		if r.OutOfCluster == "" {
			t.Fatalf("n4's route of shard %d does not say why it stays out", shard)
		}
	}
	if len(n4.shardList()) != 0 {
		t.Fatalf("n4 hosts %d shards; want none", len(n4.shardList()))
	}
}
