package objectstore

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// randName returns a random string of 0..maxLen bytes drawn mostly from the
// bytes the escaping treats specially.
func randName(rng *rand.Rand, maxLen int) string {
	alphabet := []byte{0x00, 0x00, 0x01, 0x02, 0xFE, 0xFF, 0xFF, 'a', 'b', 'z'}
	n := rng.IntN(maxLen + 1)
	b := make([]byte, n)
	for i := range b {
		if rng.IntN(8) == 0 {
			b[i] = byte(rng.IntN(256))
		} else {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
	}
	return string(b)
}

var specialNames = []string{
	"",
	"a",
	"\x00",
	"\x01",
	"\xff",
	"\x00\x00",
	"\x00\x01",
	"\x00\xff",
	"\xff\x00",
	"\x01\x00",
	"a\x00",
	"a\x00\x01",
	"a\x00\xff",
	"a\x01",
	"a\xff",
	"\x00\x00\x01\xff\x00",
	"ab",
	"hello/world",
	"日本語",
	strings.Repeat("\x00", 100),
	strings.Repeat("\xff", 100),
}

func TestEscapeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := append([]string(nil), specialNames...)
	for range 2000 {
		names = append(names, randName(rng, 12))
	}
	for _, name := range names {
		enc := appendEscaped(nil, name)
		got, rest, ok := readEscaped(enc)
		if !ok || got != name || len(rest) != 0 {
			t.Fatalf("readEscaped(appendEscaped(%q)) = %q, rest %x, ok %v", name, got, rest, ok)
		}
		// Whatever follows the terminator is left alone.
		for _, tail := range []string{"\x00", "\x00\x01", "\xff", "xyz"} {
			got, rest, ok := readEscaped(append(appendEscaped(nil, name), tail...))
			if !ok || got != name || string(rest) != tail {
				t.Fatalf("readEscaped(esc(%q)+%q) = %q, rest %q, ok %v", name, tail, got, rest, ok)
			}
		}
		// Appending keeps what is already in the buffer.
		withHead := appendEscaped([]byte("head"), name)
		if !bytes.Equal(withHead, append([]byte("head"), enc...)) {
			t.Fatalf("appendEscaped(head, %q) = %x, want head+%x", name, withHead, enc)
		}
		// The open form is the terminated form without its terminator.
		if open := appendEscapedOpen(nil, name); !bytes.Equal(append(open, escByte, escTerm), enc) {
			t.Fatalf("appendEscapedOpen(%q) = %x, esc = %x", name, open, enc)
		}
		// A 0x00 in the encoding is always followed by 0xFF or the terminator.
		for i := 0; i < len(enc); i++ {
			if enc[i] == 0x00 {
				if i+1 >= len(enc) || (enc[i+1] != escEscaped && enc[i+1] != escTerm) {
					t.Fatalf("esc(%q) = %x has a bare 0x00 at %d", name, enc, i)
				}
				if enc[i+1] == escTerm && i+2 != len(enc) {
					t.Fatalf("esc(%q) = %x has a terminator before its end", name, enc)
				}
				i++
			}
		}
	}
}

func TestReadEscapedRejectsMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"abc",             // no terminator
		"abc\x00",         // escape byte at the end
		"abc\x00\x02",     // unknown escape
		"abc\x00\x00\x01", // 0x00 0x00 is not an escape
		"a\x00\xff",       // escaped 0x00, then no terminator
		"\x00\xff\x00",    // escaped 0x00, then a dangling escape byte
	} {
		if s, rest, ok := readEscaped([]byte(in)); ok {
			t.Errorf("readEscaped(%q) = %q, %q, true; want ok=false", in, s, rest)
		}
	}
}

func TestEscapedOrderPreserved(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(x, y string) {
		t.Helper()
		got := bytes.Compare(appendEscaped(nil, x), appendEscaped(nil, y))
		if want := strings.Compare(x, y); got != want {
			t.Fatalf("compare(esc(%q), esc(%q)) = %d, want %d", x, y, got, want)
		}
	}
	for _, x := range specialNames {
		for _, y := range specialNames {
			check(x, y)
		}
	}
	for range 20000 {
		check(randName(rng, 6), randName(rng, 6))
	}
}

