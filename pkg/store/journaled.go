package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// This file is the store's side of a Journal (journal.go): recording the
// ops of every write transaction and appending them before the commit,
// snapshotting the whole state when the journal grows, and rebuilding the
// state file from the journal on open.

// DefaultSnapshotAfter is how many entries a journal may hold beyond its
// last snapshot before the store replaces them all with a new snapshot. It
// bounds what a daemon started elsewhere replays, at the cost of one full
// dump of the state every that many writes.
const DefaultSnapshotAfter = 1000

// journalTimeout bounds one Append or Snapshot. Writes are held meanwhile
// (the call runs inside the write transaction), so a journal that hangs must
// fail writes rather than stall the daemon; 30s rides out a swarm leader
// election.
const journalTimeout = 30 * time.Second

// ErrNotJournaled is what a write fails with (wrapped, with the journal's
// own error) when the journal could not keep it: the write is rolled back
// and must be treated as not done.
var ErrNotJournaled = errors.New("the write was not acknowledged because the journal could not keep it")

// JournalOption configures the journaling of OpenJournaled.
type JournalOption func(*journaler)

// SnapshotAfter sets how many entries the journal may hold beyond its last
// snapshot before the store takes a new one (DefaultSnapshotAfter unless
// set). 0 snapshots after every write; a negative n counts as 0.
func SnapshotAfter(n int) JournalOption {
	return func(j *journaler) { j.snapshotAfter = max(n, 0) }
}

// JournalLogger sets where the store reports journal trouble that does not
// fail a write (a failed snapshot); logrus's standard logger unless set.
func JournalLogger(log logrus.FieldLogger) JournalOption {
	return func(j *journaler) {
		if log != nil {
			j.log = log
		}
	}
}

// journaler appends the ops of write transactions to a Journal. Its methods
// run inside bbolt write transactions, so one at a time: only resync, also
// set after a transaction ended, needs to be atomic.
type journaler struct {
	j             Journal
	snapshotAfter int
	timeout       time.Duration
	log           logrus.FieldLogger

	// resync forces a snapshot at the next append. It is set when the
	// journal may hold an entry the state file does not: an Append that
	// failed may still have kept its entry (a timeout after the swarm
	// accepted it), and a local commit may fail after its Append succeeded.
	// A snapshot replaces every entry with the state file's content, so
	// the two agree again.
	resync atomic.Bool
}

func newJournaler(j Journal, opts []JournalOption) *journaler {
	jr := &journaler{j: j, snapshotAfter: DefaultSnapshotAfter, timeout: journalTimeout, log: logrus.StandardLogger()}
	for _, o := range opts {
		o(jr)
	}
	return jr
}

// journalTx is a bbolt write transaction as a kvTx that records, in order,
// every op done through its buckets, for the journal.
type journalTx struct {
	tx       *bolt.Tx
	ops      []Op
	appended bool // the journal holds ops
}

func (t *journalTx) bucket(name []byte) kvBucket {
	if b := t.tx.Bucket(name); b != nil {
		return journalBucket{b: b, name: string(name), tx: t}
	}
	return nil
}

func (t *journalTx) onCommit(fn func()) { t.tx.OnCommit(fn) }

// record notes op once bbolt has done it. Keys and values are copied: the
// journal may keep ops beyond the transaction, and a value read from the
// file (Get) lives in bbolt's memory map, which is only valid until then.
func (t *journalTx) record(op Op) {
	op.Key, op.Value = bytes.Clone(op.Key), bytes.Clone(op.Value)
	t.ops = append(t.ops, op)
}

// journalBucket is a bbolt bucket as a kvBucket that records its writes in
// its transaction.
type journalBucket struct {
	b    *bolt.Bucket
	name string
	tx   *journalTx
}

func (b journalBucket) Get(key []byte) []byte { return b.b.Get(key) }

func (b journalBucket) Put(key, value []byte) error {
	if err := b.b.Put(key, value); err != nil {
		return err
	}
	b.tx.record(Op{Kind: OpPut, Bucket: b.name, Key: key, Value: value})
	return nil
}

func (b journalBucket) Delete(key []byte) error {
	if err := b.b.Delete(key); err != nil {
		return err
	}
	b.tx.record(Op{Kind: OpDelete, Bucket: b.name, Key: key})
	return nil
}

