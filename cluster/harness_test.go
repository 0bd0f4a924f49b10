package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// fastGossip is a memberlist tuning for tests on loopback.
func fastGossip() GossipConfig {
	return GossipConfig{
		ProbeInterval:     100 * time.Millisecond,
		ProbeTimeout:      50 * time.Millisecond,
		SuspicionMult:     2,
		GossipInterval:    20 * time.Millisecond,
		PushPullInterval:  300 * time.Millisecond,
		ReconnectInterval: 300 * time.Millisecond,
	}
}

// faultNet lets a test cut the Raft links between chosen nodes: dials
// between cut nodes fail and their open connections are closed.
type faultNet struct {
	mu    sync.Mutex
	owner map[string]string // raft address → node id
	cut   map[[2]string]bool
	conns map[string][]net.Conn // open connections by the node that dialed them
}

func newFaultNet() *faultNet {
	return &faultNet{owner: map[string]string{}, cut: map[[2]string]bool{}, conns: map[string][]net.Conn{}}
}

func (f *faultNet) dialer(from string) func(string, string, time.Duration) (net.Conn, error) {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		f.mu.Lock()
		if to := f.owner[addr]; f.cut[[2]string{from, to}] {
			f.mu.Unlock()
			return nil, fmt.Errorf("faultnet: %s → %s is cut", from, to)
		}
		f.mu.Unlock()
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		// A partition made while this dial was under way did not see the
		// connection among those to close: it must not get through.
		if to := f.owner[addr]; f.cut[[2]string{from, to}] {
			c.Close()
			return nil, fmt.Errorf("faultnet: %s → %s is cut", from, to)
		}
		f.conns[from] = append(f.conns[from], c)
		return c, nil
	}
}

// partition cuts every link between the nodes of a and those of b. A
// connection's far end is found by its address when the cut is made, so
// connections opened before the test knew a node's address are cut too.
func (f *faultNet) partition(a, b []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			f.cut[[2]string{x, y}] = true
			f.cut[[2]string{y, x}] = true
		}
	}
	for from, conns := range f.conns {
		kept := conns[:0]
		for _, c := range conns {
			if f.cut[[2]string{from, f.owner[c.RemoteAddr().String()]}] {
				c.Close()
			} else {
				kept = append(kept, c)
			}
		}
		f.conns[from] = kept
	}
}

func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}

// testCluster is an in-process cluster on loopback.
type testCluster struct {
	t      *testing.T
	shards int
	net    *faultNet
	dirs   map[string]string
	addrs  map[string][2]string // id → raft, gossip address of its last start
	mu     sync.Mutex
	nodes  map[string]*Node
	ids    []string
	// rebalance is the rebalancing tuning every node starts with.
	rebalance RebalanceConfig
	// handoffs counts the calls of Config.OnHandoff.
	handoffs atomic.Int64
}

func newTestCluster(t *testing.T, size, shards int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, size, shards, RebalanceConfig{Disabled: true})
}

// newTestClusterWith starts a cluster whose nodes rebalance as rb says.
func newTestClusterWith(t *testing.T, size, shards int, rb RebalanceConfig) *testCluster {
	t.Helper()
	c := newUnstartedCluster(t, size, shards, rb)
	c.startAll()
	c.waitReady()
	return c
}

// newUnstartedCluster names size nodes n1… and gives each a data
// directory; the test ends by stopping whichever run.
func newUnstartedCluster(t *testing.T, size, shards int, rb RebalanceConfig) *testCluster {
	t.Helper()
	c := &testCluster{t: t, shards: shards, net: newFaultNet(), dirs: map[string]string{},
		addrs: map[string][2]string{}, nodes: map[string]*Node{}, rebalance: rb}
	for i := 1; i <= size; i++ {
		id := fmt.Sprintf("n%d", i)
		c.ids = append(c.ids, id)
		c.dirs[id] = t.TempDir()
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.stop(id)
		}
	})
	return c
}

// startAll starts every node of a new cluster, expecting all of them, each
// after the first joining the first.
func (c *testCluster) startAll() {
	c.t.Helper()
	for i, id := range c.ids {
		var join []string
		if i > 0 {
			join = []string{c.addrs[c.ids[0]][1]}
		}
		c.start(id, len(c.ids), join, "", "")
	}
}

