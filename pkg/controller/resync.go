package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// ResyncAll is the periodic insurance against missed events. The runtime
// observes everything it runs at once (List); a function it finds exactly
// as its last reconcile left it, at the generation and spec hash desired
// now, is not reconciled. Every other desired key, and every key found only in the
// runtime (orphans), is queued. Keys backing off after a failure keep
// their backoff (Nudge).
func (c *Controller) ResyncAll(ctx context.Context) error {
	fns, err := c.store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	found, err := c.rt.List(ctx)
	if err != nil {
		// Without a listing nothing can be judged unchanged.
		for _, f := range fns {
			c.queue.Nudge(f.Key())
		}
		return fmt.Errorf("resync: %w", err)
	}
	// A changed secret bumps no generation: the hash, over the secrets'
	// revisions, tells whether the runtime runs what is desired now, so a
	// secret write whose watch event was missed is still acted on.
	secrets, err := c.store.ListSecrets(ctx, "")
	if err != nil {
		secrets = nil // every function with secrets is then queued
	}
	infos := make(map[string]store.SecretInfo, len(secrets))
	for _, s := range secrets {
		infos[faas.Key(s.Namespace, s.Name)] = s
	}
	unchanged := 0
	for _, f := range fns {
		k := f.Key()
		l, ok := found[k]
		delete(found, k)
		if ok && l.Unchanged && l.Generation == f.Generation && l.Hash == desiredHash(f, infos) {
			unchanged++
			continue
		}
		c.queue.Nudge(k)
	}
	for k := range found {
		c.queue.Nudge(k) // orphans
	}
	c.metrics.resync(len(fns)-unchanged, unchanged)

	c.mu.Lock()
	c.global.LastResync = time.Now()
	c.mu.Unlock()
	return nil
}

// desiredHash is the spec hash of f with its secrets' revisions from infos
// (keyed namespace/name), or "" when one of them is missing.
func desiredHash(f store.Function, infos map[string]store.SecretInfo) string {
	names := slices.Clone(f.Spec.Secrets)
	sort.Strings(names)
	names = slices.Compact(names)
	list := make([]store.SecretInfo, 0, len(names))
	for _, n := range names {
		info, ok := infos[faas.Key(f.Namespace, n)]
		if !ok {
			return ""
		}
		list = append(list, info)
	}
	return SpecHash(f.Spec, list...)
}
