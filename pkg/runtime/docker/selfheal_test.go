package docker

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockerfaasd/dockerfaasd/internal/promtest"
	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// crashAll marks every running container of the fake engine as exited.
func (f *fixture) crashAll() {
	list, _ := f.eng.ListContainers(context.Background(), nil)
	for _, c := range list {
		if c.State == engine.StateRunning {
			f.eng.SetState(c.ID, engine.StateExited)
		}
	}
}

// TestNewSpecSkipsCrashBackoff checks that a crash backoff earned by one spec
// does not delay the replicas of the next one (the fix a user deploys),
// while a mere scale of the crashing spec keeps waiting.
func TestNewSpecSkipsCrashBackoff(t *testing.T) {
	tests := []struct {
		name        string
		change      func(f *fixture, key string) error
		wantCreate  bool
		wantRestart int
	}{
		{"new spec starts at once", func(f *fixture, key string) error {
			_, err := f.st.Update(context.Background(), deployment("fn", func(d *types.FunctionDeployment) {
				d.EnvVars = map[string]string{"FIXED": "1"}
			}), nil)
			return err
		}, true, 0},
		{"scale keeps the backoff", func(f *fixture, key string) error {
			_, err := f.st.Scale(context.Background(), key, 2)
			return err
		}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t) // CrashBackoff is an hour here
			key := f.deploy(deployment("fn"), 1)
			f.reconcile(key, 5)
			f.crashAll() // first exit: replaced at once
			f.reconcile(key, 1)
			f.crashAll() // second exit: an hour's backoff
			if _, err := f.c.Reconcile(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.board.Get(key); st.Reason != "CrashLoopBackOff" {
				t.Fatalf("before the change: status %+v, want CrashLoopBackOff", st)
			}

			if err := tt.change(f, key); err != nil {
				t.Fatal(err)
			}
			f.eng.ResetActions()
			if _, err := f.c.Reconcile(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			created := slices.ContainsFunc(f.eng.Actions(), func(a string) bool { return strings.HasPrefix(a, "create") })
			if created != tt.wantCreate {
				t.Fatalf("created a replica = %v, want %v; actions %v", created, tt.wantCreate, f.eng.Actions())
			}
			st, _ := f.board.Get(key)
			if st.Restarts != tt.wantRestart {
				t.Fatalf("restarts = %d, want %d (status %+v)", st.Restarts, tt.wantRestart, st)
			}
			if tt.wantCreate && st.Reason == "CrashLoopBackOff" {
				t.Fatalf("the new spec still shows the old spec's crash loop: %+v", st)
			}
		})
	}
}

// TestStatusListsReplicas checks the per-container view /debug/reconcile
// shows: every running replica with its short ID and state, current spec first.
func TestStatusListsReplicas(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 2)
	f.reconcile(key, 5)
	st, _ := f.board.Get(key)
	if len(st.Replicas) != 2 {
		t.Fatalf("replicas in status = %+v, want 2", st.Replicas)
	}
	for i, r := range st.Replicas {
		if r.State != status.ReplicaReady || !r.CurrentSpec || r.Slot != i || len(r.ID) > 12 || r.Name == "" {
			t.Errorf("replica %d = %+v, want ready, current spec, slot %d, short ID, a name", i, r, i)
		}
	}

	// A not-ready replica of a new spec shows as starting next to the old ones.
	f.prober.setAllDown(true)
	if _, err := f.st.Update(context.Background(), deployment("fn", func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"V": "2"}
	}), nil); err != nil {
		t.Fatal(err)
	}
	states := func() []string {
		t.Helper()
		if _, err := f.c.Reconcile(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		st, _ := f.board.Get(key)
		var out []string
		for _, r := range st.Replicas {
			out = append(out, r.State+"/"+map[bool]string{true: "new", false: "old"}[r.CurrentSpec])
		}
		return out
	}
	// The old replicas are not ready either (the prober says all are down),
	// so the roll drains them at once; the new ones show from the next round.
	if got, want := states(), []string{"draining/old", "draining/old"}; !slices.Equal(got, want) {
		t.Fatalf("first round after the update: replica states = %v, want %v", got, want)
	}
	if got := states(); !slices.Equal(got[:2], []string{"starting/new", "starting/new"}) {
		t.Fatalf("second round: replica states = %v, want two starting new ones first", got)
	}
}

