package docker

import (
	"fmt"
	"testing"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// TestReconcileRemovesDuplicateNetwork plants a second network of the
// function's name, as a network create still running in Docker when a
// previous daemon was killed leaves behind, and checks that a reconcile
// keeps one, removes the other and counts the drift.
func TestReconcileRemovesDuplicateNetwork(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("dup"), 1)
	name := f.rt.networkName("openfaas-fn", "dup")
	for i := 1; i <= 2; i++ {
		f.eng.AddNetwork(engine.Network{ID: fmt.Sprintf("%064x", i), Name: name, Labels: f.rt.keyLabels("openfaas-fn", "dup")})
	}
	f.reconcile(key, 20)
	if got := f.eng.NetworkNames(); len(got) != 1 || got[0] != name {
		t.Fatalf("networks after reconciling a duplicate: %v, want one %s", got, name)
	}
	if got := f.running(""); len(got) != 1 {
		t.Errorf("running replicas: %v, want 1", got)
	}
	if n := f.c.Global().DriftCorrections["network_duplicate"]; n != 1 {
		t.Errorf("network_duplicate drift corrections = %d, want 1", n)
	}
}
