package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/placement"
	"github.com/hashicorp/raft"
)

// newCutCluster starts size nodes that bootstrap together (BootstrapExpect
// size) with every Raft link cut, and waits until each has recorded its
// bootstrap. Gossip still works, so bootstrap proceeds; but no entry moves
// between nodes, so a shard's log on a node holds exactly what that node
// wrote itself: the first configuration, if it bootstrapped the shard.
func newCutCluster(t *testing.T, size, shards int) *testCluster {
	t.Helper()
	c := newUnstartedCluster(t, size, shards, RebalanceConfig{Disabled: true})
	// The faultNet learns a node's Raft address only once its Start
	// returned; dials to addresses it does not know yet (owner "") are cut
	// as well.
	c.net.partition(c.ids, append(slices.Clone(c.ids), ""))
	c.startAll()
	waitFor(t, "every node to bootstrap", func() bool {
		for _, n := range c.running() {
			if !readState(t, c.dirs[n.NodeID()]).Bootstrapped {
				return false
			}
		}
		return true
	})
	return c
}

// readState reads a node's state file.
func readState(t *testing.T, dir string) nodeState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st nodeState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// firstEntry returns the entry at index 1 of n's log of shard.
func firstEntry(t *testing.T, n *Node, shard uint32) raft.Log {
	t.Helper()
	var l raft.Log
	if err := n.Shard(shard).logs.GetLog(1, &l); err != nil {
		t.Fatalf("%s shard %d: entry 1: %v", n.NodeID(), shard, err)
	}
	return l
}

// configEntries returns the indexes of the configuration entries of n's log
// of shard. (raft's Stats cannot tell: its latest_configuration_index is
// always 0 in hashicorp/raft v1.7, whose GetConfiguration fills in no
// index.)
func configEntries(t *testing.T, n *Node, shard uint32) []uint64 {
	t.Helper()
	s := n.Shard(shard)
	first, err := s.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 {
		t.Fatalf("%s shard %d: the log starts at %d, not 1", n.NodeID(), shard, first)
	}
	var out []uint64
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			t.Fatalf("%s shard %d: entry %d: %v", n.NodeID(), shard, i, err)
		}
		if l.Type == raft.LogConfiguration {
			out = append(out, i)
		}
	}
	return out
}

// TestBootstrapOnceByTopRanked checks that in a fresh cluster started with
// BootstrapExpect, each shard's group is bootstrapped by exactly one node,
// the first of its replicas by rendezvous ranking, with those replicas as
// voters; that every replica then holds that one first configuration; and
// that restarting every node bootstraps nothing again.
func TestBootstrapOnceByTopRanked(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			testBootstrapOnce(t, size, 8)
		})
	}
}

