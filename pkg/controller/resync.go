package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// resyncProbes bounds the readiness probes one resync pass runs at once.
const resyncProbes = 32

// ResyncAll is the periodic insurance against missed events. It lists our
// containers and networks once and compares them with what the last
// reconcile of each function left behind. A function still exactly as it
// was (converged at its generation, the same running replicas on its
// network, all answering their readiness probe) is not reconciled: that
// would cost two Docker list calls per function per pass, which at a
// thousand functions kept the engine busy for most of the resync period.
// Every other desired key, and every key found only on containers and
// networks (orphans), is queued. Keys backing off after a failure keep
// their backoff (Nudge).
func (c *Controller) ResyncAll(ctx context.Context) error {
	fns, err := c.store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	marks := c.touchMarks() // before the lists: see takeSnapshot
	taken := time.Now()
	cs, cerr := c.engine.ListContainers(ctx, c.instanceLabels())
	if cerr != nil {
		c.metrics.dockerError("list")
	}
	nets, nerr := c.engine.ListNetworks(ctx, c.instanceLabels())
	if nerr != nil {
		c.metrics.dockerError("list-networks")
	}
	if err := errors.Join(cerr, nerr); err != nil {
		// Without a snapshot nothing can be judged unchanged.
		for _, f := range fns {
			c.queue.Nudge(f.Key())
		}
		return fmt.Errorf("resync: %w", err)
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
		if k := labelKey(ct.Labels); k != "" {
			at(k).containers = append(at(k).containers, ct)
		}
	}
	for _, n := range nets {
		if k := labelKey(n.Labels); k != "" {
			at(k).networks = append(at(k).networks, n)
			c.rememberNetwork(n.Name, k) // so its events find the key
		}
	}

	c.checkNeighbors(cs)

	var check []string
	for _, f := range fns {
		k := f.Key()
		s := byKey[k]
		delete(byKey, k)
		if s != nil && c.unchanged(f, s) {
			check = append(check, k)
			continue
		}
		if s == nil {
			s = &snapshot{} // nothing of it in Docker: that is a finding too
		}
		s.touched, s.taken = marks[k], taken
		c.mu.Lock()
		c.snaps[k] = s
		c.mu.Unlock()
		c.queue.Nudge(k)
	}
	for k := range byKey {
		c.queue.Nudge(k) // orphans
	}
	c.probeSteady(ctx, check)
	c.metrics.resync(len(fns)-len(check), len(check))

	c.mu.Lock()
	c.global.LastResync = time.Now()
	c.mu.Unlock()
	return nil
}

// snapshot is what one resync pass found in Docker for one key.
type snapshot struct {
	containers []docker.Container
	networks   []docker.Network
	touched    uint64    // the key's touch mark before the lists were made
	taken      time.Time // when the lists were asked for
}

// snapshotTTL bounds how old a resync's listing may be when a reconcile
// uses it instead of listing for itself.
const snapshotTTL = 5 * time.Second

// touch marks that key's Docker state may have changed (an event) or is
// being changed (a reconcile), which invalidates listings made before.
func (c *Controller) touch(key string) {
	c.mu.Lock()
	c.seq++
	c.touched[key] = c.seq
	c.mu.Unlock()
}

func (c *Controller) touchMarks() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.touched)
}

// takeSnapshot hands a reconcile of key what the last resync listed for
// it, when that listing still holds, and marks the key touched. After a
// daemon restart every function is reconciled; with its own two list calls
// each, 1000 functions took 14.5 s to be routable again, longer than an
// invocation waits for a replica.
//
// A listing holds when nothing touched the key since its marks were read,
// before the lists were asked for: no event arrived for it (a change by
// someone else shows up as one) and no reconcile of it began or ended (a
// reconcile still changing Docker while the lists ran ends after the read,
// so it invalidates them). Changes made before the read are in the lists.
func (c *Controller) takeSnapshot(key string) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snaps[key]
	delete(c.snaps, key)
	valid := s != nil && s.touched == c.touched[key] && time.Since(s.taken) < snapshotTTL
	c.seq++
	c.touched[key] = c.seq
	if !valid {
		return nil
	}
	return s
}

