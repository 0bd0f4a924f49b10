// The examples are tested as what they are: programs. The test builds every
// one and runs it, twice, against a real node, failing if a run exits
// non-zero (each example exits 1 when what its pattern promises did not
// hold).
//
// The node runs in-process, wired as cmd/node/run.go wires one (cluster,
// SQL engine, alarm scheduler, API) with HTTP on 127.0.0.1:0: it starts in
// well under a second with short Raft timings, needs no fixed ports, and
// its alarm scheduler retries fast. The examples reach it over real HTTP,
// as they would reach `go run ./cmd/node`, so nothing about them is
// test-specific except CAIRN_URL and the batch processor's shorter delay.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/internal/testnode"
)

// examples lists every program of this directory; TestExamples fails if
// a directory is missing here, so a new example cannot go untested.
var examples = []string{
	"schema-migration",
	"cache",
	"rate-limiter",
	"batch-processor",
	"counter",
	"parent-child",
	"write-coalescing",
	"atomic-sql-batch",
	"cleanup",
}

func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example")
	}
	checkListed(t)
	url := testnode.StartT(t, testnode.Options{}).URL

	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	for _, e := range examples {
		args = append(args, "./"+e)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("all", func(t *testing.T) {
		for _, e := range examples {
			t.Run(e, func(t *testing.T) {
				t.Parallel()
				// Twice: the second run proves an example can run again
				// against the same node (fresh object names each time).
				for run := 1; run <= 2; run++ {
					runExample(t, filepath.Join(bin, e), url, run)
				}
			})
		}
	})
}

func runExample(t *testing.T, path, url string, run int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), "CAIRN_URL="+url, "CAIRN_TOKEN=",
		"CAIRN_BATCH_DELAY=1s") // the batch processor's alarm: 1 s, not 5 s
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("run %d (%v):\n%s", run, time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("run %d of %s: %v", run, filepath.Base(path), err)
	}
}

// checkListed fails unless every directory here is a listed example and
// the README describes each.
func checkListed(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.Name(), "main.go")); err != nil {
			continue
		}
		if !slices.Contains(examples, e.Name()) {
			t.Errorf("examples/%s is not in the list this test runs", e.Name())
		}
	}
	for _, e := range examples {
		if !bytes.Contains(readme, []byte("("+e+"/main.go)")) {
			t.Errorf("README.md does not link %s/main.go", e)
		}
	}
}
