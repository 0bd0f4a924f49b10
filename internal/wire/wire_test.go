package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cairndb/cairn/internal/wire"
)

var uvarintEdges = func() []uint64 {
	vs := []uint64{0, 1, 127, 128, 255, 256, 16383, 16384, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64 - 1, math.MaxUint64}
	for k := range 64 {
		vs = append(vs, 1<<k, 1<<k-1, 1<<k+1)
	}
	return vs
}()

var varintEdges = func() []int64 {
	vs := []int64{0, 1, -1, 63, -64, 64, -65, 127, -128, math.MaxInt32, math.MinInt32,
		math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
	for k := range 63 {
		vs = append(vs, 1<<k, -(1 << k), 1<<k-1, -(1<<k - 1))
	}
	return vs
}()

// expectDone fails unless d decoded everything without error.
func expectDone(t *testing.T, d *wire.Decoder) {
	t.Helper()
	if err := d.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	if d.Len() != 0 {
		t.Fatalf("Len() = %d after decoding, want 0", d.Len())
	}
}

// expectCorrupt fails unless d has failed with ErrCorrupt and has no input left.
func expectCorrupt(t *testing.T, d *wire.Decoder) {
	t.Helper()
	if err := d.Err(); !errors.Is(err, wire.ErrCorrupt) {
		t.Fatalf("Err() = %v, want ErrCorrupt", err)
	}
	if d.Len() != 0 {
		t.Fatalf("Len() = %d after a failure, want 0", d.Len())
	}
}

func TestUvarintRoundTrip(t *testing.T) {
	for _, v := range uvarintEdges {
		b := wire.AppendUvarint(nil, v)
		var ref [binary.MaxVarintLen64]byte
		if want := ref[:binary.PutUvarint(ref[:], v)]; !bytes.Equal(b, want) {
			t.Errorf("AppendUvarint(%d) = %x, want %x", v, b, want)
		}
		d := wire.NewDecoder(b)
		if got := d.Uvarint(); got != v {
			t.Errorf("Uvarint() = %d, want %d", got, v)
		}
		expectDone(t, d)
	}
	// All of them back to back.
	var b []byte
	for _, v := range uvarintEdges {
		b = wire.AppendUvarint(b, v)
	}
	d := wire.NewDecoder(b)
	for i, v := range uvarintEdges {
		if got := d.Uvarint(); got != v {
			t.Fatalf("value %d: Uvarint() = %d, want %d", i, got, v)
		}
	}
	expectDone(t, d)
}

func TestVarintRoundTrip(t *testing.T) {
	for _, v := range varintEdges {
		b := wire.AppendVarint(nil, v)
		var ref [binary.MaxVarintLen64]byte
		if want := ref[:binary.PutVarint(ref[:], v)]; !bytes.Equal(b, want) {
			t.Errorf("AppendVarint(%d) = %x, want %x", v, b, want)
		}
		d := wire.NewDecoder(b)
		if got := d.Varint(); got != v {
			t.Errorf("Varint() = %d, want %d", got, v)
		}
		expectDone(t, d)
	}
	// Zig-zag: small magnitudes of either sign take one byte.
	for _, v := range []int64{0, -1, 1, -64, 63} {
		if n := len(wire.AppendVarint(nil, v)); n != 1 {
			t.Errorf("AppendVarint(%d) takes %d bytes, want 1", v, n)
		}
	}
	var b []byte
	for _, v := range varintEdges {
		b = wire.AppendVarint(b, v)
	}
	d := wire.NewDecoder(b)
	for i, v := range varintEdges {
		if got := d.Varint(); got != v {
			t.Fatalf("value %d: Varint() = %d, want %d", i, got, v)
		}
	}
	expectDone(t, d)
}

func TestUint32RoundTrip(t *testing.T) {
	tests := []struct {
		v    uint32
		want []byte
	}{
		{0, []byte{0, 0, 0, 0}},
		{1, []byte{0, 0, 0, 1}},
		{0x01020304, []byte{1, 2, 3, 4}},
		{math.MaxUint32, []byte{0xff, 0xff, 0xff, 0xff}},
		{1 << 31, []byte{0x80, 0, 0, 0}},
	}
	for _, tt := range tests {
		b := wire.AppendUint32(nil, tt.v)
		if !bytes.Equal(b, tt.want) {
			t.Errorf("AppendUint32(%#x) = %x, want %x", tt.v, b, tt.want)
		}
		d := wire.NewDecoder(b)
		if got := d.Uint32(); got != tt.v {
			t.Errorf("Uint32() = %#x, want %#x", got, tt.v)
		}
		expectDone(t, d)
	}
}

func TestUint64RoundTrip(t *testing.T) {
	tests := []struct {
		v    uint64
		want []byte
	}{
		{0, []byte{0, 0, 0, 0, 0, 0, 0, 0}},
		{1, []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{0x0102030405060708, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{math.MaxUint64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{1 << 63, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		b := wire.AppendUint64(nil, tt.v)
		if !bytes.Equal(b, tt.want) {
			t.Errorf("AppendUint64(%#x) = %x, want %x", tt.v, b, tt.want)
		}
		d := wire.NewDecoder(b)
		if got := d.Uint64(); got != tt.v {
			t.Errorf("Uint64() = %#x, want %#x", got, tt.v)
		}
		expectDone(t, d)
	}
}

func byteStrings() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	large := make([]byte, 1<<20+3)
	for i := range large {
		large[i] = byte(rng.Uint32())
	}
	return map[string][]byte{
		"nil":        nil,
		"empty":      {},
		"one":        {0x42},
		"nul":        {0},
		"127":        bytes.Repeat([]byte{7}, 127),
		"128":        bytes.Repeat([]byte{8}, 128), // two-byte length prefix
		"16384":      bytes.Repeat([]byte{9}, 16384),
		"utf8":       []byte("héllo ☃ 🚀"),
		"invalid":    {0xff, 0xfe, 0xc3},
		"large 1MiB": large,
	}
}

func TestBytesRoundTrip(t *testing.T) {
	for name, v := range byteStrings() {
		t.Run(name, func(t *testing.T) {
			b := wire.AppendBytes(nil, v)
			if want := len(binary.AppendUvarint(nil, uint64(len(v)))) + len(v); len(b) != want {
				t.Fatalf("AppendBytes(%d bytes) wrote %d bytes, want %d", len(v), len(b), want)
			}
			// Trailing data must not leak into the decoded string.
			b = append(b, 0xAA, 0xBB)
			d := wire.NewDecoder(b)
			got := d.Bytes()
			if !bytes.Equal(got, v) {
				t.Fatalf("Bytes() = %d bytes, want %d bytes equal to the input", len(got), len(v))
			}
			if cap(got) != len(got) {
				t.Errorf("Bytes() has cap %d > len %d: appending to it would overwrite the input", cap(got), len(got))
			}
			if d.Len() != 2 {
				t.Errorf("Len() = %d after Bytes(), want 2", d.Len())
			}
			if rest := d.Rest(); !bytes.Equal(rest, []byte{0xAA, 0xBB}) {
				t.Errorf("Rest() = %x, want aabb", rest)
			}
			expectDone(t, d)
		})
	}
}

func TestBytesAliasesInput(t *testing.T) {
	b := wire.AppendBytes(nil, []byte("abc"))
	got := wire.NewDecoder(b).Bytes()
	b[len(b)-1] = 'z'
	if string(got) != "abz" {
		t.Errorf("Bytes() = %q after changing the input, want %q (documented to alias)", got, "abz")
	}
	// Appending to the result must not overwrite the input that follows it.
	b = wire.AppendBytes(nil, []byte("ab"))
	b = append(b, 'X')
	d := wire.NewDecoder(b)
	got = d.Bytes()
	_ = append(got, 'Y')
	if b[len(b)-1] != 'X' {
		t.Errorf("appending to Bytes() overwrote the next input byte with %q", b[len(b)-1])
	}
}

func TestStringRoundTrip(t *testing.T) {
	strs := []string{"", "a", "\x00", "a\x00b", "héllo ☃ 🚀", "日本語/ファイル", "\xff\xfe",
		strings.Repeat("x", 127), strings.Repeat("y", 128), strings.Repeat("z", 1<<20)}
	var all []byte
	for _, s := range strs {
		b := wire.AppendString(nil, s)
		if !bytes.Equal(b, wire.AppendBytes(nil, []byte(s))) {
			t.Errorf("AppendString(%.20q) differs from AppendBytes of the same bytes", s)
		}
		d := wire.NewDecoder(b)
		if got := d.String(); got != s {
			t.Errorf("String() = %.20q, want %.20q", got, s)
		}
		expectDone(t, d)
		all = wire.AppendString(all, s)
	}
	d := wire.NewDecoder(all)
	for _, s := range strs {
		if got := d.String(); got != s {
			t.Fatalf("String() = %.20q, want %.20q", got, s)
		}
	}
	expectDone(t, d)
}

func TestStringDoesNotAliasInput(t *testing.T) {
	b := wire.AppendString(nil, "abc")
	got := wire.NewDecoder(b).String()
	b[len(b)-1] = 'z'
	if got != "abc" {
		t.Errorf("String() = %q after changing the input, want %q", got, "abc")
	}
}

func TestBoolRoundTrip(t *testing.T) {
	for _, v := range []bool{false, true} {
		b := wire.AppendBool(nil, v)
		want := []byte{0}
		if v {
			want = []byte{1}
		}
		if !bytes.Equal(b, want) {
			t.Errorf("AppendBool(%v) = %x, want %x", v, b, want)
		}
		d := wire.NewDecoder(b)
		if got := d.Bool(); got != v {
			t.Errorf("Bool() = %v, want %v", got, v)
		}
		expectDone(t, d)
	}
}

func TestBoolRejectsOtherBytes(t *testing.T) {
	for c := range 256 {
		d := wire.NewDecoder([]byte{byte(c), 1})
		got := d.Bool()
		switch c {
		case 0, 1:
			if got != (c == 1) || d.Err() != nil || d.Len() != 1 {
				t.Errorf("Bool() on %#x = %v, err %v, len %d; want %v, nil, 1", c, got, d.Err(), d.Len(), c == 1)
			}
		default:
			if got {
				t.Errorf("Bool() on %#x = true, want false", c)
			}
			if !errors.Is(d.Err(), wire.ErrCorrupt) {
				t.Errorf("Bool() on %#x: Err() = %v, want ErrCorrupt", c, d.Err())
			}
			if d.Len() != 0 {
				t.Errorf("Bool() on %#x: Len() = %d after failure, want 0", c, d.Len())
			}
		}
	}
	d := wire.NewDecoder(nil)
	if d.Bool() {
		t.Error("Bool() on empty input = true")
	}
	expectCorrupt(t, d)
}

func TestByte(t *testing.T) {
	d := wire.NewDecoder([]byte{0, 0x7f, 0xff})
	for _, want := range []byte{0, 0x7f, 0xff} {
		if got := d.Byte(); got != want {
			t.Fatalf("Byte() = %#x, want %#x", got, want)
		}
	}
	expectDone(t, d)
	if got := d.Byte(); got != 0 {
		t.Errorf("Byte() past the end = %#x, want 0", got)
	}
	expectCorrupt(t, d)
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	appenders := map[string]func([]byte) []byte{
		"Uvarint": func(b []byte) []byte { return wire.AppendUvarint(b, math.MaxUint64) },
		"Varint":  func(b []byte) []byte { return wire.AppendVarint(b, math.MinInt64) },
		"Uint32":  func(b []byte) []byte { return wire.AppendUint32(b, 7) },
		"Uint64":  func(b []byte) []byte { return wire.AppendUint64(b, 7) },
		"Bytes":   func(b []byte) []byte { return wire.AppendBytes(b, []byte("v")) },
		"String":  func(b []byte) []byte { return wire.AppendString(b, "v") },
		"Bool":    func(b []byte) []byte { return wire.AppendBool(b, true) },
	}
	for name, app := range appenders {
		b := app(slices.Clone(prefix))
		if !bytes.HasPrefix(b, prefix) || len(b) <= len(prefix) {
			t.Errorf("Append%s(%q, _) = %q, want the prefix kept and something appended", name, prefix, b)
		}
		if want := app(nil); !bytes.Equal(b[len(prefix):], want) {
			t.Errorf("Append%s after a prefix wrote %x, want %x", name, b[len(prefix):], want)
		}
	}
}

// record is one of everything the package can encode.
type record struct {
	u     uint64
	i     int64
	u32   uint32
	u64   uint64
	flag  bool
	by    byte
	data  []byte
	str   string
	items []string
}

func (r record) encode() []byte {
	var b []byte
	b = wire.AppendUvarint(b, r.u)
	b = wire.AppendVarint(b, r.i)
	b = wire.AppendUint32(b, r.u32)
	b = wire.AppendUint64(b, r.u64)
	b = wire.AppendBool(b, r.flag)
	b = append(b, r.by)
	b = wire.AppendBytes(b, r.data)
	b = wire.AppendString(b, r.str)
	b = wire.AppendUvarint(b, uint64(len(r.items)))
	for _, it := range r.items {
		b = wire.AppendString(b, it)
	}
	return b
}

// decodeRecord decodes a record and checks, as it goes, that once the
// decoder has failed every later read returns a zero value.
func decodeRecord(t *testing.T, d *wire.Decoder) record {
	t.Helper()
	failed := false
	check := func(what string, zero bool) {
		t.Helper()
		if failed && !zero {
			t.Fatalf("%s returned a non-zero value after the decoder failed", what)
		}
		if d.Err() != nil {
			failed = true
		}
	}
	var r record
	r.u = d.Uvarint()
	check("Uvarint", r.u == 0)
	r.i = d.Varint()
	check("Varint", r.i == 0)
	r.u32 = d.Uint32()
	check("Uint32", r.u32 == 0)
	r.u64 = d.Uint64()
	check("Uint64", r.u64 == 0)
	r.flag = d.Bool()
	check("Bool", !r.flag)
	r.by = d.Byte()
	check("Byte", r.by == 0)
	r.data = d.Bytes()
	check("Bytes", r.data == nil)
	r.str = d.String()
	check("String", r.str == "")
	n := d.Count(1)
	check("Count", n == 0)
	for range n {
		s := d.String()
		check("String", s == "")
		r.items = append(r.items, s)
	}
	return r
}

func (r record) equal(o record) bool {
	return r.u == o.u && r.i == o.i && r.u32 == o.u32 && r.u64 == o.u64 && r.flag == o.flag &&
		r.by == o.by && bytes.Equal(r.data, o.data) && r.str == o.str && slices.Equal(r.items, o.items)
}

var records = []record{
	{},
	{u: math.MaxUint64, i: math.MinInt64, u32: math.MaxUint32, u64: math.MaxUint64, flag: true, by: 0xff,
		data: bytes.Repeat([]byte{1}, 300), str: "héllo", items: []string{"", "a", strings.Repeat("b", 200)}},
	{u: 1, i: -1, u32: 1, u64: 1, flag: false, by: 1, data: []byte{0}, str: "\x00", items: []string{"x"}},
	{u: 128, i: math.MaxInt64, data: []byte{}, items: []string{}},
}

func TestRecordRoundTrip(t *testing.T) {
	for i, want := range records {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			d := wire.NewDecoder(want.encode())
			got := decodeRecord(t, d)
			expectDone(t, d)
			if !got.equal(want) {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
}

// noPanic runs f and turns a panic into a test failure naming what.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s panicked: %v", what, p)
		}
	}()
	f()
}

func TestTruncatedRecord(t *testing.T) {
	for i, r := range records {
		full := r.encode()
		for cut := range len(full) {
			t.Run(fmt.Sprintf("record%d/cut%d", i, cut), func(t *testing.T) {
				d := wire.NewDecoder(full[:cut:cut])
				noPanic(t, "decoding a truncated record", func() { decodeRecord(t, d) })
				expectCorrupt(t, d)
			})
		}
	}
}

// reader is one Append/Decoder pair, for tests that go over every kind.
type reader struct {
	name   string
	encode []byte
	read   func(*wire.Decoder) (zero bool)
}

func readers() []reader {
	var rs []reader
	for _, v := range []uint64{0, 300, math.MaxUint64} {
		rs = append(rs, reader{fmt.Sprintf("Uvarint(%d)", v), wire.AppendUvarint(nil, v),
			func(d *wire.Decoder) bool { return d.Uvarint() == 0 }})
	}
	for _, v := range []int64{0, -300, math.MinInt64, math.MaxInt64} {
		rs = append(rs, reader{fmt.Sprintf("Varint(%d)", v), wire.AppendVarint(nil, v),
			func(d *wire.Decoder) bool { return d.Varint() == 0 }})
	}
	rs = append(rs,
		reader{"Uint32", wire.AppendUint32(nil, math.MaxUint32),
			func(d *wire.Decoder) bool { return d.Uint32() == 0 }},
		reader{"Uint64", wire.AppendUint64(nil, math.MaxUint64),
			func(d *wire.Decoder) bool { return d.Uint64() == 0 }},
		reader{"Bool", wire.AppendBool(nil, true),
			func(d *wire.Decoder) bool { return !d.Bool() }},
		reader{"Byte", []byte{9},
			func(d *wire.Decoder) bool { return d.Byte() == 0 }},
		reader{"Bytes(empty)", wire.AppendBytes(nil, nil),
			func(d *wire.Decoder) bool { return d.Bytes() == nil }},
		reader{"Bytes(200)", wire.AppendBytes(nil, bytes.Repeat([]byte{1}, 200)),
			func(d *wire.Decoder) bool { return d.Bytes() == nil }},
		reader{"String(200)", wire.AppendString(nil, strings.Repeat("s", 200)),
			func(d *wire.Decoder) bool { return d.String() == "" }},
		reader{"Count", append(wire.AppendUvarint(nil, 200), make([]byte, 200)...),
			func(d *wire.Decoder) bool { return d.Count(1) == 0 }},
	)
	return rs
}

func TestTruncatedEachReader(t *testing.T) {
	for _, r := range readers() {
		t.Run(r.name, func(t *testing.T) {
			for cut := range len(r.encode) {
				d := wire.NewDecoder(r.encode[:cut:cut])
				var zero bool
				noPanic(t, fmt.Sprintf("%s on %d of %d bytes", r.name, cut, len(r.encode)), func() { zero = r.read(d) })
				if !zero {
					t.Errorf("%s on %d of %d bytes returned a non-zero value", r.name, cut, len(r.encode))
				}
				if !errors.Is(d.Err(), wire.ErrCorrupt) {
					t.Errorf("%s on %d of %d bytes: Err() = %v, want ErrCorrupt", r.name, cut, len(r.encode), d.Err())
				}
				if d.Len() != 0 {
					t.Errorf("%s on %d of %d bytes: Len() = %d after failure, want 0", r.name, cut, len(r.encode), d.Len())
				}
			}
			// The whole encoding decodes.
			d := wire.NewDecoder(r.encode)
			r.read(d)
			if d.Err() != nil {
				t.Errorf("%s on the full %d bytes: Err() = %v", r.name, len(r.encode), d.Err())
			}
		})
	}
}

func TestErrorIsSticky(t *testing.T) {
	for _, r := range readers() {
		t.Run(r.name, func(t *testing.T) {
			// Fail first on an empty Uint64, then give the reader valid input
			// it must not decode: a failed Decoder stays failed.
			d := wire.NewDecoder(nil)
			d.Uint64()
			expectCorrupt(t, d)
			if zero := r.read(d); !zero {
				t.Errorf("%s after a failure returned a non-zero value", r.name)
			}
			expectCorrupt(t, d)
			if rest := d.Rest(); len(rest) != 0 {
				t.Errorf("Rest() after a failure = %x, want empty", rest)
			}
		})
	}
	// The first error is the one kept, and the rest of the input is dropped.
	d := wire.NewDecoder([]byte{2, 1, 2, 3})
	d.Bool()
	expectCorrupt(t, d)
	if got := d.Byte(); got != 0 {
		t.Errorf("Byte() after a failure = %d, want 0", got)
	}
	expectCorrupt(t, d)
}

func TestVarintOverflow(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"eleven bytes", bytes.Repeat([]byte{0xff}, 11)},
		{"ten bytes, last too big", append(bytes.Repeat([]byte{0xff}, 9), 0x02)},
		{"ten bytes, last 0x7f", append(bytes.Repeat([]byte{0x80}, 9), 0x7f)},
		{"continuation forever", bytes.Repeat([]byte{0x80}, 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := wire.NewDecoder(tt.in)
			if got := d.Uvarint(); got != 0 {
				t.Errorf("Uvarint() = %d, want 0", got)
			}
			expectCorrupt(t, d)
			d = wire.NewDecoder(tt.in)
			if got := d.Varint(); got != 0 {
				t.Errorf("Varint() = %d, want 0", got)
			}
			expectCorrupt(t, d)
			d = wire.NewDecoder(tt.in)
			if got := d.Bytes(); got != nil {
				t.Errorf("Bytes() = %x, want nil", got)
			}
			expectCorrupt(t, d)
			d = wire.NewDecoder(tt.in)
			if got := d.Count(1); got != 0 {
				t.Errorf("Count() = %d, want 0", got)
			}
			expectCorrupt(t, d)
		})
	}
	// The largest ten-byte varint is still fine.
	d := wire.NewDecoder(append(bytes.Repeat([]byte{0xff}, 9), 0x01))
	if got := d.Uvarint(); got != math.MaxUint64 {
		t.Errorf("Uvarint() = %d, want MaxUint64", got)
	}
	expectDone(t, d)
}

func TestBytesLengthBeyondInput(t *testing.T) {
	tests := []struct {
		name string
		n    uint64
		have int
	}{
		{"one short", 10, 9},
		{"nothing", 1, 0},
		{"MaxInt32", math.MaxInt32, 16},
		{"MaxInt64", math.MaxInt64, 16},
		{"MaxInt64+1", math.MaxInt64 + 1, 16},
		{"MaxUint64", math.MaxUint64, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(wire.AppendUvarint(nil, tt.n), make([]byte, tt.have)...)
			d := wire.NewDecoder(in)
			var got []byte
			noPanic(t, "Bytes", func() { got = d.Bytes() })
			if got != nil {
				t.Errorf("Bytes() = %d bytes, want nil", len(got))
			}
			expectCorrupt(t, d)
			d = wire.NewDecoder(in)
			var s string
			noPanic(t, "String", func() { s = d.String() })
			if s != "" {
				t.Errorf("String() = %d bytes, want empty", len(s))
			}
			expectCorrupt(t, d)
		})
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		name    string
		count   uint64
		have    int // bytes after the count
		minSize int
		want    int
		wantErr bool
	}{
		{"zero of nothing", 0, 0, 1, 0, false},
		{"zero with input left", 0, 5, 1, 0, false},
		{"exact fit", 3, 3, 1, 3, false},
		{"room to spare", 3, 10, 1, 3, false},
		{"one too many", 4, 3, 1, 0, true},
		{"exact fit minSize 3", 3, 9, 3, 3, false},
		{"partial last element", 3, 8, 3, 0, true},
		{"minSize 8", 2, 16, 8, 2, false},
		{"minSize 8 short", 2, 15, 8, 0, true},
		{"minSize 0 means 1", 1, 0, 0, 0, true},
		{"minSize 0 fits", 2, 2, 0, 2, false},
		{"negative minSize means 1", 3, 2, -5, 0, true},
		{"negative minSize fits", 2, 2, -5, 2, false},
		{"MinInt minSize", 1, 1, math.MinInt, 1, false},
		{"MaxInt minSize, zero", 0, 10, math.MaxInt, 0, false},
		{"MaxInt minSize, one", 1, 10, math.MaxInt, 0, true},
		{"MaxInt32", math.MaxInt32, 64, 1, 0, true},
		{"MaxInt32+1", math.MaxInt32 + 1, 64, 1, 0, true},
		{"MaxUint32+1", math.MaxUint32 + 1, 64, 1, 0, true},
		{"MaxInt64", math.MaxInt64, 64, 1, 0, true},
		{"MaxUint64", math.MaxUint64, 64, 1, 0, true},
		{"huge wraps to small int", 1<<63 | 2, 64, 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(wire.AppendUvarint(nil, tt.count), make([]byte, tt.have)...)
			d := wire.NewDecoder(in)
			var got int
			noPanic(t, "Count", func() { got = d.Count(tt.minSize) })
			if tt.wantErr {
				if got != 0 {
					t.Errorf("Count(%d) over %d bytes = %d, want 0", tt.minSize, tt.have, got)
				}
				expectCorrupt(t, d)
				return
			}
			if err := d.Err(); err != nil {
				t.Fatalf("Count(%d) over %d bytes: Err() = %v", tt.minSize, tt.have, err)
			}
			if got != tt.want {
				t.Errorf("Count(%d) over %d bytes = %d, want %d", tt.minSize, tt.have, got, tt.want)
			}
			if d.Len() != tt.have {
				t.Errorf("Len() after Count = %d, want %d", d.Len(), tt.have)
			}
		})
	}
}

