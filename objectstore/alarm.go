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
//	's' shard 't' nextAttempt:u64be esc(ns) esc(obj)        → (empty): by when to deliver
//	's' shard 'T' esc(ns) scheduledTime:u64be esc(obj)      → (empty): a namespace's alarms by time
//	's' shard 'm' "alarms"                                  → u64: how many alarms the shard holds
//
// The first index is what a shard's leader keeps a timer on; the second
// serves GET /v1/ns/{ns}/alarms; the count is the pending-alarms metric.

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
	if err := w.Set(obj.alarmKey(), a.encode(), nil); err != nil {
		return err
	}
	if err := w.Set(alarmDueKey(obj.Shard, a.NextAttempt, obj.objSuffix()), nil, nil); err != nil {
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
	if err := unindexAlarm(w, obj, old); err != nil {
		return false, err
	}
	if err := addAlarmCount(r, w, obj.Shard, -1); err != nil {
		return false, err
	}
	return true, w.Delete(obj.alarmKey(), nil)
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
	obj := Object{Shard: shard, Namespace: u.Namespace, Name: u.Object}
	cur, found, err := GetAlarm(r, obj)
	if err != nil || !found || cur.ScheduledTime != u.ScheduledTime {
		return false, err
	}
	if u.Clear {
		_, err := DeleteAlarm(r, w, obj)
		return err == nil, err
	}
	next := cur
	next.RetryCount, next.NextAttempt = u.RetryCount, u.NextAttempt
	return true, SetAlarm(r, w, obj, next)
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
	lo := append(shardPrefix(shard), tagAlarmIdx)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: successor(lo)})
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
		obj := Object{Shard: shard, Namespace: ns, Name: name}
		a, found, err := GetAlarm(r, obj)
		if err != nil {
			return err
		}
		if !found {
			continue // a stale index entry; the next write of the object fixes it
		}
		if !fn(DueAlarm{Object: obj, Alarm: a}) {
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
