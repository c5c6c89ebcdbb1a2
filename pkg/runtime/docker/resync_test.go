package docker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// A resync pass lists Docker once, whatever the number of functions, and
// queues only the functions that are not exactly as their last reconcile
// left them; a break of every kind the drift catalogue knows is caught.
func TestResyncQueuesOnlyChangedFunctions(t *testing.T) {
	// Each break is done to function "b" (two replicas, ids) by hand.
	tests := []struct {
		name  string
		brk   func(f *fixture, ids []string)
		queue bool
	}{
		{"nothing changed", func(f *fixture, ids []string) {}, false},
		{"replica removed", func(f *fixture, ids []string) {
			_ = f.eng.RemoveContainer(context.Background(), ids[0])
		}, true},
		{"replica exited", func(f *fixture, ids []string) { f.eng.SetState(ids[0], engine.StateExited) }, true},
		{"replica paused", func(f *fixture, ids []string) { _ = f.eng.PauseContainer(context.Background(), ids[0]) }, true},
		{"replica disconnected", func(f *fixture, ids []string) {
			f.eng.Disconnect(ids[1], f.rt.networkName(faas.DefaultNamespace, "b"))
		}, true},
		{"network removed", func(f *fixture, ids []string) {
			f.eng.RemoveNetworkBehindBack(f.rt.networkName(faas.DefaultNamespace, "b"))
		}, true},
		{"extra container with our labels", func(f *fixture, ids []string) {
			ct := f.container(ids[0])
			ct.ID, ct.Name = "copy", "copy-by-hand"
			f.eng.AddContainer(ct)
		}, true},
		{"replica stopped answering", func(f *fixture, ids []string) { f.setReady(ids[1], false) }, true},
		{"desired replicas changed", func(f *fixture, ids []string) {
			if _, err := f.st.Scale(context.Background(), faas.Key(faas.DefaultNamespace, "b"), 3); err != nil {
				f.t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			lc := &listCounter{Engine: f.eng}
			f.wire(f.rt.cfg, lc, nil)
			keys := map[string]string{}
			for _, name := range []string{"a", "b", "c"} {
				keys[name] = f.deploy(deployment(name), 2)
				if !f.work(keys[name], 10) {
					t.Fatalf("%s did not converge", name)
				}
			}
			var ids []string
			for _, ct := range f.listOf("b") {
				ids = append(ids, ct.ID)
			}
			tt.brk(f, ids)

			lc.lists.Store(0)
			if err := f.c.ResyncAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := lc.lists.Load(); n != 2 {
				t.Errorf("resync made %d list calls, want 2 (containers and networks once)", n)
			}
			got := f.queued()
			var want []string
			if tt.queue {
				want = []string{keys["b"]}
			}
			if len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
				t.Fatalf("resync queued %v, want %v", got, want)
			}
		})
	}
}

// After a daemon restart nothing has been reconciled yet, so the first pass
// queues every function, adopted or not.
func TestResyncAfterRestartQueuesAll(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"a", "b"} {
		if !f.work(f.deploy(deployment(name), 1), 10) {
			t.Fatalf("%s did not converge", name)
		}
	}
	fresh := f.restarted(f.eng)
	if err := fresh.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fresh.queued(); len(got) != 2 {
		t.Fatalf("first resync of a new controller queued %v, want both functions", got)
	}
}

func (f *fixture) listOf(name string) []engine.Container {
	f.t.Helper()
	list, err := f.eng.ListContainers(context.Background(), f.rt.keyLabels(faas.DefaultNamespace, name))
	if err != nil || len(list) == 0 {
		f.t.Fatalf("containers of %s: %v, %v", name, list, err)
	}
	return list
}

func (f *fixture) container(id string) engine.Container {
	f.t.Helper()
	list, _ := f.eng.ListContainers(context.Background(), nil)
	for _, ct := range list {
		if ct.ID == id {
			return ct
		}
	}
	f.t.Fatalf("no container %s", id)
	return engine.Container{}
}

