package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Content types the server gives a meaning to.
const (
	// ContentTypeJSON is the content type of JSON values: they appear as
	// JSON in listings and transactions.
	ContentTypeJSON = "application/json"
	// ContentTypeBytes is the content type of raw bytes, the server's
	// default.
	ContentTypeBytes = "application/octet-stream"
)

// Version is a key's version: the decimal Raft log index of the write that
// last changed it, so it grows with every write to the key. It is the
// key's ETag.
type Version string

// Value is a stored value: bytes, their content type and the key's version.
type Value struct {
	Data        []byte
	ContentType string
	Version     Version
}

// IsJSON reports whether v holds JSON.
func (v Value) IsJSON() bool { return v.ContentType == ContentTypeJSON }

// JSON returns v's data as raw JSON, or nil if v does not hold JSON.
func (v Value) JSON() json.RawMessage {
	if !v.IsJSON() {
		return nil
	}
	return json.RawMessage(v.Data)
}

// Decode stores v in dst: JSON is unmarshaled (encoding/json rules);
// other bytes go only into a *[]byte or a *string.
func (v Value) Decode(dst any) error {
	if v.IsJSON() {
		return json.Unmarshal(v.Data, dst)
	}
	switch d := dst.(type) {
	case *[]byte:
		*d = append([]byte(nil), v.Data...)
		return nil
	case *string:
		*d = string(v.Data)
		return nil
	}
	return fmt.Errorf("client: the value is %s, not JSON; decode it into a *[]byte or *string, or use GetBytes", v.ContentType)
}

// Entry is a key and its value, as listings return them. With
// ListOptions.KeysOnly, only Key and Version are set.
type Entry struct {
	Key string
	Value
}

// entryJSON is a value in a JSON answer: JSON as "value", anything else as
// "valueBase64" with its "contentType" unless it is octet-stream.
type entryJSON struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ValueBase64 *string         `json:"valueBase64"`
	ContentType string          `json:"contentType"`
	Version     Version         `json:"version"`
}

func (e entryJSON) value() (Value, error) {
	v := Value{Version: e.Version}
	switch {
	case e.Value != nil:
		v.Data, v.ContentType = []byte(e.Value), ContentTypeJSON
	case e.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*e.ValueBase64)
		if err != nil {
			return v, fmt.Errorf("client: key %q: valueBase64: %w", e.Key, err)
		}
		v.Data, v.ContentType = b, e.ContentType
		if v.ContentType == "" {
			v.ContentType = ContentTypeBytes
		}
	}
	return v, nil
}

// Namespace is a handle on a namespace (a Durable Objects class binding).
// It is cheap: making one does no I/O.
type Namespace struct {
	c    *Client
	name string
}

// Namespace returns a handle on namespace name ([a-z0-9][a-z0-9_-]{0,62};
// namespaces exist implicitly). A bad name fails at the first call with
// ErrInvalidName.
func (c *Client) Namespace(name string) *Namespace { return &Namespace{c: c, name: name} }

// Name returns the namespace's name.
func (n *Namespace) Name() string { return n.name }

func (n *Namespace) path() string { return "/v1/ns/" + pathEscape(n.name) }

// Object returns a handle on the object called name (Durable Objects'
// idFromName): any UTF-8 string of 1–1024 bytes.
func (n *Namespace) Object(name string) *Object { return &Object{ns: n, name: name} }

// Object is a handle on one Durable Object: its private key/value storage,
// SQL database and alarm. All operations on one object are serialized by
// the cluster. Making a handle does no I/O.
type Object struct {
	ns   *Namespace
	name string
}

// Name returns the object's name.
func (o *Object) Name() string { return o.name }

// Namespace returns the object's namespace.
func (o *Object) Namespace() *Namespace { return o.ns }

// ID returns the object's stable id, hex(sha256(namespace + "\x00" + name)),
// as the server reports it.
func (o *Object) ID() string { return ObjectID(o.ns.name, o.name) }

// ObjectID returns the id of object name in namespace ns.
func ObjectID(ns, name string) string {
	h := sha256.Sum256([]byte(ns + "\x00" + name))
	return hex.EncodeToString(h[:])
}

func (o *Object) client() *Client { return o.ns.c }