func (b journalBucket) NextSequence() (uint64, error) {
	seq, err := b.b.NextSequence()
	if err != nil {
		return 0, err
	}
	// The new value, not "increment": replaying it is idempotent.
	b.tx.record(Op{Kind: OpSequence, Bucket: b.name, Seq: seq})
	return seq, nil
}

func (b journalBucket) scan(prefix []byte, fn func(k, v []byte) bool) {
	boltBucket{b.b}.scan(prefix, fn)
}

func (b journalBucket) scanReverse(fn func(k, v []byte) bool) {
	boltBucket{b.b}.scanReverse(fn)
}

// update is boltKV.update for a journaled store: fn runs in a recording
// transaction whose ops are appended before it commits.
func (j *journaler) update(db *bolt.DB, fn func(kvTx) error) error {
	var jt *journalTx
	err := db.Update(func(tx *bolt.Tx) error {
		jt = &journalTx{tx: tx}
		if err := fn(jt); err != nil {
			return err
		}
		return j.commit(jt)
	})
	j.settle(jt, err)
	return err
}

// commit appends t's ops, if any, as the last step of its transaction, and
// takes a snapshot when one is due. An Append error is returned, so that
// the transaction rolls back and its writers hear that nothing was done; a
// Snapshot error is only logged, as the entries already hold the write.
func (j *journaler) commit(t *journalTx) error {
	if len(t.ops) == 0 {
		return nil // nothing written: nothing to keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	err := j.j.Append(ctx, t.ops)
	cancel()
	if err != nil {
		j.resync.Store(true)
		return fmt.Errorf("%w: %w", ErrNotJournaled, err)
	}
	t.appended = true
	if j.resync.Load() || j.j.Len() > j.snapshotAfter {
		j.snapshot(t.tx)
	}
	return nil
}

// settle runs once a journaled transaction ended with err: if its ops were
// appended but the local commit failed, the journal holds a write the state
// file does not, which the next snapshot must undo.
func (j *journaler) settle(t *journalTx, err error) {
	if t != nil && t.appended && err != nil {
		j.resync.Store(true)
	}
}

// snapshot replaces the journal's entries with the state tx holds, which
// includes tx's own writes (just appended). Writes are held meanwhile, so
// the dump is consistent with the entries it replaces. Failing, it logs and
// leaves the entries as they are; the next append tries again, since Len is
// still past the bound (or resync still set).
func (j *journaler) snapshot(tx *bolt.Tx) {
	ops, err := stateOps(tx)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
		err = j.j.Snapshot(ctx, ops)
		cancel()
	}
	if err != nil {
		// Only counts and the journal's error: ops hold sealed secrets.
		j.log.WithError(err).WithFields(logrus.Fields{
			"entries":       j.j.Len(),
			"snapshotAfter": j.snapshotAfter,
		}).Warn("journal snapshot failed; the write is kept in the journal's entries and the snapshot is retried at the next write")
		return
	}
	j.resync.Store(false)
}

// stateOps is the whole state tx holds as ops that rebuild it on an empty
// state file: every bucket of bucketNames, its sequence and its records.
func stateOps(tx *bolt.Tx) ([]Op, error) {
	var ops []Op
	for _, name := range bucketNames {
		b := tx.Bucket(name)
		if b == nil {
			return nil, fmt.Errorf("bucket %s is missing", name)
		}
		if seq := b.Sequence(); seq != 0 {
			ops = append(ops, Op{Kind: OpSequence, Bucket: string(name), Seq: seq})
		}
		boltBucket{b}.scan(nil, func(k, v []byte) bool {
			// Copies: k and v live in bbolt's memory map.
			ops = append(ops, Op{Kind: OpPut, Bucket: string(name), Key: bytes.Clone(k), Value: bytes.Clone(v)})
			return true
		})
	}
	return ops, nil
}

