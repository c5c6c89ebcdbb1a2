package store

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"sync"
)

// Memory is a Store that keeps records in memory, for fast tests of the
// packages built on Store. It is the engine Bolt is, over maps instead of
// bbolt, and keeps records JSON-encoded like Bolt does, so Generation,
// Revision, notifications and what round-trips through it match the real
// store exactly. Nothing survives the process; secrets are sealed with a
// key that lives only in memory.
type Memory struct {
	engine
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	m := &memKV{buckets: make(map[string]*memBucket, len(bucketNames))}
	for _, name := range bucketNames {
		m.buckets[string(name)] = &memBucket{records: make(map[string][]byte)}
	}
	return &Memory{engine{kv: m, sealer: randomSealer()}}
}

// errReadOnly is what a write in a read transaction fails with, as bbolt's
// does.
var errReadOnly = errors.New("write in a read-only transaction")

// memKV is the kv backend over maps. One RWMutex stands for bbolt's locks:
// readers share it, a writer holds it alone, and a write is applied in
// place with an undo log that rolls it back unless it commits. Stored
// values are never mutated, only replaced, so a value a reader got stays
// valid. close releases nothing: the records stay.
type memKV struct {
	mu      sync.RWMutex
	buckets map[string]*memBucket
}

// memBucket is one bucket: records by key and the bucket's sequence.
type memBucket struct {
	records map[string][]byte
	seq     uint64
}

func (m *memKV) view(fn func(kvTx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(&memTx{kv: m})
}

func (m *memKV) update(fn func(kvTx) error) error {
	tx, err := m.apply(fn)
	if err != nil {
		return err
	}
	for _, hook := range tx.hooks {
		hook()
	}
	return nil
}

// apply runs fn holding the writer lock and undoes its changes unless it
// returns nil, also when it panics.
func (m *memKV) apply(fn func(kvTx) error) (*memTx, error) {
	m.mu.Lock()
	tx := &memTx{kv: m, writable: true}
	committed := false
	defer func() {
		if !committed {
			for i := len(tx.undo) - 1; i >= 0; i-- {
				tx.undo[i]()
			}
		}
		m.mu.Unlock()
	}()
	err := fn(tx)
	committed = err == nil
	return tx, err
}

// batch is update: without an fsync there is nothing to share.
func (m *memKV) batch(fn func(kvTx) error) error { return m.update(fn) }

func (m *memKV) close() error { return nil }

// memTx is one transaction of memKV.
type memTx struct {
	kv       *memKV
	writable bool
	undo     []func() // restores what the transaction changed, oldest first
	hooks    []func() // commit hooks
}

func (tx *memTx) bucket(name []byte) kvBucket {
	if b := tx.kv.buckets[string(name)]; b != nil {
		return memTxBucket{tx: tx, b: b}
	}
	return nil
}

func (tx *memTx) onCommit(fn func()) { tx.hooks = append(tx.hooks, fn) }

// memTxBucket is a memBucket seen through a transaction.
type memTxBucket struct {
	tx *memTx
	b  *memBucket
}

func (t memTxBucket) Get(key []byte) []byte { return t.b.records[string(key)] }

func (t memTxBucket) Put(key, value []byte) error {
	return t.set(string(key), bytes.Clone(value), true)
}

func (t memTxBucket) Delete(key []byte) error { return t.set(string(key), nil, false) }

// set stores (or, without keep, deletes) the record under k, logging how to
// undo it.
func (t memTxBucket) set(k string, v []byte, keep bool) error {
	if !t.tx.writable {
		return errReadOnly
	}
	old, had := t.b.records[k]
	t.tx.undo = append(t.tx.undo, func() {
		if had {
			t.b.records[k] = old
		} else {
			delete(t.b.records, k)
		}
	})
	if keep {
		t.b.records[k] = v
	} else {
		delete(t.b.records, k)
	}
	return nil
}

func (t memTxBucket) NextSequence() (uint64, error) {
	if !t.tx.writable {
		return 0, errReadOnly
	}
	old := t.b.seq
	t.tx.undo = append(t.tx.undo, func() { t.b.seq = old })
	t.b.seq++
	return t.b.seq, nil
}

func (t memTxBucket) scan(prefix []byte, fn func(k, v []byte) bool) {
	p := string(prefix)
	keys := make([]string, 0, len(t.b.records))
	for k := range t.b.records {
		if strings.HasPrefix(k, p) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // byte order, as bbolt keeps keys
	for _, k := range keys {
		if !fn([]byte(k), t.b.records[k]) {
			return
		}
	}
}

func (t memTxBucket) scanReverse(fn func(k, v []byte) bool) {
	keys := make([]string, 0, len(t.b.records))
	for k := range t.b.records {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	for _, k := range keys {
		if !fn([]byte(k), t.b.records[k]) {
			return
		}
	}
}