func compareTuple(a, b Object) int {
	return cmp.Or(cmp.Compare(a.Shard, b.Shard), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

func TestObjectPrefixOrderMatchesTupleOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	randObj := func() Object {
		return Object{Shard: uint32(rng.IntN(3)), Namespace: randName(rng, 4), Name: randName(rng, 5)}
	}
	for range 20000 {
		a, b := randObj(), randObj()
		if rng.IntN(2) == 0 {
			b.Shard = a.Shard
		}
		if rng.IntN(3) == 0 {
			b.Namespace = a.Namespace
		}
		got := bytes.Compare(a.prefix(), b.prefix())
		if want := compareTuple(a, b); got != want {
			t.Fatalf("compare(prefix(%+v), prefix(%+v)) = %d, want %d", a, b, got, want)
		}
		// Whole spans are ordered the same way and never overlap.
		aLo, aHi := a.Span()
		bLo, bHi := b.Span()
		switch {
		case compareTuple(a, b) < 0:
			if bytes.Compare(aHi, bLo) > 0 {
				t.Fatalf("span of %+v [%x,%x) overlaps span of %+v [%x,%x)", a, aLo, aHi, b, bLo, bHi)
			}
		case compareTuple(a, b) > 0:
			if bytes.Compare(bHi, aLo) > 0 {
				t.Fatalf("span of %+v [%x,%x) overlaps span of %+v [%x,%x)", b, bLo, bHi, a, aLo, aHi)
			}
		}
	}
}

// objectKeys returns a sample of every kind of record key of o.
func objectKeys(o Object) [][]byte {
	return [][]byte{
		o.alarmKey(),
		o.kvKey(""),
		o.kvKey("a"),
		o.kvKey("\x00"),
		o.kvKey("\x00\x01"),
		o.kvKey("\xff\xff\xff"),
		o.kvKey(strings.Repeat("z", MaxKeyBytes)),
		o.SQLKey(nil),
		o.SQLKey([]byte{0}),
		o.SQLKey([]byte{0xff, 0xff}),
	}
}

func TestSpansDoNotContainOtherObjects(t *testing.T) {
	var objs []Object
	for _, ns := range []string{"n", "n\x00", "n\x00\x01", "na", "", "\x00"} {
		for _, name := range []string{"a", "a\x00", "a\x00\x01", "a\x01", "a\xff", "ab", "", "\x00", "\xff"} {
			objs = append(objs, Object{Shard: 7, Namespace: ns, Name: name})
		}
	}
	objs = append(objs, Object{Shard: 6, Namespace: "n", Name: "a"}, Object{Shard: 8, Namespace: "n", Name: "a"})
	for i, o := range objs {
		lo, hi := o.Span()
		if !bytes.Equal(lo, o.prefix()) {
			t.Errorf("%+v: span starts at %x, want its prefix %x", o, lo, o.prefix())
		}
		for j, other := range objs {
			for _, k := range objectKeys(other) {
				if in := inSpan(k, lo, hi); in != (i == j) {
					t.Fatalf("key %x of %+v in span [%x,%x) of %+v: %v", k, other, lo, hi, o, in)
				}
			}
		}
	}
}

func TestKindSpans(t *testing.T) {
	o := Object{Shard: 1, Namespace: "ns", Name: "obj"}
	lo, hi := o.Span()
	kvLo, kvHi := o.kindSpan(KindKV)
	sqlLo, sqlHi := o.SQLSpan()
	alarm := o.alarmKey()
	// Alarm first, then KV, then SQL, all inside the object's span.
	if !(bytes.Compare(lo, alarm) <= 0 && bytes.Compare(alarm, kvLo) < 0 &&
		bytes.Compare(kvHi, sqlLo) <= 0 && bytes.Compare(sqlHi, hi) <= 0) {
		t.Fatalf("kinds out of order: span [%x,%x) alarm %x kv [%x,%x) sql [%x,%x)", lo, hi, alarm, kvLo, kvHi, sqlLo, sqlHi)
	}
	for _, k := range []string{"", "a", "\x00", "\xff\xff", strings.Repeat("\xff", MaxKeyBytes)} {
		if kk := o.kvKey(k); !inSpan(kk, kvLo, kvHi) || inSpan(kk, sqlLo, sqlHi) || bytes.Equal(kk, alarm) {
			t.Errorf("kvKey(%q) = %x is not only in the KV span", k, kk)
		}
		if kk := o.SQLKey([]byte(k)); !inSpan(kk, sqlLo, sqlHi) || inSpan(kk, kvLo, kvHi) {
			t.Errorf("SQLKey(%q) = %x is not only in the SQL span", k, kk)
		}
	}
	if inSpan(alarm, kvLo, kvHi) || inSpan(alarm, sqlLo, sqlHi) {
		t.Errorf("alarm key %x is inside the KV or SQL span", alarm)
	}
	// kvKey preserves the byte order of user keys.
	if bytes.Compare(o.kvKey("a"), o.kvKey("a\x00")) >= 0 || bytes.Compare(o.kvKey("a\xff"), o.kvKey("b")) >= 0 {
		t.Errorf("kvKey does not preserve key order")
	}
	// Spans are fresh slices: changing one does not change another.
	lo2, _ := o.kindSpan(KindKV)
	lo2[len(lo2)-1] = 'X'
	if kvLo2, _ := o.kindSpan(KindKV); kvLo2[len(kvLo2)-1] != byte(KindKV) {
		t.Errorf("kindSpan returned a shared slice")
	}
}

func TestParseObjectKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	objs := []Object{
		{Shard: 0, Namespace: "ns", Name: "obj"},
		{Shard: math.MaxUint32, Namespace: "a\x00b", Name: "\x00\xff\x01"},
		{Shard: 0x6f6f6f6f, Namespace: "o", Name: "o"}, // shard bytes look like the tag
	}
	for range 500 {
		objs = append(objs, Object{Shard: rng.Uint32(), Namespace: randName(rng, 6), Name: randName(rng, 8)})
	}
	for _, o := range objs {
		for _, k := range objectKeys(o) {
			ns, name, ok := parseObjectKey(k)
			if !ok || ns != o.Namespace || name != o.Name {
				t.Fatalf("parseObjectKey(%x) = %q, %q, %v; want %q, %q", k, ns, name, ok, o.Namespace, o.Name)
			}
		}
		ns, name, ok := parseObjectKey(o.prefix())
		if !ok || ns != o.Namespace || name != o.Name {
			t.Fatalf("parseObjectKey(prefix %x) = %q, %q, %v", o.prefix(), ns, name, ok)
		}
	}
	notObject := [][]byte{
		nil,
		{spaceShard},
		{spaceShard, 0, 0, 0, 1},
		{spaceShard, 0, 0, 0, 1, tagObject}, // no namespace
		append([]byte{spaceShard, 0, 0, 0, 1, tagObject}, "ns"...),     // unterminated namespace
		appendEscaped([]byte{spaceShard, 0, 0, 0, 1, tagObject}, "ns"), // no name
		append(appendEscaped([]byte{spaceShard, 0, 0, 0, 1, tagObject}, "ns"), "obj"...),
		appliedKey(1),
		namespaceKey(1, "ns"),
		restoreMarkerKey(1),
		append([]byte{spaceLocal, 0, 0, 0, 1, tagObject}, appendEscaped(appendEscaped(nil, "ns"), "o")...),
		append([]byte{spaceShard, 0, 0, 0, 1, tagIdem}, appendEscaped(appendEscaped(nil, "ns"), "o")...),
	}
	for _, k := range notObject {
		if ns, name, ok := parseObjectKey(k); ok {
			t.Errorf("parseObjectKey(%x) = %q, %q, true; want ok=false", k, ns, name)
		}
	}
}

