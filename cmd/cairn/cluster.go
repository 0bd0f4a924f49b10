package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
)

// clusterStatusJSON is GET /v1/cluster as the API writes it.
type clusterStatusJSON struct {
	Nodes  []client.NodeStatus `json:"nodes"`
	Shards []shardJSON         `json:"shards"`
}

type shardJSON struct {
	ID           uint32   `json:"id"`
	Leader       *string  `json:"leader"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"nonVoters"`
	AppliedIndex uint64   `json:"appliedIndex"`
	Move         string   `json:"move,omitempty"`
}

func (a *app) clusterStatus(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("cluster status")
	if _, err := a.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	if a.jsonOut {
		out := clusterStatusJSON{Nodes: st.Nodes, Shards: make([]shardJSON, 0, len(st.Shards))}
		if out.Nodes == nil {
			out.Nodes = []client.NodeStatus{}
		}
		for _, s := range st.Shards {
			j := shardJSON{ID: s.ID, Voters: nonNil(s.Voters), NonVoters: nonNil(s.NonVoters), AppliedIndex: s.AppliedIndex, Move: s.Move}
			if s.Leader != "" {
				l := s.Leader
				j.Leader = &l
			}
			out.Shards = append(out.Shards, j)
		}
		writeJSONLine(a.stdout, out)
		return nil
	}
	nodes := make([][]string, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		state := string(n.State)
		if n.Draining {
			state += " (draining)"
		}
		nodes = append(nodes, []string{n.ID, state, dash(n.HTTPAddr), dash(n.RaftAddr), dash(n.GossipAddr),
			strconv.Itoa(n.ShardsHeld), strconv.Itoa(n.ShardsLed)})
	}
	table(a.stdout, []string{"NODE", "STATE", "HTTP", "RAFT", "GOSSIP", "HELD", "LED"}, nodes)
	fmt.Fprintln(a.stdout)
	shards := make([][]string, 0, len(st.Shards))
	leaderless := 0
	for _, s := range st.Shards {
		if s.Leader == "" {
			leaderless++
		}
		applied := "-" // shards this node does not host come from gossip
		if s.AppliedIndex != 0 {
			applied = strconv.FormatUint(s.AppliedIndex, 10)
		}
		shards = append(shards, []string{strconv.FormatUint(uint64(s.ID), 10), dash(s.Leader),
			dash(strings.Join(s.Voters, ",")), dash(strings.Join(s.NonVoters, ",")), applied, dash(s.Move)})
	}
	table(a.stdout, []string{"SHARD", "LEADER", "VOTERS", "NON-VOTERS", "APPLIED", "MOVE"}, shards)
	if leaderless > 0 {
		fmt.Fprintf(a.stdout, "\n%d of %d shards have no leader\n", leaderless, len(st.Shards))
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clusterDrain asks a node to hand its replicas and leaderships to others
// (POST /v1/cluster/nodes/{id}/drain).
func (a *app) clusterDrain(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("cluster drain")
	pos, err := a.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	body, err := a.rawCall(ctx, http.MethodPost, "/v1/cluster/nodes/"+url.PathEscape(pos[0])+"/drain")
	if err != nil {
		return err
	}
	if a.jsonOut {
		return writeRaw(a.stdout, body)
	}
	fmt.Fprintf(a.stdout, "node %s is draining: it may be stopped once 'cairn cluster status' shows it holds 0 shards\n", pos[0])
	return nil
}

// clusterRemove declares a dead node gone for good (DELETE
// /v1/cluster/nodes/{id}); an alive node is refused (409, exit 3).
func (a *app) clusterRemove(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("cluster remove")
	pos, err := a.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	body, err := a.rawCall(ctx, http.MethodDelete, "/v1/cluster/nodes/"+url.PathEscape(pos[0]))
	if err != nil {
		return err
	}
	if a.jsonOut {
		return writeRaw(a.stdout, body)
	}
	fmt.Fprintf(a.stdout, "node %s removed: its replicas are being replaced\n", pos[0])
	return nil
}

func writeRaw(w io.Writer, body []byte) error {
	body = bytes.TrimSpace(body)
	_, err := w.Write(append(body, '\n'))
	return err
}

// rawCall makes a request the client package has no method for (the
// membership endpoints), with the client's endpoints and token: each
// endpoint in turn until one answers, once. Both endpoints it serves are
// idempotent, so moving on after a failure is safe. Failures are
// *client.Error, so exit codes and messages are those of every command.
func (a *app) rawCall(ctx context.Context, method, path string) ([]byte, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	op := method + " " + path
	var last error
	for _, ep := range c.Endpoints() {
		req, err := http.NewRequestWithContext(ctx, method, ep+path, nil)
		if err != nil {
			return nil, usagef("%v", err)
		}
		if a.token != "" {
			req.Header.Set("Authorization", "Bearer "+a.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode < 300 {
			return body, nil
		}
		return nil, problemError(op, resp, body)
	}
	return nil, &client.Error{Code: "unavailable", Op: op, Detail: "no endpoint answered", Err: last}
}

// problemError reads an RFC 9457 problem answer into a *client.Error.
func problemError(op string, resp *http.Response, body []byte) *client.Error {
	e := &client.Error{Status: resp.StatusCode, Op: op, Title: http.StatusText(resp.StatusCode)}
	var p struct {
		Title     string `json:"title"`
		Code      string `json:"code"`
		Detail    string `json:"detail"`
		Condition *int   `json:"condition"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		e.Code, e.Detail, e.Condition = p.Code, p.Detail, p.Condition
		if p.Title != "" {
			e.Title = p.Title
		}
	} else {
		e.Detail = strings.TrimSpace(string(body))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
