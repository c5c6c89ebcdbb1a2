package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// table is the keyed storage the operations below work on: a bbolt bucket
// inside a transaction satisfies it as is, and Memory provides one over its
// map. Writing the generation and revision rules once, against this, is what
// keeps the in-memory fake bumping Generation exactly like bbolt does.
type table interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	NextSequence() (uint64, error)
}

// errUnchanged aborts a write transaction that would change nothing, so a
// no-op neither consumes a revision nor wakes watchers (and bbolt skips the
// commit and its fsync).
var errUnchanged = errors.New("unchanged")

// keyOf returns the effective namespace and the store key of spec, refusing
// specs whose key would not survive SplitKey.
func keyOf(spec types.FunctionDeployment) (namespace, key string, err error) {
	namespace = spec.Namespace
	if namespace == "" {
		namespace = DefaultNamespace
	}
	key = Key(namespace, spec.Service)
	switch {
	case spec.Service == "":
		return "", "", fmt.Errorf("function %q: empty name", key)
	case strings.Contains(namespace, "/"):
		return "", "", fmt.Errorf("function %q: namespace contains '/'", key)
	}
	return namespace, key, nil
}

// decode copies a stored record out of v, which may be memory owned by a
// bbolt transaction and invalid once it ends.
func decode(key string, v []byte) (Function, error) {
	var f Function
	if err := json.Unmarshal(v, &f); err != nil {
		return Function{}, fmt.Errorf("function %q: decode: %w", key, err)
	}
	return f, nil
}

// load reads the record under key.
func load(t table, key string) (Function, error) {
	v := t.Get([]byte(key))
	if v == nil {
		return Function{}, fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	return decode(key, v)
}

// save stamps f with the next store-wide revision and stores it. It returns
// the record decoded from the stored bytes, so that a write returns exactly
// what a later Get will (JSON drops e.g. empty slices) and never aliases the
// caller's maps.
func save(t table, key string, f Function) (Function, error) {
	rev, err := t.NextSequence()
	if err != nil {
		return Function{}, fmt.Errorf("function %q: next revision: %w", key, err)
	}
	f.Revision = rev
	v, err := json.Marshal(f)
	if err != nil {
		return Function{}, fmt.Errorf("function %q: encode: %w", key, err)
	}
	if err := t.Put([]byte(key), v); err != nil {
		return Function{}, fmt.Errorf("function %q: put: %w", key, err)
	}
	return decode(key, v)
}

// sameSpec compares specs by their JSON encoding, which is canonical
// (struct field order, sorted map keys) and is also what gets stored, so
// "changed" means exactly "would be stored differently".
func sameSpec(a, b types.FunctionDeployment) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ja, jb), nil
}

// createIn stores a new record at Generation 1.
func createIn(t table, spec types.FunctionDeployment, replicas uint64, now time.Time) (Function, error) {
	namespace, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	if t.Get([]byte(key)) != nil {
		return Function{}, fmt.Errorf("function %q: %w", key, ErrConflict)
	}
	return save(t, key, Function{
		Spec:       spec,
		Namespace:  namespace,
		Replicas:   replicas,
		Generation: 1,
		CreatedAt:  now,
		UpdatedAt:  now,
	})
}

// updateIn replaces the spec and clamps the replicas of an existing record.
// changed is false, and nothing is written, when neither actually changed.
func updateIn(t table, spec types.FunctionDeployment, clamp func(uint64) uint64, now time.Time) (f Function, changed bool, err error) {
	_, key, err := keyOf(spec)
	if err != nil {
		return Function{}, false, err
	}
	cur, err := load(t, key)
	if err != nil {
		return Function{}, false, err
	}
	replicas := cur.Replicas
	if clamp != nil {
		replicas = clamp(cur.Replicas)
	}
	same, err := sameSpec(cur.Spec, spec)
	if err != nil {
		return Function{}, false, fmt.Errorf("function %q: encode: %w", key, err)
	}
	if same && replicas == cur.Replicas {
		return cur, false, nil
	}
	next := cur
	next.Spec = spec
	next.Replicas = replicas
	next.Generation++
	next.UpdatedAt = now
	f, err = save(t, key, next)
	return f, err == nil, err
}

// scaleIn sets the replicas of an existing record; changed is false, and
// nothing is written, when they already have that value.
func scaleIn(t table, key string, replicas uint64, now time.Time) (f Function, changed bool, err error) {
	cur, err := load(t, key)
	if err != nil {
		return Function{}, false, err
	}
	if cur.Replicas == replicas {
		return cur, false, nil
	}
	next := cur
	next.Replicas = replicas
	next.Generation++
	next.UpdatedAt = now
	f, err = save(t, key, next)
	return f, err == nil, err
}

// deleteIn removes an existing record. It consumes a revision like every
// other write, so the revision counter alone orders all writes.
func deleteIn(t table, key string) error {
	if t.Get([]byte(key)) == nil {
		return fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	if err := t.Delete([]byte(key)); err != nil {
		return fmt.Errorf("function %q: delete: %w", key, err)
	}
	if _, err := t.NextSequence(); err != nil {
		return fmt.Errorf("function %q: next revision: %w", key, err)
	}
	return nil
}

// now is the timestamp writes record.
func now() time.Time { return time.Now().UTC() }
