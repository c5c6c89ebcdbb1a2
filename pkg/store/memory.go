package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/openfaas/faas-provider/types"
)

// Memory is a Store that keeps records in memory, for fast tests of the
// packages built on Store. It shares the write rules with Bolt and keeps
// records JSON-encoded like Bolt does, so Generation, Revision, notifications
// and what round-trips through it match the real store exactly. Nothing
// survives the process.
type Memory struct {
	mu       sync.RWMutex
	records  map[string][]byte // key -> JSON; values are never mutated, only replaced
	seq      uint64            // last revision handed out
	watchers watchers

	// namespaces maps name -> JSON types.FunctionNamespace, like records;
	// guarded by mu.
	namespaces map[string][]byte
	// secrets is the secrets bucket (secrets.go); guarded by mu.
	secrets memSecrets
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{records: make(map[string][]byte), namespaces: make(map[string][]byte), secrets: newMemSecrets()}
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, key string) (Function, error) {
	if err := ctx.Err(); err != nil {
		return Function{}, fmt.Errorf("function %q: %w", key, err)
	}
	m.mu.RLock()
	v, ok := m.records[key]
	m.mu.RUnlock()
	if !ok {
		return Function{}, fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	return decode(key, v)
}

// List implements Store.
func (m *Memory) List(ctx context.Context, namespace string) ([]Function, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", namespace, err)
	}
	prefix := ""
	if namespace != "" {
		prefix = namespace + "/"
	}
	m.mu.RLock()
	keys := make([]string, 0, len(m.records))
	values := make(map[string][]byte, len(m.records))
	for k, v := range m.records {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
			values[k] = v
		}
	}
	m.mu.RUnlock()
	sort.Strings(keys)
	fns := make([]Function, 0, len(keys))
	for _, k := range keys {
		f, err := decode(k, values[k])
		if err != nil {
			return nil, err
		}
		fns = append(fns, f)
	}
	return fns, nil
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, spec types.FunctionDeployment, replicas uint64) (Function, error) {
	ns, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	return m.write(ctx, key, func(t table) (Function, bool, error) {
		// write holds m.mu, so the check and the create are one step.
		if err := namespaceIn(mapTable(m.namespaces), ns); err != nil {
			return Function{}, false, err
		}
		f, err := createIn(t, spec, replicas, now())
		return f, err == nil, err
	})
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, spec types.FunctionDeployment, clamp func(current uint64) uint64) (Function, error) {
	ns, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	return m.write(ctx, key, func(t table) (Function, bool, error) {
		if err := namespaceIn(mapTable(m.namespaces), ns); err != nil {
			return Function{}, false, err
		}
		return updateIn(t, spec, clamp, now())
	})
}

// Scale implements Store.
func (m *Memory) Scale(ctx context.Context, key string, replicas uint64) (Function, error) {
	return m.write(ctx, key, func(t table) (Function, bool, error) {
		return scaleIn(t, key, replicas, now())
	})
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	_, err := m.write(ctx, key, func(t table) (Function, bool, error) {
		return Function{}, true, deleteIn(t, key)
	})
	return err
}

// Watch implements Store.
func (m *Memory) Watch(ctx context.Context, opts ...WatchOption) *Watcher {
	return m.watchers.add(ctx, opts)
}

// Close implements Store. It keeps the records: there is nothing to release.
func (m *Memory) Close() error { return nil }

// write runs op against a staged view of the records and applies it only
// when op succeeded and changed something, mirroring a bbolt transaction
// that commits or rolls back as a whole. Watchers are told after the lock is
// released, as bbolt's commit handlers run after its writer lock is.
func (m *Memory) write(ctx context.Context, key string, op func(t table) (Function, bool, error)) (Function, error) {
	if err := ctx.Err(); err != nil {
		return Function{}, fmt.Errorf("function %q: %w", key, err)
	}
	m.mu.Lock()
	tx := &memTx{m: m, seq: m.seq, writes: make(map[string][]byte)}
	f, changed, err := op(tx)
	if err == nil && changed {
		tx.commit()
	}
	m.mu.Unlock()
	if err != nil {
		return Function{}, err
	}
	if changed {
		m.watchers.notify(key)
	}
	return f, nil
}

// memTx stages one write's changes over Memory's records; it implements
// table. A nil value in writes is a staged delete.
type memTx struct {
	m      *Memory
	seq    uint64
	writes map[string][]byte
}

func (tx *memTx) Get(key []byte) []byte {
	if v, ok := tx.writes[string(key)]; ok {
		return v
	}
	return tx.m.records[string(key)]
}

func (tx *memTx) Put(key, value []byte) error {
	tx.writes[string(key)] = value
	return nil
}

func (tx *memTx) Delete(key []byte) error {
	tx.writes[string(key)] = nil
	return nil
}

func (tx *memTx) NextSequence() (uint64, error) {
	tx.seq++
	return tx.seq, nil
}

// commit applies the staged changes; the caller holds m.mu.
func (tx *memTx) commit() {
	for k, v := range tx.writes {
		if v == nil {
			delete(tx.m.records, k)
		} else {
			tx.m.records[k] = v
		}
	}
	tx.m.seq = tx.seq
}
