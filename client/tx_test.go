package client_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cairndb/cairn/client"
)

func TestTx(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	c := newClient(t)
	o := object(t, c)

	v0, err := o.Put(ctx, "counter", 41)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put(ctx, "c", "gone soon"); err != nil {
		t.Fatal(err)
	}
	alarmAt := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	res, err := o.Tx(ctx, client.TxRequest{
		If: []client.Cond{client.CondVersion("counter", v0), client.CondAbsent("lock"), client.CondExists("c")},
		Ops: []client.Op{
			client.OpGet("counter", "b"),
			client.OpPutMany(map[string]any{"counter": 42, "b": map[string]int{"x": 1}}),
			client.OpPut("blob", []byte{0, 1, 2}),
			client.OpDelete("c", "never-was"),
			client.OpIncr("hits", 3),
			client.OpList(client.ListOptions{Prefix: "b"}),
			client.OpSQL("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)"),
			client.OpSQL("INSERT INTO t(name) VALUES (?), (?) RETURNING id, name", "x", "y"),
			client.OpGetAlarm(),
			client.OpSetAlarm(alarmAt),
			client.OpGetAlarm(),
			client.OpIncrFloat("hits", 0.5),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version == "" || len(res.Results) != 12 {
		t.Fatalf("result = %+v", res)
	}
	r := res.Results
	if r[0].Kind != client.KindGet || len(r[0].Entries) != 1 || string(r[0].Entries["counter"].Data) != "41" || r[0].Entries["counter"].Version != v0 {
		t.Fatalf("get = %+v", r[0])
	}
	if r[1].Written != 2 || r[2].Written != 1 || r[3].Deleted != 1 {
		t.Fatalf("put/put/delete = %+v %+v %+v", r[1], r[2], r[3])
	}
	if n, err := r[4].Number.Int64(); err != nil || n != 3 {
		t.Fatalf("incr = %v", r[4].Number)
	}
	if r[5].List == nil || !slices.Equal(entryKeys(r[5].List.Entries), []string{"b", "blob"}) {
		t.Fatalf("list = %+v", r[5].List)
	}
	if blob := r[5].List.Entries[1]; blob.ContentType != client.ContentTypeBytes || !slices.Equal(blob.Data, []byte{0, 1, 2}) || blob.Version != res.Version {
		t.Fatalf("listed blob = %+v (tx version %s)", blob, res.Version)
	}
	rows := r[7].Rows
	if rows == nil || rows.Len() != 2 || !slices.Equal(rows.Columns(), []string{"id", "name"}) {
		t.Fatalf("sql = %+v", rows)
	}
	var id int64
	var name string
	if !rows.Next() || rows.Scan(&id, &name) != nil || id != 1 || name != "x" {
		t.Fatalf("row 0 = %d %q", id, name)
	}
	if !r[8].Alarm.IsZero() || !r[10].Alarm.Equal(alarmAt) {
		t.Fatalf("getAlarm before/after = %v / %v, want none / %v", r[8].Alarm, r[10].Alarm, alarmAt)
	}
	if f, err := r[11].Number.Float64(); err != nil || f != 3.5 {
		t.Fatalf("incr float = %v", r[11].Number)
	}
	// The writes are there, at the tx's version.
	v, err := o.GetBytes(ctx, "counter")
	if err != nil || string(v.Data) != "42" || v.Version != res.Version {
		t.Fatalf("counter after tx = %+v, %v", v, err)
	}
	if at, err := o.GetAlarm(ctx); err != nil || !at.Equal(alarmAt) {
		t.Fatalf("GetAlarm = %v, %v", at, err)
	}

	// A failing condition: nothing applied, Condition says which one.
	_, err = o.Tx(ctx, client.TxRequest{
		If:  []client.Cond{client.CondExists("counter"), client.CondVersion("counter", v0)},
		Ops: []client.Op{client.OpPut("counter", 0)},
	})
	var ce *client.Error
	if !errors.Is(err, client.ErrPreconditionFailed) || !errors.As(err, &ce) || ce.Condition == nil || *ce.Condition != 1 {
		t.Fatalf("failing condition = %v", err)
	}
	// A failing op rolls back the whole tx.
	_, err = o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpPut("counter", 0), client.OpSQL("SELECT * FROM nope")}})
	if !errors.Is(err, client.ErrSQL) {
		t.Fatalf("failing op = %v, want ErrSQL", err)
	}
	if err := o.Get(ctx, "counter", new(int)); err != nil {
		t.Fatal(err)
	}
	var counter int
	_ = o.Get(ctx, "counter", &counter)
	if counter != 42 {
		t.Fatalf("counter = %d after a rolled back tx, want 42", counter)
	}

	// A read-only tx; also stale.
	for _, opts := range [][]client.CallOption{nil, {client.Stale()}} {
		rd, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpGet("counter"), client.OpList(client.ListOptions{KeysOnly: true, Limit: 2}), client.OpGetAlarm()}}, opts...)
		if err != nil || len(rd.Results[1].List.Entries) != 2 || rd.Results[1].List.Cursor == "" || !rd.Results[2].Alarm.Equal(alarmAt) {
			t.Fatalf("read tx = %+v, %v", rd, err)
		}
	}
	// ReadOnly with SQL; refused with a KV write.
	rd, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpSQL("SELECT count(*) FROM t")}}, client.ReadOnly())
	var count int
	if err != nil || rd.Results[0].Rows.One(&count) != nil || count != 2 {
		t.Fatalf("read-only sql tx = %+v, %v", rd, err)
	}
	if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpPut("x", 1)}}, client.ReadOnly()); err == nil {
		t.Fatal("ReadOnly tx with a put was sent")
	}
	// Arguments that cannot be encoded fail before sending.
	if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpPut("x", math.Inf(1))}}); err == nil {
		t.Fatal("put of +Inf was sent")
	}
	if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpSQL("SELECT ?", struct{}{})}}); err == nil {
		t.Fatal("sql with a struct argument was sent")
	}

	// deleteAlarm and deleteAll.
	res, err = o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpDeleteAlarm(), client.OpGetAlarm(), client.OpDeleteAll(false), client.OpList(client.ListOptions{})}})
	if err != nil || !res.Results[1].Alarm.IsZero() || len(res.Results[3].List.Entries) != 0 {
		t.Fatalf("deleteAlarm/deleteAll tx = %+v, %v", res, err)
	}
	if _, err := o.Query(ctx, "SELECT * FROM t"); !errors.Is(err, client.ErrSQL) {
		t.Fatalf("table after deleteAll = %v, want ErrSQL (no such table)", err)
	}
	if _, err := o.Tx(ctx, client.TxRequest{Ops: []client.Op{client.OpSetAlarm(alarmAt), client.OpDeleteAll(true), client.OpGetAlarm()}}); err != nil {
		t.Fatal(err)
	}
	if at, err := o.GetAlarm(ctx); err != nil || !at.IsZero() {
		t.Fatalf("alarm after deleteAll(alarm) = %v, %v", at, err)
	}
}
