package fsm_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/objectstore"
)

func hdr(i int) fsm.Header {
	return fsm.Header{NowMillis: 1_700_000_000_000 + int64(i), Seed: uint64(i) * 0x9e3779b97f4a7c15}
}

func entry(key, contentType string, data []byte) objectstore.Entry {
	return objectstore.Entry{Key: key, Value: objectstore.Value{ContentType: contentType, Data: data}}
}

func putOp(es ...objectstore.Entry) objectstore.Op {
	return objectstore.Op{Kind: objectstore.OpPut, Puts: es}
}

func txData(t testing.TB, i int, obj string, tx objectstore.Tx) []byte {
	t.Helper()
	return mustEncode(t, txCommand(hdr(i), "ns", obj, tx))
}

// ignorableEntry is a well-formed entry of a type this release does not know,
// flagged as safe to skip.
func ignorableEntry(i int) []byte {
	return append([]byte{1, 0x80 | 0x11}, fmt.Sprintf("hint %d", i)...)
}

// workload returns the payloads of n entries, to be applied at indexes 1..n,
// that exercise every kind of command and outcome: multi-key puts (x, y and z
// always written together, so a half-applied entry shows), incr, delete,
// deleteAll with and without the alarm, reads, failed preconditions, business
// errors after earlier writes of the same tx, namespace configuration, and
// ignorable entries. Values of several KiB make entries straddle WAL blocks.
func workload(t testing.TB, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 1; i <= n; i++ {
		obj := fmt.Sprintf("obj-%d", i%3)
		val := func(size int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xa5}, size/3) }
		var d []byte
		switch i % 10 {
		case 0:
			d = mustEncode(t, &fsm.Command{Type: fsm.TypeSetNamespace, Header: hdr(i), Namespace: fmt.Sprintf("ns-%d", i%4),
				NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: fmt.Sprintf("http://hook/%d", i), AlarmTimeout: time.Duration(i) * time.Second, AlarmMaxRetries: i}})
		case 1:
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(putOp(
				entry("x", objectstore.ContentTypeJSON, fmt.Appendf(nil, "%d", i)),
				entry("y", objectstore.ContentTypeBytes, val(3000)),
				entry("z", "application/x-test", val(1500))))})
		case 2:
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpIncr, Key: "counter", By: fmt.Sprint(i)})})
		case 3:
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpDelete, Keys: []string{"y", "absent"}})})
		case 4:
			// Fails: obj-1 holds x once entry 1 ran; nothing of it may land.
			d = txData(t, i, "obj-1", objectstore.Tx{
				If:  []objectstore.Cond{{Kind: objectstore.CondMissing, Key: "x"}},
				Ops: ops(putOp(entry("x", "", val(5000)), entry("never", "", []byte("!"))))})
		case 5:
			d = ignorableEntry(i)
		case 6:
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(
				objectstore.Op{Kind: objectstore.OpGet, Keys: []string{"x", "y", "z", "counter"}},
				objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Limit: 2}})})
		case 7:
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: i%20 == 7})})
		case 8:
			// Writes, then fails on incr of a non-number: a business error
			// after writes of the same tx, which must all be discarded.
			d = txData(t, i, obj, objectstore.Tx{Ops: ops(
				putOp(entry("x", "", val(4000)), entry("text", objectstore.ContentTypeText, []byte("abc"))),
				objectstore.Op{Kind: objectstore.OpIncr, Key: "text", By: "1"})})
		case 9:
			var es []objectstore.Entry
			for k := range 20 {
				es = append(es, entry(fmt.Sprintf("many/%02d", k), objectstore.ContentTypeText, val(300)))
			}
			d = txData(t, i, fmt.Sprintf("bulk-%d", i%7), objectstore.Tx{
				If:  []objectstore.Cond{{Kind: objectstore.CondVersionIsNot, Key: "x", Version: 0}},
				Ops: ops(putOp(es...))})
		}
		out = append(out, d)
	}
	return out
}

// referenceRun applies entries at indexes 1..n to a fresh FSM of shard and
// returns the shard's state after each prefix (states[j] after entries 1..j)
// and each entry's response (resps[j] for index j; resps[0] unused).
func referenceRun(t testing.TB, shard uint32, entries [][]byte) (states [][]kv, resps []*fsm.Response) {
	t.Helper()
	db := memDB(t)
	f := openFSM(t, db, shard)
	states = append(states, shardDump(t, db, shard))
	resps = append(resps, nil)
	for i, d := range entries {
		resps = append(resps, apply(t, f, uint64(i+1), d))
		states = append(states, shardDump(t, db, shard))
	}
	return states, resps
}

// applyRange applies entries[from-1:to] at their indexes.
func applyRange(t testing.TB, f *fsm.FSM, entries [][]byte, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		apply(t, f, uint64(i), entries[i-1])
	}
}
