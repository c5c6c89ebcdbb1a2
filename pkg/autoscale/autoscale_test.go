package autoscale

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// phase is a stretch of seconds with a constant load, and what the
// replicas must be: at its end, or (steady) after every pass of it.
type phase struct {
	secs     int
	rps      uint64  // requests started each second
	inFlight int64   // calls in flight throughout
	cpu      float64 // millicores the runtime reports
	want     uint64
	steady   bool
}

func TestScalingByLoad(t *testing.T) {
	rps := map[string]string{"com.openfaas.scale.type": "rps", "com.openfaas.scale.target": "10",
		"com.openfaas.scale.target-proportion": "0.9", "com.openfaas.scale.max": "10", "com.openfaas.scale.down.window": "30s"}
	tests := []struct {
		name      string
		labels    map[string]string
		replicas  uint64 // at deploy
		noUsage   bool   // the runtime reads no usage
		usageErr  error
		phases    []phase
		mode      string // board mode at the end
		reasonHas string // board reason at the end contains
		target    float64
	}{
		{
			name: "rps up at once", labels: rps, replicas: 1,
			// 50 rps at 9 per replica: ceil(50/9) = 6 on the first pass that has a rate.
			phases: []phase{{secs: 1, rps: 50, want: 6}, {secs: 20, rps: 50, want: 6, steady: true}},
			mode:   "rps", target: 9, reasonHas: "needs 6 replicas",
		},
		{
			name: "rps down only after the down window", labels: rps, replicas: 1,
			phases: []phase{
				{secs: 20, rps: 50, want: 6},
				// The rate over 10 s falls for 10 s after the load stops, but
				// every value of the last 30 s must allow fewer replicas first.
				{secs: 30, rps: 0, want: 6, steady: true},
				{secs: 15, rps: 0, want: 1},
			},
			mode: "rps", reasonHas: "over the last 30s",
		},
		{
			name: "rps never below min by load", replicas: 2,
			labels: map[string]string{"com.openfaas.scale.type": "rps", "com.openfaas.scale.min": "2", "com.openfaas.scale.max": "5"},
			phases: []phase{{secs: 90, rps: 0, want: 2, steady: true}},
			mode:   "rps",
		},
		{
			name: "rps capped at max", replicas: 1,
			labels: map[string]string{"com.openfaas.scale.type": "rps", "com.openfaas.scale.target": "1", "com.openfaas.scale.max": "4"},
			phases: []phase{{secs: 5, rps: 100, want: 4}},
			mode:   "rps",
		},
		{
			name: "capacity holds the most in flight over 45 s", replicas: 1,
			labels: map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "5",
				"com.openfaas.scale.target-proportion": "1", "com.openfaas.scale.down.window": "10s"},
			phases: []phase{
				{secs: 1, inFlight: 12, want: 3}, // ceil(12/5)
				{secs: 10, inFlight: 12, want: 3, steady: true},
				{secs: 45 + 9, inFlight: 0, want: 3, steady: true}, // the window, then the down window
				{secs: 3, inFlight: 0, want: 1},
			},
			mode: "capacity", target: 5,
		},
		{
			name: "cpu from the runtime's usage", replicas: 1,
			labels: map[string]string{"com.openfaas.scale.type": "cpu", "com.openfaas.scale.target": "500",
				"com.openfaas.scale.target-proportion": "1", "com.openfaas.scale.down.window": "5s"},
			phases: []phase{
				{secs: 1, cpu: 1600, want: 4},
				{secs: 5, cpu: 1600, want: 4, steady: true},
				{secs: 5, cpu: 100, want: 4, steady: true},
				{secs: 2, cpu: 100, want: 1},
			},
			mode: "cpu", target: 500,
		},
		{
			name: "cpu without usage is left alone", replicas: 1, noUsage: true,
			labels: map[string]string{"com.openfaas.scale.type": "cpu", "com.openfaas.scale.target": "500"},
			phases: []phase{{secs: 30, cpu: 5000, rps: 100, inFlight: 50, want: 1, steady: true}},
			mode:   "cpu (no usage from this runtime)", reasonHas: "does not measure usage",
		},
		{
			name: "cpu with a failing usage read is left alone", replicas: 1, usageErr: errUsage,
			labels: map[string]string{"com.openfaas.scale.type": "cpu", "com.openfaas.scale.target": "500"},
			phases: []phase{{secs: 10, cpu: 5000, want: 1, steady: true}},
			mode:   "cpu", reasonHas: "stats unavailable",
		},
		{
			name: "queue is not measured yet", replicas: 1,
			labels: map[string]string{"com.openfaas.scale.type": "queue"},
			phases: []phase{{secs: 20, rps: 100, inFlight: 100, want: 1, steady: true}},
			mode:   "queue", reasonHas: "not measured yet",
		},
		{
			name: "static min = max never moves", replicas: 2,
			labels: map[string]string{"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "2", "com.openfaas.scale.zero": "true",
				"com.openfaas.scale.zero-duration": "5s"},
			phases: []phase{{secs: 60, rps: 100, inFlight: 100, want: 2, steady: true}, {secs: 60, want: 2, steady: true}},
			mode:   "static",
		},
		{
			name: "no scaling label: replicas left to the API, as on faasd", replicas: 1,
			phases: []phase{{secs: 60, rps: 100, inFlight: 100, want: 1, steady: true}},
			mode:   "static", reasonHas: "left to the API",
		},
		{
			name: "static factor 0 never moves", replicas: 1,
			labels: map[string]string{"com.openfaas.scale.factor": "0", "com.openfaas.scale.type": "rps"},
			phases: []phase{{secs: 30, rps: 1000, want: 1, steady: true}},
			mode:   "static",
		},
		{
			name: "a function at zero without calls stays at zero", replicas: 0,
			labels: map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "1"},
			phases: []phase{{secs: 20, want: 0, steady: true}},
			mode:   "capacity",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, !tt.noUsage, Config{})
			h.usage.err = tt.usageErr
			key := h.deploy("fn", tt.labels, tt.replicas)
			h.tick() // the daemon starts
			elapsed := 0
			for i, ph := range tt.phases {
				for s := 0; s < ph.secs; s++ {
					h.second(func() {
						h.load.calls(key, ph.rps)
						h.load.inFlight(key, ph.inFlight)
						h.usage.set(ph.cpu)
					})
					elapsed++
					if got := h.replicas(key); ph.steady && got != ph.want {
						t.Fatalf("phase %d, %d s in (%d s total): replicas %d, want %d throughout", i, s+1, elapsed, got, ph.want)
					}
				}
				if got := h.replicas(key); got != ph.want {
					t.Fatalf("end of phase %d (%d s): replicas %d, want %d", i, elapsed, got, ph.want)
				}
			}
			e := h.entry(key)
			if e.Mode != tt.mode {
				t.Errorf("board mode %q, want %q", e.Mode, tt.mode)
			}
			if tt.target != 0 && e.Target != tt.target {
				t.Errorf("board target %v, want %v", e.Target, tt.target)
			}
			if !strings.Contains(e.Reason, tt.reasonHas) {
				t.Errorf("board reason %q, want it to contain %q", e.Reason, tt.reasonHas)
			}
			for _, w := range h.st.writes() {
				if w.by != store.ScaledByAutoscaler {
					t.Errorf("write %+v: want by %q", w, store.ScaledByAutoscaler)
				}
			}
		})
	}
}

