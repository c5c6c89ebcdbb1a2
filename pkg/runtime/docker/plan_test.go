package docker

import (
	"slices"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// rep builds a replica for planner tables: slot, current spec, ready.
func rep(id string, slot int, current, ready bool) *replica {
	return &replica{listed: listed{ID: id, Name: id, State: stateRunning, Slot: slot, Current: current, MadeHere: true}, Addr: id + ":8080", Ready: ready}
}

func ids(rs []*replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		list        []listed
		wantRunning []string
		wantExtra   []string
		wantPaused  []string
		wantRemove  []removal
	}{
		{
			name: "adoption: running replicas made here are kept whoever started them",
			list: []listed{
				{ID: "a", State: stateRunning, Slot: 0, Current: true, MadeHere: true},
				{ID: "b", State: stateRunning, Slot: 1, Current: true, MadeHere: true},
			},
			wantRunning: []string{"a", "b"},
		},
		{
			name: "adoption of an older spec's replicas: kept for the roll to retire",
			list: []listed{
				{ID: "old", State: stateRunning, Slot: 0, Current: false, MadeHere: true},
			},
			wantRunning: []string{"old"},
		},
		{
			name: "a running copy made by hand is drained, not adopted",
			list: []listed{
				{ID: "copy", State: stateRunning, Slot: 0, Current: true, MadeHere: false},
			},
			wantRunning: []string{"copy"},
			wantExtra:   []string{"copy"},
		},
		{
			name: "an exited replica of the current spec is a crash",
			list: []listed{
				{ID: "x", Name: "x", State: "exited", Current: true, MadeHere: true},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: "exited", Drift: runtime.DriftReplicaExited, Crash: true, Why: "replica exited; replacing it"}},
		},
		{
			name: "an exited replica of an old spec is stale, no crash",
			list: []listed{
				{ID: "x", Name: "x", State: "exited", Current: false, MadeHere: true},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: "exited", Why: "removing stale container"}},
		},
		{
			name: "a container never started (created) is stale, no crash",
			list: []listed{
				{ID: "x", Name: "x", State: stateCreated, Current: true, MadeHere: true},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: stateCreated, Why: "removing stale container"}},
		},
		{
			name: "orphaned dead copy made by hand: removed as extra, no crash",
			list: []listed{
				{ID: "x", Name: "x", State: "dead", Current: true, MadeHere: false},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: "dead", Drift: runtime.DriftExtraReplica, Why: "removing a container that carries our labels but was not created by this daemon"}},
		},
		{
			name: "a drained replica that stopped is removed quietly",
			list: []listed{
				{ID: "x", Name: "x", State: "exited", Current: true, MadeHere: true, Draining: true},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: "exited"}},
		},
		{
			name: "a container Docker is removing is left alone",
			list: []listed{{ID: "x", State: stateRemoving, Current: true, MadeHere: true}},
		},
		{
			name: "paused replicas made here, of any spec, are left to planParked: a pause is no exit",
			list: []listed{
				{ID: "p", Name: "p", State: statePaused, Current: true, MadeHere: true},
				{ID: "old", Name: "old", State: statePaused, Current: false, MadeHere: true},
			},
			wantPaused: []string{"p", "old"},
		},
		{
			name: "a paused copy made by hand is removed as extra, no crash",
			list: []listed{
				{ID: "x", Name: "x", State: statePaused, Current: true, MadeHere: false},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: statePaused, Drift: runtime.DriftExtraReplica, Why: "removing a container that carries our labels but was not created by this daemon"}},
		},
		{
			name: "a draining replica someone paused is removed quietly: it cannot finish its calls",
			list: []listed{
				{ID: "x", Name: "x", State: statePaused, Current: true, MadeHere: true, Draining: true},
			},
			wantRemove: []removal{{ID: "x", Name: "x", State: statePaused}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.list)
			if g := ids(got.Replicas); !slices.Equal(g, tt.wantRunning) {
				t.Errorf("replicas %v, want %v", g, tt.wantRunning)
			}
			if g := ids(got.Extra); !slices.Equal(g, tt.wantExtra) {
				t.Errorf("extra %v, want %v", g, tt.wantExtra)
			}
			if g := ids(got.Paused); !slices.Equal(g, tt.wantPaused) {
				t.Errorf("paused %v, want %v", g, tt.wantPaused)
			}
			if !slices.Equal(got.Remove, tt.wantRemove) {
				t.Errorf("remove %+v, want %+v", got.Remove, tt.wantRemove)
			}
		})
	}
}

