package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

func TestReconcileCreatesNetworkReplicasAndPublishes(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("hello", func(d *types.FunctionDeployment) {
		d.EnvProcess = "cat"
		d.EnvVars = map[string]string{"A": "1"}
		d.Limits = &types.FunctionResources{Memory: "128Mi", CPU: "500m"}
		d.Requests = &types.FunctionResources{Memory: "64Mi", CPU: "100m"}
		d.ReadOnlyRootFilesystem = true
		(*d.Labels)["team"] = "blue"
		(*d.Annotations)["topic"] = "x"
	}), 2)

	if res := f.reconcile(key, 5); res.RequeueAfter != 0 {
		t.Fatalf("not converged: %+v", res)
	}
	if got := f.eng.NetworkNames(); !slices.Equal(got, []string{"t-hello.openfaas-fn"}) {
		t.Fatalf("networks = %v", got)
	}
	names := f.running("t-hello.openfaas-fn-")
	if len(names) != 2 {
		t.Fatalf("running = %v, want 2 replicas", names)
	}
	eps, ok := f.cache.Lookup(key)
	if !ok || len(eps) != 2 {
		t.Fatalf("endpoints = %v, %v; want 2", eps, ok)
	}
	st, _ := f.board.Get(key)
	if st.ReadyReplicas != 2 || st.DesiredReplicas != 2 || st.ObservedGeneration != 1 || st.Reason != "" {
		t.Fatalf("status = %+v", st)
	}

	// The container is built from the spec.
	list, _ := f.eng.ListContainers(context.Background(), nil)
	spec, _ := f.eng.Spec(list[0].ID)
	wantEnv := []string{"A=1", "fprocess=cat"}
	if !slices.Equal(spec.Env, wantEnv) {
		t.Errorf("env = %v, want %v", spec.Env, wantEnv)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"memory", spec.Memory, int64(128 << 20)},
		{"reservation", spec.MemoryReservation, int64(64 << 20)},
		{"nanocpus", spec.NanoCPUs, int64(500_000_000)},
		{"shares", spec.CPUShares, int64(102)},
		{"readonly", spec.ReadOnlyRootfs, true},
		{"tmpfs", spec.Tmpfs["/tmp"] != "", true},
		{"user label", spec.Labels["team"], "blue"},
		{"annotation", spec.Labels["com.openfaas.annotations.topic"], "x"},
		{"managed", spec.Labels[engine.LabelManaged], "true"},
		{"instance", spec.Labels[engine.LabelInstance], "t"},
		{"function", spec.Labels[engine.LabelFunction], "hello"},
		{"namespace", spec.Labels[engine.LabelNamespace], "openfaas-fn"},
		{"network", spec.Network, "t-hello.openfaas-fn"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestReconcileIsIdempotentAndAdopts(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("hello"), 3)
	f.reconcile(key, 5)
	before := f.eng.Names("")

	// A second runtime and controller over the same Docker state (a
	// restarted daemon) must adopt the replicas: no create, stop or remove.
	f.eng.ResetActions()
	f2 := f.restarted(f.eng)
	if res := f2.reconcile(key, 3); res.RequeueAfter != 0 {
		t.Fatalf("adoption did not converge: %+v", res)
	}
	if acts := f.eng.Actions(); len(acts) != 0 {
		t.Fatalf("adoption changed Docker: %v", acts)
	}
	if got := f.eng.Names(""); !slices.Equal(got, before) {
		t.Fatalf("containers changed: %v → %v", before, got)
	}
	if eps, _ := f2.cache.Lookup(key); len(eps) != 3 {
		t.Fatalf("adopted endpoints = %d, want 3", len(eps))
	}
}

func TestReconcileScale(t *testing.T) {
	tests := []struct {
		name     string
		from, to uint64
	}{
		{"up 1→3", 1, 3},
		{"down 3→1", 3, 1},
		{"to zero", 2, 0},
		{"from zero", 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.deploy(deployment("fn"), tt.from)
			f.reconcile(key, 5)
			if _, err := f.st.Scale(context.Background(), key, tt.to); err != nil {
				t.Fatal(err)
			}
			if res := f.reconcile(key, 10); res.RequeueAfter != 0 {
				t.Fatalf("not converged: %+v", res)
			}
			if got := len(f.running("t-fn.")); got != int(tt.to) {
				t.Fatalf("running = %d, want %d", got, tt.to)
			}
			if got := len(f.eng.Names("")); got != int(tt.to) {
				t.Fatalf("containers left = %d, want %d (drained ones must be removed)", got, tt.to)
			}
			eps, known := f.cache.Lookup(key)
			if !known || len(eps) != int(tt.to) {
				t.Fatalf("endpoints = %d known=%v, want %d", len(eps), known, tt.to)
			}
		})
	}
}

