package autoscale

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/load"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Decision directions, as status.Scaling.LastDecision and the direction
// label of the decisions metric name them.
const (
	DirUp   = "up"
	DirDown = "down"
	DirZero = "zero"
	DirWake = "wake"
)

// Causes, the reason label of the decisions metric: the scaling type that
// moved a function by load, "idle" for the idler, "call" for a wake. The
// set is fixed so the label cannot grow; the full reason goes to the log
// and the board.
const (
	causeIdle = "idle"
	causeCall = "call"
)

// Board modes besides the scaling types themselves.
const (
	modeStatic  = "static"
	modeInvalid = "invalid"
	modeNoUsage = "cpu (no usage from this runtime)"
)

// sample is one reading of a function's load.
type sample struct {
	at       time.Time
	requests uint64
	inFlight int64
}

// desiredAt is one value the formula asked for, kept for the down window.
type desiredAt struct {
	at time.Time
	n  uint64
}

// fnState is what the loop remembers of one function between passes.
type fnState struct {
	key      string
	policy   scaling.Policy
	parsed   bool   // policy holds the current labels' policy
	parseErr string // the error last logged, so each is logged once

	firstSeen  time.Time
	lastActive time.Time // last pass that saw a call, or a wake; idle since
	replicas   uint64    // stored replicas at the last pass
	samples    []sample  // oldest first, trimmed to the longest window

	// Pro types: desired values within the down window, and when that
	// history started (a scale-down needs a whole window of it).
	history     []desiredAt
	historyFrom time.Time

	// Legacy: CE's alert, pending since, firing, last step.
	pendingSince time.Time
	firing       bool
	lastStep     time.Time

	usageErr string // the usage error last logged

	// What the board shows.
	mode             string
	load, target     float64
	desired          uint64
	note             string // why nothing is done, when no decision was made
	decision, reason string
	decidedAt        time.Time
}

// write is a decision to carry out: the replicas of key from → to.
type write struct {
	key       string
	from, to  uint64
	by        string // store.ScaledBy*
	direction string
	cause     string // metric label
	reason    string // for people
	// An idler's zero holds only while no call came since the decision:
	// idleFrom is the lastActive and requests the count it was based on.
	idleFrom time.Time
	requests uint64
}

// state returns the state of key, creating it as first seen now. a.mu held.
func (a *Autoscaler) state(key string, now time.Time) *fnState {
	st := a.fns[key]
	if st == nil {
		st = &fnState{key: key, firstSeen: now, lastActive: now, historyFrom: now}
		a.fns[key] = st
	}
	return st
}

func labelsOf(f store.Function) map[string]string {
	if f.Spec.Labels == nil {
		return nil
	}
	return *f.Spec.Labels
}

