package cluster

import "errors"

// Errors of this package. The api package maps them to HTTP answers.
var (
	// ErrNotLeader means this node does not lead the shard: the request was
	// not proposed and may be sent to the leader.
	ErrNotLeader = errors.New("cluster: this node does not lead the shard")
	// ErrNoLeader means the shard has no leader right now; retry later.
	ErrNoLeader = errors.New("cluster: the shard has no leader")
	// ErrCommitUnknown means a write was proposed but its outcome is not
	// known (leadership was lost, or the deadline passed, before it was
	// applied): it may or may not have been committed.
	ErrCommitUnknown = errors.New("cluster: the outcome of the write is unknown")
	// ErrOverloaded means the shard's proposal queue is full.
	ErrOverloaded = errors.New("cluster: the shard is overloaded")
	// ErrUnknownShard means no replica of the shard lives on this node.
	ErrUnknownShard = errors.New("cluster: the shard is not hosted on this node")
	// ErrShardNotReady means the shard's state is being restored from a
	// snapshot and cannot be read yet.
	ErrShardNotReady = errors.New("cluster: the shard is not ready")
	// ErrClosed means the node is shutting down.
	ErrClosed = errors.New("cluster: node is closed")
	// ErrNodeAlive means a node cannot be removed because it is alive:
	// drain it instead.
	ErrNodeAlive = errors.New("cluster: the node is alive; drain it instead of removing it")
	// ErrUnknownNode means no member has that id.
	ErrUnknownNode = errors.New("cluster: no such node")
	// ErrDataDir means the data directory cannot be used.
	ErrDataDir = errors.New("cluster: unusable data directory")
)
