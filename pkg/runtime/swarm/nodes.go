package swarm

import (
	"context"
	"fmt"
	"sort"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// Nodes lists the swarm's nodes for /debug/reconcile: their role, state and
// availability as swarm reports them now, and the replicas of this
// instance each one runs (as of the last Sync of each function).
func (r *Runtime) Nodes(ctx context.Context) ([]status.Node, error) {
	nodes, err := r.eng.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list swarm nodes: %w", r.metrics.count("list-nodes", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]status.Node, 0, len(nodes))
	for _, n := range nodes {
		r.nodes[n.ID] = n.Hostname
		sn := status.Node{ID: n.ID, Hostname: n.Hostname, Role: n.Role, State: n.State,
			Availability: n.Availability, Addr: n.Addr}
		for _, count := range r.placed[n.ID] {
			sn.Replicas += count
			sn.Functions++
		}
		out = append(out, sn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out, nil
}
