package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// settlePoll is how often a Sync that lowered the replicas looks whether
// swarm has chosen the tasks it stops.
const settlePoll = 50 * time.Millisecond

// Sync implements runtime.Runtime: it makes swarm run d as one replicated
// service (its network and secret versions first), then observes the
// service's tasks and reports the ready ones as endpoints.
func (r *Runtime) Sync(ctx context.Context, d runtime.Desired) (obs runtime.Observed, err error) {
	log := r.cfg.Log.WithFields(logrus.Fields{"function": d.Name, "namespace": d.Namespace, "generation": d.Generation})
	r.mu.Lock()
	prev := r.last[d.Key]
	r.mu.Unlock()
	next := lastSync{generation: d.Generation, hash: d.Hash, service: prev.service, network: prev.network, unmounted: prev.unmounted, extraSince: prev.extraSince}
	defer func() {
		if err == nil {
			next.converged = obs.Converged
			next.endpoints = make(map[string]string, len(obs.Endpoints))
			for _, e := range obs.Endpoints {
				next.endpoints[e.Replica] = e.Addr
			}
		}
		r.mu.Lock()
		r.last[d.Key] = next
		r.mu.Unlock()
	}()

	if _, err := serviceSpec(r.spec, d, nil); err != nil {
		return obs, runtime.Fail(runtime.ReasonInvalidSpec, fmt.Errorf("function %s: %w: %w", d.Key, runtime.ErrInvalidSpec, err))
	}
	netID, err := r.ensureNetwork(ctx, &obs, d, prev, log)
	if err != nil {
		return obs, runtime.Fail(runtime.ReasonNetworkError, err)
	}
	next.network = netID
	refs, err := r.ensureSecrets(ctx, d, log)
	if err != nil {
		return obs, err
	}
	spec, err := serviceSpec(r.spec, d, refs)
	if err != nil {
		return obs, runtime.Fail(runtime.ReasonInvalidSpec, fmt.Errorf("function %s: %w: %w", d.Key, runtime.ErrInvalidSpec, err))
	}
	svc, lowered, err := r.ensureService(ctx, &obs, d, spec, netID, prev, log)
	if err != nil {
		return obs, err
	}
	next.service, next.version = svc.ID, svc.Version.Index
	r.checkKept(svc, log)
	next.unmounted = unmountedSecrets(prev.unmounted, svc, d)

	list, err := r.eng.ListTasks(ctx, svc.ID)
	if err != nil {
		return obs, r.metrics.count("list-tasks", err)
	}
	if lowered {
		list, err = r.settle(ctx, svc.ID, list, d.Replicas)
		if err != nil {
			return obs, err
		}
	}
	if next.extraSince, err = r.retryScaleDown(ctx, &obs, svc, spec, list, prev.extraSince, log); err != nil {
		return obs, err
	}
	netName := r.networkName(d.Namespace, d.Name)
	ts := sortTasks(list, d.Hash, netName)
	r.probe(ctx, ts.Live)
	r.rememberPlacement(ctx, d.Key, list)

	obs.Seen = true
	obs.Endpoints = endpoints(ts)
	obs.Converged, obs.Current, obs.Reason = convergence(ts, d.Replicas, true)
	obs.Restarts = ts.Failed
	obs.Replicas = replicaStatuses(svc.Spec.Name, ts, r.nodeName)
	obs.RequeueAfter = requeue(obs.Converged, obs.Reason, r.cfg.ProbeInterval, r.cfg.RestartDelay, r.cfg.MaxRequeue)
	if obs.Converged && (len(d.Secrets) > 0 || len(next.unmounted) > 0) {
		// The roll to the current secret versions is over: older
		// versions, and those of secrets the function no longer
		// lists, can go where no service mounts them.
		only := map[string]bool{}
		maps.Copy(only, next.unmounted)
		for _, s := range d.Secrets {
			only[s.Name] = true
		}
		if err := r.pruneSecrets(ctx, d.Namespace, only, log); err != nil {
			log.WithError(err).Warn("could not remove old swarm secret versions")
		} else {
			next.unmounted = nil
		}
	}
	return obs, nil
}

