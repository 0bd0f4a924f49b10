package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
)

// tx runs the API's tx body, read from a file or stdin, through the
// client's typed ops, and prints the results.
func (a *app) tx(ctx context.Context, args []string) error {
	cmd, fs := a.cmd("tx")
	var w writeOpts
	w.register(fs)
	readOnly := fs.Bool("read-only", false, "declare that the tx's sql ops only read (retried like a read)")
	pos, err := a.parse(cmd, fs, args, 1, 2)
	if err != nil {
		return err
	}
	file := ""
	if len(pos) == 2 {
		file = pos[1]
	}
	body, err := a.readInput("tx", file)
	if err != nil {
		return err
	}
	req, err := parseTx(body)
	if err != nil {
		return usagef("tx: %v", err)
	}
	obj, err := a.object(pos[0])
	if err != nil {
		return err
	}
	opts := w.options()
	if *readOnly {
		opts = append(opts, client.ReadOnly())
	}
	if a.stale {
		opts = append(opts, client.Stale())
	}
	res, err := obj.Tx(ctx, req, opts...)
	if err != nil {
		return err
	}
	if a.jsonOut {
		writeJSONLine(a.stdout, txResultJSON(res))
		return nil
	}
	printTxResult(a.stdout, res)
	return nil
}

// strict decodes raw into v, refusing unknown fields and trailing data, as
// the server does.
func strict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// parseTx turns the API's tx body into a client.TxRequest, op by op, so
// that the call goes through the client (retries by op kind, errors).
func parseTx(body []byte) (client.TxRequest, error) {
	var in struct {
		If  []json.RawMessage `json:"if"`
		Ops []json.RawMessage `json:"ops"`
	}
	var req client.TxRequest
	if err := strict(body, &in); err != nil {
		return req, fmt.Errorf("the tx body: %v", err)
	}
	for i, raw := range in.If {
		var c struct {
			Key     string          `json:"key"`
			Version json.RawMessage `json:"version"`
			Exists  *bool           `json:"exists"`
		}
		if err := strict(raw, &c); err != nil {
			return req, fmt.Errorf("condition %d: %v", i, err)
		}
		switch {
		case len(c.Version) > 0 && string(c.Version) != "null":
			var v string
			if json.Unmarshal(c.Version, &v) != nil {
				v = string(c.Version) // a version given as a number
			}
			req.If = append(req.If, client.CondVersion(c.Key, client.Version(v)))
		case c.Exists != nil && *c.Exists:
			req.If = append(req.If, client.CondExists(c.Key))
		case c.Exists != nil:
			req.If = append(req.If, client.CondAbsent(c.Key))
		default:
			return req, fmt.Errorf(`condition %d: needs "version" or "exists"`, i)
		}
	}
	for i, raw := range in.Ops {
		op, err := parseOp(raw)
		if err != nil {
			return req, fmt.Errorf("op %d: %v", i, err)
		}
		req.Ops = append(req.Ops, op)
	}
	return req, nil
}

func parseOp(raw json.RawMessage) (client.Op, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return client.Op{}, fmt.Errorf("an op is a JSON object: %v", err)
	}
	if _, ok := m["sql"]; ok {
		var s struct {
			SQL    string            `json:"sql"`
			Params []json.RawMessage `json:"params"`
		}
		if err := strict(raw, &s); err != nil {
			return client.Op{}, fmt.Errorf("sql: %v", err)
		}
		args, err := jsonParams(s.Params)
		if err != nil {
			return client.Op{}, err
		}
		return client.OpSQL(s.SQL, args...), nil
	}
	if len(m) != 1 {
		return client.Op{}, fmt.Errorf("an op has exactly one name (get, put, delete, incr, list, sql, getAlarm, setAlarm, deleteAlarm, deleteAll)")
	}
	for name, arg := range m {
		return parseNamedOp(name, arg)
	}
	panic("unreachable")
}

