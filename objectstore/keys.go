package objectstore

import (
	"bytes"
	"encoding/binary"
)

// Key layout. Every key starts with a space byte:
//
//	's' shard:u32be 'm' name                           shard metadata (applied index)
//	's' shard:u32be 'n' esc(ns)                        namespace configuration
//	's' shard:u32be 'o' esc(ns) esc(obj) kind rest     object data
//	's' shard:u32be 'i' …                              idempotency records
//	's' shard:u32be 'e' …                              their expiry index
//	's' shard:u32be 't' …                              alarm index by due time
//	'l' …                                              node-local, never replicated
//
// esc(s) is s with every 0x00 byte written as 0x00 0xFF, then the terminator
// 0x00 0x01. It preserves byte order (so objects sort by namespace, then name)
// and a name can never be confused with a longer one it is a prefix of.
// Within an object, kind is one of the Kind constants and rest is the user's
// key for KV (raw bytes: it is the last component, so no escaping is needed
// and keys sort by their UTF-8 bytes, as Durable Objects promises).
const (
	spaceShard = 's'
	spaceLocal = 'l'

	tagMeta       = 'm'
	tagNamespace  = 'n'
	tagObject     = 'o'
	tagIdem       = 'i'
	tagIdemExpiry = 'e'
	tagAlarmIdx   = 't'
)

// Kind is the kind of an object's record.
type Kind byte

// The kinds of data an object holds. Their byte values order an object's
// records: alarm first, then KV, then SQL pages.
const (
	KindAlarm Kind = 'a'
	KindKV    Kind = 'k'
	KindSQL   Kind = 'q'
)

const (
	escByte    = 0x00
	escEscaped = 0xFF
	escTerm    = 0x01
)

// ShardSpan returns the key range [lo, hi) holding all replicated state of
// shard: what a snapshot of the shard streams and a restore replaces.
func ShardSpan(shard uint32) (lo, hi []byte) {
	lo = shardPrefix(shard)
	hi = successor(lo)
	return lo, hi
}

func shardPrefix(shard uint32) []byte {
	b := make([]byte, 0, 64)
	b = append(b, spaceShard)
	return binary.BigEndian.AppendUint32(b, shard)
}

// appendEscaped appends esc(s) including its terminator.
func appendEscaped(b []byte, s string) []byte {
	b = appendEscapedOpen(b, s)
	return append(b, escByte, escTerm)
}

// appendEscapedOpen appends esc(s) without the terminator: every name that
// starts with s encodes to a key that starts with the result.
func appendEscapedOpen(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == escByte {
			b = append(b, escByte, escEscaped)
		} else {
			b = append(b, s[i])
		}
	}
	return b
}

// readEscaped decodes one esc(s) from the front of b and returns s and the
// rest of b. ok is false if b does not start with a terminated escaped string.
func readEscaped(b []byte) (s string, rest []byte, ok bool) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != escByte {
			continue
		}
		if i+1 >= len(b) {
			return "", nil, false
		}
		switch b[i+1] {
		case escTerm:
			out = append(out, b[:i]...)
			return string(out), b[i+2:], true
		case escEscaped:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

// successor returns the smallest key greater than every key with prefix p, or
// nil if there is none (p is all 0xFF).
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xFF {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// Object identifies an object within a shard.
type Object struct {
	Shard     uint32
	Namespace string
	Name      string
}

// prefix returns the prefix of every key of the object.
func (o Object) prefix() []byte {
	b := shardPrefix(o.Shard)
	b = append(b, tagObject)
	b = appendEscaped(b, o.Namespace)
	return appendEscaped(b, o.Name)
}

// kindSpan returns the key range of one kind of the object's records.
func (o Object) kindSpan(k Kind) (lo, hi []byte) {
	p := o.prefix()
	lo = append(p, byte(k))
	hi = append(bytes.Clone(p), byte(k)+1)
	return lo, hi
}

// Span returns the key range holding all of the object's records.
func (o Object) Span() (lo, hi []byte) {
	p := o.prefix()
	// The terminator's last byte is escTerm; bumping it skips exactly this
	// object's records and no other object's (see the layout comment).
	return p, successor(p)
}

// kvKey returns the key of one of the object's KV entries.
func (o Object) kvKey(key string) []byte {
	b := o.prefix()
	b = append(b, byte(KindKV))
	return append(b, key...)
}

// alarmKey returns the key of the object's alarm record.
func (o Object) alarmKey() []byte {
	return append(o.prefix(), byte(KindAlarm))
}

// SQLKey returns the key of record suffix of the object's SQL storage.
func (o Object) SQLKey(suffix []byte) []byte {
	b := append(o.prefix(), byte(KindSQL))
	return append(b, suffix...)
}

// SQLSpan returns the key range of the object's SQL storage.
func (o Object) SQLSpan() (lo, hi []byte) { return o.kindSpan(KindSQL) }

// appliedKey is where a shard records the index of the last Raft entry it
// applied. It lies inside the shard's span, so a snapshot carries it and a
// restore sets it.
func appliedKey(shard uint32) []byte {
	return append(shardPrefix(shard), tagMeta, 'a', 'p', 'p', 'l', 'i', 'e', 'd')
}

// namespaceKey is where namespace ns keeps its configuration, in the shard
// that placement.NamespaceShard names.
func namespaceKey(shard uint32, ns string) []byte {
	b := append(shardPrefix(shard), tagNamespace)
	return appendEscaped(b, ns)
}

// restoreMarkerKey is a node-local key recording that a restore of shard is
// in progress: its data cannot be trusted until the marker is gone.
func restoreMarkerKey(shard uint32) []byte {
	b := []byte{spaceLocal, 'r', 's', 't'}
	return binary.BigEndian.AppendUint32(b, shard)
}

// parseObjectKey splits a key of the object space of a shard into the object's
// namespace and name. ok is false for keys outside the object space.
func parseObjectKey(key []byte) (ns, name string, ok bool) {
	if len(key) < 6 || key[0] != spaceShard || key[5] != tagObject {
		return "", "", false
	}
	ns, rest, ok := readEscaped(key[6:])
	if !ok {
		return "", "", false
	}
	name, _, ok = readEscaped(rest)
	return ns, name, ok
}
