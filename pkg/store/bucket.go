package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	berrors "go.etcd.io/bbolt/errors"
)

// The store has one read path and one write path, whatever the record and
// whatever the backend. Each kind of record (functions, secrets,
// namespaces, and whatever comes next) is a bucket[T]: JSON records under
// string keys in one named bucket of a kv backend. Bolt and Memory are the
// same engine over two backends, bbolt and plain maps, so the rules that
// decide revisions, generations, no-op writes and notifications are written
// once and cannot drift apart. A new kind of record is a bucket[T] value,
// its name in bucketNames, and operations written with read and write.

// kv is the key/value backend an engine runs on: boltKV (durable) or memKV
// (in memory, for tests). It is the part of bbolt's API the store uses and
// no more, so that the bbolt adapter is a few lines of forwarding and a
// second backend is small.
type kv interface {
	// view runs fn in a read-only transaction.
	view(fn func(kvTx) error) error
	// update runs fn in a read-write transaction, one writer at a time. It
	// commits (durably, for bbolt) only when fn returns nil (and, for a
	// journaled bbolt store, the journal kept what fn wrote) and otherwise
	// leaves no trace. Hooks fn registers with onCommit run once the commit
	// is done and the writer lock released, in the writer's goroutine.
	update(fn func(kvTx) error) error
	// batch is update for writes that come in crowds (async accepts): fn
	// may share its transaction, and its commit, with concurrent batch
	// writes, and so may run more than once (see groupCommitter). fn
	// returning errUnchanged must mean it wrote nothing.
	batch(fn func(kvTx) error) error
	// close releases the backend.
	close() error
}

// kvTx is one transaction of a kv backend.
type kvTx interface {
	// bucket returns the named bucket, nil when it does not exist (the
	// backends create every bucket in bucketNames when they open).
	bucket(name []byte) kvBucket
	// onCommit registers fn to run after a successful commit.
	onCommit(fn func())
}

// kvBucket is one bucket inside a transaction: *bolt.Bucket's methods the
// store uses, plus scan. Values it returns are valid only during the
// transaction.
type kvBucket interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	// NextSequence increments and returns the bucket's sequence, which is
	// kept with the bucket and so survives restarts.
	NextSequence() (uint64, error)
	// scan calls fn with every record whose key starts with prefix (all
	// records for a nil prefix) in byte order of the keys, until fn
	// returns false.
	scan(prefix []byte, fn func(k, v []byte) bool)
	// scanReverse calls fn with every record in reverse byte order of the
	// keys, until fn returns false.
	scanReverse(fn func(k, v []byte) bool)
}

// bucketNames are the buckets every backend holds; a backend creates them
// when it opens, so a file written before one existed simply gains it.
var bucketNames = [][]byte{functionRecords.name, secretRecords.name, namespaceRecords.name, callRecords.name, callPayloads.name, executionRecords.name, executionIndex, imageRecords.name, addressRecords.name, buildRecords.name}

// errUnchanged aborts a write transaction that would change nothing, so a
// no-op neither consumes a revision nor wakes watchers (and bbolt skips the
// commit and its fsync).
var errUnchanged = errors.New("unchanged")

// subject is what an operation's errors start with: `function "ns/fn"`,
// `list "dev"`, `list namespaces`. It is kept in parts so that the read
// path formats nothing unless something fails.
type subject struct {
	what string
	key  string
	bare bool // no key: just what
}

func (s subject) String() string {
	if s.bare {
		return s.what
	}
	return fmt.Sprintf("%s %q", s.what, s.key)
}

// wrap prefixes err with the subject, keeping it matchable with errors.Is.
func (s subject) wrap(err error) error { return fmt.Errorf("%s: %w", s, err) }

// txn is one transaction as the buckets see it. It notes whether anything
// was written, so that a write that changed nothing is rolled back instead
// of committed, and which watch keys to notify once the commit is done.
type txn struct {
	kv      kvTx
	written bool
	notify  []string
}

// bucket is one kind of record, kept JSON-encoded (the on-disk format) in
// the kv bucket name. Every put of a record returns it decoded from the
// stored bytes, so a write returns exactly what a later read will (JSON
// drops e.g. empty slices) and never aliases the caller's maps.
type bucket[T any] struct {
	// name is the kv bucket.
	name []byte
	// kind names a record in errors: `function "ns/fn": not found`.
	kind string
	// key is the key a record belongs under, which Check verifies.
	key func(T) string
	// revision, when set, points at the record's revision: every put
	// stamps it with the bucket's next sequence number, and every delete
	// consumes one too, so the sequence alone orders all writes of the
	// bucket. When nil the bucket's records have no revisions.
	revision func(*T) *uint64
	// watchKey, when set, maps a record's key to the key watchers receive
	// when it is written or deleted. When nil, writes wake no one.
	watchKey func(key string) string
}