// ensureService creates the function's service or updates it when it is
// not at d (spec hash, generation, replicas, or a field changed behind the
// daemon's back), and returns it as it is now. lowered says whether the
// update lowered the replicas, so swarm is about to stop tasks.
func (r *Runtime) ensureService(ctx context.Context, obs *runtime.Observed, d runtime.Desired, spec swarm.ServiceSpec, netID string, prev lastSync, log logrus.FieldLogger) (svc swarm.Service, lowered bool, err error) {
	r.rememberName(spec.Name, d.Key)
	svcs, err := r.eng.ListServices(ctx, r.keyLabels(d.Namespace, d.Name))
	if err != nil {
		return svc, false, r.metrics.count("list-services", err)
	}
	var found *swarm.Service
	for i := range svcs {
		if svcs[i].Spec.Name == spec.Name && found == nil {
			found = &svcs[i]
			continue
		}
		// Our labels under another name: a copy made by hand, never adopted.
		if err := ignoreGone(r.eng.RemoveService(ctx, svcs[i].ID)); err != nil {
			return svc, false, r.metrics.count("remove-service", err)
		}
		obs.AddDrift(runtime.DriftExtraReplica)
		log.WithField("service", svcs[i].Spec.Name).Warn("removed a service that carries our labels but was not created by this daemon")
	}
	if found == nil {
		id, err := r.eng.CreateService(ctx, spec)
		if errors.Is(err, engine.ErrConflict) {
			return svc, false, fmt.Errorf("service %s exists but is not managed by this dockerfaasd instance: %w", spec.Name, err)
		}
		if err != nil {
			return svc, false, r.metrics.count("create-service", err)
		}
		if prev.service != "" {
			obs.AddDrift(runtime.DriftReplicaMissing)
			log.WithField("service", spec.Name).Warn("service removed behind our back; created it again")
		} else {
			log.WithFields(logrus.Fields{"service": spec.Name, "replicas": d.Replicas}).Info("service created")
		}
		svc, err = r.eng.InspectService(ctx, id)
		return svc, false, r.metrics.count("inspect-service", err)
	}
	why := differs(found.Spec, spec, netID)
	if why == "" {
		return *found, false, nil
	}
	have := replicasOf(found.Spec)
	steady := prev.converged && prev.generation == d.Generation && prev.service == found.ID
	if steady && have != uint64(max(d.Replicas, 0)) {
		// Scaled by hand while nothing changed here.
		if have > uint64(d.Replicas) {
			obs.AddDrift(runtime.DriftExtraReplica)
		} else {
			obs.AddDrift(runtime.DriftReplicaMissing)
		}
	}
	if err := r.eng.UpdateService(ctx, found.ID, found.Version.Index, spec); err != nil {
		return svc, false, r.metrics.count("update-service", err)
	}
	log.WithFields(logrus.Fields{"service": spec.Name, "replicas": d.Replicas, "why": why}).Info("service updated")
	svc, err = r.eng.InspectService(ctx, found.ID)
	return svc, have > uint64(max(d.Replicas, 0)), r.metrics.count("inspect-service", err)
}

// checkKept warns, once per process, when the service as swarm stored it
// lacks no-new-privileges, which serviceSpec always asks for: an engine
// older than API 1.46 (Docker Engine 27) does not know the field and drops
// it without an error, so its tasks run without the flag, unlike the Docker
// runtime's containers, and nothing else would tell. The service is not
// updated for it: an update cannot make such an engine keep the field.
func (r *Runtime) checkKept(svc swarm.Service, log logrus.FieldLogger) {
	cs := svc.Spec.TaskTemplate.ContainerSpec
	if cs == nil || (cs.Privileges != nil && cs.Privileges.NoNewPrivileges) {
		return
	}
	if r.nnpWarned.CompareAndSwap(false, true) {
		log.WithField("service", svc.Spec.Name).Warn("the Docker engine dropped no-new-privileges from the service spec " +
			"(swarm keeps it from Docker Engine 27, API 1.46, on): function tasks run without no-new-privileges")
	}
}

// differs names what of the service's spec have is not as want says ("" when
// nothing), comparing what the daemon sets and swarm keeps as given.
// Swarm stores network names as IDs, so the network is compared by either.
func differs(have, want swarm.ServiceSpec, netID string) string {
	hc, wc := have.TaskTemplate.ContainerSpec, want.TaskTemplate.ContainerSpec
	switch {
	case hc == nil:
		return "no container spec"
	case have.Labels[engine.LabelSpecHash] != want.Labels[engine.LabelSpecHash] ||
		hc.Labels[engine.LabelSpecHash] != wc.Labels[engine.LabelSpecHash]:
		return "spec hash"
	case replicasOf(have) != replicasOf(want):
		return "replicas"
	case have.Labels[engine.LabelGeneration] != want.Labels[engine.LabelGeneration]:
		return "generation"
	case hc.Image != wc.Image || !slices.Equal(hc.Env, wc.Env):
		return "image or env changed behind our back"
	case !sameSecrets(hc.Secrets, wc.Secrets):
		return "secrets"
	case len(have.TaskTemplate.Networks) != 1 ||
		(have.TaskTemplate.Networks[0].Target != netID && have.TaskTemplate.Networks[0].Target != want.TaskTemplate.Networks[0].Target):
		return "network"
	case !slices.Equal(constraintsOf(have), constraintsOf(want)):
		return "constraints"
	}
	return ""
}

func replicasOf(s swarm.ServiceSpec) uint64 {
	if s.Mode.Replicated == nil || s.Mode.Replicated.Replicas == nil {
		return 0
	}
	return *s.Mode.Replicated.Replicas
}

func constraintsOf(s swarm.ServiceSpec) []string {
	if s.TaskTemplate.Placement == nil {
		return nil
	}
	return s.TaskTemplate.Placement.Constraints
}

