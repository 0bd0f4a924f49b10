package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cairndb/cairn/client"
)

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(w, `{"code":"internal","detail":%q}`+"\n", err.Error())
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// table writes rows under a header, columns aligned.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	seps := make([]string, len(header))
	for i, h := range header {
		seps[i] = strings.Repeat("-", max(utf8.RuneCountInString(h), 1))
	}
	fmt.Fprintln(tw, strings.Join(seps, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// A tab or newline would break the alignment.
			cells[i] = strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

// entryJSON is a value as the API's listings show it.
type entryJSON struct {
	Key         string          `json:"key,omitempty"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 *string         `json:"valueBase64,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Version     client.Version  `json:"version"`
}

// toEntryJSON renders v (under key, "" in a tx get, where the key is the
// map's) as the API does: JSON as "value", other bytes as "valueBase64"
// with their content type unless it is octet-stream. A keys-only entry has
// neither.
func toEntryJSON(key string, v client.Value) entryJSON {
	e := entryJSON{Key: key, Version: v.Version}
	switch {
	case v.IsJSON():
		e.Value = json.RawMessage(v.Data)
	case v.Data == nil && v.ContentType == "":
		// keys only
	default:
		s := base64.StdEncoding.EncodeToString(v.Data)
		e.ValueBase64 = &s
		if v.ContentType != client.ContentTypeBytes {
			e.ContentType = v.ContentType
		}
	}
	return e
}

// listJSON is a page of a listing as the API shows it.
type listJSON struct {
	Entries []entryJSON `json:"entries"`
	Cursor  *string     `json:"cursor"`
}

func toListJSON(entries []client.Entry, cursor string) listJSON {
	out := listJSON{Entries: make([]entryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, toEntryJSON(e.Key, e.Value))
	}
	if cursor != "" {
		out.Cursor = &cursor
	}
	return out
}

// showValue is a value for a table cell: JSON as is, text as is, other
// bytes as base64, shortened to width runes (0: whole).
func showValue(v client.Value, width int) string {
	var s string
	switch {
	case v.IsJSON():
		var buf bytes.Buffer
		if json.Compact(&buf, v.Data) == nil {
			s = buf.String()
		} else {
			s = string(v.Data)
		}
	case v.Data == nil && v.ContentType == "":
		return ""
	case utf8.Valid(v.Data) && printable(v.Data):
		s = string(v.Data)
	default:
		s = "base64:" + base64.StdEncoding.EncodeToString(v.Data)
	}
	if width > 0 && utf8.RuneCountInString(s) > width {
		r := []rune(s)
		s = string(r[:width-1]) + "…"
	}
	return s
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// rowsJSON is one SQL result set as the API shows it.
type rowsJSON struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	RowsRead    int64    `json:"rowsRead"`
	RowsWritten int64    `json:"rowsWritten"`
}

func toRowsJSON(r *client.Rows) rowsJSON {
	out := rowsJSON{Columns: r.Columns(), Rows: make([][]any, 0, r.Len()), RowsRead: r.RowsRead, RowsWritten: r.RowsWritten}
	if out.Columns == nil {
		out.Columns = []string{}
	}
	for _, row := range r.Raw() {
		cells := make([]any, len(row))
		for i, c := range row {
			cells[i] = cellJSON(c)
		}
		out.Rows = append(out.Rows, cells)
	}
	return out
}

// cellJSON is a cell as the API writes it: a BLOB as {"valueBase64": …}.
func cellJSON(c any) any {
	if b, ok := c.([]byte); ok {
		return map[string]string{"valueBase64": base64.StdEncoding.EncodeToString(b)}
	}
	return c
}

// showCell is a cell for a table: NULL, numbers, text, a BLOB as x'…'.
func showCell(c any) string {
	switch v := c.(type) {
	case nil:
		return "NULL"
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(c)
}

// printRows writes a result set for people: a table if it has columns,
// else the number of rows written (nothing if none).
func printRows(w io.Writer, r *client.Rows) {
	if len(r.Columns()) == 0 {
		if r.RowsWritten > 0 {
			fmt.Fprintf(w, "(%d %s written)\n", r.RowsWritten, plural(r.RowsWritten, "row", "rows"))
		}
		return
	}
	rows := make([][]string, 0, r.Len())
	for _, row := range r.Raw() {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = showCell(c)
		}
		rows = append(rows, cells)
	}
	table(w, r.Columns(), rows)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// showTime is a time for people: RFC 3339 with milliseconds, local zone,
// and how far away it is.
func showTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t).Round(time.Millisecond)
	rel := "in " + d.String()
	if d < 0 {
		rel = (-d).String() + " ago"
	}
	return t.Local().Format("2006-01-02T15:04:05.000Z07:00") + " (" + rel + ")"
}

// msOrNull is a time as the API writes it: milliseconds, or null.
func msOrNull(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
