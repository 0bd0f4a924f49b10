package objectstore

import (
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestAppliedIndex(t *testing.T) {
	db := newDB(t)
	for _, shard := range []uint32{0, 1, math.MaxUint32} {
		if got, err := AppliedIndex(db, shard); err != nil || got != 0 {
			t.Fatalf("AppliedIndex(%d) before any write = %d, %v; want 0", shard, got, err)
		}
	}
	for _, index := range []uint64{1, 255, 256, 1 << 32, math.MaxUint64} {
		withBatch(t, db, func(b *pebble.Batch) error {
			if err := SetAppliedIndex(b, 1, index); err != nil {
				return err
			}
			// The batch itself sees the new index before it commits.
			if got, err := AppliedIndex(b, 1); err != nil || got != index {
				t.Errorf("AppliedIndex in the batch = %d, %v; want %d", got, err, index)
			}
			return nil
		})
		if got, err := AppliedIndex(db, 1); err != nil || got != index {
			t.Errorf("AppliedIndex(1) = %d, %v; want %d", got, err, index)
		}
	}
	// Shards are independent.
	withBatch(t, db, func(b *pebble.Batch) error { return SetAppliedIndex(b, 2, 7) })
	for shard, want := range map[uint32]uint64{0: 0, 1: math.MaxUint64, 2: 7, 3: 0} {
		if got, err := AppliedIndex(db, shard); err != nil || got != want {
			t.Errorf("AppliedIndex(%d) = %d, %v; want %d", shard, got, err, want)
		}
	}
	// The applied index lies in its shard's span, so snapshots carry it.
	for _, shard := range []uint32{0, 2, math.MaxUint32} {
		lo, hi := ShardSpan(shard)
		if k := appliedKey(shard); !inSpan(k, lo, hi) {
			t.Errorf("appliedKey(%d) = %x outside ShardSpan [%x, %x)", shard, k, lo, hi)
		}
	}
	// A record of the wrong length is corrupt.
	for _, rec := range [][]byte{{}, {1, 2, 3}, make([]byte, 9)} {
		putRaw(t, db, appliedKey(5), rec)
		_, err := AppliedIndex(db, 5)
		wantErr(t, err, ErrCorrupt)
	}
}

func TestRestoreMarker(t *testing.T) {
	db := newDB(t)
	check := func(shard uint32, want bool) {
		t.Helper()
		if got, err := RestoreMarker(db, shard); err != nil || got != want {
			t.Errorf("RestoreMarker(%d) = %v, %v; want %v", shard, got, err, want)
		}
	}
	check(1, false)
	withBatch(t, db, func(b *pebble.Batch) error { return SetRestoreMarker(b, 1, true) })
	check(1, true)
	check(0, false)
	check(2, false)
	// Setting twice is the same as once.
	withBatch(t, db, func(b *pebble.Batch) error { return SetRestoreMarker(b, 1, true) })
	check(1, true)
	withBatch(t, db, func(b *pebble.Batch) error { return SetRestoreMarker(b, 1, false) })
	check(1, false)
	// Clearing a marker that is not set is harmless.
	withBatch(t, db, func(b *pebble.Batch) error { return SetRestoreMarker(b, 9, false) })
	check(9, false)
	// Set and cleared in one batch: not set.
	withBatch(t, db, func(b *pebble.Batch) error {
		if err := SetRestoreMarker(b, 3, true); err != nil {
			return err
		}
		if got, err := RestoreMarker(b, 3); err != nil || !got {
			t.Errorf("RestoreMarker in the batch = %v, %v; want true", got, err)
		}
		return SetRestoreMarker(b, 3, false)
	})
	check(3, false)

	// The marker is node-local: replacing a shard's span leaves it alone.
	withBatch(t, db, func(b *pebble.Batch) error { return SetRestoreMarker(b, 4, true) })
	withBatch(t, db, func(b *pebble.Batch) error {
		for _, shard := range []uint32{0, 4, math.MaxUint32} {
			lo, hi := ShardSpan(shard)
			if err := b.DeleteRange(lo, hi, nil); err != nil {
				return err
			}
		}
		return nil
	})
	check(4, true)
}