func (b *bucket[T]) about(key string) subject { return subject{what: b.kind, key: key} }

// decode copies a stored record out of v, which may be memory owned by a
// bbolt transaction and invalid once it ends.
func (b *bucket[T]) decode(key string, v []byte) (T, error) {
	var rec T
	if err := json.Unmarshal(v, &rec); err != nil {
		var zero T
		return zero, fmt.Errorf("%s: decode: %w", b.about(key), err)
	}
	return rec, nil
}

// exists reports whether a record is stored under key.
func (b *bucket[T]) exists(tx *txn, key string) bool {
	return tx.kv.bucket(b.name).Get([]byte(key)) != nil
}

// get returns the record under key, or an error wrapping ErrNotFound.
func (b *bucket[T]) get(tx *txn, key string) (T, error) {
	v := tx.kv.bucket(b.name).Get([]byte(key))
	if v == nil {
		var zero T
		return zero, b.about(key).wrap(ErrNotFound)
	}
	return b.decode(key, v)
}

// list returns the records under prefix (all for nil) sorted by key; an
// empty list is empty, not nil.
func (b *bucket[T]) list(tx *txn, prefix []byte) ([]T, error) {
	list := make([]T, 0)
	var err error
	tx.kv.bucket(b.name).scan(prefix, func(k, v []byte) bool {
		var rec T
		if rec, err = b.decode(string(k), v); err != nil {
			return false
		}
		list = append(list, rec)
		return true
	})
	return list, err
}

// any reports whether any record's key starts with prefix.
func (b *bucket[T]) any(tx *txn, prefix []byte) bool {
	found := false
	tx.kv.bucket(b.name).scan(prefix, func(_, _ []byte) bool {
		found = true
		return false
	})
	return found
}

// insert puts rec under key, which must be free (ErrConflict otherwise).
func (b *bucket[T]) insert(tx *txn, key string, rec T) (T, error) {
	if b.exists(tx, key) {
		var zero T
		return zero, b.about(key).wrap(ErrConflict)
	}
	return b.put(tx, key, rec)
}

// put stores rec under key, stamped with the next revision when the bucket
// has revisions, and returns it as stored.
func (b *bucket[T]) put(tx *txn, key string, rec T) (T, error) {
	v, err := b.save(tx, key, rec)
	if err != nil {
		var zero T
		return zero, err
	}
	return b.decode(key, v)
}

// save is put without decoding the record back, for the hot path of async
// calls, whose records hold nothing JSON would change (no maps the caller
// could alias, times already in UTC): it returns the bytes stored.
func (b *bucket[T]) save(tx *txn, key string, rec T) ([]byte, error) {
	kb := tx.kv.bucket(b.name)
	if b.revision != nil {
		rev, err := kb.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("%s: next revision: %w", b.about(key), err)
		}
		*b.revision(&rec) = rev
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", b.about(key), err)
	}
	if err := kb.Put([]byte(key), v); err != nil {
		return nil, fmt.Errorf("%s: put: %w", b.about(key), err)
	}
	b.written(tx, key)
	return v, nil
}

// delete removes the record under key (ErrNotFound when absent), consuming
// a revision like every other write when the bucket has revisions.
func (b *bucket[T]) delete(tx *txn, key string) error {
	kb := tx.kv.bucket(b.name)
	if kb.Get([]byte(key)) == nil {
		return b.about(key).wrap(ErrNotFound)
	}
	if err := kb.Delete([]byte(key)); err != nil {
		return fmt.Errorf("%s: delete: %w", b.about(key), err)
	}
	if b.revision != nil {
		if _, err := kb.NextSequence(); err != nil {
			return fmt.Errorf("%s: next revision: %w", b.about(key), err)
		}
	}
	b.written(tx, key)
	return nil
}

// written records in tx that key changed, for write to commit and notify.
func (b *bucket[T]) written(tx *txn, key string) {
	tx.written = true
	if b.watchKey != nil {
		tx.notify = append(tx.notify, b.watchKey(key))
	}
}

