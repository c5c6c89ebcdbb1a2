package docker

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// joinSelf attaches the daemon's own container to a function network, so
// the proxy and the readiness probes reach replicas by their IP on it. It
// does nothing when the daemon does not run in a container (Config.Self
// ""), or joined the network already (see engine.SelfNetworks).
func (r *Runtime) joinSelf(ctx context.Context, n engine.Network, log logrus.FieldLogger) error {
	joined, err := r.self.Join(ctx, r.eng, r.cfg.Self, n.ID, n.Name)
	if err != nil {
		r.metrics.dockerError("connect")
		return fmt.Errorf("join function network %s: %w", n.Name, err)
	}
	if joined {
		log.WithField("network", n.Name).Debug("daemon container joined the function network")
	}
	return nil
}

// leaveSelf detaches the daemon's container from a network about to be
// removed: Docker refuses to remove a network with endpoints attached.
func (r *Runtime) leaveSelf(ctx context.Context, n engine.Network) error {
	if err := r.self.Leave(ctx, r.eng, r.cfg.Self, n.ID, n.Name); err != nil {
		r.metrics.dockerError("disconnect")
		return fmt.Errorf("leave function network %s: %w", n.Name, err)
	}
	return nil
}
