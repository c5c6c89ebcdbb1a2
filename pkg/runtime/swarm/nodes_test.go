package swarm

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
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

// TestReplicasNameTheirNode: each replica's status carries the hostname of
// the node its task runs on (what the console's Node column shows), and
// none while swarm has placed the task nowhere.
func TestReplicasNameTheirNode(t *testing.T) {
	tests := []struct {
		name        string
		replicas    int
		constraints []string
		// wantNodes are the hostnames the replicas run on, as a set.
		wantNodes []string
	}{
		{name: "spread over the three nodes", replicas: 3, wantNodes: []string{"node-1", "node-2", "node-3"}},
		{name: "constrained to zone b", replicas: 2, constraints: []string{"node.labels.zone==b"}, wantNodes: []string{"node-3"}},
		{name: "no node fits: pending, no node", replicas: 1, constraints: []string{"node.labels.zone==c"}, wantNodes: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := fake.NewSwarm(testImage)
			r, _ := newTest(t, eng)
			d := fn(tt.replicas, "h1")
			d.Spec.Constraints = tt.constraints
			obs, err := r.Sync(context.Background(), d)
			if err != nil {
				t.Fatalf("sync: %v", err)
			}
			nodes, err := eng.ListNodes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			hostname := map[string]string{}
			for _, n := range nodes {
				hostname[n.ID] = n.Hostname
			}
			// What swarm says: the node of each task, by short task ID.
			onNode := map[string]string{}
			for _, tk := range eng.Tasks(svcName) {
				onNode[engine.ShortID(tk.ID)] = hostname[tk.NodeID]
			}
			if len(obs.Replicas) != tt.replicas {
				t.Fatalf("replicas %+v, want %d", obs.Replicas, tt.replicas)
			}
			seen := map[string]bool{}
			for _, rs := range obs.Replicas {
				want, ok := onNode[rs.ID]
				if !ok {
					t.Errorf("replica %+v is no task of the service", rs)
					continue
				}
				if rs.Node != want {
					t.Errorf("replica %s: node %q, want %q (its task's node)", rs.ID, rs.Node, want)
				}
				if rs.Node != "" && !strings.HasSuffix(rs.Name, "@"+rs.Node) {
					t.Errorf("replica %s: name %q and node %q disagree", rs.ID, rs.Name, rs.Node)
				}
				seen[rs.Node] = true
			}
			if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, tt.wantNodes) {
				t.Errorf("replicas run on %q, want %q", got, tt.wantNodes)
			}
		})
	}
}
