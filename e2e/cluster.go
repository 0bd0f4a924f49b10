// Package e2e is Cairn's robustness suite: it runs real node processes,
// drives recorded traffic at them while failpoints kill, pause and restart
// nodes, and then checks the recorded history for linearizability
// (porcupine), durability of acknowledged writes, and replica agreement.
//
// It is laid out like etcd's robustness tests:
//
//   - cluster.go: the Cluster interface the suite drives, and
//     ProcessCluster, which runs nodes as local processes on loopback;
//   - client.go: a recording HTTP client (plain net/http, no server
//     packages) that classifies every answer as ok, failed or unknown;
//   - model.go: the porcupine model of per-key registers;
//   - traffic.go: the workloads (registers with get/put/cas; a counter);
//   - sql.go, alarms.go: the SQL workload (tables that only grow) and the
//     alarm workload with its webhook receiver, and their verdicts;
//   - failpoints.go, failpoints_cluster.go: faults injected in a bounded
//     loop during traffic;
//   - scale.go: drains and the settled placement of a membership change;
//   - validate.go: the verdicts and the artifacts saved on failure;
//   - docker.go: DockerCluster, the same Cluster over docker-compose.yml;
//   - robustness_test.go, docker_test.go: the scenarios (run only with
//     CAIRN_E2E=1, CAIRN_E2E_DOCKER=1).
//
// Everything except ProcessCluster, DockerCluster and the tests talks to
// the cluster only through HTTP and the Cluster interface, so the suite
// against docker compose reuses the clients, model, traffic and validation
// with its own Cluster.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running Cairn cluster the suite can observe and hurt. Node
// names index Endpoints: Endpoints()[i] is the HTTP base URL of Nodes()[i].
// Every method is safe for concurrent use.
type Cluster interface {
	// Endpoints returns each node's HTTP base URL ("http://host:port").
	Endpoints() []string
	// Nodes returns the node ids, in the order of Endpoints.
	Nodes() []string
	// Kill stops node abruptly (SIGKILL) and waits until it is gone.
	Kill(node string) error
	// Stop stops node cleanly (SIGTERM) and waits until it has exited.
	Stop(node string) error
	// Start restarts a stopped or killed node on its data and addresses.
	Start(node string) error
	// Pause freezes node (SIGSTOP); Resume thaws it (SIGCONT).
	Pause(node string) error
	Resume(node string) error
	// Logs returns everything node has logged, across restarts.
	Logs(node string) string
}

// Errors of ProcessCluster.
var (
	ErrUnknownNode = errors.New("e2e: unknown node")
	ErrNotRunning  = errors.New("e2e: node is not running")
	ErrRunning     = errors.New("e2e: node is already running")
)

// Timeouts of the process cluster.
const (
	// startTimeout bounds a fresh cluster's bootstrap (every /readyz 200).
	startTimeout = 60 * time.Second
	// exitTimeout bounds the wait for a signalled process to exit; a clean
	// stop may take the node's -shutdown-timeout (10 s by default).
	exitTimeout = 20 * time.Second
)

// ProcessClusterConfig configures NewProcessCluster. Zero means default.
type ProcessClusterConfig struct {
	Nodes  int      // default 3
	Shards int      // default 4
	Args   []string // extra flags for every node
}

// ProcessCluster runs each node as a local process of the cairn binary on
// loopback, with its own data directory and fixed ports that survive
// restarts. Every process is killed in the test's cleanup.
type ProcessCluster struct {
	bin   string
	nodes []*procNode
	byID  map[string]*procNode
}

// procNode is one node process and how to start it again.
type procNode struct {
	id       string
	httpAddr string
	args     []string
	logPath  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	logFile *os.File
	paused  bool
	starts  int
}

var _ Cluster = (*ProcessCluster)(nil)

// NewProcessCluster builds the node binary (once per test binary), starts
// cfg.Nodes nodes on free loopback ports and waits until every node's
// /readyz answers 200.
func NewProcessCluster(t testing.TB, cfg ProcessClusterConfig) *ProcessCluster {
	t.Helper()
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Shards == 0 {
		cfg.Shards = 4
	}
	bin := BuildNode(t)
	ports, err := freePorts(3 * cfg.Nodes)
	if err != nil {
		t.Fatalf("e2e: picking ports: %v", err)
	}
	dir := t.TempDir()
	pc := &ProcessCluster{bin: bin, byID: map[string]*procNode{}}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	var firstGossip string
	for i := 0; i < cfg.Nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		n := &procNode{
			id:       id,
			httpAddr: addr(ports[3*i]),
			logPath:  filepath.Join(dir, id+".log"),
		}
		gossip := addr(ports[3*i+2])
		n.args = []string{
			"-node-id", id,
			"-data-dir", filepath.Join(dir, id),
			"-http-addr", n.httpAddr,
			"-raft-addr", addr(ports[3*i+1]),
			"-gossip-addr", gossip,
			"-bootstrap-expect", strconv.Itoa(cfg.Nodes),
			"-shards", strconv.Itoa(cfg.Shards),
		}
		if i == 0 {
			firstGossip = gossip
		} else {
			n.args = append(n.args, "-join", firstGossip)
		}
		n.args = append(n.args, cfg.Args...)
		pc.nodes = append(pc.nodes, n)
		pc.byID[id] = n
	}
	t.Cleanup(pc.killAll)
	for _, n := range pc.nodes {
		if err := n.start(bin); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := WaitHealthy(ctx, pc); err != nil {
		for _, n := range pc.nodes {
			t.Logf("log of %s:\n%s", n.id, tail(pc.Logs(n.id), 4000))
		}
		t.Fatalf("e2e: the cluster did not become ready within %v: %v", startTimeout, err)
	}
	return pc
}

