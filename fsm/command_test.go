package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairndb/cairn/fsm"
	"github.com/cairndb/cairn/internal/wire"
	"github.com/cairndb/cairn/objectstore"
)

type codecCase struct {
	name string
	cmd  *fsm.Command
}

func txCommand(h fsm.Header, ns, obj string, tx objectstore.Tx) *fsm.Command {
	return &fsm.Command{Type: fsm.TypeTx, Header: h, Namespace: ns, Object: obj, Tx: &tx}
}

func ops(o ...objectstore.Op) []objectstore.Op { return o }

// codecCases covers every command type, every op kind, every condition kind
// and the edges of every header field.
func codecCases() []codecCase {
	h := fsm.Header{NowMillis: 1_700_000_000_123, Seed: 0x0123456789abcdef}
	longKey := strings.Repeat("k", objectstore.MaxKeyBytes)
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 70_000/4) // a multi-byte length prefix
	listAll := objectstore.ListOptions{
		Prefix: "pre", Start: "pre-a", StartAfter: "pre-b", End: "pre-z",
		Reverse: true, Limit: objectstore.MaxListLimit, Cursor: "AWZrZXk", KeysOnly: true,
	}
	cs := []codecCase{
		{"get one key", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpGet, Keys: []string{"a"}})})},
		{"get many keys", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpGet, Keys: []string{"a", "ключ", "nul\x00byte", longKey, "\xff\xfe not utf-8"}})})},
		{"get no keys", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpGet})})},
		{"put content types", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpPut, Puts: []objectstore.Entry{
				{Key: "bytes", Value: objectstore.Value{ContentType: objectstore.ContentTypeBytes, Data: []byte{0, 1, 2, 0xff}}},
				{Key: "json", Value: objectstore.Value{ContentType: objectstore.ContentTypeJSON, Data: []byte(`{"a":[1,2,3]}`)}},
				{Key: "text", Value: objectstore.Value{ContentType: objectstore.ContentTypeText, Data: []byte("héllo")}},
				{Key: "custom", Value: objectstore.Value{ContentType: "image/png", Data: []byte("\x89PNG")}},
				{Key: "no type", Value: objectstore.Value{Data: []byte("x")}},
				{Key: "empty", Value: objectstore.Value{ContentType: objectstore.ContentTypeText, Data: []byte{}}},
				{Key: "nil", Value: objectstore.Value{ContentType: objectstore.ContentTypeJSON}},
				{Key: "big", Value: objectstore.Value{ContentType: "application/x-custom; v=1", Data: big}},
			}})})},
		{"delete", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDelete, Keys: []string{"a", "b", "c"}})})},
		{"incr", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "1"},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "-9223372036854775808"},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "f", By: "-1.5e-3"},
			objectstore.Op{Kind: objectstore.OpIncr, Key: "", By: ""})})},
		{"list without options", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpList})})},
		{"list with every option", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpList, List: listAll})})},
		{"list limits", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Limit: 1}},
			objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Limit: 127}},
			objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Limit: 128, Reverse: true}},
			objectstore.Op{Kind: objectstore.OpList, List: objectstore.ListOptions{Limit: objectstore.MaxListLimit + 1}})})},
		{"deleteAll keeping the alarm", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: false})})},
		{"deleteAll with the alarm", txCommand(h, "ns", "obj", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true})})},
		{"every condition kind", txCommand(h, "ns", "obj", objectstore.Tx{
			If: []objectstore.Cond{
				{Kind: objectstore.CondVersionIs, Key: "a", Version: 1},
				{Kind: objectstore.CondVersionIsNot, Key: "b", Version: math.MaxUint64},
				{Kind: objectstore.CondExists, Key: "c"},
				{Kind: objectstore.CondMissing, Key: "d"},
				{Kind: objectstore.CondKind(0), Key: "unknown kinds travel too", Version: 300},
				{Kind: objectstore.CondKind(255), Key: "", Version: 0},
			},
			Ops: ops(objectstore.Op{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: "a", Value: objectstore.Value{Data: []byte("1")}}}}),
		})},
		{"conditions only", txCommand(h, "ns", "obj", objectstore.Tx{
			If: []objectstore.Cond{{Kind: objectstore.CondExists, Key: "a"}}})},
		{"empty tx", txCommand(h, "ns", "obj", objectstore.Tx{})},
		{"every op in one tx", txCommand(h, "ns", "obj", objectstore.Tx{
			If: []objectstore.Cond{{Kind: objectstore.CondMissing, Key: "lock"}},
			Ops: ops(
				objectstore.Op{Kind: objectstore.OpPut, Puts: []objectstore.Entry{{Key: "a", Value: objectstore.Value{ContentType: objectstore.ContentTypeJSON, Data: []byte("1")}}}},
				objectstore.Op{Kind: objectstore.OpGet, Keys: []string{"a"}},
				objectstore.Op{Kind: objectstore.OpIncr, Key: "a", By: "2"},
				objectstore.Op{Kind: objectstore.OpList, List: listAll},
				objectstore.Op{Kind: objectstore.OpDelete, Keys: []string{"a"}},
				objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true},
				objectstore.Op{Kind: objectstore.OpDeleteAll},
			)})},
		{"empty namespace and object", txCommand(h, "", "", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDeleteAll})})},
		{"names with odd bytes", txCommand(h, "n\x00s\xff", strings.Repeat("o", 300), objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpDeleteAll})})},
		{"set namespace", &fsm.Command{Type: fsm.TypeSetNamespace, Header: h, Namespace: "ns",
			NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: "https://hooks.example/alarm?x=1", AlarmTimeout: 30 * time.Second, AlarmMaxRetries: 5}}},
		{"set namespace, zero config", &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns",
			NamespaceConfig: &objectstore.NamespaceConfig{}}},
		{"set namespace, extreme config", &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "",
			NamespaceConfig: &objectstore.NamespaceConfig{AlarmTimeout: math.MinInt64, AlarmMaxRetries: math.MaxInt64}}},
		{"expire idempotency", &fsm.Command{Type: fsm.TypeExpireIdempotency, Header: h}},
		{"expire idempotency, before 1970", &fsm.Command{Type: fsm.TypeExpireIdempotency, Header: fsm.Header{NowMillis: -5}}},
		{"set namespace, negative config", &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns",
			NamespaceConfig: &objectstore.NamespaceConfig{AlarmTimeout: -time.Second, AlarmMaxRetries: -1}}},
	}
	// Header edges, on both command types.
	headers := []struct {
		name string
		h    fsm.Header
	}{
		{"zero header", fsm.Header{}},
		{"negative now", fsm.Header{NowMillis: -1, Seed: 1}},
		{"before 1970", fsm.Header{NowMillis: -86_400_000 * 365, Seed: 7}},
		{"min now", fsm.Header{NowMillis: math.MinInt64, Seed: math.MaxUint64}},
		{"max now", fsm.Header{NowMillis: math.MaxInt64, Seed: 1 << 63}},
		{"idempotency key", fsm.Header{NowMillis: 1, IdempotencyKey: "3f8e0a7c-idem"}},
		{"long idempotency key", fsm.Header{IdempotencyKey: strings.Repeat("é", 200)}},
		{"binary idempotency key", fsm.Header{IdempotencyKey: "\x00\xff\x80"}},
	}
	for _, hh := range headers {
		cs = append(cs,
			codecCase{"tx, " + hh.name, txCommand(hh.h, "ns", "obj", objectstore.Tx{Ops: ops(
				objectstore.Op{Kind: objectstore.OpIncr, Key: "n", By: "1"})})},
			codecCase{"set namespace, " + hh.name, &fsm.Command{Type: fsm.TypeSetNamespace, Header: hh.h, Namespace: "ns",
				NamespaceConfig: &objectstore.NamespaceConfig{AlarmWebhook: "http://x"}}},
		)
	}
	return cs
}