// evaluate samples f's load and decides; it returns the write to make, if
// any, and publishes f's board entry.
func (a *Autoscaler) evaluate(ctx context.Context, f store.Function, now time.Time) (write, bool) {
	key := f.Key()
	p, perr := scaling.Parse(labelsOf(f), a.cfg.Defaults)
	snap := a.loads.Function(key)

	// The one read that leaves the process, done before taking a.mu and
	// bounded by Interval so a slow runtime cannot stretch the pass.
	var cpu float64
	var usageErr error
	readUsage := perr == nil && !p.Static() && p.Type == scaling.CPU && a.usage != nil && f.Replicas > 0
	if readUsage {
		uctx, cancel := context.WithTimeout(ctx, a.cfg.Interval)
		u, err := a.usage.Usage(uctx, key)
		cancel()
		cpu, usageErr = u.CPU, err
	}
	var ready uint64
	if a.ready != nil {
		ready = a.ready.Ready(key)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(key, now)
	defer func() { a.publish(key, st, f.Replicas, snap, now) }()

	// The calls observe finds came after the previous pass, which read the
	// replicas too: zero then means they came while the function was at
	// zero.
	atZeroBefore := len(st.samples) > 0 && st.replicas == 0
	active := a.observe(st, snap, now)
	// A function back from zero (woken, or scaled up by the API) starts a
	// new idle period; otherwise the idler would send it straight back.
	if st.replicas == 0 && f.Replicas > 0 && !st.firstSeen.Equal(now) {
		st.lastActive = now
		active = true
	}
	st.replicas = f.Replicas
	if a.ready != nil && ready == 0 && f.Replicas > 0 {
		// Nothing serves yet (a deploy or a wake still starting, a crash
		// loop): a function cannot be idle before it can be called, so the
		// idle time starts once a replica is ready.
		st.lastActive = now
	}
	// Calls reached a function at zero without the proxy waking it: they
	// were served by a replica still draining after the scale to zero.
	// They are demand all the same (as the OpenFaaS gateway sees it), so
	// the function is woken (by apply: Wake takes a.mu). Only calls known
	// to have come while it was at zero count; one that came just before
	// the scale is no reason to undo it.
	wakeForCalls := f.Replicas == 0 && atZeroBefore && active
	if wakeForCalls {
		return write{key: key, direction: DirWake}, true
	}

	if perr != nil {
		if msg := perr.Error(); msg != st.parseErr {
			a.log.WithField("function", key).WithError(perr).Warn("autoscaler: function left alone: invalid scaling labels")
			st.parseErr = msg
		}
		st.parsed = false
		st.mode, st.load, st.target, st.desired, st.note = modeInvalid, 0, 0, f.Replicas, perr.Error()
		return write{}, false
	}
	st.parseErr = ""
	if !st.parsed || st.policy != p {
		// A new policy: what was measured against the old one no longer
		// applies.
		st.policy, st.parsed = p, true
		st.resetScaling(now)
	}
	st.note = ""
	static := func() {
		st.mode, st.load, st.target, st.desired = modeStatic, 0, 0, f.Replicas
		st.note = "min = max or factor 0: never moved"
		if !p.Asked {
			st.note = "no max, type or target label: replicas are left to the API"
		}
	}
	// The idler first: no call at all also means no load to scale by. It
	// applies to every function that opted in and is not pinned (min = max
	// or factor 0), also to one that does not scale by load.
	if p.Idles() && f.Replicas > 0 && !active && snap.InFlight == 0 && now.Sub(st.lastActive) >= p.ZeroDuration {
		if p.Static() {
			static()
		} else {
			a.describeLoad(st, p, f.Replicas, now, cpu, usageErr, readUsage)
		}
		return write{key: key, from: f.Replicas, to: 0, by: store.ScaledByIdler, direction: DirZero, cause: causeIdle,
			reason:   fmt.Sprintf("no calls for %s (zero-duration %s)", now.Sub(st.lastActive).Round(time.Second), p.ZeroDuration),
			idleFrom: st.lastActive, requests: snap.Requests}, true
	}
	if p.Static() {
		static()
		return write{}, false
	}
	if f.Replicas == 0 {
		// Calls to a function at zero are the wake path's job; forget the
		// alert and the history so it starts afresh once woken.
		st.resetScaling(now)
		a.describeLoad(st, p, 0, now, cpu, usageErr, readUsage)
		st.desired = 0
		return write{}, false
	}

	if p.Type == scaling.Legacy {
		return a.legacy(key, st, p, f.Replicas, now)
	}
	loadNow, ok := a.describeLoad(st, p, f.Replicas, now, cpu, usageErr, readUsage)
	if !ok {
		return write{}, false
	}
	return a.pro(key, st, p, f.Replicas, loadNow, ready, now)
}

// observe records snap and reports whether a call ran since the last pass.
func (a *Autoscaler) observe(st *fnState, snap load.Snapshot, now time.Time) bool {
	active := snap.InFlight > 0
	if n := len(st.samples); n > 0 {
		switch last := st.samples[n-1].requests; {
		case snap.Requests < last:
			st.samples = st.samples[:0] // a reset counter: start over
			active = true
		case snap.Requests > last:
			active = true
		}
	}
	if active {
		st.lastActive = now
	}
	st.samples = append(st.samples, sample{at: now, requests: snap.Requests, inFlight: snap.InFlight})
	keep := max(a.cfg.RPSWindow, a.cfg.CapacityWindow, a.cfg.LegacyWindow) + 2*a.cfg.Interval
	i := 0
	for i < len(st.samples)-1 && now.Sub(st.samples[i].at) > keep {
		i++
	}
	st.samples = append(st.samples[:0], st.samples[i:]...)
	return active
}

// resetScaling forgets the down-window history and the legacy alert.
func (st *fnState) resetScaling(now time.Time) {
	st.history, st.historyFrom = st.history[:0], now
	st.pendingSince, st.firing, st.lastStep = time.Time{}, false, time.Time{}
}

// slack is how far past a window a sample may be and still count as its
// start: passes do not run exactly Interval apart.
func (a *Autoscaler) slack() time.Duration { return a.cfg.Interval / 2 }

// rate is requests started per second over the window ending now, or false
// before two samples exist. Early on it is the rate over the samples there
// are, so a function is not ignored for a whole window after start.
func (a *Autoscaler) rate(st *fnState, now time.Time, window time.Duration) (float64, bool) {
	if len(st.samples) < 2 {
		return 0, false
	}
	last := st.samples[len(st.samples)-1]
	for _, s := range st.samples {
		if now.Sub(s.at) <= window+a.slack() {
			span := last.at.Sub(s.at).Seconds()
			if span <= 0 {
				return 0, false
			}
			return float64(last.requests-s.requests) / span, true
		}
	}
	return 0, false
}

// maxInFlight is the most calls in flight sampled over the window.
func (a *Autoscaler) maxInFlight(st *fnState, now time.Time, window time.Duration) float64 {
	var m int64
	for _, s := range st.samples {
		if now.Sub(s.at) <= window+a.slack() {
			m = max(m, s.inFlight)
		}
	}
	return float64(m)
}

// describeLoad measures the load p scales by, sets the board's mode, load
// and target, and reports whether the load is known.
func (a *Autoscaler) describeLoad(st *fnState, p scaling.Policy, replicas uint64, now time.Time, cpu float64, usageErr error, readUsage bool) (float64, bool) {
	st.mode, st.load, st.target, st.desired = string(p.Type), 0, p.Target*p.TargetProportion, replicas
	switch p.Type {
	case scaling.Legacy:
		st.target = a.cfg.LegacyRPS
		r, ok := a.rate(st, now, a.cfg.LegacyWindow)
		st.load = r
		return r, ok
	case scaling.RPS:
		r, ok := a.rate(st, now, a.cfg.RPSWindow)
		st.load = r
		return r, ok
	case scaling.Capacity:
		st.load = a.maxInFlight(st, now, a.cfg.CapacityWindow)
		return st.load, true
	case scaling.CPU:
		switch {
		case a.usage == nil:
			st.mode = modeNoUsage
			st.note = "the runtime does not measure usage: left alone by load"
			return 0, false
		case !readUsage:
			return 0, false
		case usageErr != nil:
			if msg := usageErr.Error(); msg != st.usageErr { // logged once per distinct error
				st.usageErr = msg
				a.log.WithField("function", st.key).WithError(usageErr).Warn("autoscaler: read usage: left alone by load")
			}
			st.note = "usage unavailable: " + usageErr.Error()
			return 0, false
		}
		st.usageErr = ""
		st.load = cpu
		return cpu, true
	default: // queue, until async invocations exist
		st.note = "queue length is not measured yet (no async invocations): left alone by load"
		return 0, false
	}
}

// proDesired is OpenFaaS Pro's formula, ceil(load / (target × proportion)).
// With r ready replicas carrying load/r each it is
// ceil(r × (load/r) / (target × proportion)): the same number, so it needs
// no replica count. A hair is taken off before rounding up so that load
// exactly at the target does not ask for one more replica because of
// floating point.
func proDesired(load, perReplica float64) uint64 {
	if perReplica <= 0 || math.IsNaN(load) || load <= 0 {
		return 0
	}
	n := math.Ceil(load/perReplica - 1e-9)
	if n >= math.MaxUint32 {
		return math.MaxUint32
	}
	return uint64(max(n, 0))
}

// pro decides for the rps, capacity and cpu types: up at once to what the
// load asks for; down only to the most any pass asked for during the down
// window, and only once such a window has been watched.
func (a *Autoscaler) pro(key string, st *fnState, p scaling.Policy, cur uint64, loadNow float64, ready uint64, now time.Time) (write, bool) {
	per := p.Target * p.TargetProportion
	desired := max(p.WakeTo(), min(proDesired(loadNow, per), p.Max))
	st.desired = desired
	st.history = append(st.history, desiredAt{at: now, n: desired})
	i := 0
	for i < len(st.history)-1 && now.Sub(st.history[i].at) > p.DownWindow {
		i++
	}
	st.history = append(st.history[:0], st.history[i:]...)

	perReady := ""
	if ready > 0 {
		perReady = fmt.Sprintf(", %.3g per ready replica over %d", loadNow/float64(ready), ready)
	}
	w := write{key: key, from: cur, by: store.ScaledByAutoscaler, cause: string(p.Type)}
	switch {
	case desired > cur:
		w.to, w.direction = desired, DirUp
		w.reason = fmt.Sprintf("%s load %.3g%s needs %d replicas at %.3g per replica", p.Type, loadNow, perReady, desired, per)
		return w, true
	case desired < cur:
		held := desired
		for _, h := range st.history {
			held = max(held, h.n)
		}
		if held >= cur || now.Sub(st.historyFrom) < p.DownWindow {
			return write{}, false
		}
		w.to, w.direction = held, DirDown
		w.reason = fmt.Sprintf("%s load %.3g%s needed at most %d replicas at %.3g per replica over the last %s",
			p.Type, loadNow, perReady, held, per, p.DownWindow)
		return w, true
	}
	return write{}, false
}

// legacy is OpenFaaS CE's autoscaling, its Prometheus rule and alert
// handler in one: the alert is pending while the rate over LegacyWindow is
// above LegacyRPS, fires once that lasted LegacyFor and then adds a step
// of factor % of max (at least 1, capped at max) at once and every
// LegacyRepeat while it fires; when it resolves, the function goes back to
// min at once, as CE's handler sets minReplicas on a resolved alert.
func (a *Autoscaler) legacy(key string, st *fnState, p scaling.Policy, cur uint64, now time.Time) (write, bool) {
	rps, ok := a.describeLoad(st, p, cur, now, 0, nil, false)
	if !ok {
		return write{}, false
	}
	w := write{key: key, from: cur, by: store.ScaledByAutoscaler, cause: string(scaling.Legacy)}
	if rps <= a.cfg.LegacyRPS {
		wasFiring := st.firing
		st.pendingSince, st.firing, st.lastStep = time.Time{}, false, time.Time{}
		floor := p.WakeTo()
		if !wasFiring || cur == floor {
			return write{}, false
		}
		st.desired = floor
		w.to, w.direction = floor, DirDown
		if floor > cur {
			w.direction = DirUp
		}
		w.reason = fmt.Sprintf("rps %.3g at or below %g: alert resolved, back to min", rps, a.cfg.LegacyRPS)
		return w, true
	}
	if st.pendingSince.IsZero() {
		st.pendingSince = now
	}
	if now.Sub(st.pendingSince) < a.cfg.LegacyFor {
		return write{}, false
	}
	if st.firing && now.Sub(st.lastStep) < a.cfg.LegacyRepeat {
		return write{}, false
	}
	st.firing, st.lastStep = true, now
	step := max(uint64(math.Ceil(float64(p.Max)*float64(p.Factor)/100)), 1)
	to := min(cur+step, p.Max)
	if to <= cur {
		return write{}, false // at max already (or above it, by the API)
	}
	st.desired = to
	w.to, w.direction = to, DirUp
	w.reason = fmt.Sprintf("rps %.3g above %g for %s (alert firing): step %d", rps, a.cfg.LegacyRPS, now.Sub(st.pendingSince).Round(time.Second), step)
	return w, true
}

// apply carries out w, unless the function changed since w was decided.
func (a *Autoscaler) apply(ctx context.Context, w write) bool {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.WriteTimeout)
	defer cancel()
	if w.direction == DirWake {
		a.Wake(w.key)
		return true
	}
	log := a.log.WithField("function", w.key)
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if w.direction == DirZero && !a.stillIdle(w) {
		log.Debug("autoscaler: a call came in: not scaling to zero")
		return false
	}
	f, err := a.store.Get(ctx, w.key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.WithError(err).Warn("autoscaler: read function before scaling")
		}
		return false
	}
	if f.Replicas != w.from {
		log.WithField("replicas", f.Replicas).Debug("autoscaler: replicas changed meanwhile: decision dropped")
		return false
	}
	if _, err := a.store.ScaleBy(ctx, w.key, w.to, w.by); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.WithError(fmt.Errorf("scale %s to %d: %w", w.key, w.to, err)).Warn("autoscaler: scale")
		}
		return false
	}
	a.decided(w)
	return true
}

