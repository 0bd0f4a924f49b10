package fsm

import (
	"fmt"
	"math"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cairndb/cairn/objectstore"
)

// A command is the payload of one Raft log entry: an envelope of a format
// version byte and a type byte, then the type's payload.
//
//	[0] format version (formatV1)
//	[1] type; the flagIgnorable bit marks a type that a node which does not
//	    know it may skip (applying nothing) instead of stopping
//	[2:] payload
//
// A committed entry that cannot be decoded stops the node (a panic): skipping
// it would let this replica's state silently diverge from the others. A newer
// release that adds a type every node must understand therefore has to be
// rolled out to every node before the type is used; one that adds an
// optional type (a hint, a cache warm-up) sets flagIgnorable.
const (
	formatV1      byte = 1
	flagIgnorable byte = 0x80
)

// Type is the type of a command.
type Type byte

// The command types.
const (
	// TypeTx runs a transaction on one object.
	TypeTx Type = 1
	// TypeSetNamespace writes a namespace's configuration.
	TypeSetNamespace Type = 2
	// TypeExpireIdempotency forgets idempotency records that expired before
	// the command's time (Header.NowMillis). It has no payload.
	TypeExpireIdempotency Type = 3
	// TypeAlarmUpdate records the outcomes of alarm deliveries: cleared
	// (delivered or dropped) or retried later.
	TypeAlarmUpdate Type = 4
)

func (t Type) String() string {
	switch t {
	case TypeTx:
		return "tx"
	case TypeSetNamespace:
		return "set-namespace"
	case TypeExpireIdempotency:
		return "expire-idempotency"
	case TypeAlarmUpdate:
		return "alarm-update"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Header carries what every command needs besides its operation: the
// proposer's clock and a random seed (apply reads no clock and draws no
// randomness of its own), and the client's idempotency key, if any.
type Header struct {
	// NowMillis is the proposer's wall clock, in milliseconds since the Unix
	// epoch, when it proposed the command.
	NowMillis int64
	// Seed seeds every random choice apply makes for this command.
	Seed uint64
	// IdempotencyKey, if not empty, makes a retry of the same write on the
	// same object return the first answer instead of applying again.
	IdempotencyKey string
	// MaxObjectBytes bounds the size of the object's SQL database; 0 means
	// no bound. It travels in the command because a node's flag must not
	// change what apply does.
	MaxObjectBytes int64
}

// Command is a decoded command. Exactly one of the payload fields is set,
// as Type says.
type Command struct {
	Type   Type
	Header Header

	// TypeTx
	Namespace string
	Object    string
	Tx        *objectstore.Tx

	// TypeSetNamespace (Namespace says which). A config with Version 0 is
	// a new one: it takes the entry's index as its version.
	NamespaceConfig *objectstore.NamespaceConfig

	// TypeAlarmUpdate
	AlarmUpdates []objectstore.AlarmUpdate
}

// Encode returns the command's log entry payload.
func (c *Command) Encode() ([]byte, error) {
	b := make([]byte, 0, 128)
	b = append(b, formatV1, byte(c.Type))
	b = wire.AppendVarint(b, c.Header.NowMillis)
	b = wire.AppendUint64(b, c.Header.Seed)
	b = wire.AppendString(b, c.Header.IdempotencyKey)
	b = wire.AppendVarint(b, c.Header.MaxObjectBytes)
	switch c.Type {
	case TypeTx:
		if c.Tx == nil {
			return nil, fmt.Errorf("%w: tx command without a tx", ErrBadCommand)
		}
		b = wire.AppendString(b, c.Namespace)
		b = wire.AppendString(b, c.Object)
		b = appendTx(b, c.Tx)
	case TypeSetNamespace:
		if c.NamespaceConfig == nil {
			return nil, fmt.Errorf("%w: set-namespace command without a config", ErrBadCommand)
		}
		b = wire.AppendString(b, c.Namespace)
		b = c.NamespaceConfig.AppendBinary(b)
	case TypeExpireIdempotency:
	case TypeAlarmUpdate:
		b = wire.AppendUvarint(b, uint64(len(c.AlarmUpdates)))
		for _, u := range c.AlarmUpdates {
			b = wire.AppendString(b, u.Namespace)
			b = wire.AppendString(b, u.Object)
			b = wire.AppendVarint(b, u.ScheduledTime)
			b = wire.AppendBool(b, u.Clear)
			b = wire.AppendUvarint(b, uint64(u.RetryCount))
			b = wire.AppendVarint(b, u.NextAttempt)
		}
	default:
		return nil, fmt.Errorf("%w: unknown type %v", ErrBadCommand, c.Type)
	}
	return b, nil
}

// Decode parses a log entry payload. It returns ErrUnknownType, wrapped, for a
// well-formed envelope of a type this release does not know (the caller
// decides what that means: see the flagIgnorable comment), and ErrBadCommand
// for anything else that is wrong.
func Decode(data []byte) (*Command, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the envelope", ErrBadCommand, len(data))
	}
	if data[0] != formatV1 {
		return nil, fmt.Errorf("%w: format version %d", ErrUnknownType, data[0])
	}
	c := &Command{Type: Type(data[1])}
	d := wire.NewDecoder(data[2:])
	c.Header.NowMillis = d.Varint()
	c.Header.Seed = d.Uint64()
	c.Header.IdempotencyKey = d.String()
	c.Header.MaxObjectBytes = d.Varint()
	switch c.Type {
	case TypeTx:
		c.Namespace = d.String()
		c.Object = d.String()
		c.Tx = readTx(d)
	case TypeSetNamespace:
		c.Namespace = d.String()
		cfg := objectstore.ReadNamespaceConfig(d)
		c.NamespaceConfig = &cfg
	case TypeExpireIdempotency:
	case TypeAlarmUpdate:
		c.AlarmUpdates = make([]objectstore.AlarmUpdate, d.Count(6))
		for i := range c.AlarmUpdates {
			u := &c.AlarmUpdates[i]
			u.Namespace = d.String()
			u.Object = d.String()
			u.ScheduledTime = d.Varint()
			u.Clear = d.Bool()
			u.RetryCount = int(d.Uvarint())
			u.NextAttempt = d.Varint()
		}
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnknownType, c.Type)
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: %v payload: %v", ErrBadCommand, c.Type, d.Err())
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("%w: %v payload has %d trailing bytes", ErrBadCommand, c.Type, d.Len())
	}
	return c, nil
}

