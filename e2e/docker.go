package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// DockerCluster drives the repository's docker-compose.yml: the three nodes
// n1, n2, n3 in containers of the cairn image, on a private bridge network
// with static IPs, their HTTP APIs published on 127.0.0.1:8081…8083.
// Every test gets a compose project of its own, brought up on fresh
// volumes and taken down with them in the test's cleanup.
//
// Faults are docker's: Kill is docker kill -s KILL, Stop docker stop
// (SIGTERM), Start docker start, Restart docker restart, Pause and Resume
// docker pause and unpause (the cgroup freezer), Isolate and Heal docker
// network disconnect and connect (with the node's static IP). A node cut
// off the network is also cut off from the host: its published port does
// not answer until it is healed. AddNodes starts n4 and n5 of the compose
// profile "scale", which join the running cluster; Retire stops a node for
// good (a scale-in, once it was drained).
type DockerCluster struct {
	compose []string // the compose command and its project arguments
	env     []string
	project string
	network string

	nmu     sync.RWMutex // guards nodes, byID and retired
	nodes   []*dockerNode
	byID    map[string]*dockerNode
	retired []string // nodes scaled in: no longer in Nodes, still in the artifacts

	mu     sync.Mutex // guards events
	events []logEvent // what the suite did to each node, for Logs
}

// dockerNode is one node's container.
type dockerNode struct {
	id        string
	container string
	ip        string // its static address on the cluster network
	endpoint  string
}

type logEvent struct {
	node string
	at   time.Time
	what string
}

var (
	_ Cluster     = (*DockerCluster)(nil)
	_ Partitioner = (*DockerCluster)(nil)
	_ Restarter   = (*DockerCluster)(nil)
)

// DockerClusterConfig configures NewDockerCluster. Zero means default.
type DockerClusterConfig struct {
	// ComposeFile defaults to docker-compose.yml in the repository root.
	ComposeFile string
	// Project is the compose project name; default cairn-e2e-<random>.
	Project string
	// Image defaults to $CAIRN_IMAGE, else cairn:dev. A missing image is
	// built with scripts/build-image.sh.
	Image string
	// StartTimeout bounds the fresh cluster's start (every /readyz 200);
	// default 2 min.
	StartTimeout time.Duration
	// OnFailure, if set, runs in the test's cleanup when the test failed,
	// however it ended (t.Fatal on the way up included), before the
	// project and its containers' logs are removed: where a scenario
	// saves its evidence.
	OnFailure func(*DockerCluster)
}

// Bounds of docker commands.
const (
	dockerTimeout   = time.Minute      // one docker command
	composeTimeout  = 3 * time.Minute  // docker-compose up or down
	buildTimeout    = 15 * time.Minute // scripts/build-image.sh, a cold Go build included
	dockerStopGrace = 15               // seconds docker waits after SIGTERM: above -shutdown-timeout 10s
)

// dockerNodes are the services of docker-compose.yml the suite starts
// with; scaleNodes are those of its "scale" profile, which AddNodes starts.
var (
	dockerNodes = []string{"n1", "n2", "n3"}
	scaleNodes  = []string{"n4", "n5"}
)

// publishedPorts are the host ports docker-compose.yml publishes each
// node's HTTP API on.
var publishedPorts = map[string]string{"n1": "8081", "n2": "8082", "n3": "8083", "n4": "8084", "n5": "8085"}

// ProjectPrefix starts the name of every compose project the suite makes,
// so that scripts/e2e-docker.sh can find what an interrupted run left.
const ProjectPrefix = "cairn-e2e-"

