package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
)

// Sentinel errors of namespaces; implementations wrap them with %w.
var (
	// ErrNamespaceNotFound means a function (or secret) was written into a
	// namespace that does not exist. It deliberately does not match
	// ErrNotFound: the caller's record may well exist, its namespace does not.
	ErrNamespaceNotFound = errors.New("namespace not found")
	// ErrNotEmpty means a namespace still holds functions or secrets and so
	// cannot be deleted.
	ErrNotEmpty = errors.New("namespace not empty")
	// ErrDefaultNamespace means an attempt to delete DefaultNamespace, which
	// always exists.
	ErrDefaultNamespace = errors.New("the default namespace cannot be deleted")
)

// Namespaces is the part of Store that keeps namespaces: a name plus the
// labels and annotations they were created with, stored verbatim.
// DefaultNamespace always exists, whether or not it was ever written, and
// cannot be deleted. Every function lives in an existing namespace: Create
// and Update of a function check its namespace, and DeleteNamespace checks
// for functions, inside the same write, so the two can never interleave.
// Namespace writes do not wake watchers: no function key changes.
type Namespaces interface {
	// GetNamespace returns the namespace called name or an error wrapping
	// ErrNotFound.
	GetNamespace(ctx context.Context, name string) (types.FunctionNamespace, error)
	// ListNamespaces returns every namespace, DefaultNamespace first and the
	// rest sorted by name.
	ListNamespaces(ctx context.Context) ([]types.FunctionNamespace, error)
	// CreateNamespace stores a new namespace; it fails with ErrConflict when
	// it exists (DefaultNamespace always does), and with an error matching
	// no sentinel when the name is empty or contains '/'.
	CreateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error)
	// UpdateNamespace replaces the labels and annotations of an existing
	// namespace (ErrNotFound otherwise).
	UpdateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error)
	// DeleteNamespace removes a namespace: ErrNotFound when absent,
	// ErrDefaultNamespace for DefaultNamespace, ErrNotEmpty while any
	// function or secret lives in it (then nothing changes).
	DeleteNamespace(ctx context.Context, name string) error
}

// namespacesBucket holds one JSON-encoded types.FunctionNamespace per name.
var namespacesBucket = []byte("namespaces")

// getter is the read side of a table, all a namespace check needs.
type getter interface {
	Get(key []byte) []byte
}

// namespaceTable is what a namespace write needs: a bbolt bucket inside a
// transaction, or Memory's map under its lock (mapTable). Writing the rules
// once, against this, keeps the two stores answering alike, as table does
// for functions.
type namespaceTable interface {
	getter
	Put(key, value []byte) error
}

// namespaceIn fails with ErrNamespaceNotFound unless namespace exists in ns,
// the namespaces table of the write it is called in.
func namespaceIn(ns getter, namespace string) error {
	if namespace == DefaultNamespace || ns.Get([]byte(namespace)) != nil {
		return nil
	}
	return fmt.Errorf("namespace %q: %w", namespace, ErrNamespaceNotFound)
}

// checkNamespaceName refuses names that could not be stored or addressed.
func checkNamespaceName(name string) error {
	switch {
	case name == "":
		return errors.New("namespace: empty name")
	case strings.Contains(name, "/"):
		return fmt.Errorf("namespace %q: name contains '/'", name)
	}
	return nil
}

// encodeNamespace is what gets stored for ns.
func encodeNamespace(ns types.FunctionNamespace) ([]byte, error) {
	v, err := json.Marshal(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: encode: %w", ns.Name, err)
	}
	return v, nil
}

// namespaceValue checks a namespace write before it takes the writer lock
// and returns what it will store.
func namespaceValue(ctx context.Context, ns types.FunctionNamespace) ([]byte, error) {
	if err := checkNamespaceName(ns.Name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("namespace %q: %w", ns.Name, err)
	}
	return encodeNamespace(ns)
}

