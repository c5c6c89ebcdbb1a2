package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// functionRecords is the functions bucket: one Function per "namespace/name",
// revisioned, and every write wakes watchers with the function's key.
var functionRecords = &bucket[Function]{
	name:     []byte("functions"),
	kind:     "function",
	key:      Function.Key,
	revision: func(f *Function) *uint64 { return &f.Revision },
	watchKey: func(key string) string { return key },
}

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

// updateIn replaces the spec and clamps the replicas of the record under
// key, bumping Generation; when neither actually changes it writes nothing
// and returns the record as it is.
func updateIn(tx *txn, key string, spec types.FunctionDeployment, clamp func(uint64) uint64, now time.Time) (Function, error) {
	cur, err := functionRecords.get(tx, key)
	if err != nil {
		return Function{}, err
	}
	replicas := cur.Replicas
	if clamp != nil {
		replicas = clamp(cur.Replicas)
	}
	same, err := sameSpec(cur.Spec, spec)
	if err != nil {
		return Function{}, fmt.Errorf("function %q: encode: %w", key, err)
	}
	if same && replicas == cur.Replicas {
		return cur, nil
	}
	cur.Spec = spec
	cur.Replicas = replicas
	cur.Generation++
	cur.UpdatedAt = now
	return functionRecords.put(tx, key, cur)
}

// scaleIn sets the replicas of the record under key, bumping Generation;
// when they already have that value it writes nothing.
func scaleIn(tx *txn, key string, replicas uint64, by string, now time.Time) (Function, error) {
	cur, err := functionRecords.get(tx, key)
	if err != nil || cur.Replicas == replicas {
		return cur, err
	}
	cur.Replicas = replicas
	cur.Generation++
	cur.UpdatedAt = now
	cur.ScaledBy, cur.ScaledAt = by, now
	return functionRecords.put(tx, key, cur)
}

// Get implements Store.
func (e *engine) Get(ctx context.Context, key string) (Function, error) {
	var f Function
	err := e.read(ctx, functionRecords.about(key), func(tx *txn) (err error) {
		f, err = functionRecords.get(tx, key)
		return err
	})
	return f, err
}

// List implements Store. Keys are stored in byte order, which is the order
// List promises, so a namespace is one contiguous range of the bucket.
func (e *engine) List(ctx context.Context, namespace string) ([]Function, error) {
	return listIn(ctx, e, subject{what: "list", key: namespace}, functionRecords, prefixOf(namespace))
}

// Create implements Store.
func (e *engine) Create(ctx context.Context, spec types.FunctionDeployment, replicas uint64) (Function, error) {
	return e.writeSpec(ctx, spec, func(tx *txn, ns, key string) (Function, error) {
		t := now()
		return functionRecords.insert(tx, key, Function{
			Spec:       spec,
			Namespace:  ns,
			Replicas:   replicas,
			Generation: 1,
			CreatedAt:  t,
			UpdatedAt:  t,
		})
	})
}

// Update implements Store.
func (e *engine) Update(ctx context.Context, spec types.FunctionDeployment, clamp func(current uint64) uint64) (Function, error) {
	return e.writeSpec(ctx, spec, func(tx *txn, _, key string) (Function, error) {
		return updateIn(tx, key, spec, clamp, now())
	})
}

// writeSpec is what Create and Update share: it refuses a spec whose key
// would not survive SplitKey, then runs op in a write that first checks,
// atomically with op, that the spec's namespace exists.
func (e *engine) writeSpec(ctx context.Context, spec types.FunctionDeployment, op func(tx *txn, ns, key string) (Function, error)) (Function, error) {
	ns, key, err := keyOf(spec)
	if err != nil {
		return Function{}, err
	}
	return write(ctx, e, functionRecords.about(key), func(tx *txn) (Function, error) {
		if err := namespaceIn(tx, ns); err != nil {
			return Function{}, err
		}
		return op(tx, ns, key)
	})
}

// Scale implements Store.
func (e *engine) Scale(ctx context.Context, key string, replicas uint64) (Function, error) {
	return e.ScaleBy(ctx, key, replicas, ScaledByAPI)
}

// ScaleBy implements Store.
func (e *engine) ScaleBy(ctx context.Context, key string, replicas uint64, by string) (Function, error) {
	return write(ctx, e, functionRecords.about(key), func(tx *txn) (Function, error) {
		return scaleIn(tx, key, replicas, by, now())
	})
}

// Delete implements Store.
func (e *engine) Delete(ctx context.Context, key string) error {
	_, err := write(ctx, e, functionRecords.about(key), func(tx *txn) (struct{}, error) {
		return struct{}{}, functionRecords.delete(tx, key)
	})
	return err
}

// now is the timestamp writes record.
func now() time.Time { return time.Now().UTC() }
