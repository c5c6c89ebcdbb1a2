package docker

import (
	"context"
	"slices"
	"testing"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// TestDaemonInContainerJoinsAndLeavesFunctionNetworks: a daemon running in
// a container reaches replicas only through their networks, and must leave
// a network before it can be removed.
func TestDaemonInContainerJoinsAndLeavesFunctionNetworks(t *testing.T) {
	f := newFixture(t)
	f.eng.AddContainer(engine.Container{ID: "self", Name: "dockerfaasd", State: engine.StateRunning, Networks: map[string]string{"bridge": "172.17.0.2"}})
	f.rt.cfg.Self = "self"

	key := f.deploy(deployment("fn"), 1)
	joined := "connect dockerfaasd " + f.rt.networkName("openfaas-fn", "fn")
	left := "disconnect dockerfaasd " + f.rt.networkName("openfaas-fn", "fn")
	f.reconcile(key, 5)
	if !slices.Contains(f.eng.Actions(), joined) {
		t.Fatalf("daemon container did not join the function network: %v", f.eng.Actions())
	}

	// Idempotent: a second pass does not connect again.
	f.eng.ResetActions()
	f.reconcile(key, 3)
	for _, a := range f.eng.Actions() {
		if a == joined {
			t.Fatalf("joined twice: %v", f.eng.Actions())
		}
	}

	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	f.reconcile(key, 3)
	if n := f.eng.NetworkNames(); len(n) != 0 {
		t.Fatalf("network not removed (daemon still attached?): %v", n)
	}
	if !slices.Contains(f.eng.Actions(), left) {
		t.Fatalf("daemon container did not leave: %v", f.eng.Actions())
	}
}
