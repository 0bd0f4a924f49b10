package objectstore

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cockroachdb/pebble/v2"
)

// Alarms. An object has at most one alarm, a record in its own span, and two
// indexes in its shard's span, written in the same batch as the record:
//
//	obj prefix 'a'                                         → Alarm record
//	's' shard 't' nextAttempt:u64be esc(ns) esc(obj)        → Alarm record (a copy; empty before v2): by when to deliver
//	's' shard 'T' esc(ns) scheduledTime:u64be esc(obj)      → (empty): a namespace's alarms by time
//	's' shard 'm' "alarms"                                  → u64: how many alarms the shard holds
//
// The first index is what a shard's leader keeps a timer on; it holds a copy
// of the record so that the leader reads a due alarm with the index, not with
// a point read per alarm (entries written by earlier releases are empty: the
// record is read then). The second serves GET /v1/ns/{ns}/alarms; the count
// is the pending-alarms metric.

// Alarm is an object's alarm.
type Alarm struct {
	ScheduledTime int64 // milliseconds since the Unix epoch
	RetryCount    int   // failed delivery attempts so far
	NextAttempt   int64 // when the next attempt is due (ms); ScheduledTime at first
}

const (
	alarmRecordVersion = 1
	tagAlarmByNS       = 'T'
)

func (a Alarm) encode() []byte {
	b := []byte{alarmRecordVersion}
	b = wire.AppendVarint(b, a.ScheduledTime)
	b = wire.AppendUvarint(b, uint64(a.RetryCount))
	return wire.AppendVarint(b, a.NextAttempt)
}

func decodeAlarm(b []byte) (Alarm, error) {
	d := wire.NewDecoder(b)
	if d.Byte() != alarmRecordVersion {
		return Alarm{}, ErrCorrupt
	}
	a := Alarm{ScheduledTime: d.Varint(), RetryCount: int(d.Uvarint()), NextAttempt: d.Varint()}
	if d.Err() != nil || d.Len() != 0 {
		return Alarm{}, ErrCorrupt
	}
	return a, nil
}

// objSuffix is esc(ns) esc(obj): how indexes name an object.
func (o Object) objSuffix() []byte {
	b := appendEscaped(nil, o.Namespace)
	return appendEscaped(b, o.Name)
}

func alarmDueKey(shard uint32, next int64, suffix []byte) []byte {
	b := append(shardPrefix(shard), tagAlarmIdx)
	b = binary.BigEndian.AppendUint64(b, uint64(max(next, 0)))
	return append(b, suffix...)
}

func alarmNSKey(shard uint32, ns string, scheduled int64, name string) []byte {
	b := append(shardPrefix(shard), tagAlarmByNS)
	b = appendEscaped(b, ns)
	b = binary.BigEndian.AppendUint64(b, uint64(max(scheduled, 0)))
	return appendEscaped(b, name)
}

func alarmCountKey(shard uint32) []byte {
	return append(shardPrefix(shard), tagMeta, 'a', 'l', 'a', 'r', 'm', 's')
}

// GetAlarm reads obj's alarm; found is false when it has none.
func GetAlarm(r pebble.Reader, obj Object) (a Alarm, found bool, err error) {
	rec, closer, err := r.Get(obj.alarmKey())
	if errors.Is(err, pebble.ErrNotFound) {
		return Alarm{}, false, nil
	}
	if err != nil {
		return Alarm{}, false, err
	}
	defer closer.Close()
	a, err = decodeAlarm(rec)
	return a, err == nil, err
}

// SetAlarm gives obj the alarm a, replacing any it had (and its index
// entries).
func SetAlarm(r pebble.Reader, w *pebble.Batch, obj Object, a Alarm) error {
	old, found, err := GetAlarm(r, obj)
	if err != nil {
		return err
	}
	if found {
		if err := unindexAlarm(w, obj, old); err != nil {
			return err
		}
	} else if err := addAlarmCount(r, w, obj.Shard, 1); err != nil {
		return err
	}
	return writeAlarm(w, obj, a)
}

// writeAlarm writes obj's alarm record and index entries.
func writeAlarm(w *pebble.Batch, obj Object, a Alarm) error {
	rec := a.encode()
	if err := w.Set(obj.alarmKey(), rec, nil); err != nil {
		return err
	}
	if err := w.Set(alarmDueKey(obj.Shard, a.NextAttempt, obj.objSuffix()), rec, nil); err != nil {
		return err
	}
	return w.Set(alarmNSKey(obj.Shard, obj.Namespace, a.ScheduledTime, obj.Name), nil, nil)
}

