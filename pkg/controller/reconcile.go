package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// replica is one observed running container of a function.
type replica struct {
	docker.Container
	current  bool // carries the desired spec hash
	ready    bool
	draining bool
	slot     int
}

// Reconcile makes Docker match the desired state of one function key. It is
// level-triggered: it re-reads desired state and observes Docker every time,
// whatever caused it to run, by listing the key's containers and networks or
// by taking a resync's listing that nothing has invalidated (takeSnapshot).
func (c *Controller) Reconcile(ctx context.Context, key string) (Result, error) {
	snap := c.takeSnapshot(key)
	defer c.touch(key) // what this reconcile changed is not in earlier listings
	ns, name, err := store.SplitKey(key)
	if err != nil {
		return Result{}, Terminal(err)
	}
	fn, err := c.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, c.teardown(ctx, key, ns, name)
	}
	if err != nil {
		return Result{}, fmt.Errorf("read desired state: %w", err)
	}
	log := c.cfg.Log.WithFields(logrus.Fields{"function": name, "namespace": ns, "generation": fn.Generation})

	// Make the function known to the proxy at once, so a request racing the
	// first replica waits for it instead of getting 404.
	c.markKnown(key)
	if t, err := proxy.TimeoutsFromEnv(fn.Spec.EnvVars); err == nil {
		c.eps.SetTimeouts(key, t)
	} else {
		log.WithError(err).Warn("ignoring invalid timeout; using the defaults")
	}

	// A function that had converged at this generation and now needs work
	// has drifted: Docker changed under it, not the desired state.
	prev, _ := c.board.Get(key)
	steady := prev.LastResult == "converged" && prev.ObservedGeneration == fn.Generation

	secrets, err := c.functionSecrets(ctx, fn)
	if err != nil {
		// Running replicas keep serving with the files they were given;
		// nothing new can start without them.
		c.setReason(key, fn, prev.SpecHash, secretReason(err))
		return Result{}, err
	}
	hash := SpecHash(fn.Spec, secretInfos(secrets)...)
	c.forgetOldCrashes(key, hash, log)
	if _, err := c.containerSpec(fn, hash, 0); err != nil {
		c.setReason(key, fn, hash, "InvalidSpec")
		return Result{}, Terminal(fmt.Errorf("function %s: %w", key, err))
	}
	if err := c.ensureImage(ctx, fn.Spec.Image, log); err != nil {
		c.setReason(key, fn, hash, "ImageNotAvailable")
		return Result{}, err
	}
	netName := c.networkName(ns, name)
	if err := c.ensureNetwork(ctx, key, ns, name, netName, snap, log); err != nil {
		c.setReason(key, fn, hash, "NetworkError")
		return Result{}, err
	}

	var list []docker.Container
	if snap != nil {
		list = snap.containers
	} else if list, err = c.engine.ListContainers(ctx, c.keyLabels(ns, name)); err != nil {
		c.metrics.dockerError("list")
		return Result{}, err
	}
	c.countVanished(key, list, log)
	replicas, err := c.observe(ctx, key, hash, netName, list, log)
	if err != nil {
		return Result{}, err
	}
	// Replace missing replicas before probing: creation does not depend on
	// readiness, and a probe of a dying replica may take its full timeout.
	want := int(fn.Replicas)
	var errs []error
	created, waitCrash, err := c.scaleUp(ctx, key, fn, hash, secrets, replicas, want, log)
	errs = append(errs, err)
	c.probe(ctx, replicas, netName)
	c.scaleDown(key, replicas, want, steady, log)
	c.roll(key, replicas, want, log)
	drainWait, err := c.stopDrained(ctx, key, list, log)
	errs = append(errs, err)
	c.rememberReplicas(key, replicas)

	ready := c.publish(key, replicas, netName)
	converged := c.updateStatus(key, fn, hash, replicas, ready, want, created)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	switch {
	case converged && drainWait == 0:
		c.resetCrashes(key)
		return Result{}, nil
	case drainWait > 0 && (converged || drainWait < c.cfg.ProbeInterval):
		return Result{RequeueAfter: drainWait}, nil
	case waitCrash > 0:
		return Result{RequeueAfter: min(waitCrash, c.cfg.Resync)}, nil
	default:
		return Result{RequeueAfter: c.cfg.ProbeInterval}, nil
	}
}

