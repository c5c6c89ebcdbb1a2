package docker

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// ensureNetwork makes sure the function's own bridge network exists. snap,
// when not nil, is a valid listing of the key's networks (takeSnapshot).
func (r *Runtime) ensureNetwork(ctx context.Context, obs *runtime.Observed, key, ns, name, netName string, snap *snapshot, log logrus.FieldLogger) error {
	var nets []engine.Network
	if snap != nil {
		nets = snap.networks
	} else {
		var err error
		if nets, err = r.eng.ListNetworks(ctx, r.keyLabels(ns, name)); err != nil {
			r.metrics.dockerError("list-networks")
			return err
		}
	}
	n, ok, err := r.oneNetwork(ctx, obs, nets, netName, log)
	if err != nil {
		return err
	}
	if ok {
		r.rememberNetwork(netName, key)
		r.forgetLeaked(n.ID) // deployed again: in use
		return r.joinSelf(ctx, n, log)
	}
	// Known before but missing now: someone removed it. Asked before the
	// create, which makes it known.
	knew := r.knowsNetwork(netName, key)
	id, err := r.eng.CreateNetwork(ctx, netName, r.keyLabels(ns, name))
	switch {
	case errors.Is(err, engine.ErrConflict):
		return fmt.Errorf("network %s exists but is not managed by this dockerfaasd instance: %w", netName, err)
	case errors.Is(err, engine.ErrAddressPoolsExhausted):
		r.metrics.dockerError("create-network")
		return fmt.Errorf("%w (every function has its own network: give Docker more address pools, see docs/operations.md)", err)
	case err != nil:
		r.metrics.dockerError("create-network")
		return err
	}
	r.rememberNetwork(netName, key)
	if knew {
		obs.AddDrift(runtime.DriftNetworkMissing)
	}
	log.WithField("network", netName).Info("network created")
	return r.joinSelf(ctx, engine.Network{ID: id, Name: netName}, log)
}

// oneNetwork picks the function's network among nets, removing duplicates.
// Docker's check for a duplicate name is not atomic: a create still running
// in Docker when a previous daemon was killed can race this daemon's own,
// and leave two networks of one name, after which every container start
// fails with "network ... is ambiguous" for good. The one kept is the one
// with the most containers (then the lowest ID, so every run picks the
// same); the others are ours by label and removed. ok is false when there
// is none.
func (r *Runtime) oneNetwork(ctx context.Context, obs *runtime.Observed, nets []engine.Network, netName string, log logrus.FieldLogger) (engine.Network, bool, error) {
	var same []engine.Network
	for _, n := range nets {
		if n.Name == netName {
			same = append(same, n)
		}
	}
	if len(same) == 0 {
		return engine.Network{}, false, nil
	}
	sort.Slice(same, func(i, j int) bool {
		if len(same[i].Containers) != len(same[j].Containers) {
			return len(same[i].Containers) > len(same[j].Containers)
		}
		return same[i].ID < same[j].ID
	})
	for _, n := range same[1:] {
		if err := r.eng.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			r.metrics.dockerError("remove-network")
			return engine.Network{}, false, fmt.Errorf("remove duplicate network %s (%s): %w", netName, n.ID, err)
		}
		obs.AddDrift(runtime.DriftNetworkDuplicate)
		log.WithFields(logrus.Fields{"network": netName, "id": n.ID, "kept": same[0].ID}).Warn("removed a duplicate of the function's network")
	}
	return same[0], true, nil
}

func (r *Runtime) rememberNetwork(name, key string) {
	r.mu.Lock()
	r.networks[name] = key
	r.mu.Unlock()
}

// Remove implements runtime.Runtime: it removes everything labelled with a
// key that is no longer desired, containers first, then the network, and
// forgets what it remembered of the key.
func (r *Runtime) Remove(ctx context.Context, key string) (bool, error) {
	defer r.touch(key)
	ns, name, err := faas.SplitKey(key)
	if err != nil {
		return false, err
	}
	log := r.cfg.Log.WithFields(logrus.Fields{"function": name, "namespace": ns})
	list, err := r.eng.ListContainers(ctx, r.keyLabels(ns, name))
	if err != nil {
		r.metrics.dockerError("list")
		return false, err
	}
	var errs []error
	for _, ct := range list {
		if err := r.remove(ctx, ct.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.WithField("container", ct.Name).Info("removed container of deleted function")
	}
	// Job and pooled containers are on the network too.
	r.dropIsolated(key)
	errs = append(errs, r.removeJobs(ctx, key))
	if err := errors.Join(errs...); err != nil {
		return len(list) > 0, err
	}
	nets, err := r.eng.ListNetworks(ctx, r.keyLabels(ns, name))
	if err != nil {
		r.metrics.dockerError("list-networks")
		return len(list) > 0, err
	}
	removed := len(list) > 0
	for _, n := range nets {
		if err := r.leaveSelf(ctx, n); err != nil {
			return true, err
		}
		err := r.eng.RemoveNetwork(ctx, n.ID)
		switch {
		case errors.Is(err, engine.ErrNetworkLeaked):
			// Nothing holds it, and nothing this daemon does can make
			// Docker let go of it: the key is done with, and the network
			// is an orphan each resync tries again (it goes once the
			// engine restarted).
			r.networkLeaked(n, err, log)
			continue
		case err != nil && !errors.Is(err, engine.ErrNotFound):
			r.metrics.dockerError("remove-network")
			return true, err
		}
		removed = true
		r.mu.Lock()
		delete(r.networks, n.Name)
		r.mu.Unlock()
		if r.forgetLeaked(n.ID) {
			log.WithField("network", n.Name).Info("removed network of deleted function, which Docker had refused to remove for a miscounted endpoint")
		} else {
			log.WithField("network", n.Name).Info("removed network of deleted function")
		}
	}
	r.mu.Lock()
	delete(r.seen, key)
	delete(r.crashes, key)
	delete(r.last, key)
	delete(r.warming, key)
	for id, rec := range r.parked {
		if rec.key == key { // parked replicas someone removed by hand
			delete(r.parked, id)
		}
	}
	r.mu.Unlock()
	return removed, nil
}

// forgetLeaked forgets that the network with id was leaked (removed at
// last, or used again); it reports whether it was.
func (r *Runtime) forgetLeaked(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.leaked[id]
	if ok {
		delete(r.leaked, id)
		r.metrics.leakedNets.Set(float64(len(r.leaked)))
	}
	return ok
}

// pruneLeaked forgets the leaked networks that are not among nets, a
// listing of all of this instance's: removed by hand once Docker let go of
// them, their key is no orphan any more, so Remove would never see them go.
func (r *Runtime) pruneLeaked(nets []engine.Network) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.leaked) == 0 {
		return
	}
	listed := make(map[string]bool, len(nets))
	for _, n := range nets {
		listed[n.ID] = true
	}
	for id := range r.leaked {
		if !listed[id] {
			delete(r.leaked, id)
		}
	}
	r.metrics.leakedNets.Set(float64(len(r.leaked)))
}

// networkLeaked records that Docker will not remove network n, which no
// container holds, for an endpoint it miscounted; warned about once.
func (r *Runtime) networkLeaked(n engine.Network, err error, log logrus.FieldLogger) {
	r.mu.Lock()
	_, known := r.leaked[n.ID]
	r.leaked[n.ID] = n.Name
	r.metrics.leakedNets.Set(float64(len(r.leaked)))
	r.mu.Unlock()
	if !known {
		log.WithError(err).WithField("network", n.Name).Warn("Docker will not remove the network of a deleted function until the engine restarts; it is tried again at every resync")
	}
}
