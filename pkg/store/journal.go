package store

import "context"

// A Journal keeps the state file's writes somewhere that outlives this
// machine (with RUNTIME=swarm: the swarm's Raft log, see
// pkg/runtime/swarm/journal.go), so that a daemon started on another host
// rebuilds the same state. The store appends every write transaction's
// changes before the transaction commits locally: a write is acknowledged
// only once the journal holds it.
type Journal interface {
	// Append makes ops durable as one entry, after every entry appended
	// before it. An error aborts the write transaction.
	Append(ctx context.Context, ops []Op) error
	// Replay calls apply with the ops of the last snapshot (if any) and
	// then of every entry appended after it, oldest first.
	Replay(ctx context.Context, apply func(ops []Op) error) error
	// Snapshot replaces every entry appended so far with one holding ops,
	// the whole state. The store calls it with writes held, so no Append
	// runs meanwhile.
	Snapshot(ctx context.Context, ops []Op) error
	// Len is the number of entries appended since the last snapshot: the
	// store takes a snapshot when it grows past a bound.
	Len() int
}

// OpKind is what an Op does to its bucket.
type OpKind string

const (
	OpPut      OpKind = "put"
	OpDelete   OpKind = "delete"
	OpSequence OpKind = "seq" // the bucket's sequence (revisions) becomes Seq
)

// Op is one change inside a write transaction, at the level of the state
// file's buckets: replaying a transaction's ops in order onto the state
// before it gives the state after it. Values are as stored (secret values
// encrypted with the secrets key).
type Op struct {
	Kind   OpKind `json:"o"`
	Bucket string `json:"b"`
	Key    []byte `json:"k,omitempty"`
	Value  []byte `json:"v,omitempty"`
	Seq    uint64 `json:"s,omitempty"`
}
