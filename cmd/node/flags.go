package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/cluster"
)

var errHelp = errors.New("help requested")

// config is everything a node is started with.
type config struct {
	NodeID           string
	DataDir          string
	HTTPAddr         string
	RaftAddr         string
	GossipAddr       string
	AdvertiseAddr    string
	Join             []string
	BootstrapExpect  int
	Shards           int
	ShardsGiven      bool // -shards or CAIRN_SHARDS was set, not left at its default
	Replicas         int
	TokensFile       string
	GossipKey        string
	AllowNoAuth      bool
	MaxObjectBytes   int64
	PprofAddr        string
	SQLOpenDBs       int
	AlarmConcurrency int
	DeadNodeGrace    time.Duration
	LogLevel         slog.Level
	LogFormat        string
	ShutdownTimeout  time.Duration
}

// parseFlags reads args, then the CAIRN_* variables (through getenv) for
// every flag not given on the command line.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var c config
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.NodeID, "node-id", host, "this node's id, stable across restarts (default: the hostname)")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory for all of this node's state")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on")
	fs.StringVar(&c.RaftAddr, "raft-addr", "127.0.0.1:7000", "address the Raft port listens on (all shards share it)")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "127.0.0.1:7946", "address the gossip (membership) port listens on")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "host other nodes use to reach this one (default: the host of each listen address)")
	join := fs.String("join", "", "comma-separated gossip addresses of nodes to join; retried until one answers")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 1, "nodes to wait for before the cluster's first bootstrap")
	fs.IntVar(&c.Shards, "shards", cluster.DefaultShards, "number of shards of a new cluster, fixed when it first bootstraps; when not given, a node keeps its data directory's count or takes the running cluster's")
	fs.IntVar(&c.Replicas, "replicas", 3, "replicas per shard (fewer while the cluster is smaller)")
	fs.StringVar(&c.TokensFile, "tokens-file", "", "JSON file of bearer tokens; without it the API needs no token")
	fs.StringVar(&c.GossipKey, "gossip-key", "", "base64 AES key (16, 24 or 32 bytes) encrypting gossip")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's /debug/pprof on this (loopback) address; empty: off")
	fs.DurationVar(&c.DeadNodeGrace, "dead-node-grace", 5*time.Minute, "how long a dead node keeps its replicas before they are replaced elsewhere")
	fs.IntVar(&c.AlarmConcurrency, "alarm-concurrency", 0, "alarm webhook calls in flight on this node, shared by every shard it leads (0: 32 per CPU, at least 128)")
	fs.IntVar(&c.SQLOpenDBs, "sql-open-dbs", 1024, "how many objects' SQL databases a node keeps open (an LRU cache; about 0.3–0.5 MiB each)")
	fs.Int64Var(&c.MaxObjectBytes, "max-object-bytes", 10<<30, "size limit of each object's SQL database, in bytes")
	fs.BoolVar(&c.AllowNoAuth, "allow-unauthenticated", false, "serve HTTP on a non-loopback address without a tokens file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a clean stop may take before the process exits anyway")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "Usage: cairn [flags]   (every flag also as CAIRN_<NAME>)")
			fs.PrintDefaults()
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "CAIRN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && !set[f.Name] && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	c.ShardsGiven = set["shards"] || getenv("CAIRN_SHARDS") != ""
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, fmt.Errorf("-log-level: %v", err)
	}
	for _, j := range strings.Split(*join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			c.Join = append(c.Join, j)
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("-node-id must not be empty (no hostname to default to)"))
	}
	for name, addr := range map[string]string{"-http-addr": c.HTTPAddr, "-raft-addr": c.RaftAddr, "-gossip-addr": c.GossipAddr} {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, addr, err))
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: port must be a number", name, addr))
		}
	}
	if c.AdvertiseAddr != "" && strings.Contains(c.AdvertiseAddr, ":") && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("-advertise-addr %q is a host (name or IP), without a port", c.AdvertiseAddr))
	}
	if c.BootstrapExpect < 1 {
		errs = append(errs, fmt.Errorf("-bootstrap-expect must be at least 1, got %d", c.BootstrapExpect))
	}
	if c.Shards < 1 || c.Shards > cluster.MaxShards {
		errs = append(errs, fmt.Errorf("-shards must be between 1 and %d, got %d", cluster.MaxShards, c.Shards))
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		errs = append(errs, fmt.Errorf("-replicas must be between 1 and 7, got %d", c.Replicas))
	}
	if _, err := c.gossipKey(); err != nil {
		errs = append(errs, err)
	}
	if c.DeadNodeGrace < time.Second {
		errs = append(errs, fmt.Errorf("-dead-node-grace must be at least 1s, got %v", c.DeadNodeGrace))
	}
	if c.AlarmConcurrency < 0 {
		errs = append(errs, fmt.Errorf("-alarm-concurrency must not be negative, got %d", c.AlarmConcurrency))
	}
	if c.SQLOpenDBs < 1 {
		errs = append(errs, fmt.Errorf("-sql-open-dbs must be at least 1, got %d", c.SQLOpenDBs))
	}
	if c.PprofAddr != "" && !isLoopback(c.PprofAddr) {
		errs = append(errs, fmt.Errorf("-pprof-addr %s must be a loopback address", c.PprofAddr))
	}
	if c.MaxObjectBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("-max-object-bytes must be at least 1 MiB, got %d", c.MaxObjectBytes))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format must be text or json, got %q", c.LogFormat))
	}
	if c.TokensFile == "" && !c.AllowNoAuth && !isLoopback(c.HTTPAddr) {
		errs = append(errs, fmt.Errorf("-http-addr %s is not a loopback address and no -tokens-file is set: anyone who can reach it could read and write everything; set -tokens-file, or -allow-unauthenticated if the network is trusted", c.HTTPAddr))
	}
	return errors.Join(errs...)
}

// gossipKey decodes -gossip-key.
func (c *config) gossipKey() ([]byte, error) {
	if c.GossipKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.GossipKey)
	if err != nil {
		return nil, fmt.Errorf("-gossip-key is not base64: %v", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("-gossip-key must decode to 16, 24 or 32 bytes, got %d", n)
	}
	return k, nil
}

// isLoopback reports whether addr's host is a loopback address or name.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// advertise returns the address peers use for a listen address: the
// advertise host, if one is set, with the listen address's port.
func (c *config) advertise(listen string) string {
	if c.AdvertiseAddr == "" {
		return listen
	}
	_, port, _ := net.SplitHostPort(listen)
	return net.JoinHostPort(c.AdvertiseAddr, port)
}

// shardsOrZero is the shard count to configure: 0, which lets the node keep
// its data directory's count or take the running cluster's, unless one was
// given.
func (c *config) shardsOrZero() int {
	if !c.ShardsGiven {
		return 0
	}
	return c.Shards
}