// TestLegacyCertifierThroughput replays the OpenFaaS certifier's
// Test_ScaleUpAndDownFromThroughPut on a fake clock: min 1, max 2, 10 rps
// for 100 s must reach 2 replicas within a minute, and once the load stops
// the function must be back at 1 within a minute.
func TestLegacyCertifierThroughput(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("throughput", map[string]string{"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "2"}, 1)
	h.tick()
	up := -1
	for s := 1; s <= 100; s++ {
		h.second(func() { h.load.calls(key, 10) })
		if up < 0 && h.replicas(key) >= 2 {
			up = s
		}
	}
	if up < 0 || up > 60 {
		t.Fatalf("reached 2 replicas after %d s of load, want within 60 s", up)
	}
	if got := h.replicas(key); got != 2 {
		t.Fatalf("after 100 s of load: %d replicas, want 2 (max)", got)
	}
	down := -1
	for s := 1; s <= 60; s++ {
		h.second(nil)
		if down < 0 && h.replicas(key) <= 1 {
			down = s
		}
	}
	if down < 0 {
		t.Fatal("not back to 1 replica within 60 s of the load stopping")
	}
	if got := h.replicas(key); got != 1 {
		t.Fatalf("final replicas %d, want 1", got)
	}
	t.Logf("up after %d s of load, down %d s after it stopped", up, down)
	e := h.entry(key)
	if e.Mode != "legacy" || e.Target != 5 || e.LastDecision != DirDown || !strings.Contains(e.Reason, "resolved") {
		t.Errorf("board %+v", e)
	}
}

func TestLegacySteps(t *testing.T) {
	// factor 20 of max 10: steps of 2, every LegacyRepeat while firing.
	h := newHarness(t, true, Config{})
	key := h.deploy("steps", map[string]string{"com.openfaas.scale.max": "10", "com.openfaas.scale.factor": "20"}, 1)
	h.tick()
	var got []uint64
	for s := 1; s <= 40; s++ {
		h.second(func() { h.load.calls(key, 20) })
		if r := h.replicas(key); len(got) == 0 || got[len(got)-1] != r {
			got = append(got, r)
		}
	}
	// pending once the 10 s rate passes 5 (after 3 s), firing 5 s later,
	// then a step every 10 s.
	if want := []uint64{1, 3, 5, 7, 9}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replicas went %v, want %v", got, want)
	}
	// Above the threshold for less than for: 5s: the alert never fires.
	// 5 rps for 9 s, then 10 in one second: the 10 s rate is 5.5 for one
	// pass only.
	h2 := newHarness(t, true, Config{})
	key2 := h2.deploy("blip", map[string]string{"com.openfaas.scale.max": "5"}, 1)
	h2.tick()
	for s := 1; s <= 60; s++ {
		var n uint64
		switch {
		case s > 20 && s < 30:
			n = 5
		case s == 30:
			n = 10
		}
		h2.second(func() { h2.load.calls(key2, n) })
		if s == 30 && !h2.a.fns[key2].pendingSince.Equal(t0.Add(30*time.Second)) {
			t.Errorf("alert not pending at 5.5 rps")
		}
	}
	if w := h2.st.writes(); len(w) != 0 {
		t.Errorf("writes %v: a blip shorter than for: 5s must not fire", w)
	}
}

func TestIdler(t *testing.T) {
	zero := map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "1m"}
	tests := []struct {
		name   string
		labels map[string]string
		calls  map[int]uint64 // second → requests started
		zeroAt int            // second the function reaches zero; 0 = never within 150 s
	}{
		{name: "never called: idle since start", labels: zero, zeroAt: 60},
		{name: "also when scaled by load", labels: map[string]string{"com.openfaas.scale.zero": "true",
			"com.openfaas.scale.zero-duration": "1m", "com.openfaas.scale.type": "capacity"}, calls: map[int]uint64{10: 3}, zeroAt: 70},
		{name: "a call restarts the timer", labels: zero, calls: map[int]uint64{30: 1}, zeroAt: 90},
		{name: "not opted in", labels: map[string]string{"com.openfaas.scale.zero-duration": "1m"}},
		{name: "opted out", labels: map[string]string{"com.openfaas.scale.zero": "false"}},
		{name: "static is never moved", labels: map[string]string{"com.openfaas.scale.zero": "true",
			"com.openfaas.scale.zero-duration": "1m", "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true, Config{})
			key := h.deploy("idle", tt.labels, 1)
			h.tick()
			reached := 0
			for s := 1; s <= 150; s++ {
				h.second(func() { h.load.calls(key, tt.calls[s]) })
				if reached == 0 && h.replicas(key) == 0 {
					reached = s
				}
			}
			if reached != tt.zeroAt {
				t.Fatalf("reached zero at %d s, want %d (0 = never)", reached, tt.zeroAt)
			}
			if reached == 0 {
				return
			}
			if by := h.scaledBy(key); by != store.ScaledByIdler {
				t.Errorf("scaled by %q, want %q", by, store.ScaledByIdler)
			}
			e := h.entry(key)
			if e.LastDecision != DirZero || !e.ZeroAt.IsZero() || !e.Zero {
				t.Errorf("board %+v", e)
			}
		})
	}
}