// putNamespaceIn stores v, the encoded namespace name: as a new namespace
// when create is set, else over an existing one. DefaultNamespace always
// exists, written or not.
func putNamespaceIn(t namespaceTable, name string, v []byte, create bool) error {
	exists := t.Get([]byte(name)) != nil || name == DefaultNamespace
	switch {
	case create && exists:
		return fmt.Errorf("namespace %q: %w", name, ErrConflict)
	case !create && !exists:
		return fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	return t.Put([]byte(name), v)
}

// decodeNamespace copies a stored namespace out of v, which may be memory
// owned by a bbolt transaction.
func decodeNamespace(name string, v []byte) (types.FunctionNamespace, error) {
	var ns types.FunctionNamespace
	if err := json.Unmarshal(v, &ns); err != nil {
		return types.FunctionNamespace{}, fmt.Errorf("namespace %q: decode: %w", name, err)
	}
	return ns, nil
}

// getNamespaceIn reads a namespace; DefaultNamespace exists even when it was
// never written.
func getNamespaceIn(ns getter, name string) (types.FunctionNamespace, error) {
	if v := ns.Get([]byte(name)); v != nil {
		return decodeNamespace(name, v)
	}
	if name == DefaultNamespace {
		return types.FunctionNamespace{Name: DefaultNamespace}, nil
	}
	return types.FunctionNamespace{}, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
}

// sortNamespaces puts DefaultNamespace first, adding it when it was never
// written, and the rest in name order.
func sortNamespaces(list []types.FunctionNamespace) []types.FunctionNamespace {
	hasDefault := false
	for _, ns := range list {
		if ns.Name == DefaultNamespace {
			hasDefault = true
		}
	}
	if !hasDefault {
		list = append(list, types.FunctionNamespace{Name: DefaultNamespace})
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i].Name, list[j].Name
		if (a == DefaultNamespace) != (b == DefaultNamespace) {
			return a == DefaultNamespace
		}
		return a < b
	})
	return list
}

// notEmptyErr says what still lives in a namespace.
func notEmptyErr(name, what string) error {
	return fmt.Errorf("namespace %q: %s still in it: %w", name, what, ErrNotEmpty)
}

// initNamespaces creates the namespaces bucket; files written before
// namespaces existed simply gain it.
func initNamespaces(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(namespacesBucket); err != nil {
		return fmt.Errorf("create namespaces bucket: %w", err)
	}
	return nil
}

// hasPrefixIn reports whether bucket b (which may be nil) holds a key
// starting with prefix.
func hasPrefixIn(b *bolt.Bucket, prefix []byte) bool {
	if b == nil {
		return false
	}
	k, _ := b.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// GetNamespace implements Namespaces.
func (s *Bolt) GetNamespace(ctx context.Context, name string) (types.FunctionNamespace, error) {
	if err := ctx.Err(); err != nil {
		return types.FunctionNamespace{}, fmt.Errorf("namespace %q: %w", name, err)
	}
	var ns types.FunctionNamespace
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ns, err = getNamespaceIn(tx.Bucket(namespacesBucket), name)
		return err
	})
	return ns, err
}

// ListNamespaces implements Namespaces.
func (s *Bolt) ListNamespaces(ctx context.Context) ([]types.FunctionNamespace, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var list []types.FunctionNamespace
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(namespacesBucket).ForEach(func(k, v []byte) error {
			ns, err := decodeNamespace(string(k), v)
			if err != nil {
				return err
			}
			list = append(list, ns)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	return sortNamespaces(list), nil
}

// CreateNamespace implements Namespaces.
func (s *Bolt) CreateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return s.putNamespace(ctx, ns, true)
}

// UpdateNamespace implements Namespaces.
func (s *Bolt) UpdateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return s.putNamespace(ctx, ns, false)
}

