package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Container states as Docker reports them, as the planner reads them.
const (
	stateCreated  = engine.StateCreated
	stateRunning  = engine.StateRunning
	statePaused   = engine.StatePaused
	stateRemoving = engine.StateRemoving
)

// Sync implements runtime.Runtime: it makes Docker run d's replicas on d's
// own network, rolling, draining, parking (at zero, see park.go) and
// backing off as the planner decides, and reports what it observes. It observes Docker every time, by listing
// the key's containers and networks or by taking a List's listing that
// nothing has invalidated since (takeSnapshot).
func (r *Runtime) Sync(ctx context.Context, d runtime.Desired) (obs runtime.Observed, err error) {
	snap := r.takeSnapshot(d.Key)
	defer r.touch(d.Key) // what this Sync changed is not in earlier listings
	log := r.cfg.Log.WithFields(logrus.Fields{"function": d.Name, "namespace": d.Namespace, "generation": d.Generation})

	// A function that had converged at this generation and now needs work
	// has drifted: Docker changed under it, not the desired state.
	r.mu.Lock()
	prev := r.last[d.Key]
	r.mu.Unlock()
	steady := prev.converged && prev.generation == d.Generation
	// settled: converged with nothing left to do but, perhaps, end the
	// retention of parked replicas (parkedUntil), which List checks itself.
	var settled bool
	var parkedUntil map[string]time.Time
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.last[d.Key] = lastSync{generation: d.Generation, hash: d.Hash}
			return
		}
		eps := make(map[string]string, len(obs.Endpoints))
		for _, e := range obs.Endpoints {
			if !e.Job && !e.Isolated { // a pseudo endpoint is no replica
				eps[e.Replica] = e.Addr
			}
		}
		r.last[d.Key] = lastSync{generation: d.Generation, hash: d.Hash, converged: obs.Converged && settled, endpoints: eps, parked: parkedUntil}
	}()

	// A job function runs no replicas: those of an earlier spec go the
	// way of a scale to zero (drained, then removed), and its calls run
	// one container each (job.go).
	job := isJob(d.Spec)
	if job {
		d.Replicas, d.ParkFor = 0, 0
	} else {
		r.forgetJob(d.Key)
	}
	// A function with per-request isolation runs no replicas either: its
	// replicas (0 or more) say whether it keeps a pool (isolated.go).
	isolated, poolWanted := isPerRequest(d.Spec), d.Replicas
	if isolated {
		d.Replicas, d.ParkFor = 0, 0
	} else {
		r.dropIsolated(d.Key)
	}
	r.forgetOldCrashes(d.Key, d.Hash, log)
	if _, err := r.containerSpec(d, 0); err != nil {
		return obs, runtime.Fail(runtime.ReasonInvalidSpec, fmt.Errorf("function %s: %w: %w", d.Key, runtime.ErrInvalidSpec, err))
	}
	if err := r.ensureImage(ctx, d.Spec.Image, log); err != nil {
		return obs, runtime.Fail(runtime.ReasonImageNotAvailable, err)
	}
	netName := r.networkName(d.Namespace, d.Name)
	if err := r.ensureNetwork(ctx, &obs, d.Key, d.Namespace, d.Name, netName, snap, log); err != nil {
		return obs, runtime.Fail(runtime.ReasonNetworkError, err)
	}

	var list []engine.Container
	if snap != nil {
		list = snap.containers
	} else if list, err = r.eng.ListContainers(ctx, r.keyLabels(d.Namespace, d.Name)); err != nil {
		r.metrics.dockerError("list")
		return obs, err
	}
	r.countVanished(&obs, d.Key, list, log)
	replicas, parked, err := r.observe(ctx, &obs, d, netName, list, log)
	if err != nil {
		return obs, err
	}
	// Replace missing replicas before probing: creation does not depend on
	// readiness, and a probe of a dying replica may take its full timeout.
	var errs []error
	for _, rep := range toUndrain(replicas, d.Replicas) {
		r.undrain(rep, log)
	}
	slots, crashWait := slotsToStart(replicas, d.Replicas, r.crashWait(d.Key))
	if crashWait > 0 {
		log.WithField("retry_in", crashWait.Round(time.Millisecond)).Info("replica keeps exiting; backing off before replacing it")
	}
	errs = append(errs, r.start(ctx, d, slots, log))
	r.probe(ctx, replicas)
	for _, dd := range toDrain(replicas, d.Replicas, steady) {
		if dd.drift != "" {
			obs.AddDrift(dd.drift)
		}
		r.drain(dd.r, log, dd.why)
	}
	drainWait, err := r.stopDrained(ctx, d, list, replicas, log)
	errs = append(errs, err)
	replicas, nowParked := splitParked(replicas)
	parked = append(parked, nowParked...)
	r.rememberReplicas(d.Key, replicas)

	obs.Seen = true
	obs.Endpoints = endpoints(replicas)
	if job {
		obs.Endpoints = r.rememberJob(d)
	}
	if isolated {
		eps, err := r.syncIsolated(d, poolWanted)
		if err != nil {
			return obs, err
		}
		obs.Endpoints = eps
	}
	converged, current, reason := convergence(replicas, d.Replicas, len(slots), r.crashCount(d.Key))
	obs.Converged, obs.Current, obs.Reason = converged, current, reason
	obs.Restarts = r.crashCount(d.Key)
	obs.Replicas = replicaStatuses(append(slices.Clone(replicas), parked...), r.host.get(ctx, r.eng))
	if err := errors.Join(errs...); err != nil {
		return obs, err
	}
	if converged && drainWait == 0 {
		r.resetCrashes(d.Key)
	}
	now := time.Now()
	settled = converged && drainWait == 0
	parkedUntil = make(map[string]time.Time, len(parked))
	for _, p := range parked {
		parkedUntil[p.ID] = p.ParkedSince.Add(d.ParkFor)
	}
	obs.RequeueAfter = requeue(converged, drainWait, crashWait, retentionLeft(parked, d.ParkFor, now), r.cfg.ProbeInterval, r.cfg.MaxRequeue)
	if wait, ok := r.warmup(d.Key, converged); ok && wait < obs.RequeueAfter {
		obs.RequeueAfter = wait
	}
	return obs, nil
}