func parseNamedOp(name string, arg json.RawMessage) (client.Op, error) {
	fail := func(err error) (client.Op, error) { return client.Op{}, fmt.Errorf("%s: %v", name, err) }
	switch name {
	case "get", "delete":
		var keys []string
		if err := strict(arg, &keys); err != nil {
			return fail(err)
		}
		if name == "get" {
			return client.OpGet(keys...), nil
		}
		return client.OpDelete(keys...), nil
	case "put":
		entries, err := parsePuts(arg)
		if err != nil {
			return fail(err)
		}
		return client.OpPutMany(entries), nil
	case "incr":
		var in struct {
			Key string      `json:"key"`
			By  json.Number `json:"by"`
		}
		if err := strict(arg, &in); err != nil {
			return fail(err)
		}
		by := in.By.String()
		if by == "" {
			return client.OpIncr(in.Key, 1), nil
		}
		if n, err := strconv.ParseInt(by, 10, 64); err == nil {
			return client.OpIncr(in.Key, n), nil
		}
		f, err := strconv.ParseFloat(by, 64)
		if err != nil {
			return fail(fmt.Errorf("by: %v", err))
		}
		return client.OpIncrFloat(in.Key, f), nil
	case "list":
		var l struct {
			Prefix     string `json:"prefix"`
			Start      string `json:"start"`
			StartAfter string `json:"startAfter"`
			End        string `json:"end"`
			Reverse    bool   `json:"reverse"`
			Limit      int    `json:"limit"`
			Cursor     string `json:"cursor"`
			KeysOnly   bool   `json:"keysOnly"`
		}
		if err := strict(arg, &l); err != nil {
			return fail(err)
		}
		return client.OpList(client.ListOptions(l)), nil
	case "getAlarm", "deleteAlarm":
		var empty struct{}
		if err := strict(arg, &empty); err != nil {
			return fail(err)
		}
		if name == "getAlarm" {
			return client.OpGetAlarm(), nil
		}
		return client.OpDeleteAlarm(), nil
	case "setAlarm":
		var in struct {
			ScheduledTime *int64 `json:"scheduledTime"`
		}
		if err := strict(arg, &in); err != nil {
			return fail(err)
		}
		if in.ScheduledTime == nil {
			return fail(fmt.Errorf(`needs "scheduledTime" (milliseconds since the epoch)`))
		}
		return client.OpSetAlarm(time.UnixMilli(*in.ScheduledTime)), nil
	case "deleteAll":
		var in struct {
			Alarm bool `json:"alarm"`
		}
		if err := strict(arg, &in); err != nil {
			return fail(err)
		}
		return client.OpDeleteAll(in.Alarm), nil
	}
	return client.Op{}, fmt.Errorf("unknown op %q", name)
}

// parsePuts reads a put op's object of key → JSON value. The values pass
// through as raw JSON ({"valueBase64": …} included, which the server
// stores as bytes); a key given twice is refused, as the server does.
func parsePuts(arg json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(arg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("put takes an object of key → value")
	}
	out := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %q is given twice", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonParams turns SQL parameters in the API's JSON into the Go values the
// client binds the same way: numbers stay json.Number (an integer stays an
// INTEGER, 1.0 a REAL), {"valueBase64": …} becomes []byte.
func jsonParams(raws []json.RawMessage) ([]any, error) {
	args := make([]any, 0, len(raws))
	for i, raw := range raws {
		v, err := jsonParam(raw)
		if err != nil {
			return nil, fmt.Errorf("parameter %d: %v", i+1, err)
		}
		args = append(args, v)
	}
	return args, nil
}

func jsonParam(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch raw[0] {
	case 'n', 't', 'f', '"':
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return v, nil
	case '{':
		var m map[string]string
		b64, ok := "", false
		if err := json.Unmarshal(raw, &m); err == nil && len(m) == 1 {
			b64, ok = m["valueBase64"]
		}
		if !ok {
			return nil, fmt.Errorf(`an object parameter must be {"valueBase64": "…"}`)
		}
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("valueBase64: %v", err)
		}
		return b, nil
	}
	if !json.Valid(raw) || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return nil, fmt.Errorf("%.40s is not a SQL value (number, string, true, false, null or {\"valueBase64\": …})", raw)
	}
	return json.Number(raw), nil
}