// stillIdle reports whether no call came since the idler decided w.
// a.writeMu held.
func (a *Autoscaler) stillIdle(w write) bool {
	snap := a.loads.Function(w.key)
	if snap.InFlight > 0 || snap.Requests != w.requests {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.fns[w.key]
	return st != nil && st.lastActive.Equal(w.idleFrom)
}

// decided records a decision carried out: metric, log line, board.
func (a *Autoscaler) decided(w write) {
	a.m.decisions.WithLabelValues(w.direction, w.cause).Inc()
	a.log.WithFields(logrus.Fields{"function": w.key, "from": w.from, "to": w.to, "reason": w.reason}).
		Info("autoscaler: scaled " + w.direction)
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.fns[w.key]
	if st == nil {
		return
	}
	st.decision, st.reason, st.decidedAt = w.direction, w.reason, now
	st.replicas = w.to
	if w.direction == DirWake {
		st.lastActive = now
		st.resetScaling(now)
	}
	if e, ok := a.board.Get(w.key); ok {
		e.LastDecision, e.Reason, e.DecidedAt = st.decision, st.reason, st.decidedAt
		if w.direction == DirZero || w.direction == DirWake {
			e.ZeroAt = time.Time{}
		}
		a.board.Set(e)
	}
}

// publish writes key's board entry. a.mu held.
func (a *Autoscaler) publish(key string, st *fnState, replicas uint64, snap load.Snapshot, now time.Time) {
	e := status.Scaling{
		Key: key, Mode: st.mode, Load: st.load, Target: st.target, Desired: st.desired,
		LastDecision: st.decision, Reason: st.reason, DecidedAt: st.decidedAt,
	}
	if st.parsed {
		e.Min, e.Max, e.Zero = st.policy.Min, st.policy.Max, st.policy.Zero
	}
	if e.Reason == "" {
		e.Reason = st.note
	}
	if snap.InFlight == 0 {
		e.IdleSince = st.lastActive
		if st.parsed && st.policy.Idles() && replicas > 0 {
			e.ZeroAt = st.lastActive.Add(st.policy.ZeroDuration)
		}
	}
	a.board.Set(e)
}