// Endpoints implements Cluster.
func (pc *ProcessCluster) Endpoints() []string {
	out := make([]string, len(pc.nodes))
	for i, n := range pc.nodes {
		out[i] = "http://" + n.httpAddr
	}
	return out
}

// Nodes implements Cluster.
func (pc *ProcessCluster) Nodes() []string {
	out := make([]string, len(pc.nodes))
	for i, n := range pc.nodes {
		out[i] = n.id
	}
	return out
}

func (pc *ProcessCluster) node(id string) (*procNode, error) {
	n, ok := pc.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	return n, nil
}

// Kill implements Cluster.
func (pc *ProcessCluster) Kill(id string) error {
	n, err := pc.node(id)
	if err != nil {
		return err
	}
	return n.signalAndWait(syscall.SIGKILL)
}

// Stop implements Cluster. A node that does not exit within exitTimeout is
// killed, and Stop reports that it did not stop cleanly.
func (pc *ProcessCluster) Stop(id string) error {
	n, err := pc.node(id)
	if err != nil {
		return err
	}
	if err := n.signalAndWait(syscall.SIGTERM); err != nil {
		if kerr := n.signalAndWait(syscall.SIGKILL); kerr != nil {
			return errors.Join(err, kerr)
		}
		return fmt.Errorf("%v; killed it", err)
	}
	return nil
}

// Start implements Cluster.
func (pc *ProcessCluster) Start(id string) error {
	n, err := pc.node(id)
	if err != nil {
		return err
	}
	return n.start(pc.bin)
}

// Pause implements Cluster.
func (pc *ProcessCluster) Pause(id string) error {
	n, err := pc.node(id)
	if err != nil {
		return err
	}
	return n.signal(syscall.SIGSTOP)
}

// Resume implements Cluster.
func (pc *ProcessCluster) Resume(id string) error {
	n, err := pc.node(id)
	if err != nil {
		return err
	}
	return n.signal(syscall.SIGCONT)
}

// Logs implements Cluster.
func (pc *ProcessCluster) Logs(id string) string {
	n, err := pc.node(id)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", n.logPath, err)
	}
	return string(b)
}

// killAll kills every process still running; it is the test's cleanup.
func (pc *ProcessCluster) killAll() {
	for _, n := range pc.nodes {
		_ = n.signalAndWait(syscall.SIGKILL)
	}
}

// start launches the node's process, appending its stderr to its log file.
func (n *procNode) start(bin string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running() {
		return fmt.Errorf("%w: %s", ErrRunning, n.id)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.starts++
	fmt.Fprintf(f, "=== e2e: start %d of %s at %s: %s %s\n", n.starts, n.id,
		time.Now().Format(time.RFC3339Nano), bin, strings.Join(n.args, " "))
	cmd := exec.Command(bin, n.args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		fmt.Fprintf(f, "=== e2e: %s exited at %s: %v\n", n.id, time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		f.Close()
		close(done)
	}()
	n.cmd, n.done, n.logFile, n.paused = cmd, done, f, false
	return nil
}

// running reports whether the current process is alive. Needs n.mu.
func (n *procNode) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the running process.
func (n *procNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running() {
		return fmt.Errorf("%w: %s", ErrNotRunning, n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, n.id, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return nil
}

// signalAndWait sends sig (thawing a paused process first, so that it can
// act on it) and waits until the process has exited. A node that is not
// running is already where the caller wants it.
func (n *procNode) signalAndWait(sig syscall.Signal) error {
	n.mu.Lock()
	if !n.running() {
		n.mu.Unlock()
		return nil
	}
	p, done := n.cmd.Process, n.done
	if n.paused && sig != syscall.SIGKILL {
		_ = p.Signal(syscall.SIGCONT)
	}
	n.paused = false
	err := p.Signal(sig)
	n.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v to %s: %w", sig, n.id, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("%s did not exit within %v of %v", n.id, exitTimeout, sig)
	}
}

// WaitHealthy polls every node's /readyz until all answer 200 or ctx ends.
func WaitHealthy(ctx context.Context, c Cluster) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	var last error
	for {
		last = nil
		for i, ep := range c.Endpoints() {
			if err := probeReady(ctx, hc, ep); err != nil {
				last = fmt.Errorf("%s: %w", c.Nodes()[i], err)
				break
			}
		}
		if last == nil {
			return nil
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		}
	}
}

func probeReady(ctx context.Context, hc *http.Client, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %d", resp.StatusCode)
	}
	return nil
}

// freePorts returns n distinct loopback ports that are free for TCP and,
// because memberlist uses both, for UDP. Every port is held until all are
// picked, so none is returned twice.
func freePorts(n int) ([]int, error) {
	var (
		ports   []int
		closers []func()
	)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			return nil, errors.New("e2e: could not find free ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { l.Close() })
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		closers = append(closers, func() { u.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// BuildNode builds ./cmd/node once per test binary and returns its path;
// $CAIRN_E2E_BIN, when set, names a binary to use instead.
func BuildNode(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("CAIRN_E2E_BIN"); bin != "" {
			builtBin, buildErr = filepath.Abs(bin)
			return
		}
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "cairn-e2e-bin"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "cairn")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/node")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/node: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("e2e: %v", buildErr)
	}
	return builtBin
}

// removeBuild deletes the built binary; TestMain calls it.
func removeBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// repoRoot finds the module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/cairndb/cairn\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: no go.mod of github.com/cairndb/cairn above the working directory")
		}
		dir = parent
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