// NewDockerCluster brings up docker-compose.yml's three nodes as a new
// compose project on fresh volumes and waits until every node's /readyz
// answers 200. The project, its volumes included, is removed in the test's
// cleanup.
func NewDockerCluster(t testing.TB, cfg DockerClusterConfig) *DockerCluster {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ComposeFile == "" {
		cfg.ComposeFile = filepath.Join(root, "docker-compose.yml")
	}
	if cfg.Project == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Project = ProjectPrefix + hex.EncodeToString(b)
	}
	if cfg.Image == "" {
		cfg.Image = os.Getenv("CAIRN_IMAGE")
	}
	if cfg.Image == "" {
		cfg.Image = "cairn:dev"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	compose, err := composeCommand()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := portsFree(dockerNodes); err != nil {
		t.Fatal(err)
	}
	if _, err := dockerRun(dockerTimeout, "image", "inspect", cfg.Image); err != nil {
		t.Logf("e2e: no image %s; building it with scripts/build-image.sh", cfg.Image)
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-image.sh"))
		cmd.Env = append(os.Environ(), "CAIRN_IMAGE="+cfg.Image)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("e2e: scripts/build-image.sh: %v\n%s", err, out)
		}
	}

	dc := &DockerCluster{
		compose: append(compose, "-p", cfg.Project, "-f", cfg.ComposeFile),
		env:     append(os.Environ(), "CAIRN_IMAGE="+cfg.Image),
		project: cfg.Project,
		byID:    map[string]*dockerNode{},
	}
	t.Cleanup(func() {
		if err := dc.Down(); err != nil {
			t.Errorf("e2e: removing compose project %s: %v", dc.project, err)
		}
	})
	if cfg.OnFailure != nil {
		// Cleanups run last in, first out: this one before Down.
		t.Cleanup(func() {
			if t.Failed() {
				cfg.OnFailure(dc)
			}
		})
	}
	t.Logf("e2e: docker-compose -p %s up -d %s", cfg.Project, strings.Join(dockerNodes, " "))
	if out, err := dc.composeRun(composeTimeout, append([]string{"up", "-d", "--no-build"}, dockerNodes...)...); err != nil {
		t.Fatalf("e2e: docker-compose up: %v\n%s", err, out)
	}
	if dc.network, err = dockerRun(dockerTimeout, "network", "ls",
		"--filter", "label=com.docker.compose.project="+cfg.Project,
		"--filter", "label=com.docker.compose.network=cairn", "--format", "{{.Name}}"); err != nil || dc.network == "" {
		t.Fatalf("e2e: finding the network of project %s: %q %v", cfg.Project, dc.network, err)
	}
	for _, id := range dockerNodes {
		n, err := dc.discover(id)
		if err != nil {
			t.Fatal(err)
		}
		dc.nodes = append(dc.nodes, n)
		dc.byID[id] = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := WaitHealthy(ctx, dc); err != nil {
		for _, n := range dc.nodes {
			t.Logf("log of %s:\n%s", n.id, tail(dc.Logs(n.id), 4000))
		}
		t.Fatalf("e2e: the docker cluster did not become ready within %v: %v", cfg.StartTimeout, err)
	}
	t.Logf("e2e: project %s ready: %s", cfg.Project, strings.Join(dc.Endpoints(), " "))
	return dc
}

// portsFree checks that the host ports nodes publish their APIs on are
// free.
func portsFree(nodes []string) error {
	for _, id := range nodes {
		port := publishedPorts[id]
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			return fmt.Errorf("e2e: 127.0.0.1:%s is taken (%v); the docker suite publishes %s there: stop what uses it (a cluster of docker-compose up? scripts/cluster-down.sh)", port, err, id)
		}
		l.Close()
	}
	return nil
}