// unchanged reports whether s is exactly what the last reconcile of f left:
// it converged at f's generation, the function has one network (joined by
// the daemon's own container when it runs in one), and its containers are
// the remembered replicas, all running, made here with the current spec
// hash, on that network at the addresses the proxy routes to.
func (c *Controller) unchanged(f store.Function, s *snapshot) bool {
	k := f.Key()
	st, ok := c.board.Get(k)
	if !ok || st.LastResult != "converged" || st.ObservedGeneration != f.Generation {
		return false
	}
	netName := c.networkName(f.Namespace, f.Name())
	if len(s.networks) != 1 || s.networks[0].Name != netName {
		return false
	}
	eps, _ := c.eps.Lookup(k)
	if len(s.containers) != int(f.Replicas) || len(eps) != len(s.containers) {
		return false
	}
	addrs := make(map[string]string, len(eps))
	for _, e := range eps {
		addrs[e.Container] = e.Addr
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.Self != "" && !c.selfJoined[s.networks[0].ID] {
		return false
	}
	seen := c.seen[k]
	if len(seen) != len(s.containers) {
		return false
	}
	for _, ct := range s.containers {
		ip := ct.Networks[netName]
		if _, ok := seen[ct.ID]; !ok || ct.State != docker.StateRunning || ip == "" ||
			ct.Labels[docker.LabelSpecHash] != st.SpecHash || !c.madeHere(ct) ||
			addrs[ct.ID] != replicaAddr(ip) {
			return false
		}
		if _, draining := c.draining[ct.ID]; draining {
			return false
		}
	}
	return true
}

// probeSteady probes the published replicas of keys judged unchanged and
// queues those with a replica that stopped answering, so a hung replica
// leaves the endpoint set within one resync period without costing the
// healthy ones any Docker call.
func (c *Controller) probeSteady(ctx context.Context, keys []string) {
	sem := make(chan struct{}, resyncProbes)
	var wg sync.WaitGroup
	for _, k := range keys {
		eps, _ := c.eps.Lookup(k)
		for _, e := range eps {
			sem <- struct{}{}
			wg.Add(1)
			go func(k, addr string) {
				defer func() { <-sem; wg.Done() }()
				pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
				defer cancel()
				if !c.prober.Ready(pctx, addr) && ctx.Err() == nil {
					c.queue.Nudge(k)
				}
			}(k, e.Addr)
		}
	}
	wg.Wait()
}

// checkNeighbors warns when the running replicas near the kernel's
// neighbour table limit. Past it the kernel drops ARP entries ("neighbor
// table overflow" in dmesg) and the daemon can no longer reach replicas:
// probes time out and functions stay unavailable with nothing wrong in
// Docker. At 1000 functions on the default limit of 1024 a third of them
// never became ready.
func (c *Controller) checkNeighbors(cs []docker.Container) {
	if c.cfg.NeighborLimit <= 0 {
		return
	}
	running := 0
	for _, ct := range cs {
		if ct.State == docker.StateRunning {
			running++
		}
	}
	near := running >= c.cfg.NeighborLimit*3/4
	c.mu.Lock()
	changed := near != c.nearNeighborLimit
	c.nearNeighborLimit = near
	c.mu.Unlock()
	switch {
	case changed && near:
		c.cfg.Log.WithFields(logrus.Fields{"replicas": running, "limit": c.cfg.NeighborLimit}).
			Warn("replicas near the kernel's neighbour (ARP) table limit: raise net.ipv4.neigh.default.gc_thresh1/2/3 (see docs/operations.md) or replicas become unreachable")
	case changed:
		c.cfg.Log.WithFields(logrus.Fields{"replicas": running, "limit": c.cfg.NeighborLimit}).
			Info("replicas back below three quarters of the kernel's neighbour table limit")
	}
}