func sameSecrets(a, b []*swarm.SecretReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].SecretID != b[i].SecretID {
			return false
		}
	}
	return true
}

// settle waits, up to SettleTimeout, until swarm has chosen which tasks a
// lower replica count stops (at most want are still wanted running), so
// the endpoints this Sync returns hold none of them.
func (r *Runtime) settle(ctx context.Context, serviceID string, list []engine.Task, want int) ([]engine.Task, error) {
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	for {
		wanted := 0
		for _, t := range list {
			if t.DesiredState == engine.TaskRunning || t.DesiredState == engine.TaskReady {
				wanted++
			}
		}
		if wanted <= want || !time.Now().Before(deadline) {
			return list, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settlePoll):
		}
		var err error
		if list, err = r.eng.ListTasks(ctx, serviceID); err != nil {
			return nil, r.metrics.count("list-tasks", err)
		}
	}
}

// scaleDownGrace is how long swarm may keep more slots wanted running than
// the service's replicas before a Sync asks it again. Its orchestrator
// marks a scale-down's tasks within milliseconds; a roll's start-first
// tasks share their slot with the task they replace and do not count.
const scaleDownGrace = 5 * time.Second

// retryScaleDown makes swarm finish a scale-down it gave up on, and returns
// when the excess was first seen (zero when there is none). Swarm's
// replicated orchestrator marks the tasks it stops in one pass over the
// copies it read, and when another writer (scheduler, allocator, agent)
// updated such a task meanwhile it logs "failed to update task to
// REMOVE: update out of sequence" and never tries again: the service then
// runs more replicas than it says, for good, until something changes it.
// An update with the same spec is such a change (the orchestrator
// reconciles the service again; no task restarts), sent at most once per
// scaleDownGrace while the excess lasts.
func (r *Runtime) retryScaleDown(ctx context.Context, obs *runtime.Observed, svc swarm.Service, spec swarm.ServiceSpec, list []engine.Task, since time.Time, log logrus.FieldLogger) (time.Time, error) {
	replicas, slots := replicasOf(svc.Spec), wantedSlots(list)
	if uint64(slots) <= replicas {
		return time.Time{}, nil
	}
	now := r.now()
	if since.IsZero() {
		return now, nil
	}
	if now.Sub(since) < scaleDownGrace {
		return since, nil
	}
	if err := r.eng.UpdateService(ctx, svc.ID, svc.Version.Index, spec); err != nil {
		return since, r.metrics.count("update-service", err)
	}
	obs.AddDrift(runtime.DriftExtraReplica)
	log.WithFields(logrus.Fields{"service": svc.Spec.Name, "replicas": replicas, "wantedSlots": slots, "since": since.UTC().Format(time.RFC3339)}).
		Warn("swarm kept more tasks wanted running than the service's replicas (a scale-down it did not finish); updated the service so it scales down again")
	return now, nil
}

// wantedSlots counts the slots in which swarm wants a task running.
func wantedSlots(list []engine.Task) int {
	slots := map[int]bool{}
	for _, t := range list {
		if t.DesiredState == engine.TaskRunning || t.DesiredState == engine.TaskReady {
			slots[t.Slot] = true
		}
	}
	return len(slots)
}

// probe checks readiness of the live tasks concurrently.
func (r *Runtime) probe(ctx context.Context, live []*task) {
	var todo []*task
	var addrs []string
	for _, t := range live {
		if t.Addr != "" {
			todo, addrs = append(todo, t), append(addrs, t.Addr)
		}
	}
	r.probes(0).Each(ctx, addrs, func(i int, ok bool) { todo[i].Ready = ok })
}

// rememberPlacement records on which nodes key has tasks (for node
// events), and learns the names of nodes not seen before.
func (r *Runtime) rememberPlacement(ctx context.Context, key string, list []engine.Task) {
	unknown := false
	r.mu.Lock()
	for node, keys := range r.placed {
		delete(keys, key)
		if len(keys) == 0 {
			delete(r.placed, node)
		}
	}
	for _, t := range list {
		if t.NodeID == "" || t.DesiredState != engine.TaskRunning {
			continue
		}
		if r.placed[t.NodeID] == nil {
			r.placed[t.NodeID] = map[string]int{}
		}
		r.placed[t.NodeID][key]++
		if _, ok := r.nodes[t.NodeID]; !ok {
			unknown = true
		}
	}
	r.mu.Unlock()
	if unknown {
		r.refreshNodes(ctx)
	}
}

// refreshNodes learns the nodes' hostnames (best effort: they only name
// replicas on /debug/reconcile).
func (r *Runtime) refreshNodes(ctx context.Context) {
	nodes, err := r.eng.ListNodes(ctx)
	if err != nil {
		_ = r.metrics.count("list-nodes", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range nodes {
		r.nodes[n.ID] = n.Hostname
	}
}

// nodeName is a node's hostname, or its short ID while unknown.
func (r *Runtime) nodeName(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.nodes[id]; h != "" {
		return h
	}
	if id == "" {
		return "unassigned"
	}
	return engine.ShortID(id)
}
