package client

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Statement is one SQL statement and its arguments, bound by position to
// its "?" parameters.
type Statement struct {
	SQL  string
	Args []any
}

// SQL runs one statement on the object's SQLite database (Durable Objects'
// sql.exec) and returns its result. A string without arguments may hold
// several statements separated by ";"; the result is the last one's.
//
// Arguments bind as: nil as NULL; bool as 1/0; signed and unsigned
// integers as INTEGER; float32/float64 as REAL (even when integral);
// string as TEXT; []byte as BLOB; a pointer as what it points to, or NULL
// if nil; a driver.Valuer (sql.NullString, sql.Null[T], …) as its Value.
//
// Options go among args, anywhere; they are not bound: IdempotencyKey,
// ReadOnly, Stale, as for Batch
// (o.SQL(ctx, "INSERT INTO t VALUES (?)", 1, client.IdempotencyKey(k))).
//
// A statement the client can tell only reads (see ReadOnly) is a read,
// retried like a GET. Any other may write, so it is retried after a lost
// answer only with an Idempotency-Key (the option, or WithIdempotency);
// use Query for other statements that only read.
func (o *Object) SQL(ctx context.Context, query string, args ...any) (*Rows, error) {
	return o.sql1(ctx, "SQL", query, args, false, unknownOpts)
}

// Query is SQL for a statement that only reads (SELECT, PRAGMA
// user_version): it is retried like a GET, as if declared ReadOnly. The
// option Stale may go among args.
func (o *Object) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	return o.sql1(ctx, "Query", query, args, true, readOpts)
}

// sql1 runs one statement, taking the options among args out of them.
func (o *Object) sql1(ctx context.Context, call, query string, args []any, readOnly bool, allowed []string) (*Rows, error) {
	var opts []CallOption
	bind := args
	for i, a := range args {
		if f, ok := a.(CallOption); ok {
			if opts == nil {
				bind = slices.Clone(args[:i])
			}
			opts = append(opts, f)
		} else if opts != nil {
			bind = append(bind, a)
		}
	}
	co, err := applyOptions(call, opts, allowed...)
	if err != nil {
		return nil, err
	}
	co.readOnly = co.readOnly || readOnly
	st, err := statementJSON(Statement{SQL: query, Args: bind})
	if err != nil {
		return nil, err
	}
	rows, err := o.runSQL(ctx, call, st, readsOnly(query), co)
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// Batch runs statements as one transaction: all are applied or none (a
// failing statement rolls back the batch). It returns one result per
// statement. A batch of statements that only read is a read on the server;
// the client retries it like a GET if it can tell (see ReadOnly) or if it
// is declared ReadOnly. Options: IdempotencyKey, ReadOnly, Stale.
func (o *Object) Batch(ctx context.Context, stmts []Statement, opts ...CallOption) ([]*Rows, error) {
	co, err := applyOptions("Batch", opts, unknownOpts...)
	if err != nil {
		return nil, err
	}
	body := struct {
		Batch []stmtJSON `json:"batch"`
	}{Batch: make([]stmtJSON, 0, len(stmts))}
	reads := true
	for _, s := range stmts {
		st, err := statementJSON(s)
		if err != nil {
			return nil, err
		}
		body.Batch = append(body.Batch, st)
		reads = reads && readsOnly(s.SQL)
	}
	return o.runSQL(ctx, "Batch", body, reads, co)
}

// runSQL sends body to the object's /sql: as a read, without a generated
// Idempotency-Key, if reads (the client can tell every statement only
// reads), else as a write.
func (o *Object) runSQL(ctx context.Context, call string, body any, reads bool, co callOptions) ([]*Rows, error) {
	cls := classWrite
	if reads {
		cls = classRead
	}
	r := o.client().newRequest(http.MethodPost, o.path()+"/sql", cls, co)
	if err := r.setJSON(body); err != nil {
		return nil, err
	}
	var out struct {
		Results      []json.RawMessage `json:"results"`
		DatabaseSize int64             `json:"databaseSize"`
	}
	if _, err := o.client().call(ctx, r, &out); err != nil {
		return nil, err
	}
	rows := make([]*Rows, len(out.Results))
	for i, raw := range out.Results {
		var err error
		if rows[i], err = decodeRows(raw, out.DatabaseSize); err != nil {
			return nil, fmt.Errorf("client: %s: result %d: %w", call, i, err)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("client: %s: the answer has no result", call)
	}
	return rows, nil
}

type stmtJSON struct {
	SQL    string            `json:"sql"`
	Params []json.RawMessage `json:"params,omitempty"`
}

func statementJSON(s Statement) (stmtJSON, error) {
	out := stmtJSON{SQL: s.SQL}
	for i, a := range s.Args {
		p, err := encodeParam(a)
		if err != nil {
			return out, invalidCall("client: SQL argument %d: %w", i+1, err)
		}
		out.Params = append(out.Params, p)
	}
	return out, nil
}

// readsOnly reports whether the client can tell that query only reads,
// which makes it safe to send again without an Idempotency-Key. Every doubt
// is a "no", which costs a generated key at most; a wrong "yes" could let a
// retry apply a write twice. query must be one statement (a ";" only at the
// end) that, past leading comments, begins with
//
//   - SELECT or VALUES;
//   - WITH, without the words INSERT, UPDATE, DELETE or REPLACE anywhere;
//   - PRAGMA, without an argument ("=" or "("): Cairn allows only pragmas
//     that read when given none.
func readsOnly(query string) bool {
	s := strings.TrimRight(skipComments(query), " \t\r\n\f;")
	if strings.Contains(s, ";") {
		return false
	}
	n := strings.IndexFunc(s, notWordRune)
	if n < 0 {
		n = len(s)
	}
	first, rest := strings.ToUpper(s[:n]), s[n:]
	switch first {
	case "SELECT", "VALUES":
		return true
	case "WITH":
		for _, w := range strings.FieldsFunc(rest, notWordRune) {
			switch strings.ToUpper(w) {
			case "INSERT", "UPDATE", "DELETE", "REPLACE":
				return false
			}
		}
		return true
	case "PRAGMA":
		return !strings.ContainsAny(rest, "=(")
	}
	return false
}

// skipComments drops the blanks and SQL comments that begin s.
func skipComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return ""
			}
			s = s[2+i+2:]
		default:
			return s
		}
	}
}

