package objectstore

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
)

// Limits of the key/value API, as in Durable Objects and the HTTP contract.
const (
	MaxKeyBytes      = 2048    // a key is 1–2048 bytes
	MaxEntryBytes    = 2 << 20 // key + value
	MaxKeysPerOp     = 128     // keys in one get, put or delete op
	DefaultListLimit = 1000
	MaxListLimit     = 10000
	// MaxListBytes bounds the values one list page returns; a page that
	// reaches it ends early with a cursor.
	MaxListBytes = 8 << 20
)

// CondKind says what a condition asks of a key.
type CondKind uint8

// The conditions a transaction can check before it runs.
const (
	CondVersionIs    CondKind = 1 // the key exists and has Version
	CondVersionIsNot CondKind = 2 // the key is missing or has another version
	CondExists       CondKind = 3 // the key exists
	CondMissing      CondKind = 4 // the key does not exist
)

// Cond is one condition of a transaction.
type Cond struct {
	Kind    CondKind
	Key     string
	Version uint64 // for CondVersionIs and CondVersionIsNot
}

// OpKind is the kind of one operation of a transaction.
type OpKind uint8

// The operations of a transaction.
const (
	OpGet         OpKind = 1
	OpPut         OpKind = 2
	OpDelete      OpKind = 3
	OpIncr        OpKind = 4
	OpList        OpKind = 5
	OpDeleteAll   OpKind = 6
	OpSQL         OpKind = 7
	OpGetAlarm    OpKind = 8
	OpSetAlarm    OpKind = 9
	OpDeleteAlarm OpKind = 10
)

// MaxAlarmTime is the latest time an alarm may be set for: the last
// millisecond of year 9999.
const MaxAlarmTime = 253402300799999

// Entry is a key with a value, as written by put or read by get and list.
type Entry struct {
	Key   string
	Value Value
}

// Op is one operation. Which fields matter depends on Kind.
type Op struct {
	Kind OpKind
	Keys []string    // OpGet, OpDelete
	Puts []Entry     // OpPut (Value.Version is ignored)
	Key  string      // OpIncr
	By   string      // OpIncr: a JSON number
	List ListOptions // OpList
	// Alarm, for OpDeleteAll, also deletes the object's alarm.
	Alarm bool
	SQL   SQLStatement // OpSQL
	// ScheduledTime is when OpSetAlarm's alarm fires (ms since the epoch).
	ScheduledTime int64
}

// SQL limits, as in Durable Objects; the engine enforces the same ones, and
// these are checked before proposing.
const (
	MaxSQLBytes      = 100000  // one statement's text
	MaxSQLParams     = 100     // bound parameters of one statement
	MaxSQLValueBytes = 2000000 // one string or blob
)

// Writes reports whether the op changes state. An sql op may or may not:
// only running it tells (see Tx.HasSQL).
func (op *Op) Writes() bool {
	switch op.Kind {
	case OpPut, OpDelete, OpIncr, OpDeleteAll, OpSetAlarm, OpDeleteAlarm:
		return true
	}
	return false
}

// Tx is an atomic, isolated unit of work on one object: conditions checked
// first, then operations in order, each seeing the effects of the earlier ones.
type Tx struct {
	If  []Cond
	Ops []Op
}

// Writes reports whether any op of tx other than sql ops changes state. A
// tx that does not, and has no sql op, is a read and never goes through
// Raft.
func (tx *Tx) Writes() bool {
	for i := range tx.Ops {
		if tx.Ops[i].Writes() {
			return true
		}
	}
	return false
}

// HasSQL reports whether tx has an sql op, and whether it has any other op.
func (tx *Tx) HasSQL() (sql, other bool) {
	for i := range tx.Ops {
		if tx.Ops[i].Kind == OpSQL {
			sql = true
		} else {
			other = true
		}
	}
	return sql, other
}

// OpResult is what one op produced.
type OpResult struct {
	Kind    OpKind
	Entries []Entry     // OpGet: the keys found, in the order asked
	Count   int         // OpPut: keys written; OpDelete: keys that existed
	Number  string      // OpIncr: the new value as a JSON number
	List    *ListResult // OpList
	SQL     *SQLResult  // OpSQL
	// OpGetAlarm: the alarm's scheduled time, if HasAlarm.
	HasAlarm      bool
	ScheduledTime int64
}

// TxResult is what a transaction produced: one result per op, and the version
// its writes carry (the Raft log index of its entry).
type TxResult struct {
	Results []OpResult
	Version uint64
	// SQLSize is the size in bytes of the object's database after the tx,
	// when it had an sql op (HasSQL).
	SQLSize int64
	HasSQL  bool
}

