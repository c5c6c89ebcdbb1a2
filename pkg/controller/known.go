package controller

import (
	"context"
	"fmt"
)

// MarkStoredKnown makes every stored function routable (waiting for a ready
// replica) at once. Call it before the HTTP listener opens: a restarted
// daemon accepts calls the moment it listens, and a call to a function it
// already has must wait the few milliseconds adoption takes, never get 404
// because no worker has looked at that function yet.
func (c *Controller) MarkStoredKnown(ctx context.Context) error {
	fns, err := c.store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("list functions: %w", err)
	}
	for _, f := range fns {
		c.markKnown(f.Key())
	}
	return nil
}
