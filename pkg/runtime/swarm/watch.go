package swarm

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// Watch implements runtime.Runtime. Swarm reports services, networks and
// nodes in the manager's event stream (by name, without labels), so they
// are mapped to keys through the names this runtime gave; a node event
// concerns every key with tasks on that node (drain, down). Task state
// changes have no events of their own: container events of this node
// (filtered by our labels) cover the local tasks, and a function that is
// not converged is looked at again by its RequeueAfter; the periodic
// resync (List) finds the rest.
func (r *Runtime) Watch(ctx context.Context, subscribed func(context.Context) error, changed func(key string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.eng.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	sevs, serrs := r.eng.Events(ctx, []string{"service", "network", "node"}, nil)
	cevs, cerrs := r.eng.Events(ctx, []string{"container"}, r.instanceLabels())
	if err := subscribed(ctx); err != nil {
		return err
	}
	r.cfg.Log.Info("watching swarm events")
	for {
		select {
		case ev, ok := <-sevs:
			if !ok {
				return errors.New("swarm event stream closed")
			}
			for _, k := range r.keysOf(ev.Type, ev.ID, ev.Attributes["name"]) {
				changed(k)
			}
		case ev, ok := <-cevs:
			if !ok {
				return errors.New("container event stream closed")
			}
			if k := function.KeyOf(ev.Attributes); k != "" {
				changed(k)
			}
		case err := <-serrs:
			return fmt.Errorf("swarm events: %w", err)
		case err := <-cerrs:
			return fmt.Errorf("container events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// keysOf maps one swarm event to the keys it concerns.
func (r *Runtime) keysOf(typ, id, name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if typ == "node" {
		var out []string
		for k := range r.placed[id] {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	if k := r.names[name]; k != "" {
		return []string{k}
	}
	return nil
}
