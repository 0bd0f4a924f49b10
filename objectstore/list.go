package objectstore

import (
	"bytes"
	"encoding/base64"

	"github.com/cockroachdb/pebble/v2"
)

// ListOptions are Durable Objects' list options. An empty string means the
// option is not set (no key is empty).
type ListOptions struct {
	Prefix     string
	Start      string // inclusive
	StartAfter string // exclusive; not together with Start
	End        string // exclusive
	Reverse    bool   // descending order; the bounds keep their meaning
	Limit      int    // 0 means DefaultListLimit
	Cursor     string // from the previous page
	KeysOnly   bool
}

// ListResult is one page of a listing. Cursor is empty on the last page.
type ListResult struct {
	Entries []Entry
	Cursor  string
}

const (
	cursorVersion = 1
	cursorForward = 'f'
	cursorReverse = 'r'
)

// Validate checks the options without touching storage.
func (o *ListOptions) Validate() error {
	if o.Start != "" && o.StartAfter != "" {
		return errorf(ErrInvalidArgument, "list: start and startAfter cannot be used together")
	}
	if o.Limit < 0 || o.Limit > MaxListLimit {
		return errorf(ErrInvalidArgument, "list: limit must be between 1 and %d", MaxListLimit)
	}
	for _, k := range []string{o.Prefix, o.Start, o.StartAfter, o.End} {
		if len(k) > MaxKeyBytes {
			return errorf(ErrInvalidKey, "list: a bound is at most %d bytes", MaxKeyBytes)
		}
	}
	if o.Cursor != "" {
		if _, err := o.cursorKey(); err != nil {
			return err
		}
	}
	return nil
}

// cursorKey decodes the cursor into the last key the previous page returned.
func (o *ListOptions) cursorKey() (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(o.Cursor)
	if err != nil || len(raw) < 3 || raw[0] != cursorVersion {
		return "", errorf(ErrInvalidArgument, "list: cursor is not one this server issued")
	}
	dir := byte(cursorForward)
	if o.Reverse {
		dir = cursorReverse
	}
	if raw[1] != dir {
		return "", errorf(ErrInvalidArgument, "list: cursor was issued for the other direction")
	}
	return string(raw[2:]), nil
}

func makeCursor(lastKey string, reverse bool) string {
	dir := byte(cursorForward)
	if reverse {
		dir = cursorReverse
	}
	b := make([]byte, 0, len(lastKey)+2)
	b = append(b, cursorVersion, dir)
	b = append(b, lastKey...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// bounds returns the user-key range [lo, hi) the options select; hi nil means
// unbounded. empty is true when the range holds no key at all.
func (o *ListOptions) bounds() (lo, hi []byte, empty bool, err error) {
	raise := func(k []byte) {
		if bytes.Compare(k, lo) > 0 {
			lo = k
		}
	}
	lower := func(k []byte) {
		if hi == nil || bytes.Compare(k, hi) < 0 {
			hi = k
		}
	}
	if o.Prefix != "" {
		raise([]byte(o.Prefix))
		if s := successor([]byte(o.Prefix)); s != nil {
			lower(s)
		}
	}
	if o.Start != "" {
		raise([]byte(o.Start))
	}
	if o.StartAfter != "" {
		raise(append([]byte(o.StartAfter), 0))
	}
	if o.End != "" {
		lower([]byte(o.End))
	}
	if o.Cursor != "" {
		last, err := o.cursorKey()
		if err != nil {
			return nil, nil, false, err
		}
		if o.Reverse {
			lower([]byte(last))
		} else {
			raise(append([]byte(last), 0))
		}
	}
	return lo, hi, hi != nil && bytes.Compare(lo, hi) >= 0, nil
}

// List returns one page of obj's keys as o selects them.
func List(r pebble.Reader, obj Object, o ListOptions) (*ListResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	limit := o.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	lo, hi, empty, err := o.bounds()
	if err != nil {
		return nil, err
	}
	res := &ListResult{}
	if empty {
		return res, nil
	}
	kindLo, kindHi := obj.kindSpan(KindKV)
	opts := &pebble.IterOptions{
		LowerBound: append(bytes.Clone(kindLo), lo...),
		UpperBound: kindHi,
	}
	if hi != nil {
		opts.UpperBound = append(bytes.Clone(kindLo), hi...)
	}
	it, err := r.NewIter(opts)
	if err != nil {
		return nil, err
	}
	defer it.Close()

	valid := it.First()
	next := it.Next
	if o.Reverse {
		valid = it.Last()
		next = it.Prev
	}
	size := 0
	for ; valid; valid = next() {
		if len(res.Entries) == limit || (size >= MaxListBytes && len(res.Entries) > 0) {
			res.Cursor = makeCursor(res.Entries[len(res.Entries)-1].Key, o.Reverse)
			break
		}
		key := string(it.Key()[len(kindLo):])
		e := Entry{Key: key}
		rec, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		v, err := decodeValue(rec)
		if err != nil {
			return nil, err
		}
		e.Value.Version = v.Version
		e.Value.ContentType = v.ContentType
		if !o.KeysOnly {
			e.Value.Data = bytes.Clone(v.Data)
			size += len(v.Data)
		}
		size += len(key)
		res.Entries = append(res.Entries, e)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return res, nil
}