// ignorable reports whether an entry of unknown type may be skipped.
func ignorable(data []byte) bool {
	return len(data) >= 2 && data[0] == formatV1 && data[1]&flagIgnorable != 0
}

func appendTx(b []byte, tx *objectstore.Tx) []byte {
	b = wire.AppendUvarint(b, uint64(len(tx.If)))
	for _, c := range tx.If {
		b = append(b, byte(c.Kind))
		b = wire.AppendString(b, c.Key)
		b = wire.AppendUvarint(b, c.Version)
	}
	b = wire.AppendUvarint(b, uint64(len(tx.Ops)))
	for i := range tx.Ops {
		op := &tx.Ops[i]
		b = append(b, byte(op.Kind))
		switch op.Kind {
		case objectstore.OpGet, objectstore.OpDelete:
			b = wire.AppendUvarint(b, uint64(len(op.Keys)))
			for _, k := range op.Keys {
				b = wire.AppendString(b, k)
			}
		case objectstore.OpPut:
			b = wire.AppendUvarint(b, uint64(len(op.Puts)))
			for _, e := range op.Puts {
				b = wire.AppendString(b, e.Key)
				b = wire.AppendString(b, e.Value.ContentType)
				b = wire.AppendBytes(b, e.Value.Data)
			}
		case objectstore.OpIncr:
			b = wire.AppendString(b, op.Key)
			b = wire.AppendString(b, op.By)
		case objectstore.OpList:
			l := &op.List
			b = wire.AppendString(b, l.Prefix)
			b = wire.AppendString(b, l.Start)
			b = wire.AppendString(b, l.StartAfter)
			b = wire.AppendString(b, l.End)
			b = wire.AppendBool(b, l.Reverse)
			b = wire.AppendUvarint(b, uint64(l.Limit))
			b = wire.AppendString(b, l.Cursor)
			b = wire.AppendBool(b, l.KeysOnly)
		case objectstore.OpDeleteAll:
			b = wire.AppendBool(b, op.Alarm)
		case objectstore.OpSQL:
			b = wire.AppendString(b, op.SQL.SQL)
			b = appendSQLValues(b, op.SQL.Params)
		case objectstore.OpSetAlarm:
			b = wire.AppendVarint(b, op.ScheduledTime)
		case objectstore.OpGetAlarm, objectstore.OpDeleteAlarm:
		}
	}
	return b
}