func TestRollingUpdateKeepsCapacity(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn", func(d *types.FunctionDeployment) { d.EnvVars = map[string]string{"V": "1"} }), 2)
	f.reconcile(key, 5)
	oldNames := f.running("t-fn.")

	if _, err := f.st.Update(context.Background(), deployment("fn", func(d *types.FunctionDeployment) { d.EnvVars = map[string]string{"V": "2"} }), nil); err != nil {
		t.Fatal(err)
	}
	// New replicas are not ready yet: nothing old may go.
	f.prober.setAllDown(false)
	newHash := controller.SpecHash(deployment("fn", func(d *types.FunctionDeployment) { d.EnvVars = map[string]string{"V": "2"} }))
	markNew := func(ready bool) {
		list, _ := f.eng.ListContainers(context.Background(), nil)
		f.prober.mu.Lock()
		defer f.prober.mu.Unlock()
		for _, c := range list {
			if c.Labels[engine.LabelSpecHash] == newHash {
				for _, ip := range c.Networks {
					f.prober.notReady[ip+":8080"] = !ready
				}
			}
		}
	}
	if _, err := f.c.Reconcile(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	markNew(false)
	for i := 0; i < 3; i++ {
		if _, err := f.c.Reconcile(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		eps, _ := f.cache.Lookup(key)
		if len(eps) < 2 {
			t.Fatalf("capacity dropped to %d during the roll", len(eps))
		}
	}
	for _, n := range oldNames {
		if !slices.Contains(f.running("t-fn."), n) {
			t.Fatalf("old replica %s stopped before new ones were ready", n)
		}
	}
	markNew(true)
	if res := f.reconcile(key, 10); res.RequeueAfter != 0 {
		t.Fatalf("roll did not converge: %+v", res)
	}
	got := f.running("t-fn.")
	if len(got) != 2 {
		t.Fatalf("running after roll = %v", got)
	}
	for _, n := range got {
		if !strings.Contains(n, newHash[:8]) {
			t.Fatalf("old replica %s survived the roll", n)
		}
	}
}

func TestDeleteTearsDownEverything(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 2)
	f.reconcile(key, 5)
	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	f.reconcile(key, 3)
	if n := f.eng.Names(""); len(n) != 0 {
		t.Fatalf("containers left: %v", n)
	}
	if n := f.eng.NetworkNames(); len(n) != 0 {
		t.Fatalf("networks left: %v", n)
	}
	if _, known := f.cache.Lookup(key); known {
		t.Fatal("deleted function still routable")
	}
	if _, ok := f.board.Get(key); ok {
		t.Fatal("deleted function still has a status")
	}
}

func TestDriftIsHealed(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(f *fixture, id string)
		kind   string
	}{
		{"container removed", func(f *fixture, id string) { _ = f.eng.RemoveContainer(context.Background(), id) }, "replica_missing"},
		{"container exited", func(f *fixture, id string) { f.eng.SetState(id, engine.StateExited) }, "replica_exited"},
		{"disconnected", func(f *fixture, id string) { f.eng.Disconnect(id, "t-fn.openfaas-fn") }, "network_disconnected"},
		{"network removed", func(f *fixture, id string) { f.eng.RemoveNetworkBehindBack("t-fn.openfaas-fn") }, "network_missing"},
		{"container paused", func(f *fixture, id string) { _ = f.eng.PauseContainer(context.Background(), id) }, "replica_paused"},
		{"extra replica", func(f *fixture, id string) {
			list, _ := f.eng.ListContainers(context.Background(), nil)
			extra := list[0]
			extra.ID, extra.Name = "extra", "intruder"
			extra.Labels[engine.LabelSlot] = "9"
			f.eng.AddContainer(extra)
		}, "extra_replica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.deploy(deployment("fn"), 2)
			f.reconcile(key, 5) // the runtime remembers that it converged
			list, _ := f.eng.ListContainers(context.Background(), nil)
			tt.break_(f, list[0].ID)

			if res := f.reconcile(key, 10); res.RequeueAfter != 0 {
				t.Fatalf("not healed: %+v", res)
			}
			if got := len(f.running("")); got != 2 {
				t.Fatalf("running = %d, want 2", got)
			}
			if eps, _ := f.cache.Lookup(key); len(eps) != 2 {
				t.Fatalf("endpoints = %d, want 2", len(eps))
			}
			if n := f.c.Global().DriftCorrections[tt.kind]; n == 0 {
				t.Fatalf("drift %q not counted: %v", tt.kind, f.c.Global().DriftCorrections)
			}
		})
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 1)
	f.reconcile(key, 5)
	crash := func() {
		list, _ := f.eng.ListContainers(context.Background(), nil)
		for _, c := range list {
			if c.State == engine.StateRunning {
				f.eng.SetState(c.ID, engine.StateExited)
			}
		}
	}
	crash() // first exit: replaced at once
	f.reconcile(key, 1)
	if got := len(f.running("")); got != 1 {
		t.Fatalf("first exit not replaced: running = %d", got)
	}
	crash() // second exit: backoff (an hour in this fixture), no replacement
	f.eng.ResetActions()
	res, err := f.c.Reconcile(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range f.eng.Actions() {
		if strings.HasPrefix(a, "create") {
			t.Fatalf("replaced during backoff: %v", f.eng.Actions())
		}
	}
	if res.RequeueAfter <= 0 {
		t.Fatalf("no requeue while backing off: %+v", res)
	}
	st, _ := f.board.Get(key)
	if st.Reason != "CrashLoopBackOff" || st.Restarts != 2 {
		t.Fatalf("status = %+v, want CrashLoopBackOff with 2 restarts", st)
	}
}

