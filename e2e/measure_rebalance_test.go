package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairndb/cairn/placement"
)

// loadStats is what a write load measured.
type loadStats struct {
	ops       int
	errors    int
	latencies []time.Duration
	window    time.Duration
}

func (s loadStats) String() string {
	if len(s.latencies) == 0 {
		return fmt.Sprintf("0 ok, %d errors", s.errors)
	}
	slices.Sort(s.latencies)
	p := func(q float64) time.Duration {
		return s.latencies[min(len(s.latencies)-1, int(q*float64(len(s.latencies))))]
	}
	return fmt.Sprintf("%.0f writes/s, p50 %v, p99 %v (%d ok, %d errors)", float64(s.ops)/s.window.Seconds(),
		p(0.5).Round(100*time.Microsecond), p(0.99).Round(100*time.Microsecond), s.ops, s.errors)
}

// writeLoad runs clients writing 256-byte values through endpoints until
// stop is closed.
func writeLoad(endpoints []string, clients int, stop <-chan struct{}) loadStats {
	var mu sync.Mutex
	st := loadStats{}
	start := time.Now()
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second}
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := bytes.Repeat([]byte{'v'}, 256)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				url := fmt.Sprintf("%s/v1/ns/load/objects/o%d/kv/k%d", endpoints[(c+i)%len(endpoints)], rand.IntN(10000), i%10)
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(val))
				resp, err := hc.Do(req)
				d := time.Since(t0)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					st.ops++
					st.latencies = append(st.latencies, d)
				} else {
					st.errors++
				}
				mu.Unlock()
			}
		}()
	}
	<-stop
	wg.Wait()
	st.window = time.Since(start)
	return st
}

// metric reads one sample of a Prometheus text metric from an endpoint.
func metric(endpoint, name string) float64 {
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
			return v
		}
	}
	return 0
}

type placementJSON struct {
	Shards []struct {
		ID        uint32   `json:"id"`
		Voters    []string `json:"voters"`
		NonVoters []string `json:"nonVoters"`
	} `json:"shards"`
}

func readPlacement(endpoint string) (map[uint32][]string, bool, error) {
	resp, err := http.Get(endpoint + "/v1/cluster")
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	var st placementJSON
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, false, err
	}
	out := map[uint32][]string{}
	settled := true
	for _, s := range st.Shards {
		v := slices.Clone(s.Voters)
		slices.Sort(v)
		out[s.ID] = v
		if len(s.NonVoters) > 0 {
			settled = false
		}
	}
	return out, settled, nil
}

