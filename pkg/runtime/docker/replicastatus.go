package docker

import (
	"context"
	"sync"
	"time"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// hostRetry is how long a failed host name lookup is not tried again.
const hostRetry = time.Minute

// hostName caches the engine's host name, which every replica's status
// carries: it does not change while the engine runs, so it is asked once
// (again after hostRetry when the engine could not say), never per Sync.
type hostName struct {
	mu    sync.Mutex
	name  string
	known bool
	retry time.Time // no lookup before then, after a failure
}

// get returns the host name of eng, "" when eng cannot say (yet).
func (h *hostName) get(ctx context.Context, eng engine.Engine) string {
	hn, ok := eng.(engine.HostNamer)
	if !ok {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.known || time.Now().Before(h.retry) {
		return h.name
	}
	name, err := hn.HostName(ctx)
	if err != nil {
		h.retry = time.Now().Add(hostRetry)
		return ""
	}
	h.name, h.known = name, true
	return name
}

// replicaStatuses describes the observed replicas (running and parked) for
// /debug/reconcile and the console, in
// slot order with old-spec replicas last, so a person sees which container
// is which without asking Docker. All run on node, the engine's host.
func replicaStatuses(replicas []*replica, node string) []status.Replica {
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
			Name: r.Name, ID: engine.ShortID(r.ID), Slot: r.Slot, State: state, CurrentSpec: r.Current, Node: node,
		})
	}
	runtime.SortReplicas(out)
	return out
}
