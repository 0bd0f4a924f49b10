package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cairndb/cairn/objectstore"
)

// txRequest is the JSON body of POST …/tx.
type txRequest struct {
	If  []json.RawMessage `json:"if"`
	Ops []json.RawMessage `json:"ops"`
}

type condJSON struct {
	Key     string          `json:"key"`
	Version json.RawMessage `json:"version"`
	Exists  *bool           `json:"exists"`
}

type incrJSON struct {
	Key string      `json:"key"`
	By  json.Number `json:"by"`
}

// listOptionsJSON is the list op's options; the list endpoint takes the same
// names as query parameters.
type listOptionsJSON struct {
	Prefix     string `json:"prefix"`
	Start      string `json:"start"`
	StartAfter string `json:"startAfter"`
	End        string `json:"end"`
	Reverse    bool   `json:"reverse"`
	Limit      *int   `json:"limit"`
	Cursor     string `json:"cursor"`
	KeysOnly   bool   `json:"keysOnly"`
}

type deleteAllJSON struct {
	Alarm bool `json:"alarm"`
}

// strictUnmarshal decodes raw into v, refusing unknown fields and trailing
// data.
func strictUnmarshal(raw []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badRequest(codeInvalidJSON, what+": "+err.Error())
	}
	// Not dec.More(): it reports false for a trailing ']' or '}', which
	// would let `{…}]` through. Only JSON whitespace may follow.
	if len(bytes.Trim(raw[dec.InputOffset():], " \t\r\n")) != 0 {
		return badRequest(codeInvalidJSON, what+": unexpected data after the JSON value")
	}
	return nil
}

// decodeTx parses a tx body into an objectstore.Tx and checks its limits.
func decodeTx(body []byte) (*objectstore.Tx, error) {
	var req txRequest
	if err := strictUnmarshal(body, &req, "the tx body"); err != nil {
		return nil, err
	}
	if len(req.Ops) > maxTxOps {
		return nil, newError(413, codeTooLarge, fmt.Sprintf("a tx has at most %d ops, got %d", maxTxOps, len(req.Ops)))
	}
	if len(req.If) > objectstore.MaxKeysPerOp {
		return nil, newError(413, codeTooLarge, fmt.Sprintf("a tx has at most %d conditions, got %d", objectstore.MaxKeysPerOp, len(req.If)))
	}
	tx := &objectstore.Tx{}
	for i, raw := range req.If {
		c, err := decodeCond(raw, i)
		if err != nil {
			return nil, err
		}
		tx.If = append(tx.If, c)
	}
	for i, raw := range req.Ops {
		op, err := decodeOp(raw, i)
		if err != nil {
			return nil, err
		}
		tx.Ops = append(tx.Ops, op)
	}
	if err := tx.Validate(); err != nil {
		return nil, err
	}
	return tx, nil
}

func decodeCond(raw json.RawMessage, i int) (objectstore.Cond, error) {
	var c condJSON
	what := fmt.Sprintf("condition %d", i)
	if err := strictUnmarshal(raw, &c, what); err != nil {
		return objectstore.Cond{}, err
	}
	out := objectstore.Cond{Key: c.Key}
	hasVersion := len(c.Version) > 0 && string(c.Version) != "null"
	switch {
	case hasVersion && c.Exists != nil && !*c.Exists:
		return out, badRequest(codeInvalidParameter, what+": a version and exists:false cannot both hold")
	case hasVersion:
		v, err := parseVersionJSON(c.Version)
		if err != nil {
			return out, badRequest(codeInvalidParameter, what+": "+err.Error())
		}
		out.Kind, out.Version = objectstore.CondVersionIs, v
	case c.Exists != nil && *c.Exists:
		out.Kind = objectstore.CondExists
	case c.Exists != nil:
		out.Kind = objectstore.CondMissing
	default:
		return out, badRequest(codeInvalidParameter, what+": needs \"version\" or \"exists\"")
	}
	return out, nil
}

// parseVersionJSON reads a version given as a decimal string (as the API
// writes them) or a JSON number.
func parseVersionJSON(raw json.RawMessage) (uint64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version must be a decimal string, got %s", truncate(string(raw)))
	}
	return v, nil
}

// decodeOp parses one op: a JSON object with exactly one op name.
func decodeOp(raw json.RawMessage, i int) (objectstore.Op, error) {
	what := fmt.Sprintf("op %d", i)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return objectstore.Op{}, badRequest(codeInvalidJSON, what+": an op is a JSON object: "+err.Error())
	}
	if sqlText, ok := m["sql"]; ok {
		return decodeSQLOp(m, sqlText, what)
	}
	if len(m) != 1 {
		return objectstore.Op{}, badRequest(codeInvalidParameter, what+": an op has exactly one name (get, put, delete, incr, list, deleteAll, …)")
	}
	var name string
	var arg json.RawMessage
	for name, arg = range m {
	}
	return decodeNamedOp(name, arg, what)
}