func TestSlotsToStart(t *testing.T) {
	tests := []struct {
		name      string
		replicas  []*replica
		want      int
		crashWait time.Duration
		wantSlots []int
		wantWait  time.Duration
	}{
		{name: "scale up from nothing", want: 3, wantSlots: []int{0, 1, 2}},
		{name: "fills the free slots, lowest first", replicas: []*replica{rep("a", 1, true, true)}, want: 3, wantSlots: []int{0, 2}},
		{name: "adopted replicas need nothing", replicas: []*replica{rep("a", 0, true, true), rep("b", 1, true, false)}, want: 2},
		{name: "old-spec replicas do not count: a roll starts new ones", replicas: []*replica{rep("old", 0, false, true)}, want: 1, wantSlots: []int{0}},
		{name: "draining replicas do not count", replicas: []*replica{func() *replica { r := rep("d", 0, true, true); r.Draining = true; return r }()}, want: 1, wantSlots: []int{1}},
		{name: "crash backoff holds creation back", want: 2, crashWait: 4 * time.Second, wantWait: 4 * time.Second},
		{name: "crash backoff does not matter when nothing is missing", replicas: []*replica{rep("a", 0, true, true)}, want: 1, crashWait: time.Second},
		{name: "scale to zero starts nothing", replicas: []*replica{rep("a", 0, true, true)}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slots, wait := slotsToStart(tt.replicas, tt.want, tt.crashWait)
			if !slices.Equal(slots, tt.wantSlots) || wait != tt.wantWait {
				t.Errorf("got slots %v wait %v, want %v %v", slots, wait, tt.wantSlots, tt.wantWait)
			}
		})
	}
}

func TestToDrain(t *testing.T) {
	type drainOut struct{ id, why, drift string }
	tests := []struct {
		name     string
		replicas []*replica
		want     int
		steady   bool
		wantOut  []drainOut
	}{
		{
			name:     "scale down drains not-ready replicas first, then the highest slots",
			replicas: []*replica{rep("s0", 0, true, true), rep("s1", 1, true, false), rep("s2", 2, true, true), rep("s3", 3, true, true)},
			want:     2,
			wantOut:  []drainOut{{"s1", "scale down", ""}, {"s3", "scale down", ""}},
		},
		{
			name:     "a surplus on a steady function is drift",
			replicas: []*replica{rep("s0", 0, true, true), rep("s1", 1, true, true)},
			want:     1, steady: true,
			wantOut: []drainOut{{"s1", "extra replica", runtime.DriftExtraReplica}},
		},
		{
			name:     "scale down to zero drains all",
			replicas: []*replica{rep("s0", 0, true, true), rep("s1", 1, true, true)},
			want:     0,
			wantOut:  []drainOut{{"s1", "scale down", ""}, {"s0", "scale down", ""}},
		},
		{
			name:     "rolling update: no ready new replica yet keeps the ready old one",
			replicas: []*replica{rep("old", 0, false, true), rep("new", 0, true, false)},
			want:     1,
		},
		{
			name:     "rolling update: a ready new replica retires one ready old one",
			replicas: []*replica{rep("old0", 0, false, true), rep("old1", 1, false, true), rep("new0", 0, true, true), rep("new1", 1, true, false)},
			want:     2,
			wantOut:  []drainOut{{"old0", "replaced by new spec", ""}},
		},
		{
			name:     "rolling update: old replicas that are not ready go at once",
			replicas: []*replica{rep("old", 0, false, false), rep("new", 0, true, false)},
			want:     1,
			wantOut:  []drainOut{{"old", "old spec, not ready", ""}},
		},
		{
			name:     "rolling update done: every old replica retired",
			replicas: []*replica{rep("old0", 0, false, true), rep("old1", 1, false, true), rep("new0", 0, true, true), rep("new1", 1, true, true)},
			want:     2,
			wantOut:  []drainOut{{"old0", "replaced by new spec", ""}, {"old1", "replaced by new spec", ""}},
		},
		{
			name:     "converged: nothing to drain",
			replicas: []*replica{rep("s0", 0, true, true), rep("s1", 1, true, true)},
			want:     2, steady: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []drainOut
			for _, d := range toDrain(tt.replicas, tt.want, tt.steady) {
				if !d.r.Draining {
					t.Errorf("%s decided but not marked draining", d.r.ID)
				}
				got = append(got, drainOut{d.r.ID, d.why, d.drift})
			}
			if !slices.Equal(got, tt.wantOut) {
				t.Errorf("got %v, want %v", got, tt.wantOut)
			}
		})
	}
}