func notWordRune(r rune) bool {
	return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
}

// floatJSON writes f so that the server reads it as a REAL: with a decimal
// point or an exponent (json.Marshal writes 3.0 as 3, an INTEGER).
func floatJSON(f float64) (json.RawMessage, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v cannot be sent (JSON has no NaN or infinity)", f)
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".eE") {
		s += ".0"
	}
	return json.RawMessage(s), nil
}

var valuerType = reflect.TypeFor[driver.Valuer]()

// encodeParam encodes one SQL argument as the API binds it.
func encodeParam(a any) (json.RawMessage, error) {
	switch v := a.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case bool:
		return json.Marshal(v)
	case string:
		return json.Marshal(v)
	case []byte:
		if v == nil {
			return json.RawMessage("null"), nil
		}
		return json.Marshal(map[string]string{"valueBase64": base64.StdEncoding.EncodeToString(v)})
	case int64:
		return json.RawMessage(strconv.FormatInt(v, 10)), nil
	case float64:
		return floatJSON(v)
	case json.Number:
		if _, err := v.Float64(); err != nil {
			return nil, fmt.Errorf("json.Number %q is not a number", v)
		}
		return json.RawMessage(v.String()), nil
	case time.Time:
		return nil, errors.New("time.Time has no SQLite type: bind t.UnixMilli() or a formatted string")
	}
	rv := reflect.ValueOf(a)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return json.RawMessage("null"), nil
	}
	if rv.Type().Implements(valuerType) {
		dv, err := a.(driver.Valuer).Value()
		if err != nil {
			return nil, err
		}
		if _, again := dv.(driver.Valuer); again {
			return nil, fmt.Errorf("%T.Value returned another driver.Valuer", a)
		}
		return encodeParam(dv)
	}
	switch rv.Kind() {
	case reflect.Pointer:
		return encodeParam(rv.Elem().Interface())
	case reflect.Bool:
		return json.Marshal(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return json.RawMessage(strconv.FormatInt(rv.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit SQLite's 64-bit signed INTEGER", u)
		}
		return json.RawMessage(strconv.FormatUint(u, 10)), nil
	case reflect.Float32, reflect.Float64:
		return floatJSON(rv.Float())
	case reflect.String:
		return json.Marshal(rv.String())
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return encodeParam(rv.Bytes())
		}
	}
	return nil, fmt.Errorf("%T has no SQLite type (want nil, bool, integers, floats, string, []byte or a driver.Valuer)", a)
}

