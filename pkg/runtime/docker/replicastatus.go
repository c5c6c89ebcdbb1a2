package controller

import (
	"sort"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// replicaStatuses describes the observed replicas for /debug/reconcile, in
// slot order with old-spec replicas last, so a person sees which container
// is which without asking Docker.
func replicaStatuses(replicas []*replica) []status.Replica {
	if len(replicas) == 0 {
		return nil
	}
	out := make([]status.Replica, 0, len(replicas))
	for _, r := range replicas {
		state := status.ReplicaStarting
		switch {
		case r.draining:
			state = status.ReplicaDraining
		case r.ready:
			state = status.ReplicaReady
		}
		id := r.ID
		if len(id) > 12 {
			id = id[:12]
		}
		out = append(out, status.Replica{
			Name: r.Name, ID: id, Slot: r.slot, State: state, CurrentSpec: r.current,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CurrentSpec != out[j].CurrentSpec {
			return out[i].CurrentSpec
		}
		return out[i].Slot < out[j].Slot
	})
	return out
}
