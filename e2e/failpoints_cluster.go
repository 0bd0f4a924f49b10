package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Failpoints that pick their target from the cluster's state (the leader of
// the busiest shard) or hurt every node, and the network faults of clusters
// that can cut a node off (DockerCluster). They work on any Cluster; the
// network ones need a Partitioner.

// Partitioner is a Cluster whose nodes can be cut off the network between
// them and reconnected.
type Partitioner interface {
	// Isolate cuts node off from every other node.
	Isolate(node string) error
	// Heal reconnects node; healing a connected node does nothing.
	Heal(node string) error
}

// Restarter is a Cluster that restarts a node in one step (docker restart:
// SIGTERM, wait, start). Failpoints fall back to Stop and Start without it.
type Restarter interface {
	Restart(node string) error
}

// ErrNoLeader is returned when the cluster names no leader to hurt.
var ErrNoLeader = errors.New("e2e: no shard has a known leader")

// ClusterStatus is the part of GET /v1/cluster the suite reads.
type ClusterStatus struct {
	Nodes  []NodeStatus  `json:"nodes"`
	Shards []ShardStatus `json:"shards"`
}

// NodeStatus is one member as GET /v1/cluster lists it.
type NodeStatus struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Draining   bool   `json:"draining"`
	ShardsHeld int    `json:"shardsHeld"`
	ShardsLed  int    `json:"shardsLed"`
}

