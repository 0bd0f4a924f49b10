package cluster

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// The control channel of the multiplexed port carries the few node-to-node
// requests that moving replicas needs: a shard's leader asks a node to open
// an (empty) replica before adding it to the group, asks how far a new
// replica has caught up, and asks a removed node to drop its copy; a node
// asks a shard's leader whether it is still a member. One JSON request and
// one JSON answer per connection: these are rare.
const (
	chanControl    = 'c'
	controlTimeout = 5 * time.Second
)

type controlRequest struct {
	Op    string `json:"op"` // "create", "drop", "status", "members"
	Shard uint32 `json:"shard"`
}

type controlResponse struct {
	Err       string   `json:"err,omitempty"`
	Hosted    bool     `json:"hosted"`
	Applied   uint64   `json:"applied"`
	LastIndex uint64   `json:"lastIndex"`
	Leader    bool     `json:"leader"`
	Leads     *int     `json:"leads,omitempty"`   // how many shards the node leads
	Members   []string `json:"members,omitempty"` // ids in the leader's configuration
}

// control sends a control request to the node with Raft address addr.
func (n *Node) control(addr string, req controlRequest) (controlResponse, error) {
	var resp controlResponse
	conn, err := n.mux.dial("tcp", addr, controlTimeout)
	if err != nil {
		return resp, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	var hdr [muxHeaderLen]byte
	hdr[0], hdr[1] = muxMagic, chanControl
	binary.BigEndian.PutUint32(hdr[2:], req.Shard)
	if _, err := conn.Write(hdr[:]); err != nil {
		return resp, err
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return resp, err
	}
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		return resp, err
	}
	if resp.Err != "" {
		return resp, errors.New(resp.Err)
	}
	return resp, nil
}

// controlNode sends a control request to a node by id.
func (n *Node) controlNode(id string, req controlRequest) (controlResponse, error) {
	e, ok := n.addrs.get(id)
	if !ok || e.raft == "" {
		return controlResponse{}, fmt.Errorf("cluster: no known address for node %q", id)
	}
	return n.control(e.raft, req)
}

// serveControl answers one control connection.
func (n *Node) serveControl(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	var req controlRequest
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		return
	}
	resp := n.handleControl(req)
	_ = json.NewEncoder(conn).Encode(resp)
}

func (n *Node) handleControl(req controlRequest) controlResponse {
	var resp controlResponse
	if req.Shard >= uint32(n.ShardCount()) {
		resp.Err = fmt.Sprintf("no shard %d", req.Shard)
		return resp
	}
	switch req.Op {
	case "create":
		if err := n.createReplica(req.Shard); err != nil {
			resp.Err = err.Error()
		}
	case "drop":
		if err := n.dropShard(req.Shard); err != nil {
			resp.Err = err.Error()
		}
	case "status", "members":
	default:
		resp.Err = "unknown control op " + req.Op
		return resp
	}
	leads := len(n.LedShards())
	resp.Leads = &leads
	if s := n.Shard(req.Shard); s != nil {
		resp.Hosted = true
		resp.Applied = s.raft.AppliedIndex()
		resp.LastIndex = s.raft.LastIndex()
		resp.Leader = s.IsLeader()
		if req.Op == "members" && resp.Leader {
			if f := s.raft.GetConfiguration(); f.Error() == nil {
				for _, srv := range f.Configuration().Servers {
					resp.Members = append(resp.Members, string(srv.ID))
				}
			}
		}
	}
	return resp
}

// dropShard removes this node's replica of a shard it is no longer a member
// of: its Raft instance, log and snapshots, and its state in Pebble.
func (n *Node) dropShard(id uint32) error {
	n.mu.Lock()
	s := n.shards[id]
	delete(n.shards, id)
	n.mu.Unlock()
	if s == nil {
		return nil
	}
	if s.IsLeader() {
		// A leader is still a member; put it back rather than drop it.
		n.mu.Lock()
		n.shards[id] = s
		n.mu.Unlock()
		return errors.New("cluster: refusing to drop a shard this node leads")
	}
	n.log.Info("dropping replica", "shard", id)
	p, r := s.fsm.SnapshotBytes()
	n.snapBytesDropped[0].Add(p)
	n.snapBytesDropped[1].Add(r)
	if err := s.close(); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
		n.log.Warn("closing a dropped replica", "shard", id, "error", err)
	}
	if n.sql != nil {
		n.sql.ForgetShard(id)
	}
	lo, hi := objectstore.ShardSpan(id)
	b := n.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if err := s.logs.drop(); err != nil {
		return err
	}
	n.signalLeaders()
	return os.RemoveAll(s.dir)
}

// maxCatchUps is how many new replicas a node receives at once. A replica
// catching up takes its shard's state in large messages (snapshot chunks,
// AppendEntries of up to MaxAppendEntries entries of up to 2 MiB each);
// taking every shard's at once on a join held gigabytes in flight.
const maxCatchUps = 2

// createReplica opens this node's replica of shard, unless it is new and
// maxCatchUps replicas are catching up here already. One at a time: leaders
// ask concurrently, and the count must include the replicas being created.
func (n *Node) createReplica(shard uint32) error {
	n.createMu.Lock()
	defer n.createMu.Unlock()
	if n.Shard(shard) == nil {
		if busy := n.catchingUp(); busy >= maxCatchUps {
			return fmt.Errorf("%d replicas are catching up on this node; try later", busy)
		}
	}
	_, err := n.startShard(shard)
	return err
}

// catchingUp counts the replicas this node hosts that are still catching
// up: non-voters, and replicas too new to know their configuration. A
// replica whose configuration leaves this node out is an orphan awaiting
// collection, not counted.
func (n *Node) catchingUp() int {
	count := 0
	for _, s := range n.shardList() {
		f := s.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		servers := f.Configuration().Servers
		if len(servers) == 0 {
			count++
			continue
		}
		for _, srv := range servers {
			if string(srv.ID) == n.cfg.NodeID && srv.Suffrage != raft.Voter {
				count++
			}
		}
	}
	return count
}