// normalize returns a deep copy of c with every empty slice made nil, so a
// decoded command compares equal to the one that was encoded.
func normalize(c *fsm.Command) *fsm.Command {
	if c == nil {
		return nil
	}
	n := *c
	if c.Tx != nil {
		tx := objectstore.Tx{}
		if len(c.Tx.If) > 0 {
			tx.If = slices.Clone(c.Tx.If)
		}
		for _, op := range c.Tx.Ops {
			o := op
			o.Keys = nil
			if len(op.Keys) > 0 {
				o.Keys = slices.Clone(op.Keys)
			}
			o.Puts = nil
			for _, e := range op.Puts {
				if len(e.Value.Data) == 0 {
					e.Value.Data = nil
				} else {
					e.Value.Data = bytes.Clone(e.Value.Data)
				}
				o.Puts = append(o.Puts, e)
			}
			tx.Ops = append(tx.Ops, o)
		}
		n.Tx = &tx
	}
	if c.NamespaceConfig != nil {
		cfg := *c.NamespaceConfig
		n.NamespaceConfig = &cfg
	}
	return &n
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := mustEncode(t, tc.cmd)
			got, err := fsm.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := normalize(tc.cmd); !reflect.DeepEqual(normalize(got), want) {
				t.Fatalf("round trip changed the command:\n%s", describeDiff(normalize(got), want))
			}
			// Encoding is canonical: the decoded command encodes to the same bytes.
			if again := mustEncode(t, got); !bytes.Equal(again, data) {
				t.Fatalf("re-encoding the decoded command gave different bytes:\n got %x\nwant %x", again, data)
			}
		})
	}
}

