package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TxRequest is one transaction on one object: every condition is checked
// first and, if one fails, nothing is applied (ErrPreconditionFailed, with
// Error.Condition its index); then the ops run in order, each seeing the
// earlier ones, atomically and isolated from every other request to the
// object. An op that fails (bad SQL, a limit) rolls the whole tx back.
type TxRequest struct {
	If  []Cond
	Ops []Op
}

// Cond is a condition of a transaction.
type Cond struct {
	key     string
	version Version
	exists  *bool
}

// CondVersion holds when key exists at version v.
func CondVersion(key string, v Version) Cond { return Cond{key: key, version: v} }

// CondExists holds when key exists.
func CondExists(key string) Cond { return Cond{key: key, exists: ptr(true)} }

// CondAbsent holds when key does not exist.
func CondAbsent(key string) Cond { return Cond{key: key, exists: ptr(false)} }

// MarshalJSON writes c as a tx condition of the API.
func (c Cond) MarshalJSON() ([]byte, error) {
	out := struct {
		Key     string  `json:"key"`
		Version Version `json:"version,omitempty"`
		Exists  *bool   `json:"exists,omitempty"`
	}{c.key, c.version, c.exists}
	return json.Marshal(out)
}

// OpKind names the kind of an op.
type OpKind string

// The kinds of op.
const (
	KindGet         OpKind = "get"
	KindPut         OpKind = "put"
	KindDelete      OpKind = "delete"
	KindIncr        OpKind = "incr"
	KindList        OpKind = "list"
	KindSQL         OpKind = "sql"
	KindGetAlarm    OpKind = "getAlarm"
	KindSetAlarm    OpKind = "setAlarm"
	KindDeleteAlarm OpKind = "deleteAlarm"
	KindDeleteAll   OpKind = "deleteAll"
)

// writes reports whether an op of kind k changes state: false for reads,
// and for sql, which the client cannot judge.
func (k OpKind) writes() bool {
	switch k {
	case KindGet, KindList, KindGetAlarm, KindSQL:
		return false
	}
	return true
}

// Op is one operation of a transaction, made by the Op… functions. An op
// whose arguments cannot be encoded makes Tx fail before sending.
type Op struct {
	kind  OpKind
	raw   json.RawMessage
	err   error
	reads bool // a sql op whose statement the client can tell only reads
}

// Kind returns the op's kind.
func (op Op) Kind() OpKind { return op.kind }

// MarshalJSON writes op as a tx op of the API, or fails with the error of
// an op whose arguments could not be encoded.
func (op Op) MarshalJSON() ([]byte, error) {
	if op.err != nil {
		return nil, op.err
	}
	return op.raw, nil
}

func named(kind OpKind, arg any) Op {
	b, err := json.Marshal(map[OpKind]any{kind: arg})
	if err != nil {
		err = fmt.Errorf("client: op %s: %w", kind, err)
	}
	return Op{kind: kind, raw: b, err: err}
}

// OpGet reads keys (at most 128); OpResult.Entries holds those that exist.
func OpGet(keys ...string) Op {
	if keys == nil {
		keys = []string{}
	}
	return named(KindGet, keys)
}

// OpPut stores v under key: as JSON, or as raw bytes if v is a []byte. (A
// JSON value of exactly the form {"valueBase64": "…"} stores those bytes:
// store such an object with Object.Put.)
func OpPut(key string, v any) Op { return OpPutMany(map[string]any{key: v}) }

// OpPutMany stores several keys (at most 128) in one op; values as OpPut.
func OpPutMany(entries map[string]any) Op {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(`{"put":{`)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := putValueJSON(entries[k])
		if err != nil {
			return Op{kind: KindPut, err: fmt.Errorf("client: op put %q: %w", k, err)}
		}
		b.Write(vb)
	}
	b.WriteString("}}")
	return Op{kind: KindPut, raw: json.RawMessage(b.String())}
}

func putValueJSON(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return json.Marshal(map[string]string{"valueBase64": base64.StdEncoding.EncodeToString(b)})
	}
	return json.Marshal(v)
}

// OpDelete deletes keys (at most 128); OpResult.Deleted counts those that
// existed.
func OpDelete(keys ...string) Op {
	if keys == nil {
		keys = []string{}
	}
	return named(KindDelete, keys)
}

// OpIncr adds by to the integer under key (a missing key counts as 0);
// OpResult.Number is the sum.
func OpIncr(key string, by int64) Op {
	return named(KindIncr, struct {
		Key string      `json:"key"`
		By  json.Number `json:"by"`
	}{key, json.Number(strconv.FormatInt(by, 10))})
}

// OpIncrFloat adds by to the number under key as a float64.
func OpIncrFloat(key string, by float64) Op {
	n, err := floatJSON(by)
	if err != nil {
		return Op{kind: KindIncr, err: fmt.Errorf("client: op incr %q: %w", key, err)}
	}
	return named(KindIncr, struct {
		Key string          `json:"key"`
		By  json.RawMessage `json:"by"`
	}{key, n})
}

// OpList lists keys as Object.List does; OpResult.List is the page.
func OpList(opts ListOptions) Op {
	return named(KindList, opts.json())
}

// OpSQL runs one SQL statement with args bound by position (see
// Object.SQL for the Go types they take); OpResult.Rows is its result.
func OpSQL(query string, args ...any) Op {
	st, err := statementJSON(Statement{SQL: query, Args: args})
	if err != nil {
		return Op{kind: KindSQL, err: err}
	}
	b, err := json.Marshal(st)
	return Op{kind: KindSQL, raw: b, err: err, reads: readsOnly(query)}
}

