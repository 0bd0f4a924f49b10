package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/internal/logging"
	"github.com/cairndb/cairn/internal/wire"
	"github.com/hashicorp/memberlist"
)

// Membership comes from hashicorp/memberlist. Each node gossips two things:
//
//   - its metadata (memberMeta, memberlist's NodeMeta): its Raft and HTTP
//     addresses and whether it has bootstrapped, so a node that comes back
//     with a new IP is found again by id;
//   - its shard state (shardState): which shards it hosts and which it leads
//     at which term. A node broadcasts its own state whenever a leadership
//     changes, and every push/pull exchange carries all the states a node
//     knows, so a node that hosts no replica of a shard still knows where to
//     forward a request for it.
//
// Memberlist is the authority on who is alive; Raft's configuration, not
// gossip, is the authority on who is a voter of a shard.

// memberMeta is a node's memberlist metadata.
type memberMeta struct {
	Version      int    `json:"v"`
	RaftAddr     string `json:"r"`
	HTTPAddr     string `json:"h"`
	Bootstrapped bool   `json:"b"`
	Expect       int    `json:"e,omitempty"`
	Shards       int    `json:"s"`
	// BootMembers is the member set this node bootstrapped over.
	BootMembers []string `json:"m,omitempty"`
	// Draining is set while the node is being drained: it is no longer
	// eligible to hold replicas.
	Draining bool `json:"d,omitempty"`
}

const metaVersion = 1

// Member states as API.md names them.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// member is what this node knows of another (or itself).
type member struct {
	ID         string
	GossipAddr string
	Meta       memberMeta
	State      string
	Since      time.Time // when State last changed
}

// shardState is one node's view of its own replicas.
type shardState struct {
	Node   string
	Seq    uint64            // increases with every change the node makes
	Hosted []uint32          // shards the node holds a replica of
	Led    map[uint32]uint64 // shards it leads → the term it leads in
	// Removed lists nodes an operator declared gone for good through this
	// node (DELETE /v1/cluster/nodes/{id}); every node unions them.
	Removed []string
}

const shardStateVersion = 1

func appendShardState(b []byte, s *shardState) []byte {
	b = wire.AppendString(b, s.Node)
	b = wire.AppendUvarint(b, s.Seq)
	b = wire.AppendUvarint(b, uint64(len(s.Hosted)))
	for _, id := range s.Hosted {
		b = wire.AppendUvarint(b, uint64(id))
	}
	led := make([]uint32, 0, len(s.Led))
	for id := range s.Led {
		led = append(led, id)
	}
	slices.Sort(led)
	b = wire.AppendUvarint(b, uint64(len(led)))
	for _, id := range led {
		b = wire.AppendUvarint(b, uint64(id))
		b = wire.AppendUvarint(b, s.Led[id])
	}
	b = wire.AppendUvarint(b, uint64(len(s.Removed)))
	for _, id := range s.Removed {
		b = wire.AppendString(b, id)
	}
	return b
}

func readShardState(d *wire.Decoder) *shardState {
	s := &shardState{Node: d.String(), Seq: d.Uvarint(), Led: map[uint32]uint64{}}
	s.Hosted = make([]uint32, d.Count(1))
	for i := range s.Hosted {
		s.Hosted[i] = uint32(d.Uvarint())
	}
	for n := d.Count(2); n > 0; n-- {
		id := uint32(d.Uvarint())
		s.Led[id] = d.Uvarint()
	}
	s.Removed = make([]string, d.Count(1))
	for i := range s.Removed {
		s.Removed[i] = d.String()
	}
	return s
}

// encodeShardStates encodes a gossip message of shard states.
func encodeShardStates(states []*shardState) []byte {
	b := []byte{shardStateVersion}
	b = wire.AppendUvarint(b, uint64(len(states)))
	for _, s := range states {
		b = appendShardState(b, s)
	}
	return b
}

func decodeShardStates(b []byte) ([]*shardState, error) {
	d := wire.NewDecoder(b)
	if d.Byte() != shardStateVersion {
		return nil, fmt.Errorf("cluster: gossip: unknown shard state version")
	}
	out := make([]*shardState, d.Count(3))
	for i := range out {
		out[i] = readShardState(d)
	}
	if d.Err() != nil || d.Len() != 0 {
		return nil, fmt.Errorf("cluster: gossip: malformed shard state")
	}
	return out, nil
}