// A put's Value.Version is not part of the command: apply stamps the version.
func TestCommandPutVersionDoesNotTravel(t *testing.T) {
	c := txCommand(fsm.Header{}, "ns", "o", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpPut,
		Puts: []objectstore.Entry{{Key: "a", Value: objectstore.Value{Data: []byte("1"), Version: 99}}}})})
	got, err := fsm.Decode(mustEncode(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Tx.Ops[0].Puts[0].Value.Version; v != 0 {
		t.Fatalf("decoded put carries version %d, want 0", v)
	}
}

func TestCommandListLimitOutOfRangeStaysInvalid(t *testing.T) {
	for _, limit := range []int{-1, math.MinInt, objectstore.MaxListLimit + 1, objectstore.MaxListLimit * 2, math.MaxInt} {
		c := txCommand(fsm.Header{}, "ns", "o", objectstore.Tx{Ops: ops(objectstore.Op{Kind: objectstore.OpList,
			List: objectstore.ListOptions{Limit: limit}})})
		got, err := fsm.Decode(mustEncode(t, c))
		if err != nil {
			t.Fatalf("limit %d: Decode: %v", limit, err)
		}
		if err := got.Tx.Validate(); !errors.Is(err, objectstore.ErrInvalidArgument) {
			t.Errorf("limit %d decoded as %d, which validates with %v; want ErrInvalidArgument",
				limit, got.Tx.Ops[0].List.Limit, err)
		}
	}
}

func TestEncodeRejectsIncompleteCommands(t *testing.T) {
	tests := []struct {
		name string
		cmd  *fsm.Command
	}{
		{"tx without tx", &fsm.Command{Type: fsm.TypeTx, Namespace: "ns", Object: "o"}},
		{"set-namespace without config", &fsm.Command{Type: fsm.TypeSetNamespace, Namespace: "ns"}},
		{"zero type", &fsm.Command{Tx: &objectstore.Tx{}}},
		{"unknown type", &fsm.Command{Type: 0x7e, Tx: &objectstore.Tx{}}},
		{"ignorable-flagged type", &fsm.Command{Type: fsm.TypeTx | 0x80, Tx: &objectstore.Tx{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cmd.Encode()
			if !errors.Is(err, fsm.ErrBadCommand) {
				t.Fatalf("Encode = %x, %v; want ErrBadCommand", b, err)
			}
		})
	}
}

func TestDecodeShortInput(t *testing.T) {
	for _, in := range [][]byte{nil, {}, {1}, {2}, {0}, {0xff}} {
		c, err := fsm.Decode(in)
		if !errors.Is(err, fsm.ErrBadCommand) || c != nil {
			t.Errorf("Decode(%x) = %v, %v; want nil, ErrBadCommand", in, c, err)
		}
	}
}

func TestDecodeUnknownFormatVersion(t *testing.T) {
	valid := mustEncode(t, codecCases()[0].cmd)
	for _, v := range []byte{0, 2, 3, 0x7f, 0x80, 0x81, 0xff} {
		for _, in := range [][]byte{
			append([]byte{v}, valid[1:]...),
			{v, byte(fsm.TypeTx)},
			{v, 0x80 | 5}, // the ignorable flag means nothing under an unknown version
		} {
			c, err := fsm.Decode(in)
			if !errors.Is(err, fsm.ErrUnknownType) || errors.Is(err, fsm.ErrBadCommand) || c != nil {
				t.Errorf("Decode(version %d, %d bytes) = %v, %v; want nil, ErrUnknownType only", v, len(in), c, err)
			}
		}
	}
}

func TestDecodeUnknownType(t *testing.T) {
	valid := mustEncode(t, codecCases()[0].cmd)
	for _, ty := range []byte{0, 0x40, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0xfe, 0xff} {
		for _, in := range [][]byte{
			append([]byte{1, ty}, valid[2:]...),
			{1, ty},
			{1, ty, 0xff, 0xff, 0xff}, // a payload this release cannot parse
		} {
			c, err := fsm.Decode(in)
			if !errors.Is(err, fsm.ErrUnknownType) || errors.Is(err, fsm.ErrBadCommand) || c != nil {
				t.Errorf("Decode(type %#x, %d bytes) = %v, %v; want nil, ErrUnknownType only", ty, len(in), c, err)
			}
		}
	}
}

func TestDecodeTruncatedAtEveryByte(t *testing.T) {
	for _, tc := range codecCases() {
		data := mustEncode(t, tc.cmd)
		for cut := range len(data) {
			in := data[:cut:cut]
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s: Decode of %d of %d bytes panicked: %v", tc.name, cut, len(data), p)
					}
				}()
				var c *fsm.Command
				c, err = fsm.Decode(in)
				if c != nil {
					t.Fatalf("%s: Decode of %d of %d bytes returned a command", tc.name, cut, len(data))
				}
			}()
			if !errors.Is(err, fsm.ErrBadCommand) {
				t.Fatalf("%s: Decode of %d of %d bytes: err = %v, want ErrBadCommand", tc.name, cut, len(data), err)
			}
		}
	}
}

