package controller

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// rtFixture is a controller over a fake runtime: what the controller does
// with desired state and with what a runtime reports, without Docker.
type rtFixture struct {
	t     *testing.T
	st    *store.Memory
	rt    *fake.Runtime
	cache *proxy.Cache
	board *status.Board
	reg   *prometheus.Registry
	c     *Controller
}

func newRTFixture(t *testing.T) *rtFixture {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &rtFixture{t: t, st: store.NewMemory(), rt: fake.New(), cache: proxy.NewCache(), board: status.NewBoard(), reg: prometheus.NewRegistry()}
	f.c = New(Config{Log: log}, f.st, f.rt, f.cache, f.board, NewMetrics(f.reg))
	return f
}

func (f *rtFixture) deploy(name string, replicas uint64, mutate ...func(*types.FunctionDeployment)) string {
	f.t.Helper()
	d := types.FunctionDeployment{Service: name, Image: "example/fn:1"}
	for _, m := range mutate {
		m(&d)
	}
	fn, err := f.st.Create(context.Background(), d, replicas)
	if err != nil {
		f.t.Fatal(err)
	}
	return fn.Key()
}

func withSecretNames(names ...string) func(*types.FunctionDeployment) {
	return func(d *types.FunctionDeployment) { d.Secrets = names }
}

func TestReconcileHandsResolvedDesiredStateToTheRuntime(t *testing.T) {
	f := newRTFixture(t)
	ctx := context.Background()
	info, err := f.st.CreateSecret(ctx, faas.DefaultNamespace, "db", []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	key := f.deploy("fn", 2, withSecretNames("db", "db"), func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"exec_timeout": "7s"}
	})
	if _, err := f.c.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	syncs := f.rt.Syncs()
	if len(syncs) != 1 {
		t.Fatalf("%d syncs, want 1", len(syncs))
	}
	d := syncs[0]
	fn, _ := f.st.Get(ctx, key)
	if d.Key != key || d.Namespace != faas.DefaultNamespace || d.Name != "fn" || d.Replicas != 2 || d.Generation != fn.Generation {
		t.Errorf("desired %+v does not match the stored function", d)
	}
	if want := SpecHash(fn.Spec, info); d.Hash != want {
		t.Errorf("hash %s, want %s (spec and secret revisions)", d.Hash, want)
	}
	if len(d.Secrets) != 1 || d.Secrets[0].Name != "db" || string(d.Secrets[0].Value) != "pw" {
		t.Errorf("secrets %+v, want db once with its value", d.Secrets)
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 2 {
		t.Errorf("published %v, want the runtime's 2 endpoints", eps)
	}
	if got := f.cache.Timeouts(key); got.Exec != 7*time.Second {
		t.Errorf("timeouts %+v, want exec 7s from envVars", got)
	}
	st, _ := f.board.Get(key)
	if st.DesiredReplicas != 2 || st.ReadyReplicas != 2 || st.CurrentReplicas != 2 || st.ObservedGeneration != fn.Generation || st.SpecHash != d.Hash {
		t.Errorf("status %+v does not show what the runtime observed", st)
	}
}