// check decodes every record, checks that it sits under its own key and
// runs also (when set) on it; it returns every problem found, joined.
func (b *bucket[T]) check(tx *txn, also func(T) error) error {
	kb := tx.kv.bucket(b.name)
	if kb == nil {
		return fmt.Errorf("bucket %s is missing", b.name)
	}
	var errs []error
	kb.scan(nil, func(k, v []byte) bool {
		rec, err := b.decode(string(k), v)
		switch {
		case err != nil:
			errs = append(errs, err)
		case b.key(rec) != string(k):
			errs = append(errs, fmt.Errorf("%s: record is for %q", b.about(string(k)), b.key(rec)))
		case also != nil:
			if err := also(rec); err != nil {
				errs = append(errs, err)
			}
		}
		return true
	})
	return errors.Join(errs...)
}

// prefixOf is the key prefix of a namespace's records (nil, all, for "").
func prefixOf(namespace string) []byte {
	if namespace == "" {
		return nil
	}
	return []byte(namespace + "/")
}

// engine implements Store over a kv backend: Bolt is an engine over bbolt,
// Memory one over maps, so both share every rule and differ only in where
// the bytes live.
type engine struct {
	kv       kv
	sealer   *sealer // encrypts secret values (secrets.go)
	watchers watchers
}

// read runs fn in a read transaction unless ctx is done. fn's own errors
// come back as they are; ctx's and the backend's are wrapped with about.
func (e *engine) read(ctx context.Context, about subject, fn func(tx *txn) error) error {
	if err := ctx.Err(); err != nil {
		return about.wrap(err)
	}
	var opErr error
	err := e.kv.view(func(kt kvTx) error {
		opErr = fn(&txn{kv: kt})
		return opErr
	})
	if err != nil && err != opErr {
		return about.wrap(err)
	}
	return err
}

// listIn returns the records of b under prefix, sorted by key, from one
// read transaction; every error is wrapped with about.
func listIn[T any](ctx context.Context, e *engine, about subject, b *bucket[T], prefix []byte) ([]T, error) {
	var list []T
	err := e.read(ctx, about, func(tx *txn) error {
		var err error
		if list, err = b.list(tx, prefix); err != nil {
			return about.wrap(err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// write is the store's one write path. It runs op in one write transaction
// unless ctx is done; op reaches every bucket it needs through tx, so a
// check across buckets (does the namespace exist?) commits atomically with
// the write. When op wrote something the transaction commits (and, for
// bbolt, fsyncs) and the watch keys of what it wrote are notified from the
// commit hook, so watchers never see uncommitted state; the hook runs in
// the writer's goroutine, which is why notify must not block. When op wrote
// nothing, the transaction is rolled back: no write at all. op's own errors
// come back as they are; ctx's and the backend's are wrapped with about.
func write[R any](ctx context.Context, e *engine, about subject, op func(tx *txn) (R, error)) (R, error) {
	return commit(ctx, e, e.kv.update, about, op)
}

// writeGrouped is write for writes that arrive in crowds: concurrent ones
// share a transaction and its fsync (kv.batch). op may run more than once.
func writeGrouped[R any](ctx context.Context, e *engine, about subject, op func(tx *txn) (R, error)) (R, error) {
	return commit(ctx, e, e.kv.batch, about, op)
}

// commit is write's body, over the transaction runner run.
func commit[R any](ctx context.Context, e *engine, run func(func(kvTx) error) error, about subject, op func(tx *txn) (R, error)) (R, error) {
	var (
		res, zero R
		opErr     error
	)
	if err := ctx.Err(); err != nil {
		return zero, about.wrap(err)
	}
	err := run(func(kt kvTx) error {
		tx := &txn{kv: kt}
		res, opErr = op(tx)
		switch {
		case opErr != nil:
			return opErr
		case !tx.written:
			return errUnchanged
		}
		if keys := tx.notify; len(keys) > 0 {
			kt.onCommit(func() {
				for _, k := range keys {
					e.watchers.notify(k)
				}
			})
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errUnchanged):
		return res, nil
	case err == opErr:
		return zero, err
	case errors.Is(err, ErrNotJournaled), errors.Is(err, berrors.ErrDatabaseNotOpen):
		// Not the disk's fault: the journal's, or the daemon is stopping.
		return zero, fmt.Errorf("%s: write: %w", about, err)
	default:
		// The commit itself failed (ENOSPC, EIO): bbolt rolled it back, so
		// nothing was written and nothing is acknowledged.
		return zero, fmt.Errorf("%s: write: %w: %w", about, ErrNotStored, err)
	}
}

// Watch implements Store.
func (e *engine) Watch(ctx context.Context, opts ...WatchOption) *Watcher {
	return e.watchers.add(ctx, opts)
}

// Close implements Store: it releases the backend. Bolt closes its state
// file once writes in flight finish; Memory keeps its records.
func (e *engine) Close() error { return e.kv.close() }
