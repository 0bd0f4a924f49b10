package api

import (
	"net/http"
)

type nodeJSON struct {
	ID         string `json:"id"`
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	State      string `json:"state"`
	ShardsHeld int    `json:"shardsHeld"`
	ShardsLed  int    `json:"shardsLed"`
}

type shardJSON struct {
	ID           uint32   `json:"id"`
	Leader       *string  `json:"leader"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"nonVoters"`
	AppliedIndex uint64   `json:"appliedIndex"`
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
		j := shardJSON{ID: sh.ID, Voters: nonNil(sh.Voters), NonVoters: nonNil(sh.NonVoters), AppliedIndex: sh.AppliedIndex}
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