func TestCountTruncated(t *testing.T) {
	in := wire.AppendUvarint(nil, 1<<40)
	for cut := range len(in) {
		d := wire.NewDecoder(in[:cut])
		if got := d.Count(1); got != 0 {
			t.Errorf("Count on %d of %d bytes = %d, want 0", cut, len(in), got)
		}
		expectCorrupt(t, d)
	}
}

func TestLenAndRest(t *testing.T) {
	b := wire.AppendUint32(nil, 1)
	b = append(b, "tail"...)
	d := wire.NewDecoder(b)
	if d.Len() != 8 {
		t.Fatalf("Len() = %d, want 8", d.Len())
	}
	d.Uint32()
	if d.Len() != 4 {
		t.Fatalf("Len() = %d after Uint32, want 4", d.Len())
	}
	if rest := d.Rest(); string(rest) != "tail" {
		t.Fatalf("Rest() = %q, want %q", rest, "tail")
	}
	expectDone(t, d)
	if rest := d.Rest(); len(rest) != 0 {
		t.Errorf("second Rest() = %q, want empty", rest)
	}
	// Reading past the end after Rest fails cleanly.
	d.Uvarint()
	expectCorrupt(t, d)

	d = wire.NewDecoder(nil)
	if d.Len() != 0 || len(d.Rest()) != 0 || d.Err() != nil {
		t.Errorf("empty Decoder: Len %d, Err %v", d.Len(), d.Err())
	}
}

