// Package fake is an in-memory runtime.Runtime for controller tests: it
// records what it was asked, runs nothing, and answers Sync, Remove and List
// from what the test set up.
package fake

import (
	"context"
	"fmt"
	"sync"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Runtime is a fake runtime. By default Sync reports the desired replicas
// all ready and converged at 10.0.0.N:8080, and List reports every synced
// key unchanged at its generation.
type Runtime struct {
	mu      sync.Mutex
	running map[string]runtime.Desired
	syncs   []runtime.Desired
	removed []string
	// sync, when set for a key, answers its Syncs instead of the default.
	sync    map[string]func(runtime.Desired) (runtime.Observed, error)
	listErr error
	changed map[string]bool // keys List reports as changed
	orphans []string        // keys List reports that were never synced
	events  chan string
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{
		running: map[string]runtime.Desired{},
		sync:    map[string]func(runtime.Desired) (runtime.Observed, error){},
		changed: map[string]bool{},
		events:  make(chan string, 64),
	}
}

// Sync implements runtime.Runtime.
func (r *Runtime) Sync(ctx context.Context, d runtime.Desired) (runtime.Observed, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, d)
	if f := r.sync[d.Key]; f != nil {
		obs, err := f(d)
		if err == nil {
			r.running[d.Key] = d
		}
		return obs, err
	}
	r.running[d.Key] = d
	delete(r.changed, d.Key)
	obs := runtime.Observed{Seen: true, Converged: true, Current: d.Replicas}
	for i := 0; i < d.Replicas; i++ {
		obs.Endpoints = append(obs.Endpoints, faas.Endpoint{Replica: fmt.Sprintf("%s-%d", d.Key, i), Addr: fmt.Sprintf("10.0.0.%d:8080", i+1)})
	}
	return obs, nil
}

// Remove implements runtime.Runtime.
func (r *Runtime) Remove(ctx context.Context, key string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[key]
	for i, k := range r.orphans {
		if k == key {
			ok = true
			r.orphans = append(r.orphans[:i], r.orphans[i+1:]...)
			break
		}
	}
	delete(r.running, key)
	r.removed = append(r.removed, key)
	return ok, nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) (map[string]runtime.Listing, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listErr != nil {
		return nil, r.listErr
	}
	out := map[string]runtime.Listing{}
	for k, d := range r.running {
		out[k] = runtime.Listing{Unchanged: !r.changed[k], Generation: d.Generation, Hash: d.Hash}
	}
	for _, k := range r.orphans {
		out[k] = runtime.Listing{}
	}
	return out, nil
}

// Watch implements runtime.Runtime: keys sent with Event are forwarded.
func (r *Runtime) Watch(ctx context.Context, subscribed func(context.Context) error, changed func(key string)) error {
	if err := subscribed(ctx); err != nil {
		return err
	}
	for {
		select {
		case k := <-r.events:
			changed(k)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Event sends a change of key through Watch.
func (r *Runtime) Event(key string) { r.events <- key }

// OnSync makes f answer the Syncs of key.
func (r *Runtime) OnSync(key string, f func(runtime.Desired) (runtime.Observed, error)) {
	r.mu.Lock()
	r.sync[key] = f
	r.mu.Unlock()
}

// SetListError makes List fail with err (nil: succeed again).
func (r *Runtime) SetListError(err error) {
	r.mu.Lock()
	r.listErr = err
	r.mu.Unlock()
}

// Change makes List report key as changed until its next Sync.
func (r *Runtime) Change(key string) {
	r.mu.Lock()
	r.changed[key] = true
	r.mu.Unlock()
}

// AddOrphan makes List report key, which was never synced.
func (r *Runtime) AddOrphan(key string) {
	r.mu.Lock()
	r.orphans = append(r.orphans, key)
	r.mu.Unlock()
}

// Syncs returns the Desired of every Sync so far, in order.
func (r *Runtime) Syncs() []runtime.Desired {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runtime.Desired(nil), r.syncs...)
}

// Removed returns the keys of every Remove so far, in order.
func (r *Runtime) Removed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.removed...)
}