// Rows is the result of one SQL statement, read in full. Iterate it like
// database/sql's: for rows.Next() { rows.Scan(&a, &b) }.
//
// Cells are Go values: INTEGER is int64, REAL float64, TEXT string, BLOB
// []byte, NULL nil. (The API writes a REAL that is integral, such as 3.0,
// as 3, which reads back as int64 3; scanning into a *float64 gives 3.0.)
type Rows struct {
	// RowsRead and RowsWritten are SQLite's counts for the statement.
	RowsRead, RowsWritten int64
	// DatabaseSize is the object's database size in bytes after the
	// request (0 in a tx result).
	DatabaseSize int64

	columns []string
	rows    [][]any
	pos     int // rows[pos-1] is the current row; 0 before Next
}

type rowsJSON struct {
	Columns     []string            `json:"columns"`
	Rows        [][]json.RawMessage `json:"rows"`
	RowsRead    int64               `json:"rowsRead"`
	RowsWritten int64               `json:"rowsWritten"`
}

func decodeRows(raw json.RawMessage, dbSize int64) (*Rows, error) {
	var in rowsJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	r := &Rows{RowsRead: in.RowsRead, RowsWritten: in.RowsWritten, DatabaseSize: dbSize,
		columns: in.Columns, rows: make([][]any, len(in.Rows))}
	for i, row := range in.Rows {
		cells := make([]any, len(row))
		for j, c := range row {
			v, err := decodeCell(c)
			if err != nil {
				return nil, fmt.Errorf("row %d, column %d: %w", i, j, err)
			}
			cells[j] = v
		}
		r.rows[i] = cells
	}
	return r, nil
}

// decodeCell turns one JSON cell into its Go value.
func decodeCell(c json.RawMessage) (any, error) {
	c = bytes.TrimSpace(c)
	if len(c) == 0 {
		return nil, errors.New("empty cell")
	}
	switch c[0] {
	case 'n':
		if string(c) == "null" {
			return nil, nil
		}
		return nil, fmt.Errorf("cell %.40s is not a value", c)
	case 't', 'f':
		var b bool
		err := json.Unmarshal(c, &b)
		return b, err
	case '"':
		var s string
		err := json.Unmarshal(c, &s)
		return s, err
	case '{':
		var m map[string]string
		if err := json.Unmarshal(c, &m); err != nil || len(m) != 1 {
			return nil, fmt.Errorf("an object cell must be {\"valueBase64\": …}, got %.40s", c)
		}
		b64, ok := m["valueBase64"]
		if !ok {
			return nil, fmt.Errorf("an object cell must be {\"valueBase64\": …}, got %.40s", c)
		}
		return base64.StdEncoding.DecodeString(b64)
	}
	if n, err := strconv.ParseInt(string(c), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(c), 64)
	if err != nil {
		return nil, fmt.Errorf("cell %.40s is not a value", c)
	}
	return f, nil
}

// Columns returns the names of the result's columns.
func (r *Rows) Columns() []string { return r.columns }

// Len returns the number of rows.
func (r *Rows) Len() int { return len(r.rows) }

// Next moves to the next row, reporting whether there is one.
func (r *Rows) Next() bool {
	if r.pos < len(r.rows) {
		r.pos++
		return true
	}
	r.pos = len(r.rows) + 1
	return false
}

// Scan copies the current row's cells into dest, one per column, as
// database/sql does: into *int64 (or any integer type, range-checked),
// *float64, *string, *[]byte, *bool (from 0/1), *any, an sql.Scanner
// (sql.NullString, sql.Null[T], …), or a **T, which is set to nil for NULL.
// NULL into any other destination is an error. A nil dest skips its column.
func (r *Rows) Scan(dest ...any) error {
	if r.pos < 1 || r.pos > len(r.rows) {
		return errors.New("client: Rows.Scan called without a successful Next")
	}
	return r.scanRow(r.rows[r.pos-1], dest)
}

func (r *Rows) scanRow(row []any, dest []any) error {
	if len(dest) != len(row) {
		return fmt.Errorf("client: Scan: %d destinations for %d columns", len(dest), len(row))
	}
	for i, d := range dest {
		if err := convertAssign(d, row[i]); err != nil {
			name := ""
			if i < len(r.columns) {
				name = r.columns[i]
			}
			return fmt.Errorf("client: Scan: column %d (%q): %w", i, name, err)
		}
	}
	return nil
}