// cliParam reads a SQL parameter given on the command line: JSON numbers,
// true, false, null, "quoted" strings and {"valueBase64": …} as what they
// say; anything else as text.
func cliParam(s string) any {
	t := strings.TrimSpace(s)
	if t == "" {
		return s
	}
	if json.Valid([]byte(t)) {
		switch t[0] {
		case '[':
			return s
		case '{':
			if v, err := jsonParam(json.RawMessage(t)); err == nil {
				return v
			}
			return s
		}
		if v, err := jsonParam(json.RawMessage(t)); err == nil {
			return v
		}
	}
	return s
}

// txResultJSON is a tx's answer as the API writes it.
func txResultJSON(res *client.TxResult) any {
	results := make([]any, len(res.Results))
	for i, r := range res.Results {
		switch r.Kind {
		case client.KindGet:
			entries := make(map[string]entryJSON, len(r.Entries))
			for k, v := range r.Entries {
				entries[k] = toEntryJSON("", v)
			}
			results[i] = map[string]any{"entries": entries}
		case client.KindPut:
			results[i] = map[string]int{"written": r.Written}
		case client.KindDelete:
			results[i] = map[string]int{"deleted": r.Deleted}
		case client.KindIncr:
			results[i] = map[string]json.Number{"value": r.Number}
		case client.KindList:
			results[i] = toListJSON(r.List.Entries, r.List.Cursor)
		case client.KindSQL:
			results[i] = toRowsJSON(r.Rows)
		case client.KindGetAlarm:
			results[i] = map[string]*int64{"scheduledTime": msOrNull(r.Alarm)}
		default:
			results[i] = struct{}{}
		}
	}
	return struct {
		Results []any          `json:"results"`
		Version client.Version `json:"version"`
	}{results, res.Version}
}

// printTxResult writes a tx's results for people, one op after another.
func printTxResult(w io.Writer, res *client.TxResult) {
	for i, r := range res.Results {
		fmt.Fprintf(w, "op %d %s:", i, r.Kind)
		switch r.Kind {
		case client.KindGet:
			if len(r.Entries) == 0 {
				fmt.Fprint(w, " no keys found")
			}
			fmt.Fprintln(w)
			rows := [][]string{}
			for k, v := range r.Entries {
				rows = append(rows, []string{k, string(v.Version), showValue(v, 80)})
			}
			if len(rows) > 0 {
				sortRows(rows)
				table(w, []string{"KEY", "VERSION", "VALUE"}, rows)
			}
		case client.KindPut:
			fmt.Fprintf(w, " %d written\n", r.Written)
		case client.KindDelete:
			fmt.Fprintf(w, " %d deleted\n", r.Deleted)
		case client.KindIncr:
			fmt.Fprintf(w, " %s\n", r.Number)
		case client.KindList:
			fmt.Fprintf(w, " %d keys\n", len(r.List.Entries))
			rows := [][]string{}
			for _, e := range r.List.Entries {
				rows = append(rows, []string{e.Key, string(e.Version), showValue(e.Value, 80)})
			}
			if len(rows) > 0 {
				table(w, []string{"KEY", "VERSION", "VALUE"}, rows)
			}
			if r.List.Cursor != "" {
				fmt.Fprintf(w, "more keys after cursor %s\n", r.List.Cursor)
			}
		case client.KindSQL:
			fmt.Fprintln(w)
			printRows(w, r.Rows)
		case client.KindGetAlarm:
			if r.Alarm.IsZero() {
				fmt.Fprintln(w, " no alarm")
			} else {
				fmt.Fprintf(w, " %s\n", showTime(r.Alarm))
			}
		default:
			fmt.Fprintln(w, " done")
		}
	}
	fmt.Fprintf(w, "version %s\n", res.Version)
}

func sortRows(rows [][]string) {
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
}