// TestParkingOnlyAtZero: a function scaled to zero asks the runtime to
// keep its replicas frozen for the configured time; one with replicas
// never does.
func TestParkingOnlyAtZero(t *testing.T) {
	f := newRTFixture(t)
	f.c.cfg.ParkFor = time.Minute
	ctx := context.Background()
	key := f.deploy("fn", 1)
	if _, err := f.c.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Scale(ctx, key, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	syncs := f.rt.Syncs()
	if got := []time.Duration{syncs[0].ParkFor, syncs[1].ParkFor}; got[0] != 0 || got[1] != time.Minute {
		t.Errorf("ParkFor %v, want [0 1m]", got)
	}
}

func TestReconcileResultFromObserved(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name       string
		obs        runtime.Observed
		err        error
		wantResult Result
		wantErr    bool
		terminal   bool
		wantReason string
		wantReady  int
		published  bool
	}{
		{name: "converged", obs: runtime.Observed{Seen: true, Converged: true, Current: 1, Endpoints: []faas.Endpoint{{Replica: "r", Addr: "a:1"}}}, wantReady: 1, published: true},
		{name: "progressing", obs: runtime.Observed{Seen: true, Current: 1, Reason: runtime.ReasonWaitingForReadiness, RequeueAfter: time.Second}, wantResult: Result{RequeueAfter: time.Second}, wantReason: "WaitingForReadiness"},
		{name: "failure before observing: reason shown, nothing published", err: runtime.Fail(runtime.ReasonImageNotAvailable, boom), wantErr: true, wantReason: "ImageNotAvailable"},
		{name: "invalid spec is terminal", err: runtime.Fail(runtime.ReasonInvalidSpec, runtime.ErrInvalidSpec), wantErr: true, terminal: true, wantReason: "InvalidSpec"},
		{name: "failure after observing: what was seen is published, the error retried", obs: runtime.Observed{Seen: true, Current: 1, Endpoints: []faas.Endpoint{{Replica: "r", Addr: "a:1"}}, Reason: runtime.ReasonScaling}, err: boom, wantErr: true, wantReason: "Scaling", wantReady: 1, published: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRTFixture(t)
			key := f.deploy("fn", 1)
			f.rt.OnSync(key, func(runtime.Desired) (runtime.Observed, error) { return tt.obs, tt.err })
			res, err := f.c.Reconcile(context.Background(), key)
			if (err != nil) != tt.wantErr || res != tt.wantResult {
				t.Fatalf("got %+v, %v", res, err)
			}
			if IsTerminal(err) != tt.terminal {
				t.Errorf("terminal = %v, want %v", !tt.terminal, tt.terminal)
			}
			st, _ := f.board.Get(key)
			if st.Reason != tt.wantReason || int(st.ReadyReplicas) != tt.wantReady {
				t.Errorf("status reason %q ready %d, want %q %d", st.Reason, st.ReadyReplicas, tt.wantReason, tt.wantReady)
			}
			if eps, _ := f.cache.Lookup(key); (len(eps) > 0) != tt.published {
				t.Errorf("endpoints %v, published want %v", eps, tt.published)
			}
		})
	}
}

func TestProcessResultRecordsTypedOutcomes(t *testing.T) {
	tests := []struct {
		res  Result
		err  error
		want faas.Outcome
	}{
		{want: faas.Converged},
		{res: Result{RequeueAfter: time.Second}, want: faas.Progressing},
		{err: errors.New("x"), want: faas.Failed},
		{err: Terminal(errors.New("x")), want: faas.Terminal},
	}
	for _, tt := range tests {
		t.Run(string(tt.want), func(t *testing.T) {
			f := newRTFixture(t)
			f.board.Set(status.Function{Key: "openfaas-fn/fn"})
			f.c.processResult("openfaas-fn/fn", tt.res, tt.err)
			if st, _ := f.board.Get("openfaas-fn/fn"); st.LastResult != tt.want {
				t.Errorf("outcome %q, want %q", st.LastResult, tt.want)
			}
		})
	}
}

func TestMissingSecretStopsBeforeTheRuntime(t *testing.T) {
	f := newRTFixture(t)
	key := f.deploy("fn", 1, withSecretNames("gone"))
	if _, err := f.c.Reconcile(context.Background(), key); err == nil {
		t.Fatal("reconcile without its secret succeeded")
	}
	if n := len(f.rt.Syncs()); n != 0 {
		t.Errorf("%d syncs; nothing may start without its secrets", n)
	}
	if st, _ := f.board.Get(key); st.Reason != "SecretNotFound" {
		t.Errorf("reason %q, want SecretNotFound", st.Reason)
	}
}

func TestTeardownRemovesAndCountsOrphans(t *testing.T) {
	f := newRTFixture(t)
	ctx := context.Background()
	key := f.deploy("fn", 1)
	if _, err := f.c.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, known := f.cache.Lookup(key); known {
		t.Error("a deleted function is still routable")
	}
	if _, ok := f.board.Get(key); ok {
		t.Error("a deleted function still has a status")
	}
	if n := f.c.Global().DriftCorrections[runtime.DriftOrphanRemoved]; n != 0 {
		t.Errorf("deleting a known function counted %d orphans", n)
	}

	// Something the runtime runs for a key this controller never synced
	// (deleted while the daemon was down) is an orphan.
	f.rt.AddOrphan("openfaas-fn/ghost")
	if _, err := f.c.Reconcile(ctx, "openfaas-fn/ghost"); err != nil {
		t.Fatal(err)
	}
	if n := f.c.Global().DriftCorrections[runtime.DriftOrphanRemoved]; n != 1 {
		t.Errorf("orphans removed %d, want 1", n)
	}
	if got := f.rt.Removed(); !slices.Equal(got, []string{key, "openfaas-fn/ghost"}) {
		t.Errorf("removed %v", got)
	}
}

func TestResyncQueuesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		setup  func(f *rtFixture, steady, other string)
		want   func(steady, other string) []string
		errors bool
	}{
		{
			name:  "unchanged keys are not queued",
			setup: func(f *rtFixture, steady, other string) {},
			want:  func(steady, other string) []string { return nil },
		},
		{
			name:  "a key the runtime found changed is queued",
			setup: func(f *rtFixture, steady, other string) { f.rt.Change(other) },
			want:  func(steady, other string) []string { return []string{other} },
		},
		{
			name: "a key desired at a newer generation is queued",
			setup: func(f *rtFixture, steady, other string) {
				if _, err := f.st.Scale(ctx, other, 3); err != nil {
					f.t.Fatal(err)
				}
			},
			want: func(steady, other string) []string { return []string{other} },
		},
		{
			name:  "orphans are queued",
			setup: func(f *rtFixture, steady, other string) { f.rt.AddOrphan("openfaas-fn/ghost") },
			want:  func(steady, other string) []string { return []string{"openfaas-fn/ghost"} },
		},
		{
			name: "a published status is no input: a converged-looking board changes nothing",
			setup: func(f *rtFixture, steady, other string) {
				f.rt.Change(other)
				f.board.Update(other, func(s *status.Function) { s.LastResult = faas.Converged; s.ObservedGeneration = 99 })
			},
			want: func(steady, other string) []string { return []string{other} },
		},
		{
			name:   "a failed listing queues every desired key",
			setup:  func(f *rtFixture, steady, other string) { f.rt.SetListError(errors.New("engine down")) },
			want:   func(steady, other string) []string { return []string{other, steady} },
			errors: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRTFixture(t)
			steady, other := f.deploy("steady", 1), f.deploy("other", 1)
			for _, k := range []string{steady, other} {
				if _, err := f.c.Reconcile(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			tt.setup(f, steady, other)
			err := f.c.ResyncAll(ctx)
			if (err != nil) != tt.errors {
				t.Fatalf("resync: %v", err)
			}
			got, want := drainKeys(f.c.queue), tt.want(steady, other)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("queued %v, want %v", got, want)
			}
		})
	}
}

func TestDriftReportedByTheRuntimeIsCounted(t *testing.T) {
	f := newRTFixture(t)
	key := f.deploy("fn", 1)
	f.rt.OnSync(key, func(runtime.Desired) (runtime.Observed, error) {
		o := runtime.Observed{Seen: true, Converged: true}
		o.AddDrift(runtime.DriftReplicaMissing)
		o.AddDrift(runtime.DriftReplicaMissing)
		o.AddDrift(runtime.DriftNetworkMissing)
		return o, nil
	})
	if _, err := f.c.Reconcile(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	g := f.c.Global().DriftCorrections
	if g[runtime.DriftReplicaMissing] != 2 || g[runtime.DriftNetworkMissing] != 1 {
		t.Errorf("drift %v", g)
	}
	if v := testutil.ToFloat64(f.c.metrics.drift.WithLabelValues(runtime.DriftReplicaMissing)); v != 2 {
		t.Errorf("drift metric %v, want 2", v)
	}
}

func TestRuntimeEventsQueueKeysAfterARelist(t *testing.T) {
	f := newRTFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.c.watchRuntime(ctx) }()
	defer func() { cancel(); <-done }()
	poll.Until(t, 10*time.Second, "the watch to connect", func() bool { return f.c.Global().EventStream == "connected" })
	if f.c.Global().LastResync.IsZero() {
		t.Error("connected without re-listing first")
	}
	f.rt.Event("openfaas-fn/x")
	poll.Until(t, 10*time.Second, "the event to queue its key", func() bool {
		return slices.Contains(drainKeys(f.c.queue), "openfaas-fn/x")
	})
}