// discover finds service id's container, its static IP and its published
// HTTP endpoint.
func (dc *DockerCluster) discover(id string) (*dockerNode, error) {
	n := &dockerNode{id: id}
	var err error
	if n.container, err = dc.composeRun(dockerTimeout, "ps", "-q", id); err != nil || n.container == "" {
		return nil, fmt.Errorf("e2e: the container of %s: %q %v", id, n.container, err)
	}
	if n.ip, err = dockerRun(dockerTimeout, "inspect", "-f",
		fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAMConfig.IPv4Address}}`, dc.network), n.container); err != nil || n.ip == "" {
		return nil, fmt.Errorf("e2e: the static IP of %s: %q %v", id, n.ip, err)
	}
	port, err := dockerRun(dockerTimeout, "port", n.container, "8080/tcp")
	if err != nil || port == "" {
		return nil, fmt.Errorf("e2e: the published HTTP port of %s: %q %v", id, port, err)
	}
	n.endpoint = "http://" + strings.Fields(port)[0]
	return n, nil
}

// AddNodes starts services of docker-compose.yml's "scale" profile (n4,
// n5), which join the running cluster (-join), and adds them to Nodes and
// Endpoints. It does not wait for them to be ready or to hold shards.
func (dc *DockerCluster) AddNodes(ids ...string) error {
	for _, id := range ids {
		if !slices.Contains(scaleNodes, id) {
			return fmt.Errorf("%w: %q is not a service of the scale profile %v", ErrUnknownNode, id, scaleNodes)
		}
		if _, err := dc.node(id); err == nil {
			return fmt.Errorf("%w: %s", ErrRunning, id)
		}
	}
	if err := portsFree(ids); err != nil {
		return err
	}
	if out, err := dc.composeRun(composeTimeout, append([]string{"--profile", "scale", "up", "-d", "--no-build"}, ids...)...); err != nil {
		return fmt.Errorf("e2e: docker-compose up %v: %w\n%s", ids, err, out)
	}
	for _, id := range ids {
		n, err := dc.discover(id)
		if err != nil {
			return err
		}
		dc.note(n, "docker-compose --profile scale up -d %s", id)
		dc.nmu.Lock()
		dc.nodes = append(dc.nodes, n)
		dc.byID[id] = n
		dc.nmu.Unlock()
	}
	return nil
}

// Retire stops node id cleanly (docker stop) and takes it out of Nodes and
// Endpoints, for good: what a scale-in does once the node was drained. Its
// log stays in the artifacts.
func (dc *DockerCluster) Retire(id string) error {
	if err := dc.Stop(id); err != nil {
		return err
	}
	dc.nmu.Lock()
	defer dc.nmu.Unlock()
	dc.nodes = slices.DeleteFunc(dc.nodes, func(n *dockerNode) bool { return n.id == id })
	dc.retired = append(dc.retired, id)
	return nil
}

// LoggedNodes returns every node that ever ran, retired ones included, and
// every other service of the project that has a container (one that
// started before the suite found it, on a failed start): the nodes whose
// logs the artifacts keep.
func (dc *DockerCluster) LoggedNodes() []string {
	dc.nmu.RLock()
	out := make([]string, 0, len(dc.nodes)+len(dc.retired))
	for _, n := range dc.nodes {
		out = append(out, n.id)
	}
	out = append(out, dc.retired...)
	dc.nmu.RUnlock()
	services, _ := dockerRun(dockerTimeout, "ps", "-a", "--filter", "label=com.docker.compose.project="+dc.project,
		"--format", `{{.Label "com.docker.compose.service"}}`)
	for _, id := range strings.Fields(services) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// containerOf returns the container of service id: the one the suite
// found, else the one of the project labelled with it.
func (dc *DockerCluster) containerOf(id string) (string, error) {
	if n, err := dc.node(id); err == nil {
		return n.container, nil
	}
	ids, err := dockerRun(dockerTimeout, "ps", "-aq", "--filter", "label=com.docker.compose.project="+dc.project,
		"--filter", "label=com.docker.compose.service="+id)
	if err != nil || ids == "" {
		return "", errors.Join(fmt.Errorf("%w: %q has no container", ErrUnknownNode, id), err)
	}
	return strings.Fields(ids)[0], nil
}

// Gateway returns the host's address on the cluster network: where the
// containers reach a server of the test process (the alarm webhook).
func (dc *DockerCluster) Gateway() (string, error) {
	gw, err := dockerRun(dockerTimeout, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", dc.network)
	if err == nil && gw != "" {
		return gw, nil
	}
	// A network created with a subnet only leaves IPAM's gateway empty;
	// the containers' settings name it.
	dc.nmu.RLock()
	n := dc.nodes[0]
	dc.nmu.RUnlock()
	gw, err = dockerRun(dockerTimeout, "inspect", "-f",
		fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).Gateway}}`, dc.network), n.container)
	if err != nil || gw == "" {
		return "", fmt.Errorf("e2e: the gateway of network %s: %q %v", dc.network, gw, err)
	}
	return gw, nil
}

