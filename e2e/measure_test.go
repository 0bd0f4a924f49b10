package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/placement"
)

// The measurements of this file print figures; they assert nothing about
// timing (the machine is shared and noisy). They run only with
// CAIRN_MEASURE=1:
//
//	CAIRN_MEASURE=1 go test -v -run TestMeasure -timeout 20m ./e2e/

func requireMeasure(t *testing.T) {
	if os.Getenv("CAIRN_MEASURE") != "1" {
		t.Skip("a measurement: run with CAIRN_MEASURE=1 go test -v -run TestMeasure ./e2e/")
	}
}

type clusterJSON struct {
	Shards []struct {
		ID     uint32  `json:"id"`
		Leader *string `json:"leader"`
	} `json:"shards"`
}

func shardLeader(ctx context.Context, endpoint string, shard uint32) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v1/cluster", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st clusterJSON
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", err
	}
	for _, s := range st.Shards {
		if s.ID == shard && s.Leader != nil {
			return *s.Leader, nil
		}
	}
	return "", fmt.Errorf("shard %d has no leader", shard)
}

// TestMeasureFailover kills the leader of an object's shard with SIGKILL and
// measures the time until the first write to that object is acknowledged
// through another node, over CAIRN_MEASURE_TRIALS trials (default 12).
func TestMeasureFailover(t *testing.T) {
	requireMeasure(t)
	trials := 12
	if v, err := strconv.Atoi(os.Getenv("CAIRN_MEASURE_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	const shards = 16
	pc := NewProcessCluster(t, ProcessClusterConfig{Shards: shards})
	client := &http.Client{Timeout: 500 * time.Millisecond}
	var took []time.Duration
	for trial := 0; trial < trials; trial++ {
		obj := fmt.Sprintf("failover-%d", trial)
		shard, _ := placement.ShardFor("measure", obj, shards)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var leader string
		for leader == "" && ctx.Err() == nil {
			leader, _ = shardLeader(ctx, pc.Endpoints()[0], shard)
		}
		cancel()
		if leader == "" {
			t.Fatalf("trial %d: no leader for shard %d", trial, shard)
		}
		var via string
		for i, id := range pc.Nodes() {
			if id != leader {
				via = pc.Endpoints()[i]
				break
			}
		}
		url := via + "/v1/ns/measure/objects/" + obj + "/kv/k"
		if err := pc.Kill(leader); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(strconv.Itoa(trial)))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(start) > 60*time.Second {
				t.Fatalf("trial %d: no write acknowledged 60 s after killing %s", trial, leader)
			}
			time.Sleep(5 * time.Millisecond)
		}
		d := time.Since(start)
		took = append(took, d)
		t.Logf("trial %2d: killed %s (leader of shard %d); first acknowledged write after %v", trial, leader, shard, d.Round(time.Millisecond))
		if err := pc.Start(leader); err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		if err := WaitHealthy(ctx, pc); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	t.Logf("failover over %d trials: min %v  p50 %v  p99 %v  max %v", len(took),
		took[0].Round(time.Millisecond), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// cpuTicks returns the user+system clock ticks a process has used.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which is in parentheses and may hold
	// spaces): state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

// TestMeasureIdleCPU starts a 3-node, 16-shard cluster, lets it settle, and
// measures each node's CPU use over CAIRN_MEASURE_IDLE (default 30s) with
// no client traffic: the cost of many groups' heartbeats and gossip.
func TestMeasureIdleCPU(t *testing.T) {
	requireMeasure(t)
	window := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("CAIRN_MEASURE_IDLE")); err == nil {
		window = v
	}
	pc := NewProcessCluster(t, ProcessClusterConfig{Shards: 16})
	time.Sleep(15 * time.Second) // settle: elections, rebalancing's first looks
	const hz = 100               // USER_HZ on Linux
	before := map[string]int64{}
	for _, n := range pc.nodes {
		n.mu.Lock()
		pid := n.cmd.Process.Pid
		n.mu.Unlock()
		ticks, err := cpuTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		before[n.id] = ticks
	}
	time.Sleep(window)
	total := 0.0
	for _, n := range pc.nodes {
		n.mu.Lock()
		pid := n.cmd.Process.Pid
		n.mu.Unlock()
		ticks, err := cpuTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		pctCore := float64(ticks-before[n.id]) / hz / window.Seconds() * 100
		total += pctCore
		t.Logf("%s: %.1f%% of one core idle (%d ticks over %v)", n.id, pctCore, ticks-before[n.id], window)
	}
	t.Logf("3 nodes, 16 shards, idle: %.1f%% of one core in total", total)
}

// peakRSS is the most memory the node's current process has held resident
// (VmHWM in /proc), in bytes; 0 when it is not running or not on Linux.
func (n *procNode) peakRSS() int64 {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakRSSLine reports the peak resident memory of each node.
func peakRSSLine(nodes ...*procNode) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %d MiB", n.id, n.peakRSS()>>20))
	}
	return "peak RSS: " + strings.Join(parts, ", ")
}