func TestWhenToStop(t *testing.T) {
	now := time.Now()
	times := drainTimes{Grace: 2 * time.Second, Timeout: 60 * time.Second, Probe: 250 * time.Millisecond}
	tests := []struct {
		name     string
		d        drained
		want     stopDecision
		wantWait time.Duration
	}{
		{name: "within the grace period", d: drained{Running: true, Since: now.Add(-500 * time.Millisecond)}, want: stopWait, wantWait: 1500 * time.Millisecond},
		{name: "grace over, no calls", d: drained{Running: true, Since: now.Add(-3 * time.Second)}, want: stopNow},
		{name: "grace over, calls still running", d: drained{Running: true, Calls: 2, Since: now.Add(-3 * time.Second)}, want: stopBusy, wantWait: 250 * time.Millisecond},
		{name: "calls outlived the drain timeout", d: drained{Running: true, Calls: 1, Since: now.Add(-63 * time.Second)}, want: stopOverdue},
		{name: "not running any more: calls cannot be served", d: drained{Running: false, Calls: 1, Since: now.Add(-3 * time.Second)}, want: stopNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wait := whenToStop(tt.d, now, times)
			if got != tt.want || wait != tt.wantWait {
				t.Errorf("got %v after %v, want %v after %v", got, wait, tt.want, tt.wantWait)
			}
		})
	}
}

func TestCrashDelay(t *testing.T) {
	base, maxD := time.Second, 5*time.Minute
	tests := []struct {
		exits int
		want  time.Duration
	}{
		{0, 0}, {1, 0}, // a first exit is replaced at once
		{2, time.Second}, {3, 2 * time.Second}, {4, 4 * time.Second}, {5, 8 * time.Second},
		{10, 256 * time.Second}, {11, maxD}, {50, maxD},
	}
	for _, tt := range tests {
		if got := crashDelay(tt.exits, base, maxD); got != tt.want {
			t.Errorf("crashDelay(%d) = %v, want %v", tt.exits, got, tt.want)
		}
	}
}

