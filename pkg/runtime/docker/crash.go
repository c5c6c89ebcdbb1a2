package docker

import "github.com/sirupsen/logrus"

// forgetOldCrashes drops key's crash history when it was earned by replicas
// of another spec than hash. The crash backoff protects Docker from a spec
// that cannot run; a user who deploys a new spec (typically the fix) must
// not wait out the backoff of the broken one, which may have grown to
// minutes. Scaling keeps the spec hash, so it does not reset the backoff.
func (r *Runtime) forgetOldCrashes(key, hash string, log logrus.FieldLogger) {
	r.mu.Lock()
	cs := r.crashes[key]
	stale := cs != nil && cs.hash != hash
	if stale {
		delete(r.crashes, key)
	}
	r.mu.Unlock()
	if stale {
		log.WithField("restarts", cs.count).Info("spec changed; forgetting the crash backoff of the previous spec")
	}
}
