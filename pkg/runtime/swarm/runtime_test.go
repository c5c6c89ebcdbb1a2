package swarm

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

const testImage = "example/fn:1"

type fakeProber struct {
	mu       sync.Mutex
	notReady map[string]bool
}

func (p *fakeProber) Ready(ctx context.Context, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.notReady[addr]
}

func (p *fakeProber) set(addr string, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notReady == nil {
		p.notReady = map[string]bool{}
	}
	p.notReady[addr] = !ready
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newTest(t *testing.T, eng *fake.Swarm) (*Runtime, *fakeProber) {
	t.Helper()
	p := &fakeProber{}
	return New(Config{Instance: "dfd", Self: "self0", Prober: p, Log: quiet(), SettleTimeout: 100 * time.Millisecond}, eng), p
}

func fn(replicas int, hash string) runtime.Desired {
	return runtime.Desired{
		Key: "openfaas-fn/echo", Namespace: "openfaas-fn", Name: "echo",
		Spec:     types.FunctionDeployment{Service: "echo", Image: testImage, EnvProcess: "cat"},
		Replicas: replicas, Generation: 1, Hash: hash,
	}
}

const svcName = "dfd-echo_openfaas-fn"

func countActions(actions []string, prefix string) int {
	n := 0
	for _, a := range actions {
		if strings.HasPrefix(a, prefix) {
			n++
		}
	}
	return n
}

func mustSync(t *testing.T, r *Runtime, d runtime.Desired) runtime.Observed {
	t.Helper()
	obs, err := r.Sync(context.Background(), d)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return obs
}

func TestSyncCreatesServiceNetworkAndRoutesToTaskIPs(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	obs := mustSync(t, r, fn(2, "hash000001"))
	if !obs.Converged || obs.Current != 2 || len(obs.Endpoints) != 2 || obs.Reason != "" {
		t.Fatalf("obs = %+v", obs)
	}
	for _, e := range obs.Endpoints {
		if !strings.HasPrefix(e.Addr, "10.0.") || !strings.HasSuffix(e.Addr, ":8080") || !strings.HasPrefix(e.Replica, "task") {
			t.Errorf("endpoint %+v is not a task address on the function network", e)
		}
	}
	acts := eng.Actions()
	for _, want := range []string{"create-network dfd-echo_openfaas-fn", "connect self0 dfd-echo_openfaas-fn", "create-service " + svcName} {
		if !slices.Contains(acts, want) {
			t.Errorf("actions %v lack %q", acts, want)
		}
	}
	if len(obs.Replicas) != 2 || !strings.HasPrefix(obs.Replicas[0].Name, svcName+".1@node-") {
		t.Errorf("replicas %+v", obs.Replicas)
	}
	// Nothing to do the second time.
	eng.ResetActions()
	if obs := mustSync(t, r, fn(2, "hash000001")); !obs.Converged {
		t.Fatalf("second sync %+v", obs)
	}
	if acts := eng.Actions(); len(acts) != 0 {
		t.Errorf("second sync changed swarm: %v", acts)
	}
}

func TestSyncWaitsForReadiness(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, p := newTest(t, eng)
	obs := mustSync(t, r, fn(2, "hash000001"))
	p.set(obs.Endpoints[0].Addr, false)
	obs = mustSync(t, r, fn(2, "hash000001"))
	if obs.Converged || obs.Reason != runtime.ReasonWaitingForReadiness || len(obs.Endpoints) != 1 || obs.RequeueAfter != r.cfg.ProbeInterval {
		t.Fatalf("obs = %+v", obs)
	}
}

func TestSyncScalesUpAndDown(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	mustSync(t, r, fn(1, "hash000001"))
	if obs := mustSync(t, r, fn(5, "hash000001")); !obs.Converged || len(obs.Endpoints) != 5 {
		t.Fatalf("scale up: %+v", obs)
	}
	obs := mustSync(t, r, fn(1, "hash000001"))
	if !obs.Converged || len(obs.Endpoints) != 1 || obs.Current != 1 {
		t.Fatalf("scale down: %+v", obs)
	}
	// The endpoint left is a task swarm still wants running.
	for _, tk := range eng.Tasks(svcName) {
		if tk.ID == obs.Endpoints[0].Replica && tk.DesiredState != engine.TaskRunning {
			t.Errorf("endpoint %s is a task swarm stops", tk.ID)
		}
	}
	if obs := mustSync(t, r, fn(0, "hash000001")); !obs.Converged || len(obs.Endpoints) != 0 || obs.Current != 0 {
		t.Fatalf("scale to zero: %+v", obs)
	}
}

func TestRollingUpdateKeepsOldTasksUntilNewRun(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	old := mustSync(t, r, fn(2, "hash000001"))
	eng.Hold = true
	d := fn(2, "hash000002")
	d.Generation = 2
	obs := mustSync(t, r, d)
	if obs.Converged || obs.Reason != runtime.ReasonRollingUpdate {
		t.Fatalf("roll: %+v", obs)
	}
	if !slices.Equal(obs.Endpoints, old.Endpoints) {
		t.Errorf("during the roll endpoints %v, want the old tasks %v", obs.Endpoints, old.Endpoints)
	}
	if n := countActions(eng.Actions(), "update-service"); n != 1 {
		t.Errorf("%d service updates, want 1", n)
	}
	eng.StartAll()
	obs = mustSync(t, r, d)
	if !obs.Converged || len(obs.Endpoints) != 2 {
		t.Fatalf("after roll: %+v", obs)
	}
	for _, e := range obs.Endpoints {
		if slices.Contains(old.Endpoints, e) {
			t.Errorf("old task %v still routed", e)
		}
	}
}

func TestConstraintErrorIsInvalidSpec(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	d := fn(1, "hash000001")
	d.Spec.Constraints = []string{"node.zone=a"}
	_, err := r.Sync(context.Background(), d)
	if !errors.Is(err, runtime.ErrInvalidSpec) || runtime.ReasonOf(err) != runtime.ReasonInvalidSpec {
		t.Fatalf("err = %v (reason %q)", err, runtime.ReasonOf(err))
	}
	if acts := eng.Actions(); len(acts) != 0 {
		t.Errorf("an invalid spec changed swarm: %v", acts)
	}
	d.Spec.Constraints = []string{"node.labels.zone==b"}
	obs := mustSync(t, r, d)
	if !obs.Converged {
		t.Fatalf("obs %+v", obs)
	}
	if tk := eng.Tasks(svcName); len(tk) != 1 || tk[0].NodeID != "node3" {
		t.Errorf("tasks %+v, want one on node3 (zone b)", tk)
	}
}

func TestImageNotAvailable(t *testing.T) {
	eng := fake.NewSwarm()
	r, _ := newTest(t, eng)
	obs := mustSync(t, r, fn(1, "hash000001"))
	if obs.Converged || obs.Reason != runtime.ReasonImageNotAvailable || obs.RequeueAfter != r.cfg.RestartDelay {
		t.Fatalf("obs %+v", obs)
	}
	eng.AddImage(testImage)
	if obs := mustSync(t, r, fn(1, "hash000001")); !obs.Converged {
		t.Fatalf("after the image came: %+v", obs)
	}
}

func TestSecretRotationMakesNewVersionAndRolls(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	t1 := time.Unix(1700000000, 0)
	d := fn(1, "hash000001")
	d.Spec.Secrets = []string{"token"}
	d.Secrets = []runtime.Secret{{Name: "token", Value: []byte("v1"), UpdatedAt: t1}}
	mustSync(t, r, d)
	v1 := secretName("dfd", "openfaas-fn", d.Secrets[0])
	if got := eng.SecretNames(); !slices.Equal(got, []string{v1}) {
		t.Fatalf("secrets %v, want [%s]", got, v1)
	}
	svc, _ := eng.Service(svcName)
	ref := svc.Spec.TaskTemplate.ContainerSpec.Secrets[0]
	if ref.SecretName != v1 || ref.File.Name != "/var/openfaas/secrets/token" {
		t.Errorf("secret reference %+v", ref)
	}

	d.Secrets = []runtime.Secret{{Name: "token", Value: []byte("v2"), UpdatedAt: t1.Add(time.Second)}}
	d.Hash, d.Generation = "hash000002", 2
	eng.ResetActions()
	obs := mustSync(t, r, d)
	v2 := secretName("dfd", "openfaas-fn", d.Secrets[0])
	if !obs.Converged {
		t.Fatalf("obs %+v", obs)
	}
	acts := eng.Actions()
	for _, want := range []string{"create-secret " + v2, "update-service " + svcName, "remove-secret " + v1} {
		if !slices.Contains(acts, want) {
			t.Errorf("actions %v lack %q", acts, want)
		}
	}
	if val, _ := eng.SecretValue(v2); string(val) != "v2" {
		t.Errorf("new version holds %q", val)
	}
	if got := eng.SecretNames(); !slices.Equal(got, []string{v2}) {
		t.Errorf("secrets %v, want only [%s]", got, v2)
	}
}

func TestAdoptionByNewRuntimeChangesNothing(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	d := fn(3, "hash000001")
	d.Spec.Secrets = []string{"token"}
	d.Secrets = []runtime.Secret{{Name: "token", Value: []byte("v1"), UpdatedAt: time.Unix(1700000000, 0)}}
	before := mustSync(t, r, d)
	eng.ResetActions()

	r2, _ := newTest(t, eng)
	if l, err := r2.List(context.Background()); err != nil || l[d.Key].Unchanged {
		t.Fatalf("a new runtime's listing %+v, %v: must ask for a Sync", l, err)
	}
	after := mustSync(t, r2, d)
	if !after.Converged || !slices.Equal(after.Endpoints, before.Endpoints) {
		t.Fatalf("adopted %+v, want endpoints %v", after, before.Endpoints)
	}
	for _, a := range eng.Actions() {
		if !strings.HasPrefix(a, "connect ") { // the self-join is remembered per process
			t.Errorf("adoption changed swarm: %s", a)
		}
	}
}

// TestScaleDownSwarmGaveUpOnIsRetried: when swarm leaves tasks beyond the
// service's replicas wanted running (its orchestrator does not retry a
// scale-down whose task update lost a race), Syncs update the service
// again once the excess has lasted scaleDownGrace, and only then.
func TestScaleDownSwarmGaveUpOnIsRetried(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	clock := time.Unix(1700000000, 0)
	r.now = func() time.Time { return clock }
	mustSync(t, r, fn(4, "hash000001"))

	eng.StrandNextScaleDown(svcName)
	eng.ResetActions()
	d := fn(2, "hash000001")
	d.Generation = 2
	if obs := mustSync(t, r, d); obs.Converged || wantedSlots(eng.Tasks(svcName)) != 4 {
		t.Fatalf("swarm kept 4 slots wanted running: %+v, %d slots", obs, wantedSlots(eng.Tasks(svcName)))
	}
	clock = clock.Add(scaleDownGrace - time.Second)
	if obs := mustSync(t, r, d); obs.Converged || len(obs.Drift) != 0 {
		t.Fatalf("within the grace: %+v", obs)
	}
	if n := countActions(eng.Actions(), "update-service"); n != 1 {
		t.Fatalf("%d service updates within the grace, want only the scale-down: %v", n, eng.Actions())
	}
	clock = clock.Add(time.Second)
	if obs := mustSync(t, r, d); obs.Drift[runtime.DriftExtraReplica] != 1 {
		t.Fatalf("after the grace: %+v, want the excess counted as drift", obs)
	}
	if n := countActions(eng.Actions(), "update-service"); n != 2 {
		t.Fatalf("%d service updates after the grace, want 2: %v", n, eng.Actions())
	}
	obs := mustSync(t, r, d)
	if !obs.Converged || len(obs.Endpoints) != 2 || wantedSlots(eng.Tasks(svcName)) != 2 {
		t.Fatalf("after the retry: %+v, %d slots wanted", obs, wantedSlots(eng.Tasks(svcName)))
	}
	clock = clock.Add(time.Hour)
	mustSync(t, r, d)
	if n := countActions(eng.Actions(), "update-service"); n != 2 {
		t.Errorf("a converged service was updated again: %v", eng.Actions())
	}
}

func TestWantedSlots(t *testing.T) {
	task := func(slot int, desired string) engine.Task {
		return engine.Task{Slot: slot, DesiredState: desired}
	}
	for _, tc := range []struct {
		name string
		list []engine.Task
		want int
	}{
		{"none", nil, 0},
		{"one per slot", []engine.Task{task(1, engine.TaskRunning), task(2, engine.TaskRunning)}, 2},
		{"start-first roll shares the slot", []engine.Task{task(1, engine.TaskRunning), task(1, engine.TaskRunning), task(2, engine.TaskRunning)}, 2},
		{"ready counts as wanted", []engine.Task{task(1, engine.TaskReady)}, 1},
		{"stopping tasks do not count", []engine.Task{task(1, engine.TaskRunning), task(2, engine.TaskShutdown), task(3, "remove")}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wantedSlots(tc.list); got != tc.want {
				t.Errorf("wantedSlots = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDriftBehindOurBack(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	d := fn(2, "hash000001")
	mustSync(t, r, d)

	eng.ScaleBehindBack(svcName, 4)
	obs := mustSync(t, r, d)
	if obs.Drift[runtime.DriftExtraReplica] != 1 || !obs.Converged || len(obs.Endpoints) != 2 {
		t.Errorf("scaled by hand: %+v", obs)
	}
	eng.RemoveServiceBehindBack(svcName)
	obs = mustSync(t, r, d)
	if obs.Drift[runtime.DriftReplicaMissing] != 1 || !obs.Converged {
		t.Errorf("service removed by hand: %+v", obs)
	}
	eng.RemoveServiceBehindBack(svcName)
	eng.RemoveNetworkBehindBack("dfd-echo_openfaas-fn")
	obs = mustSync(t, r, d)
	if obs.Drift[runtime.DriftNetworkMissing] != 1 || !obs.Converged {
		t.Errorf("network removed by hand: %+v", obs)
	}
	tasks := eng.Tasks(svcName)
	eng.KillTask(tasks[0].ID)
	obs = mustSync(t, r, d)
	if !obs.Converged || obs.Restarts != 1 || len(obs.Endpoints) != 2 {
		t.Errorf("task killed: %+v", obs)
	}
}

func TestListUnchangedUntilSomethingMoves(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, p := newTest(t, eng)
	d := fn(2, "hash000001")
	obs := mustSync(t, r, d)
	ctx := context.Background()
	l, err := r.List(ctx)
	if err != nil || !l[d.Key].Unchanged || l[d.Key].Generation != 1 || l[d.Key].Hash != "hash000001" {
		t.Fatalf("list %+v, %v", l, err)
	}
	p.set(obs.Endpoints[0].Addr, false)
	if l, _ := r.List(ctx); l[d.Key].Unchanged {
		t.Error("a task that stopped answering: still unchanged")
	}
	p.set(obs.Endpoints[0].Addr, true)
	eng.KillTask(eng.Tasks(svcName)[0].ID)
	if l, _ := r.List(ctx); l[d.Key].Unchanged {
		t.Error("a task replaced: still unchanged")
	}
	mustSync(t, r, d)
	eng.ScaleBehindBack(svcName, 3)
	if l, _ := r.List(ctx); l[d.Key].Unchanged {
		t.Error("service scaled by hand: still unchanged")
	}
}

func TestRemove(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	d := fn(2, "hash000001")
	d.Spec.Secrets = []string{"token"}
	d.Secrets = []runtime.Secret{{Name: "token", Value: []byte("v1")}}
	mustSync(t, r, d)
	ctx := context.Background()
	removed, err := r.Remove(ctx, d.Key)
	if err != nil || !removed {
		t.Fatalf("remove = %v, %v", removed, err)
	}
	if s := eng.ServiceNames(); len(s) != 0 {
		t.Errorf("services left: %v", s)
	}
	if s := eng.SecretNames(); len(s) != 0 {
		t.Errorf("secrets left: %v", s)
	}
	if l, _ := eng.ListNetworks(ctx, nil); len(l) != 0 {
		t.Errorf("networks left: %v", l)
	}
	if !slices.Contains(eng.Actions(), "disconnect self0 dfd-echo_openfaas-fn") {
		t.Errorf("the daemon did not leave the network: %v", eng.Actions())
	}
	if removed, err := r.Remove(ctx, d.Key); err != nil || removed {
		t.Errorf("second remove = %v, %v", removed, err)
	}
}

func TestSecretSharedByTwoFunctionsSurvivesOneRemoval(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	sec := []runtime.Secret{{Name: "token", Value: []byte("v1")}}
	a, b := fn(1, "hash000001"), fn(1, "hash000001")
	b.Key, b.Name = "openfaas-fn/other", "other"
	a.Secrets, b.Secrets = sec, sec
	mustSync(t, r, a)
	mustSync(t, r, b)
	if s := eng.SecretNames(); len(s) != 1 {
		t.Fatalf("secrets %v, want one version shared", s)
	}
	if _, err := r.Remove(context.Background(), a.Key); err != nil {
		t.Fatal(err)
	}
	if s := eng.SecretNames(); len(s) != 1 {
		t.Errorf("secret used by another function was removed: %v", s)
	}
}

func TestCheckManager(t *testing.T) {
	eng := fake.NewSwarm()
	ctx := context.Background()
	if err := CheckManager(ctx, eng); err != nil {
		t.Fatal(err)
	}
	for _, info := range []engine.SwarmInfo{
		{LocalNodeState: "inactive"},
		{LocalNodeState: "active", NodeID: "w1", ControlAvailable: false},
	} {
		eng.SetInfo(info)
		if err := CheckManager(ctx, eng); !errors.Is(err, engine.ErrNotManager) {
			t.Errorf("%+v: err %v", info, err)
		}
	}
}

func TestWatchMapsServiceEventsToKeys(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	d := fn(1, "hash000001")
	mustSync(t, r, d)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := make(chan string, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, func(context.Context) error { close(ready); return nil }, func(k string) { keys <- k })
	}()
	<-ready
	eng.ScaleBehindBack(svcName, 2)
	select {
	case k := <-keys:
		if k != d.Key {
			t.Errorf("changed(%q), want %q", k, d.Key)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no change reported for a service event")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("watch ended with %v", err)
	}
}
