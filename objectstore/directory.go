package objectstore

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/cairndb/cairn/internal/wire"
	"github.com/cockroachdb/pebble/v2"
)

// ListObjects returns, in ascending name order, up to limit names of objects in
// namespace ns of shard that hold any data (a key, a SQL database or an
// alarm), whose name starts with prefix and sorts after the name after ("" for
// from the start). more is true when the shard holds further names.
//
// It skips from object to object with one seek each, so its cost grows with
// the number of objects returned, not with how much each object holds.
func ListObjects(r pebble.Reader, shard uint32, ns, prefix, after string, limit int) (names []string, more bool, err error) {
	base := append(shardPrefix(shard), tagObject)
	base = appendEscaped(base, ns)
	lo := appendEscapedOpen(bytes.Clone(base), prefix)
	hi := successor(lo)
	if after != "" {
		start := successor(appendEscaped(bytes.Clone(base), after))
		if bytes.Compare(start, lo) > 0 {
			lo = start
		}
	}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil, false, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for valid := it.First(); valid; {
		_, name, ok := parseObjectKey(it.Key())
		if !ok {
			return nil, false, ErrCorrupt
		}
		if len(names) == limit {
			return names, true, it.Error()
		}
		names = append(names, name)
		valid = it.SeekGE(Object{Shard: shard, Namespace: ns, Name: name}.endKey())
	}
	return names, false, it.Error()
}

// endKey is the first key after every record of the object.
func (o Object) endKey() []byte {
	_, hi := o.Span()
	return hi
}

// ListNamespaces returns, in ascending order, the namespaces of shard that
// hold objects or a configuration.
func ListNamespaces(r pebble.Reader, shard uint32) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, tag := range []byte{tagObject, tagNamespace} {
		lo := append(shardPrefix(shard), tag)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: successor(lo)})
		if err != nil {
			return nil, err
		}
		for valid := it.First(); valid; {
			ns, _, ok := readEscaped(it.Key()[len(lo):])
			if !ok {
				it.Close()
				return nil, ErrCorrupt
			}
			if !seen[ns] {
				seen[ns] = true
				out = append(out, ns)
			}
			valid = it.SeekGE(successor(appendEscaped(bytes.Clone(lo), ns)))
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}

// NamespaceConfig is a namespace's configuration.
type NamespaceConfig struct {
	AlarmWebhook    string        // URL alarms are delivered to; empty for none
	AlarmTimeout    time.Duration // how long one delivery attempt may take
	AlarmMaxRetries int           // retries after the first attempt before an alarm is dropped
	// Version orders configurations: every shard keeps a copy (alarm
	// delivery reads its own), and a copy is replaced only by a newer one.
	Version uint64
}

const namespaceConfigVersion = 1

// AppendBinary appends the configuration's binary form to b.
func (c *NamespaceConfig) AppendBinary(b []byte) []byte {
	b = wire.AppendString(b, c.AlarmWebhook)
	b = wire.AppendVarint(b, int64(c.AlarmTimeout))
	b = wire.AppendVarint(b, int64(c.AlarmMaxRetries))
	return wire.AppendUvarint(b, c.Version)
}

// ReadNamespaceConfig reads what AppendBinary wrote.
func ReadNamespaceConfig(d *wire.Decoder) NamespaceConfig {
	return NamespaceConfig{
		AlarmWebhook:    d.String(),
		AlarmTimeout:    time.Duration(d.Varint()),
		AlarmMaxRetries: int(d.Varint()),
		Version:         d.Uvarint(),
	}
}

func decodeNamespaceConfig(b []byte) (NamespaceConfig, error) {
	d := wire.NewDecoder(b)
	if d.Byte() != namespaceConfigVersion {
		return NamespaceConfig{}, ErrCorrupt
	}
	c := ReadNamespaceConfig(d)
	if d.Err() != nil || d.Len() != 0 {
		return NamespaceConfig{}, ErrCorrupt
	}
	return c, nil
}

// PutNamespaceConfig writes shard's copy of ns's configuration unless the
// copy it holds is as new or newer (by Version), and reports whether it
// wrote. The copy in the shard placement.NamespaceShard names is the one
// clients read.
func PutNamespaceConfig(r pebble.Reader, w *pebble.Batch, shard uint32, ns string, c NamespaceConfig) (bool, error) {
	cur, found, err := GetNamespaceConfig(r, shard, ns)
	if err != nil {
		return false, err
	}
	if found && cur.Version >= c.Version {
		return false, nil
	}
	return true, w.Set(namespaceKey(shard, ns), c.AppendBinary([]byte{namespaceConfigVersion}), nil)
}

// GetNamespaceConfig reads ns's configuration from shard. found is false when
// the namespace was never configured.
func GetNamespaceConfig(r pebble.Reader, shard uint32, ns string) (c NamespaceConfig, found bool, err error) {
	rec, closer, err := r.Get(namespaceKey(shard, ns))
	if errors.Is(err, pebble.ErrNotFound) {
		return NamespaceConfig{}, false, nil
	}
	if err != nil {
		return NamespaceConfig{}, false, err
	}
	defer closer.Close()
	c, err = decodeNamespaceConfig(rec)
	return c, err == nil, err
}