func TestConvergenceAndRequeue(t *testing.T) {
	draining := func(r *replica) *replica { r.Draining = true; return r }
	tests := []struct {
		name          string
		replicas      []*replica
		want, created int
		crashes       int
		converged     bool
		current       int
		reason        runtime.Reason
	}{
		{name: "converged", replicas: []*replica{rep("a", 0, true, true)}, want: 1, converged: true, current: 1},
		{name: "just created", replicas: []*replica{rep("a", 0, true, true)}, want: 1, created: 1, current: 1, reason: runtime.ReasonScaling},
		{name: "waiting for readiness", replicas: []*replica{rep("a", 0, true, false)}, want: 1, current: 1, reason: runtime.ReasonWaitingForReadiness},
		{name: "rolling update", replicas: []*replica{rep("old", 0, false, true), rep("a", 0, true, true)}, want: 1, current: 2, reason: runtime.ReasonRollingUpdate},
		{name: "crash loop wins over other reasons", replicas: []*replica{rep("old", 0, false, true)}, want: 1, crashes: 2, current: 1, reason: runtime.ReasonCrashLoopBackOff},
		{name: "one exit is no crash loop", want: 1, crashes: 1, reason: runtime.ReasonScaling},
		{name: "draining replicas do not count", replicas: []*replica{rep("a", 0, true, true), draining(rep("b", 1, true, true))}, want: 1, converged: true, current: 1},
		{name: "scaled to zero", want: 0, converged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv, cur, reason := convergence(tt.replicas, tt.want, tt.created, tt.crashes)
			if conv != tt.converged || cur != tt.current || reason != tt.reason {
				t.Errorf("got %v %d %q, want %v %d %q", conv, cur, reason, tt.converged, tt.current, tt.reason)
			}
		})
	}

	probe, maxWait := 250*time.Millisecond, 30*time.Second
	reqs := []struct {
		name                                  string
		converged                             bool
		drainWait, crashWait, parkWait, wantD time.Duration
	}{
		{name: "converged, nothing draining: done", converged: true},
		{name: "converged, a replica draining: wait for it", converged: true, drainWait: time.Second, wantD: time.Second},
		{name: "not converged, drain due sooner than a probe", drainWait: 100 * time.Millisecond, wantD: 100 * time.Millisecond},
		{name: "not converged, drain due later: probe again first", drainWait: time.Second, wantD: probe},
		{name: "crash backoff", crashWait: 8 * time.Second, wantD: 8 * time.Second},
		{name: "crash backoff capped at the resync", crashWait: time.Hour, wantD: maxWait},
		{name: "starting replicas: probe again", wantD: probe},
		{name: "scaled to zero, replicas parked: look again when the first retention ends", converged: true, parkWait: 10 * time.Minute, wantD: 10 * time.Minute},
		{name: "parked and still draining: the drain first", converged: true, drainWait: time.Second, parkWait: 10 * time.Minute, wantD: time.Second},
		{name: "a retention that ends before the next probe", parkWait: 100 * time.Millisecond, wantD: 100 * time.Millisecond},
		{name: "a retention that ends before a crash backoff", crashWait: time.Hour, parkWait: 10 * time.Second, wantD: 10 * time.Second},
	}
	for _, tt := range reqs {
		t.Run(tt.name, func(t *testing.T) {
			if got := requeue(tt.converged, tt.drainWait, tt.crashWait, tt.parkWait, probe, maxWait); got != tt.wantD {
				t.Errorf("requeue = %v, want %v", got, tt.wantD)
			}
		})
	}
}

// parked builds a paused replica for planner tables: slot, current spec,
// parked since.
func parked(id string, slot int, current bool, since time.Time) *replica {
	return &replica{listed: listed{ID: id, Name: id, State: statePaused, Slot: slot, Current: current, MadeHere: true, ParkedSince: since}, Addr: id + ":8080"}
}