// OpGetAlarm reads the object's alarm; OpResult.Alarm is its time (zero if
// none).
func OpGetAlarm() Op { return named(KindGetAlarm, struct{}{}) }

// OpSetAlarm sets the object's alarm to t.
func OpSetAlarm(t time.Time) Op {
	return named(KindSetAlarm, alarmJSON{ScheduledTime: ptr(t.UnixMilli())})
}

// OpDeleteAlarm removes the object's alarm.
func OpDeleteAlarm() Op { return named(KindDeleteAlarm, struct{}{}) }

// OpDeleteAll deletes every key and the SQL database; the alarm too if
// alsoAlarm.
func OpDeleteAll(alsoAlarm bool) Op {
	return named(KindDeleteAll, struct {
		Alarm bool `json:"alarm,omitempty"`
	}{alsoAlarm})
}

// TxResult is the answer to a transaction.
type TxResult struct {
	// Version is the tx's Raft log index: the new version of every key it
	// wrote. For a tx that only reads, the shard's applied index.
	Version Version
	// Results holds one result per op, in order.
	Results []OpResult
}

// OpResult is the result of one op; which fields are set depends on Kind.
type OpResult struct {
	Kind OpKind
	// Entries (get) maps each key that exists to its value.
	Entries map[string]Value
	// Written (put) is the number of keys written.
	Written int
	// Deleted (delete) is the number of keys that existed.
	Deleted int
	// Number (incr) is the sum: Int64 or Float64 reads it.
	Number json.Number
	// List (list) is the page listed.
	List *ListPage
	// Rows (sql) is the statement's result.
	Rows *Rows
	// Alarm (getAlarm) is the alarm's time, or the zero time if none.
	Alarm time.Time
}

// Tx runs a transaction on the object. A tx with only get, list and
// getAlarm ops, and sql ops the client can tell only read (see ReadOnly),
// is a read (retried like a GET); one with put, delete, incr, setAlarm,
// deleteAlarm or deleteAll ops is a write; one with other sql ops and no
// KV writes is a write unless declared ReadOnly. Options: IdempotencyKey,
// ReadOnly, Stale.
func (o *Object) Tx(ctx context.Context, tx TxRequest, opts ...CallOption) (*TxResult, error) {
	co, err := applyOptions("Tx", opts, unknownOpts...)
	if err != nil {
		return nil, err
	}
	return o.tx(ctx, tx, co)
}

func (o *Object) tx(ctx context.Context, tx TxRequest, co callOptions) (*TxResult, error) {
	// A sql op the client cannot tell only reads may write, so it is a
	// write unless declared ReadOnly (which newRequest then honours).
	cls := classRead
	for _, op := range tx.Ops {
		if op.kind.writes() && co.readOnly {
			return nil, invalidCall("client: Tx: ReadOnly given, but the tx has a %s op", op.kind)
		}
		if op.kind.writes() || (op.kind == KindSQL && !op.reads) {
			cls = classWrite
		}
	}
	r := o.client().newRequest(http.MethodPost, o.path()+"/tx", cls, co)
	body := struct {
		If  []Cond `json:"if,omitempty"`
		Ops []Op   `json:"ops"`
	}{tx.If, tx.Ops}
	if body.Ops == nil {
		body.Ops = []Op{}
	}
	if err := r.setJSON(body); err != nil {
		return nil, err
	}
	var out struct {
		Results []json.RawMessage `json:"results"`
		Version Version           `json:"version"`
	}
	if _, err := o.client().call(ctx, r, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(tx.Ops) {
		return nil, fmt.Errorf("client: Tx: %d results for %d ops", len(out.Results), len(tx.Ops))
	}
	res := &TxResult{Version: out.Version, Results: make([]OpResult, len(tx.Ops))}
	for i, raw := range out.Results {
		or, err := decodeOpResult(tx.Ops[i].kind, raw)
		if err != nil {
			return nil, fmt.Errorf("client: Tx: result %d (%s): %w", i, tx.Ops[i].kind, err)
		}
		res.Results[i] = or
	}
	return res, nil
}

func decodeOpResult(kind OpKind, raw json.RawMessage) (OpResult, error) {
	r := OpResult{Kind: kind}
	var err error
	switch kind {
	case KindGet:
		var g struct {
			Entries map[string]entryJSON `json:"entries"`
		}
		if err = json.Unmarshal(raw, &g); err != nil {
			break
		}
		r.Entries = make(map[string]Value, len(g.Entries))
		for k, e := range g.Entries {
			e.Key = k
			if r.Entries[k], err = e.value(); err != nil {
				break
			}
		}
	case KindPut:
		var p struct {
			Written int `json:"written"`
		}
		err = json.Unmarshal(raw, &p)
		r.Written = p.Written
	case KindDelete:
		var d struct {
			Deleted int `json:"deleted"`
		}
		err = json.Unmarshal(raw, &d)
		r.Deleted = d.Deleted
	case KindIncr:
		var n struct {
			Value json.Number `json:"value"`
		}
		err = json.Unmarshal(raw, &n)
		r.Number = n.Value
	case KindList:
		var l listJSON
		if err = json.Unmarshal(raw, &l); err == nil {
			r.List, err = l.page()
		}
	case KindSQL:
		r.Rows, err = decodeRows(raw, 0)
	case KindGetAlarm:
		var a alarmJSON
		err = json.Unmarshal(raw, &a)
		r.Alarm = a.time()
	}
	return r, err
}
