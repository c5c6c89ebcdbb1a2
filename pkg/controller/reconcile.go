package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Reconcile makes the runtime match the desired state of one function key.
// It is level-triggered: it re-reads desired state every time, whatever
// caused it to run, and the runtime observes afresh.
func (c *Controller) Reconcile(ctx context.Context, key string) (Result, error) {
	ns, name, err := faas.SplitKey(key)
	if err != nil {
		return Result{}, Terminal(err)
	}
	fn, err := c.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, c.teardown(ctx, key)
	}
	if err != nil {
		return Result{}, fmt.Errorf("read desired state: %w", err)
	}
	log := c.cfg.Log.WithFields(logrus.Fields{"function": name, "namespace": ns, "generation": fn.Generation})
	c.mu.Lock()
	if _, ok := c.synced[key]; !ok {
		c.synced[key] = "" // known from now on: its teardown removes no orphan
	}
	c.mu.Unlock()

	// Make the function known to the proxy at once, so a request racing the
	// first replica waits for it instead of getting 404.
	c.markKnown(key)
	if t, err := faas.TimeoutsFromEnv(fn.Spec.EnvVars); err == nil {
		c.eps.SetTimeouts(key, t)
	} else {
		log.WithError(err).Warn("ignoring invalid timeout; using the defaults")
	}

	secrets, err := c.functionSecrets(ctx, fn)
	if err != nil {
		// Running replicas keep serving with the files they were given;
		// nothing new can start without them.
		c.setReason(key, fn, c.lastHash(key), secretReason(err))
		return Result{}, err
	}
	d := desired(fn, secrets)
	if d.Replicas == 0 {
		d.ParkFor = c.cfg.ParkFor
	}
	c.mu.Lock()
	c.synced[key] = d.Hash
	c.mu.Unlock()

	obs, err := c.rt.Sync(ctx, d)
	c.countDrift(obs.Drift)
	if err != nil {
		if reason := runtime.ReasonOf(err); reason != "" {
			c.setReason(key, fn, d.Hash, reason)
		}
		if errors.Is(err, runtime.ErrInvalidSpec) {
			return Result{}, Terminal(err)
		}
		if !obs.Seen {
			return Result{}, err
		}
	}
	c.eps.Set(key, obs.Endpoints)
	c.board.Update(key, func(s *status.Function) {
		s.DesiredReplicas = uint64(d.Replicas)
		s.CurrentReplicas = uint64(obs.Current)
		s.ReadyReplicas = uint64(len(obs.Endpoints))
		s.Generation = fn.Generation
		s.ObservedGeneration = fn.Generation
		s.SpecHash = d.Hash
		s.Restarts = obs.Restarts
		s.Reason = string(obs.Reason)
		s.Replicas = obs.Replicas
	})
	if err != nil {
		return Result{}, err
	}
	return Result{RequeueAfter: obs.RequeueAfter}, nil
}

// lastHash is the spec hash last handed to the runtime for key ("" for none).
func (c *Controller) lastHash(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced[key]
}

func (c *Controller) setReason(key string, fn store.Function, hash string, reason runtime.Reason) {
	c.board.Update(key, func(s *status.Function) {
		s.DesiredReplicas = fn.Replicas
		s.Generation = fn.Generation
		s.SpecHash = hash
		s.Reason = string(reason)
	})
}

// teardown removes what the runtime runs for a key that is no longer
// desired, then the key's published state.
func (c *Controller) teardown(ctx context.Context, key string) error {
	// Stop routing first, so no new request picks a replica being removed.
	c.eps.Delete(key)
	removed, err := c.rt.Remove(ctx, key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	_, known := c.synced[key]
	delete(c.synced, key)
	c.mu.Unlock()
	if removed && !known {
		c.countDrift(map[string]int{runtime.DriftOrphanRemoved: 1})
	}
	c.board.Delete(key)
	return nil
}
