package docker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// The paused tier of scale to zero, driven as the daemon drives it: the
// controller over the runtime over the fake engine.

// actions returns the fake engine's recorded actions of the given verb
// ("pause", "create", ...), with the verb cut off.
func (f *fixture) actions(verb string) []string {
	var out []string
	for _, a := range f.eng.Actions() {
		if rest, ok := strings.CutPrefix(a, verb+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// deployRunning deploys fn with n replicas, converges it and returns its
// key and the replicas' names, by slot.
func (f *fixture) deployRunning(n uint64) (key string, names []string) {
	f.t.Helper()
	key = f.deploy(deployment("fn"), n)
	if !f.work(key, 10) {
		f.t.Fatal("did not converge")
	}
	names = f.running("t-fn.")
	if len(names) != int(n) {
		f.t.Fatalf("running %v, want %d replicas", names, n)
	}
	return key, names
}

// scaleTo writes the desired replicas of key.
func (f *fixture) scaleTo(key string, n uint64) {
	f.t.Helper()
	if _, err := f.st.Scale(context.Background(), key, n); err != nil {
		f.t.Fatal(err)
	}
}

// parkAll reconciles key (scaled to zero) until no replica runs and want
// are paused, waiting out drain grace periods, and returns the last result.
func (f *fixture) parkAll(key string, want int) controller.Result {
	f.t.Helper()
	var res controller.Result
	for i := 0; i < 20; i++ {
		var err error
		if res, err = f.c.Reconcile(context.Background(), key); err != nil {
			f.t.Fatal(err)
		}
		if len(f.running("")) == 0 && len(f.eng.Names(engine.StatePaused)) == want {
			return res
		}
		time.Sleep(2 * time.Millisecond) // past DrainGrace (1 ms here)
	}
	f.t.Fatalf("not parked: containers running %v, paused %v; actions %v",
		f.running(""), f.eng.Names(engine.StatePaused), f.eng.Actions())
	return res
}

func (f *fixture) replicaStates(key string) []string {
	st, _ := f.board.Get(key)
	var out []string
	for _, r := range st.Replicas {
		out = append(out, r.State)
	}
	return out
}

// TestScaleToZeroParksAndWakes: scaled from 2 to 0 with parking, both
// replicas are drained, then paused (not stopped or removed); scaled to 1,
// the lowest slot is thawed and published in one reconcile, the other
// parked replica is removed, and nothing is created.
func TestScaleToZeroParksAndWakes(t *testing.T) {
	f := newFixture(t)
	f.tap.setParkFor(time.Hour)
	key, names := f.deployRunning(2)

	f.eng.ResetActions()
	f.scaleTo(key, 0)
	res := f.parkAll(key, 2)
	if got := f.actions("pause"); !slices.Equal(got, names) {
		t.Errorf("paused %v, want %v", got, names)
	}
	for _, verb := range []string{"stop", "remove", "create"} {
		if got := f.actions(verb); len(got) != 0 {
			t.Errorf("%s %v while parking, want none", verb, got)
		}
	}
	if res.RequeueAfter < 59*time.Minute || res.RequeueAfter > time.Hour {
		t.Errorf("requeue after %v, want about the hour of retention", res.RequeueAfter)
	}
	if eps, known := f.cache.Lookup(key); !known || len(eps) != 0 {
		t.Errorf("endpoints %v (known %v), want none, the function still known", eps, known)
	}
	st, _ := f.board.Get(key)
	if st.CurrentReplicas != 0 || st.ReadyReplicas != 0 || st.Reason != "" {
		t.Errorf("status %+v, want 0 current, 0 ready, no reason", st)
	}
	if got, want := f.replicaStates(key), []string{status.ReplicaPaused, status.ReplicaPaused}; !slices.Equal(got, want) {
		t.Errorf("replica states %v, want %v", got, want)
	}

	// Parked and settled: later reconciles change nothing.
	f.eng.ResetActions()
	if _, err := f.c.Reconcile(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if acts := f.eng.Actions(); len(acts) != 0 {
		t.Errorf("a reconcile of a parked function did %v, want nothing", acts)
	}

	f.scaleTo(key, 1)
	res, err := f.c.Reconcile(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 1 {
		t.Fatalf("endpoints after one reconcile of the wake %v, want the thawed replica", eps)
	}
	if res.RequeueAfter != 0 {
		t.Errorf("wake did not converge in one reconcile: %+v", res)
	}
	if got := f.actions("unpause"); !slices.Equal(got, names[:1]) {
		t.Errorf("unpaused %v, want the lowest slot %v", got, names[:1])
	}
	if got := f.actions("remove"); !slices.Equal(got, names[1:]) {
		t.Errorf("removed %v, want the surplus parked replica %v", got, names[1:])
	}
	if got := f.actions("create"); len(got) != 0 {
		t.Errorf("created %v on a wake from the paused tier, want none", got)
	}
	if got := f.running(""); !slices.Equal(got, names[:1]) {
		t.Errorf("running %v, want %v", got, names[:1])
	}
	if got, want := f.replicaStates(key), []string{status.ReplicaReady}; !slices.Equal(got, want) {
		t.Errorf("replica states %v, want %v", got, want)
	}
	if drift := f.c.Global().DriftCorrections; len(drift) != 0 {
		t.Errorf("parking and waking counted as drift: %v", drift)
	}
}

// TestParkedRetentionExpiry: parked replicas are removed once their
// retention is over, and the reconcile that parked them asks to be run
// again then.
func TestParkedRetentionExpiry(t *testing.T) {
	const retention = 100 * time.Millisecond
	f := newFixture(t)
	f.tap.setParkFor(retention)
	key, names := f.deployRunning(2)

	f.scaleTo(key, 0)
	res := f.parkAll(key, 2)
	if res.RequeueAfter <= 0 || res.RequeueAfter > retention {
		t.Fatalf("requeue after %v, want within the retention %v", res.RequeueAfter, retention)
	}
	time.Sleep(res.RequeueAfter)
	f.eng.ResetActions()
	res, err := f.c.Reconcile(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != 0 {
		t.Errorf("requeue after %v once nothing is parked, want none", res.RequeueAfter)
	}
	if got := f.actions("remove"); !slices.Equal(got, names) {
		t.Errorf("removed %v, want the parked replicas %v", got, names)
	}
	if got := f.eng.Names(""); len(got) != 0 {
		t.Errorf("containers left %v", got)
	}
	if got := f.replicaStates(key); len(got) != 0 {
		t.Errorf("replica states %v, want none", got)
	}

	// Scaled up again, the function starts afresh.
	f.scaleTo(key, 1)
	if !f.work(key, 10) {
		t.Fatal("did not converge after the retention")
	}
	if got := f.actions("create"); len(got) != 1 {
		t.Errorf("created %v, want one new replica", got)
	}
}

// TestScaleToZeroWithoutParking: with ParkFor 0 the replicas are stopped
// and removed as they always were, and replicas parked earlier are removed
// at once.
func TestScaleToZeroWithoutParking(t *testing.T) {
	t.Run("running replicas", func(t *testing.T) {
		f := newFixture(t)
		key, names := f.deployRunning(2)
		f.eng.ResetActions()
		f.scaleTo(key, 0)
		if res := f.reconcile(key, 10); res.RequeueAfter != 0 {
			t.Fatalf("not converged: %+v", res)
		}
		if got := f.actions("pause"); len(got) != 0 {
			t.Errorf("paused %v without parking", got)
		}
		if got := f.actions("remove"); len(got) != len(names) {
			t.Errorf("removed %v, want %v", got, names)
		}
		if got := f.eng.Names(""); len(got) != 0 {
			t.Errorf("containers left %v", got)
		}
	})
	t.Run("replicas parked before", func(t *testing.T) {
		f := newFixture(t)
		f.tap.setParkFor(time.Hour)
		key, names := f.deployRunning(2)
		f.scaleTo(key, 0)
		f.parkAll(key, 2)

		f.tap.setParkFor(0)
		f.eng.ResetActions()
		res, err := f.c.Reconcile(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.actions("remove"); !slices.Equal(got, names) || res.RequeueAfter != 0 {
			t.Errorf("removed %v (requeue %v), want %v at once", got, res.RequeueAfter, names)
		}
	})
}

// TestParkedOldSpecIsRemoved: a new spec deployed while the function is
// parked removes the parked replicas at once (a wake must not serve the old
// spec), and a wake then starts the new one.
func TestParkedOldSpecIsRemoved(t *testing.T) {
	f := newFixture(t)
	f.tap.setParkFor(time.Hour)
	key, names := f.deployRunning(2)
	f.scaleTo(key, 0)
	f.parkAll(key, 2)

	f.eng.ResetActions()
	if _, err := f.st.Update(context.Background(), deployment("fn", func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"V": "2"}
	}), nil); err != nil {
		t.Fatal(err)
	}
	res, err := f.c.Reconcile(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.actions("remove"); !slices.Equal(got, names) || res.RequeueAfter != 0 {
		t.Errorf("removed %v (requeue %v), want the parked old-spec replicas %v", got, res.RequeueAfter, names)
	}
	if got := f.actions("unpause"); len(got) != 0 {
		t.Errorf("unpaused %v, want none", got)
	}
}

// TestRestartAdoptsParkedReplicas: a daemon restarted while a function is
// parked keeps its replicas parked (their retention counted from when it
// first sees them) and thaws them on the wake, without counting drift.
func TestRestartAdoptsParkedReplicas(t *testing.T) {
	f := newFixture(t)
	f.tap.setParkFor(time.Hour)
	key, names := f.deployRunning(2)
	f.scaleTo(key, 0)
	f.parkAll(key, 2)

	time.Sleep(10 * time.Millisecond) // so a retention counted from the pause would show
	f.eng.ResetActions()
	f2 := f.restarted(f.eng)
	res, err := f2.c.Reconcile(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if acts := f.eng.Actions(); len(acts) != 0 {
		t.Errorf("adopting parked replicas did %v, want nothing", acts)
	}
	if res.RequeueAfter < time.Hour-time.Second || res.RequeueAfter > time.Hour {
		t.Errorf("requeue after %v, want the whole retention, counted from now", res.RequeueAfter)
	}
	if got, want := f2.replicaStates(key), []string{status.ReplicaPaused, status.ReplicaPaused}; !slices.Equal(got, want) {
		t.Errorf("replica states %v, want %v", got, want)
	}

	f2.scaleTo(key, 1)
	if res, err := f2.c.Reconcile(context.Background(), key); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("wake after the restart: %+v, %v", res, err)
	}
	if got := f.actions("unpause"); !slices.Equal(got, names[:1]) {
		t.Errorf("unpaused %v, want %v", got, names[:1])
	}
	if got := f.actions("create"); len(got) != 0 {
		t.Errorf("created %v, want none", got)
	}
	if eps, _ := f2.cache.Lookup(key); len(eps) != 1 {
		t.Errorf("endpoints %v, want the thawed replica", eps)
	}
	if drift := f2.c.Global().DriftCorrections; len(drift) != 0 {
		t.Errorf("adopting and waking parked replicas counted as drift: %v", drift)
	}
}

// TestInFlightCallDelaysPark: a replica still serving a call when the
// function is scaled to zero is paused only once the call ended, like a
// drained replica is stopped.
func TestInFlightCallDelaysPark(t *testing.T) {
	f := newFixture(t)
	calls := &fakeInFlight{n: map[string]int64{}}
	cfg := f.rt.cfg
	cfg.DrainTimeout = time.Hour
	cfg.Load = calls
	f.wire(cfg, f.eng, nil)
	f.tap.setParkFor(time.Hour)
	key, names := f.deployRunning(2)
	ids := f.replicaIDs() // by name: slot 0, then slot 1
	calls.set(ids[0], 1)

	f.scaleTo(key, 0)
	for i := 0; i < 3; i++ {
		if _, err := f.c.Reconcile(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := f.eng.Names(engine.StatePaused); !slices.Equal(got, names[1:]) {
		t.Fatalf("paused %v while slot 0 serves a call, want only %v", got, names[1:])
	}
	if got := f.running(""); !slices.Equal(got, names[:1]) || !f.rt.isDraining(ids[0]) {
		t.Fatalf("running %v (draining %v), want %v draining", got, f.rt.isDraining(ids[0]), names[:1])
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 0 {
		t.Errorf("endpoints %v, want none: a draining replica takes no new call", eps)
	}

	calls.set(ids[0], 0)
	f.parkAll(key, 2)
	if got := f.actions("stop"); len(got) != 0 {
		t.Errorf("stopped %v, want both parked", got)
	}
}

// TestWakeToMoreThanParked: a wake to more replicas than are
// parked thaws every parked one and creates only the rest, in the free
// slots.
func TestWakeToMoreThanParked(t *testing.T) {
	f := newFixture(t)
	f.tap.setParkFor(time.Hour)
	key, names := f.deployRunning(2)
	f.scaleTo(key, 0)
	f.parkAll(key, 2)

	f.eng.ResetActions()
	f.scaleTo(key, 3)
	if !f.work(key, 10) {
		t.Fatal("did not converge")
	}
	if got := f.actions("unpause"); !slices.Equal(got, names) {
		t.Errorf("unpaused %v, want %v", got, names)
	}
	if got := f.actions("create"); len(got) != 1 || !strings.HasSuffix(got[0], "-2") {
		t.Errorf("created %v, want one replica in slot 2", got)
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 3 {
		t.Errorf("endpoints %v, want 3", eps)
	}
}

// TestParkedFunctionIsUnchangedForResync: a resync does not queue a
// function that is parked and settled, and does not probe its frozen
// replicas; once a retention is over, it queues it.
func TestParkedFunctionIsUnchangedForResync(t *testing.T) {
	const retention = 200 * time.Millisecond
	f := newFixture(t)
	f.tap.setParkFor(retention)
	key, _ := f.deployRunning(2)
	ids := f.replicaIDs()
	f.scaleTo(key, 0)
	f.parkAll(key, 2)
	for _, id := range ids {
		f.setReady(id, false) // a frozen replica cannot answer a probe
	}
	f.queued() // whatever the parking left queued

	if err := f.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.queued(); len(got) != 0 {
		t.Fatalf("resync queued %v, want nothing: the function is parked and settled", got)
	}

	time.Sleep(retention)
	if err := f.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.queued(); !slices.Equal(got, []string{key}) {
		t.Fatalf("resync after the retention queued %v, want %s", got, key)
	}
	if got := f.eng.Names(""); len(got) != 0 {
		t.Errorf("containers left after the retention %v", got)
	}
}

// TestPausedBehindBackIsUnpaused: a replica someone paused while the
// function wants replicas is drift: it is unpaused (the same container,
// nothing created) and counted, and its pause is no crash.
func TestPausedBehindBackIsUnpaused(t *testing.T) {
	f := newFixture(t)
	f.tap.setParkFor(time.Hour) // parking applies at zero only
	key, names := f.deployRunning(2)
	ids := f.replicaIDs()
	if err := f.eng.PauseContainer(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	f.eng.ResetActions()
	if !f.work(key, 10) {
		t.Fatal("not healed")
	}
	if got := f.actions("unpause"); !slices.Equal(got, names[:1]) {
		t.Errorf("unpaused %v, want %v", got, names[:1])
	}
	if got := append(f.actions("create"), f.actions("remove")...); len(got) != 0 {
		t.Errorf("created or removed %v, want the paused replica thawed", got)
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 2 {
		t.Errorf("endpoints %v, want 2", eps)
	}
	drift := f.c.Global().DriftCorrections
	if drift["replica_paused"] != 1 || drift["replica_exited"] != 0 || len(drift) != 1 {
		t.Errorf("drift %v, want replica_paused once and nothing else", drift)
	}
	if st, _ := f.board.Get(key); st.Restarts != 0 {
		t.Errorf("restarts %d, want 0: a pause is no exit", st.Restarts)
	}
}
