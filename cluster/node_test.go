package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/testlog"
	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// testLogger sends a node's warnings and errors to t.Log.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t, slog.LevelWarn) }

// fastRaft is a Raft tuning for tests on loopback.
func fastRaft() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
	}
}

func startNode(t *testing.T, dir string, shards int) *Node {
	t.Helper()
	return startNodeWith(t, dir, shards, fastRaft())
}

func startNodeWith(t *testing.T, dir string, shards int, rc RaftConfig) *Node {
	t.Helper()
	n, err := New(Config{
		NodeID:   "n1",
		DataDir:  dir,
		RaftAddr: "127.0.0.1:0",
		Shards:   shards,
		Raft:     rc,
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		n.Close()
		t.Fatalf("node not ready: %v", err)
	}
	return n
}

func putCmd(t *testing.T, obj, key, value string) []byte {
	t.Helper()
	c := &fsm.Command{Type: fsm.TypeTx, Namespace: "ns", Object: obj, Tx: &objectstore.Tx{
		Ops: []objectstore.Op{{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: key, Value: objectstore.Value{Data: []byte(value)}}}}},
	}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readKey(t *testing.T, n *Node, shard uint32, obj, key string) (string, bool) {
	t.Helper()
	var got string
	var found bool
	err := n.Read(context.Background(), shard, false, func(r pebble.Reader) error {
		v, ok, err := objectstore.GetValue(r, objectstore.Object{Shard: shard, Namespace: "ns", Name: obj}, key)
		got, found = string(v.Data), ok
		return err
	})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got, found
}

func TestSingleNodeWriteReadRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, 4)
	ctx := context.Background()
	for shard := uint32(0); shard < 4; shard++ {
		resp, err := n.Propose(ctx, shard, putCmd(t, "o", "k", "v"+string(rune('0'+shard))))
		if err != nil {
			t.Fatalf("propose on shard %d: %v", shard, err)
		}
		if resp.Err != nil || resp.Tx == nil || resp.Tx.Version == 0 {
			t.Fatalf("shard %d: response %+v", shard, resp)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	n = startNode(t, dir, 4)
	defer n.Close()
	for shard := uint32(0); shard < 4; shard++ {
		got, found := readKey(t, n, shard, "o", "k")
		if want := "v" + string(rune('0'+shard)); !found || got != want {
			t.Fatalf("shard %d after restart: got %q (found %v), want %q", shard, got, found, want)
		}
	}
}

func TestStartRefusesOtherNodesDataDir(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, 2)
	n.Close()
	other, err := New(Config{NodeID: "n2", DataDir: dir, RaftAddr: "127.0.0.1:0", Shards: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); !errors.Is(err, ErrDataDir) {
		t.Fatalf("start with another node's data dir: err = %v, want ErrDataDir", err)
	}
	changed, err := New(Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", Shards: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := changed.Start(); !errors.Is(err, ErrDataDir) {
		t.Fatalf("start with another shard count: err = %v, want ErrDataDir", err)
	}
}

func TestLogAppendedCountsEntryBytes(t *testing.T) {
	n := startNode(t, t.TempDir(), 1)
	defer n.Close()
	before := n.logAppended.Load()
	big := strings.Repeat("x", 100<<10)
	if _, err := n.Propose(context.Background(), 0, putCmd(t, "o", "k", big)); err != nil {
		t.Fatal(err)
	}
	if got := n.logAppended.Load() - before; got < uint64(len(big)) || got > uint64(len(big))+4096 {
		t.Fatalf("a %d-byte put added %d bytes to cairn_raft_log_appended_bytes_total", len(big), got)
	}
}
