package swarm

import (
	"context"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
)

// TestNodesCountReplicasWhereTheyRun: the debug page's node list counts the
// replicas of the last Sync on each node, and each node once.
func TestNodesCountReplicasWhereTheyRun(t *testing.T) {
	eng := fake.NewSwarm(testImage)
	r, _ := newTest(t, eng)
	mustSync(t, r, fn(3, "h1"))
	nodes, err := r.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("nodes = %+v, want the fake's 3", nodes)
	}
	replicas := 0
	for i, n := range nodes {
		if i > 0 && nodes[i-1].Hostname >= n.Hostname {
			t.Errorf("nodes not sorted by hostname: %+v", nodes)
		}
		if n.Replicas > 0 && n.Functions != 1 {
			t.Errorf("node %s: %d replicas of %d functions, want 1 function", n.Hostname, n.Replicas, n.Functions)
		}
		replicas += n.Replicas
	}
	if replicas != 3 {
		t.Errorf("replicas over all nodes = %d, want 3: %+v", replicas, nodes)
	}
	mustSync(t, r, fn(1, "h1"))
	nodes, _ = r.Nodes(context.Background())
	replicas = 0
	for _, n := range nodes {
		replicas += n.Replicas
	}
	if replicas != 1 {
		t.Errorf("after scaling to 1, replicas over all nodes = %d: %+v", replicas, nodes)
	}
}