// TestSecretWriteQueuesItsUsers: a secret write queues exactly the
// functions of its namespace that list it, and the secret's watch key never
// becomes a routable function.
func TestSecretWriteQueuesItsUsers(t *testing.T) {
	f := newRTFixture(t)
	ctx := context.Background()
	if _, err := f.st.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev"}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{faas.DefaultNamespace, "dev"} {
		if _, err := f.st.CreateSecret(ctx, ns, "s", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	user := f.deploy("user", 1, withSecretNames("other", "s"))
	f.deploy("bystander", 1)
	f.deploy("user", 1, withSecretNames("s"), func(d *types.FunctionDeployment) { d.Namespace = "dev" })

	f.c.enqueueSecretUsers(ctx, faas.DefaultNamespace, "s")
	if got := drainKeys(f.c.queue); !slices.Equal(got, []string{user}) {
		t.Errorf("enqueued %q, want only %s", got, user)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); f.c.watchStore(wctx) }()
	defer func() { cancel(); <-done }()
	// watchStore registers its watcher asynchronously; write until it hears.
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for i := 0; len(got) == 0 && time.Now().Before(deadline); i++ {
		if _, err := f.st.UpdateSecret(ctx, faas.DefaultNamespace, "s", []byte("v"+strings.Repeat("!", i+1))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		got = drainKeys(f.c.queue)
	}
	if !slices.Equal(got, []string{user}) {
		t.Errorf("watch enqueued %q, want only %s", got, user)
	}
	if _, known := f.cache.Lookup(store.SecretWatchKey(faas.DefaultNamespace, "s")); known {
		t.Error("a secret key was made known to the proxy")
	}
}

func TestSpecHashFollowsSpecAndSecretRevisions(t *testing.T) {
	base := types.FunctionDeployment{Service: "fn", Image: "a:1", Secrets: []string{"s"}}
	s1 := store.SecretInfo{Name: "s", Revision: 1}
	s2 := store.SecretInfo{Name: "s", Revision: 2}
	other := base
	other.Image = "a:2"
	constrained := base
	constrained.Constraints = []string{"node.role==manager"}
	if SpecHash(base, s1) != SpecHash(base, s1) {
		t.Error("equal specs hash differently")
	}
	if SpecHash(base, s1) == SpecHash(base, s2) {
		t.Error("a new secret revision keeps the hash: the function would not roll")
	}
	if SpecHash(base, s1) == SpecHash(other, s1) {
		t.Error("a new image keeps the hash")
	}
	if SpecHash(base, s1) != SpecHash(constrained, s1) {
		t.Error("constraints changed the hash: placement hints must not roll replicas")
	}
	// Replicas made by an older daemon carry this hash as a label; it must
	// never change for the same input, or an upgrade rolls every function.
	// The values were computed by the release before the runtime seam.
	labels := map[string]string{"a": "b"}
	golden := []struct {
		spec    types.FunctionDeployment
		secrets []store.SecretInfo
		want    string
	}{
		{spec: types.FunctionDeployment{Service: "fn", Image: "example/fn:1"}, want: "fb0b0ba3ae31"},
		{
			spec: types.FunctionDeployment{Service: "fn", Image: "example/fn:1", EnvVars: map[string]string{"k": "v"}, Labels: &labels,
				Secrets: []string{"s"}, Limits: &types.FunctionResources{Memory: "64Mi"}},
			secrets: []store.SecretInfo{{Name: "s", Revision: 7}},
			want:    "7e2f23a497fe",
		},
	}
	for _, g := range golden {
		if got := SpecHash(g.spec, g.secrets...); got != g.want {
			t.Errorf("SpecHash = %s, want %s as the previous release computed it", got, g.want)
		}
	}
}

// drainKeys takes every key queued now, marking each done, sorted.
func drainKeys(q *Queue) []string {
	var out []string
	for q.Len() > 0 {
		k, ok := q.Get()
		if !ok {
			break
		}
		q.Done(k)
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestResyncCatchesAMissedSecretChange: a secret write bumps no generation;
// if its watch event was missed, the resync still sees that the hash the
// runtime runs is not the one desired now.
func TestResyncCatchesAMissedSecretChange(t *testing.T) {
	f := newRTFixture(t)
	ctx := context.Background()
	if _, err := f.st.CreateSecret(ctx, faas.DefaultNamespace, "s", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	user, plain := f.deploy("user", 1, withSecretNames("s")), f.deploy("plain", 1)
	for _, k := range []string{user, plain} {
		if _, err := f.c.Reconcile(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.c.ResyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := drainKeys(f.c.queue); len(got) != 0 {
		t.Fatalf("queued %v before any change; the test proves nothing", got)
	}
	if _, err := f.st.UpdateSecret(ctx, faas.DefaultNamespace, "s", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := f.c.ResyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := drainKeys(f.c.queue); !slices.Equal(got, []string{user}) {
		t.Errorf("queued %v, want only %s", got, user)
	}
	if err := f.st.DeleteSecret(ctx, faas.DefaultNamespace, "s"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.ResyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := drainKeys(f.c.queue); !slices.Equal(got, []string{user}) {
		t.Errorf("after the secret was deleted: queued %v, want only %s", got, user)
	}
}