// TestMeasureRebalance loads a 3-node, 16-shard cluster with
// CAIRN_MEASURE_BYTES of data (default 256 MiB), measures a write load,
// then starts a fourth node and measures the write load while the cluster
// rebalances, the time until every shard has its desired voters, the
// replicas and bytes moved, and what rendezvous hashing says the minimum is.
// CAIRN_MEASURE_PPROF=127.0.0.1:6060 serves the fourth node's profiler there.
func TestMeasureRebalance(t *testing.T) {
	requireMeasure(t)
	total := int64(256 << 20)
	if v, err := strconv.ParseInt(os.Getenv("CAIRN_MEASURE_BYTES"), 10, 64); err == nil && v > 0 {
		total = v
	}
	const shards = 16
	pc := NewProcessCluster(t, ProcessClusterConfig{Shards: shards, Args: []string{"-max-object-bytes", "1048576"}})
	eps := pc.Endpoints()

	// Load: 1 MiB values over many objects.
	t0 := time.Now()
	const valueSize = 1 << 20
	n := int(total / valueSize)
	var wg sync.WaitGroup
	work := make(chan int)
	hc := &http.Client{Timeout: 60 * time.Second}
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			val := bytes.Repeat([]byte{'d'}, valueSize-64)
			for i := range work {
				url := fmt.Sprintf("%s/v1/ns/bulk/objects/b%d/kv/k%d", eps[i%len(eps)], i%512, i)
				for attempt := 0; attempt < 5; attempt++ {
					req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(val))
					if resp, err := hc.Do(req); err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							break
						}
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("loaded %d MiB in %v; %s", total>>20, time.Since(t0).Round(time.Second), peakRSSLine(pc.nodes...))

	before, _, err := readPlacement(eps[0])
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan loadStats)
	go func() { done <- writeLoad(eps, 32, stop) }()
	time.Sleep(15 * time.Second)
	close(stop)
	t.Logf("before the join: %v", <-done)

	// Start n4, joining n1.
	var gossip string
	for i, a := range pc.nodes[0].args {
		if a == "-gossip-addr" {
			gossip = pc.nodes[0].args[i+1]
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	dir := t.TempDir()
	n4 := &procNode{id: "n4", httpAddr: addr(ports[0]), logPath: filepath.Join(dir, "n4.log"), args: []string{
		"-node-id", "n4", "-data-dir", filepath.Join(dir, "n4"), "-http-addr", addr(ports[0]),
		"-raft-addr", addr(ports[1]), "-gossip-addr", addr(ports[2]), "-bootstrap-expect", "3",
		"-shards", strconv.Itoa(shards), "-join", gossip,
	}}
	if a := os.Getenv("CAIRN_MEASURE_PPROF"); a != "" {
		n4.args = append(n4.args, "-pprof-addr", a) // profile the joining node
	}
	t.Cleanup(func() { n4.signal(9) })
	stop = make(chan struct{})
	go func() { done <- writeLoad(eps, 32, stop) }()
	start := time.Now()
	if err := n4.start(pc.bin); err != nil {
		t.Fatal(err)
	}
	members := []string{"n1", "n2", "n3", "n4"}
	want := map[uint32][]string{}
	minMoves := 0
	for s := uint32(0); s < shards; s++ {
		r, _ := placement.Replicas(s, members, 3)
		r = slices.Clone(r)
		slices.Sort(r)
		want[s] = r
		if slices.Contains(r, "n4") {
			minMoves++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for {
		got, settled, err := readPlacement(eps[0])
		if err == nil && settled {
			same := true
			for s := range want {
				if !slices.Equal(got[s], want[s]) {
					same = false
				}
			}
			if same {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("not balanced after 20 minutes: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	balanced := time.Since(start)
	close(stop)
	during := <-done
	moved := 0
	for s := uint32(0); s < shards; s++ {
		if !slices.Equal(before[s], want[s]) {
			moved++
		}
	}
	restored := metric("http://"+n4.httpAddr, `cairn_snapshot_bytes_total{direction="restored"}`)
	fromLog := metric("http://"+n4.httpAddr, `cairn_raft_log_appended_bytes_total`)
	// The least n4 can receive: the loaded data of the shards it joins.
	var minBytes float64
	for i := 0; i < n; i++ {
		s, _ := placement.ShardFor("bulk", fmt.Sprintf("b%d", i%512), shards)
		if slices.Contains(want[s], "n4") {
			minBytes += valueSize - 64
		}
	}
	t.Logf("during the rebalance: %v", during)
	t.Logf("after the rebalance, %s", peakRSSLine(append(slices.Clone(pc.nodes), n4)...))
	t.Logf("3 → 4 nodes with %d MiB: balanced after %v; shards whose replicas moved: %d (rendezvous minimum: %d of %d shards gain n4, one replica each)",
		total>>20, balanced.Round(100*time.Millisecond), moved, minMoves, shards)
	t.Logf("bytes n4 received: %.0f MiB (%.0f MiB in snapshots, %.0f MiB of log entries, the writes made during the move included); the loaded data of the shards it joined: %.0f MiB",
		(restored+fromLog)/(1<<20), restored/(1<<20), fromLog/(1<<20), minBytes/(1<<20))
}
