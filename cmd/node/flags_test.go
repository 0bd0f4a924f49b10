package main

import (
	"log/slog"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "data" || c.HTTPAddr != "127.0.0.1:8080" || c.RaftAddr != "127.0.0.1:7000" ||
		c.GossipAddr != "127.0.0.1:7946" || c.Shards != 16 || c.Replicas != 3 || c.BootstrapExpect != 1 ||
		c.LogLevel != slog.LevelInfo || c.NodeID == "" || c.AlarmConcurrency != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	// Left at its default, the count is the data directory's or the
	// running cluster's: the node is configured with 0.
	if c.ShardsGiven || c.shardsOrZero() != 0 {
		t.Fatalf("-shards not given: ShardsGiven %v, shardsOrZero %d; want false, 0", c.ShardsGiven, c.shardsOrZero())
	}
	for _, given := range []struct {
		args []string
		env  map[string]string
	}{{[]string{"-shards", "16"}, nil}, {nil, map[string]string{"CAIRN_SHARDS": "16"}}} {
		c, err := parseFlags(given.args, env(given.env))
		if err != nil {
			t.Fatal(err)
		}
		if !c.ShardsGiven || c.shardsOrZero() != 16 {
			t.Fatalf("%v %v: ShardsGiven %v, shardsOrZero %d; want true, 16", given.args, given.env, c.ShardsGiven, c.shardsOrZero())
		}
	}
}

func TestParseFlagsEnvAndPrecedence(t *testing.T) {
	c, err := parseFlags([]string{"-shards", "8"}, env(map[string]string{
		"CAIRN_SHARDS":            "32", // the flag wins
		"CAIRN_NODE_ID":           "n7",
		"CAIRN_JOIN":              "a:1, b:2,",
		"CAIRN_BOOTSTRAP_EXPECT":  "3",
		"CAIRN_LOG_LEVEL":         "debug",
		"CAIRN_ALARM_CONCURRENCY": "96",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Shards != 8 || c.NodeID != "n7" || c.BootstrapExpect != 3 || c.LogLevel != slog.LevelDebug || c.AlarmConcurrency != 96 {
		t.Fatalf("got %+v", c)
	}
	if strings.Join(c.Join, ";") != "a:1;b:2" {
		t.Fatalf("join = %q", c.Join)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-bogus"}, nil, "not defined"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{nil, map[string]string{"CAIRN_SHARDS": "abc"}, "CAIRN_SHARDS"},
		{[]string{"-shards", "0"}, nil, "-shards"},
		{[]string{"-replicas", "0"}, nil, "-replicas"},
		{[]string{"-bootstrap-expect", "0"}, nil, "-bootstrap-expect"},
		{[]string{"-http-addr", "nonsense"}, nil, "-http-addr"},
		{[]string{"-raft-addr", "127.0.0.1:http"}, nil, "-raft-addr"},
		{[]string{"-advertise-addr", "10.0.0.1:7000"}, nil, "without a port"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-http-addr", "0.0.0.0:8080"}, nil, "-tokens-file"},
		{[]string{"-node-id", ""}, nil, "-node-id"},
		{[]string{"-alarm-concurrency", "-1"}, nil, "-alarm-concurrency"},
	} {
		_, err := parseFlags(tc.args, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q, %v): err = %v, want it to mention %q", tc.args, tc.env, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-http-addr", "0.0.0.0:8080", "-allow-unauthenticated"}, env(nil)); err != nil {
		t.Errorf("-allow-unauthenticated on a public address: %v", err)
	}
}

func TestAdvertise(t *testing.T) {
	c := config{AdvertiseAddr: "10.1.2.3"}
	if got := c.advertise("0.0.0.0:7000"); got != "10.1.2.3:7000" {
		t.Fatalf("advertise = %q", got)
	}
	c.AdvertiseAddr = ""
	if got := c.advertise("127.0.0.1:7000"); got != "127.0.0.1:7000" {
		t.Fatalf("advertise without a host = %q", got)
	}
}
