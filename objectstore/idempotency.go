package objectstore

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cockroachdb/pebble/v2"
)

// Idempotency records. A write that carries an Idempotency-Key leaves a
// record of its answer, so a retry within the record's lifetime gets the
// same answer and applies nothing:
//
//	's' shard 'i' esc(ns) esc(obj) key                 → record
//	's' shard 'e' expiry:u64be esc(ns) esc(obj) key    → (empty): expiry index
//
// Both live in the shard's span (snapshots carry them) but outside the
// object's span, so deleteAll does not forget them.

// IdempotencyRecord is what a keyed write left behind.
type IdempotencyRecord struct {
	ExpiresMillis int64
	// RequestHash identifies the request; a retry with the same key but a
	// different request is refused rather than answered wrongly.
	RequestHash []byte
	// Response is the encoded answer of the first request.
	Response []byte
}

const idemRecordVersion = 1

// ErrIdempotencyMismatch means a key was reused for a different request.
var ErrIdempotencyMismatch = errors.New("objectstore: idempotency key reused for a different request")

func (o Object) idemSuffix(key string) []byte {
	b := appendEscaped(nil, o.Namespace)
	b = appendEscaped(b, o.Name)
	return append(b, key...)
}

func idemKey(shard uint32, suffix []byte) []byte {
	b := append(shardPrefix(shard), tagIdem)
	return append(b, suffix...)
}

func idemExpiryKey(shard uint32, expires int64, suffix []byte) []byte {
	b := append(shardPrefix(shard), tagIdemExpiry)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	return append(b, suffix...)
}

// GetIdempotency reads obj's record for key. found is false if there is
// none (expired records may still be found until they are collected: the
// caller compares ExpiresMillis with the command's time).
func GetIdempotency(r pebble.Reader, obj Object, key string) (rec IdempotencyRecord, found bool, err error) {
	val, closer, err := r.Get(idemKey(obj.Shard, obj.idemSuffix(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	defer closer.Close()
	d := wire.NewDecoder(val)
	if d.Byte() != idemRecordVersion {
		return rec, false, ErrCorrupt
	}
	rec.ExpiresMillis = d.Varint()
	rec.RequestHash = bytes.Clone(d.Bytes())
	rec.Response = bytes.Clone(d.Bytes())
	if d.Err() != nil || d.Len() != 0 {
		return rec, false, ErrCorrupt
	}
	return rec, true, nil
}

// PutIdempotency writes obj's record for key, replacing any older one (and
// its expiry index entry).
func PutIdempotency(r pebble.Reader, w *pebble.Batch, obj Object, key string, rec IdempotencyRecord) error {
	suffix := obj.idemSuffix(key)
	if old, found, err := GetIdempotency(r, obj, key); err != nil {
		return err
	} else if found {
		if err := w.Delete(idemExpiryKey(obj.Shard, old.ExpiresMillis, suffix), nil); err != nil {
			return err
		}
	}
	b := []byte{idemRecordVersion}
	b = wire.AppendVarint(b, rec.ExpiresMillis)
	b = wire.AppendBytes(b, rec.RequestHash)
	b = wire.AppendBytes(b, rec.Response)
	if err := w.Set(idemKey(obj.Shard, suffix), b, nil); err != nil {
		return err
	}
	return w.Set(idemExpiryKey(obj.Shard, rec.ExpiresMillis, suffix), nil, nil)
}

// ExpireIdempotency deletes up to limit records of shard that expired before
// beforeMillis and returns how many it deleted.
func ExpireIdempotency(r pebble.Reader, w *pebble.Batch, shard uint32, beforeMillis int64, limit int) (int, error) {
	lo := append(shardPrefix(shard), tagIdemExpiry)
	hi := idemExpiryKey(shard, beforeMillis, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid && n < limit; valid = it.Next() {
		k := it.Key()
		suffix := k[len(lo)+8:]
		if err := w.Delete(bytes.Clone(k), nil); err != nil {
			return n, err
		}
		if err := w.Delete(idemKey(shard, suffix), nil); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}

// HasExpiredIdempotency reports whether shard holds a record that expired
// before beforeMillis: a cheap check before proposing a collection.
func HasExpiredIdempotency(r pebble.Reader, shard uint32, beforeMillis int64) (bool, error) {
	lo := append(shardPrefix(shard), tagIdemExpiry)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: idemExpiryKey(shard, beforeMillis, nil)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}
