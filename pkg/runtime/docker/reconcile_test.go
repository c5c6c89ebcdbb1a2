package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const testImage = "example/fn:1"

// fakeProber answers from a set of addresses that are not ready; all others are.
type fakeProber struct {
	mu       sync.Mutex
	notReady map[string]bool
	allDown  bool
}

func (p *fakeProber) Ready(ctx context.Context, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.allDown && !p.notReady[addr]
}

func (p *fakeProber) setAllDown(down bool) {
	p.mu.Lock()
	p.allDown = down
	p.mu.Unlock()
}

type fixture struct {
	t      *testing.T
	st     *store.Memory
	eng    *fake.Engine
	cache  *proxy.Cache
	board  *status.Board
	prober *fakeProber
	c      *Controller
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &fixture{
		t:      t,
		st:     store.NewMemory(),
		eng:    fake.New(testImage),
		cache:  proxy.NewCache(),
		board:  status.NewBoard(),
		prober: &fakeProber{notReady: map[string]bool{}},
	}
	f.c = New(Config{
		Instance:     "t",
		DrainGrace:   time.Millisecond,
		CrashBackoff: time.Hour, // a second exit always waits in these tests
		Log:          log,
	}, f.st, f.eng, f.cache, f.board, f.prober, nil)
	return f
}

func deployment(name string, mutate ...func(*types.FunctionDeployment)) types.FunctionDeployment {
	labels, ann := map[string]string{}, map[string]string{}
	d := types.FunctionDeployment{Service: name, Image: testImage, Labels: &labels, Annotations: &ann}
	for _, m := range mutate {
		m(&d)
	}
	return d
}

func (f *fixture) deploy(d types.FunctionDeployment, replicas uint64) string {
	f.t.Helper()
	fn, err := f.st.Create(context.Background(), d, replicas)
	if err != nil {
		f.t.Fatal(err)
	}
	return fn.Key()
}

// reconcile runs Reconcile until the result stops asking for a requeue (or
// n rounds), as the worker would, waiting out drain grace periods.
func (f *fixture) reconcile(key string, n int) Result {
	f.t.Helper()
	var res Result
	for i := 0; i < n; i++ {
		var err error
		res, err = f.c.Reconcile(context.Background(), key)
		if err != nil {
			f.t.Fatalf("reconcile %s round %d: %v", key, i, err)
		}
		if res.RequeueAfter == 0 {
			return res
		}
		if res.RequeueAfter < 50*time.Millisecond {
			time.Sleep(res.RequeueAfter)
		}
	}
	return res
}

func (f *fixture) running(prefix string) []string {
	var out []string
	for _, n := range f.eng.Names(docker.StateRunning) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

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
		{"managed", spec.Labels[docker.LabelManaged], "true"},
		{"instance", spec.Labels[docker.LabelInstance], "t"},
		{"function", spec.Labels[docker.LabelFunction], "hello"},
		{"namespace", spec.Labels[docker.LabelNamespace], "openfaas-fn"},
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

	// A second controller over the same Docker state (a restarted daemon)
	// must adopt the replicas: no create, stop or remove.
	f.eng.ResetActions()
	f2 := *f
	f2.cache, f2.board = proxy.NewCache(), status.NewBoard()
	f2.c = New(f.c.cfg, f.st, f.eng, f2.cache, f2.board, f.prober, nil)
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
	newHash := SpecHash(deployment("fn", func(d *types.FunctionDeployment) { d.EnvVars = map[string]string{"V": "2"} }))
	markNew := func(ready bool) {
		list, _ := f.eng.ListContainers(context.Background(), nil)
		f.prober.mu.Lock()
		defer f.prober.mu.Unlock()
		for _, c := range list {
			if c.Labels[docker.LabelSpecHash] == newHash {
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
		{"container exited", func(f *fixture, id string) { f.eng.SetState(id, docker.StateExited) }, "replica_exited"},
		{"disconnected", func(f *fixture, id string) { f.eng.Disconnect(id, "t-fn.openfaas-fn") }, "network_disconnected"},
		{"network removed", func(f *fixture, id string) { f.eng.RemoveNetworkBehindBack("t-fn.openfaas-fn") }, "network_missing"},
		{"extra replica", func(f *fixture, id string) {
			list, _ := f.eng.ListContainers(context.Background(), nil)
			extra := list[0]
			extra.ID, extra.Name = "extra", "intruder"
			extra.Labels[docker.LabelSlot] = "9"
			f.eng.AddContainer(extra)
		}, "extra_replica"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.deploy(deployment("fn"), 2)
			f.reconcile(key, 5)
			f.c.processResult(key, Result{}, nil) // record "converged" as the worker does
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
			if c.State == docker.StateRunning {
				f.eng.SetState(c.ID, docker.StateExited)
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
	f2 := newFixture(t)
	f2.eng, f2.st = f.eng, f.st
	f2.c = New(f.c.cfg, f.st, f.eng, f2.cache, f2.board, f2.prober, nil)
	if err := f2.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k, ok := f2.c.queue.Get(); !ok || k != key {
		t.Fatalf("resync queued %q, want the orphan key %q", k, key)
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
			if _, err := f.eng.CreateNetwork(context.Background(), "t-fn.openfaas-fn", f.c.keyLabels("openfaas-fn", "fn")); err != nil {
				t.Fatal(err)
			}
			fn, _ := f.st.Get(context.Background(), key)
			spec, _ := f.c.containerSpec(fn, SpecHash(d), 0)
			if !tt.ours {
				spec.Labels = map[string]string{"owner": "someone-else"}
			}
			if _, err := f.eng.CreateContainer(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			_, err := f.c.Reconcile(context.Background(), key)
			if tt.wantErr {
				if !errors.Is(err, docker.ErrConflict) {
					t.Fatalf("err = %v, want a conflict", err)
				}
				if n := f.eng.Names(docker.StateCreated); len(n) != 1 {
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
	if err == nil || !errors.Is(err, docker.ErrNotFound) {
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
	var term terminalError
	if !errors.As(err, &term) {
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
