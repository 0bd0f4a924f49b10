// Package testnode starts a whole Cairn node in the test's process, wired
// as cmd/node wires one (cluster, SQL engine, alarm scheduler, HTTP API),
// on loopback ports the kernel picks and with short Raft timings, so that
// tests of the programs built on the HTTP API (the CLI, the examples, the
// load generator) run against the real thing in well under a second.
package testnode

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/alarms"
	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/sqlstore"
	"github.com/cockroachdb/pebble/v2"
)

// Options are what a test may choose; the zero value is a node "n1" with
// 4 shards and the logs discarded (CAIRN_TEST_LOG=1 sends them to stderr).
type Options struct {
	ID     string
	Shards int
	// Tokens, when set, makes a second front end on the same node that
	// requires them (Node.AuthURL); Node.URL stays open.
	Tokens *api.Tokens
	// SQLOpenDBs bounds the open databases (0: sqlstore's default).
	SQLOpenDBs int
}

// Node is a running node of its own single-node cluster.
type Node struct {
	URL     string // http://127.0.0.1:port, no token required
	AuthURL string // the same node requiring Options.Tokens ("" without)
	Cluster *cluster.Node
	closers []func()
}

// Logger is the tests' logger: discarded unless CAIRN_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Start starts a node with its data in dir and waits until it is ready.
// On an error everything started is stopped again.
func Start(dir string, o Options) (n *Node, err error) {
	if o.ID == "" {
		o.ID = "n1"
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	n = &Node{}
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()
	log := Logger()
	ln, err := n.listen()
	if err != nil {
		return n, err
	}
	var sched atomic.Pointer[alarms.Scheduler]
	node, err := cluster.New(cluster.Config{
		NodeID:   o.ID,
		DataDir:  dir,
		RaftAddr: "127.0.0.1:0",
		HTTPAddr: ln.Addr().String(),
		Shards:   o.Shards,
		Raft: cluster.RaftConfig{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond},
		Logger: log,
		NewSQL: func(*pebble.DB) (cluster.SQLEngine, error) {
			return sqlstore.New(sqlstore.Config{MaxOpen: o.SQLOpenDBs, Logger: log})
		},
		OnAlarmChange: func(shard uint32) {
			if s := sched.Load(); s != nil {
				s.Notify(shard)
			}
		},
	})
	if err != nil {
		return n, err
	}
	if err := node.Start(); err != nil {
		return n, err
	}
	n.Cluster = node
	n.closers = append(n.closers, func() { node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.WaitReady(ctx); err != nil {
		return n, err
	}
	s, err := alarms.New(alarms.Config{Node: node, Logger: log, FirstBackoff: 100 * time.Millisecond, NoWebhookWait: 100 * time.Millisecond})
	if err != nil {
		return n, err
	}
	sched.Store(s)
	s.Start()
	n.closers = append(n.closers, func() { s.Close() })
	if n.URL, err = n.serve(ln, api.Config{Backend: node, Logger: log}); err != nil {
		return n, err
	}
	if o.Tokens != nil {
		authLn, err := n.listen()
		if err != nil {
			return n, err
		}
		if n.AuthURL, err = n.serve(authLn, api.Config{Backend: node, Logger: log, Tokens: o.Tokens}); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (n *Node) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		n.closers = append(n.closers, func() { ln.Close() })
	}
	return ln, err
}

// serve serves an API front end on ln and returns its URL.
func (n *Node) serve(ln net.Listener, cfg api.Config) (string, error) {
	srv, err := api.New(cfg)
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: srv.Handler()}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			Logger().Error("test node: serving HTTP", "err", err)
		}
	}()
	n.closers = append(n.closers, func() { hs.Close() })
	return "http://" + ln.Addr().String(), nil
}

// Close stops what Start started, the last first.
func (n *Node) Close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}

// StartT is Start for one test: data in t.TempDir, stopped at its end.
func StartT(t interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(string, ...any)
}, o Options) *Node {
	t.Helper()
	n, err := Start(t.TempDir(), o)
	if err != nil {
		t.Fatalf("starting a test node: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}
