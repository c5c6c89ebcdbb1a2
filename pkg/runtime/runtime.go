// Package runtime is the seam between the controller and what runs
// functions: Docker on one host today, Docker Swarm on many next. The
// controller resolves desired state (store + secrets → Desired) and turns
// what a runtime observes into endpoints and status; a runtime owns every
// decision about its own objects (containers, networks, services), how it
// rolls, drains and backs off, and what it remembers between calls.
//
// Optional features are small interfaces declared here and discovered once
// at wiring (Discover). A feature a runtime lacks is nil in Capabilities,
// and the API answers 501 for it.
package runtime

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// Runtime runs functions. Every method is safe for concurrent use on
// different keys; the controller never calls Sync or Remove for the same key
// concurrently.
type Runtime interface {
	// Sync makes the runtime run d and reports what it observes. It is
	// level-triggered: it observes afresh (or through a List that nothing
	// has invalidated since) whatever caused it to run. The Observed is
	// meaningful even with an error (drift seen before the failure).
	Sync(ctx context.Context, d Desired) (Observed, error)
	// Remove tears down everything the runtime runs for key. removed
	// reports whether anything was there.
	Remove(ctx context.Context, key string) (removed bool, err error)
	// List observes everything the runtime runs for this daemon at once,
	// by key. Keys with nothing in the runtime are absent.
	List(ctx context.Context) (map[string]Listing, error)
	// Watch subscribes to the runtime's own change stream, then calls
	// subscribed (the controller re-lists there, so no change falls
	// between), then calls changed with the key of every change until the
	// stream fails (an error) or ctx is done. One attempt: the controller
	// retries with backoff.
	Watch(ctx context.Context, subscribed func(context.Context) error, changed func(key string)) error
}

// Desired is one function as the controller resolved it.
type Desired struct {
	Key       string
	Namespace string
	Name      string
	// Spec is the deployment as submitted.
	Spec       types.FunctionDeployment
	Replicas   int
	Generation int64
	// Hash identifies Spec together with the revisions of its secrets: a
	// replica made from another hash is of an older spec and is rolled.
	Hash string
	// Secrets are the secrets Spec lists, with their values, in name order.
	Secrets []Secret
	// ParkFor, when Replicas is 0, asks to keep the replicas frozen
	// (paused: no CPU, memory kept) for that long before removing them,
	// so a call that wakes the function is served in milliseconds; they
	// are thawed when Replicas is raised again. 0 removes them at once.
	// A runtime that cannot freeze replicas removes them at once.
	//
	// Only replicas of Hash are parked, after the same drain as a scale
	// down (out of the endpoints first, their calls finished); a wake
	// thaws them before creating any, and removes parked replicas beyond
	// Replicas and any of another hash. The retention runs from the pause
	// (or, after a daemon restart, from when the runtime first sees the
	// replica paused); while replicas are parked, Sync asks to be run
	// again when the first retention ends.
	ParkFor time.Duration
}

// Secret is one secret a function reads from a file named after it.
type Secret struct {
	Name      string
	Value     []byte
	UpdatedAt time.Time
}

// Observed is what a Sync found and did.
type Observed struct {
	// Seen: the replicas were observed, so the fields below hold even
	// when Sync also returns an error (one replica failed to start).
	Seen bool
	// Endpoints are the ready replicas to route to, in a stable order.
	Endpoints []faas.Endpoint
	// Current counts the replicas running (of any spec, draining and
	// parked ones excluded).
	Current int
	// Restarts counts unexpected exits of the current spec.
	Restarts int
	// Converged: exactly the desired replicas, all of the current spec, all
	// ready. At 0 replicas: none running (parked ones may remain).
	Converged bool
	// Reason says in a word why it is not converged (empty when it is).
	Reason Reason
	// RequeueAfter > 0 asks to look again after that long (starting or
	// draining replicas, a crash backoff, the end of a parked replica's
	// retention), also when Converged.
	RequeueAfter time.Duration
	// Replicas describe the running and parked replicas for /debug/reconcile.
	Replicas []status.Replica
	// Drift counts corrections of state that changed behind the daemon's
	// back, by kind (see DriftKinds).
	Drift map[string]int
}

