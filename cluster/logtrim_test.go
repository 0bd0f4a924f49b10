package cluster

import (
	"context"
	"strings"
	"testing"
)

func TestLogTrimmedByBytes(t *testing.T) {
	dir := t.TempDir()
	rc := fastRaft()
	rc.MaxLogBytes = 256 << 10
	n := startNodeWith(t, dir, 1, rc)
	ctx := context.Background()
	put := func(key, value string) {
		t.Helper()
		if _, err := n.Propose(ctx, 0, putCmd(t, "o", key, value)); err != nil {
			t.Fatal(err)
		}
	}
	s := n.Shard(0)
	first := func() uint64 {
		t.Helper()
		i, err := s.logs.FirstIndex()
		if err != nil {
			t.Fatal(err)
		}
		return i
	}

	// Small writes: under the limit, the log keeps everything.
	for range 50 {
		put("small", strings.Repeat("s", 100))
	}
	before := first()
	if err := n.trimLog(s); err != nil {
		t.Fatal(err)
	}
	if got := first(); got != before {
		t.Fatalf("a log under its byte limit was trimmed: first index %d → %d", before, got)
	}

	// Large values overwriting one key: the log outgrows both the limit and
	// the data, and is trimmed to about a quarter of the limit, but never
	// below minTrailingLogs entries.
	// (The node's own trim loop may get there first; either way the log
	// ends trimmed.)
	big := strings.Repeat("b", 32<<10)
	appended := n.logAppended.Load()
	for i := range 40 {
		put("big", big[:len(big)-i])
	}
	bytes, entries, err := s.logs.size()
	if err != nil || int64(n.logAppended.Load()-appended) <= rc.MaxLogBytes {
		t.Fatalf("40 writes of 32 KiB added %d bytes to the log (%v)", n.logAppended.Load()-appended, err)
	}
	if err := n.trimLog(s); err != nil {
		t.Fatal(err)
	}
	after, kept, err := s.logs.size()
	// A quarter of the limit is less than minTrailingLogs of these entries.
	added := int64(n.logAppended.Load() - appended)
	if err != nil || kept > minTrailingLogs || after > added/2 || first() <= before {
		t.Fatalf("after trimming: %d bytes in %d entries (from %d bytes in %d), first index %d: %v", after, kept, bytes, entries, first(), err)
	}
	if rc := s.raft.ReloadableConfig(); rc.TrailingLogs != DefaultRaftConfig().TrailingLogs {
		t.Fatalf("TrailingLogs left at %d", rc.TrailingLogs)
	}
	t.Logf("log trimmed from %d bytes in %d entries to %d bytes in %d", bytes, entries, after, kept)

	// Nothing is lost, now or after a restart from the snapshot and the
	// trimmed log.
	want := big[:len(big)-39]
	if got, _ := readKey(t, n, 0, "o", "big"); got != want {
		t.Fatalf("big: %d bytes, want %d", len(got), len(want))
	}
	put("after", "x")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNodeWith(t, dir, 1, rc)
	defer n.Close()
	for key, v := range map[string]string{"big": want, "small": strings.Repeat("s", 100), "after": "x"} {
		if got, ok := readKey(t, n, 0, "o", key); !ok || got != v {
			t.Fatalf("after restart %s: %d bytes (found %v), want %d", key, len(got), ok, len(v))
		}
	}
}