// The neighbour table warning is logged once when the running replicas
// reach three quarters of the limit, and once more when they drop back.
func TestResyncWarnsNearNeighborLimit(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	r := New(Config{Instance: "t", NeighborLimit: 8, Log: log}, fake.New())
	running := func(n int) []engine.Container {
		cs := make([]engine.Container, n+2)
		for i := range cs {
			cs[i].State = engine.StateRunning
		}
		cs[n].State, cs[n+1].State = engine.StateExited, engine.StateCreated // not counted
		return cs
	}
	steps := []struct {
		running int
		want    logrus.Level // 0: nothing logged
	}{
		{5, 0},
		{6, logrus.WarnLevel},
		{7, 0},
		{6, 0},
		{5, logrus.InfoLevel},
		{1, 0},
	}
	for i, s := range steps {
		hook.Reset()
		r.checkNeighbors(running(s.running))
		got := hook.AllEntries()
		switch {
		case s.want == 0 && len(got) != 0:
			t.Errorf("step %d (%d running): logged %q", i, s.running, got[0].Message)
		case s.want != 0 && (len(got) != 1 || got[0].Level != s.want):
			t.Errorf("step %d (%d running): logged %d entries, want one at %s", i, s.running, len(got), s.want)
		}
	}
}

// A reconcile right after a resync uses the resync's listing of its key
// instead of listing again, unless something touched the key in between.
func TestReconcileUsesValidResyncSnapshot(t *testing.T) {
	tests := []struct {
		name    string
		between func(f *fixture, key string)
		lists   int64 // list calls the reconcile makes itself
	}{
		{"nothing in between", func(f *fixture, key string) {}, 0},
		{"an event for the key", func(f *fixture, key string) { f.rt.touch(key) }, 2},
		{"an event for another key", func(f *fixture, key string) { f.rt.touch("openfaas-fn/other") }, 0},
		{"a reconcile of the key", func(f *fixture, key string) { f.work(key, 1) }, 2},
		{"listing too old", func(f *fixture, key string) {
			f.rt.mu.Lock()
			f.rt.listing.taken = time.Now().Add(-snapshotTTL)
			f.rt.mu.Unlock()
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			lc := &listCounter{Engine: f.eng}
			f.wire(f.rt.cfg, lc, nil)
			key := f.deploy(deployment("fn"), 2)
			if err := f.c.ResyncAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			tt.between(f, key)
			lc.lists.Store(0)
			if _, err := f.c.Reconcile(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			if n := lc.lists.Load(); n != tt.lists {
				t.Errorf("reconcile made %d list calls, want %d", n, tt.lists)
			}
			// Either way it acted on what is really there: two replicas.
			if !f.work(key, 10) || len(f.running("t-fn")) != 2 {
				t.Fatalf("did not converge to 2 replicas: %v", f.eng.Names(""))
			}
		})
	}
}

// A daemon restarted over running replicas adopts them from the first
// resync's listing: no list call per function, no container touched.
func TestAdoptionFromResyncSnapshot(t *testing.T) {
	f := newFixture(t)
	var keys []string
	for _, name := range []string{"a", "b", "c"} {
		keys = append(keys, f.deploy(deployment(name), 2))
		if !f.work(keys[len(keys)-1], 10) {
			t.Fatalf("%s did not converge", name)
		}
	}
	before := f.replicaIDs()
	f.eng.ResetActions()

	lc := &listCounter{Engine: f.eng}
	f2 := f.restarted(lc)
	if err := f2.c.ResyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	lc.lists.Store(0)
	for _, k := range keys {
		if !f2.work(k, 1) {
			t.Fatalf("%s not adopted in one reconcile", k)
		}
		if eps, _ := f2.cache.Lookup(k); len(eps) != 2 {
			t.Fatalf("%s: %d endpoints published, want 2", k, len(eps))
		}
	}
	if n := lc.lists.Load(); n != 0 {
		t.Errorf("adoption made %d list calls, want 0", n)
	}
	if a := f.eng.Actions(); len(a) != 0 {
		t.Errorf("adoption changed Docker: %v", a)
	}
	if after := f.replicaIDs(); !slices.Equal(before, after) {
		t.Errorf("replicas %v, want the same %v", after, before)
	}
}