// fuzzValues is what FuzzDecoder reads, in order.
type fuzzValues struct {
	u     uint64
	i     int64
	by    byte
	flag  bool
	u32   uint32
	u64   uint64
	data  []byte
	str   string
	items [][]byte
	rest  []byte
}

func fuzzDecode(d *wire.Decoder) fuzzValues {
	var v fuzzValues
	v.u = d.Uvarint()
	v.i = d.Varint()
	v.by = d.Byte()
	v.flag = d.Bool()
	v.u32 = d.Uint32()
	v.u64 = d.Uint64()
	v.data = d.Bytes()
	v.str = d.String()
	n := d.Count(1)
	for range n {
		v.items = append(v.items, d.Bytes())
	}
	v.rest = d.Rest()
	return v
}

func fuzzEncode(v fuzzValues) []byte {
	var b []byte
	b = wire.AppendUvarint(b, v.u)
	b = wire.AppendVarint(b, v.i)
	b = append(b, v.by)
	b = wire.AppendBool(b, v.flag)
	b = wire.AppendUint32(b, v.u32)
	b = wire.AppendUint64(b, v.u64)
	b = wire.AppendBytes(b, v.data)
	b = wire.AppendString(b, v.str)
	b = wire.AppendUvarint(b, uint64(len(v.items)))
	for _, it := range v.items {
		b = wire.AppendBytes(b, it)
	}
	return append(b, v.rest...)
}