func TestIdlerBoardTimers(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("timers", map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "2m"}, 1)
	h.tick()
	h.second(nil)
	e := h.entry(key)
	if !e.IdleSince.Equal(t0) || !e.ZeroAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("idle since %v, zero at %v; want %v and 2m later", e.IdleSince, e.ZeroAt, t0)
	}
	h.second(func() { h.load.inFlight(key, 1) })
	if e := h.entry(key); !e.IdleSince.IsZero() || !e.ZeroAt.IsZero() {
		t.Errorf("while a call runs: idle since %v, zero at %v; want neither", e.IdleSince, e.ZeroAt)
	}
	h.second(func() { h.load.inFlight(key, 0) })
	if e := h.entry(key); !e.IdleSince.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("idle since %v, want the last pass that saw the call", e.IdleSince)
	}
}

func TestWakeSingleflight(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("sleepy", map[string]string{"com.openfaas.scale.min": "3", "com.openfaas.scale.max": "5"}, 0)
	gate := make(chan struct{})
	h.st.mu.Lock()
	h.st.gate = gate // hold the first wake inside its read while the others arrive
	h.st.mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.a.Wake(key) }()
	}
	wg.Wait() // Wake never blocks, even with the store held
	close(gate)
	h.waitWakes()
	if w := h.st.writes(); len(w) != 1 || w[0] != (scaleCall{key, 3, store.ScaledByWake}) {
		t.Fatalf("writes %v, want one scale to 3 by wake", w)
	}
	if got := testutil.ToFloat64(h.a.m.decisions.WithLabelValues(DirWake, causeCall)); got != 1 {
		t.Errorf("wake decisions %v, want 1", got)
	}
	// Replicas > 0 but none ready (starting): nothing to do.
	h.a.Wake(key)
	h.waitWakes()
	if w := h.st.writes(); len(w) != 1 {
		t.Errorf("writes %v after waking a function that has replicas", w)
	}
	// Unknown function: nothing.
	h.a.Wake("openfaas-fn/nobody")
	h.waitWakes()
	if w := h.st.writes(); len(w) != 1 {
		t.Errorf("writes %v after waking an unknown function", w)
	}
}

