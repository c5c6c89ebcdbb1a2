package fake

import (
	"context"
	"fmt"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// DisconnectNetwork implements docker.Engine.
func (e *Engine) DisconnectNetwork(ctx context.Context, network, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("disconnect", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("disconnect %s: %w", id, docker.ErrNotFound)
	}
	if _, ok := c.Networks[network]; !ok {
		return fmt.Errorf("disconnect %s: container %s is not connected to network %s: %w", id, id, network, docker.ErrNotFound)
	}
	delete(c.Networks, network)
	e.record("disconnect %s %s", c.Name, network)
	return nil
}