// TestControllerMetrics checks that every controller and runtime family is
// exported from the first scrape, and that reconciles and a healed drift
// are counted. (dockerfaasd_queue_depth, registered by the controller's Run,
// is checked by TestControllerMetricsAtZero in pkg/controller.)
func TestControllerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t)
	cfg := f.rt.cfg
	cfg.Registerer = reg
	f.wire(cfg, f.eng, controller.NewMetrics(reg))

	got := promtest.Gather(t, reg)
	for _, name := range []string{
		"dockerfaasd_reconcile_total{result=success}",
		"dockerfaasd_reconcile_total{result=error}",
		"dockerfaasd_reconcile_duration_seconds",
		"dockerfaasd_drift_corrections_total{kind=replica_missing}",
		"dockerfaasd_docker_errors_total{op=create}",
		"dockerfaasd_reconcile_panics_total",
	} {
		if v, ok := got[name]; !ok || v != 0 {
			t.Errorf("before any work: %s = %v (present %v), want 0", name, v, ok)
		}
	}

	key := f.deploy(deployment("fn"), 2)
	f.c.Enqueue(key)
	if got := f.c.QueueLen(); got != 1 {
		t.Errorf("queue depth with one key waiting = %v, want 1", got)
	}
	// Let the worker loop converge the function and record "converged".
	for i := 0; i < 10; i++ {
		if _, ok := f.board.Get(key); ok && f.c.QueueLen() == 0 {
			if st, _ := f.board.Get(key); st.LastResult == "converged" {
				break
			}
			f.c.Enqueue(key)
		}
		f.c.Step(context.Background())
	}
	if st, _ := f.board.Get(key); st.LastResult != "converged" {
		t.Fatalf("not converged: %+v", st)
	}
	list, _ := f.eng.ListContainers(context.Background(), nil)
	_ = f.eng.RemoveContainer(context.Background(), list[0].ID)
	f.c.Enqueue(key)
	f.c.Step(context.Background())

	got = promtest.Gather(t, reg)
	if got["dockerfaasd_drift_corrections_total{kind=replica_missing}"] != 1 {
		t.Errorf("drift after removing a replica: %v, want replica_missing 1", got)
	}
	if got["dockerfaasd_reconcile_total{result=success}"]+got["dockerfaasd_reconcile_total{result=requeue}"] < 2 {
		t.Errorf("reconciles not counted: %v", got)
	}
	if got["dockerfaasd_reconcile_duration_seconds"] < 2 {
		t.Errorf("reconcile durations observed: %v, want ≥ 2", got["dockerfaasd_reconcile_duration_seconds"])
	}
}

// TestMetricLabelsAreKnown keeps the zero-initialised label lists in step
// with the values the package uses, so a new Docker operation (dockerOps in
// metrics.go) or drift kind (runtime.DriftKinds, which the controller
// creates at zero) is exported at 0 from the start too.
func TestMetricLabelsAreKnown(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	uses := []struct {
		re    *regexp.Regexp
		known []string
		list  string
	}{
		{regexp.MustCompile(`\bdockerError\("([^"]+)"\)`), dockerOps, "dockerOps in metrics.go"},
		// A drift kind must be one of the constants, never a literal.
		{regexp.MustCompile(`\bAddDrift\(("[^"]*")\)`), nil, "nothing: use a runtime.Drift constant"},
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			for _, m := range u.re.FindAllStringSubmatch(string(src), -1) {
				if !slices.Contains(u.known, m[1]) {
					t.Errorf("%s uses %s, which is missing from %s", file, m[1], u.list)
				}
			}
		}
	}
	if len(dockerOps) == 0 {
		t.Fatal("no Docker operations listed; the test proves nothing")
	}
}

// fakeInFlight is a proxy's in-flight view with counts set by the test.
type fakeInFlight struct {
	mu sync.Mutex
	n  map[string]int64
}

func (f *fakeInFlight) InFlight(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[id]
}

func (f *fakeInFlight) set(id string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[id] = n
}

