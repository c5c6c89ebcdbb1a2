package swarm

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// ensureNetwork makes sure the function's own attachable overlay network
// exists (one of that name: duplicates, which a racing create can leave,
// are removed) and that the daemon's container joined it. It returns the
// network's ID.
func (r *Runtime) ensureNetwork(ctx context.Context, obs *runtime.Observed, d runtime.Desired, prev lastSync, log logrus.FieldLogger) (string, error) {
	netName := r.networkName(d.Namespace, d.Name)
	r.rememberName(netName, d.Key)
	nets, err := r.eng.ListNetworks(ctx, r.keyLabels(d.Namespace, d.Name))
	if err != nil {
		return "", r.metrics.count("list-networks", err)
	}
	var same []engine.Network
	for _, n := range nets {
		if n.Name == netName {
			same = append(same, n)
		}
	}
	if len(same) > 0 {
		sort.Slice(same, func(i, j int) bool { return same[i].ID < same[j].ID })
		for _, n := range same[1:] {
			if err := ignoreGone(r.eng.RemoveNetwork(ctx, n.ID)); err != nil {
				return "", r.metrics.count("remove-network", fmt.Errorf("remove duplicate network %s: %w", netName, err))
			}
			obs.AddDrift(runtime.DriftNetworkDuplicate)
			log.WithField("network", netName).Warn("removed a duplicate of the function's network")
		}
		return same[0].ID, r.joinSelf(ctx, same[0].ID, netName, log)
	}
	id, err := r.eng.CreateOverlayNetwork(ctx, netName, r.keyLabels(d.Namespace, d.Name), r.cfg.EncryptedNetworks)
	switch {
	case errors.Is(err, engine.ErrConflict):
		return "", fmt.Errorf("network %s exists but is not managed by this dockerfaasd instance: %w", netName, err)
	case err != nil:
		return "", r.metrics.count("create-network", err)
	}
	if prev.network != "" {
		obs.AddDrift(runtime.DriftNetworkMissing)
	}
	log.WithFields(logrus.Fields{"network": netName, "encrypted": r.cfg.EncryptedNetworks}).Info("overlay network created")
	return id, r.joinSelf(ctx, id, netName, log)
}

// joinSelf attaches the daemon's own container to a function network (by
// ID; see engine.SelfNetworks).
func (r *Runtime) joinSelf(ctx context.Context, id, name string, log logrus.FieldLogger) error {
	joined, err := r.self.Join(ctx, r.eng, r.cfg.Self, id, id)
	if err != nil {
		return r.metrics.count("connect", fmt.Errorf("join function network %s: %w", name, err))
	}
	if joined {
		log.WithField("network", name).Debug("daemon container joined the function network")
	}
	return nil
}

// leaveSelf detaches the daemon's container from a network about to go.
func (r *Runtime) leaveSelf(ctx context.Context, n engine.Network) error {
	if err := r.self.Leave(ctx, r.eng, r.cfg.Self, n.ID, n.ID); err != nil {
		return r.metrics.count("disconnect", fmt.Errorf("leave function network %s: %w", n.Name, err))
	}
	return nil
}