// One scans the only row of the result into dest (Durable Objects'
// cursor.one()): ErrNoRows if there is none, an error if there are more.
func (r *Rows) One(dest ...any) error {
	switch len(r.rows) {
	case 0:
		return ErrNoRows
	case 1:
		return r.scanRow(r.rows[0], dest)
	}
	return fmt.Errorf("client: One: the result has %d rows", len(r.rows))
}

// Values returns the current row's cells.
func (r *Rows) Values() []any {
	if r.pos < 1 || r.pos > len(r.rows) {
		return nil
	}
	return r.rows[r.pos-1]
}

// Raw returns every row's cells (Durable Objects' cursor.raw()).
func (r *Rows) Raw() [][]any { return r.rows }

var scannerType = reflect.TypeFor[sql.Scanner]()

// convertAssign stores src (int64, float64, string, []byte, bool or nil)
// in dest.
func convertAssign(dest, src any) error {
	switch d := dest.(type) {
	case nil:
		return nil
	case *any:
		if b, ok := src.([]byte); ok {
			src = bytes.Clone(b)
		}
		*d = src
		return nil
	case sql.Scanner:
		if b, ok := src.([]byte); ok {
			src = bytes.Clone(b)
		}
		return d.Scan(src)
	}
	dv := reflect.ValueOf(dest)
	if dv.Kind() != reflect.Pointer || dv.IsNil() {
		return fmt.Errorf("destination %T is not a non-nil pointer", dest)
	}
	dv = dv.Elem()
	if src == nil {
		switch dv.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
			dv.SetZero()
			return nil
		}
		return fmt.Errorf("NULL cannot go into %T: scan into a pointer (a *%s variable) or an sql.Null", dest, dv.Type())
	}
	if dv.Kind() == reflect.Pointer {
		nv := reflect.New(dv.Type().Elem())
		if err := convertAssign(nv.Interface(), src); err != nil {
			return err
		}
		dv.Set(nv)
		return nil
	}
	if reflect.PointerTo(dv.Type()).Implements(scannerType) {
		return dv.Addr().Interface().(sql.Scanner).Scan(src)
	}
	switch dv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := asInt64(src)
		if err != nil {
			return err
		}
		if dv.OverflowInt(n) {
			return fmt.Errorf("%d overflows %s", n, dv.Type())
		}
		dv.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := asInt64(src)
		if err != nil {
			return err
		}
		if n < 0 || dv.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d overflows %s", n, dv.Type())
		}
		dv.SetUint(uint64(n))
		return nil
	case reflect.Float32, reflect.Float64:
		f, err := asFloat64(src)
		if err != nil {
			return err
		}
		if dv.OverflowFloat(f) {
			return fmt.Errorf("%g overflows %s", f, dv.Type())
		}
		dv.SetFloat(f)
		return nil
	case reflect.String:
		dv.SetString(asString(src))
		return nil
	case reflect.Bool:
		b, err := asBool(src)
		if err != nil {
			return err
		}
		dv.SetBool(b)
		return nil
	case reflect.Slice:
		if dv.Type().Elem().Kind() == reflect.Uint8 {
			var b []byte
			if s, ok := src.([]byte); ok {
				b = bytes.Clone(s)
			} else {
				b = []byte(asString(src))
			}
			dv.SetBytes(b)
			return nil
		}
	}
	return fmt.Errorf("cannot scan %T into %T", src, dest)
}

func asInt64(src any) (int64, error) {
	switch v := src.(type) {
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
			return int64(v), nil
		}
		return 0, fmt.Errorf("%g is not an integer", v)
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case string:
		return strconv.ParseInt(v, 10, 64)
	case []byte:
		return strconv.ParseInt(string(v), 10, 64)
	}
	return 0, fmt.Errorf("cannot convert %T to an integer", src)
}

func asFloat64(src any) (float64, error) {
	switch v := src.(type) {
	case int64:
		return float64(v), nil
	case float64:
		return v, nil
	case string:
		return strconv.ParseFloat(v, 64)
	case []byte:
		return strconv.ParseFloat(string(v), 64)
	}
	return 0, fmt.Errorf("cannot convert %T to a float", src)
}

func asString(src any) string {
	switch v := src.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(src)
}

func asBool(src any) (bool, error) {
	switch v := src.(type) {
	case bool:
		return v, nil
	case int64:
		switch v {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
		return false, fmt.Errorf("%d is not a boolean (0 or 1)", v)
	case string:
		return strconv.ParseBool(v)
	}
	return false, fmt.Errorf("cannot convert %T to a bool", src)
}
