// Package store keeps dockerfaasd's desired state: the functions users
// deployed and how many replicas they want. It is the only source of truth the
// controller reconciles Docker towards. Every write is committed durably before
// it returns, and writers notify watchers without ever blocking on them.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// DefaultNamespace is the namespace functions land in when none is given
// (faas.DefaultNamespace, repeated here for the store's many callers).
const DefaultNamespace = faas.DefaultNamespace

// Sentinel errors callers branch on; implementations wrap them with %w.
var (
	// ErrNotFound means no record exists under the key.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a record already exists under the key.
	ErrConflict = errors.New("already exists")
	// ErrNotStored means the state file could not be written (a full
	// disk, an I/O error): the write was rolled back and not acknowledged.
	ErrNotStored = errors.New("the state file could not be written")
)

// Function is one desired function: the deployment exactly as submitted, the
// replicas wanted, and bookkeeping. Values returned by a Store are copies the
// caller may keep and modify.
type Function struct {
	// Spec is the FunctionDeployment as submitted, kept verbatim so that list
	// and describe echo back exactly what was deployed. Spec.Namespace may be
	// empty; Namespace below is the effective one.
	Spec types.FunctionDeployment `json:"spec"`
	// Namespace is the effective namespace (DefaultNamespace when Spec's is empty).
	Namespace string `json:"namespace"`
	// Replicas is the desired replica count.
	Replicas uint64 `json:"replicas"`
	// Generation increases whenever Spec or Replicas change, so the controller
	// can report which desired state it has observed.
	Generation int64 `json:"generation"`
	// Revision is a store-wide sequence number of the last write to the record.
	Revision uint64 `json:"revision"`
	// CreatedAt is when the function was first deployed; UpdatedAt the last change.
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// ScaledBy says who last changed Replicas by scaling (ScaledByAPI,
	// ScaledByAutoscaler, ScaledByIdler, ScaledByWake), at ScaledAt;
	// empty until the first scale.
	ScaledBy string    `json:"scaledBy,omitempty"`
	ScaledAt time.Time `json:"scaledAt,omitzero"`
}

// Who scaled a function, as Function.ScaledBy records it.
const (
	ScaledByAPI        = "api"
	ScaledByAutoscaler = "autoscaler"
	ScaledByIdler      = "idler"
	ScaledByWake       = "wake"
)

// Key returns the function's store key.
func (f Function) Key() string { return Key(f.Namespace, f.Spec.Service) }

// Name returns the function's name.
func (f Function) Name() string { return f.Spec.Service }

// Key builds the store key "namespace/name" (faas.Key).
func Key(namespace, name string) string { return faas.Key(namespace, name) }

// SplitKey is the inverse of Key (faas.SplitKey).
func SplitKey(key string) (namespace, name string, err error) { return faas.SplitKey(key) }

// Store is desired state. All methods are safe for concurrent use and every
// successful write is durable (fsynced) before the method returns.
type Store interface {
	// Namespaces keeps the namespaces functions live in (namespaces.go).
	Namespaces
	// Secrets keeps secrets, encrypted at rest (secrets.go).
	Secrets
	// Calls keeps async calls and their records (calls.go).
	Calls
	// Executions keeps the records of job runs and async attempts, and
	// ExecutionSummaries sums them up per function (executions.go).
	Executions
	ExecutionSummaries
	// Images keeps the record of images uploaded (images.go).
	Images
	// Addresses keeps the dedicated address of each function (addresses.go).
	Addresses
	// Builds keeps the records of image builds (builds.go).
	Builds

	// Get returns the function under key or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (Function, error)
	// List returns all functions in namespace, or in all namespaces when
	// namespace is "", sorted by key.
	List(ctx context.Context, namespace string) ([]Function, error)
	// Create stores a new function with the given desired replicas; it fails
	// with ErrConflict when the key exists, with ErrNamespaceNotFound when
	// its namespace does not exist, and with an error matching no sentinel
	// when spec has no name or its namespace contains '/' (the key would not
	// survive SplitKey). Generation starts at 1.
	//
	// Create, Update and Scale return the record exactly as a later Get
	// would. A write that changes nothing writes nothing: it keeps Revision
	// and UpdatedAt and does not wake watchers.
	Create(ctx context.Context, spec types.FunctionDeployment, replicas uint64) (Function, error)
	// Update replaces the spec of an existing function (ErrNotFound
	// otherwise; ErrNamespaceNotFound when its namespace does not exist).
	// replicas is applied through the clamp function, which receives the
	// current replicas and returns the new ones (nil keeps them). Generation
	// is bumped only when the spec or the replicas actually change. clamp
	// runs inside the write, holding the store's writer lock, so it must be
	// quick and must not call the Store.
	Update(ctx context.Context, spec types.FunctionDeployment, clamp func(current uint64) uint64) (Function, error)
	// Scale sets the desired replicas of an existing function (ErrNotFound
	// otherwise), bumping Generation when the value changes; it is ScaleBy
	// with ScaledByAPI.
	Scale(ctx context.Context, key string, replicas uint64) (Function, error)
	// ScaleBy is Scale recording who scaled (Function.ScaledBy) when the
	// value changes.
	ScaleBy(ctx context.Context, key string, replicas uint64, by string) (Function, error)
	// Delete removes the function (ErrNotFound when absent).
	Delete(ctx context.Context, key string) error
	// Watch returns a Watcher that receives the key of every committed change
	// from now on, until ctx is done; after that its Next returns
	// context.Canceled. A changed secret is reported as SecretWatchKey, never
	// as a function key.
	Watch(ctx context.Context, opts ...WatchOption) *Watcher
	// Close releases the store.
	Close() error
}