// observe sorts the function's containers: running ones become replicas
// (reconnected to the network if someone disconnected them); dead, exited
// and never-started ones are removed, counting unexpected exits as restarts.
func (c *Controller) observe(ctx context.Context, key, hash, netName string, list []docker.Container, log logrus.FieldLogger) ([]*replica, error) {
	var out []*replica
	var errs []error
	for _, ct := range list {
		clog := log.WithField("container", ct.Name)
		switch ct.State {
		case docker.StateRunning:
			r := &replica{Container: ct, current: ct.Labels[docker.LabelSpecHash] == hash, slot: slotOf(ct)}
			r.draining = c.isDraining(ct.ID)
			if !r.draining && !c.madeHere(ct) {
				// A copy made by hand is no replica of ours: drain it
				// like a surplus one (see madeHere).
				c.drift("extra_replica")
				c.drain(r, clog, "carries our labels but was not created by this daemon")
			}
			if _, ok := ct.Networks[netName]; !ok && !r.draining {
				clog.Warn("replica lost its network; reconnecting")
				if err := c.engine.ConnectNetwork(ctx, netName, ct.ID); err != nil {
					c.metrics.dockerError("connect")
					errs = append(errs, err)
				} else {
					c.drift("network_disconnected")
				}
				// Its address is unknown until the next list: not ready this round.
				r.Networks = nil
			}
			out = append(out, r)
		case docker.StateRemoving:
			// Docker is already removing it.
		default:
			if !c.isDraining(ct.ID) && !c.madeHere(ct) {
				// Not a replica that exited: a copy made by hand, which
				// must not count as a crash of the function.
				c.drift("extra_replica")
				clog.WithField("state", ct.State).Warn("removing a container that carries our labels but was not created by this daemon")
			} else if !c.isDraining(ct.ID) && ct.State != docker.StateCreated && ct.Labels[docker.LabelSpecHash] == hash {
				c.recordCrash(key, hash)
				c.drift("replica_exited")
				clog.WithField("state", ct.State).Warn("replica exited; replacing it")
			} else if !c.isDraining(ct.ID) {
				clog.WithField("state", ct.State).Info("removing stale container")
			}
			if err := c.remove(ctx, ct.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return out, errors.Join(errs...)
}

// replicaAddr is where a replica with the given IP serves its function.
func replicaAddr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(FunctionPort)) }

func slotOf(ct docker.Container) int {
	n, err := strconv.Atoi(ct.Labels[docker.LabelSlot])
	if err != nil {
		return -1
	}
	return n
}

// probe checks readiness of every running, non-draining replica concurrently.
func (c *Controller) probe(ctx context.Context, replicas []*replica, netName string) {
	var wg sync.WaitGroup
	for _, r := range replicas {
		ip := r.Networks[netName]
		if r.draining || ip == "" {
			continue
		}
		wg.Add(1)
		go func(r *replica, addr string) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
			defer cancel()
			r.ready = c.prober.Ready(pctx, addr)
		}(r, replicaAddr(ip))
	}
	wg.Wait()
}