// SortEndpoints puts endpoints in the stable order Observed.Endpoints
// has, by replica, so an unchanged set does not cause a cache swap.
func SortEndpoints(eps []faas.Endpoint) {
	sort.Slice(eps, func(i, j int) bool { return eps[i].Replica < eps[j].Replica })
}

// SortReplicas puts replicas in the order Observed.Replicas has: those of
// the current spec first, then by slot (otherwise as they were).
func SortReplicas(rs []status.Replica) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].CurrentSpec != rs[j].CurrentSpec {
			return rs[i].CurrentSpec
		}
		return rs[i].Slot < rs[j].Slot
	})
}

// AddDrift counts one correction of kind.
func (o *Observed) AddDrift(kind string) {
	if o.Drift == nil {
		o.Drift = map[string]int{}
	}
	o.Drift[kind]++
}

// Listing is what List found for one key.
type Listing struct {
	// Unchanged: the key is exactly as its last Sync left it (converged at
	// Generation, nothing added, removed or moved, every replica answering
	// its readiness probe, every parked replica still parked and within its
	// retention), so it needs no Sync.
	Unchanged bool
	// Generation and Hash are those of the Desired the last Sync converged.
	Generation int64
	Hash       string
}

// Reason is a short status reason, as /debug/reconcile and logs show it.
type Reason string

// Reasons a function is not converged.
const (
	ReasonInvalidSpec         Reason = "InvalidSpec"
	ReasonImageNotAvailable   Reason = "ImageNotAvailable"
	ReasonNetworkError        Reason = "NetworkError"
	ReasonCrashLoopBackOff    Reason = "CrashLoopBackOff"
	ReasonRollingUpdate       Reason = "RollingUpdate"
	ReasonWaitingForReadiness Reason = "WaitingForReadiness"
	ReasonScaling             Reason = "Scaling"
)

// ReasonNotConverged is why a function that has not converged is not, in
// this order: its replicas keep crashing (crashLooping), old replicas
// still run (a roll), current ones are not all ready, or else the count
// of replicas is still changing.
func ReasonNotConverged(crashLooping bool, old, current, readyCurrent int) Reason {
	switch {
	case crashLooping:
		return ReasonCrashLoopBackOff
	case old > 0:
		return ReasonRollingUpdate
	case readyCurrent < current:
		return ReasonWaitingForReadiness
	default:
		return ReasonScaling
	}
}

// Drift kinds a runtime may report; the controller counts them.
const (
	DriftExtraReplica        = "extra_replica"
	DriftNetworkDisconnected = "network_disconnected"
	DriftNetworkDuplicate    = "network_duplicate"
	DriftNetworkMissing      = "network_missing"
	DriftOrphanRemoved       = "orphan_removed"
	DriftReplicaExited       = "replica_exited"
	DriftReplicaMissing      = "replica_missing"
	// DriftReplicaPaused: a replica was paused by someone else while the
	// function wants replicas; it is unpaused (a runtime's own parking at
	// zero, see Desired.ParkFor, is no drift).
	DriftReplicaPaused = "replica_paused"
)

// DriftKinds lists every drift kind, so metrics can start them at zero.
var DriftKinds = []string{
	DriftExtraReplica, DriftNetworkDisconnected, DriftNetworkDuplicate, DriftNetworkMissing,
	DriftOrphanRemoved, DriftReplicaExited, DriftReplicaMissing, DriftReplicaPaused,
}

// ErrInvalidSpec marks a Desired the runtime cannot run whatever happens
// (a quantity the API should have refused): retrying cannot fix it.
var ErrInvalidSpec = errors.New("invalid function spec")

// Failure is a Sync error together with the status reason it shows.
type Failure struct {
	Reason Reason
	Err    error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err with a reason (nil stays nil).
func Fail(reason Reason, err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Reason: reason, Err: err}
}

// ReasonOf is the status reason err carries ("" for none).
func ReasonOf(err error) Reason {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return ""
}
