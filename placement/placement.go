// Package placement decides where things live: which shard an object belongs
// to, and which nodes hold a shard's replicas. It is pure functions over their
// inputs: no I/O, no clock, no randomness, no global state, so every node that
// asks the same question gets the same answer.
//
// Object → shard uses jump consistent hashing (Lamping and Veach, 2014) over a
// 64-bit hash of the namespace and object name. The shard count is fixed when a
// cluster bootstraps, so the "consistent" property matters only for a future
// resharding: growing from n to n+1 shards would move 1/(n+1) of the objects.
//
// Shard → replicas uses rendezvous (highest random weight) hashing: every
// (shard, node) pair gets a weight and a shard's replicas are the nodes with the
// highest weights. A node joining takes over only the replica slots where it
// now ranks in the top r; a node leaving releases only its own slots.
package placement

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"slices"
)

var (
	// ErrNoShards is returned when a shard count is below 1 or above MaxShards.
	ErrNoShards = errors.New("placement: shard count must be between 1 and 2^31-1")
	// ErrNoNodes is returned when replicas are asked of an empty node set.
	ErrNoNodes = errors.New("placement: no nodes to place replicas on")
)

// ObjectID is the stable identifier of an object: hex(sha256(ns + "\x00" + name)),
// as the HTTP API promises.
func ObjectID(ns, name string) string {
	h := sha256.New()
	h.Write([]byte(ns))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return hex.EncodeToString(h.Sum(nil))
}

// objectHash is a 64-bit hash of (ns, name): the first eight bytes of the
// SHA-256 that ObjectID is made of, so both stay in step.
func objectHash(ns, name string) uint64 {
	h := sha256.New()
	h.Write([]byte(ns))
	h.Write([]byte{0})
	h.Write([]byte(name))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// MaxShards is the largest shard count: jump hashing works on int32 buckets.
const MaxShards = math.MaxInt32

// ShardFor returns the shard, in [0, shards), that holds object name in
// namespace ns. shards must be between 1 and MaxShards.
func ShardFor(ns, name string, shards int) (uint32, error) {
	if shards < 1 || shards > MaxShards {
		return 0, ErrNoShards
	}
	return uint32(jump(objectHash(ns, name), int32(shards))), nil
}

// NamespaceShard returns the shard that holds namespace ns's configuration.
// It is the shard of the object with the empty name, a name no client can use
// (object names are 1–1024 bytes).
func NamespaceShard(ns string, shards int) (uint32, error) {
	return ShardFor(ns, "", shards)
}

// jump is Lamping and Veach's jump consistent hash: it maps key to a bucket in
// [0, buckets) so that growing buckets by one moves only 1/buckets of the keys.
func jump(key uint64, buckets int32) int32 {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int32(b)
}

// weight is the rendezvous weight of node for shard: a 64-bit hash of both.
func weight(shard uint32, node string) uint64 {
	h := sha256.New()
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], shard)
	h.Write(s[:])
	h.Write([]byte(node))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Rank returns nodes ordered by their rendezvous weight for shard, highest
// first; ties (which need a 64-bit collision) break by node id. The input is
// not modified and duplicates are dropped.
func Rank(shard uint32, nodes []string) []string {
	type ranked struct {
		node string
		w    uint64
	}
	rs := make([]ranked, 0, len(nodes))
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n] {
			continue
		}
		seen[n] = true
		rs = append(rs, ranked{n, weight(shard, n)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.node
	}
	return out
}

// Replicas returns the replica set of shard over nodes: the top r nodes by
// rendezvous weight, or all of them when there are fewer than r. The first
// node is the shard's preferred leader and the one that bootstraps it.
func Replicas(shard uint32, nodes []string, r int) ([]string, error) {
	ranked := Rank(shard, nodes)
	if len(ranked) == 0 {
		return nil, ErrNoNodes
	}
	if r < 1 {
		r = 1
	}
	if r > len(ranked) {
		r = len(ranked)
	}
	return ranked[:r], nil
}