func testBootstrapOnce(t *testing.T, size, shards int) {
	c := newCutCluster(t, size, shards)
	replicas := map[uint32][]string{}
	for shard := uint32(0); shard < uint32(shards); shard++ {
		r, err := placement.Replicas(shard, c.ids, 3)
		if err != nil {
			t.Fatal(err)
		}
		replicas[shard] = r
	}
	states := map[string]nodeState{}
	for _, id := range c.ids {
		st := readState(t, c.dirs[id])
		if !slices.Equal(st.BootMembers, c.ids) {
			t.Fatalf("%s bootstrapped over %v, want %v", id, st.BootMembers, c.ids)
		}
		states[id] = st
	}

	// With no link between nodes, only the bootstrapping node of a shard
	// has anything in its log.
	firsts := map[uint32]raft.Log{}
	for shard, r := range replicas {
		for _, n := range c.running() {
			s := n.Shard(shard)
			if hosts := s != nil; hosts != slices.Contains(r, n.NodeID()) {
				t.Fatalf("shard %d: %s hosts it: %v; its replicas are %v", shard, n.NodeID(), hosts, r)
			}
			if s == nil {
				continue
			}
			has, err := raft.HasExistingState(s.logs, s.logs, s.snaps)
			if err != nil {
				t.Fatal(err)
			}
			if n.NodeID() != r[0] {
				if has {
					last, _ := s.logs.LastIndex()
					t.Fatalf("shard %d: %s, not its top-ranked replica %s, bootstrapped it (last index %d)", shard, n.NodeID(), r[0], last)
				}
				continue
			}
			if !has {
				t.Fatalf("shard %d: its top-ranked replica %s did not bootstrap it", shard, n.NodeID())
			}
			first, _ := s.logs.FirstIndex()
			last, _ := s.logs.LastIndex()
			if first != 1 || last != 1 {
				t.Fatalf("shard %d on %s: log holds %d..%d, want only the bootstrap entry", shard, n.NodeID(), first, last)
			}
			l := firstEntry(t, n, shard)
			if l.Type != raft.LogConfiguration || l.Term != 1 {
				t.Fatalf("shard %d: entry 1 is %v of term %d, want a configuration of term 1", shard, l.Type, l.Term)
			}
			var ids []string
			for _, srv := range raft.DecodeConfiguration(l.Data).Servers {
				if srv.Suffrage != raft.Voter {
					t.Fatalf("shard %d: bootstrapped with %s as %v", shard, srv.ID, srv.Suffrage)
				}
				if want := c.node(string(srv.ID)).RaftAddr(); string(srv.Address) != want {
					t.Fatalf("shard %d: %s at %s, want %s", shard, srv.ID, srv.Address, want)
				}
				ids = append(ids, string(srv.ID))
			}
			if !slices.Equal(ids, r) {
				t.Fatalf("shard %d bootstrapped over %v, want its replicas %v", shard, ids, r)
			}
			firsts[shard] = l
		}
	}

	// Once linked, every replica holds that one first configuration, and no
	// other configuration was ever appended.
	c.net.heal()
	c.waitReady()
	checkFirsts := func(when string) {
		t.Helper()
		for shard, r := range replicas {
			c.put(shard, "o", "k", when)
			c.ensureSameState(shard)
			for _, id := range r {
				n := c.node(id)
				l := firstEntry(t, n, shard)
				want := firsts[shard]
				if l.Type != want.Type || l.Term != want.Term || !bytes.Equal(l.Data, want.Data) {
					t.Fatalf("%s: shard %d on %s: entry 1 differs from the bootstrap entry", when, shard, id)
				}
				if got := configEntries(t, n, shard); !slices.Equal(got, []uint64{1}) {
					t.Fatalf("%s: shard %d on %s: configurations at indexes %v, want only 1", when, shard, id, got)
				}
			}
		}
	}
	checkFirsts("linked")

	// A restart of every node bootstraps nothing: the state file still says
	// the node bootstrapped, over the same members; each node hosts the same
	// replicas; no replica took a second first configuration; and Raft
	// itself refuses one on every replica.
	hosted := map[string][]uint32{}
	for _, n := range c.running() {
		for _, s := range n.shardList() {
			hosted[n.NodeID()] = append(hosted[n.NodeID()], s.id)
		}
	}
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id, size, nil, "", "")
	}
	c.waitReady()
	for _, n := range c.running() {
		id := n.NodeID()
		if st := readState(t, c.dirs[id]); !st.Bootstrapped || !slices.Equal(st.BootMembers, states[id].BootMembers) {
			t.Fatalf("%s after restart: state %+v, before %+v", id, st, states[id])
		}
		var now []uint32
		for _, s := range n.shardList() {
			now = append(now, s.id)
		}
		if !slices.Equal(now, hosted[id]) {
			t.Fatalf("%s hosts shards %v after restart, %v before", id, now, hosted[id])
		}
	}
	checkFirsts("restarted")
	for shard, r := range replicas {
		conf := raft.DecodeConfiguration(firsts[shard].Data)
		for _, id := range r {
			err := c.node(id).Shard(shard).raft.BootstrapCluster(conf).Error()
			if !errors.Is(err, raft.ErrCantBootstrap) {
				t.Fatalf("shard %d on %s: a second bootstrap: err = %v, want raft.ErrCantBootstrap", shard, id, err)
			}
		}
	}
}

