package objectstore

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestValueRoundTrip(t *testing.T) {
	datas := [][]byte{nil, {}, []byte("hello"), {0x00, 0xff, 0x01}, []byte(`{"x":1}`), bytes.Repeat([]byte{0xab}, 5000)}
	for _, tc := range []struct {
		contentType string
		want        string
		headerLen   int // bytes after the version varint and before the data
	}{
		{"", ContentTypeBytes, 1},
		{ContentTypeBytes, ContentTypeBytes, 1},
		{ContentTypeJSON, ContentTypeJSON, 1},
		{ContentTypeText, ContentTypeText, 1},
		{"image/png", "image/png", 1 + 1 + len("image/png")},
		{"text/plain", "text/plain", 1 + 1 + len("text/plain")}, // not the coded text type
		{"application/json; charset=utf-8", "application/json; charset=utf-8", 1 + 1 + 31},
		{strings.Repeat("x", 300), strings.Repeat("x", 300), 1 + 2 + 300},
	} {
		for _, version := range []uint64{0, 1, 127, 128, 1 << 40, math.MaxUint64} {
			for _, data := range datas {
				rec := encodeValue(data, tc.contentType, version)
				versionLen := len(encodeValue(nil, "", version)) - 1
				if got := len(rec) - versionLen - len(data); got != tc.headerLen {
					t.Errorf("encodeValue(ct %q): header is %d bytes, want %d", tc.contentType, got, tc.headerLen)
				}
				v, err := decodeValue(rec)
				if err != nil {
					t.Fatalf("decodeValue(encodeValue(%q, %d)): %v", tc.contentType, version, err)
				}
				if v.Version != version || v.ContentType != tc.want || !bytes.Equal(v.Data, data) {
					t.Fatalf("round trip of (%d bytes, %q, %d) = (%d bytes, %q, %d)",
						len(data), tc.contentType, version, len(v.Data), v.ContentType, v.Version)
				}
				if v.IsJSON() != (tc.want == ContentTypeJSON) {
					t.Errorf("IsJSON() = %v for content type %q", v.IsJSON(), v.ContentType)
				}
			}
		}
	}
}

func TestDecodeValueCorrupt(t *testing.T) {
	for name, rec := range map[string][]byte{
		"nil":                       nil,
		"empty":                     {},
		"version only":              {0x05},
		"unknown content type code": {0x05, 0x03},
		"unknown code 0x7f":         {0x05, 0x7f, 'x'},
		"custom without length":     {0x05, ctCustom},
		"custom string too short":   {0x05, ctCustom, 0x05, 'a', 'b'},
		"custom huge length":        {0x05, ctCustom, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unterminated varint":       {0x80},
		"varint overflow":           bytes.Repeat([]byte{0xff}, 11),
		"garbage":                   []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage"),
	} {
		v, err := decodeValue(rec)
		if err == nil {
			t.Errorf("%s: decodeValue(%x) = %+v, nil; want ErrCorrupt", name, rec, v)
			continue
		}
		wantErr(t, err, ErrCorrupt)
	}
}

// A corrupt record surfaces as ErrCorrupt through the read paths too.
func TestCorruptRecordThroughReads(t *testing.T) {
	db := newDB(t)
	obj := Object{Shard: 1, Namespace: "ns", Name: "obj"}
	putRaw(t, db, obj.kvKey("bad"), []byte{0x05, 0x09})
	if _, _, err := GetValue(db, obj, "bad"); err == nil {
		t.Fatal("GetValue of a corrupt record: no error")
	} else {
		wantErr(t, err, ErrCorrupt)
	}
	if _, err := List(db, obj, ListOptions{}); err == nil {
		t.Fatal("List over a corrupt record: no error")
	} else {
		wantErr(t, err, ErrCorrupt)
	}
	_, err := apply(t, db, obj, &Tx{If: []Cond{{Kind: CondExists, Key: "bad"}}, Ops: []Op{{Kind: OpGet, Keys: []string{"x"}}}}, 9)
	wantErr(t, err, ErrCorrupt)
}
