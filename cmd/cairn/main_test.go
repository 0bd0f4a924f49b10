package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/internal/testnode"
)

// The CLI is tested end to end against a real node started in-process,
// wired as cmd/node/run.go wires one (internal/testnode), with HTTP on
// 127.0.0.1:0. In-process rather than the
// cmd/node binary: it starts in well under a second with short Raft
// timings, needs no free fixed ports, and its logs go where the test says.
// TestBinary still runs the built cairn binary as a process, so that real
// exit statuses and pipes are covered.

const adminToken = "cli-test-admin-token"

var shared *testnode.Node

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tokens, err := api.ParseTokens([]byte(`{"tokens":[{"token":"` + adminToken + `","role":"admin"}]}`))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A second front end on the same node (shared.AuthURL) requires the token.
	n, err := testnode.Start(dir, testnode.Options{Tokens: tokens})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test node:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	shared = n
	code := m.Run()
	n.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cairn runs the command in-process against the shared node (CAIRN_URL),
// with stdin and its environment, stdin not a terminal.
func cairn(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	return cairnEnv(t, map[string]string{"CAIRN_URL": shared.URL}, stdin, args...)
}

func cairnEnv(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	return runCairn(t, env, false, stdin, args...)
}

// runCairn runs the command in-process; terminal stands for what main
// finds with isTerminal(os.Stdin), which decides, for one, whether `sql`
// without a statement is the interactive shell or runs a script.
func runCairn(t testing.TB, env map[string]string, terminal bool, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin:         strings.NewReader(stdin),
		stdout:        &out,
		stderr:        &errb,
		getenv:        func(k string) string { return env[k] },
		stdinTerminal: terminal,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := a.run(ctx, args)
	return result{out.String(), errb.String(), code}
}

// must runs the command and fails the test unless it exits with want.
func must(t testing.TB, want int, stdin string, args ...string) result {
	t.Helper()
	r := cairn(t, stdin, args...)
	if r.code != want {
		t.Fatalf("cairn %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

var objSeq atomic.Int64

// objName returns an object name no other test uses.
func objName(t testing.TB) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), objSeq.Add(1))
}

// deadURL returns the URL of a loopback port nobody listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