// scaleUp creates missing replicas of the current spec, unless the function
// is in crash backoff, in which case it says how long to wait.
func (c *Controller) scaleUp(ctx context.Context, key string, fn store.Function, hash string, secrets []store.Secret, replicas []*replica, want int, log logrus.FieldLogger) (int, time.Duration, error) {
	used := map[int]bool{}
	have := 0
	for _, r := range replicas {
		if r.current && !r.draining {
			have++
			used[r.slot] = true
		}
	}
	missing := want - have
	if missing <= 0 {
		return 0, 0, nil
	}
	if wait := c.crashWait(key); wait > 0 {
		log.WithField("retry_in", wait.Round(time.Millisecond)).Info("replica keeps exiting; backing off before replacing it")
		return 0, wait, nil
	}
	attempted, started := 0, 0
	var errs []error
	for slot := 0; attempted < missing; slot++ {
		if used[slot] {
			continue
		}
		spec, err := c.containerSpec(fn, hash, slot)
		if err != nil {
			return attempted, 0, Terminal(err)
		}
		attempted++
		if err := c.createAndStart(ctx, spec, secrets, log); err != nil {
			errs = append(errs, err)
			continue
		}
		started++
	}
	if started > 0 {
		// Drift (replica_missing) is counted where the loss is seen, by
		// countVanished: a creation may follow a crash, counted apart.
		log.WithField("replicas", want).Infof("started %d replica(s)", started)
		if raised := raisedToDockerMinimum(fn.Spec); raised != "" {
			log.WithField("asked", raised).Info("memory below Docker's 6 MB minimum: containers get 6 MB; the function reports what was deployed")
		}
	}
	return attempted, 0, errors.Join(errs...)
}

// createAndStart is idempotent: a name conflict means an earlier attempt got
// as far as creating the container, which is then removed and made again
// (names embed the spec hash, so it cannot be a replica of another spec).
// The secrets are copied in between create and start.
func (c *Controller) createAndStart(ctx context.Context, spec docker.ContainerSpec, secrets []store.Secret, log logrus.FieldLogger) error {
	id, err := c.engine.CreateContainer(ctx, spec)
	if errors.Is(err, docker.ErrConflict) {
		if err := c.removeByName(ctx, spec.Name); err != nil {
			return err
		}
		id, err = c.engine.CreateContainer(ctx, spec)
	}
	if err != nil {
		c.metrics.dockerError("create")
		return err
	}
	if err := c.copySecrets(ctx, id, secrets); err != nil {
		_ = c.remove(ctx, id)
		return err
	}
	if err := c.engine.StartContainer(ctx, id); err != nil {
		c.metrics.dockerError("start")
		_ = c.remove(ctx, id)
		return err
	}
	log.WithField("container", spec.Name).Debug("replica started")
	return nil
}

func (c *Controller) removeByName(ctx context.Context, name string) error {
	list, err := c.engine.ListContainers(ctx, c.instanceLabels())
	if err != nil {
		return err
	}
	for _, ct := range list {
		if ct.Name == name {
			return c.remove(ctx, ct.ID)
		}
	}
	// Ownership is decided by label: a foreign container is never removed.
	return fmt.Errorf("container name %s is taken by a container this dockerfaasd instance does not manage: %w", name, docker.ErrConflict)
}

// scaleDown drains surplus replicas of the current spec, not-ready ones first,
// then the highest slots.
func (c *Controller) scaleDown(key string, replicas []*replica, want int, steady bool, log logrus.FieldLogger) {
	var cur []*replica
	for _, r := range replicas {
		if r.current && !r.draining {
			cur = append(cur, r)
		}
	}
	if len(cur) <= want {
		return
	}
	sort.Slice(cur, func(i, j int) bool {
		if cur[i].ready != cur[j].ready {
			return !cur[i].ready
		}
		return cur[i].slot > cur[j].slot
	})
	why := "scale down"
	if steady {
		why = "extra replica"
		c.drift("extra_replica")
	}
	for _, r := range cur[:len(cur)-want] {
		c.drain(r, log, why)
	}
}