// DeleteAlarm removes obj's alarm, if it has one, and reports whether it had.
func DeleteAlarm(r pebble.Reader, w *pebble.Batch, obj Object) (bool, error) {
	old, found, err := GetAlarm(r, obj)
	if err != nil || !found {
		return false, err
	}
	if err := removeAlarm(w, obj, old); err != nil {
		return false, err
	}
	if err := addAlarmCount(r, w, obj.Shard, -1); err != nil {
		return false, err
	}
	return true, nil
}

// removeAlarm deletes obj's alarm a (as read) and its index entries; the
// shard's count is the caller's.
func removeAlarm(w *pebble.Batch, obj Object, a Alarm) error {
	if err := unindexAlarm(w, obj, a); err != nil {
		return err
	}
	return w.Delete(obj.alarmKey(), nil)
}

func unindexAlarm(w *pebble.Batch, obj Object, a Alarm) error {
	if err := w.Delete(alarmDueKey(obj.Shard, a.NextAttempt, obj.objSuffix()), nil); err != nil {
		return err
	}
	return w.Delete(alarmNSKey(obj.Shard, obj.Namespace, a.ScheduledTime, obj.Name), nil)
}

func addAlarmCount(r pebble.Reader, w *pebble.Batch, shard uint32, delta int64) error {
	n, err := AlarmCount(r, shard)
	if err != nil {
		return err
	}
	return w.Set(alarmCountKey(shard), binary.BigEndian.AppendUint64(nil, uint64(max(int64(n)+delta, 0))), nil)
}

