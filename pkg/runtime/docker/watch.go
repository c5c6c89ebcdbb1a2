package docker

import (
	"context"
	"errors"
	"fmt"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// Watch implements runtime.Runtime with one Docker event subscription: it
// subscribes, calls subscribed (which re-lists, so no change can fall
// between the list and the stream), then forwards the key of every event
// until the stream fails. Events only invalidate listings and name keys;
// what changed is found by the Sync that follows.
func (r *Runtime) Watch(ctx context.Context, subscribed func(context.Context) error, changed func(key string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.eng.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	// Containers are filtered by our labels; network events carry no labels,
	// so networks get their own stream, mapped to keys by name.
	cevs, cerrs := r.eng.Events(ctx, []string{"container"}, r.instanceLabels())
	nevs, nerrs := r.eng.Events(ctx, []string{"network"}, nil)
	if err := subscribed(ctx); err != nil {
		return err
	}
	r.cfg.Log.Info("watching docker events")
	for {
		select {
		case ev, ok := <-cevs:
			if !ok {
				return errors.New("container event stream closed")
			}
			if k := function.KeyOf(ev.Attributes); k != "" {
				r.touch(k)
				changed(k)
			} else if ev.Attributes[engine.LabelRole] == engine.RoleJob {
				switch ev.Action {
				case "die":
					r.jobDied(ev.ID, ev.Attributes["exitCode"])
				case "oom":
					r.jobOOM(ev.ID)
				}
			}
		case ev, ok := <-nevs:
			if !ok {
				return errors.New("network event stream closed")
			}
			r.mu.Lock()
			k := r.networks[ev.Attributes["name"]]
			r.mu.Unlock()
			if k != "" {
				r.touch(k)
				changed(k)
			}
		case err := <-cerrs:
			return fmt.Errorf("container events: %w", err)
		case err := <-nerrs:
			return fmt.Errorf("network events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
