package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cairndb/cairn/placement"
)

// Membership changes: scaling a cluster out (nodes join, shards move onto
// them) and in (nodes are drained, then stopped), and the placement every
// shard must reach. What a settled placement is comes from placement/,
// the pure functions the nodes' rebalancers use: each shard's voters are
// placement.Replicas over the members that may hold replicas.

// Drain asks, through endpoint, that node id hand its replicas and
// leaderships to other nodes (POST /v1/cluster/nodes/{id}/drain, 202),
// retrying until it is accepted or ctx ends.
func Drain(ctx context.Context, endpoint, id string) error {
	hc := &http.Client{Timeout: 15 * time.Second}
	defer hc.CloseIdleConnections()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/v1/cluster/nodes/"+url.PathEscape(id)+"/drain", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return fmt.Errorf("draining %s through %s: %w (last: %s)", id, endpoint, ctx.Err(), last)
		}
	}
}

// Placement is the cluster's replica placement as the shards' leaders
// report it.
type Placement struct {
	Shards map[uint32][]string // shard → voters, sorted
	Held   map[string]int      // node → shards it is a voter of
}

func (p Placement) String() string {
	nodes := make([]string, 0, len(p.Held))
	for n := range p.Held {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %d", n, p.Held[n]))
	}
	return fmt.Sprintf("%d shards; voters per node: %s", len(p.Shards), strings.Join(parts, ", "))
}

// placementDiff reads GET /v1/cluster on every node of c and returns the
// placement with, as an error, how it differs from the settled one for
// the members eligible: every shard led, its voters (in its leader's Raft
// configuration) placement.Replicas(shard, eligible, replicas), no
// non-voter, no move in progress; and each node of empty says it holds no
// replica.
func placementDiff(c Cluster, eligible []string, replicas int, empty []string) (Placement, error) {
	p := Placement{Shards: map[uint32][]string{}, Held: map[string]int{}}
	var diffs []string
	shards := map[uint32]bool{}
	led := map[uint32]ShardStatus{}
	for i, ep := range c.Endpoints() {
		self := c.Nodes()[i]
		st, err := FetchStatus(context.Background(), ep)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", self, err))
			continue
		}
		for _, sh := range st.Shards {
			shards[sh.ID] = true
			// A node describes the shards it leads from its Raft
			// configuration: that entry is the shard's placement.
			if sh.Leader != nil && *sh.Leader == self {
				led[sh.ID] = sh
			}
		}
		if slices.Contains(empty, self) {
			for _, m := range st.Nodes {
				if m.ID == self && m.ShardsHeld > 0 {
					diffs = append(diffs, fmt.Sprintf("%s still holds %d replicas", self, m.ShardsHeld))
				}
			}
		}
	}
	ids := make([]uint32, 0, len(shards))
	for id := range shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	elig := slices.Sorted(slices.Values(eligible))
	for _, id := range ids {
		sh, ok := led[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("shard %d: no node reports leading it", id))
			continue
		}
		voters := slices.Sorted(slices.Values(sh.Voters))
		p.Shards[id] = voters
		for _, v := range voters {
			p.Held[v]++
		}
		want, err := placement.Replicas(id, elig, replicas)
		if err != nil {
			return p, err
		}
		slices.Sort(want)
		switch {
		case !slices.Equal(voters, want):
			diffs = append(diffs, fmt.Sprintf("shard %d: voters %v, settled %v", id, voters, want))
		case len(sh.NonVoters) > 0:
			diffs = append(diffs, fmt.Sprintf("shard %d: non-voters %v", id, sh.NonVoters))
		case sh.Move != "":
			diffs = append(diffs, fmt.Sprintf("shard %d: %s", id, sh.Move))
		}
	}
	if len(ids) == 0 && len(diffs) == 0 {
		diffs = append(diffs, "no node lists any shard")
	}
	if len(diffs) > 0 {
		return p, fmt.Errorf("%s", strings.Join(diffs, "; "))
	}
	return p, nil
}

// WaitPlacement polls until the placement is settled for the members
// eligible (see placementDiff) or timeout passes, and returns the last
// placement read and how long it took.
func WaitPlacement(c Cluster, eligible []string, replicas int, empty []string, timeout time.Duration) (Placement, time.Duration, error) {
	start := time.Now()
	for {
		p, err := placementDiff(c, eligible, replicas, empty)
		if err == nil {
			return p, time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return p, time.Since(start), fmt.Errorf("not settled after %v: %w", timeout, err)
		}
		time.Sleep(time.Second)
	}
}
