package docker

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// The paused tier of scale to zero (runtime.Desired.ParkFor). A function
// scaled to zero keeps its drained replicas frozen instead of removing
// them: a paused container uses no CPU and keeps its memory, address and
// network, so a wake is an unpause and a probe, milliseconds, where a new
// replica costs a cold start (create, secrets copy, start, the watchdog
// and the function booting). The decisions are planParked and parkOnStop
// in plan.go; this file applies them and keeps the records.

// pauseInfo is what the runtime knows of one paused container.
type pauseInfo struct {
	since      time.Time
	behindBack bool
}

// syncParked brings the parked records of key in line with list and
// returns, per paused container, when its retention started and whether
// someone else paused it. A paused container with no record was paused
// behind our back when the last Sync left it running (seen); otherwise
// (the daemon restarted, and its predecessor parked it) it counts as parked
// from now, which can only lengthen its retention. Records of containers
// that are no longer paused, or gone, are dropped, so a record always
// means "paused by this runtime".
func (r *Runtime) syncParked(key string, list []engine.Container, now time.Time) map[string]pauseInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]pauseInfo{}
	present := make(map[string]bool, len(list))
	for _, ct := range list {
		present[ct.ID] = true
		if ct.State != statePaused {
			delete(r.parked, ct.ID)
			continue
		}
		if rec, ok := r.parked[ct.ID]; ok {
			out[ct.ID] = pauseInfo{since: rec.since}
			continue
		}
		_, wasRunning := r.seen[key][ct.ID]
		r.parked[ct.ID] = parkRecord{key: key, since: now}
		out[ct.ID] = pauseInfo{since: now, behindBack: wasRunning}
	}
	for id, rec := range r.parked {
		if rec.key == key && !present[id] {
			delete(r.parked, id)
		}
	}
	return out
}

// park pauses a drained replica instead of stopping it, and marks rep
// paused. It reports false when the pause failed: the caller then stops
// and removes the replica as without parking, because Docker may be unable
// to freeze (no cgroup freezer, as for rootless Docker on cgroup v1) and a
// function scaled to zero must still have nothing running.
func (r *Runtime) park(ctx context.Context, key string, rep *replica, log logrus.FieldLogger) bool {
	if err := r.eng.PauseContainer(ctx, rep.ID); err != nil {
		// A conflict: it is not running any more, nothing to park.
		if !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
			r.metrics.dockerError("pause")
			log.WithError(err).Warn("cannot pause a drained replica; stopping it instead")
		}
		return false
	}
	now := time.Now()
	r.mu.Lock()
	delete(r.draining, rep.ID)
	r.parked[rep.ID] = parkRecord{key: key, since: now}
	r.mu.Unlock()
	rep.State, rep.Draining, rep.ParkedSince = statePaused, false, now
	log.Info("replica parked (paused) until the function is woken or its retention ends")
	return true
}

// wake thaws a paused replica so it serves again as it was, and marks it
// running. It reports whether the replica runs now. One that cannot be
// thawed is removed, so that a new replica takes its slot in this same
// Sync: a wake must not fail because a thaw did.
func (r *Runtime) wake(ctx context.Context, obs *runtime.Observed, t thaw, log logrus.FieldLogger) (bool, error) {
	err := r.eng.UnpauseContainer(ctx, t.r.ID)
	switch {
	case err == nil:
	case errors.Is(err, engine.ErrConflict):
		// Not paused any more (thawed by someone else, or it exited):
		// adopted as it is; its probe, or the next Sync, tells which.
	case errors.Is(err, engine.ErrNotFound):
		r.forgetParked(t.r.ID)
		return false, nil
	default:
		r.metrics.dockerError("unpause")
		log.WithError(err).Warn("cannot unpause a paused replica; replacing it")
		if err := r.remove(ctx, t.r.ID); err != nil {
			return false, err
		}
		return false, nil
	}
	r.forgetParked(t.r.ID)
	t.r.State, t.r.ParkedSince = stateRunning, time.Time{}
	if t.drift != "" {
		obs.AddDrift(t.drift)
		log.WithField("reason", t.why).Warn("unpaused a replica")
	} else {
		log.WithField("reason", t.why).Info("unpaused a replica")
	}
	return true, nil
}

func (r *Runtime) forgetParked(id string) {
	r.mu.Lock()
	delete(r.parked, id)
	r.mu.Unlock()
}

// splitParked separates the replicas stopDrained parked (now paused) from
// the running ones, which it returns in their order.
func splitParked(replicas []*replica) (running, parked []*replica) {
	for _, rep := range replicas {
		if rep.State == statePaused {
			parked = append(parked, rep)
		} else {
			running = append(running, rep)
		}
	}
	return running, parked
}