func TestDecodeTrailingBytes(t *testing.T) {
	for _, tc := range codecCases() {
		data := mustEncode(t, tc.cmd)
		for _, extra := range [][]byte{{0}, {1}, {0xff, 0xff, 0xff}, data} {
			in := append(slices.Clone(data), extra...)
			if c, err := fsm.Decode(in); !errors.Is(err, fsm.ErrBadCommand) || c != nil {
				t.Fatalf("%s with %d trailing bytes: Decode = %v, %v; want nil, ErrBadCommand", tc.name, len(extra), c, err)
			}
		}
	}
}

// An op kind this release does not know makes the rest of a tx unparseable:
// that is a malformed command, not an unknown type.
func TestDecodeUnknownOpKind(t *testing.T) {
	for _, kind := range []objectstore.OpKind{0, 0x7f, 0x80, 0xff} {
		for _, tx := range []objectstore.Tx{
			{Ops: ops(objectstore.Op{Kind: kind})},
			{Ops: ops(objectstore.Op{Kind: objectstore.OpDeleteAll}, objectstore.Op{Kind: kind, Key: "k"})},
		} {
			data := mustEncode(t, txCommand(fsm.Header{}, "ns", "o", tx))
			if c, err := fsm.Decode(data); !errors.Is(err, fsm.ErrBadCommand) || c != nil {
				t.Errorf("op kind %d: Decode = %v, %v; want nil, ErrBadCommand", kind, c, err)
			}
		}
	}
}

// A boolean is 0 or 1; any other byte is corruption.
func TestDecodeBadBool(t *testing.T) {
	data := mustEncode(t, txCommand(fsm.Header{}, "ns", "o", objectstore.Tx{Ops: ops(
		objectstore.Op{Kind: objectstore.OpDeleteAll, Alarm: true})}))
	if data[len(data)-1] != 1 {
		t.Fatalf("the payload does not end with deleteAll's alarm flag: %x", data)
	}
	for _, b := range []byte{2, 0x80, 0xff} {
		in := slices.Clone(data)
		in[len(in)-1] = b
		if c, err := fsm.Decode(in); !errors.Is(err, fsm.ErrBadCommand) || c != nil {
			t.Errorf("alarm flag %#x: Decode = %v, %v; want nil, ErrBadCommand", b, c, err)
		}
	}
}

// A count far larger than the input fails without allocating for it.
func TestDecodeHugeCounts(t *testing.T) {
	prefix := func(ty fsm.Type) []byte {
		b := []byte{1, byte(ty)}
		b = wire.AppendVarint(b, 0)
		b = wire.AppendUint64(b, 0)
		b = wire.AppendString(b, "")
		b = wire.AppendString(b, "ns")
		return wire.AppendString(b, "o")
	}
	for _, n := range []uint64{1 << 20, 1 << 31, 1 << 40, math.MaxUint64} {
		conds := wire.AppendUvarint(prefix(fsm.TypeTx), n)
		opsIn := wire.AppendUvarint(wire.AppendUvarint(prefix(fsm.TypeTx), 0), n)
		keys := wire.AppendUvarint(append(wire.AppendUvarint(wire.AppendUvarint(prefix(fsm.TypeTx), 0), 1), byte(objectstore.OpGet)), n)
		puts := wire.AppendUvarint(append(wire.AppendUvarint(wire.AppendUvarint(prefix(fsm.TypeTx), 0), 1), byte(objectstore.OpPut)), n)
		for name, in := range map[string][]byte{"conditions": conds, "ops": opsIn, "keys": keys, "puts": puts} {
			in = append(in, make([]byte, 16)...)
			var err error
			allocs := testing.AllocsPerRun(1, func() { _, err = fsm.Decode(in) })
			if !errors.Is(err, fsm.ErrBadCommand) {
				t.Errorf("%d %s: Decode err = %v, want ErrBadCommand", n, name, err)
			}
			if allocs > 20 {
				t.Errorf("%d %s: Decode made %v allocations", n, name, allocs)
			}
		}
	}
}

