package objectstore

import (
	"github.com/cairndb/cairn/internal/wire"
)

// Content types with a one-byte code in the value record; any other content
// type is stored in full.
const (
	ContentTypeBytes = "application/octet-stream"
	ContentTypeJSON  = "application/json"
	ContentTypeText  = "text/plain; charset=utf-8"
)

const (
	ctBytes  = 0
	ctJSON   = 1
	ctText   = 2
	ctCustom = 0xFF
)

// Value is a stored value: bytes, their content type, and the version (the
// Raft log index of the entry that last wrote the key).
type Value struct {
	Data        []byte
	ContentType string
	Version     uint64
}

// IsJSON reports whether the value's content type is application/json.
func (v Value) IsJSON() bool { return v.ContentType == ContentTypeJSON }

// encodeValue writes the value record: version, content type, data.
func encodeValue(data []byte, contentType string, version uint64) []byte {
	b := make([]byte, 0, len(data)+16)
	b = wire.AppendUvarint(b, version)
	switch contentType {
	case "", ContentTypeBytes:
		b = append(b, ctBytes)
	case ContentTypeJSON:
		b = append(b, ctJSON)
	case ContentTypeText:
		b = append(b, ctText)
	default:
		b = append(b, ctCustom)
		b = wire.AppendString(b, contentType)
	}
	return append(b, data...)
}

// decodeValue reads a value record. The returned Data aliases rec.
func decodeValue(rec []byte) (Value, error) {
	d := wire.NewDecoder(rec)
	v := Value{Version: d.Uvarint()}
	switch d.Byte() {
	case ctBytes:
		v.ContentType = ContentTypeBytes
	case ctJSON:
		v.ContentType = ContentTypeJSON
	case ctText:
		v.ContentType = ContentTypeText
	case ctCustom:
		v.ContentType = d.String()
	default:
		return Value{}, ErrCorrupt
	}
	if d.Err() != nil {
		return Value{}, ErrCorrupt
	}
	v.Data = d.Rest()
	return v, nil
}