func appendSQLValues(b []byte, vs []objectstore.SQLValue) []byte {
	b = wire.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = append(b, byte(v.Type))
		switch v.Type {
		case objectstore.SQLInteger:
			b = wire.AppendVarint(b, v.Int)
		case objectstore.SQLFloat:
			b = wire.AppendUint64(b, math.Float64bits(v.Float))
		case objectstore.SQLText:
			b = wire.AppendString(b, v.Text)
		case objectstore.SQLBlob:
			b = wire.AppendBytes(b, v.Blob)
		}
	}
	return b
}

func readSQLValues(d *wire.Decoder) []objectstore.SQLValue {
	n := d.Count(1)
	if n == 0 {
		return nil
	}
	vs := make([]objectstore.SQLValue, n)
	for i := range vs {
		v := &vs[i]
		v.Type = objectstore.SQLType(d.Byte())
		switch v.Type {
		case objectstore.SQLNull:
		case objectstore.SQLInteger:
			v.Int = d.Varint()
		case objectstore.SQLFloat:
			v.Float = math.Float64frombits(d.Uint64())
		case objectstore.SQLText:
			v.Text = d.String()
		case objectstore.SQLBlob:
			v.Blob = d.Bytes()
			if v.Blob == nil {
				v.Blob = []byte{}
			}
		default:
			d.Fail()
			return nil
		}
	}
	return vs
}

func readTx(d *wire.Decoder) *objectstore.Tx {
	tx := &objectstore.Tx{}
	if n := d.Count(3); n > 0 {
		tx.If = make([]objectstore.Cond, n)
		for i := range tx.If {
			tx.If[i] = objectstore.Cond{
				Kind:    objectstore.CondKind(d.Byte()),
				Key:     d.String(),
				Version: d.Uvarint(),
			}
		}
	}
	if n := d.Count(1); n > 0 {
		tx.Ops = make([]objectstore.Op, n)
		for i := range tx.Ops {
			op := &tx.Ops[i]
			op.Kind = objectstore.OpKind(d.Byte())
			switch op.Kind {
			case objectstore.OpGet, objectstore.OpDelete:
				op.Keys = make([]string, d.Count(1))
				for j := range op.Keys {
					op.Keys[j] = d.String()
				}
			case objectstore.OpPut:
				op.Puts = make([]objectstore.Entry, d.Count(3))
				for j := range op.Puts {
					op.Puts[j].Key = d.String()
					op.Puts[j].Value.ContentType = d.String()
					op.Puts[j].Value.Data = d.Bytes()
				}
			case objectstore.OpIncr:
				op.Key = d.String()
				op.By = d.String()
			case objectstore.OpList:
				l := &op.List
				l.Prefix = d.String()
				l.Start = d.String()
				l.StartAfter = d.String()
				l.End = d.String()
				l.Reverse = d.Bool()
				l.Limit = int(min(d.Uvarint(), objectstore.MaxListLimit+1))
				l.Cursor = d.String()
				l.KeysOnly = d.Bool()
			case objectstore.OpDeleteAll:
				op.Alarm = d.Bool()
			case objectstore.OpSQL:
				op.SQL.SQL = d.String()
				op.SQL.Params = readSQLValues(d)
			case objectstore.OpSetAlarm:
				op.ScheduledTime = d.Varint()
			case objectstore.OpGetAlarm, objectstore.OpDeleteAlarm:
			default:
				// An op this release does not know: the rest of the payload
				// cannot be parsed.
				d.Fail()
				return nil
			}
		}
	}
	return tx
}
