package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/alarms"
	"github.com/cairndb/cairn/api"
	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/sqlstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// alarmSettle bounds how long a clean stop waits for alarm deliveries in
// flight to record their outcomes (alarms.Scheduler.Stop).
const alarmSettle = 2 * time.Second

// run starts a node and serves until ctx ends, then stops it cleanly:
// stop taking requests, let those in flight finish, then close the node.
// started, if not nil, receives the bound HTTP address once serving.
func run(ctx context.Context, c config, started chan<- string) error {
	log := newLogger(c)
	var tokens *api.Tokens
	if c.TokensFile != "" {
		var err error
		if tokens, err = api.LoadTokens(c.TokensFile); err != nil {
			return err
		}
	}
	// Bind the HTTP port first: a busy port is the most common start-up
	// failure and should not cost a Raft start.
	httpLn, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on -http-addr %s: %w", c.HTTPAddr, err)
	}
	defer httpLn.Close()

	gossipKey, err := c.gossipKey()
	if err != nil {
		return err
	}
	if c.PprofAddr != "" {
		go servePprof(c.PprofAddr, log)
	}
	reg := prometheus.NewRegistry()
	// The scheduler needs the node and the node's state machines notify the
	// scheduler: the hook finds it once it exists.
	var sched atomic.Pointer[alarms.Scheduler]
	node, err := cluster.New(cluster.Config{
		NodeID:              c.NodeID,
		DataDir:             c.DataDir,
		RaftAddr:            c.RaftAddr,
		AdvertiseRaftAddr:   advertiseIfSet(c, c.RaftAddr),
		HTTPAddr:            c.advertise(httpLn.Addr().String()),
		GossipAddr:          c.GossipAddr,
		AdvertiseGossipAddr: advertiseIfSet(c, c.GossipAddr),
		Join:                c.Join,
		BootstrapExpect:     c.BootstrapExpect,
		Replicas:            c.Replicas,
		GossipKey:           gossipKey,
		Rebalance:           cluster.RebalanceConfig{DeadNodeGrace: c.DeadNodeGrace},
		Shards:              c.shardsOrZero(),
		Logger:              log,
		Registerer:          reg,
		NewSQL: func(*pebble.DB) (cluster.SQLEngine, error) {
			return sqlstore.New(sqlstore.Config{MaxOpen: c.SQLOpenDBs, Logger: log})
		},
		OnAlarmChange: func(shard uint32) {
			if s := sched.Load(); s != nil {
				s.Notify(shard)
			}
		},
		OnHandoff: func(ctx context.Context, shard uint32) func() {
			if s := sched.Load(); s != nil {
				return s.Handoff(ctx, shard)
			}
			return func() {}
		},
	})
	if err != nil {
		return err
	}
	if err := node.Start(); err != nil {
		return err
	}
	// On the error paths below, close what started. A clean stop that
	// overruns its timeout must not wait here for the very Close it gave up
	// on: abandoned skips the deferred closes and the process exits.
	abandoned := false
	defer func() {
		if !abandoned {
			node.Close()
		}
	}()
	scheduler, err := alarms.New(alarms.Config{Node: node, Logger: log, Registerer: reg, Concurrency: c.AlarmConcurrency})
	if err != nil {
		return err
	}
	sched.Store(scheduler)
	scheduler.Start()
	defer func() {
		if !abandoned {
			scheduler.Close()
		}
	}()

	srv, err := api.New(api.Config{Backend: node, Logger: log, Registry: reg, Tokens: tokens, MaxObjectBytes: c.MaxObjectBytes})
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(httpLn) }()
	log.Info("serving HTTP", "addr", httpLn.Addr().String(), "data_dir", c.DataDir, "node", c.NodeID)
	if started != nil {
		started <- httpLn.Addr().String()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := hs.Shutdown(stopCtx)
		// Deliveries in flight get a moment to record their outcomes, so
		// that the shards' next leaders do not repeat them.
		settle, cancelSettle := context.WithTimeout(stopCtx, alarmSettle)
		defer cancelSettle()
		done <- errors.Join(err, scheduler.Stop(settle), node.Shutdown(stopCtx))
	}()
	select {
	case err := <-done:
		return err
	case <-stopCtx.Done():
		abandoned = true
		return fmt.Errorf("clean stop took longer than %v; exiting anyway (nothing acknowledged is lost: the Raft logs are durable)", c.ShutdownTimeout)
	}
}

// advertiseIfSet returns the advertised form of listen when -advertise-addr
// is set, and "" otherwise (the node then advertises the address it bound).
func advertiseIfSet(c config, listen string) string {
	if c.AdvertiseAddr == "" {
		return ""
	}
	return c.advertise(listen)
}

func newLogger(c config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// servePprof serves Go's profiler on a loopback address, for performance
// work.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("serving pprof", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("pprof server stopped", "error", err)
	}
}
