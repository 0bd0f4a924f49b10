package objectstore

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// AppliedIndex returns the index of the last Raft entry shard applied, as
// recorded in r; 0 if it never applied one.
func AppliedIndex(r pebble.Reader, shard uint32) (uint64, error) {
	rec, closer, err := r.Get(appliedKey(shard))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(rec) != 8 {
		return 0, ErrCorrupt
	}
	return binary.BigEndian.Uint64(rec), nil
}

// SetAppliedIndex records in w that shard has applied every entry up to index.
// The state machine writes it in the same batch as the entry's effects.
func SetAppliedIndex(w *pebble.Batch, shard uint32, index uint64) error {
	return w.Set(appliedKey(shard), binary.BigEndian.AppendUint64(nil, index), nil)
}

// RestoreMarker reports whether a restore of shard was started and not
// finished: if so, the shard's data is half replaced and must be restored
// again before it is used.
func RestoreMarker(r pebble.Reader, shard uint32) (bool, error) {
	_, closer, err := r.Get(restoreMarkerKey(shard))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	closer.Close()
	return true, nil
}

// SetRestoreMarker records (set) or clears the restore marker of shard in w.
func SetRestoreMarker(w *pebble.Batch, shard uint32, set bool) error {
	if set {
		return w.Set(restoreMarkerKey(shard), []byte{1}, nil)
	}
	return w.Delete(restoreMarkerKey(shard), nil)
}
