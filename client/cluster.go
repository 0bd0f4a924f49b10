package client

import (
	"context"
	"net/http"
)

// Namespaces returns every namespace that holds objects or a configuration
// (those the token may see), with its configuration.
func (c *Client) Namespaces(ctx context.Context) ([]NamespaceConfig, error) {
	var out struct {
		Namespaces []namespaceJSON `json:"namespaces"`
	}
	if _, err := c.call(ctx, c.newRequest(http.MethodGet, "/v1/ns", classRead, callOptions{}), &out); err != nil {
		return nil, err
	}
	list := make([]NamespaceConfig, 0, len(out.Namespaces))
	for _, j := range out.Namespaces {
		cfg, err := j.config()
		if err != nil {
			return nil, err
		}
		list = append(list, cfg)
	}
	return list, nil
}

// NodeState is a node's membership state as gossip sees it.
type NodeState string

// The node states.
const (
	NodeAlive   NodeState = "alive"
	NodeSuspect NodeState = "suspect"
	NodeDead    NodeState = "dead"
	NodeLeft    NodeState = "left"
)

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	ID         string    `json:"id"`
	HTTPAddr   string    `json:"httpAddr"`
	RaftAddr   string    `json:"raftAddr"`
	GossipAddr string    `json:"gossipAddr"`
	State      NodeState `json:"state"`
	// Draining is set while the node hands its replicas to others.
	Draining   bool `json:"draining"`
	ShardsHeld int  `json:"shardsHeld"`
	ShardsLed  int  `json:"shardsLed"`
}

// ShardStatus is one shard of the cluster.
type ShardStatus struct {
	ID uint32 `json:"id"`
	// Leader is the id of the node that leads the shard, "" while none does.
	Leader    string   `json:"-"`
	Voters    []string `json:"voters"`
	NonVoters []string `json:"nonVoters"`
	// AppliedIndex is the shard's applied index on the answering node if
	// it holds a replica, else 0.
	AppliedIndex uint64 `json:"appliedIndex"`
	// Move describes a replica move in progress, if any.
	Move string `json:"move"`
}

// ClusterStatus is the cluster as the answering node sees it.
type ClusterStatus struct {
	Nodes  []NodeStatus
	Shards []ShardStatus
}

// ClusterStatus returns the cluster's nodes and shards.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out struct {
		Nodes  []NodeStatus `json:"nodes"`
		Shards []struct {
			ShardStatus
			Leader *string `json:"leader"`
		} `json:"shards"`
	}
	if _, err := c.call(ctx, c.newRequest(http.MethodGet, "/v1/cluster", classRead, callOptions{}), &out); err != nil {
		return nil, err
	}
	st := &ClusterStatus{Nodes: out.Nodes, Shards: make([]ShardStatus, len(out.Shards))}
	for i, s := range out.Shards {
		st.Shards[i] = s.ShardStatus
		if s.Leader != nil {
			st.Shards[i].Leader = *s.Leader
		}
	}
	return st, nil
}

// Healthz reports whether a node answers: nil once one endpoint's process
// is up (GET /healthz). Unreachable endpoints are skipped, as by every
// call.
func (c *Client) Healthz(ctx context.Context) error {
	r := c.newRequest(http.MethodGet, "/healthz", classRead, callOptions{})
	r.noRetry = true
	_, err := c.call(ctx, r, nil)
	return err
}

// Readyz reports whether the first endpoint that answers is ready: every
// shard it hosts has a leader (GET /readyz). A node that is not is
// ErrUnavailable, without retries.
func (c *Client) Readyz(ctx context.Context) error {
	r := c.newRequest(http.MethodGet, "/readyz", classRead, callOptions{})
	r.noRetry = true
	_, err := c.call(ctx, r, nil)
	return err
}