// gossip runs memberlist for a node and keeps the membership and shard map
// it learns.
type gossip struct {
	n     *Node
	log   *slog.Logger
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue

	mu      sync.RWMutex
	members map[string]*member
	states  map[string]*shardState // by node id; this node's own included
	meta    memberMeta
	changed chan struct{} // signalled (non-blocking) on membership changes
	peersCh chan struct{} // likewise, for rememberPeers
	joined  atomic.Bool   // the join asked for at start has succeeded, or none was
}

// GossipConfig tunes memberlist. Zero fields take memberlist's LAN defaults,
// except PushPullInterval (5 s: it also spreads the shard map).
type GossipConfig struct {
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	SuspicionMult    int
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	// ReconnectInterval is how often a node tries to join again the members
	// it sees as dead (default 10 s). Memberlist gives up on a dead member
	// after a while; without this, both sides of a healed partition would
	// go on seeing each other dead.
	ReconnectInterval time.Duration
}

func (n *Node) startGossip() error {
	g := &gossip{
		n:       n,
		log:     n.log.With("component", "gossip"),
		members: map[string]*member{},
		states:  map[string]*shardState{},
		changed: make(chan struct{}, 1),
		peersCh: make(chan struct{}, 1),
		meta: memberMeta{
			Version:      metaVersion,
			RaftAddr:     n.cfg.AdvertiseRaftAddr,
			HTTPAddr:     n.cfg.HTTPAddr,
			Bootstrapped: n.state.Bootstrapped,
			Expect:       n.cfg.BootstrapExpect,
			Shards:       n.ShardCount(),
			BootMembers:  n.state.BootMembers,
			Draining:     n.state.Draining,
		},
	}
	g.states[n.cfg.NodeID] = &shardState{Node: n.cfg.NodeID, Led: map[uint32]uint64{}, Removed: n.state.Removed}

	c := memberlist.DefaultLANConfig()
	c.Name = n.cfg.NodeID
	host, port, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("cluster: gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	c.BindAddr = host
	if c.BindPort, err = strconv.Atoi(port); err != nil {
		return fmt.Errorf("cluster: gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	if n.cfg.AdvertiseGossipAddr != "" {
		ah, ap, err := net.SplitHostPort(n.cfg.AdvertiseGossipAddr)
		if err != nil {
			return fmt.Errorf("cluster: advertised gossip address %q: %w", n.cfg.AdvertiseGossipAddr, err)
		}
		c.AdvertiseAddr = ah
		if c.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return fmt.Errorf("cluster: advertised gossip address %q: %w", n.cfg.AdvertiseGossipAddr, err)
		}
	}
	gc := n.cfg.Gossip
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.ProbeInterval, gc.ProbeInterval}, {&c.ProbeTimeout, gc.ProbeTimeout},
		{&c.GossipInterval, gc.GossipInterval}, {&c.PushPullInterval, gc.PushPullInterval},
	} {
		if f.d > 0 {
			*f.v = f.d
		}
	}
	if gc.PushPullInterval == 0 {
		c.PushPullInterval = 5 * time.Second
	}
	if gc.SuspicionMult > 0 {
		c.SuspicionMult = gc.SuspicionMult
	}
	c.SecretKey = n.cfg.GossipKey
	c.Logger = logging.StdLog(g.log, slog.LevelDebug)
	c.Delegate = g
	c.Events = g
	// memberlist calls the delegate from its own goroutines as soon as
	// Create starts them, before g.ml is set: count members from the events
	// this node has seen instead.
	g.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       g.numAlive,
		RetransmitMult: c.RetransmitMult,
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		return fmt.Errorf("cluster: start gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	g.ml = ml
	n.gossip = g
	return nil
}

// numAlive counts the members last seen alive.
func (g *gossip) numAlive() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := 0
	for _, m := range g.members {
		if m.State == StateAlive {
			n++
		}
	}
	return max(n, 1)
}

