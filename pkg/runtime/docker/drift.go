package controller

import (
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Drift bookkeeping. A break in Docker usually shows as a burst of events
// (kill, die, destroy; disconnect, destroy), and the first reconcile after
// it often sees a half-broken function and records "progressing". Counting
// drift only from a reconcile that follows a converged one therefore missed
// most `docker rm -f`s and network removals. These helpers decide from what
// the controller itself last saw instead.

// madeHere reports whether ct is a replica this controller created. Ours
// are named from their own labels (containerName), so a container carrying
// our labels under any other name is a copy made by hand (say, docker run
// with labels copied from a replica). Such a copy is never adopted: copying
// labels copies nothing else of the spec, and it would share a slot with
// the replica it was copied from.
func (c *Controller) madeHere(ct docker.Container) bool {
	hash, slot := ct.Labels[docker.LabelSpecHash], slotOf(ct)
	if len(hash) < 8 || slot < 0 {
		return false
	}
	return ct.Name == c.containerName(ct.Labels[docker.LabelNamespace], ct.Labels[docker.LabelFunction], hash, slot)
}

// countVanished counts, as replica_missing, every replica the previous
// reconcile of key left running that is now gone or being removed by
// someone else (docker rm -f shows as "removing", then nothing). Replicas
// the controller removes itself are never remembered (rememberReplicas), so
// they are not counted.
func (c *Controller) countVanished(key string, list []docker.Container, log logrus.FieldLogger) {
	state := make(map[string]string, len(list))
	for _, ct := range list {
		state[ct.ID] = ct.State
	}
	var gone []string
	c.mu.Lock()
	for id, name := range c.seen[key] {
		if st, ok := state[id]; !ok || st == docker.StateRemoving {
			gone = append(gone, name)
			// Forgotten at once, so a reconcile that fails before
			// rememberReplicas cannot count it a second time.
			delete(c.seen[key], id)
		}
	}
	c.mu.Unlock()
	for _, name := range gone {
		c.drift("replica_missing")
		log.WithField("container", name).Warn("replica removed behind our back; replacing it")
	}
}

// rememberReplicas records the running replicas of key that this reconcile
// keeps; draining ones are on their way out by the controller's own hand.
func (c *Controller) rememberReplicas(key string, replicas []*replica) {
	ids := map[string]string{}
	for _, r := range replicas {
		if !r.draining {
			ids[r.ID] = r.Name
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]map[string]string{}
	}
	if len(ids) == 0 {
		delete(c.seen, key)
		return
	}
	c.seen[key] = ids
}

// forgetReplicas drops what was remembered of key (it was torn down), so a
// function deployed again under the same name starts with a clean slate.
func (c *Controller) forgetReplicas(key string) {
	c.mu.Lock()
	delete(c.seen, key)
	c.mu.Unlock()
}

// knowsNetwork reports whether the controller has seen key's network
// before: if it is missing now, someone removed it (network_missing).
func (c *Controller) knowsNetwork(netName, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.networks[netName] == key
}