func (o *Object) path() string { return o.ns.path() + "/objects/" + pathEscape(o.name) }

func (o *Object) keyPath(key string) string { return o.path() + "/kv/" + pathEscape(key) }

// Get reads key and decodes its value into dst (JSON with encoding/json;
// see Value.Decode for other values). A missing key is ErrNotFound.
// Options: Stale, IfNoneMatch.
func (o *Object) Get(ctx context.Context, key string, dst any, opts ...CallOption) error {
	v, err := o.getBytes(ctx, "Get", key, opts)
	if err != nil {
		return err
	}
	if err := v.Decode(dst); err != nil {
		return fmt.Errorf("client: Get %q: %w", key, err)
	}
	return nil
}

// GetBytes reads key's raw value, its content type and version. A missing
// key is ErrNotFound. Options: Stale, IfNoneMatch.
func (o *Object) GetBytes(ctx context.Context, key string, opts ...CallOption) (Value, error) {
	return o.getBytes(ctx, "GetBytes", key, opts)
}

func (o *Object) getBytes(ctx context.Context, call, key string, opts []CallOption) (Value, error) {
	co, err := applyOptions(call, opts, getOpts...)
	if err != nil {
		return Value{}, err
	}
	r := o.client().newRequest(http.MethodGet, o.keyPath(key), classRead, co)
	res, err := o.client().call(ctx, r, nil)
	if err != nil {
		return Value{}, err
	}
	ct := res.header.Get("Content-Type")
	if ct == "" {
		ct = ContentTypeBytes
	}
	return Value{Data: res.body, ContentType: ct, Version: etagVersion(res.header.Get("ETag"))}, nil
}

func etagVersion(etag string) Version {
	return Version(strings.Trim(strings.TrimPrefix(etag, "W/"), `"`))
}

// Put stores v under key as JSON (encoding/json), or, if v is a []byte, as
// raw bytes (application/octet-stream), and returns the key's new version.
// Options: IdempotencyKey, IfVersion, IfExists, IfAbsent, IfNoneMatch.
func (o *Object) Put(ctx context.Context, key string, v any, opts ...CallOption) (Version, error) {
	if b, ok := v.([]byte); ok {
		return o.putBytes(ctx, "Put", key, b, ContentTypeBytes, opts)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", invalidCall("client: Put %q: %w", key, err)
	}
	return o.putBytes(ctx, "Put", key, b, ContentTypeJSON, opts)
}

// PutBytes stores data under key with contentType ("" means
// application/octet-stream; application/json must be valid JSON) and
// returns the key's new version. Options: as Put.
func (o *Object) PutBytes(ctx context.Context, key string, data []byte, contentType string, opts ...CallOption) (Version, error) {
	return o.putBytes(ctx, "PutBytes", key, data, contentType, opts)
}

func (o *Object) putBytes(ctx context.Context, call, key string, data []byte, ct string, opts []CallOption) (Version, error) {
	co, err := applyOptions(call, opts, kvWriteOpts...)
	if err != nil {
		return "", err
	}
	r := o.client().newRequest(http.MethodPut, o.keyPath(key), classWrite, co)
	if data == nil {
		data = []byte{}
	}
	r.body, r.contentType = data, ct
	var out struct {
		Version Version `json:"version"`
	}
	if _, err := o.client().call(ctx, r, &out); err != nil {
		return "", err
	}
	return out.Version, nil
}

// Delete deletes key and reports whether it existed. Options:
// IdempotencyKey, IfVersion, IfExists, IfNoneMatch.
func (o *Object) Delete(ctx context.Context, key string, opts ...CallOption) (bool, error) {
	co, err := applyOptions("Delete", opts, deleteOpts...)
	if err != nil {
		return false, err
	}
	r := o.client().newRequest(http.MethodDelete, o.keyPath(key), classWrite, co)
	var out struct {
		Deleted bool `json:"deleted"`
	}
	if _, err := o.client().call(ctx, r, &out); err != nil {
		return false, err
	}
	return out.Deleted, nil
}