// othersThan returns the ids of every node but id.
func (c *testCluster) othersThan(id string) []string {
	var out []string
	for _, o := range c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

// start starts node id; raftAddr and gossipAddr "" mean its previous ones
// (or fresh ports on the first start).
func (c *testCluster) start(id string, expect int, join []string, raftAddr, gossipAddr string) *Node {
	c.t.Helper()
	prev := c.addrs[id]
	if raftAddr == "" {
		raftAddr = prev[0]
	}
	if gossipAddr == "" {
		gossipAddr = prev[1]
	}
	if raftAddr == "" {
		raftAddr = "127.0.0.1:0"
	}
	if gossipAddr == "" {
		gossipAddr = "127.0.0.1:0"
	}
	onHandoff := func(context.Context, uint32) func() {
		c.handoffs.Add(1)
		return func() {}
	}
	n, err := New(Config{
		NodeID:          id,
		DataDir:         c.dirs[id],
		RaftAddr:        raftAddr,
		GossipAddr:      gossipAddr,
		HTTPAddr:        "127.0.0.1:1", // unused here
		Join:            join,
		BootstrapExpect: expect,
		Shards:          c.shards,
		Raft:            fastRaft(),
		Gossip:          fastGossip(),
		Rebalance:       c.rebalance,
		Logger:          testLogger(c.t),
		Dial:            c.net.dialer(id),
		OnHandoff:       onHandoff,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.addrs[id] = [2]string{n.RaftAddr(), n.cfg.AdvertiseGossipAddr}
	c.net.mu.Lock()
	c.net.owner[n.RaftAddr()] = id
	c.net.mu.Unlock()
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// join starts a new node that joins the running cluster.
func (c *testCluster) join(id string) *Node {
	c.t.Helper()
	seed := c.running()[0].GossipAddr()
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	c.dirs[id] = c.t.TempDir()
	return c.start(id, 3, []string{seed}, "", "")
}

// stop closes node id (a crash as far as the others can tell).
func (c *testCluster) stop(id string) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("close %s: %v", id, err)
		}
	}
}

func (c *testCluster) node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// waitFor polls cond every 10 ms until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *testCluster) waitReady() {
	c.t.Helper()
	defer func() {
		if c.t.Failed() {
			for _, n := range c.running() {
				for _, s := range n.shardList() {
					c.t.Logf("%s shard %d: state %v leader %q ready %v term %d", n.NodeID(), s.id, s.raft.State(), s.Leader(), s.fsm.Ready(), s.raft.CurrentTerm())
				}
			}
		}
	}()
	waitFor(c.t, "every node ready", func() bool {
		for _, n := range c.running() {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
}

// waitLeader waits until exactly one running node leads shard and every
// running member of its configuration agrees, and returns it.
func (c *testCluster) waitLeader(shard uint32) *Node {
	c.t.Helper()
	var leader *Node
	var why string
	defer func() {
		if c.t.Failed() && why != "" {
			c.t.Logf("shard %d: %s", shard, why)
		}
	}()
	waitFor(c.t, fmt.Sprintf("a leader of shard %d", shard), func() bool {
		leader = nil
		for _, n := range c.running() {
			s := n.Shard(shard)
			if s == nil {
				continue
			}
			if s.IsLeader() {
				if leader != nil {
					why = "two leaders: " + leader.NodeID() + " and " + n.NodeID()
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			why = "no leader"
			return false
		}
		st, err := leader.ShardStatus(shard)
		if err != nil {
			why = err.Error()
			return false
		}
		members := append(slices.Clone(st.Voters), st.NonVoters...)
		for _, n := range c.running() {
			if s := n.Shard(shard); s != nil && slices.Contains(members, n.NodeID()) && s.Leader() != leader.NodeID() {
				why = fmt.Sprintf("%s thinks the leader is %q, not %s", n.NodeID(), s.Leader(), leader.NodeID())
				return false
			}
		}
		return true
	})
	return leader
}

// waitApplied waits until every running replica of shard applied index.
func (c *testCluster) waitApplied(shard uint32, index uint64) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("shard %d applied %d everywhere", shard, index), func() bool {
		for _, n := range c.running() {
			if s := n.Shard(shard); s != nil && s.FSM().Applied() < index {
				return false
			}
		}
		return true
	})
}

// shardContents returns every key and value of shard on n.
func shardContents(t *testing.T, n *Node, shard uint32) [][2][]byte {
	t.Helper()
	lo, hi := objectstore.ShardSpan(shard)
	it, err := n.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out
}

// ensureSameState waits until every running replica of shard holds exactly
// the same keys and values.
func (c *testCluster) ensureSameState(shard uint32) {
	c.t.Helper()
	leader := c.waitLeader(shard)
	c.waitApplied(shard, leader.Shard(shard).FSM().Applied())
	want := shardContents(c.t, leader, shard)
	for _, n := range c.running() {
		if n.Shard(shard) == nil || n == leader {
			continue
		}
		got := shardContents(c.t, n, shard)
		if len(got) != len(want) {
			c.t.Fatalf("shard %d: %s holds %d records, leader %s holds %d", shard, n.NodeID(), len(got), leader.NodeID(), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i][0], want[i][0]) || !bytes.Equal(got[i][1], want[i][1]) {
				c.t.Fatalf("shard %d: %s differs from leader %s at record %d", shard, n.NodeID(), leader.NodeID(), i)
			}
		}
	}
}

// put writes obj/key=value on shard through its current leader, retrying
// while leadership moves, and returns the version.
func (c *testCluster) put(shard uint32, obj, key, value string) uint64 {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		leader := c.waitLeader(shard)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := leader.Propose(ctx, shard, putCmd(c.t, obj, key, value))
		cancel()
		if err == nil {
			if resp.Err != nil {
				c.t.Fatalf("put: %v", resp.Err)
			}
			return resp.Tx.Version
		}
		if attempt > 50 {
			c.t.Fatalf("put on shard %d: %v", shard, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readStale(t *testing.T, n *Node, shard uint32, obj, key string) (string, bool) {
	t.Helper()
	var got string
	var found bool
	err := n.Read(context.Background(), shard, true, func(r pebble.Reader) error {
		v, ok, err := objectstore.GetValue(r, objectstore.Object{Shard: shard, Namespace: "ns", Name: obj}, key)
		got, found = string(v.Data), ok
		return err
	})
	if err != nil {
		t.Fatalf("stale read on %s: %v", n.NodeID(), err)
	}
	return got, found
}