// applyOp does op, from the journal, in tx. Only the buckets of
// bucketNames are written: a journal from a newer dockerfaasd naming a
// bucket this one does not know is refused rather than half understood,
// and the meta bucket (schema version) is the binary's, not the journal's.
func applyOp(tx *bolt.Tx, op Op) error {
	if !slices.ContainsFunc(bucketNames, func(n []byte) bool { return string(n) == op.Bucket }) {
		return fmt.Errorf("unknown bucket %q", op.Bucket)
	}
	b := tx.Bucket([]byte(op.Bucket))
	if b == nil {
		return fmt.Errorf("bucket %s is missing", op.Bucket)
	}
	var err error
	switch op.Kind {
	case OpPut:
		// bbolt keeps the slices until the commit; the journal may reuse
		// them for its next entry.
		err = b.Put(bytes.Clone(op.Key), bytes.Clone(op.Value))
	case OpDelete:
		err = b.Delete(op.Key)
	case OpSequence:
		err = b.SetSequence(op.Seq)
	default:
		return fmt.Errorf("unknown op %q on bucket %s", op.Kind, op.Bucket)
	}
	if err != nil {
		return fmt.Errorf("%s %s %q: %w", op.Kind, op.Bucket, op.Key, err)
	}
	return nil
}

// OpenJournaled opens a state file that is only a cache of j: the state
// j holds is what counts, so that a daemon started on another host (with
// RUNTIME=swarm, after its manager died) goes on from every acknowledged
// write.
//
// Whatever the file at path holds is discarded: it is emptied (under its
// lock, so a daemon still running on it makes this fail, as Open does,
// instead of having its file pulled away) or, when it is not a file bbolt
// can read, removed and created again. The schema is then created and j
// replayed into it, in one transaction; replay appends nothing to j. From
// then on every write is appended to j before it commits (a write j cannot
// keep fails with ErrNotJournaled and is not done), and j is snapshotted
// when it grows past SnapshotAfter entries.
//
// Secret values are kept as sealed with the secrets key, in j as in the
// file, so keyFile must hold the same key on every host that may run the
// daemon (a swarm secret, say): a key created here because keyFile is
// missing cannot open secrets j already holds, and OpenJournaled fails then
// rather than start with secrets it cannot read.
func OpenJournaled(ctx context.Context, path, keyFile string, j Journal, opts ...JournalOption) (*Bolt, error) {
	return openJournaled(ctx, path, keyFile, j, lockTimeout, opts)
}

func openJournaled(ctx context.Context, path, keyFile string, j Journal, timeout time.Duration, opts []JournalOption) (*Bolt, error) {
	if j == nil {
		return nil, fmt.Errorf("open state file %s: no journal", path)
	}
	jr := newJournaler(j, opts)
	db, err := openRebuildable(path, timeout, jr.log)
	if err != nil {
		return nil, err
	}
	applied := 0 // calls of apply: the snapshot, if any, is the first
	err = db.Update(func(tx *bolt.Tx) error {
		if err := discardAll(tx); err != nil {
			return err
		}
		if err := initSchema(tx); err != nil {
			return err
		}
		return j.Replay(ctx, func(ops []Op) error {
			applied++
			for i, op := range ops {
				if err := applyOp(tx, op); err != nil {
					return fmt.Errorf("replayed entry %d (counting the snapshot), op %d: %w", applied, i, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("rebuild state file %s from the journal: %w", path, err)
	}
	s := newBolt(db, jr)
	if err := useSecretsKey(&s.engine, keyFile); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s.keyFile = keyFile
	return s, nil
}

// openRebuildable opens the bbolt file at path for OpenJournaled. A file
// bbolt cannot open for a reason other than its lock (torn, corrupt, not a
// bbolt file) is removed and created again: it is only a cache of the
// journal. A locked one is left alone, as Open leaves it.
func openRebuildable(path string, timeout time.Duration, log logrus.FieldLogger) (*bolt.DB, error) {
	db, err := openFile(path, timeout)
	if err == nil || errors.Is(err, berrors.ErrTimeout) {
		return db, err
	}
	switch rmErr := os.Remove(path); {
	case errors.Is(rmErr, fs.ErrNotExist):
		return nil, err // no file to blame: the error is about something else
	case rmErr != nil:
		return nil, fmt.Errorf("%w (removing it failed too: %w)", err, rmErr)
	}
	log.WithError(err).WithField("path", path).Warn("state file unreadable: removed it, rebuilding it from the journal")
	return openFile(path, timeout)
}

// discardAll deletes every top-level bucket of tx, leaving an empty file.
func discardAll(tx *bolt.Tx) error {
	var names [][]byte
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return fmt.Errorf("list buckets: %w", err)
	}
	for _, name := range names {
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("discard bucket %s: %w", name, err)
		}
	}
	return nil
}