// putNamespace stores ns: as a new namespace when create is set, else over
// an existing one.
func (s *Bolt) putNamespace(ctx context.Context, ns types.FunctionNamespace, create bool) (types.FunctionNamespace, error) {
	v, err := namespaceValue(ctx, ns)
	if err != nil {
		return types.FunctionNamespace{}, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return putNamespaceIn(tx.Bucket(namespacesBucket), ns.Name, v, create)
	})
	if err != nil {
		return types.FunctionNamespace{}, err
	}
	return decodeNamespace(ns.Name, v)
}

// DeleteNamespace implements Namespaces. The emptiness check and the delete
// are one transaction: a function or secret created concurrently either
// commits first (and the delete sees it) or finds the namespace gone.
func (s *Bolt) DeleteNamespace(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("namespace %q: %w", name, err)
	}
	if name == DefaultNamespace {
		return fmt.Errorf("namespace %q: %w", name, ErrDefaultNamespace)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(namespacesBucket)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("namespace %q: %w", name, ErrNotFound)
		}
		prefix := []byte(name + "/")
		if hasPrefixIn(tx.Bucket(functionsBucket), prefix) {
			return notEmptyErr(name, "functions")
		}
		if hasPrefixIn(tx.Bucket(secretsBucket), prefix) {
			return notEmptyErr(name, "secrets")
		}
		if err := b.Delete([]byte(name)); err != nil {
			return fmt.Errorf("namespace %q: delete: %w", name, err)
		}
		return nil
	})
}

// mapTable is Memory's namespaces as a namespaceTable; the caller holds
// m.mu, locked for writing to Put.
type mapTable map[string][]byte

func (m mapTable) Get(key []byte) []byte { return m[string(key)] }

func (m mapTable) Put(key, value []byte) error {
	m[string(key)] = value
	return nil
}

// GetNamespace implements Namespaces.
func (m *Memory) GetNamespace(ctx context.Context, name string) (types.FunctionNamespace, error) {
	if err := ctx.Err(); err != nil {
		return types.FunctionNamespace{}, fmt.Errorf("namespace %q: %w", name, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return getNamespaceIn(mapTable(m.namespaces), name)
}

// ListNamespaces implements Namespaces.
func (m *Memory) ListNamespaces(ctx context.Context) ([]types.FunctionNamespace, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	list := make([]types.FunctionNamespace, 0, len(m.namespaces)+1)
	for k, v := range m.namespaces {
		ns, err := decodeNamespace(k, v)
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		list = append(list, ns)
	}
	return sortNamespaces(list), nil
}

// CreateNamespace implements Namespaces.
func (m *Memory) CreateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return m.putNamespace(ctx, ns, true)
}

// UpdateNamespace implements Namespaces.
func (m *Memory) UpdateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return m.putNamespace(ctx, ns, false)
}

// putNamespace is Bolt's putNamespace, holding the writer lock where Bolt
// holds a transaction.
func (m *Memory) putNamespace(ctx context.Context, ns types.FunctionNamespace, create bool) (types.FunctionNamespace, error) {
	v, err := namespaceValue(ctx, ns)
	if err != nil {
		return types.FunctionNamespace{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := putNamespaceIn(mapTable(m.namespaces), ns.Name, v, create); err != nil {
		return types.FunctionNamespace{}, err
	}
	return decodeNamespace(ns.Name, v)
}

// DeleteNamespace implements Namespaces. It holds the writer lock across the
// check and the delete, as Bolt holds one transaction.
func (m *Memory) DeleteNamespace(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("namespace %q: %w", name, err)
	}
	if name == DefaultNamespace {
		return fmt.Errorf("namespace %q: %w", name, ErrDefaultNamespace)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.namespaces[name]; !ok {
		return fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	prefix := name + "/"
	for k := range m.records {
		if strings.HasPrefix(k, prefix) {
			return notEmptyErr(name, "functions")
		}
	}
	for k := range m.secrets.records {
		if strings.HasPrefix(k, prefix) {
			return notEmptyErr(name, "secrets")
		}
	}
	delete(m.namespaces, name)
	return nil
}
