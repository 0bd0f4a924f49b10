package fsm_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// TestCrashLeavesAPrefix applies entries (committed without fsync), takes
// snapshots at some points (each syncs the WAL), then simulates a crash with
// Pebble's crashable in-memory filesystem: only synced data survives, plus,
// in the torn cases, a random part of what was written but not synced. After
// the crash the shard must hold exactly the state of some prefix of the
// entries — never half an entry — named by its applied index, at least the
// prefix the last snapshot captured; and replaying every entry from index 1
// must converge on the state of a run without a crash. The batched cases
// apply the entries as Raft's BatchApplyCh delivers them, several to an
// ApplyBatch call sharing Pebble batches: a crash must still cut between
// entries, never inside one.
func TestCrashLeavesAPrefix(t *testing.T) {
	const n = 60
	entries := workload(t, n)
	states, resps := referenceRun(t, testShard, entries)

	type crashCase struct {
		name    string
		snapAt  []int // snapshot after this many entries
		percent int   // UnsyncedDataPercent
		seed    uint64
		batch   int // entries per ApplyBatch call; 0: Apply one by one
	}
	cases := []crashCase{
		{name: "no snapshot", percent: 0},
		{name: "snapshot before any entry", snapAt: []int{0}},
		{name: "snapshot after 1", snapAt: []int{1}},
		{name: "snapshot mid-way", snapAt: []int{25}},
		{name: "two snapshots", snapAt: []int{10, 41}},
		{name: "snapshot after all", snapAt: []int{n}},
		// Everything written reaches the clone, though Pebble may not yet
		// have written all of its WAL buffer to the file.
		{name: "unsynced writes kept", snapAt: []int{20}, percent: 100},
	}
	for seed := range uint64(12) {
		cases = append(cases,
			crashCase{name: fmt.Sprintf("torn 50%% seed %d", seed), snapAt: []int{20}, percent: 50, seed: seed},
			crashCase{name: fmt.Sprintf("torn 90%% seed %d, no snapshot", seed), percent: 90, seed: seed},
			crashCase{name: fmt.Sprintf("batches of 7, torn 50%% seed %d", seed), snapAt: []int{21}, percent: 50, seed: seed, batch: 7},
			crashCase{name: fmt.Sprintf("batches of 16, torn 90%% seed %d, no snapshot", seed), percent: 90, seed: seed, batch: 16},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			db := openDB(t, fs)
			f := openFSM(t, db, testShard)
			lastSnap := 0
			var pending []*raft.Log // entries waiting for their ApplyBatch
			flush := func() {
				if len(pending) > 0 {
					f.ApplyBatch(pending)
					pending = nil
				}
			}
			for j := 0; j <= n; j++ {
				if slices.Contains(tc.snapAt, j) {
					flush()
					h := header(t, snapshotBytes(t, f))
					if h.Applied != uint64(j) || h.Shard != testShard {
						t.Fatalf("snapshot after %d entries has header %+v", j, h)
					}
					lastSnap = j
				}
				switch {
				case j < n && tc.batch > 0:
					if pending = append(pending, logEntry(uint64(j+1), entries[j])); len(pending) == tc.batch {
						flush()
					}
				case j < n:
					apply(t, f, uint64(j+1), entries[j])
				}
			}
			flush()
			cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: tc.percent}
			if tc.percent > 0 {
				cfg.RNG = rand.New(rand.NewPCG(tc.seed, 0xc0ffee))
			}
			crashed := fs.CrashClone(cfg)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			db = openDB(t, crashed)
			defer db.Close()
			g := openFSM(t, db, testShard)
			got := int(g.Applied())
			t.Logf("after the crash: applied %d of %d entries (last snapshot at %d)", got, n, lastSnap)
			if got < lastSnap || got > n {
				t.Fatalf("after the crash Applied = %d, want between the last snapshot's %d and %d", got, lastSnap, n)
			}
			if on := appliedIndex(t, db, testShard); on != uint64(got) {
				t.Fatalf("Applied() = %d but the database says %d", got, on)
			}
			if !g.Ready() {
				t.Fatal("the FSM is not Ready after a crash outside any restore")
			}
			expectSameKV(t, fmt.Sprintf("state after the crash vs. the first %d entries", got), shardDump(t, db, testShard), states[got])
			if tc.percent == 0 && got != lastSnap {
				// Only synced data survives: with no fsync after the last
				// snapshot, the unsynced tail must be gone, or this test
				// exercises no loss at all.
				t.Fatalf("with only synced data kept, Applied = %d, want the last snapshot's %d", got, lastSnap)
			}

			// Raft replays its log from the start; the FSM skips what it has
			// and applies the rest with the same answers as before.
			for i := 1; i <= n; i++ {
				r := apply(t, g, uint64(i), entries[i-1])
				switch {
				case i <= got && r != nil:
					t.Fatalf("replaying entry %d, already applied, returned %+v", i, r)
				case i > got && !reflect.DeepEqual(r, resps[i]):
					t.Fatalf("replaying entry %d returned %+v, want %+v as without a crash", i, r, resps[i])
				}
			}
			expectSameKV(t, "state after replay vs. a run without a crash", shardDump(t, db, testShard), states[n])
			if g.Applied() != n {
				t.Fatalf("Applied after replay = %d, want %d", g.Applied(), n)
			}
		})
	}
}