// roll retires replicas of an older spec without losing capacity: not-ready
// old replicas go at once; ready ones only as ready new replicas replace them.
func (c *Controller) roll(key string, replicas []*replica, want int, log logrus.FieldLogger) {
	readyCur, readyOld := 0, 0
	var old []*replica
	for _, r := range replicas {
		if r.draining {
			continue
		}
		switch {
		case r.current && r.ready:
			readyCur++
		case !r.current:
			old = append(old, r)
			if r.ready {
				readyOld++
			}
		}
	}
	surplus := readyCur + readyOld - want
	for _, r := range old {
		switch {
		case !r.ready:
			c.drain(r, log, "old spec, not ready")
		case surplus > 0:
			c.drain(r, log, "replaced by new spec")
			surplus--
		}
	}
}

// drain takes r out of the endpoint set now; stopDrained stops it once the
// grace period for in-flight requests has passed.
func (c *Controller) drain(r *replica, log logrus.FieldLogger, why string) {
	c.mu.Lock()
	c.draining[r.ID] = time.Now()
	c.mu.Unlock()
	r.draining = true
	log.WithField("container", r.Name).WithField("reason", why).Info("draining replica")
}

func (c *Controller) isDraining(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.draining[id]
	return ok
}

// stopDrained stops and removes replicas whose grace period is over and
// returns how long until the next one is due.
func (c *Controller) stopDrained(ctx context.Context, key string, list []docker.Container, log logrus.FieldLogger) (time.Duration, error) {
	var next time.Duration
	var errs []error
	for _, ct := range list {
		c.mu.Lock()
		since, ok := c.draining[ct.ID]
		c.mu.Unlock()
		if !ok {
			continue
		}
		if left := c.cfg.DrainGrace - time.Since(since); left > 0 {
			if next == 0 || left < next {
				next = left
			}
			continue
		}
		if c.drainBusy(ct, since, log) {
			if next == 0 || c.cfg.ProbeInterval < next {
				next = c.cfg.ProbeInterval
			}
			continue
		}
		if ct.State == docker.StateRunning {
			if err := c.engine.StopContainer(ctx, ct.ID, c.cfg.StopTimeout); err != nil && !errors.Is(err, docker.ErrNotFound) {
				c.metrics.dockerError("stop")
				log.WithField("container", ct.Name).WithError(err).Warn("stop failed; removing anyway")
			}
		}
		if err := c.remove(ctx, ct.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.WithField("container", ct.Name).Info("replica stopped and removed")
	}
	return next, errors.Join(errs...)
}

// remove force-removes a container; already gone counts as success.
func (c *Controller) remove(ctx context.Context, id string) error {
	err := c.engine.RemoveContainer(ctx, id)
	if err != nil && !errors.Is(err, docker.ErrNotFound) {
		c.metrics.dockerError("remove")
		return err
	}
	c.mu.Lock()
	delete(c.draining, id)
	c.mu.Unlock()
	if c.inflight != nil {
		c.inflight.ForgetReplica(id)
	}
	return nil
}

// publish hands the ready, non-draining replicas to the proxy, in a stable
// order so an unchanged set does not cause a cache swap.
func (c *Controller) publish(key string, replicas []*replica, netName string) []proxy.Endpoint {
	var eps []proxy.Endpoint
	for _, r := range replicas {
		if r.ready && !r.draining {
			eps = append(eps, proxy.Endpoint{Container: r.ID, Addr: replicaAddr(r.Networks[netName])})
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Container < eps[j].Container })
	c.eps.Set(key, eps)
	return eps
}

// updateStatus publishes the observed state and reports whether the function
// has converged: exactly the wanted replicas, all of the current spec, all ready.
func (c *Controller) updateStatus(key string, fn store.Function, hash string, replicas []*replica, ready []proxy.Endpoint, want, created int) bool {
	current, readyCur, old := 0, 0, 0
	for _, r := range replicas {
		if r.draining {
			continue
		}
		if r.current {
			current++
			if r.ready {
				readyCur++
			}
		} else {
			old++
		}
	}
	converged := current == want && readyCur == want && old == 0 && created == 0
	c.mu.Lock()
	restarts := 0
	reason := ""
	if cs := c.crashes[key]; cs != nil {
		restarts = cs.count
		if cs.count > 1 && !converged {
			reason = "CrashLoopBackOff"
		}
	}
	c.mu.Unlock()
	if !converged && reason == "" {
		switch {
		case old > 0:
			reason = "RollingUpdate"
		case readyCur < current:
			reason = "WaitingForReadiness"
		default:
			reason = "Scaling"
		}
	}
	c.board.Update(key, func(s *status.Function) {
		s.DesiredReplicas = uint64(want)
		s.CurrentReplicas = uint64(current + old)
		s.ReadyReplicas = uint64(len(ready))
		s.Generation = fn.Generation
		s.ObservedGeneration = fn.Generation
		s.SpecHash = hash
		s.Restarts = restarts
		s.Reason = reason
		s.Replicas = replicaStatuses(replicas)
	})
	return converged
}

func (c *Controller) setReason(key string, fn store.Function, hash, reason string) {
	c.board.Update(key, func(s *status.Function) {
		s.DesiredReplicas = fn.Replicas
		s.Generation = fn.Generation
		s.SpecHash = hash
		s.Reason = reason
	})
}

func (c *Controller) recordCrash(key, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.crashes[key]
	if cs == nil || cs.hash != hash {
		cs = &crashState{hash: hash}
		c.crashes[key] = cs
	}
	cs.count++
	cs.last = time.Now()
}

// crashWait is how long to hold off replacing a replica of key: nothing for
// a first exit, then doubling from CrashBackoff up to CrashBackoffMax.
func (c *Controller) crashWait(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.crashes[key]
	if cs == nil || cs.count < 2 {
		return 0
	}
	return time.Until(cs.last.Add(c.crashDelay(cs.count)))
}

func (c *Controller) crashDelay(count int) time.Duration {
	d := c.cfg.CrashBackoff
	for i := 2; i < count && d < c.cfg.CrashBackoffMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.CrashBackoffMax)
}