func TestPlanParked(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	behind := func(r *replica) *replica { r.PausedBehindBack = true; return r }
	draining := func(r *replica) *replica { r.Draining = true; return r }
	const retention = 10 * time.Minute
	tests := []struct {
		name            string
		paused, running []*replica
		want            int
		parkFor         time.Duration
		wantWake        []string // id, or id/drift
		wantRemove      []string // id: why
		wantKeep        []string
		// wantStart are the slots created after the wake (slotsToStart).
		wantStart []int
	}{
		{
			name:     "scale to zero with parking: parked replicas are kept within their retention",
			paused:   []*replica{parked("p1", 1, true, ago(9*time.Minute)), parked("p0", 0, true, ago(time.Minute))},
			parkFor:  retention,
			wantKeep: []string{"p0", "p1"},
		},
		{
			name:       "retention expiry: a replica parked for longer than parkFor is removed",
			paused:     []*replica{parked("p0", 0, true, ago(11*time.Minute)), parked("p1", 1, true, ago(time.Minute))},
			parkFor:    retention,
			wantRemove: []string{"p0: removing a parked replica: its retention is over"},
			wantKeep:   []string{"p1"},
		},
		{
			name:   "ParkFor 0: parked replicas are removed at once, as without parking",
			paused: []*replica{parked("p0", 0, true, ago(time.Second)), parked("p1", 1, true, now)},
			wantRemove: []string{
				"p0: removing a parked replica: scaled to zero without parking",
				"p1: removing a parked replica: scaled to zero without parking",
			},
		},
		{
			name:     "wake from parking: the lowest slot is thawed, the surplus removed",
			paused:   []*replica{parked("p2", 2, true, now), parked("p0", 0, true, now), parked("p1", 1, true, now)},
			want:     1,
			parkFor:  retention,
			wantWake: []string{"p0"},
			wantRemove: []string{
				"p1: removing a parked replica beyond the replicas wanted",
				"p2: removing a parked replica beyond the replicas wanted",
			},
		},
		{
			name:       "a wake fills only what the running replicas leave missing",
			paused:     []*replica{parked("p1", 1, true, now), parked("p2", 2, true, now)},
			running:    []*replica{rep("r0", 0, true, true)},
			want:       2,
			wantWake:   []string{"p1"},
			wantRemove: []string{"p2: removing a parked replica beyond the replicas wanted"},
		},
		{
			name:      "parked replicas fill their slots before any replica is created",
			paused:    []*replica{parked("p0", 0, true, now), parked("p2", 2, true, now)},
			want:      4,
			wantWake:  []string{"p0", "p2"},
			wantStart: []int{1, 3},
		},
		{
			name:      "draining replicas are no replica present: a parked one is thawed",
			paused:    []*replica{parked("p1", 1, true, now)},
			running:   []*replica{draining(rep("d0", 0, true, true))},
			want:      1,
			wantWake:  []string{"p1"},
			wantStart: nil,
		},
		{
			name:       "old spec parked: removed, never woken; the current one is",
			paused:     []*replica{parked("old0", 0, false, now), parked("p1", 1, true, now)},
			want:       1,
			wantWake:   []string{"p1"},
			wantRemove: []string{"old0: removing a parked replica of an older spec"},
		},
		{
			name:       "old spec parked at zero: removed at once",
			paused:     []*replica{parked("old0", 0, false, now)},
			parkFor:    retention,
			wantRemove: []string{"old0: removing a parked replica of an older spec"},
		},
		{
			name:     "paused behind our back while replicas are wanted: thawed and counted, whatever its spec",
			paused:   []*replica{behind(parked("b1", 1, true, now)), behind(parked("bold", 0, false, now))},
			running:  []*replica{rep("r0", 0, true, true)},
			want:     2,
			wantWake: []string{"b1/" + runtime.DriftReplicaPaused, "bold/" + runtime.DriftReplicaPaused},
		},
		{
			name:     "paused behind our back at zero: parked like the others, no drift",
			paused:   []*replica{behind(parked("b0", 0, true, now))},
			parkFor:  retention,
			wantKeep: []string{"b0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planParked(tt.paused, tt.running, tt.want, tt.parkFor, now)
			var wake, remove []string
			for _, w := range got.Wake {
				s := w.r.ID
				if w.drift != "" {
					s += "/" + w.drift
				}
				wake = append(wake, s)
			}
			for _, rm := range got.Remove {
				if rm.Drift != "" || rm.Crash {
					t.Errorf("%s removed as drift %q crash %v; a parked replica is neither", rm.ID, rm.Drift, rm.Crash)
				}
				remove = append(remove, rm.ID+": "+rm.Why)
			}
			if !slices.Equal(wake, tt.wantWake) {
				t.Errorf("wake %v, want %v", wake, tt.wantWake)
			}
			if !slices.Equal(remove, tt.wantRemove) {
				t.Errorf("remove %v, want %v", remove, tt.wantRemove)
			}
			if g := ids(got.Keep); !slices.Equal(g, tt.wantKeep) {
				t.Errorf("keep %v, want %v", g, tt.wantKeep)
			}
			if tt.want > 0 {
				present := slices.Clone(tt.running)
				for _, w := range got.Wake {
					present = append(present, w.r)
				}
				if slots, _ := slotsToStart(present, tt.want, 0); !slices.Equal(slots, tt.wantStart) {
					t.Errorf("slots started after the wake %v, want %v", slots, tt.wantStart)
				}
			}
		})
	}
}