func TestTypeString(t *testing.T) {
	for ty, want := range map[fsm.Type]string{
		fsm.TypeTx:                "tx",
		fsm.TypeSetNamespace:      "set-namespace",
		fsm.TypeExpireIdempotency: "expire-idempotency",
		0:                         "type(0)",
		0x85:                      "type(133)",
	} {
		if got := ty.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", byte(ty), got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range codecCases() {
		data, err := tc.cmd.Encode()
		if err != nil {
			f.Fatalf("%s: %v", tc.name, err)
		}
		f.Add(data)
	}
	for _, data := range [][]byte{{}, {1}, {1, 1}, {1, 2}, {2, 1}, {1, 0x81, 0}, {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := slices.Clone(data)
		c, err := fsm.Decode(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil {
			if !errors.Is(err, fsm.ErrBadCommand) && !errors.Is(err, fsm.ErrUnknownType) {
				t.Fatalf("Decode error %v is neither ErrBadCommand nor ErrUnknownType", err)
			}
			if c != nil {
				t.Fatalf("Decode returned a command with error %v", err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded command does not encode: %v (%#v)", err, c)
		}
		// Only overlong varints can make the input longer than the encoding.
		if len(enc) > len(data) {
			t.Fatalf("re-encoding %d bytes gave %d bytes", len(data), len(enc))
		}
		c2, err := fsm.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(c), normalize(c2)) {
			t.Fatalf("round trip changed the command:\n%s", describeDiff(c, c2))
		}
		if enc2, err := c2.Encode(); err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point: %x vs %x (%v)", enc, enc2, err)
		}
	})
}

func describeDiff(a, b *fsm.Command) string {
	s := fmt.Sprintf("first  %#v\nsecond %#v", *a, *b)
	if a.Tx != nil && b.Tx != nil {
		s += fmt.Sprintf("\nfirst tx  %#v\nsecond tx %#v", *a.Tx, *b.Tx)
	}
	return s
}

func TestAlarmUpdateAndSQLRoundTrip(t *testing.T) {
	cmds := []*fsm.Command{
		{Type: fsm.TypeAlarmUpdate, Header: fsm.Header{NowMillis: 5}, AlarmUpdates: []objectstore.AlarmUpdate{
			{Namespace: "ns", Object: "o", ScheduledTime: 100, Clear: true},
			{Namespace: "ns", Object: "p\x00q", ScheduledTime: -1, RetryCount: 3, NextAttempt: 1 << 40},
		}},
		txCommand(fsm.Header{MaxObjectBytes: 1 << 30}, "ns", "o", objectstore.Tx{Ops: ops(
			objectstore.Op{Kind: objectstore.OpSQL, SQL: objectstore.SQLStatement{SQL: "SELECT ?, ?, ?, ?, ?", Params: []objectstore.SQLValue{
				{Type: objectstore.SQLNull}, {Type: objectstore.SQLInteger, Int: -1 << 63}, {Type: objectstore.SQLFloat, Float: 2.5},
				{Type: objectstore.SQLText, Text: "t\x00"}, {Type: objectstore.SQLBlob, Blob: []byte{}},
			}}},
			objectstore.Op{Kind: objectstore.OpGetAlarm},
			objectstore.Op{Kind: objectstore.OpSetAlarm, ScheduledTime: 1764500000000},
			objectstore.Op{Kind: objectstore.OpDeleteAlarm},
		)}),
	}
	for _, c := range cmds {
		data := mustEncode(t, c)
		got, err := fsm.Decode(data)
		if err != nil {
			t.Fatalf("%v: %v", c.Type, err)
		}
		if again := mustEncode(t, got); !bytes.Equal(again, data) {
			t.Fatalf("%v: re-encoding differs", c.Type)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%v: decoded %+v, want %+v", c.Type, got, c)
		}
	}
}
