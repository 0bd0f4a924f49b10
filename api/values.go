package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/objectstore"
)

// normalizeContentType maps a request's Content-Type to the one stored:
// any application/json (with or without parameters) is stored as exactly
// "application/json", so JSON bodies show up as JSON in listings; an absent
// one is octet-stream; anything else is kept as sent.
func normalizeContentType(ct string) (string, error) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return objectstore.ContentTypeBytes, nil
	}
	if len(ct) > maxContentTypeLen {
		return "", badRequest(codeInvalidHeader, fmt.Sprintf("Content-Type is at most %d bytes", maxContentTypeLen))
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", badRequest(codeInvalidHeader, "Content-Type is not a media type: "+err.Error())
	}
	if mt == "application/json" {
		return objectstore.ContentTypeJSON, nil
	}
	return ct, nil
}

// valueFromJSON turns a JSON value of a request into a stored value: JSON,
// except an object of exactly the form {"valueBase64": "…"}, which stores
// those bytes.
func valueFromJSON(raw json.RawMessage) (objectstore.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err == nil && len(m) == 1 {
			if b64, ok := m["valueBase64"]; ok {
				var s string
				if err := json.Unmarshal(b64, &s); err != nil {
					return objectstore.Value{}, badRequest(codeInvalidJSON, "valueBase64 must be a string")
				}
				data, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return objectstore.Value{}, badRequest(codeInvalidJSON, "valueBase64 is not base64: "+err.Error())
				}
				return objectstore.Value{Data: data, ContentType: objectstore.ContentTypeBytes}, nil
			}
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return objectstore.Value{}, badRequest(codeInvalidJSON, "a value is not valid JSON: "+err.Error())
	}
	return objectstore.Value{Data: buf.Bytes(), ContentType: objectstore.ContentTypeJSON}, nil
}

// entryJSON is a stored value as a JSON body shows it.
type entryJSON struct {
	Key         string          `json:"key,omitempty"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 *string         `json:"valueBase64,omitempty"`
	ContentType string          `json:"contentType,omitempty"`
	Version     string          `json:"version"`
}

// renderEntry shows v: a JSON value as JSON, anything else as base64 with
// its content type (unless it is plain bytes). A JSON value that is not
// valid JSON (written through the raw endpoint before validation existed,
// or by a client that lied) is shown as base64 rather than breaking the
// whole answer.
func renderEntry(key string, v objectstore.Value, keysOnly bool) entryJSON {
	e := entryJSON{Key: key, Version: version(v.Version)}
	if keysOnly {
		return e
	}
	if v.IsJSON() && json.Valid(v.Data) {
		e.Value = json.RawMessage(v.Data)
		return e
	}
	s := base64.StdEncoding.EncodeToString(v.Data)
	e.ValueBase64 = &s
	if v.ContentType != objectstore.ContentTypeBytes {
		e.ContentType = v.ContentType
	}
	return e
}

func version(v uint64) string { return strconv.FormatUint(v, 10) }

// listJSON is one page of a listing.
type listJSON struct {
	Entries []entryJSON `json:"entries"`
	Cursor  *string     `json:"cursor"`
}

func renderList(l *objectstore.ListResult, keysOnly bool) listJSON {
	out := listJSON{Entries: make([]entryJSON, 0, len(l.Entries))}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, renderEntry(e.Key, e.Value, keysOnly))
	}
	if l.Cursor != "" {
		c := l.Cursor
		out.Cursor = &c
	}
	return out
}