func TestOrphansAreRemoved(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 1)
	f.reconcile(key, 5)
	// The function disappears from desired state while "the daemon is down".
	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	f2 := f.restarted(f.eng)
	if err := f2.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f2.queued(); !slices.Equal(got, []string{key}) {
		t.Fatalf("resync queued %q, want the orphan key %q", got, key)
	}
	f2.reconcile(key, 3)
	if n := f.eng.Names(""); len(n) != 0 {
		t.Fatalf("orphans left: %v", n)
	}
	if f2.c.Global().DriftCorrections["orphan_removed"] != 1 {
		t.Fatalf("orphan removal not counted: %v", f2.c.Global().DriftCorrections)
	}
}

func TestCreateNameConflict(t *testing.T) {
	tests := []struct {
		name    string
		ours    bool
		wantErr bool
	}{
		// Left "created" by a crash between create and start: ours, replaced.
		{"stale container of ours", true, false},
		// Someone else's container under our name: never touched, reported.
		{"foreign container", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			d := deployment("fn")
			key := f.deploy(d, 1)
			if _, err := f.eng.CreateNetwork(context.Background(), "t-fn.openfaas-fn", f.rt.keyLabels("openfaas-fn", "fn")); err != nil {
				t.Fatal(err)
			}
			fn, _ := f.st.Get(context.Background(), key)
			spec, _ := f.rt.containerSpec(runtime.Desired{
				Key: key, Namespace: fn.Namespace, Name: fn.Name(), Spec: fn.Spec,
				Replicas: int(fn.Replicas), Generation: fn.Generation, Hash: controller.SpecHash(d),
			}, 0)
			if !tt.ours {
				spec.Labels = map[string]string{"owner": "someone-else"}
			}
			if _, err := f.eng.CreateContainer(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			_, err := f.c.Reconcile(context.Background(), key)
			if tt.wantErr {
				if !errors.Is(err, engine.ErrConflict) {
					t.Fatalf("err = %v, want a conflict", err)
				}
				if n := f.eng.Names(engine.StateCreated); len(n) != 1 {
					t.Fatalf("foreign container touched: %v", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res := f.reconcile(key, 5); res.RequeueAfter != 0 || len(f.running("")) != 1 {
				t.Fatalf("not converged: %+v, running %v", res, f.running(""))
			}
		})
	}
}

func TestMissingImageIsAnErrorWithReason(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn", func(d *types.FunctionDeployment) { d.Image = "absent/image:1" }), 1)
	_, err := f.c.Reconcile(context.Background(), key)
	if err == nil || !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("err = %v, want a pull failure", err)
	}
	if acts := f.eng.Actions(); !slices.Contains(acts, "pull absent/image:1") {
		t.Fatalf("no pull attempted: %v", acts)
	}
	if st, _ := f.board.Get(key); st.Reason != "ImageNotAvailable" {
		t.Fatalf("reason = %q", st.Reason)
	}
}

func TestInvalidSpecIsTerminal(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn", func(d *types.FunctionDeployment) {
		d.Limits = &types.FunctionResources{Memory: "lots"}
	}), 1)
	_, err := f.c.Reconcile(context.Background(), key)
	if !controller.IsTerminal(err) {
		t.Fatalf("err = %v, want terminal", err)
	}
}

