package fsm

import (
	"errors"
	"fmt"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cairndb/cairn/objectstore"
)

// A Response is kept, encoded, in an idempotency record so that a retried
// write gets the first answer back. The encoding:
//
//	version:u8 kind:u8 (0 ok, 1 error)
//	ok:    txVersion nResults (opKind payload)*
//	error: sentinel:u8 detail condition:varint
const responseVersion = 1

// sentinels numbers the business errors that a Response may carry.
var sentinels = []error{
	nil,
	objectstore.ErrPreconditionFailed,
	objectstore.ErrNotANumber,
	objectstore.ErrInvalidKey,
	objectstore.ErrInvalidArgument,
	objectstore.ErrTooLarge,
	objectstore.ErrIdempotencyMismatch,
	objectstore.ErrSQL,
	objectstore.ErrSQLForbidden,
	objectstore.ErrSQLTransactionControl,
	objectstore.ErrSQLTimeout,
	objectstore.ErrSQLFull,
}

func encodeResponse(r *Response) ([]byte, error) {
	b := []byte{responseVersion}
	if r.Err != nil {
		var oe *objectstore.Error
		if !errors.As(r.Err, &oe) {
			return nil, fmt.Errorf("fsm: cannot encode error %T", r.Err)
		}
		code := -1
		for i, s := range sentinels {
			if s != nil && errors.Is(oe.Err, s) {
				code = i
			}
		}
		if code < 0 {
			return nil, fmt.Errorf("fsm: cannot encode error %v", oe.Err)
		}
		b = append(b, 1, byte(code))
		b = wire.AppendString(b, oe.Detail)
		return wire.AppendVarint(b, int64(oe.Condition)), nil
	}
	b = append(b, 0)
	tx := r.Tx
	b = wire.AppendUvarint(b, tx.Version)
	b = wire.AppendBool(b, tx.HasSQL)
	b = wire.AppendVarint(b, tx.SQLSize)
	b = wire.AppendUvarint(b, uint64(len(tx.Results)))
	for _, res := range tx.Results {
		b = append(b, byte(res.Kind))
		switch res.Kind {
		case objectstore.OpGet:
			b = appendEntries(b, res.Entries)
		case objectstore.OpPut, objectstore.OpDelete:
			b = wire.AppendUvarint(b, uint64(res.Count))
		case objectstore.OpIncr:
			b = wire.AppendString(b, res.Number)
		case objectstore.OpList:
			b = appendEntries(b, res.List.Entries)
			b = wire.AppendString(b, res.List.Cursor)
		case objectstore.OpSQL:
			b = appendSQLResult(b, res.SQL)
		case objectstore.OpGetAlarm:
			b = wire.AppendBool(b, res.HasAlarm)
			b = wire.AppendVarint(b, res.ScheduledTime)
		}
	}
	return b, nil
}

func appendSQLResult(b []byte, r *objectstore.SQLResult) []byte {
	b = wire.AppendUvarint(b, uint64(len(r.Columns)))
	for _, c := range r.Columns {
		b = wire.AppendString(b, c)
	}
	b = wire.AppendUvarint(b, uint64(len(r.Rows)))
	for _, row := range r.Rows {
		b = appendSQLValues(b, row)
	}
	b = wire.AppendVarint(b, r.RowsRead)
	return wire.AppendVarint(b, r.RowsWritten)
}

func readSQLResult(d *wire.Decoder) *objectstore.SQLResult {
	r := &objectstore.SQLResult{Columns: make([]string, d.Count(1))}
	for i := range r.Columns {
		r.Columns[i] = d.String()
	}
	r.Rows = make([][]objectstore.SQLValue, d.Count(1))
	for i := range r.Rows {
		r.Rows[i] = readSQLValues(d)
	}
	r.RowsRead = d.Varint()
	r.RowsWritten = d.Varint()
	return r
}

func appendEntries(b []byte, es []objectstore.Entry) []byte {
	b = wire.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = wire.AppendString(b, e.Key)
		b = wire.AppendString(b, e.Value.ContentType)
		b = wire.AppendBytes(b, e.Value.Data)
		b = wire.AppendUvarint(b, e.Value.Version)
	}
	return b
}

func readEntries(d *wire.Decoder) []objectstore.Entry {
	n := d.Count(4)
	if n == 0 {
		return nil
	}
	es := make([]objectstore.Entry, n)
	for i := range es {
		es[i].Key = d.String()
		es[i].Value.ContentType = d.String()
		es[i].Value.Data = d.Bytes()
		es[i].Value.Version = d.Uvarint()
	}
	return es
}

func decodeResponse(b []byte) (*Response, error) {
	d := wire.NewDecoder(b)
	if d.Byte() != responseVersion {
		return nil, fmt.Errorf("%w: response version", ErrBadCommand)
	}
	r := &Response{}
	switch d.Byte() {
	case 1:
		code := int(d.Byte())
		detail := d.String()
		cond := int(d.Varint())
		if code <= 0 || code >= len(sentinels) {
			return nil, fmt.Errorf("%w: response error code %d", ErrBadCommand, code)
		}
		r.Err = &objectstore.Error{Err: sentinels[code], Detail: detail, Condition: cond}
	case 0:
		tx := &objectstore.TxResult{Version: d.Uvarint(), HasSQL: d.Bool(), SQLSize: d.Varint()}
		tx.Results = make([]objectstore.OpResult, d.Count(1))
		for i := range tx.Results {
			res := &tx.Results[i]
			res.Kind = objectstore.OpKind(d.Byte())
			switch res.Kind {
			case objectstore.OpGet:
				res.Entries = readEntries(d)
			case objectstore.OpPut, objectstore.OpDelete:
				res.Count = int(d.Uvarint())
			case objectstore.OpIncr:
				res.Number = d.String()
			case objectstore.OpList:
				res.List = &objectstore.ListResult{Entries: readEntries(d), Cursor: d.String()}
			case objectstore.OpSQL:
				res.SQL = readSQLResult(d)
			case objectstore.OpGetAlarm:
				res.HasAlarm = d.Bool()
				res.ScheduledTime = d.Varint()
			case objectstore.OpDeleteAll, objectstore.OpSetAlarm, objectstore.OpDeleteAlarm:
			default:
				d.Fail()
			}
		}
		r.Tx = tx
	default:
		d.Fail()
	}
	if d.Err() != nil || d.Len() != 0 {
		return nil, fmt.Errorf("%w: response: %v", ErrBadCommand, d.Err())
	}
	return r, nil
}
