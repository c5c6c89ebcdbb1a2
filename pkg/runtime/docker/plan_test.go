package docker

import (
	"slices"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
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
		name                        string
		converged                   bool
		drainWait, crashWait, wantD time.Duration
	}{
		{name: "converged, nothing draining: done", converged: true},
		{name: "converged, a replica draining: wait for it", converged: true, drainWait: time.Second, wantD: time.Second},
		{name: "not converged, drain due sooner than a probe", drainWait: 100 * time.Millisecond, wantD: 100 * time.Millisecond},
		{name: "not converged, drain due later: probe again first", drainWait: time.Second, wantD: probe},
		{name: "crash backoff", crashWait: 8 * time.Second, wantD: 8 * time.Second},
		{name: "crash backoff capped at the resync", crashWait: time.Hour, wantD: maxWait},
		{name: "starting replicas: probe again", wantD: probe},
	}
	for _, tt := range reqs {
		t.Run(tt.name, func(t *testing.T) {
			if got := requeue(tt.converged, tt.drainWait, tt.crashWait, probe, maxWait); got != tt.wantD {
				t.Errorf("requeue = %v, want %v", got, tt.wantD)
			}
		})
	}
}