func TestWakeResetsIdle(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("nap", map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "1m",
		"com.openfaas.scale.type": "rps", "com.openfaas.scale.down.window": "10s"}, 1)
	h.tick()
	for s := 0; s < 60; s++ {
		h.second(nil)
	}
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d after 60 s idle, want 0", got)
	}
	h.second(nil)
	h.a.Wake(key) // a call: the proxy found no ready replica
	h.waitWakes()
	if got := h.replicas(key); got != 1 {
		t.Fatalf("replicas %d after wake, want 1", got)
	}
	if e := h.entry(key); e.LastDecision != DirWake {
		t.Errorf("board decision %q, want wake", e.LastDecision)
	}
	// The call itself is counted by the proxy; it ends within the second.
	h.load.calls(key, 1)
	for s := 1; s < 60; s++ {
		h.second(nil)
		if got := h.replicas(key); got != 1 {
			t.Fatalf("%d s after the wake: replicas %d, want 1 until zero-duration passes", s, got)
		}
	}
	for s := 0; s < 2; s++ {
		h.second(nil)
	}
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d a minute after the wake, want 0 again", got)
	}
}

// TestAPIWakeRestartsIdle: a function scaled up from zero by the API gets
// a whole zero-duration, though it was idle long before.
func TestAPIScaleFromZeroRestartsIdle(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("api", map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "30s"}, 0)
	h.tick()
	for s := 0; s < 120; s++ {
		h.second(nil)
	}
	if _, err := h.st.Scale(context.Background(), key, 1); err != nil {
		t.Fatal(err)
	}
	for s := 1; s < 30; s++ {
		h.second(nil)
		if got := h.replicas(key); got != 1 {
			t.Fatalf("%d s after the API scaled up: replicas %d", s, got)
		}
	}
	h.second(nil)
	h.second(nil)
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d, want 0 after zero-duration", got)
	}
}