func decodeNamedOp(name string, arg json.RawMessage, what string) (objectstore.Op, error) {
	what += " (" + name + ")"
	switch name {
	case "get", "delete":
		op := objectstore.Op{Kind: objectstore.OpGet}
		if name == "delete" {
			op.Kind = objectstore.OpDelete
		}
		if err := strictUnmarshal(arg, &op.Keys, what); err != nil {
			return op, err
		}
		return op, nil
	case "put":
		puts, err := decodePuts(arg, what)
		return objectstore.Op{Kind: objectstore.OpPut, Puts: puts}, err
	case "incr":
		var in incrJSON
		if err := strictUnmarshal(arg, &in, what); err != nil {
			return objectstore.Op{}, err
		}
		by := in.By.String()
		if by == "" {
			by = "1"
		}
		return objectstore.Op{Kind: objectstore.OpIncr, Key: in.Key, By: by}, nil
	case "list":
		var l listOptionsJSON
		if err := strictUnmarshal(arg, &l, what); err != nil {
			return objectstore.Op{}, err
		}
		opts, err := l.options()
		return objectstore.Op{Kind: objectstore.OpList, List: opts}, err
	case "deleteAll":
		var d deleteAllJSON
		if err := strictUnmarshal(arg, &d, what); err != nil {
			return objectstore.Op{}, err
		}
		return objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: d.Alarm}, nil
	case "getAlarm", "deleteAlarm":
		var empty struct{}
		if err := strictUnmarshal(arg, &empty, what); err != nil {
			return objectstore.Op{}, err
		}
		if name == "getAlarm" {
			return objectstore.Op{Kind: objectstore.OpGetAlarm}, nil
		}
		return objectstore.Op{Kind: objectstore.OpDeleteAlarm}, nil
	case "setAlarm":
		var in struct {
			ScheduledTime *int64 `json:"scheduledTime"`
		}
		if err := strictUnmarshal(arg, &in, what); err != nil {
			return objectstore.Op{}, err
		}
		if in.ScheduledTime == nil {
			return objectstore.Op{}, badRequest(codeInvalidParameter, what+`: needs "scheduledTime" (milliseconds since the epoch)`)
		}
		return objectstore.Op{Kind: objectstore.OpSetAlarm, ScheduledTime: *in.ScheduledTime}, nil
	}
	return objectstore.Op{}, badRequest(codeInvalidParameter, what+": unknown op")
}

// decodeSQLOp reads {"sql": "…", "params": […]}.
func decodeSQLOp(m map[string]json.RawMessage, sqlText json.RawMessage, what string) (objectstore.Op, error) {
	for k := range m {
		if k != "sql" && k != "params" {
			return objectstore.Op{}, badRequest(codeInvalidParameter, what+": an sql op has only \"sql\" and \"params\", not "+strconv.Quote(k))
		}
	}
	var text string
	if err := json.Unmarshal(sqlText, &text); err != nil {
		return objectstore.Op{}, badRequest(codeInvalidJSON, what+": sql must be a string")
	}
	var params []json.RawMessage
	if raw, ok := m["params"]; ok {
		if err := json.Unmarshal(raw, &params); err != nil {
			return objectstore.Op{}, badRequest(codeInvalidJSON, what+": params must be an array")
		}
	}
	return sqlOp(text, params, what)
}

// decodePuts reads a put op's object in document order, refusing a key
// given twice.
func decodePuts(arg json.RawMessage, what string) ([]objectstore.Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(arg))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, badRequest(codeInvalidJSON, what+": put takes an object of key → value")
	}
	var puts []objectstore.Entry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badRequest(codeInvalidJSON, what+": "+err.Error())
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, badRequest(codeInvalidParameter, what+": key "+strconv.Quote(truncate(key))+" is given twice")
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, badRequest(codeInvalidJSON, what+": "+err.Error())
		}
		v, err := valueFromJSON(raw)
		if err != nil {
			return nil, err
		}
		puts = append(puts, objectstore.Entry{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, badRequest(codeInvalidJSON, what+": "+err.Error())
	}
	return puts, nil
}

func (l listOptionsJSON) options() (objectstore.ListOptions, error) {
	o := objectstore.ListOptions{
		Prefix: l.Prefix, Start: l.Start, StartAfter: l.StartAfter, End: l.End,
		Reverse: l.Reverse, Cursor: l.Cursor, KeysOnly: l.KeysOnly,
	}
	if l.Limit != nil {
		if *l.Limit < 1 || *l.Limit > objectstore.MaxListLimit {
			return o, badRequest(codeInvalidParameter, fmt.Sprintf("list: limit must be between 1 and %d", objectstore.MaxListLimit))
		}
		o.Limit = *l.Limit
	}
	return o, o.Validate()
}

// renderTx renders a tx's results, one per op.
func renderTx(tx *objectstore.Tx, res *objectstore.TxResult) map[string]any {
	results := make([]any, len(res.Results))
	for i, r := range res.Results {
		switch r.Kind {
		case objectstore.OpGet:
			entries := map[string]entryJSON{}
			for _, e := range r.Entries {
				je := renderEntry("", e.Value, false)
				entries[e.Key] = je
			}
			results[i] = map[string]any{"entries": entries}
		case objectstore.OpPut:
			results[i] = map[string]int{"written": r.Count}
		case objectstore.OpDelete:
			results[i] = map[string]int{"deleted": r.Count}
		case objectstore.OpIncr:
			results[i] = map[string]json.RawMessage{"value": json.RawMessage(r.Number)}
		case objectstore.OpList:
			results[i] = renderList(r.List, tx.Ops[i].List.KeysOnly)
		case objectstore.OpSQL:
			results[i] = renderSQLResult(r.SQL)
		case objectstore.OpGetAlarm:
			var a alarmJSON
			if r.HasAlarm {
				t := r.ScheduledTime
				a.ScheduledTime = &t
			}
			results[i] = a
		default:
			results[i] = struct{}{}
		}
	}
	return map[string]any{"results": results, "version": version(res.Version)}
}
