package docker

import (
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// replicaStatuses describes the observed replicas (running and parked) for
// /debug/reconcile, in
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
		case r.State == statePaused:
			state = status.ReplicaPaused
		case r.Draining:
			state = status.ReplicaDraining
		case r.Ready:
			state = status.ReplicaReady
		}
		out = append(out, status.Replica{
			Name: r.Name, ID: engine.ShortID(r.ID), Slot: r.Slot, State: state, CurrentSpec: r.Current,
		})
	}
	runtime.SortReplicas(out)
	return out
}
