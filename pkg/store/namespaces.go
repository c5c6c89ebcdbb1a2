package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/openfaas/faas-provider/types"
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

// namespaceRecords is the namespaces bucket: one types.FunctionNamespace
// per name. Namespaces have no revisions and their writes wake no one.
var namespaceRecords = &bucket[types.FunctionNamespace]{
	name: []byte("namespaces"),
	kind: "namespace",
	key:  func(ns types.FunctionNamespace) string { return ns.Name },
}

// namespaceIn fails with ErrNamespaceNotFound unless namespace exists in
// the write tx, which a function or secret is about to be written in.
func namespaceIn(tx *txn, namespace string) error {
	if namespace == DefaultNamespace || namespaceRecords.exists(tx, namespace) {
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

// GetNamespace implements Namespaces. DefaultNamespace exists even when it
// was never written.
func (e *engine) GetNamespace(ctx context.Context, name string) (types.FunctionNamespace, error) {
	var ns types.FunctionNamespace
	err := e.read(ctx, namespaceRecords.about(name), func(tx *txn) (err error) {
		ns, err = namespaceRecords.get(tx, name)
		if errors.Is(err, ErrNotFound) && name == DefaultNamespace {
			ns, err = types.FunctionNamespace{Name: DefaultNamespace}, nil
		}
		return err
	})
	return ns, err
}

// ListNamespaces implements Namespaces.
func (e *engine) ListNamespaces(ctx context.Context) ([]types.FunctionNamespace, error) {
	list, err := listIn(ctx, e, subject{what: "list namespaces", bare: true}, namespaceRecords, nil)
	if err != nil {
		return nil, err
	}
	return sortNamespaces(list), nil
}

// CreateNamespace implements Namespaces.
func (e *engine) CreateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return e.putNamespace(ctx, ns, true)
}

// UpdateNamespace implements Namespaces.
func (e *engine) UpdateNamespace(ctx context.Context, ns types.FunctionNamespace) (types.FunctionNamespace, error) {
	return e.putNamespace(ctx, ns, false)
}

// putNamespace stores ns: as a new namespace when create is set, else over
// an existing one. DefaultNamespace always exists, written or not.
func (e *engine) putNamespace(ctx context.Context, ns types.FunctionNamespace, create bool) (types.FunctionNamespace, error) {
	if err := checkNamespaceName(ns.Name); err != nil {
		return types.FunctionNamespace{}, err
	}
	about := namespaceRecords.about(ns.Name)
	return write(ctx, e, about, func(tx *txn) (types.FunctionNamespace, error) {
		exists := ns.Name == DefaultNamespace || namespaceRecords.exists(tx, ns.Name)
		switch {
		case create && exists:
			return types.FunctionNamespace{}, about.wrap(ErrConflict)
		case !create && !exists:
			return types.FunctionNamespace{}, about.wrap(ErrNotFound)
		}
		return namespaceRecords.put(tx, ns.Name, ns)
	})
}

// DeleteNamespace implements Namespaces. The emptiness check and the delete
// are one transaction: a function or secret created concurrently either
// commits first (and the delete sees it) or finds the namespace gone.
func (e *engine) DeleteNamespace(ctx context.Context, name string) error {
	about := namespaceRecords.about(name)
	_, err := write(ctx, e, about, func(tx *txn) (struct{}, error) {
		prefix := []byte(name + "/")
		switch {
		case name == DefaultNamespace:
			return struct{}{}, about.wrap(ErrDefaultNamespace)
		case !namespaceRecords.exists(tx, name):
			return struct{}{}, about.wrap(ErrNotFound)
		case functionRecords.any(tx, prefix):
			return struct{}{}, fmt.Errorf("%s: functions still in it: %w", about, ErrNotEmpty)
		case secretRecords.any(tx, prefix):
			return struct{}{}, fmt.Errorf("%s: secrets still in it: %w", about, ErrNotEmpty)
		}
		return struct{}{}, namespaceRecords.delete(tx, name)
	})
	return err
}
