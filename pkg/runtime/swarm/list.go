package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// listProbes bounds the readiness probes one List runs at once.
const listProbes = 32

// found is what one List saw of one key.
type found struct {
	services []swarm.Service
	networks []engine.Network
	tasks    []engine.Task
}

// List implements runtime.Runtime with three calls whatever the number of
// functions (services, networks, and the tasks of all services), and
// reports a key unchanged when it is exactly as its last Sync left it: the
// service at the version that Sync left, its one network (joined by the
// daemon), the tasks wanted running exactly those published, at the same
// addresses, all running and still answering their probe.
func (r *Runtime) List(ctx context.Context) (map[string]runtime.Listing, error) {
	svcs, serr := r.eng.ListServices(ctx, r.instanceLabels())
	nets, nerr := r.eng.ListNetworks(ctx, r.instanceLabels())
	if err := errors.Join(r.metrics.count("list-services", serr), r.metrics.count("list-networks", nerr)); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	byKey := map[string]*found{}
	at := func(k string) *found {
		if byKey[k] == nil {
			byKey[k] = &found{}
		}
		return byKey[k]
	}
	bySvc := map[string]string{}
	var ids []string
	for _, s := range svcs {
		if k := function.KeyOf(s.Spec.Labels); k != "" {
			at(k).services = append(at(k).services, s)
			bySvc[s.ID] = k
			ids = append(ids, s.ID)
			r.rememberName(s.Spec.Name, k)
		}
	}
	for _, n := range nets {
		if k := function.KeyOf(n.Labels); k != "" {
			at(k).networks = append(at(k).networks, n)
			r.rememberName(n.Name, k)
		}
	}
	if len(ids) > 0 {
		tasks, err := r.eng.ListTasks(ctx, ids...)
		if err != nil {
			return nil, fmt.Errorf("list: %w", r.metrics.count("list-tasks", err))
		}
		for _, t := range tasks {
			if k := bySvc[t.ServiceID]; k != "" {
				at(k).tasks = append(at(k).tasks, t)
			}
		}
	}
	out := make(map[string]runtime.Listing, len(byKey))
	var steady []string
	for k, f := range byKey {
		l := r.compare(k, f)
		out[k] = l
		if l.Unchanged {
			steady = append(steady, k)
		}
	}
	for _, k := range r.probeSteady(ctx, steady) {
		l := out[k]
		l.Unchanged = false
		out[k] = l
	}
	return out, nil
}

// compare tells whether f is exactly what the last Sync of key left.
func (r *Runtime) compare(key string, f *found) runtime.Listing {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.last[key]
	l := runtime.Listing{Generation: last.generation, Hash: last.hash}
	if !ok || !last.converged || len(f.services) != 1 || len(f.networks) != 1 {
		return l
	}
	svc, n := f.services[0], f.networks[0]
	if svc.ID != last.service || svc.Version.Index != last.version || n.ID != last.network {
		return l
	}
	if !r.self.Joined(r.cfg.Self, n.ID) {
		return l
	}
	wanted := 0
	for _, t := range f.tasks {
		if t.State == engine.TaskRunning && t.DesiredState != engine.TaskRunning {
			return l // swarm is stopping a task
		}
		if t.DesiredState != engine.TaskRunning {
			continue
		}
		wanted++
		addr, ok := last.endpoints[t.ID]
		if !ok || t.State != engine.TaskRunning || t.Addrs[n.Name] == "" || runtime.ReplicaAddr(t.Addrs[n.Name]) != addr {
			return l
		}
	}
	if wanted != len(last.endpoints) {
		return l
	}
	l.Unchanged = true
	return l
}

// probeSteady probes the published tasks of keys found unchanged and
// returns those with a task that stopped answering.
func (r *Runtime) probeSteady(ctx context.Context, keys []string) []string {
	return r.probes(listProbes).Unready(ctx, keys, r.published)
}

// published are the addresses the last Sync of key published.
func (r *Runtime) published(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Values(r.last[key].endpoints))
}

// probes runs readiness probes, at most limit at once (0: no bound).
func (r *Runtime) probes(limit int) runtime.Probes {
	return runtime.Probes{Prober: r.cfg.Prober, Timeout: r.cfg.ProbeTimeout, Limit: limit}
}

// Remove implements runtime.Runtime: the key's service (its tasks go with
// it), its network (swarm refuses while tasks still hold it: the error
// makes the controller retry), and the namespace's secret versions no
// service uses any more.
func (r *Runtime) Remove(ctx context.Context, key string) (bool, error) {
	ns, name, err := faas.SplitKey(key)
	if err != nil {
		return false, err
	}
	log := r.cfg.Log.WithFields(logrus.Fields{"function": name, "namespace": ns})
	svcs, err := r.eng.ListServices(ctx, r.keyLabels(ns, name))
	if err != nil {
		return false, r.metrics.count("list-services", err)
	}
	for _, s := range svcs {
		if err := ignoreGone(r.eng.RemoveService(ctx, s.ID)); err != nil {
			return true, r.metrics.count("remove-service", err)
		}
		log.WithField("service", s.Spec.Name).Info("removed service of deleted function")
	}
	nets, err := r.eng.ListNetworks(ctx, r.keyLabels(ns, name))
	if err != nil {
		return len(svcs) > 0, r.metrics.count("list-networks", err)
	}
	for _, n := range nets {
		if err := r.leaveSelf(ctx, n); err != nil {
			return true, err
		}
		if err := ignoreGone(r.eng.RemoveNetwork(ctx, n.ID)); err != nil {
			return true, r.metrics.count("remove-network", err)
		}
		log.WithField("network", n.Name).Info("removed network of deleted function")
	}
	if err := r.pruneSecrets(ctx, ns, nil, log); err != nil {
		return true, err
	}
	r.mu.Lock()
	delete(r.last, key)
	for n, k := range r.names {
		if k == key {
			delete(r.names, n)
		}
	}
	for node, keys := range r.placed {
		delete(keys, key)
		if len(keys) == 0 {
			delete(r.placed, node)
		}
	}
	r.mu.Unlock()
	return len(svcs) > 0 || len(nets) > 0, nil
}
