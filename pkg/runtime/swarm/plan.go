package swarm

import (
	"sort"
	"strconv"
	"time"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// The planner: what a Sync concludes from a service's tasks, as pure
// functions; sync.go observes swarm and applies them.

// task is one task of a function as the planner sees it.
type task struct {
	ID, Node string
	Slot     int
	// Current: runs the desired spec hash.
	Current bool
	// Addr is where it serves on the function network ("" while unknown).
	Addr  string
	Ready bool
}

// tasks sorts a service's tasks.
type tasks struct {
	// Live run and swarm wants them running: probed, and routed to once ready.
	Live []*task
	// Starting are wanted running but not running yet (new ... starting).
	Starting []*task
	// Leaving still run but swarm is stopping them (scale down, roll, node
	// drain): never routed to.
	Leaving []*task
	// Failed counts exits of the current spec kept in swarm's task history.
	Failed int
	// ImageMissing: a task of the current spec was rejected for its image.
	ImageMissing bool
}

// sortTasks classifies list (one service's tasks) for spec hash on the
// network netName.
func sortTasks(list []engine.Task, hash, netName string) tasks {
	var out tasks
	for _, t := range list {
		tv := &task{ID: t.ID, Node: t.NodeID, Slot: t.Slot, Current: t.Labels[engine.LabelSpecHash] == hash}
		if ip := t.Addrs[netName]; ip != "" {
			tv.Addr = runtime.ReplicaAddr(ip)
		}
		wanted := t.DesiredState == engine.TaskRunning || t.DesiredState == engine.TaskReady
		switch {
		case t.State == engine.TaskRunning && wanted:
			out.Live = append(out.Live, tv)
		case t.State == engine.TaskRunning:
			out.Leaving = append(out.Leaving, tv)
		case wanted && before(t.State, engine.TaskRunning):
			out.Starting = append(out.Starting, tv)
		}
		if tv.Current && t.State == engine.TaskFailed {
			out.Failed++
		}
		if tv.Current && t.ImageMissing && (wanted || t.State == engine.TaskRejected) {
			out.ImageMissing = true
		}
	}
	for _, l := range [][]*task{out.Live, out.Starting, out.Leaving} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Slot != l[j].Slot {
				return l[i].Slot < l[j].Slot
			}
			return l[i].ID < l[j].ID
		})
	}
	return out
}

// taskOrder is swarm's order of task states up to running.
var taskOrder = map[string]int{
	engine.TaskNew: 1, engine.TaskPending: 2, engine.TaskAssigned: 3, engine.TaskAccepted: 4,
	engine.TaskPreparing: 5, engine.TaskReady: 6, engine.TaskStarting: 7, engine.TaskRunning: 8,
}

// before tells whether state comes before running in a task's life.
func before(state, than string) bool {
	n, ok := taskOrder[state]
	return ok && n < taskOrder[than]
}

// endpoints are the live, ready tasks with an address, of any spec (an
// old task serves until swarm retires it, so a roll keeps its capacity),
// in a stable order.
func endpoints(ts tasks) []faas.Endpoint {
	var eps []faas.Endpoint
	for _, t := range ts.Live {
		if t.Ready && t.Addr != "" {
			eps = append(eps, faas.Endpoint{Replica: t.ID, Addr: t.Addr})
		}
	}
	runtime.SortEndpoints(eps)
	return eps
}

// convergence tells whether the function is exactly as desired: the
// service at the desired spec (specDone), want live tasks, all of the
// current spec and ready, none starting or leaving; and if not, why.
func convergence(ts tasks, want int, specDone bool) (converged bool, current int, reason runtime.Reason) {
	cur, readyCur, old := 0, 0, 0
	for _, t := range ts.Live {
		switch {
		case !t.Current:
			old++
		case t.Ready:
			cur++
			readyCur++
		default:
			cur++
		}
	}
	converged = specDone && cur == want && readyCur == want && old == 0 && len(ts.Starting) == 0 && len(ts.Leaving) == 0
	switch {
	case converged:
	case ts.ImageMissing && readyCur < want:
		reason = runtime.ReasonImageNotAvailable
	default:
		reason = runtime.ReasonNotConverged(ts.Failed > 1 && readyCur < want, old, cur, readyCur)
	}
	return converged, cur + old, reason
}

// requeue is when to look again: soon while tasks come and go, at swarm's
// own restart cadence while it cannot run the function, never once
// converged.
func requeue(converged bool, reason runtime.Reason, probe, restartDelay, maxWait time.Duration) time.Duration {
	switch {
	case converged:
		return 0
	case reason == runtime.ReasonImageNotAvailable || reason == runtime.ReasonCrashLoopBackOff:
		return min(restartDelay, maxWait)
	default:
		return probe
	}
}

// replicaStatuses describe the tasks for /debug/reconcile and the console:
// each named SERVICE.SLOT@NODE (as swarm names task containers, plus where
// it runs) with its node's hostname (none while the task has no node),
// current spec first, in slot order.
func replicaStatuses(service string, ts tasks, nodeName func(string) string) []status.Replica {
	var out []status.Replica
	add := func(l []*task, state func(*task) string) {
		for _, t := range l {
			node := ""
			if t.Node != "" {
				node = nodeName(t.Node)
			}
			out = append(out, status.Replica{
				Name: service + "." + strconv.Itoa(t.Slot) + "@" + nodeName(t.Node),
				ID:   engine.ShortID(t.ID), Slot: t.Slot, State: state(t), CurrentSpec: t.Current,
				Node: node,
			})
		}
	}
	add(ts.Live, func(t *task) string {
		if t.Ready {
			return status.ReplicaReady
		}
		return status.ReplicaStarting
	})
	add(ts.Starting, func(*task) string { return status.ReplicaStarting })
	add(ts.Leaving, func(*task) string { return status.ReplicaDraining })
	runtime.SortReplicas(out)
	return out
}