// addr returns the address other nodes gossip with this one on.
func (g *gossip) addr() string {
	ln := g.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// join contacts the given gossip addresses until one answers or stop is
// closed. It backs off from 200 ms to 5 s between rounds.
func (g *gossip) join(addrs []string, stop <-chan struct{}) {
	wait := 200 * time.Millisecond
	for {
		n, err := g.ml.Join(addrs)
		if n > 0 {
			g.log.Info("joined the cluster", "contacted", n)
			g.joined.Store(true)
			return
		}
		g.log.Warn("cannot join yet; retrying", "addresses", addrs, "error", err, "retry_in", wait)
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// setDraining records in the node's metadata whether it is draining and
// gossips it.
func (g *gossip) setDraining(on bool) {
	g.mu.Lock()
	g.meta.Draining = on
	g.mu.Unlock()
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		g.log.Warn("gossiping the draining flag failed; it spreads with the next push/pull", "error", err)
	}
}

// remove declares node id gone for good and gossips it.
func (g *gossip) remove(id string) {
	g.mu.Lock()
	own := g.states[g.n.cfg.NodeID]
	if slices.Contains(own.Removed, id) {
		g.mu.Unlock()
		return
	}
	s := &shardState{Node: own.Node, Seq: own.Seq + 1, Hosted: own.Hosted, Led: own.Led,
		Removed: append(slices.Clone(own.Removed), id)}
	g.states[s.Node] = s
	g.mu.Unlock()
	if err := g.n.updateState(func(st *nodeState) { st.Removed = s.Removed }); err != nil {
		g.log.Warn("saving the removed node failed", "node", id, "error", err)
	}
	g.broadcast(s)
}

// removedSet returns every node any member declared removed.
func (g *gossip) removedSet() map[string]bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := map[string]bool{}
	for _, s := range g.states {
		for _, id := range s.Removed {
			out[id] = true
		}
	}
	return out
}

// reconnect tries, every interval, to join again the members this node sees
// as dead (not those that left), until stop is closed.
func (g *gossip) reconnect(interval time.Duration, stop <-chan struct{}) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var addrs []string
		for _, m := range g.memberList() {
			if m.State == StateDead && m.GossipAddr != "" && m.ID != g.n.cfg.NodeID {
				addrs = append(addrs, m.GossipAddr)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		if n, err := g.ml.Join(addrs); n > 0 {
			g.log.Info("reconnected to members seen as dead", "contacted", n)
		} else {
			g.log.Debug("members seen as dead are still unreachable", "addresses", addrs, "error", err)
		}
	}
}

// setBootstrapped records in the node's metadata that it has bootstrapped
// (over members, or joined a running cluster when nil) and gossips it.
func (g *gossip) setBootstrapped(members []string) {
	g.mu.Lock()
	g.meta.Bootstrapped = true
	g.meta.BootMembers = members
	g.mu.Unlock()
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		g.log.Warn("gossiping the bootstrapped flag failed; it spreads with the next push/pull", "error", err)
	}
}

// setShardCount records the node's shard count in its metadata; it spreads
// with the bootstrapped flag that follows.
func (g *gossip) setShardCount(count int) {
	g.mu.Lock()
	g.meta.Shards = count
	g.mu.Unlock()
}

// publish replaces this node's shard state and broadcasts it.
func (g *gossip) publish(hosted []uint32, led map[uint32]uint64) {
	g.mu.Lock()
	own := g.states[g.n.cfg.NodeID]
	if slices.Equal(own.Hosted, hosted) && mapsEqual(own.Led, led) {
		g.mu.Unlock()
		return
	}
	s := &shardState{Node: own.Node, Seq: own.Seq + 1, Hosted: hosted, Led: led, Removed: own.Removed}
	g.states[s.Node] = s
	g.mu.Unlock()
	g.broadcast(s)
}

// broadcast queues this node's state for gossip.
func (g *gossip) broadcast(s *shardState) {
	msg := encodeShardStates([]*shardState{s})
	// A broadcast travels in one UDP packet; a state too big for it spreads
	// through push/pull (TCP) instead.
	if len(msg) <= 1000 {
		g.queue.QueueBroadcast(&stateBroadcast{node: s.Node, msg: msg})
	}
}

func mapsEqual(a, b map[uint32]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// merge takes the shard states of other nodes, keeping the newest of each.
func (g *gossip) merge(states []*shardState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range states {
		if s.Node == g.n.cfg.NodeID {
			continue // this node's own state is what it says it is
		}
		if cur, ok := g.states[s.Node]; !ok || s.Seq > cur.Seq {
			g.states[s.Node] = s
		}
	}
}

// stateBroadcast is one node's shard state queued for gossip; a newer one
// of the same node replaces it.
type stateBroadcast struct {
	node string
	msg  []byte
}

func (b *stateBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*stateBroadcast)
	return ok && ob.node == b.node
}
func (b *stateBroadcast) Message() []byte { return b.msg }
func (b *stateBroadcast) Finished()       {}