func TestRetentionLeft(t *testing.T) {
	now := time.Now()
	const retention = 10 * time.Minute
	tests := []struct {
		name   string
		parked []*replica
		want   time.Duration
	}{
		{name: "nothing parked: no wait"},
		{name: "the oldest parked replica decides", parked: []*replica{parked("a", 0, true, now.Add(-time.Minute)), parked("b", 1, true, now.Add(-9*time.Minute))}, want: time.Minute},
		{name: "just parked: the whole retention", parked: []*replica{parked("a", 0, true, now)}, want: retention},
		{name: "a retention over already: soon, never 0", parked: []*replica{parked("a", 0, true, now.Add(-time.Hour))}, want: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retentionLeft(tt.parked, retention, now); got != tt.want {
				t.Errorf("retentionLeft = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParkOnStop(t *testing.T) {
	const retention = 10 * time.Minute
	parkable := drained{Running: true, Current: true, MadeHere: true}
	with := func(mut func(*drained)) drained { d := parkable; mut(&d); return d }
	tests := []struct {
		name    string
		d       drained
		want    int
		parkFor time.Duration
		park    bool
	}{
		{name: "scaled to zero with parking: the drained replica is paused", d: parkable, parkFor: retention, park: true},
		{name: "scaled to zero without parking: stopped and removed", d: parkable},
		{name: "a scale down that keeps replicas: the surplus is stopped", d: parkable, want: 1, parkFor: retention},
		{name: "an old-spec replica is stopped", d: with(func(d *drained) { d.Current = false }), parkFor: retention},
		{name: "a copy made by hand is stopped", d: with(func(d *drained) { d.MadeHere = false }), parkFor: retention},
		{name: "a replica no longer running is removed", d: with(func(d *drained) { d.Running = false }), parkFor: retention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parkOnStop(tt.d, tt.want, tt.parkFor); got != tt.park {
				t.Errorf("parkOnStop = %v, want %v", got, tt.park)
			}
		})
	}
}

func TestReplicaStatusesShowParked(t *testing.T) {
	got := replicaStatuses([]*replica{parked("p1", 1, true, time.Now()), rep("r0", 0, true, true)}, "")
	var states []string
	for _, r := range got {
		states = append(states, r.Name+"="+r.State)
	}
	if want := []string{"r0=" + status.ReplicaReady, "p1=" + status.ReplicaPaused}; !slices.Equal(states, want) {
		t.Errorf("replica statuses %v, want %v", states, want)
	}
}

func TestToUndrain(t *testing.T) {
	draining := func(r *replica) *replica { r.Draining = true; return r }
	handMade := func(r *replica) *replica { r.MadeHere = false; return r }
	tests := []struct {
		name     string
		replicas []*replica
		want     int
		wantBack []string
	}{
		{name: "nothing draining", replicas: []*replica{rep("a", 0, true, true)}, want: 2},
		{name: "enough left: the drain goes on", replicas: []*replica{rep("a", 0, true, true), draining(rep("b", 1, true, true))}, want: 1},
		{name: "scale up during a scale down takes the drained back", replicas: []*replica{rep("a", 0, true, true), draining(rep("b", 1, true, true))}, want: 2, wantBack: []string{"b"}},
		{name: "wake during a drain to zero, lowest slot first", replicas: []*replica{draining(rep("c", 2, true, true)), draining(rep("b", 1, true, true))}, want: 1, wantBack: []string{"b"}},
		{name: "an old spec's replica is never taken back", replicas: []*replica{draining(rep("old", 0, false, true))}, want: 1},
		{name: "a copy made by hand is never taken back", replicas: []*replica{draining(handMade(rep("copy", 0, true, true)))}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(toUndrain(tt.replicas, tt.want)); !slices.Equal(got, tt.wantBack) {
				t.Errorf("took back %v, want %v", got, tt.wantBack)
			}
		})
	}
}
