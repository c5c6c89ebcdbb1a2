package docker

import (
	"sort"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// The planner: every decision a Sync takes about replicas, as pure
// functions of what was observed and what is desired. sync.go observes
// Docker, calls these and applies what they return.

// listed is one container of a function as the planner sees it.
type listed struct {
	ID, Name string
	State    string
	Slot     int
	// Current: carries the desired spec hash.
	Current bool
	// MadeHere: named as this runtime names its replicas (see madeHere);
	// a container with our labels under another name is a copy made by hand.
	MadeHere bool
	// Draining: the runtime drained it earlier and stops it when due.
	Draining bool
	// ParkedSince, for a paused container, is when this runtime paused it,
	// or first saw it paused when it has no record of pausing it (after a
	// daemon restart): its retention runs from then.
	ParkedSince time.Time
	// PausedBehindBack: paused, yet this runtime did not pause it and its
	// last Sync left it running, so someone else ran docker pause.
	PausedBehindBack bool
}

// replica is one running container of a function: adopted, whoever
// started it, as long as this runtime made it.
type replica struct {
	listed
	// Addr is where it serves on the function network ("" while unknown:
	// not attached, or just reconnected).
	Addr  string
	Ready bool
}

// removal is a container to remove, and why.
type removal struct {
	ID, Name, State string
	// Drift is the kind of drift it shows ("" for none); Crash counts it
	// as an exit of the current spec.
	Drift string
	Crash bool
	Why   string
}

// classification sorts a function's containers.
type classification struct {
	// Replicas are the running containers, draining ones included.
	Replicas []*replica
	// Remove are dead, exited and never-started containers.
	Remove []removal
	// Extra are running copies made by hand, to drain like surplus replicas.
	Extra []*replica
	// Paused are the paused replicas made here (of any spec), for
	// planParked to wake, keep or remove.
	Paused []*replica
}

// classify decides about every listed container of a function: running
// ones are replicas (adopted after a restart: a replica made here keeps
// running whoever asked for it); running copies made by hand are drained;
// paused replicas made here are left to planParked (a pause is no exit);
// everything else is removed, a replica of the current spec that exited
// counting as a crash.
func classify(list []listed) classification {
	var out classification
	for _, ct := range list {
		switch {
		case ct.State == stateRunning:
			r := &replica{listed: ct}
			out.Replicas = append(out.Replicas, r)
			if !ct.Draining && !ct.MadeHere {
				out.Extra = append(out.Extra, r)
			}
		case ct.State == stateRemoving:
			// Docker is already removing it.
		case ct.State == statePaused && ct.MadeHere && !ct.Draining:
			out.Paused = append(out.Paused, &replica{listed: ct})
		default:
			// A paused container gets here only while draining (it can no
			// longer finish its calls: removed quietly) or when made by
			// hand (removed like any copy): never as a crash.
			rm := removal{ID: ct.ID, Name: ct.Name, State: ct.State, Why: "removing stale container"}
			switch {
			case ct.Draining:
				rm.Why = ""
			case !ct.MadeHere:
				rm.Drift = runtime.DriftExtraReplica
				rm.Why = "removing a container that carries our labels but was not created by this daemon"
			case ct.State != stateCreated && ct.State != statePaused && ct.Current:
				rm.Drift, rm.Crash = runtime.DriftReplicaExited, true
				rm.Why = "replica exited; replacing it"
			}
			out.Remove = append(out.Remove, rm)
		}
	}
	return out
}

// parkPlan is what to do with a function's paused replicas.
type parkPlan struct {
	// Wake are paused replicas to thaw and adopt as running replicas.
	Wake []thaw
	// Remove are paused replicas to remove.
	Remove []removal
	// Keep are the parked replicas kept frozen for their retention.
	Keep []*replica
}

// thaw is a paused replica to unpause, and why.
type thaw struct {
	r   *replica
	why string
	// drift is the kind of drift the thaw corrects ("" for none).
	drift string
}

// planParked decides about the paused replicas made here (classify's
// Paused) given the running ones, the replicas wanted and the retention.
//
// With replicas wanted, a replica someone paused behind our back is thawed
// whatever its spec (it was serving; a rolling update retires it in
// order), and parked replicas of the current spec fill the missing
// replicas before any is created, lowest slot first: thawing takes
// milliseconds where a new replica takes a cold start. Parked replicas
// beyond what is missing are removed (so the highest slots go), and parked
// replicas of an older spec are removed: a wake must not serve an old spec.
//
// At zero, parked replicas of the current spec are kept until parkFor has
// passed since they were parked, then removed; with parkFor 0 they are
// removed at once (a function scaled to zero without parking); parked
// replicas of an older spec are removed.
func planParked(paused, running []*replica, want int, parkFor time.Duration, now time.Time) parkPlan {
	var out parkPlan
	have := 0
	for _, r := range running {
		if r.Current && !r.Draining {
			have++
		}
	}
	var parked []*replica
	for _, p := range paused {
		rm := removal{ID: p.ID, Name: p.Name, State: p.State}
		switch {
		case want > 0 && p.PausedBehindBack:
			out.Wake = append(out.Wake, thaw{r: p, why: "paused behind our back", drift: runtime.DriftReplicaPaused})
			if p.Current {
				have++
			}
		case !p.Current:
			rm.Why = "removing a parked replica of an older spec"
			out.Remove = append(out.Remove, rm)
		default:
			parked = append(parked, p)
		}
	}
	sort.SliceStable(parked, func(i, j int) bool { return parked[i].Slot < parked[j].Slot })
	for _, p := range parked {
		rm := removal{ID: p.ID, Name: p.Name, State: p.State}
		switch {
		case want > 0 && have < want:
			out.Wake = append(out.Wake, thaw{r: p, why: "waking a parked replica"})
			have++
		case want > 0:
			rm.Why = "removing a parked replica beyond the replicas wanted"
			out.Remove = append(out.Remove, rm)
		case parkFor <= 0:
			rm.Why = "removing a parked replica: scaled to zero without parking"
			out.Remove = append(out.Remove, rm)
		case !now.Before(p.ParkedSince.Add(parkFor)):
			rm.Why = "removing a parked replica: its retention is over"
			out.Remove = append(out.Remove, rm)
		default:
			out.Keep = append(out.Keep, p)
		}
	}
	return out
}

// retentionLeft is how long until the first of the parked replicas has
// been parked for parkFor (0: none parked), so a Sync can ask to be run
// again to remove it.
func retentionLeft(parked []*replica, parkFor time.Duration, now time.Time) time.Duration {
	var next time.Duration
	for _, p := range parked {
		left := max(p.ParkedSince.Add(parkFor).Sub(now), time.Millisecond)
		if next == 0 || left < next {
			next = left
		}
	}
	return next
}

// toUndrain picks the draining replicas to take back when fewer than want
// remain: running replicas of the current spec made here, lowest slots
// first. A scale up, or a wake, that comes while a scale down still drains
// is then served at once by replicas that were only leaving, instead of
// cold-starting new ones beside them.
func toUndrain(replicas []*replica, want int) []*replica {
	have := 0
	var back []*replica
	for _, r := range replicas {
		switch {
		case r.Current && !r.Draining:
			have++
		case r.Current && r.Draining && r.MadeHere:
			back = append(back, r)
		}
	}
	missing := want - have
	if missing <= 0 || len(back) == 0 {
		return nil
	}
	sort.SliceStable(back, func(i, j int) bool { return back[i].Slot < back[j].Slot })
	return back[:min(missing, len(back))]
}

// slotsToStart picks the slots of the replicas missing from want, lowest
// free first, unless a crash backoff (crashWait > 0) holds them back. The
// slot of a draining replica of the current spec is not free: a replica's
// name is made of the spec hash and the slot, so a new one there would take
// its name, and creating it would remove the draining one and its calls.
func slotsToStart(replicas []*replica, want int, crashWait time.Duration) (slots []int, wait time.Duration) {
	used := map[int]bool{}
	have := 0
	for _, r := range replicas {
		if r.Current {
			used[r.Slot] = true
			if !r.Draining {
				have++
			}
		}
	}
	missing := want - have
	if missing <= 0 {
		return nil, 0
	}
	if crashWait > 0 {
		return nil, crashWait
	}
	for slot := 0; len(slots) < missing; slot++ {
		if !used[slot] {
			slots = append(slots, slot)
		}
	}
	return slots, 0
}

// drainDecision is a replica to take out of the endpoint set.
type drainDecision struct {
	r   *replica
	why string
	// drift is the kind of drift the decision corrects ("" for none).
	drift string
}

// toDrain decides, once readiness is known, which replicas leave the
// endpoint set: surplus replicas of the current spec (not-ready ones first,
// then the highest slots; "extra replica" drift when the function was
// steady, so the surplus appeared behind our back), and replicas of an
// older spec (not-ready ones at once, ready ones only as ready new replicas
// replace them, so a rolling update never loses capacity).
func toDrain(replicas []*replica, want int, steady bool) []drainDecision {
	var out []drainDecision
	var cur []*replica
	for _, r := range replicas {
		if r.Current && !r.Draining {
			cur = append(cur, r)
		}
	}
	if len(cur) > want {
		sort.SliceStable(cur, func(i, j int) bool {
			if cur[i].Ready != cur[j].Ready {
				return !cur[i].Ready
			}
			return cur[i].Slot > cur[j].Slot
		})
		why, drift := "scale down", ""
		if steady {
			why, drift = "extra replica", runtime.DriftExtraReplica
		}
		for _, r := range cur[:len(cur)-want] {
			r.Draining = true
			out = append(out, drainDecision{r: r, why: why, drift: drift})
		}
	}

	readyCur, readyOld := 0, 0
	var old []*replica
	for _, r := range replicas {
		if r.Draining {
			continue
		}
		switch {
		case r.Current && r.Ready:
			readyCur++
		case !r.Current:
			old = append(old, r)
			if r.Ready {
				readyOld++
			}
		}
	}
	surplus := readyCur + readyOld - want
	for _, r := range old {
		switch {
		case !r.Ready:
			r.Draining = true
			out = append(out, drainDecision{r: r, why: "old spec, not ready"})
		case surplus > 0:
			r.Draining = true
			out = append(out, drainDecision{r: r, why: "replaced by new spec"})
			surplus--
		}
	}
	return out
}

// drained is a drained container waiting to be stopped.
type drained struct {
	ID, Name string
	Running  bool
	Since    time.Time
	// Calls is how many calls the proxy still serves on it.
	Calls int64
	// Current and MadeHere are those of listed: only a replica of the
	// current spec made here may be parked.
	Current, MadeHere bool
}

// drainTimes are the waits of a drain.
type drainTimes struct {
	Grace, Timeout, Probe time.Duration
}

// stopDecision says what to do with one drained container now.
type stopDecision int

const (
	stopWait    stopDecision = iota // its grace period is not over
	stopBusy                        // calls still run on it; look again soon
	stopNow                         // stop and remove it
	stopOverdue                     // calls still run, but past the drain timeout: stop it anyway
)

// whenToStop decides about one drained container at now.
func whenToStop(d drained, now time.Time, t drainTimes) (stopDecision, time.Duration) {
	if left := t.Grace - now.Sub(d.Since); left > 0 {
		return stopWait, left
	}
	if !d.Running || d.Calls <= 0 {
		return stopNow, 0
	}
	if now.Sub(d.Since) < t.Grace+t.Timeout {
		return stopBusy, t.Probe
	}
	return stopOverdue, 0
}

// parkOnStop tells whether a drained container that whenToStop says to
// stop is paused (parked) instead: only while the function is scaled to
// zero with parking, and only a running replica of the current spec made
// here. A surplus replica of a function that keeps running replicas is
// stopped (nothing would wake it), an old-spec one would be removed by
// the wake anyway, and a copy made by hand is no replica of ours.
func parkOnStop(d drained, want int, parkFor time.Duration) bool {
	return want == 0 && parkFor > 0 && d.Running && d.Current && d.MadeHere
}

// crashDelay is the wait before replacing a replica after its count-th
// exit: nothing for a first exit, then doubling from base up to max.
func crashDelay(count int, base, max time.Duration) time.Duration {
	if count < 2 {
		return 0
	}
	d := base
	for i := 2; i < count && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// convergence tells whether the replicas are exactly as desired (want
// replicas, all of the current spec, all ready, none just created) and,
// when not, the reason to show. replicas are the running ones: parked
// replicas are not counted, so a function at zero has converged once no
// replica runs, whatever it keeps parked.
func convergence(replicas []*replica, want, created, crashes int) (converged bool, current int, reason runtime.Reason) {
	cur, readyCur, old := 0, 0, 0
	for _, r := range replicas {
		if r.Draining {
			continue
		}
		if r.Current {
			cur++
			if r.Ready {
				readyCur++
			}
		} else {
			old++
		}
	}
	converged = cur == want && readyCur == want && old == 0 && created == 0
	if !converged {
		reason = runtime.ReasonNotConverged(crashes > 1, old, cur, readyCur)
	}
	return converged, cur + old, reason
}

// requeue is when a Sync wants its key looked at again (0: not needed).
// parkWait (0: nothing parked) is when a parked replica's retention ends:
// it is not capped by maxWait, because a parked function's only work left
// is that removal, and looking at every parked function once per resync
// period is what List's comparison spares (a retention found over by a
// resync queues the key too: see compare).
func requeue(converged bool, drainWait, crashWait, parkWait, probe, maxWait time.Duration) time.Duration {
	var d time.Duration
	switch {
	case converged && drainWait == 0:
	case drainWait > 0 && (converged || drainWait < probe):
		d = drainWait
	case crashWait > 0:
		d = min(crashWait, maxWait)
	default:
		d = probe
	}
	if parkWait > 0 && (d == 0 || parkWait < d) {
		d = parkWait
	}
	return d
}

// firstProbe is the wait before the first look at a replica just started.
const firstProbe = 10 * time.Millisecond

// warmupWait is when to look again at a function whose new replicas are
// not ready yet, after attempt earlier looks: 10 ms, doubling up to the
// probe interval, where the warm-up ends (ok false). A container answers
// some hundreds of milliseconds after its start; probing only every probe
// interval added up to that interval to every cold start, heal, scale-out
// and wake from the removed tier.
func warmupWait(attempt int, probe time.Duration) (time.Duration, bool) {
	if attempt < 0 || attempt > 30 {
		return 0, false
	}
	d := firstProbe << attempt
	return d, d < probe
}