// TestIdlerYieldsToWake: a zero decided just before a call arrived is
// dropped, not written over the wake-up.
func TestIdlerYieldsToWake(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("race", map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "10s"}, 1)
	h.tick()
	h.clk.Add(11 * time.Second)
	f, err := h.st.Memory.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := h.a.evaluate(context.Background(), f, h.clk.Now())
	if !ok || w.direction != DirZero {
		t.Fatalf("decision %+v %v, want zero", w, ok)
	}
	h.a.Wake(key) // a call arrives; its wake finds replicas 1 and does nothing
	h.waitWakes()
	if h.a.apply(context.Background(), w) {
		t.Fatal("the idler's zero was applied after a call came in")
	}
	if got := h.replicas(key); got != 1 {
		t.Fatalf("replicas %d, want 1", got)
	}
	// A decision based on replicas that changed meanwhile is dropped too.
	w2 := write{key: key, from: 3, to: 4, by: store.ScaledByAutoscaler, direction: DirUp, cause: "rps"}
	if h.a.apply(context.Background(), w2) || h.replicas(key) != 1 {
		t.Fatal("a decision from 3 replicas was applied to a function at 1")
	}
}

func TestInvalidLabelsSkippedAndLoggedOnce(t *testing.T) {
	h := newHarness(t, true, Config{})
	// The API refuses these; the store takes anything.
	key := h.deploy("bad", map[string]string{"com.openfaas.scale.min": "lots", "com.openfaas.scale.zero": "true"}, 1)
	for s := 0; s < 30; s++ {
		h.second(func() { h.load.calls(key, 100) })
	}
	if w := h.st.writes(); len(w) != 0 {
		t.Errorf("writes %v for a function with invalid labels", w)
	}
	warns := 0
	for _, e := range h.logs.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "invalid scaling labels") {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("%d warnings, want 1", warns)
	}
	e := h.entry(key)
	if e.Mode != modeInvalid || !strings.Contains(e.Reason, "com.openfaas.scale.min") {
		t.Errorf("board %+v", e)
	}
	// Waking still gives it a replica.
	if _, err := h.st.Scale(context.Background(), key, 0); err != nil {
		t.Fatal(err)
	}
	h.a.Wake(key)
	h.waitWakes()
	if got := h.replicas(key); got != 1 {
		t.Errorf("replicas %d after waking, want 1", got)
	}
}