func TestDockerErrorsAreRetried(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 1)
	boom := fmt.Errorf("engine unavailable")
	f.eng.Fail = func(op, arg string) error {
		if op == "create" {
			return boom
		}
		return nil
	}
	if _, err := f.c.Reconcile(context.Background(), key); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	f.eng.Fail = nil
	if res := f.reconcile(key, 5); res.RequeueAfter != 0 || len(f.running("")) != 1 {
		t.Fatalf("did not recover: %+v, running %v", res, f.running(""))
	}
}

// TestRunReactsToStoreAndDocker drives the whole loop: a store write and a
// Docker event each lead to a reconcile without any resync. (Ported from
// pkg/controller/queue_test.go, where it ran against Docker too.)
func TestRunReactsToStoreAndDocker(t *testing.T) {
	f := newFixture(t)
	st, eng, cache, log := f.st, f.eng, f.cache, discardLog()
	rt := New(Config{Instance: "t", DrainGrace: time.Millisecond, ProbeInterval: 5 * time.Millisecond, Prober: f.prober, Log: log}, eng)
	c := controller.New(controller.Config{Resync: time.Hour, Log: log}, st, rt, cache, status.NewBoard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) { t.Helper(); poll.Until(t, 10*time.Second, what, cond) }
	waitFor("event stream", func() bool { return c.Global().EventStream == "connected" })

	fn, err := st.Create(ctx, deployment("fn"), 1)
	if err != nil {
		t.Fatal(err)
	}
	// Known to the proxy by the time the write returns: an invoke right
	// after the deploy's 202 waits for a replica instead of getting 404.
	if _, known := cache.Lookup(fn.Key()); !known {
		t.Fatal("function not known to the proxy when its deploy returned")
	}
	waitFor("endpoint after deploy", func() bool { eps, _ := cache.Lookup(fn.Key()); return len(eps) == 1 })

	list, _ := eng.ListContainers(ctx, nil)
	eng.SetState(list[0].ID, engine.StateExited) // emits a "die" event
	waitFor("replacement after die event", func() bool {
		return len(eng.Names(engine.StateRunning)) == 1 && len(eng.Names("")) == 1
	})

	if err := st.Delete(ctx, fn.Key()); err != nil {
		t.Fatal(err)
	}
	waitFor("teardown after delete", func() bool { _, known := cache.Lookup(fn.Key()); return !known && len(eng.Names("")) == 0 })
}

// TestNewReplicasAreLookedAtSoon: while replicas it just started are not
// ready, a function is looked at again after 10 ms, then doubling, until
// the probe interval; not a whole probe interval after every start.
func TestNewReplicasAreLookedAtSoon(t *testing.T) {
	f := newFixture(t)
	f.prober.setAllDown(true)
	key := f.deploy(deployment("fn"), 1)
	var got []time.Duration
	for i := 0; i < 7; i++ {
		res, err := f.c.Reconcile(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.RequeueAfter)
	}
	probe := f.rt.cfg.ProbeInterval
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond, probe, probe}
	if !slices.Equal(got, want) {
		t.Errorf("requeues %v, want %v", got, want)
	}
	f.prober.setAllDown(false)
	if res, err := f.c.Reconcile(context.Background(), key); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("once ready: %+v, %v; want converged", res, err)
	}
}