// AlarmCount returns how many alarms shard holds.
func AlarmCount(r pebble.Reader, shard uint32) (uint64, error) {
	rec, closer, err := r.Get(alarmCountKey(shard))
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

// AlarmUpdate is the outcome of one delivery attempt, as the shard's leader
// proposes it. It applies only if the object's alarm is still the one that
// was delivered (same ScheduledTime): an alarm set again meanwhile is kept.
type AlarmUpdate struct {
	Namespace     string
	Object        string
	ScheduledTime int64
	// Clear removes the alarm (delivered, or dropped after its last retry).
	// Otherwise RetryCount and NextAttempt are recorded.
	Clear       bool
	RetryCount  int
	NextAttempt int64
}

// ApplyAlarmUpdate applies u to shard and reports whether it matched the
// object's current alarm.
func ApplyAlarmUpdate(r pebble.Reader, w *pebble.Batch, shard uint32, u AlarmUpdate) (bool, error) {
	n, err := ApplyAlarmUpdates(r, w, shard, []AlarmUpdate{u})
	return n == 1, err
}

// ApplyAlarmUpdates applies us to shard in order and returns how many
// matched their object's current alarm. It reads each alarm once and the
// shard's alarm count once, however many updates there are: a leader
// records hundreds of deliveries in one command. r must see what w wrote
// (an indexed batch), since an object may be updated twice.
func ApplyAlarmUpdates(r pebble.Reader, w *pebble.Batch, shard uint32, us []AlarmUpdate) (int, error) {
	matched, removed := 0, 0
	for _, u := range us {
		obj := Object{Shard: shard, Namespace: u.Namespace, Name: u.Object}
		cur, found, err := GetAlarm(r, obj)
		if err != nil {
			return matched, err
		}
		if !found || cur.ScheduledTime != u.ScheduledTime {
			continue
		}
		matched++
		if u.Clear {
			if err := removeAlarm(w, obj, cur); err != nil {
				return matched, err
			}
			removed++
			continue
		}
		next := cur
		next.RetryCount, next.NextAttempt = u.RetryCount, u.NextAttempt
		if err := unindexAlarm(w, obj, cur); err != nil {
			return matched, err
		}
		if err := writeAlarm(w, obj, next); err != nil {
			return matched, err
		}
	}
	if removed > 0 {
		if err := addAlarmCount(r, w, shard, -int64(removed)); err != nil {
			return matched, err
		}
	}
	return matched, nil
}

// DueAlarm is an entry of a shard's due index.
type DueAlarm struct {
	Object Object
	Alarm  Alarm
}

// ScanDue calls fn for the shard's alarms in order of their next attempt,
// starting from the earliest, until fn returns false. It reads only as far
// as fn wants: a leader reads the head of the index, never the whole shard.
func ScanDue(r pebble.Reader, shard uint32, fn func(DueAlarm) bool) error {
	var ferr error
	err := ScanDueFrom(r, shard, nil, func(e DueEntry) bool {
		a, found, err := GetAlarm(r, e.Object)
		if err != nil {
			ferr = err
			return false
		}
		if !found || a.NextAttempt != e.NextAttempt {
			return true // a stale index entry; the next write of the object fixes it
		}
		return fn(DueAlarm{Object: e.Object, Alarm: a})
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// DueEntry is an entry of a shard's due index.
type DueEntry struct {
	Object      Object
	NextAttempt int64 // ms since the epoch
	// Alarm is the copy of the alarm record the entry holds, if HasAlarm
	// (entries written by earlier releases hold none).
	Alarm    Alarm
	HasAlarm bool
	// Key is the entry's key, valid only during the call: ScanDueFrom with
	// from = Key reads again from this entry, with DueAfter(Key) from the
	// next one.
	Key []byte
}

// DueAfter returns the position just after the due-index entry key, for
// ScanDueFrom.
func DueAfter(key []byte) []byte {
	return append(bytes.Clone(key), 0)
}

// ScanDueFrom calls fn for the entries of shard's due index in order of
// their next attempt, from position from (nil: the earliest entry), until fn
// returns false. It reads the index only, not the alarm records (an entry
// holds a copy): a leader keeps its place in the index and resumes there.
func ScanDueFrom(r pebble.Reader, shard uint32, from []byte, fn func(DueEntry) bool) error {
	lo := append(shardPrefix(shard), tagAlarmIdx)
	hi := successor(lo)
	start := lo
	if len(from) > 0 {
		if !bytes.HasPrefix(from, lo) {
			return ErrCorrupt
		}
		start = from
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) < len(lo)+8 {
			return ErrCorrupt
		}
		ns, rest, ok := readEscaped(k[len(lo)+8:])
		if !ok {
			return ErrCorrupt
		}
		name, _, ok := readEscaped(rest)
		if !ok {
			return ErrCorrupt
		}
		e := DueEntry{
			Object:      Object{Shard: shard, Namespace: ns, Name: name},
			NextAttempt: int64(binary.BigEndian.Uint64(k[len(lo):])),
			Key:         k,
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if len(v) > 0 {
			if e.Alarm, err = decodeAlarm(v); err != nil || e.Alarm.NextAttempt != e.NextAttempt {
				return ErrCorrupt
			}
			e.HasAlarm = true
		}
		if !fn(e) {
			break
		}
	}
	return it.Error()
}

// NamespaceAlarm is one alarm of a namespace listing.
type NamespaceAlarm struct {
	Name  string
	Alarm Alarm
}

// ListNamespaceAlarms returns up to limit alarms of namespace ns in shard
// with from ≤ scheduled time < to (to 0: no bound), in order of (time, name),
// starting after (afterTime, afterName) when afterName is not empty. more is
// true when the shard holds further ones.
func ListNamespaceAlarms(r pebble.Reader, shard uint32, ns string, from, to int64, afterTime int64, afterName string, limit int) (out []NamespaceAlarm, more bool, err error) {
	base := append(shardPrefix(shard), tagAlarmByNS)
	base = appendEscaped(base, ns)
	lo := binary.BigEndian.AppendUint64(bytes.Clone(base), uint64(max(from, 0)))
	if afterName != "" {
		start := successor(alarmNSKey(shard, ns, afterTime, afterName))
		if bytes.Compare(start, lo) > 0 {
			lo = start
		}
	}
	hi := successor(base)
	if to > 0 {
		hi = binary.BigEndian.AppendUint64(bytes.Clone(base), uint64(to))
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if len(out) == limit {
			return out, true, it.Error()
		}
		name, _, ok := readEscaped(it.Key()[len(base)+8:])
		if !ok {
			return nil, false, ErrCorrupt
		}
		a, found, err := GetAlarm(r, Object{Shard: shard, Namespace: ns, Name: name})
		if err != nil {
			return nil, false, err
		}
		if found {
			out = append(out, NamespaceAlarm{Name: name, Alarm: a})
		}
	}
	return out, false, it.Error()
}