func TestDeletedFunctionsLeaveTheBoard(t *testing.T) {
	h := newHarness(t, true, Config{})
	keep := h.deploy("keep", map[string]string{"com.openfaas.scale.type": "rps"}, 1)
	gone := h.deploy("gone", map[string]string{"com.openfaas.scale.type": "capacity"}, 1)
	h.tick()
	if n := len(h.board.List()); n != 2 {
		t.Fatalf("%d board entries, want 2", n)
	}
	if err := h.st.Delete(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	h.second(nil)
	if _, ok := h.board.Get(gone); ok {
		t.Error("deleted function still on the board")
	}
	if _, ok := h.board.Get(keep); !ok {
		t.Error("kept function left the board")
	}
	exp := `
# HELP gateway_service_target_load Target load per replica of a function, by scaling type (OpenFaaS gateway name).
# TYPE gateway_service_target_load gauge
gateway_service_target_load{function_name="keep.openfaas-fn",scaling_type="rps"} 50
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(exp), "gateway_service_target_load"); err != nil {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, true, Config{})
	h.deploy("legacy", map[string]string{"com.openfaas.scale.max": "3"}, 1)
	h.deploy("unlabelled", nil, 1)
	h.deploy("static", map[string]string{"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "2"}, 2)
	capKey := h.deploy("cap", map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "2"}, 1)
	h.tick()
	h.second(func() { h.load.inFlight(capKey, 4) }) // ceil(4 / 1.8) = 3
	if got := h.replicas(capKey); got != 3 {
		t.Fatalf("replicas %d, want 3", got)
	}
	exp := `
# HELP dockerfaasd_autoscaler_decisions_total Replica changes the autoscaler wrote, by direction (up, down, zero, wake) and reason (the scaling type, idle, call).
# TYPE dockerfaasd_autoscaler_decisions_total counter
dockerfaasd_autoscaler_decisions_total{direction="down",reason="capacity"} 0
dockerfaasd_autoscaler_decisions_total{direction="down",reason="cpu"} 0
dockerfaasd_autoscaler_decisions_total{direction="down",reason="legacy"} 0
dockerfaasd_autoscaler_decisions_total{direction="down",reason="rps"} 0
dockerfaasd_autoscaler_decisions_total{direction="up",reason="capacity"} 1
dockerfaasd_autoscaler_decisions_total{direction="up",reason="cpu"} 0
dockerfaasd_autoscaler_decisions_total{direction="up",reason="legacy"} 0
dockerfaasd_autoscaler_decisions_total{direction="up",reason="rps"} 0
dockerfaasd_autoscaler_decisions_total{direction="wake",reason="call"} 0
dockerfaasd_autoscaler_decisions_total{direction="zero",reason="idle"} 0
# HELP gateway_service_target_load Target load per replica of a function, by scaling type (OpenFaaS gateway name).
# TYPE gateway_service_target_load gauge
gateway_service_target_load{function_name="cap.openfaas-fn",scaling_type="capacity"} 2
gateway_service_target_load{function_name="legacy.openfaas-fn",scaling_type="legacy"} 5
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(exp), "dockerfaasd_autoscaler_decisions_total", "gateway_service_target_load"); err != nil {
		t.Error(err)
	}
	up := 0
	for _, e := range h.logs.AllEntries() {
		if e.Level == logrus.InfoLevel && e.Message == "autoscaler: scaled up" {
			up++
			if e.Data["function"] != capKey || e.Data["from"] != uint64(1) || e.Data["to"] != uint64(3) || e.Data["reason"] == "" {
				t.Errorf("log fields %v", e.Data)
			}
		}
	}
	if up != 1 {
		t.Errorf("%d info lines for one decision", up)
	}
	// Registering twice fails at New, not with a panic.
	if _, err := New(Config{Registerer: h.reg}, h.st, h.load, nil, nil, h.board); err == nil {
		t.Error("New with metrics already registered: want an error")
	}
}

func TestNewRequiresSources(t *testing.T) {
	b := status.NewScalingBoard()
	st := store.NewMemory()
	l := &fakeLoad{}
	if _, err := New(Config{}, nil, l, nil, nil, b); err == nil {
		t.Error("no store: want an error")
	}
	if _, err := New(Config{}, st, nil, nil, nil, b); err == nil {
		t.Error("no load reader: want an error")
	}
	if _, err := New(Config{}, st, l, nil, nil, nil); err == nil {
		t.Error("no board: want an error")
	}
}