func FuzzDecoder(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Add(bytes.Repeat([]byte{0x80}, 32))
	f.Add(fuzzEncode(fuzzValues{}))
	f.Add(fuzzEncode(fuzzValues{u: math.MaxUint64, i: math.MinInt64, by: 7, flag: true,
		u32: math.MaxUint32, u64: math.MaxUint64, data: []byte("data"), str: "str",
		items: [][]byte{{}, []byte("a"), []byte("bc")}, rest: []byte("rest")}))
	for _, r := range records {
		f.Add(r.encode())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := slices.Clone(in)
		d := wire.NewDecoder(in)
		v := fuzzDecode(d)
		if !bytes.Equal(in, orig) {
			t.Fatalf("decoding modified its input")
		}
		if d.Len() != 0 {
			t.Fatalf("Len() = %d after Rest", d.Len())
		}
		if err := d.Err(); err != nil {
			if !errors.Is(err, wire.ErrCorrupt) {
				t.Fatalf("Err() = %v, want ErrCorrupt or nil", err)
			}
			return
		}
		// What decoded cleanly re-encodes to something that decodes to the
		// same values (the encoding may be shorter: varints can be overlong).
		re := fuzzEncode(v)
		if len(re) > len(in) {
			t.Fatalf("re-encoding %d input bytes gave %d bytes", len(in), len(re))
		}
		d2 := wire.NewDecoder(re)
		v2 := fuzzDecode(d2)
		if err := d2.Err(); err != nil {
			t.Fatalf("re-encoded values fail to decode: %v", err)
		}
		if v2.u != v.u || v2.i != v.i || v2.by != v.by || v2.flag != v.flag || v2.u32 != v.u32 ||
			v2.u64 != v.u64 || !bytes.Equal(v2.data, v.data) || v2.str != v.str ||
			!slices.EqualFunc(v2.items, v.items, bytes.Equal) || !bytes.Equal(v2.rest, v.rest) {
			t.Fatalf("round trip changed values: %+v → %+v", v, v2)
		}
	})
}