// resetCrashes forgets past exits once the function has stayed converged
// for longer than the backoff it had reached.
func (c *Controller) resetCrashes(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs := c.crashes[key]; cs != nil && time.Since(cs.last) > 2*c.crashDelay(cs.count+1) {
		delete(c.crashes, key)
	}
}

// ensureImage pulls the image only when it is not present locally.
func (c *Controller) ensureImage(ctx context.Context, ref string, log logrus.FieldLogger) error {
	ok, err := c.engine.ImageExists(ctx, ref)
	if err != nil {
		c.metrics.dockerError("image-inspect")
		return err
	}
	if ok {
		return nil
	}
	log.WithField("image", ref).Info("pulling image")
	if err := c.engine.PullImage(ctx, ref); err != nil {
		c.metrics.dockerError("pull")
		return fmt.Errorf("image %s is not present and could not be pulled: %w", ref, err)
	}
	return nil
}

// ensureNetwork makes sure the function's own bridge network exists. snap,
// when not nil, is a valid listing of the key's networks (takeSnapshot).
func (c *Controller) ensureNetwork(ctx context.Context, key, ns, name, netName string, snap *snapshot, log logrus.FieldLogger) error {
	var nets []docker.Network
	if snap != nil {
		nets = snap.networks
	} else {
		var err error
		if nets, err = c.engine.ListNetworks(ctx, c.keyLabels(ns, name)); err != nil {
			c.metrics.dockerError("list-networks")
			return err
		}
	}
	n, ok, err := c.oneNetwork(ctx, nets, netName, log)
	if err != nil {
		return err
	}
	if ok {
		c.rememberNetwork(netName, key)
		return c.joinSelf(ctx, n, log)
	}
	// Known before but missing now: someone removed it. Asked before the
	// create, which makes it known.
	knew := c.knowsNetwork(netName, key)
	id, err := c.engine.CreateNetwork(ctx, netName, c.keyLabels(ns, name))
	if errors.Is(err, docker.ErrConflict) {
		return fmt.Errorf("network %s exists but is not managed by this dockerfaasd instance: %w", netName, err)
	}
	if err != nil {
		c.metrics.dockerError("create-network")
		if strings.Contains(err.Error(), "non-overlapping IPv4 address pool") {
			return fmt.Errorf("%w (every function has its own network: give Docker more address pools, see docs/operations.md)", err)
		}
		return err
	}
	c.rememberNetwork(netName, key)
	if knew {
		c.drift("network_missing")
	}
	log.WithField("network", netName).Info("network created")
	return c.joinSelf(ctx, docker.Network{ID: id, Name: netName}, log)
}

