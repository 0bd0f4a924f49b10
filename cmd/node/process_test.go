package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildNode builds this command once per test run.
func buildNode(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cairn-node-test")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "cairn")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var servingRE = regexp.MustCompile(`msg="serving HTTP" addr=(\S+)`)

// proc is a running node process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *strings.Builder
	mu   *sync.Mutex
	done chan struct{}
}

// startProc starts the binary on dataDir with ephemeral ports and waits until
// it is ready.
func startProc(t *testing.T, bin, dataDir string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-node-id", "p1", "-data-dir", dataDir, "-shards", "4",
		"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-gossip-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("node log:\n%s", p.logs.String())
			p.mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("node exited before serving")
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not start serving within 30s")
	}
	waitFor(t, 30*time.Second, "node ready", func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9LosesNothingAcknowledged writes from many clients, kills the
// node with SIGKILL while writes are in flight, restarts it on the same
// data directory, and checks that every acknowledged write is there.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	bin := buildNode(t)
	dir := t.TempDir()
	p := startProc(t, bin, dir)

	const writers, perWriter = 16, 400
	var mu sync.Mutex
	acked := map[string]string{} // path → value
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter && ctx.Err() == nil; i++ {
				path := fmt.Sprintf("/v1/ns/crash/objects/obj-%d/kv/key-%d", i%37, w*perWriter+i)
				val := fmt.Sprintf("value-%d-%d", w, i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, p.url+path, strings.NewReader(val))
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked[path] = val
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of writes are acknowledged, with more in flight.
	waitFor(t, 60*time.Second, "acknowledged writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= writers*perWriter/4
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	cancel()
	wg.Wait()

	mu.Lock()
	n := len(acked)
	mu.Unlock()
	t.Logf("%d writes acknowledged before kill -9", n)

	p2 := startProc(t, bin, dir)
	for path, want := range acked {
		resp, err := http.Get(p2.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("after restart %s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
}

// TestSIGTERMStopsCleanly checks that SIGTERM stops the node within a few
// seconds with exit status 0.
func TestSIGTERMStopsCleanly(t *testing.T) {
	bin := buildNode(t)
	p := startProc(t, bin, t.TempDir())
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("node still running 10s after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestStartErrors checks the clear errors and exit codes of a bad start.
func TestStartErrors(t *testing.T) {
	bin := buildNode(t)
	p := startProc(t, bin, t.TempDir())
	busy := strings.TrimPrefix(p.url, "http://")
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad flag", []string{"-shards", "x"}, 2, "invalid value"},
		{"busy http port", []string{"-http-addr", busy, "-data-dir", t.TempDir(), "-raft-addr", "127.0.0.1:0", "-gossip-addr", "127.0.0.1:0"}, 1, "address already in use"},
		{"data dir is a file", []string{"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-gossip-addr", "127.0.0.1:0", "-data-dir", file}, 1, "unusable data directory"},
	} {
		cmd := exec.Command(bin, tc.args...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: exit %d, output %q; want exit %d mentioning %q", tc.name, cmd.ProcessState.ExitCode(), out, tc.code, tc.want)
		}
	}
}
