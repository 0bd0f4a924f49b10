package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/cairndb/cairn/cluster"
)

type nodeJSON struct {
	ID         string `json:"id"`
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	State      string `json:"state"`
	Draining   bool   `json:"draining,omitempty"`
	ShardsHeld int    `json:"shardsHeld"`
	ShardsLed  int    `json:"shardsLed"`
}

type shardJSON struct {
	ID           uint32   `json:"id"`
	Leader       *string  `json:"leader"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"nonVoters"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Move         string   `json:"move,omitempty"`
}

// clusterStatus answers GET /v1/cluster.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request, _ *request) error {
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.b.Status(ctx)
	if err != nil {
		return deadline(err)
	}
	out := struct {
		Nodes  []nodeJSON  `json:"nodes"`
		Shards []shardJSON `json:"shards"`
	}{Nodes: []nodeJSON{}, Shards: []shardJSON{}}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, nodeJSON(n))
	}
	for _, sh := range st.Shards {
		j := shardJSON{ID: sh.ID, Voters: nonNil(sh.Voters), NonVoters: nonNil(sh.NonVoters), AppliedIndex: sh.AppliedIndex, Move: sh.Move}
		if sh.Leader != "" {
			l := sh.Leader
			j.Leader = &l
		}
		out.Shards = append(out.Shards, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// drainNode answers POST /v1/cluster/nodes/{id}/drain (admin): the node's
// replicas and leaderships move to other nodes; /v1/cluster shows its
// shardsHeld reach 0, and then it may be stopped.
func (s *Server) drainNode(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	if req.node == s.b.NodeID() {
		ctx, cancel := s.ctx(r)
		defer cancel()
		if err := s.b.Drain(ctx); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"node": req.node, "draining": true})
		return nil
	}
	// Only the node itself can say it drains: send the request there.
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.b.Status(ctx)
	if err != nil {
		return deadline(err)
	}
	for _, n := range st.Nodes {
		if n.ID == req.node && n.HTTPAddr != "" && hops(r) < maxHops {
			if done, err := s.forward(w, r, req, n.HTTPAddr, time.Now().Add(s.timeout)); done {
				return err
			}
			return newError(http.StatusServiceUnavailable, codeUnavailable, "node "+req.node+" cannot be reached")
		}
	}
	return newError(http.StatusNotFound, codeNotFound, "no such node: "+truncate(req.node))
}

// removeNode answers DELETE /v1/cluster/nodes/{id} (admin): a dead node is
// declared gone for good, and its replicas are replaced now rather than
// after the grace period.
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	switch err := s.b.RemoveNode(req.node); {
	case errors.Is(err, cluster.ErrNodeAlive):
		return newError(http.StatusConflict, codeConflict, "node "+req.node+" is alive: drain it instead")
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": req.node, "removed": true})
	return nil
}
