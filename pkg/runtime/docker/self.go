package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// selfNetworker is what a daemon running in a container needs to reach its
// functions: it joins each function network and leaves it before removal.
type selfNetworker interface {
	ConnectNetwork(ctx context.Context, network, container string) error
	DisconnectNetwork(ctx context.Context, network, container string) error
}

// joinSelf attaches the daemon's own container to a function network, so
// the proxy and the readiness probes reach replicas by their IP on it. It
// does nothing when the daemon does not run in a container (Config.Self "").
//
// Docker's network list does not say which containers are attached, so the
// networks joined are remembered (by ID, so a network recreated under the
// same name is joined again), and an "already attached" answer counts as
// success after a daemon restart.
func (c *Controller) joinSelf(ctx context.Context, n docker.Network, log logrus.FieldLogger) error {
	if c.cfg.Self == "" {
		return nil
	}
	c.mu.Lock()
	joined := c.selfJoined[n.ID]
	c.mu.Unlock()
	if joined {
		return nil
	}
	sn, ok := c.engine.(selfNetworker)
	if !ok {
		return errors.New("the docker engine cannot attach the daemon's container to function networks")
	}
	err := sn.ConnectNetwork(ctx, n.Name, c.cfg.Self)
	if err != nil && !errors.Is(err, docker.ErrConflict) && !strings.Contains(err.Error(), "already exists") {
		c.metrics.dockerError("connect")
		return fmt.Errorf("join function network %s: %w", n.Name, err)
	}
	c.mu.Lock()
	c.selfJoined[n.ID] = true
	c.mu.Unlock()
	log.WithField("network", n.Name).Debug("daemon container joined the function network")
	return nil
}

// leaveSelf detaches the daemon's container from a network about to be
// removed: Docker refuses to remove a network with endpoints attached.
func (c *Controller) leaveSelf(ctx context.Context, n docker.Network) error {
	if c.cfg.Self == "" {
		return nil
	}
	sn, ok := c.engine.(selfNetworker)
	if !ok {
		return nil
	}
	err := sn.DisconnectNetwork(ctx, n.Name, c.cfg.Self)
	if err != nil && !errors.Is(err, docker.ErrNotFound) && !strings.Contains(err.Error(), "is not connected") {
		c.metrics.dockerError("disconnect")
		return fmt.Errorf("leave function network %s: %w", n.Name, err)
	}
	c.mu.Lock()
	delete(c.selfJoined, n.ID)
	c.mu.Unlock()
	return nil
}