// ShardStatus is one shard as GET /v1/cluster lists it. A node describes
// the shards it hosts from its Raft state (appliedIndex above 0) and the
// others from gossip (appliedIndex 0).
type ShardStatus struct {
	ID           uint32   `json:"id"`
	Leader       *string  `json:"leader"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"nonVoters"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Move         string   `json:"move"`
}

// FetchStatus asks endpoint for GET /v1/cluster.
func FetchStatus(ctx context.Context, endpoint string) (ClusterStatus, error) {
	var st ClusterStatus
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v1/cluster", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s/v1/cluster answered %d", endpoint, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// BusiestLeader returns the leader of the shard with the highest applied
// index — the one the traffic goes to — as the first node that answers
// GET /v1/cluster sees it.
func BusiestLeader(c Cluster) (string, error) {
	var errs []error
	for _, ep := range c.Endpoints() {
		st, err := FetchStatus(context.Background(), ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		leader, best := "", uint64(0)
		for _, sh := range st.Shards {
			if sh.Leader != nil && *sh.Leader != "" && (leader == "" || sh.AppliedIndex > best) {
				leader, best = *sh.Leader, sh.AppliedIndex
			}
		}
		if leader == "" {
			errs = append(errs, fmt.Errorf("%s: %w", ep, ErrNoLeader))
			continue
		}
		if !slices.Contains(c.Nodes(), leader) {
			return "", fmt.Errorf("e2e: %s names leader %q, which is not a node of the cluster %v", ep, leader, c.Nodes())
		}
		return leader, nil
	}
	return "", fmt.Errorf("e2e: no node told who leads the busiest shard: %w", errors.Join(errs...))
}

// KillLeaderFailpoint kills the leader of the busiest shard with SIGKILL
// and starts it again after a short random delay.
type KillLeaderFailpoint struct {
	MinDelay, MaxDelay time.Duration // default 200 ms … 1.5 s
}

// Name implements Failpoint.
func (KillLeaderFailpoint) Name() string { return "kill-leader" }

// PickNode implements NodePicker.
func (KillLeaderFailpoint) PickNode(c Cluster, _ *rand.Rand) (string, error) { return BusiestLeader(c) }

// Inject implements Failpoint.
func (f KillLeaderFailpoint) Inject(c Cluster, node string, rng *rand.Rand) error {
	return KillFailpoint{MinDelay: f.MinDelay, MaxDelay: f.MaxDelay}.Inject(c, node, rng)
}

// IsolateFailpoint cuts a node off the network for Hold, then heals it.
// With Leader set the node is the busiest shard's leader; otherwise it is
// RunFailpoints' random node (a partition of one node against the rest).
type IsolateFailpoint struct {
	Leader bool
	Hold   time.Duration // default 4 s: past the election timeout
}

// Name implements Failpoint.
func (f IsolateFailpoint) Name() string {
	if f.Leader {
		return "isolate-leader"
	}
	return "partition"
}

// PickNode implements NodePicker.
func (f IsolateFailpoint) PickNode(c Cluster, rng *rand.Rand) (string, error) {
	if f.Leader {
		return BusiestLeader(c)
	}
	nodes := c.Nodes()
	return nodes[rng.Intn(len(nodes))], nil
}

// Inject implements Failpoint.
func (f IsolateFailpoint) Inject(c Cluster, node string, _ *rand.Rand) error {
	p, ok := c.(Partitioner)
	if !ok {
		return fmt.Errorf("e2e: %T cannot cut a node off the network", c)
	}
	if f.Hold == 0 {
		f.Hold = 4 * time.Second
	}
	if err := p.Isolate(node); err != nil {
		return errors.Join(err, p.Heal(node))
	}
	time.Sleep(f.Hold)
	return p.Heal(node)
}

// restart restarts node in one step if c can, else stops and starts it.
func restart(c Cluster, node string) error {
	if r, ok := c.(Restarter); ok {
		return r.Restart(node)
	}
	stopErr := c.Stop(node)
	if err := c.Start(node); err != nil {
		return errors.Join(stopErr, err)
	}
	return stopErr
}

// RestartAllFailpoint restarts every node at once (a clean stop, then a
// start): the whole cluster must find itself again from what each node
// remembers. With Kill it is a power loss instead: every node is killed
// with SIGKILL at once, and once all are down, all start again.
type RestartAllFailpoint struct {
	Kill bool
}

// Name implements Failpoint.
func (f RestartAllFailpoint) Name() string {
	if f.Kill {
		return "crash-all"
	}
	return "restart-all"
}

// PickNode implements NodePicker: the target is every node.
func (RestartAllFailpoint) PickNode(c Cluster, _ *rand.Rand) (string, error) {
	return strings.Join(c.Nodes(), "+"), nil
}

// Inject implements Failpoint.
func (f RestartAllFailpoint) Inject(c Cluster, _ string, _ *rand.Rand) error {
	nodes := c.Nodes()
	if !f.Kill {
		return onEach(nodes, func(n string) error { return restart(c, n) })
	}
	killErr := onEach(nodes, c.Kill) // start them all anyway: a node the kill missed refuses Start, and both errors are returned
	return errors.Join(killErr, onEach(nodes, c.Start))
}

// onEach calls fn on every node at once and joins their errors.
func onEach(nodes []string, fn func(node string) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RollingRestartFailpoint restarts the nodes one by one, waiting until every
// node is ready before the next: what an upgrade does.
type RollingRestartFailpoint struct {
	ReadyTimeout time.Duration // per node; default 60 s
}

// Name implements Failpoint.
func (RollingRestartFailpoint) Name() string { return "rolling-restart" }

// PickNode implements NodePicker: the target is every node, in order.
func (RollingRestartFailpoint) PickNode(c Cluster, _ *rand.Rand) (string, error) {
	return strings.Join(c.Nodes(), ">"), nil
}

// Inject implements Failpoint.
func (f RollingRestartFailpoint) Inject(c Cluster, _ string, _ *rand.Rand) error {
	if f.ReadyTimeout == 0 {
		f.ReadyTimeout = 60 * time.Second
	}
	for _, n := range c.Nodes() {
		if err := restart(c, n); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.ReadyTimeout)
		err := WaitHealthy(ctx, c)
		cancel()
		if err != nil {
			return fmt.Errorf("after restarting %s: %w", n, err)
		}
	}
	return nil
}