// oneNetwork picks the function's network among nets, removing duplicates.
// Docker's check for a duplicate name is not atomic: a create still running
// in Docker when a previous daemon was killed can race this daemon's own,
// and leave two networks of one name, after which every container start
// fails with "network ... is ambiguous" for good. The one kept is the one
// with the most containers (then the lowest ID, so every run picks the
// same); the others are ours by label and removed. ok is false when there
// is none.
func (c *Controller) oneNetwork(ctx context.Context, nets []docker.Network, netName string, log logrus.FieldLogger) (docker.Network, bool, error) {
	var same []docker.Network
	for _, n := range nets {
		if n.Name == netName {
			same = append(same, n)
		}
	}
	if len(same) == 0 {
		return docker.Network{}, false, nil
	}
	sort.Slice(same, func(i, j int) bool {
		if len(same[i].Containers) != len(same[j].Containers) {
			return len(same[i].Containers) > len(same[j].Containers)
		}
		return same[i].ID < same[j].ID
	})
	for _, n := range same[1:] {
		if err := c.engine.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, docker.ErrNotFound) {
			c.metrics.dockerError("remove-network")
			return docker.Network{}, false, fmt.Errorf("remove duplicate network %s (%s): %w", netName, n.ID, err)
		}
		c.drift("network_duplicate")
		log.WithFields(logrus.Fields{"network": netName, "id": n.ID, "kept": same[0].ID}).Warn("removed a duplicate of the function's network")
	}
	return same[0], true, nil
}

func (c *Controller) rememberNetwork(name, key string) {
	c.mu.Lock()
	c.networks[name] = key
	c.mu.Unlock()
}

// teardown removes everything labelled with a key that is no longer desired:
// containers first, then the network, then the key's published state.
func (c *Controller) teardown(ctx context.Context, key, ns, name string) error {
	log := c.cfg.Log.WithFields(logrus.Fields{"function": name, "namespace": ns})
	// Stop routing first, so no new request picks a replica being removed.
	c.eps.Delete(key)
	list, err := c.engine.ListContainers(ctx, c.keyLabels(ns, name))
	if err != nil {
		c.metrics.dockerError("list")
		return err
	}
	var errs []error
	for _, ct := range list {
		if err := c.remove(ctx, ct.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		log.WithField("container", ct.Name).Info("removed container of deleted function")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	nets, err := c.engine.ListNetworks(ctx, c.keyLabels(ns, name))
	if err != nil {
		c.metrics.dockerError("list-networks")
		return err
	}
	for _, n := range nets {
		if err := c.leaveSelf(ctx, n); err != nil {
			return err
		}
		if err := c.engine.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, docker.ErrNotFound) {
			c.metrics.dockerError("remove-network")
			return err
		}
		c.mu.Lock()
		delete(c.networks, n.Name)
		c.mu.Unlock()
		log.WithField("network", n.Name).Info("removed network of deleted function")
	}
	if len(list) > 0 || len(nets) > 0 {
		if _, known := c.board.Get(key); !known {
			c.drift("orphan_removed")
		}
	}
	c.board.Delete(key)
	c.forgetReplicas(key)
	c.mu.Lock()
	delete(c.crashes, key)
	c.mu.Unlock()
	return nil
}