// ExecEnv is what Exec needs besides storage: the SQL engine, and what the
// proposer fixed for SQL.
type ExecEnv struct {
	SQL    SQL
	SQLEnv SQLEnv
}

// ValidateKey checks a key against the API's rules.
func ValidateKey(key string) error {
	switch {
	case len(key) == 0:
		return errorf(ErrInvalidKey, "a key must not be empty")
	case len(key) > MaxKeyBytes:
		return errorf(ErrInvalidKey, "a key is at most %d bytes, got %d", MaxKeyBytes, len(key))
	case !utf8.ValidString(key):
		return errorf(ErrInvalidKey, "a key must be UTF-8")
	}
	return nil
}

// ValidateEntry checks a key and a value's size.
func ValidateEntry(key string, valueLen int) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(key)+valueLen > MaxEntryBytes {
		return errorf(ErrTooLarge, "key %q: key + value is %d bytes, the limit is %d", truncate(key), len(key)+valueLen, MaxEntryBytes)
	}
	return nil
}

func validateKeys(keys []string, what string) error {
	if len(keys) > MaxKeysPerOp {
		return errorf(ErrTooLarge, "%s: at most %d keys per op, got %d", what, MaxKeysPerOp, len(keys))
	}
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every limit of tx. It is called before proposing, so that
// bad input changes nothing and costs no Raft entry; apply calls it again so a
// replica never depends on the proposer having done so.
func (tx *Tx) Validate() error {
	for i, c := range tx.If {
		if err := ValidateKey(c.Key); err != nil {
			return err
		}
		if c.Kind < CondVersionIs || c.Kind > CondMissing {
			return errorf(ErrInvalidArgument, "condition %d: unknown kind", i)
		}
	}
	if len(tx.Ops) == 0 && len(tx.If) == 0 {
		return errorf(ErrInvalidArgument, "a transaction needs at least one op")
	}
	for i := range tx.Ops {
		op := &tx.Ops[i]
		switch op.Kind {
		case OpGet:
			if len(op.Keys) == 0 {
				return errorf(ErrInvalidArgument, "op %d: get needs at least one key", i)
			}
			if err := validateKeys(op.Keys, "get"); err != nil {
				return err
			}
		case OpDelete:
			if len(op.Keys) == 0 {
				return errorf(ErrInvalidArgument, "op %d: delete needs at least one key", i)
			}
			if err := validateKeys(op.Keys, "delete"); err != nil {
				return err
			}
		case OpPut:
			if len(op.Puts) == 0 {
				return errorf(ErrInvalidArgument, "op %d: put needs at least one key", i)
			}
			if len(op.Puts) > MaxKeysPerOp {
				return errorf(ErrTooLarge, "put: at most %d keys per op, got %d", MaxKeysPerOp, len(op.Puts))
			}
			for _, e := range op.Puts {
				if err := ValidateEntry(e.Key, len(e.Value.Data)); err != nil {
					return err
				}
			}
		case OpIncr:
			if err := ValidateKey(op.Key); err != nil {
				return err
			}
			if _, err := parseNumber([]byte(op.By)); err != nil {
				return errorf(ErrInvalidArgument, "op %d: incr: by must be a finite JSON number, got %q", i, truncate(op.By))
			}
		case OpList:
			if err := op.List.Validate(); err != nil {
				return err
			}
		case OpDeleteAll:
		case OpSQL:
			if err := op.SQL.Validate(); err != nil {
				return err
			}
		case OpSetAlarm:
			if op.ScheduledTime < 0 || op.ScheduledTime > MaxAlarmTime {
				return errorf(ErrInvalidArgument, "op %d: setAlarm: scheduledTime must be milliseconds since 1970 before year 10000", i)
			}
		case OpGetAlarm, OpDeleteAlarm:
		default:
			return errorf(ErrInvalidArgument, "op %d: unknown op", i)
		}
	}
	return nil
}

// Validate checks a statement against the SQL limits before it is proposed.
func (st *SQLStatement) Validate() error {
	switch {
	case st.SQL == "":
		return errorf(ErrInvalidArgument, "sql: the statement is empty")
	case len(st.SQL) > MaxSQLBytes:
		return errorf(ErrTooLarge, "sql: a statement is at most %d bytes, got %d", MaxSQLBytes, len(st.SQL))
	case len(st.Params) > MaxSQLParams:
		return errorf(ErrTooLarge, "sql: a statement has at most %d parameters, got %d", MaxSQLParams, len(st.Params))
	}
	for i, p := range st.Params {
		if len(p.Text) > MaxSQLValueBytes || len(p.Blob) > MaxSQLValueBytes {
			return errorf(ErrTooLarge, "sql: parameter %d is larger than %d bytes", i+1, MaxSQLValueBytes)
		}
	}
	return nil
}

// Exec runs tx on obj. Reads go to r; writes go to w, stamped with version.
// For a transaction that writes, w must be an indexed batch and r the same
// batch, so that later ops see earlier ones — except when every op is a put:
// then nothing is read after a write, and r may be the committed state and w
// a plain batch. For a read-only transaction w may
// be nil and r should be a consistent view (a snapshot; for sql ops, the live
// database: see package sqlstore).
//
// On error, w holds some of tx's writes and the caller must discard it.
func Exec(r pebble.Reader, w *pebble.Batch, obj Object, tx *Tx, version uint64, env ExecEnv) (*TxResult, error) {
	if err := tx.Validate(); err != nil {
		return nil, err
	}
	if w == nil && tx.Writes() {
		return nil, errorf(ErrInvalidArgument, "a transaction that writes needs a batch")
	}
	for i, c := range tx.If {
		v, found, err := GetValue(r, obj, c.Key)
		if err != nil {
			return nil, err
		}
		if !c.holds(v, found) {
			return nil, &Error{Err: ErrPreconditionFailed, Detail: c.describe(v, found), Condition: i}
		}
	}
	x := &execution{r: r, w: w, obj: obj, env: env}
	res, err := x.run(tx, version)
	if err != nil {
		x.rollback()
		return nil, err
	}
	return res, nil
}

// execution is the state of one Exec: the SQL session, opened by the first
// sql op and committed once every op has succeeded.
type execution struct {
	r    pebble.Reader
	w    *pebble.Batch
	obj  Object
	env  ExecEnv
	sess SQLSession
}

func (x *execution) run(tx *Tx, version uint64) (*TxResult, error) {
	r, w, obj := x.r, x.w, x.obj
	res := &TxResult{Results: make([]OpResult, len(tx.Ops)), Version: version}
	for i := range tx.Ops {
		op := &tx.Ops[i]
		out := &res.Results[i]
		out.Kind = op.Kind
		var err error
		switch op.Kind {
		case OpGet:
			out.Entries, err = getMany(r, obj, op.Keys)
		case OpPut:
			out.Count, err = putMany(w, obj, op.Puts, version)
		case OpDelete:
			out.Count, err = deleteMany(r, w, obj, op.Keys)
		case OpIncr:
			out.Number, err = incr(r, w, obj, op.Key, op.By, version)
		case OpList:
			out.List, err = List(r, obj, op.List)
		case OpDeleteAll:
			err = x.deleteAll(op.Alarm)
		case OpSQL:
			out.SQL, err = x.sql(op.SQL)
		case OpGetAlarm:
			var a Alarm
			a, out.HasAlarm, err = GetAlarm(r, obj)
			out.ScheduledTime = a.ScheduledTime
		case OpSetAlarm:
			err = SetAlarm(r, w, obj, Alarm{ScheduledTime: op.ScheduledTime, NextAttempt: op.ScheduledTime})
		case OpDeleteAlarm:
			_, err = DeleteAlarm(r, w, obj)
		}
		if err != nil {
			return nil, err
		}
	}
	if x.sess != nil {
		res.HasSQL = true
		size, err := x.sess.Size()
		if err != nil {
			return nil, err
		}
		res.SQLSize = size
		err = x.sess.Commit()
		x.sess = nil
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (x *execution) sql(st SQLStatement) (*SQLResult, error) {
	if x.env.SQL == nil {
		return nil, errorf(ErrInvalidArgument, "sql is not available here")
	}
	if x.sess == nil {
		s, err := x.env.SQL.Begin(x.obj, x.r, x.w, x.env.SQLEnv)
		if err != nil {
			return nil, err
		}
		x.sess = s
	}
	return x.sess.Exec(st)
}

// deleteAll removes the object's keys and database. An open SQL session is
// rolled back first: its database is about to disappear, and a session
// committed after the delete would write pages back.
func (x *execution) deleteAll(alarm bool) error {
	x.rollback()
	if x.env.SQL != nil {
		x.env.SQL.Forget(x.obj)
	}
	return DeleteAll(x.r, x.w, x.obj, alarm)
}

func (x *execution) rollback() {
	if x.sess != nil {
		x.sess.Rollback()
		x.sess = nil
	}
}

func (c Cond) holds(v Value, found bool) bool {
	switch c.Kind {
	case CondVersionIs:
		return found && v.Version == c.Version
	case CondVersionIsNot:
		return !found || v.Version != c.Version
	case CondExists:
		return found
	case CondMissing:
		return !found
	}
	return false
}

func (c Cond) describe(v Value, found bool) string {
	state := "is missing"
	if found {
		state = "has version " + strconv.FormatUint(v.Version, 10)
	}
	var want string
	switch c.Kind {
	case CondVersionIs:
		want = "to have version " + strconv.FormatUint(c.Version, 10)
	case CondVersionIsNot:
		want = "not to have version " + strconv.FormatUint(c.Version, 10)
	case CondExists:
		want = "to exist"
	case CondMissing:
		want = "not to exist"
	}
	return "key " + strconv.Quote(truncate(c.Key)) + " was expected " + want + " but " + state
}

// GetValue reads one key of obj. found is false if the key does not exist.
// The returned Value's Data is a copy the caller owns.
func GetValue(r pebble.Reader, obj Object, key string) (v Value, found bool, err error) {
	rec, closer, err := r.Get(obj.kvKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return Value{}, false, nil
	}
	if err != nil {
		return Value{}, false, err
	}
	defer closer.Close()
	v, err = decodeValue(rec)
	if err != nil {
		return Value{}, false, err
	}
	v.Data = append([]byte(nil), v.Data...)
	return v, true, nil
}

func getMany(r pebble.Reader, obj Object, keys []string) ([]Entry, error) {
	var out []Entry
	for _, k := range keys {
		v, found, err := GetValue(r, obj, k)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, Entry{Key: k, Value: v})
		}
	}
	return out, nil
}

func putMany(w *pebble.Batch, obj Object, puts []Entry, version uint64) (int, error) {
	for _, e := range puts {
		if err := w.Set(obj.kvKey(e.Key), encodeValue(e.Value.Data, e.Value.ContentType, version), nil); err != nil {
			return 0, err
		}
	}
	return len(puts), nil
}

func deleteMany(r pebble.Reader, w *pebble.Batch, obj Object, keys []string) (int, error) {
	n := 0
	for _, k := range keys {
		kk := obj.kvKey(k)
		_, closer, err := r.Get(kk)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		closer.Close()
		if err := w.Delete(kk, nil); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// DeleteAll removes every key and the SQL database of obj and, if alarm is
// set, its alarm too.
func DeleteAll(r pebble.Reader, w *pebble.Batch, obj Object, alarm bool) error {
	if alarm {
		if _, err := DeleteAlarm(r, w, obj); err != nil {
			return err
		}
		lo, hi := obj.Span()
		return w.DeleteRange(lo, hi, nil)
	}
	lo, _ := obj.kindSpan(KindKV)
	_, hi := obj.kindSpan(KindSQL)
	return w.DeleteRange(lo, hi, nil)
}

func incr(r pebble.Reader, w *pebble.Batch, obj Object, key, by string, version uint64) (string, error) {
	cur, found, err := GetValue(r, obj, key)
	if err != nil {
		return "", err
	}
	curText := []byte("0")
	if found {
		if !cur.IsJSON() {
			return "", errorf(ErrNotANumber, "key %q holds %s, not a JSON number", truncate(key), cur.ContentType)
		}
		// A JSON value may carry insignificant whitespace around the
		// number (a raw PUT of "5\n" with Content-Type application/json).
		curText = bytes.Trim(cur.Data, " \t\r\n")
	}
	sum, err := addNumbers(curText, []byte(by))
	if err != nil {
		return "", errorf(ErrNotANumber, "key %q: %v", truncate(key), err)
	}
	if err := w.Set(obj.kvKey(key), encodeValue([]byte(sum), ContentTypeJSON, version), nil); err != nil {
		return "", err
	}
	return sum, nil
}

var (
	errNotNumber = errors.New("the value is not a JSON number")
	errOverflow  = errors.New("the sum is out of range")
)

// number is a parsed JSON number: an int64 when it is an integer that fits,
// a float64 otherwise.
type number struct {
	isInt bool
	i     int64
	f     float64
}

// parseNumber reads a JSON number.
func parseNumber(b []byte) (number, error) {
	s := string(b)
	if !isJSONNumber(s) {
		return number{}, errNotNumber
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{isInt: true, i: n, f: float64(n)}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return number{}, errNotNumber
	}
	return number{f: f}, nil
}

// addNumbers adds two JSON numbers: integer arithmetic when both are int64,
// float64 otherwise. The result is a JSON number.
func addNumbers(a, b []byte) (string, error) {
	x, err := parseNumber(a)
	if err != nil {
		return "", err
	}
	y, err := parseNumber(b)
	if err != nil {
		return "", err
	}
	if x.isInt && y.isInt {
		s := x.i + y.i
		if (y.i > 0 && s < x.i) || (y.i < 0 && s > x.i) {
			return "", errOverflow
		}
		return strconv.FormatInt(s, 10), nil
	}
	s := x.f + y.f
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return "", errOverflow
	}
	return strconv.FormatFloat(s, 'g', -1, 64), nil
}

// isJSONNumber reports whether s is exactly a number in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