// ListOptions selects keys, as Durable Objects' storage.list does. Keys
// are ordered by their UTF-8 bytes.
type ListOptions struct {
	// Prefix keeps only keys that start with it.
	Prefix string
	// Start is the first key (inclusive); not with StartAfter.
	Start string
	// StartAfter starts after this key (exclusive).
	StartAfter string
	// End is the key the listing stops before (exclusive).
	End string
	// Reverse lists in descending order; the bounds keep their meaning, so
	// with Limit it returns the last keys.
	Reverse bool
	// Limit is the most entries of one page (1–10000; 0 means the server's
	// default, 1000). For All it is the page size, not a total.
	Limit int
	// Cursor continues the listing after a previous page (from the same
	// options, same direction).
	Cursor string
	// KeysOnly leaves the values out.
	KeysOnly bool
}

func (l ListOptions) query(r *request) {
	for _, p := range []struct{ name, v string }{
		{"prefix", l.Prefix}, {"start", l.Start}, {"startAfter", l.StartAfter}, {"end", l.End}, {"cursor", l.Cursor},
	} {
		if p.v != "" {
			r.setQuery(p.name, p.v)
		}
	}
	if l.Reverse {
		r.setQuery("reverse", "true")
	}
	if l.KeysOnly {
		r.setQuery("keysOnly", "true")
	}
	if l.Limit != 0 {
		r.setQuery("limit", strconv.Itoa(l.Limit))
	}
}

// listOpJSON is ListOptions as the tx list op takes them.
type listOpJSON struct {
	Prefix     string `json:"prefix,omitempty"`
	Start      string `json:"start,omitempty"`
	StartAfter string `json:"startAfter,omitempty"`
	End        string `json:"end,omitempty"`
	Reverse    bool   `json:"reverse,omitempty"`
	Limit      *int   `json:"limit,omitempty"`
	Cursor     string `json:"cursor,omitempty"`
	KeysOnly   bool   `json:"keysOnly,omitempty"`
}

func (l ListOptions) json() listOpJSON {
	out := listOpJSON{Prefix: l.Prefix, Start: l.Start, StartAfter: l.StartAfter, End: l.End,
		Reverse: l.Reverse, Cursor: l.Cursor, KeysOnly: l.KeysOnly}
	if l.Limit != 0 {
		n := l.Limit
		out.Limit = &n
	}
	return out
}

// ListPage is one page of a listing.
type ListPage struct {
	Entries []Entry
	// Cursor continues the listing (ListOptions.Cursor); "" on the last page.
	Cursor string
}

type listJSON struct {
	Entries []entryJSON `json:"entries"`
	Cursor  *string     `json:"cursor"`
}

func (l listJSON) page() (*ListPage, error) {
	p := &ListPage{Entries: make([]Entry, 0, len(l.Entries))}
	for _, e := range l.Entries {
		v, err := e.value()
		if err != nil {
			return nil, err
		}
		p.Entries = append(p.Entries, Entry{Key: e.Key, Value: v})
	}
	if l.Cursor != nil {
		p.Cursor = *l.Cursor
	}
	return p, nil
}

// List returns one page of the keys opts selects; ListPage.Cursor continues
// it. Options: Stale.
func (o *Object) List(ctx context.Context, opts ListOptions, copts ...CallOption) (*ListPage, error) {
	co, err := applyOptions("List", copts, readOpts...)
	if err != nil {
		return nil, err
	}
	r := o.client().newRequest(http.MethodGet, o.path()+"/kv", classRead, co)
	opts.query(r)
	var out listJSON
	if _, err := o.client().call(ctx, r, &out); err != nil {
		return nil, err
	}
	return out.page()
}

// All iterates over every key opts selects, fetching pages of opts.Limit
// entries as it goes (each page one linearizable read: a listing that spans
// pages is not one snapshot). It stops at the first error, which it yields.
// Options: Stale.
func (o *Object) All(ctx context.Context, opts ListOptions, copts ...CallOption) iter.Seq2[Entry, error] {
	return pages(func(cursor string) ([]Entry, string, error) {
		opts.Cursor = cursor
		p, err := o.List(ctx, opts, copts...)
		if err != nil {
			return nil, "", err
		}
		return p.Entries, p.Cursor, nil
	}, opts.Cursor)
}

