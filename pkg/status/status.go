// Package status holds the observed state of functions as published by the
// controller. The controller is its only writer; the API and the debug page
// read it. Nothing here is persisted: it is rebuilt from Docker on start.
package status

import (
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"

	"sort"
	"sync"
	"time"
)

// Function is what the controller last observed for one function key.
type Function struct {
	Key                string       `json:"key"`
	DesiredReplicas    uint64       `json:"desiredReplicas"`
	CurrentReplicas    uint64       `json:"currentReplicas"`
	ReadyReplicas      uint64       `json:"readyReplicas"`
	Generation         int64        `json:"generation"`
	ObservedGeneration int64        `json:"observedGeneration"`
	SpecHash           string       `json:"specHash"`
	LastReconcile      time.Time    `json:"lastReconcile,omitzero"`
	LastResult         faas.Outcome `json:"lastResult"`
	LastError          string       `json:"lastError,omitempty"`
	Restarts           int          `json:"restarts"`
	NextRetry          time.Time    `json:"nextRetry,omitzero"`
	// Reason says in a few words why the function is not converged, e.g.
	// "CrashLoopBackOff" or "ImageNotFound"; empty when all is well.
	Reason string `json:"reason,omitempty"`
	// Replicas are the running containers as last observed. The slice is
	// replaced, never modified, so copies handed out by Board stay valid.
	Replicas []Replica `json:"replicas,omitempty"`
}

// Replica states shown on /debug/reconcile.
const (
	// ReplicaReady answers its readiness probe and receives traffic.
	ReplicaReady = "ready"
	// ReplicaStarting runs but has not passed its readiness probe yet.
	ReplicaStarting = "starting"
	// ReplicaDraining left the endpoint set and is stopped after a grace period.
	ReplicaDraining = "draining"
	// ReplicaPaused is frozen because the function is scaled to zero; it
	// is thawed by the next call or removed after the retention.
	ReplicaPaused = "paused"
)

// Replica is one running container of a function.
type Replica struct {
	Name string `json:"name"`
	// ID is the short (12 character) container ID, as docker ps shows it.
	ID    string `json:"id"`
	Slot  int    `json:"slot"`
	State string `json:"state"`
	// CurrentSpec is false for a replica of an older spec (a rolling update).
	CurrentSpec bool `json:"currentSpec"`
	// Node is the hostname of the host the replica runs on: the task's
	// node on a swarm, the engine's host on one Docker host; empty while
	// unknown (a task not placed yet, or an engine that did not say).
	Node string `json:"node,omitempty"`
}

// keyed is a concurrency-safe map of values that carry their own key; both
// boards are one. Values are copied in and out.
type keyed[T any] struct {
	key func(T) string
	mu  sync.RWMutex
	m   map[string]T
}

func newKeyed[T any](key func(T) string) keyed[T] {
	return keyed[T]{key: key, m: map[string]T{}}
}

// Set records v under its key.
func (k *keyed[T]) Set(v T) {
	k.mu.Lock()
	k.m[k.key(v)] = v
	k.mu.Unlock()
}

// Delete forgets key.
func (k *keyed[T]) Delete(key string) {
	k.mu.Lock()
	delete(k.m, key)
	k.mu.Unlock()
}

// Get returns the value of key.
func (k *keyed[T]) Get(key string) (T, bool) {
	k.mu.RLock()
	v, ok := k.m[key]
	k.mu.RUnlock()
	return v, ok
}

// List returns every value, sorted by key.
func (k *keyed[T]) List() []T {
	k.mu.RLock()
	out := make([]T, 0, len(k.m))
	for _, v := range k.m {
		out = append(out, v)
	}
	k.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return k.key(out[i]) < k.key(out[j]) })
	return out
}

// Board is a concurrency-safe map of function statuses.
type Board struct{ keyed[Function] }

// NewBoard returns an empty Board.
func NewBoard() *Board {
	return &Board{newKeyed(func(f Function) string { return f.Key })}
}

// Update applies fn to the status of key (the zero Function with Key set
// when there is none yet) and stores the result atomically.
func (b *Board) Update(key string, fn func(*Function)) {
	b.mu.Lock()
	f, ok := b.m[key]
	if !ok {
		f = Function{Key: key}
	}
	fn(&f)
	b.m[key] = f
	b.mu.Unlock()
}

// Global is controller-wide state shown on /debug/reconcile.
type Global struct {
	// EventStream is "starting", "connected" or "reconnecting".
	EventStream      string           `json:"eventStream"`
	LastConnect      time.Time        `json:"lastConnect,omitzero"`
	LastStreamError  string           `json:"lastStreamError,omitempty"`
	LastResync       time.Time        `json:"lastResync,omitzero"`
	DriftCorrections map[string]int64 `json:"driftCorrections"`
	QueueDepth       int              `json:"queueDepth"`
}

// Scaling is what the autoscaler last decided for one function, shown on
// /debug/reconcile.
type Scaling struct {
	Key string `json:"key"`
	// Mode is "static" (min = max or factor 0: never moved), or the
	// scaling type: "legacy" (OpenFaaS CE's alert rule), "rps",
	// "capacity", "cpu" or "queue".
	Mode string `json:"mode"`
	Min  uint64 `json:"min"`
	Max  uint64 `json:"max"`
	// Load is the current load in the unit of Mode (requests per second,
	// calls in flight, millicores); Target the load one replica should
	// carry (target × target-proportion).
	Load   float64 `json:"load"`
	Target float64 `json:"target"`
	// Desired is the replica count the load asks for now.
	Desired uint64 `json:"desired"`
	// LastDecision is "up", "down", "zero" or "wake"; Reason says why, and
	// DecidedAt when.
	LastDecision string    `json:"lastDecision,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	DecidedAt    time.Time `json:"decidedAt,omitzero"`
	// Zero is true when the function opted in to scale to zero; IdleSince
	// is when its last call ended (zero while calls run) and ZeroAt when
	// it goes to zero if no call comes.
	Zero      bool      `json:"zero"`
	IdleSince time.Time `json:"idleSince,omitzero"`
	ZeroAt    time.Time `json:"zeroAt,omitzero"`
}

// ScalingBoard is a concurrency-safe map of Scaling, written by the
// autoscaler only and read by the API.
type ScalingBoard struct{ keyed[Scaling] }

// NewScalingBoard returns an empty ScalingBoard.
func NewScalingBoard() *ScalingBoard {
	return &ScalingBoard{newKeyed(func(s Scaling) string { return s.Key })}
}

// Node is one host of a multi-host runtime (a swarm node), shown on
// /debug/reconcile with the replicas it runs.
type Node struct {
	ID           string `json:"id"`
	Hostname     string `json:"hostname"`
	Role         string `json:"role"`
	State        string `json:"state"`
	Availability string `json:"availability"`
	Addr         string `json:"addr,omitempty"`
	// Replicas and Functions count this daemon's replicas on the node and
	// the functions they belong to.
	Replicas  int `json:"replicas"`
	Functions int `json:"functions"`
}
