package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// listProbes bounds the readiness probes one List runs at once.
const listProbes = 32

// snapshotTTL bounds how old a List's listing may be when a Sync uses it
// instead of listing for itself.
const snapshotTTL = 5 * time.Second

// snapshot is what one List found in Docker for one key.
type snapshot struct {
	containers []engine.Container
	networks   []engine.Network
}

// listing is one List's findings, handed out per key to the next Sync.
type listing struct {
	byKey map[string]*snapshot
	marks map[string]uint64 // the keys' touch marks before the lists were made
	taken time.Time         // when the lists were asked for
	used  map[string]bool   // keys whose Sync took their snapshot already
}

// List implements runtime.Runtime. It lists this instance's containers and
// networks once and compares each key with what its last Sync left. A
// function still exactly as it was (converged, the same running replicas
// on its network, all answering their readiness probe) is Unchanged and
// needs no Sync: syncing it would cost two Docker list calls per function
// per resync, which at a thousand functions kept the engine busy for most
// of the resync period. The listing is kept for the Syncs that follow.
func (r *Runtime) List(ctx context.Context) (map[string]runtime.Listing, error) {
	marks := r.touchMarks() // before the lists: see takeSnapshot
	taken := time.Now()
	cs, cerr := r.eng.ListContainers(ctx, r.instanceLabels())
	if cerr != nil {
		r.metrics.dockerError("list")
	}
	nets, nerr := r.eng.ListNetworks(ctx, r.instanceLabels())
	if nerr != nil {
		r.metrics.dockerError("list-networks")
	}
	if err := errors.Join(cerr, nerr); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}

	byKey := map[string]*snapshot{}
	at := func(k string) *snapshot {
		s := byKey[k]
		if s == nil {
			s = &snapshot{}
			byKey[k] = s
		}
		return s
	}
	for _, ct := range cs {
		if k := function.KeyOf(ct.Labels); k != "" {
			at(k).containers = append(at(k).containers, ct)
		}
	}
	for _, n := range nets {
		if k := function.KeyOf(n.Labels); k != "" {
			at(k).networks = append(at(k).networks, n)
			r.rememberNetwork(n.Name, k) // so its events find the key
		}
	}
	r.checkNeighbors(cs)
	r.sweepJobs(cs)
	r.pruneLeaked(nets)

	out := make(map[string]runtime.Listing, len(byKey))
	var steady []string
	for k, s := range byKey {
		l := r.compare(k, s)
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
	r.mu.Lock()
	r.listing = &listing{byKey: byKey, marks: marks, taken: taken, used: map[string]bool{}}
	r.mu.Unlock()
	return out, nil
}

// touch marks that key's Docker state may have changed (an event) or is
// being changed (a Sync), which invalidates listings made before.
func (r *Runtime) touch(key string) {
	r.mu.Lock()
	r.seq++
	r.touched[key] = r.seq
	r.mu.Unlock()
}

func (r *Runtime) touchMarks() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.touched)
}

// takeSnapshot hands a Sync of key what the last List found for it, when
// that still holds, and marks the key touched. After a daemon restart every
// function is synced; with its own two list calls each, 1000 functions
// took 14.5 s to be routable again, longer than an invocation waits for a
// replica. A key the List did not find at all gets an empty snapshot: that
// is a finding too.
//
// A listing holds when nothing touched the key since its marks were read,
// before the lists were asked for: no event arrived for it (a change by
// someone else shows up as one) and no Sync of it began or ended (a Sync
// still changing Docker while the lists ran ends after the read, so it
// invalidates them). Changes made before the read are in the lists. Each
// listing serves one Sync.
func (r *Runtime) takeSnapshot(key string) *snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.listing
	valid := l != nil && !l.used[key] && l.marks[key] == r.touched[key] && time.Since(l.taken) < snapshotTTL
	r.seq++
	r.touched[key] = r.seq
	if !valid {
		return nil
	}
	l.used[key] = true
	if s := l.byKey[key]; s != nil {
		return s
	}
	return &snapshot{}
}

// compare tells whether s is exactly what the last Sync of key left: it
// converged, the function has one network (joined by the daemon's own
// container when it runs in one), and its containers are the remembered
// replicas, all running, made here with the converged spec hash, on that
// network at the addresses published, and the replicas it left parked,
// still paused and within their retention. A function parked at zero is
// thus unchanged from one resync to the next (its Sync asked to be run
// again when the first retention ends); one whose retention ended is not,
// so a resync removes the replica even if that requeue was lost.
func (r *Runtime) compare(key string, s *snapshot) runtime.Listing {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.last[key]
	l := runtime.Listing{Generation: last.generation, Hash: last.hash}
	if !ok || !last.converged {
		return l
	}
	ns, name, err := faas.SplitKey(key)
	if err != nil {
		return l
	}
	netName := r.networkName(ns, name)
	if len(s.networks) != 1 || s.networks[0].Name != netName {
		return l
	}
	if !r.self.Joined(r.cfg.Self, s.networks[0].ID) {
		return l
	}
	seen := r.seen[key]
	if len(s.containers) != len(last.endpoints)+len(last.parked) || len(seen)+len(last.parked) != len(s.containers) {
		return l
	}
	now := time.Now()
	for _, ct := range s.containers {
		if until, ok := last.parked[ct.ID]; ok {
			if ct.State != statePaused || ct.Labels[engine.LabelSpecHash] != last.hash || !r.madeHere(ct) || !now.Before(until) {
				return l
			}
			continue
		}
		ip := ct.Networks[netName]
		if _, ok := seen[ct.ID]; !ok || ct.State != stateRunning || ip == "" ||
			ct.Labels[engine.LabelSpecHash] != last.hash || !r.madeHere(ct) ||
			last.endpoints[ct.ID] != runtime.ReplicaAddr(ip) {
			return l
		}
		if _, draining := r.draining[ct.ID]; draining {
			return l
		}
	}
	l.Unchanged = true
	return l
}

// probeSteady probes the published replicas of keys found unchanged and
// returns those with a replica that stopped answering, so a hung replica
// leaves the endpoint set within one resync period without costing the
// healthy ones any Docker call. Parked replicas are never published, so
// they are not probed: a frozen replica cannot answer, and that is no
// change.
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

// checkNeighbors warns when the running replicas near the kernel's
// neighbour table limit. Past it the kernel drops ARP entries ("neighbor
// table overflow" in dmesg) and the daemon can no longer reach replicas:
// probes time out and functions stay unavailable with nothing wrong in
// Docker. At 1000 functions on the default limit of 1024 a third of them
// never became ready.
func (r *Runtime) checkNeighbors(cs []engine.Container) {
	if r.cfg.NeighborLimit <= 0 {
		return
	}
	running := 0
	for _, ct := range cs {
		if ct.State == stateRunning {
			running++
		}
	}
	near := running >= r.cfg.NeighborLimit*3/4
	r.mu.Lock()
	changed := near != r.nearNeighborLimit
	r.nearNeighborLimit = near
	r.mu.Unlock()
	fields := logrus.Fields{"replicas": running, "limit": r.cfg.NeighborLimit}
	switch {
	case changed && near:
		r.cfg.Log.WithFields(fields).
			Warn("replicas near the kernel's neighbour (ARP) table limit: raise net.ipv4.neigh.default.gc_thresh1/2/3 (see docs/operations.md) or replicas become unreachable")
	case changed:
		r.cfg.Log.WithFields(fields).Info("replicas back below three quarters of the kernel's neighbour table limit")
	}
}