// drainedDuringCalls deploys two replicas that both serve a long call,
// scales the function down to one and returns the replica that drained.
func drainedDuringCalls(t *testing.T, drainTimeout time.Duration) (f *fixture, calls *fakeInFlight, key, drained string) {
	t.Helper()
	f = newFixture(t)
	calls = &fakeInFlight{n: map[string]int64{}}
	cfg := f.rt.cfg
	cfg.DrainTimeout = drainTimeout
	cfg.Load = calls
	f.wire(cfg, f.eng, nil)

	key = f.deploy(deployment("fn"), 2)
	f.reconcile(key, 5)
	list, _ := f.eng.ListContainers(context.Background(), nil)
	for _, ct := range list {
		calls.set(ct.ID, 1) // both replicas serve a long call
	}
	if _, err := f.st.Scale(context.Background(), key, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Reconcile(context.Background(), key); err != nil { // drains slot 1
		t.Fatal(err)
	}
	for _, ct := range list {
		if f.rt.isDraining(ct.ID) {
			drained = ct.ID
		}
	}
	if drained == "" {
		t.Fatal("no replica drained by the scale down")
	}
	return f, calls, key, drained
}

// TestDrainWaitsForInFlightCalls checks that a drained replica outlives its
// grace period while the proxy still serves calls on it, up to DrainTimeout.
func TestDrainWaitsForInFlightCalls(t *testing.T) {
	tests := []struct {
		name         string
		drainTimeout time.Duration
		callsEnd     bool
		wantStopped  bool
	}{
		{"kept while a call runs", time.Hour, false, false},
		{"stopped once the call ended", time.Hour, true, true},
		{"stopped after the drain timeout", time.Millisecond, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, calls, key, drained := drainedDuringCalls(t, tt.drainTimeout)
			if tt.callsEnd {
				calls.set(drained, 0)
			}
			time.Sleep(5 * time.Millisecond) // past DrainGrace (1 ms here) and the short DrainTimeout
			for i := 0; i < 3; i++ {
				if _, err := f.c.Reconcile(context.Background(), key); err != nil {
					t.Fatal(err)
				}
			}
			stopped := len(f.eng.Names("")) == 1
			if stopped != tt.wantStopped {
				t.Fatalf("drained replica stopped = %v, want %v; containers %v", stopped, tt.wantStopped, f.eng.Names(""))
			}
			if st, _ := f.board.Get(key); st.ReadyReplicas != 1 {
				t.Errorf("ready replicas = %d, want 1 (the drained one serves no new call)", st.ReadyReplicas)
			}
		})
	}
}

// TestScaleUpWhileDrainingTakesTheReplicaBack: a scale up (or a wake) that
// comes while a scale down still drains takes the draining replica back
// into service: it keeps its calls, serves new ones at once, and nothing
// is created beside it. (Before, a new replica was started in its slot,
// under its name, and creating it removed the draining one by force.)
func TestScaleUpWhileDrainingTakesTheReplicaBack(t *testing.T) {
	f, _, key, drained := drainedDuringCalls(t, time.Hour)

	if _, err := f.st.Scale(context.Background(), key, 2); err != nil {
		t.Fatal(err)
	}
	f.eng.ResetActions()
	for i := 0; i < 3; i++ {
		if _, err := f.c.Reconcile(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if ct := f.container(drained); ct.State != engine.StateRunning || f.rt.isDraining(drained) {
		t.Fatalf("the drained replica is %s (draining %v), want it running and back in service; actions %v",
			ct.State, f.rt.isDraining(drained), f.eng.Actions())
	}
	for _, a := range f.eng.Actions() {
		if strings.HasPrefix(a, "create") || strings.HasPrefix(a, "remove") {
			t.Fatalf("action %q: taking a draining replica back needs no container made or removed", a)
		}
	}
	if got := f.running(""); len(got) != 2 {
		t.Fatalf("running = %v, want the 2 replicas wanted", got)
	}
	eps, _ := f.cache.Lookup(key)
	if len(eps) != 2 || !slices.ContainsFunc(eps, func(e faas.Endpoint) bool { return e.Replica == drained }) {
		t.Fatalf("endpoints = %v, want 2 with the replica taken back", eps)
	}
}
