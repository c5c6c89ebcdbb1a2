package docker

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// A break shows in Docker as a burst of events, and the first reconcile
// after it often finds the function half broken and records "progressing".
// Drift used to be counted only by a reconcile following a converged one,
// so a `docker rm -f` or a network removal after such a round went
// uncounted; these tests reproduce exactly that order.
func TestDriftCountedAfterAHalfBrokenRound(t *testing.T) {
	tests := []struct {
		name string
		// first is what the first reconcile after the break sees; then is
		// the break proper.
		first, then func(f *fixture, ids []string)
		kind        string
	}{
		{"replica removed after failing its probe", func(f *fixture, ids []string) {
			f.setReady(ids[0], false) // being killed: no longer answers
		}, func(f *fixture, ids []string) {
			_ = f.eng.RemoveContainer(context.Background(), ids[0])
		}, "replica_missing"},
		{"replica seen while Docker removes it", func(f *fixture, ids []string) {
			f.eng.SetState(ids[0], engine.StateRemoving) // docker rm -f in progress
		}, func(f *fixture, ids []string) {
			_ = f.eng.RemoveContainer(context.Background(), ids[0])
		}, "replica_missing"},
		{"network removed after a replica was disconnected", func(f *fixture, ids []string) {
			f.eng.Disconnect(ids[0], f.rt.networkName("openfaas-fn", "fn"))
		}, func(f *fixture, ids []string) {
			f.eng.RemoveNetworkBehindBack(f.rt.networkName("openfaas-fn", "fn"))
		}, "network_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.deploy(deployment("fn"), 2)
			if !f.work(key, 10) {
				t.Fatal("did not converge before the break")
			}
			ids := f.replicaIDs()
			tt.first(f, ids)
			if f.work(key, 1) {
				st, _ := f.board.Get(key)
				t.Fatalf("the first round after the break converged; the test needs it half broken: %+v", st)
			}
			f.setReady(ids[0], true)
			tt.then(f, ids)
			if !f.work(key, 20) {
				t.Fatal("not healed")
			}
			if got := len(f.running("")); got != 2 {
				t.Fatalf("running = %d, want 2", got)
			}
			drift := f.c.Global().DriftCorrections
			if drift[tt.kind] != 1 {
				t.Fatalf("%s counted %d times, want once: %v", tt.kind, drift[tt.kind], drift)
			}
		})
	}
}

// TestOwnChangesAreNotDrift checks the other side: what the controller does
// because desired state changed is never counted as drift.
func TestOwnChangesAreNotDrift(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 3)
	steps := []struct {
		name string
		do   func() error
	}{
		{"deploy", func() error { return nil }},
		{"scale down", func() error { _, err := f.st.Scale(context.Background(), key, 1); return err }},
		{"scale up", func() error { _, err := f.st.Scale(context.Background(), key, 2); return err }},
		{"rolling update", func() error {
			_, err := f.st.Update(context.Background(), deployment("fn", func(d *types.FunctionDeployment) {
				d.EnvVars = map[string]string{"V": "2"}
			}), nil)
			return err
		}},
		{"delete", func() error { return f.st.Delete(context.Background(), key) }},
		{"deploy again", func() error { f.deploy(deployment("fn"), 2); return nil }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !f.work(key, 20) {
			t.Fatalf("%s: did not converge", s.name)
		}
		if drift := f.c.Global().DriftCorrections; len(drift) != 0 {
			t.Fatalf("after %s: drift counted %v, want none", s.name, drift)
		}
	}
}

// TestHandMadeCopyIsRemovedNotAdopted: a container someone made with labels
// copied from a replica (same spec hash and slot, another name) is not a
// replica. It used to be adopted as one, so a real replica could be drained
// in its place, and its exit counted as a crash of the function.
func TestHandMadeCopyIsRemovedNotAdopted(t *testing.T) {
	tests := []struct {
		name  string
		state string
	}{
		{"running copy", engine.StateRunning},
		{"copy not started yet", engine.StateCreated},
		{"copy that exited", engine.StateExited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			key := f.deploy(deployment("fn"), 2)
			if !f.work(key, 10) {
				t.Fatal("did not converge before the break")
			}
			ids := f.replicaIDs()
			list, _ := f.eng.ListContainers(context.Background(), nil)
			cp := list[0] // slot 0: the copy ties with a replica on slot
			cp.ID, cp.Name, cp.State = "copy", "someone-elses-copy", tt.state
			cp.Labels = maps.Clone(cp.Labels)
			f.eng.AddContainer(cp)

			if !f.work(key, 20) {
				t.Fatal("not healed")
			}
			if slices.Contains(f.eng.Names(""), "someone-elses-copy") {
				t.Fatalf("the copy is still there: %v", f.eng.Names(""))
			}
			if got := f.replicaIDs(); !slices.Equal(got, ids) {
				t.Fatalf("replicas %v, want the original %v untouched", got, ids)
			}
			if eps, _ := f.cache.Lookup(key); len(eps) != 2 {
				t.Fatalf("endpoints = %v, want the 2 replicas", eps)
			}
			drift := f.c.Global().DriftCorrections
			if drift["extra_replica"] != 1 || drift["replica_exited"] != 0 {
				t.Fatalf("drift = %v, want extra_replica once and no exit", drift)
			}
			if st, _ := f.board.Get(key); st.Restarts != 0 {
				t.Fatalf("restarts = %d: the copy counted as a crash of the function", st.Restarts)
			}
		})
	}
}