// TestRestartAfterMovesBootstrapsNothing restarts a node some of whose
// first replicas have moved to a node that joined later. Were the restart
// to bootstrap again, over the members of the first bootstrap, the node
// would open those replicas again, and start a second group of each shard it
// ranks first for, with the old members; it must open none of them.
func TestRestartAfterMovesBootstrapsNothing(t *testing.T) {
	rb := fastRebalance(time.Minute)
	rb.OrphanAge = time.Minute // no orphan collection hides a replica opened by mistake
	c := newTestClusterWith(t, 3, 8, rb)
	c.join("n4")
	members := []string{"n1", "n2", "n3", "n4"}
	c.waitPlacement(members)

	// The shards each first member lost to n4.
	var id string
	var lost []uint32
	for _, m := range members[:3] {
		var l []uint32
		for shard := uint32(0); shard < 8; shard++ {
			r, err := placement.Replicas(shard, members, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(r, m) {
				l = append(l, shard)
			}
		}
		if len(l) > len(lost) {
			id, lost = m, l
		}
	}
	if len(lost) == 0 {
		t.Fatal("no first member lost a replica to n4")
	}
	before := readState(t, c.dirs[id])

	c.stop(id)
	n := c.start(id, 3, nil, "", "")
	c.waitReady()
	waitFor(t, id+" to rejoin gossip", n.gossip.joined.Load)
	// A node waiting to bootstrap acts on its first tick (200 ms) once it
	// has rejoined: watch for five of them.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, shard := range lost {
			if n.Shard(shard) != nil {
				t.Fatalf("%s opened a replica of shard %d again after a restart: it bootstrapped again", id, shard)
			}
		}
	}
	if after := readState(t, c.dirs[id]); !after.Bootstrapped || !slices.Equal(after.BootMembers, before.BootMembers) {
		t.Fatalf("%s state after restart %+v, before %+v", id, after, before)
	}
	c.waitPlacement(members)
}

// TestWipedNodeBootstrapsNothing brings back a node that lost its data
// directory, under its id but at a new Raft address, and joins it to the
// running cluster. It must not bootstrap again the groups it ranks first
// for: its replicas catch up from the leaders and end with the groups' own
// first configuration, not one of its own at the same index and term
// (which would name its new address, and which Raft would never repair).
func TestWipedNodeBootstrapsNothing(t *testing.T) {
	const shards = 8
	c := newTestCluster(t, 3, shards)
	first := map[string][]uint32{} // node → the shards it ranks first for
	for shard := uint32(0); shard < shards; shard++ {
		r, err := placement.Replicas(shard, c.ids, 3)
		if err != nil {
			t.Fatal(err)
		}
		first[r[0]] = append(first[r[0]], shard)
		c.put(shard, "o", "k", "before")
	}
	id := c.ids[0]
	for _, o := range c.ids {
		if len(first[o]) > len(first[id]) {
			id = o
		}
	}
	if len(first[id]) == 0 {
		t.Fatal("no node ranks first for any shard")
	}
	want := map[uint32]raft.Log{}
	for _, shard := range first[id] {
		want[shard] = firstEntry(t, c.node(id), shard)
	}
	oldAddr := c.node(id).RaftAddr()

	c.stop(id)
	c.dirs[id] = t.TempDir()
	seed := c.addrs[c.othersThan(id)[0]][1]
	n := c.start(id, 3, []string{seed}, "127.0.0.1:0", "")
	if n.RaftAddr() == oldAddr {
		t.Fatalf("%s came back at its old Raft address %s", id, oldAddr)
	}
	c.waitReady()
	for _, shard := range first[id] {
		c.put(shard, "o", "k", "after")
		c.ensureSameState(shard)
		if n.Shard(shard) == nil {
			t.Fatalf("%s does not host shard %d again", id, shard)
		}
		if got, _ := readStale(t, n, shard, "o", "k"); got != "after" {
			t.Fatalf("shard %d on %s: k = %q, want the latest write", shard, id, got)
		}
		l := firstEntry(t, n, shard)
		if w := want[shard]; l.Type != w.Type || l.Term != w.Term || !bytes.Equal(l.Data, w.Data) {
			t.Fatalf("shard %d on %s: entry 1 is %v of term %d with %+v; want the group's first configuration %+v",
				shard, id, l.Type, l.Term, raft.DecodeConfiguration(l.Data).Servers, raft.DecodeConfiguration(w.Data).Servers)
		}
	}
}