// Incr adds by to the number under key (a missing key counts as 0) and
// returns the sum, atomically: Durable Objects' safe counter without a
// read-modify-write. A value that is not a number is ErrNotANumber; an
// int64 overflow too. Options: IdempotencyKey.
func (o *Object) Incr(ctx context.Context, key string, by int64, opts ...CallOption) (int64, error) {
	n, err := o.incr(ctx, "Incr", OpIncr(key, by), opts)
	if err != nil {
		return 0, err
	}
	v, err := n.Int64()
	if err != nil {
		return 0, fmt.Errorf("client: Incr %q: the sum %s is not an integer (the key holds a float; use IncrFloat)", key, n)
	}
	return v, nil
}

// IncrFloat adds by to the number under key as a float64 and returns the
// sum. Options: IdempotencyKey.
func (o *Object) IncrFloat(ctx context.Context, key string, by float64, opts ...CallOption) (float64, error) {
	n, err := o.incr(ctx, "IncrFloat", OpIncrFloat(key, by), opts)
	if err != nil {
		return 0, err
	}
	return n.Float64()
}

func (o *Object) incr(ctx context.Context, call string, op Op, opts []CallOption) (json.Number, error) {
	co, err := applyOptions(call, opts, writeOpts...)
	if err != nil {
		return "", err
	}
	res, err := o.tx(ctx, TxRequest{Ops: []Op{op}}, co)
	if err != nil {
		return "", err
	}
	return res.Results[0].Number, nil
}

// alarmJSON is an alarm as the API shows it.
type alarmJSON struct {
	ScheduledTime *int64 `json:"scheduledTime"`
}

func (a alarmJSON) time() time.Time {
	if a.ScheduledTime == nil {
		return time.Time{}
	}
	return time.UnixMilli(*a.ScheduledTime)
}

// GetAlarm returns the time the object's alarm is set for, or the zero
// time if it has none. Options: Stale.
func (o *Object) GetAlarm(ctx context.Context, opts ...CallOption) (time.Time, error) {
	co, err := applyOptions("GetAlarm", opts, readOpts...)
	if err != nil {
		return time.Time{}, err
	}
	var out alarmJSON
	if _, err := o.client().call(ctx, o.client().newRequest(http.MethodGet, o.path()+"/alarm", classRead, co), &out); err != nil {
		return time.Time{}, err
	}
	return out.time(), nil
}

// SetAlarm sets the object's one alarm to t (millisecond precision),
// replacing any other; a time in the past fires soon. When it is due, the
// namespace's alarmWebhook is called (see AlarmHandler). Options:
// IdempotencyKey.
func (o *Object) SetAlarm(ctx context.Context, t time.Time, opts ...CallOption) error {
	co, err := applyOptions("SetAlarm", opts, writeOpts...)
	if err != nil {
		return err
	}
	r := o.client().newRequest(http.MethodPut, o.path()+"/alarm", classWrite, co)
	if err := r.setJSON(alarmJSON{ScheduledTime: ptr(t.UnixMilli())}); err != nil {
		return err
	}
	_, err = o.client().call(ctx, r, nil)
	return err
}

// DeleteAlarm removes the object's alarm, if any. Options: IdempotencyKey.
func (o *Object) DeleteAlarm(ctx context.Context, opts ...CallOption) error {
	co, err := applyOptions("DeleteAlarm", opts, writeOpts...)
	if err != nil {
		return err
	}
	_, err = o.client().call(ctx, o.client().newRequest(http.MethodDelete, o.path()+"/alarm", classWrite, co), nil)
	return err
}

// DeleteAll deletes every key and the SQL database of the object,
// atomically; its alarm too if alsoAlarm (Durable Objects keeps the alarm
// of storage.deleteAll). Options: IdempotencyKey.
func (o *Object) DeleteAll(ctx context.Context, alsoAlarm bool, opts ...CallOption) error {
	co, err := applyOptions("DeleteAll", opts, writeOpts...)
	if err != nil {
		return err
	}
	r := o.client().newRequest(http.MethodDelete, o.path(), classWrite, co)
	if alsoAlarm {
		r.setQuery("alarm", "true")
	}
	_, err = o.client().call(ctx, r, nil)
	return err
}

func ptr[T any](v T) *T { return &v }
