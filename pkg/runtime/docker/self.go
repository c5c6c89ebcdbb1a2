package docker

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// joinSelf attaches the daemon's own container to a function network, so
// the proxy and the readiness probes reach replicas by their IP on it. It
// does nothing when the daemon does not run in a container (Config.Self "").
//
// Docker's network list does not say which containers are attached, so the
// networks joined are remembered (by ID, so a network recreated under the
// same name is joined again), and an "already attached" answer counts as
// success after a daemon restart.
func (r *Runtime) joinSelf(ctx context.Context, n engine.Network, log logrus.FieldLogger) error {
	if r.cfg.Self == "" {
		return nil
	}
	r.mu.Lock()
	joined := r.selfJoined[n.ID]
	r.mu.Unlock()
	if joined {
		return nil
	}
	err := r.eng.ConnectNetwork(ctx, n.Name, r.cfg.Self)
	if err != nil && !errors.Is(err, engine.ErrConflict) {
		r.metrics.dockerError("connect")
		return fmt.Errorf("join function network %s: %w", n.Name, err)
	}
	r.mu.Lock()
	r.selfJoined[n.ID] = true
	r.mu.Unlock()
	log.WithField("network", n.Name).Debug("daemon container joined the function network")
	return nil
}

// leaveSelf detaches the daemon's container from a network about to be
// removed: Docker refuses to remove a network with endpoints attached.
func (r *Runtime) leaveSelf(ctx context.Context, n engine.Network) error {
	if r.cfg.Self == "" {
		return nil
	}
	err := r.eng.DisconnectNetwork(ctx, n.Name, r.cfg.Self)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.metrics.dockerError("disconnect")
		return fmt.Errorf("leave function network %s: %w", n.Name, err)
	}
	r.mu.Lock()
	delete(r.selfJoined, n.ID)
	r.mu.Unlock()
	return nil
}