// warmup is how soon to look again at key while replicas it started are
// not ready yet (see warmupWait); ok is false once they are, or once the
// waits reached the probe interval.
func (r *Runtime) warmup(key string, converged bool) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attempt, warming := r.warming[key]
	if !warming {
		return 0, false
	}
	wait, ok := warmupWait(attempt, r.cfg.ProbeInterval)
	if converged || !ok {
		delete(r.warming, key)
		return 0, false
	}
	r.warming[key] = attempt + 1
	return wait, true
}

// observe lists the function's containers for the planner, applies its
// classification (removing what is not running, draining copies made by
// hand, waking, keeping or removing paused replicas, reconnecting replicas
// someone disconnected) and returns the running replicas with their
// addresses, and the parked replicas it keeps.
func (r *Runtime) observe(ctx context.Context, obs *runtime.Observed, d runtime.Desired, netName string, list []engine.Container, log logrus.FieldLogger) (replicas, parked []*replica, err error) {
	now := time.Now()
	paused := r.syncParked(d.Key, list, now)
	in := make([]listed, len(list))
	byID := make(map[string]engine.Container, len(list))
	for i, ct := range list {
		byID[ct.ID] = ct
		in[i] = listed{
			ID: ct.ID, Name: ct.Name, State: ct.State, Slot: slotOf(ct),
			Current:  ct.Labels[engine.LabelSpecHash] == d.Hash,
			MadeHere: r.madeHere(ct),
			Draining: r.isDraining(ct.ID),
		}
		if p, ok := paused[ct.ID]; ok {
			in[i].ParkedSince, in[i].PausedBehindBack = p.since, p.behindBack
		}
	}
	plan := classify(in)
	var errs []error
	for _, x := range plan.Extra {
		// A copy made by hand is no replica of ours: drain it like a
		// surplus one (see madeHere). Drained before planParked, so a
		// parked replica fills in for it.
		obs.AddDrift(runtime.DriftExtraReplica)
		r.drain(x, log.WithField("container", x.Name), "carries our labels but was not created by this daemon")
	}
	pp := planParked(plan.Paused, plan.Replicas, d.Replicas, d.ParkFor, now)
	for _, rm := range append(plan.Remove, pp.Remove...) {
		clog := log.WithField("container", rm.Name)
		if rm.Drift != "" {
			obs.AddDrift(rm.Drift)
		}
		if rm.Crash {
			r.recordCrash(d.Key, d.Hash)
		}
		switch {
		case rm.Drift != "":
			clog.WithField("state", rm.State).Warn(rm.Why)
		case rm.Why != "":
			clog.WithField("state", rm.State).Info(rm.Why)
		}
		if err := r.remove(ctx, rm.ID); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range pp.Wake {
		woke, err := r.wake(ctx, obs, t, log.WithField("container", t.r.Name))
		if err != nil {
			errs = append(errs, err)
		}
		if woke {
			plan.Replicas = append(plan.Replicas, t.r)
		}
	}
	for _, rep := range plan.Replicas {
		ip, ok := byID[rep.ID].Networks[netName]
		if !ok && !rep.Draining {
			clog := log.WithField("container", rep.Name)
			clog.Warn("replica lost its network; reconnecting")
			if err := r.eng.ConnectNetwork(ctx, netName, rep.ID); err != nil {
				r.metrics.dockerError("connect")
				errs = append(errs, err)
			} else {
				obs.AddDrift(runtime.DriftNetworkDisconnected)
			}
			// Its address is unknown until the next list: not ready this round.
			continue
		}
		if ip != "" {
			rep.Addr = runtime.ReplicaAddr(ip)
		}
	}
	return plan.Replicas, pp.Keep, errors.Join(errs...)
}

func slotOf(ct engine.Container) int {
	n, err := strconv.Atoi(ct.Labels[engine.LabelSlot])
	if err != nil {
		return -1
	}
	return n
}

// probe checks readiness of every running, non-draining replica concurrently.
func (r *Runtime) probe(ctx context.Context, replicas []*replica) {
	var todo []*replica
	var addrs []string
	for _, rep := range replicas {
		if !rep.Draining && rep.Addr != "" {
			todo, addrs = append(todo, rep), append(addrs, rep.Addr)
		}
	}
	r.probes(0).Each(ctx, addrs, func(i int, ok bool) { todo[i].Ready = ok })
}

// start creates and starts a replica of d in each slot.
func (r *Runtime) start(ctx context.Context, d runtime.Desired, slots []int, log logrus.FieldLogger) error {
	if len(slots) == 0 {
		return nil
	}
	started := 0
	var errs []error
	for _, slot := range slots {
		spec, err := r.containerSpec(d, slot)
		if err != nil {
			return err
		}
		if err := r.createAndStart(ctx, spec, d.Secrets, log); err != nil {
			errs = append(errs, err)
			continue
		}
		started++
	}
	if started > 0 {
		r.mu.Lock()
		r.warming[d.Key] = 0
		r.mu.Unlock()
		// Drift (replica_missing) is counted where the loss is seen, by
		// countVanished: a creation may follow a crash, counted apart.
		log.WithField("replicas", d.Replicas).Infof("started %d replica(s)", started)
		if raised := raisedToDockerMinimum(d.Spec); raised != "" {
			log.WithField("asked", raised).Info("memory below Docker's 6 MB minimum: containers get 6 MB; the function reports what was deployed")
		}
	}
	return errors.Join(errs...)
}

// createAndStart is idempotent: a name conflict means an earlier attempt got
// as far as creating the container, which is then removed and made again
// (names embed the spec hash, so it cannot be a replica of another spec).
// The secrets are copied in between create and start.
func (r *Runtime) createAndStart(ctx context.Context, spec engine.ContainerSpec, secrets []runtime.Secret, log logrus.FieldLogger) error {
	id, err := r.eng.CreateContainer(ctx, spec)
	if errors.Is(err, engine.ErrConflict) {
		if err := r.removeByName(ctx, spec.Name); err != nil {
			return err
		}
		id, err = r.eng.CreateContainer(ctx, spec)
	}
	if err != nil {
		r.metrics.dockerError("create")
		return err
	}
	if err := r.copySecrets(ctx, id, secrets); err != nil {
		_ = r.remove(ctx, id)
		return err
	}
	if err := r.eng.StartContainer(ctx, id); err != nil {
		r.metrics.dockerError("start")
		_ = r.remove(ctx, id)
		return err
	}
	log.WithField("container", spec.Name).Debug("replica started")
	return nil
}

func (r *Runtime) removeByName(ctx context.Context, name string) error {
	list, err := r.eng.ListContainers(ctx, r.instanceLabels())
	if err != nil {
		return err
	}
	for _, ct := range list {
		if ct.Name == name {
			return r.remove(ctx, ct.ID)
		}
	}
	// Ownership is decided by label: a foreign container is never removed.
	return fmt.Errorf("container name %s is taken by a container this dockerfaasd instance does not manage: %w", name, engine.ErrConflict)
}

// drain takes rep out of the endpoint set now; stopDrained stops it once
// the planner says so.
func (r *Runtime) drain(rep *replica, log logrus.FieldLogger, why string) {
	r.mu.Lock()
	r.draining[rep.ID] = time.Now()
	r.mu.Unlock()
	rep.Draining = true
	log.WithField("container", rep.Name).WithField("reason", why).Info("draining replica")
}

// undrain takes rep back into service: it was draining for a scale down
// and is wanted again.
func (r *Runtime) undrain(rep *replica, log logrus.FieldLogger) {
	r.mu.Lock()
	delete(r.draining, rep.ID)
	r.mu.Unlock()
	rep.Draining = false
	log.WithField("container", rep.Name).Info("replica taken back from draining: wanted again")
}

func (r *Runtime) isDraining(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.draining[id]
	return ok
}

// stopDrained stops and removes drained containers the planner finds due,
// or parks them (pauses) when the function is scaled to zero with parking
// (marking their replica paused), and returns how long until the next one
// is due.
func (r *Runtime) stopDrained(ctx context.Context, fn runtime.Desired, list []engine.Container, replicas []*replica, log logrus.FieldLogger) (time.Duration, error) {
	var next time.Duration
	var errs []error
	times := drainTimes{Grace: r.cfg.DrainGrace, Timeout: r.cfg.DrainTimeout, Probe: r.cfg.ProbeInterval}
	byID := make(map[string]*replica, len(replicas))
	for _, rep := range replicas {
		byID[rep.ID] = rep
	}
	for _, ct := range list {
		r.mu.Lock()
		since, ok := r.draining[ct.ID]
		r.mu.Unlock()
		if !ok {
			continue
		}
		d := drained{
			ID: ct.ID, Name: ct.Name, Running: ct.State == stateRunning, Since: since,
			Current: ct.Labels[engine.LabelSpecHash] == fn.Hash, MadeHere: r.madeHere(ct),
		}
		if d.Running && r.cfg.Load != nil {
			d.Calls = r.cfg.Load.InFlight(ct.ID)
		}
		clog := log.WithField("container", ct.Name)
		decision, wait := whenToStop(d, time.Now(), times)
		switch decision {
		case stopWait, stopBusy:
			if decision == stopBusy {
				clog.WithField("calls", d.Calls).Debug("drained replica still serving calls; waiting for them before stopping it")
			}
			if next == 0 || wait < next {
				next = wait
			}
			continue
		case stopOverdue:
			clog.WithField("calls", d.Calls).Warn("drained replica still serving calls after the drain timeout; stopping (or parking) it anyway")
		}
		if rep := byID[ct.ID]; rep != nil && parkOnStop(d, fn.Replicas, fn.ParkFor) && r.park(ctx, fn.Key, rep, clog) {
			continue
		}
		if d.Running {
			if err := r.eng.StopContainer(ctx, ct.ID, r.cfg.StopTimeout); err != nil && !errors.Is(err, engine.ErrNotFound) {
				r.metrics.dockerError("stop")
				clog.WithError(err).Warn("stop failed; removing anyway")
			}
		}
		if err := r.remove(ctx, ct.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		clog.Info("replica stopped and removed")
	}
	return next, errors.Join(errs...)
}

// remove force-removes a container; already gone counts as success.
func (r *Runtime) remove(ctx context.Context, id string) error {
	err := r.eng.RemoveContainer(ctx, id)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.metrics.dockerError("remove")
		return err
	}
	r.mu.Lock()
	delete(r.draining, id)
	delete(r.parked, id)
	r.mu.Unlock()
	return nil
}

// endpoints are the ready, non-draining replicas, in a stable order so an
// unchanged set does not cause a cache swap.
func endpoints(replicas []*replica) []faas.Endpoint {
	var eps []faas.Endpoint
	for _, rep := range replicas {
		if rep.Ready && !rep.Draining && rep.Addr != "" {
			eps = append(eps, faas.Endpoint{Replica: rep.ID, Addr: rep.Addr})
		}
	}
	runtime.SortEndpoints(eps)
	return eps
}

func (r *Runtime) recordCrash(key, hash string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.crashes[key]
	if cs == nil || cs.hash != hash {
		cs = &crashState{hash: hash}
		r.crashes[key] = cs
	}
	cs.count++
	cs.last = time.Now()
}

func (r *Runtime) crashCount(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cs := r.crashes[key]; cs != nil {
		return cs.count
	}
	return 0
}

// crashWait is how long to hold off replacing a replica of key.
func (r *Runtime) crashWait(key string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.crashes[key]
	if cs == nil {
		return 0
	}
	d := crashDelay(cs.count, r.cfg.CrashBackoff, r.cfg.CrashBackoffMax)
	if d == 0 {
		return 0
	}
	return time.Until(cs.last.Add(d))
}

// resetCrashes forgets past exits once the function has stayed converged
// for longer than the backoff it had reached.
func (r *Runtime) resetCrashes(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cs := r.crashes[key]; cs != nil && time.Since(cs.last) > 2*crashDelay(cs.count+1, r.cfg.CrashBackoff, r.cfg.CrashBackoffMax) {
		delete(r.crashes, key)
	}
}

// ensureImage pulls the image only when it is not present locally.
func (r *Runtime) ensureImage(ctx context.Context, ref string, log logrus.FieldLogger) error {
	ok, err := r.eng.ImageExists(ctx, ref)
	if err != nil {
		r.metrics.dockerError("image-inspect")
		return err
	}
	if ok {
		return nil
	}
	log.WithField("image", ref).Info("pulling image")
	if err := r.eng.PullImage(ctx, ref); err != nil {
		r.metrics.dockerError("pull")
		return fmt.Errorf("image %s is not present and could not be pulled: %w", ref, err)
	}
	return nil
}