func TestSuccessor(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte("abc"), []byte("abd")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{'a', 0xff, 0xff}, []byte("b")},
		{[]byte{0x00, 0x01}, []byte{0x00, 0x02}},
		{[]byte{0xfe}, []byte{0xff}},
		{[]byte{0xff}, nil},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	} {
		in := bytes.Clone(tc.in)
		got := successor(in)
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("successor(%x) = %x, want %x", tc.in, got, tc.want)
		}
		if !bytes.Equal(in, tc.in) {
			t.Errorf("successor(%x) modified its input", tc.in)
		}
	}
}

// shardKeys returns a sample of every kind of replicated key of shard.
func shardKeys(shard uint32) [][]byte {
	keys := [][]byte{
		shardPrefix(shard),
		appliedKey(shard),
		namespaceKey(shard, ""),
		namespaceKey(shard, "ns"),
		namespaceKey(shard, "\xff\xff"),
		append(shardPrefix(shard), tagIdem, 0xff, 0xff),
		append(shardPrefix(shard), tagAlarmIdx, 0xff, 0xff),
		append(shardPrefix(shard), 0xff, 0xff, 0xff, 0xff),
	}
	for _, o := range []Object{
		{Shard: shard, Namespace: "", Name: ""},
		{Shard: shard, Namespace: "ns", Name: "obj"},
		{Shard: shard, Namespace: "\xff", Name: "\xff\xff"},
	} {
		keys = append(keys, objectKeys(o)...)
	}
	return keys
}

func TestShardSpan(t *testing.T) {
	for _, s := range []uint32{0, 1, 2, 0xff, 0x100, 0xffff, 0x1ffff, math.MaxUint32 - 1, math.MaxUint32} {
		lo, hi := ShardSpan(s)
		if hi == nil || bytes.Compare(lo, hi) >= 0 {
			t.Fatalf("ShardSpan(%d) = [%x, %x): empty or unbounded", s, lo, hi)
		}
		for _, k := range shardKeys(s) {
			if !inSpan(k, lo, hi) {
				t.Errorf("key %x of shard %d not in ShardSpan [%x, %x)", k, s, lo, hi)
			}
		}
		if s < math.MaxUint32 {
			for _, k := range shardKeys(s + 1) {
				if inSpan(k, lo, hi) {
					t.Errorf("key %x of shard %d in ShardSpan(%d) [%x, %x)", k, s+1, s, lo, hi)
				}
			}
			if nlo, _ := ShardSpan(s + 1); bytes.Compare(hi, nlo) > 0 {
				t.Errorf("ShardSpan(%d) ends at %x, after ShardSpan(%d) starts at %x", s, hi, s+1, nlo)
			}
		}
		if s > 0 {
			for _, k := range shardKeys(s - 1) {
				if inSpan(k, lo, hi) {
					t.Errorf("key %x of shard %d in ShardSpan(%d)", k, s-1, s)
				}
			}
		}
		// Node-local keys belong to no shard.
		for _, shard := range []uint32{0, s} {
			if k := restoreMarkerKey(shard); inSpan(k, lo, hi) {
				t.Errorf("restore marker %x of shard %d in ShardSpan(%d)", k, shard, s)
			}
		}
	}
}