// composeCommand finds docker-compose (v1) or the docker compose plugin.
func composeCommand() ([]string, error) {
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	if _, err := dockerRun(dockerTimeout, "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	return nil, errors.New("neither docker-compose nor the docker compose plugin is installed")
}

// dockerRun runs docker with args, bounded by timeout, and returns its
// trimmed standard output; the error carries standard error.
func dockerRun(timeout time.Duration, args ...string) (string, error) {
	return runCmd(timeout, nil, "docker", args...)
}

func (dc *DockerCluster) composeRun(timeout time.Duration, args ...string) (string, error) {
	return runCmd(timeout, dc.env, dc.compose[0], append(slices.Clone(dc.compose[1:]), args...)...)
}

func runCmd(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Down removes the project: containers, network and volumes. If
// docker-compose fails, whatever carries the project's label is removed
// directly.
func (dc *DockerCluster) Down() error {
	out, err := dc.composeRun(composeTimeout, "--profile", "scale", "down", "--volumes", "--remove-orphans", "--timeout", "5")
	if err == nil {
		return nil
	}
	if rerr := RemoveProject(dc.project); rerr != nil {
		return errors.Join(fmt.Errorf("%w\n%s", err, out), rerr)
	}
	return nil
}

// RemoveProject force-removes every container, network and volume labelled
// with the compose project.
func RemoveProject(project string) error {
	label := "label=com.docker.compose.project=" + project
	var errs []error
	for _, kind := range []struct{ list, rm []string }{
		{[]string{"ps", "-aq", "--filter", label}, []string{"rm", "-f", "-v"}},
		{[]string{"network", "ls", "-q", "--filter", label}, []string{"network", "rm"}},
		{[]string{"volume", "ls", "-q", "--filter", label}, []string{"volume", "rm", "-f"}},
	} {
		ids, err := dockerRun(dockerTimeout, kind.list...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ids == "" {
			continue
		}
		if _, err := dockerRun(dockerTimeout, append(kind.rm, strings.Fields(ids)...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Project returns the compose project name.
func (dc *DockerCluster) Project() string { return dc.project }

// Endpoints implements Cluster.
func (dc *DockerCluster) Endpoints() []string {
	dc.nmu.RLock()
	defer dc.nmu.RUnlock()
	out := make([]string, len(dc.nodes))
	for i, n := range dc.nodes {
		out[i] = n.endpoint
	}
	return out
}

// Nodes implements Cluster.
func (dc *DockerCluster) Nodes() []string {
	dc.nmu.RLock()
	defer dc.nmu.RUnlock()
	out := make([]string, len(dc.nodes))
	for i, n := range dc.nodes {
		out[i] = n.id
	}
	return out
}

func (dc *DockerCluster) node(id string) (*dockerNode, error) {
	dc.nmu.RLock()
	defer dc.nmu.RUnlock()
	n, ok := dc.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	return n, nil
}

// note records what the suite did to a node, for Logs.
func (dc *DockerCluster) note(n *dockerNode, format string, args ...any) {
	dc.mu.Lock()
	dc.events = append(dc.events, logEvent{node: n.id, at: time.Now().UTC(), what: fmt.Sprintf(format, args...)})
	dc.mu.Unlock()
}

// docker runs one docker command on node n's behalf and notes it.
func (dc *DockerCluster) docker(n *dockerNode, args ...string) error {
	dc.note(n, "docker %s", strings.Join(args, " "))
	_, err := dockerRun(dockerTimeout, args...)
	return err
}

// status returns the container's state: running, paused, exited, …
func (n *dockerNode) status() (string, error) {
	return dockerRun(dockerTimeout, "inspect", "-f", "{{.State.Status}}", n.container)
}

// thaw unpauses a paused container, so that it can act on a signal.
func (dc *DockerCluster) thaw(n *dockerNode) error {
	if st, err := n.status(); err != nil || st != "paused" {
		return err
	}
	return dc.docker(n, "unpause", n.container)
}

// Kill implements Cluster: docker kill -s KILL, then wait until the
// container has exited. docker counts it as a manual stop, so the restart
// policy leaves it down until Start.
func (dc *DockerCluster) Kill(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if st, err := n.status(); err != nil {
		return err
	} else if st != "running" && st != "paused" {
		return nil // already where the caller wants it
	}
	if err := dc.thaw(n); err != nil {
		return err
	}
	if err := dc.docker(n, "kill", "-s", "KILL", n.container); err != nil {
		return err
	}
	deadline := time.Now().Add(exitTimeout)
	for {
		st, err := n.status()
		if err == nil && st != "running" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still %s %v after docker kill (%v)", id, st, exitTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop implements Cluster: docker stop (SIGTERM; SIGKILL after 15 s).
func (dc *DockerCluster) Stop(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if err := dc.thaw(n); err != nil {
		return err
	}
	return dc.docker(n, "stop", "-t", fmt.Sprint(dockerStopGrace), n.container)
}

// Start implements Cluster: docker start.
func (dc *DockerCluster) Start(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if st, err := n.status(); err != nil {
		return err
	} else if st == "running" || st == "paused" {
		return fmt.Errorf("%w: %s", ErrRunning, id)
	}
	return dc.docker(n, "start", n.container)
}

// Restart implements Restarter: docker restart (SIGTERM, wait, start).
func (dc *DockerCluster) Restart(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if err := dc.thaw(n); err != nil {
		return err
	}
	return dc.docker(n, "restart", "-t", fmt.Sprint(dockerStopGrace), n.container)
}

// Pause implements Cluster: docker pause.
func (dc *DockerCluster) Pause(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	return dc.docker(n, "pause", n.container)
}

// Resume implements Cluster: docker unpause.
func (dc *DockerCluster) Resume(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	return dc.docker(n, "unpause", n.container)
}

// connected reports whether node n is attached to the cluster network.
func (dc *DockerCluster) connected(n *dockerNode) (bool, error) {
	out, err := dockerRun(dockerTimeout, "inspect", "-f",
		fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}yes{{end}}`, dc.network), n.container)
	return out == "yes", err
}

// Isolate implements Partitioner: docker network disconnect.
func (dc *DockerCluster) Isolate(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if ok, err := dc.connected(n); err != nil || !ok {
		return err
	}
	return dc.docker(n, "network", "disconnect", dc.network, n.container)
}

// Heal implements Partitioner: docker network connect with the node's
// static IP (and its service name as alias, as compose gave it).
func (dc *DockerCluster) Heal(id string) error {
	n, err := dc.node(id)
	if err != nil {
		return err
	}
	if ok, err := dc.connected(n); err != nil || ok {
		return err
	}
	return dc.docker(n, "network", "connect", "--ip", n.ip, "--alias", n.id, dc.network, n.container)
}

// Partition cuts the minority off: each of its nodes is disconnected from
// the network (so the minority's nodes do not reach each other either),
// and the rest keep talking. HealAll undoes it.
func (dc *DockerCluster) Partition(minority ...string) error {
	var errs []error
	for _, id := range minority {
		errs = append(errs, dc.Isolate(id))
	}
	return errors.Join(errs...)
}

// HealAll reconnects every node.
func (dc *DockerCluster) HealAll() error {
	var errs []error
	for _, id := range dc.Nodes() {
		errs = append(errs, dc.Heal(id))
	}
	return errors.Join(errs...)
}

// Logs implements Cluster: docker logs of the node's container, which
// spans its restarts, with the suite's docker commands on it merged in by
// time as "=== e2e:" lines.
func (dc *DockerCluster) Logs(id string) string {
	container, err := dc.containerOf(id)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", "--timestamps", container).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(docker logs %s: %v)\n%s", id, err, out)
	}
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var last time.Time
	for sc.Scan() {
		text := sc.Text()
		if ts, _, ok := strings.Cut(text, " "); ok {
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				last = at
			}
		}
		lines = append(lines, line{last, text})
	}
	dc.mu.Lock()
	for _, ev := range dc.events {
		if ev.node == id {
			lines = append(lines, line{ev.at, ev.at.Format(time.RFC3339Nano) + " === e2e: " + ev.what})
		}
	}
	dc.mu.Unlock()
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// CheckMembership polls until every node's GET /v1/cluster lists every node
// of the cluster as alive, or timeout passes: gossip, which routes requests
// and decides who may hold replicas, must converge again after faults.
func CheckMembership(c Cluster, timeout time.Duration) Verdict {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var diffs []string
		for i, ep := range c.Endpoints() {
			st, err := FetchStatus(context.Background(), ep)
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", c.Nodes()[i], err))
				continue
			}
			seen := map[string]string{}
			for _, m := range st.Nodes {
				seen[m.ID] = m.State
			}
			for _, id := range c.Nodes() {
				if s := seen[id]; s != "alive" {
					if s == "" {
						s = "absent"
					}
					diffs = append(diffs, fmt.Sprintf("%s sees %s %s", c.Nodes()[i], id, s))
				}
			}
		}
		if len(diffs) == 0 {
			return Verdict{Name: "members-alive", OK: true, Detail: fmt.Sprintf("every one of %d nodes sees all %d alive (after %v)", len(c.Nodes()), len(c.Nodes()), time.Since(start).Round(time.Millisecond))}
		}
		if time.Now().After(deadline) {
			return Verdict{Name: "members-alive", Detail: fmt.Sprintf("after %v: %s", timeout, strings.Join(diffs, "; "))}
		}
		time.Sleep(500 * time.Millisecond)
	}
}