func TestRun(t *testing.T) {
	st := store.NewMemory()
	board := status.NewScalingBoard()
	a, err := New(Config{Interval: 5 * time.Millisecond, Log: quiet()}, st, &fakeLoad{}, nil, nil, board)
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Create(context.Background(), types.FunctionDeployment{Service: "run", Image: "x"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := board.Get(f.Key()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run published nothing within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	a.Wake(f.Key())
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	a.Wake(f.Key()) // after Run: starts nothing
	a.mu.Lock()
	n := len(a.waking)
	a.mu.Unlock()
	if n != 0 {
		t.Errorf("%d wakes running after Run returned", n)
	}
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// TestCallsAtZeroWake: calls that reach a function at zero without the
// proxy waking it (a replica still draining after the scale to zero served
// them) wake it like a call the proxy holds; load then scales it as usual.
func TestCallsAtZeroWake(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("late", map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "1"}, 0)
	h.tick()
	h.second(nil)
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d without a call, want 0", got)
	}
	h.second(func() { h.load.calls(key, 3) })
	h.waitWakes()
	if got, by := h.replicas(key), h.scaledBy(key); got != 1 || by != store.ScaledByWake {
		t.Fatalf("after calls at zero: replicas %d by %q, want 1 by %q", got, by, store.ScaledByWake)
	}
	for s := 0; s < 5; s++ {
		h.second(func() { h.load.calls(key, 10); h.load.inFlight(key, 10) })
	}
	if got, by := h.replicas(key), h.scaledBy(key); got != 12 || by != store.ScaledByAutoscaler {
		t.Fatalf("under load after the wake: replicas %d by %q, want 12 by the autoscaler", got, by)
	}
}

// TestCallsBeforeAScaleToZeroDoNotWake: calls counted in the pass right
// after a scale to zero may have come before it; they must not undo it.
func TestCallsBeforeAScaleToZeroDoNotWake(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("done", map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "1"}, 1)
	h.tick()
	h.second(nil)
	h.load.calls(key, 1) // the last call, then the API scales to zero before the next pass
	if _, err := h.st.ScaleBy(context.Background(), key, 0, store.ScaledByAPI); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 5; s++ {
		h.second(nil)
	}
	h.waitWakes()
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d: a call from before the scale to zero woke it", got)
	}
}

// TestCallsAfterAScaleToZeroWake: calls seen in a later pass came after
// the scale to zero (a draining replica served them): they wake it.
func TestCallsAfterAScaleToZeroWake(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("late2", map[string]string{"com.openfaas.scale.type": "capacity", "com.openfaas.scale.target": "1"}, 1)
	h.tick()
	if _, err := h.st.ScaleBy(context.Background(), key, 0, store.ScaledByAPI); err != nil {
		t.Fatal(err)
	}
	h.second(nil)
	h.second(func() { h.load.calls(key, 1) })
	h.waitWakes()
	if got, by := h.replicas(key), h.scaledBy(key); got != 1 || by != store.ScaledByWake {
		t.Fatalf("replicas %d by %q, want 1 by %q", got, by, store.ScaledByWake)
	}
}

// TestIdleStartsOnceReady: a function whose replicas are still starting
// (a slow deploy, a crash loop) is not idle: the idler counts from the
// moment a replica is ready.
func TestIdleStartsOnceReady(t *testing.T) {
	h := newHarness(t, true, Config{})
	key := h.deploy("slow", map[string]string{"com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "10s"}, 1)
	h.setReady(key, 0)
	h.tick()
	for s := 0; s < 30; s++ {
		h.second(nil)
		if got := h.replicas(key); got != 1 {
			t.Fatalf("%d s without a ready replica: replicas %d, want 1", s+1, got)
		}
	}
	h.setReady(key, 1)
	for s := 0; s < 9; s++ {
		h.second(nil)
	}
	if got := h.replicas(key); got != 1 {
		t.Fatalf("replicas %d 9 s after the replica became ready, want 1", got)
	}
	for s := 0; s < 3; s++ {
		h.second(nil)
	}
	if got := h.replicas(key); got != 0 {
		t.Fatalf("replicas %d past zero-duration after ready, want 0", got)
	}
}
