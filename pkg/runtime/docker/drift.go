package docker

import (
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Drift bookkeeping. A break in Docker usually shows as a burst of events
// (kill, die, destroy; disconnect, destroy), and the first reconcile after
// it often sees a half-broken function and records "progressing". Counting
// drift only from a reconcile that follows a converged one therefore missed
// most `docker rm -f`s and network removals. These helpers decide from what
// the runtime itself last saw instead.

// madeHere reports whether ct is a replica this runtime created. Ours
// are named from their own labels (containerName), so a container carrying
// our labels under any other name is a copy made by hand (say, docker run
// with labels copied from a replica). Such a copy is never adopted: copying
// labels copies nothing else of the spec, and it would share a slot with
// the replica it was copied from.
func (r *Runtime) madeHere(ct engine.Container) bool {
	hash, slot := ct.Labels[engine.LabelSpecHash], slotOf(ct)
	if len(hash) < 8 || slot < 0 {
		return false
	}
	return ct.Name == r.containerName(ct.Labels[engine.LabelNamespace], ct.Labels[engine.LabelFunction], hash, slot)
}

// countVanished counts, as replica_missing, every replica the previous
// Sync of key left running that is now gone or being removed by
// someone else (docker rm -f shows as "removing", then nothing). Replicas
// the runtime removes itself are never remembered (rememberReplicas), so
// they are not counted.
func (r *Runtime) countVanished(obs *runtime.Observed, key string, list []engine.Container, log logrus.FieldLogger) {
	state := make(map[string]string, len(list))
	for _, ct := range list {
		state[ct.ID] = ct.State
	}
	var gone []string
	r.mu.Lock()
	for id, name := range r.seen[key] {
		if st, ok := state[id]; !ok || st == stateRemoving {
			gone = append(gone, name)
			// Forgotten at once, so a Sync that fails before
			// rememberReplicas cannot count it a second time.
			delete(r.seen[key], id)
		}
	}
	r.mu.Unlock()
	for _, name := range gone {
		obs.AddDrift(runtime.DriftReplicaMissing)
		log.WithField("container", name).Warn("replica removed behind our back; replacing it")
	}
}

// rememberReplicas records the running replicas of key that this reconcile
// keeps; draining ones are on their way out by the runtime's own hand.
func (r *Runtime) rememberReplicas(key string, replicas []*replica) {
	ids := map[string]string{}
	for _, rep := range replicas {
		if !rep.Draining {
			ids[rep.ID] = rep.Name
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(ids) == 0 {
		delete(r.seen, key)
		return
	}
	r.seen[key] = ids
}

// knowsNetwork reports whether the runtime has seen key's network
// before: if it is missing now, someone removed it (network_missing).
func (r *Runtime) knowsNetwork(netName, key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.networks[netName] == key
}