// memberlist.Delegate

func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	b, _ := json.Marshal(g.meta)
	if len(b) > limit {
		// The boot members only help members that missed the bootstrap;
		// the addresses are essential.
		m := g.meta
		m.BootMembers = nil
		b, _ = json.Marshal(m)
	}
	return b
}

func (g *gossip) NotifyMsg(b []byte) {
	states, err := decodeShardStates(b)
	if err != nil {
		g.log.Warn("dropping a gossip message", "error", err)
		return
	}
	g.merge(states)
}

func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte {
	return g.queue.GetBroadcasts(overhead, limit)
}

func (g *gossip) LocalState(bool) []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	states := make([]*shardState, 0, len(g.states))
	for _, s := range g.states {
		states = append(states, s)
	}
	return encodeShardStates(states)
}

func (g *gossip) MergeRemoteState(b []byte, _ bool) { g.NotifyMsg(b) }

// memberlist.EventDelegate

func (g *gossip) NotifyJoin(n *memberlist.Node)   { g.update(n, StateAlive) }
func (g *gossip) NotifyUpdate(n *memberlist.Node) { g.update(n, StateAlive) }
func (g *gossip) NotifyLeave(n *memberlist.Node) {
	state := StateDead
	if n.State == memberlist.StateLeft {
		state = StateLeft
	}
	g.update(n, state)
}

func (g *gossip) update(n *memberlist.Node, state string) {
	var meta memberMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil && len(n.Meta) > 0 {
		g.log.Warn("ignoring a member with unreadable metadata", "member", n.Name, "error", err)
		return
	}
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	g.mu.Lock()
	m, ok := g.members[n.Name]
	if !ok {
		m = &member{ID: n.Name}
		g.members[n.Name] = m
	}
	if m.State != state {
		m.Since = time.Now()
	}
	m.GossipAddr, m.State = addr, state
	if len(n.Meta) > 0 {
		m.Meta = meta
	}
	g.mu.Unlock()
	if meta.RaftAddr != "" {
		g.n.addrs.set(n.Name, addrEntry{raft: meta.RaftAddr, http: meta.HTTPAddr})
	}
	for _, ch := range []chan struct{}{g.changed, g.peersCh} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	g.log.Debug("member", "id", n.Name, "state", state, "gossip_addr", addr)
}

// memberList returns every member this node knows of, itself included,
// sorted by id, with suspect members marked.
func (g *gossip) memberList() []member {
	suspect := map[string]bool{}
	for _, n := range g.ml.Members() {
		if n.State == memberlist.StateSuspect {
			suspect[n.Name] = true
		}
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]member, 0, len(g.members))
	for _, m := range g.members {
		c := *m
		if c.State == StateAlive && suspect[c.ID] {
			c.State = StateSuspect
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// aliveIDs returns the ids of alive (and suspect) members.
func (g *gossip) aliveIDs() []string {
	var out []string
	for _, m := range g.memberList() {
		if m.State == StateAlive || m.State == StateSuspect {
			out = append(out, m.ID)
		}
	}
	return out
}

// leaderOf returns the node that gossip says leads shard: of the alive
// nodes claiming it, the one with the highest term.
func (g *gossip) leaderOf(shard uint32) string {
	alive := map[string]bool{}
	for _, id := range g.aliveIDs() {
		alive[id] = true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	best, bestTerm := "", uint64(0)
	for id, s := range g.states {
		if term, ok := s.Led[shard]; ok && alive[id] && term >= bestTerm {
			if term > bestTerm || id < best || best == "" {
				best, bestTerm = id, term
			}
		}
	}
	return best
}

// hostsOf returns the alive nodes that gossip says hold a replica of shard.
func (g *gossip) hostsOf(shard uint32) []string {
	alive := map[string]bool{}
	for _, id := range g.aliveIDs() {
		alive[id] = true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []string
	for id, s := range g.states {
		if alive[id] && slices.Contains(s.Hosted, shard) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// shutdown stops gossip without announcing a leave: a node that stops is
// restarting unless it was drained, and a restart is not a leave.
func (g *gossip) shutdown() error {
	return g.ml.Shutdown()
}
