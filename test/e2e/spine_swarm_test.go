package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/openfaas/faas-provider/types"
)

// Runtime-neutral helpers of the spine tests (spine_test.go), which run on
// both runtimes: what one host keeps as containers, a swarm keeps as a
// service, its tasks, and the tasks' containers on whichever node runs
// them. The swarm half of "what lands in Docker" is checkSwarmObjects.

// swarmEndedStates are the task states after which a task is history:
// swarm keeps such tasks (and their stopped containers) around, but they
// are no longer replicas of the function.
var swarmEndedStates = []swarm.TaskState{
	swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected,
	swarm.TaskStateOrphaned, swarm.TaskStateRemove,
}

// liveReplicas returns the IDs of a function's replicas that have not
// ended, sorted: its containers in any state on one host (a stopped
// container is still there for the daemon to remove), its tasks short of
// an ended state on a swarm (a task swarm is stopping counts until it has
// stopped).
func (d *daemon) liveReplicas(name, ns string) ([]string, error) {
	var ids []string
	if d.runtime != runtimeSwarm {
		cs, err := d.fnContainers(name, ns, true)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc, err := d.swarmService(ctx, name, ns)
		if err != nil {
			return nil, err
		}
		tasks, err := d.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
		if err != nil {
			return nil, err
		}
		for _, tk := range tasks {
			if !slices.Contains(swarmEndedStates, tk.Status.State) {
				ids = append(ids, tk.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// replicaRef is one replica of the instance and the function it belongs to.
type replicaRef struct{ ID, Function string }

func (r replicaRef) String() string { return short(r.ID) + "(" + r.Function + ")" }

// instanceReplicas lists everything of the instance that runs functions:
// on one host every container carrying the instance label, in any state;
// on a swarm the tasks not yet ended of every service carrying it, and a
// service that has none as a ref with an empty ID, so an extra service is
// never missed.
func (d *daemon) instanceReplicas() ([]replicaRef, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var refs []replicaRef
	if d.runtime != runtimeSwarm {
		cs, err := d.docker.ContainerList(ctx, containerListAll(labelInstance+"="+d.instance))
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			refs = append(refs, replicaRef{c.ID, c.Labels[labelFunction]})
		}
		return refs, nil
	}
	svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance))})
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		tasks, err := d.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", s.ID))})
		if err != nil {
			return nil, err
		}
		live := 0
		for _, tk := range tasks {
			if !slices.Contains(swarmEndedStates, tk.Status.State) {
				refs = append(refs, replicaRef{tk.ID, s.Spec.Labels[labelFunction]})
				live++
			}
		}
		if live == 0 {
			refs = append(refs, replicaRef{"", s.Spec.Labels[labelFunction]})
		}
	}
	return refs, nil
}

// swarmNodes caches node clients by swarm node ID (they never change
// within a run; only Info says which socket is which node).
var swarmNodes sync.Map // node ID → *client.Client

// swarmNode returns the client of the swarm node with that ID.
func (d *daemon) swarmNode(ctx context.Context, nodeID string) (*client.Client, error) {
	if c, ok := swarmNodes.Load(nodeID); ok {
		return c.(*client.Client), nil
	}
	for _, n := range d.swarm.nodes {
		info, err := n.Info(ctx)
		if err != nil {
			continue // a node that is down runs no task we could look at
		}
		swarmNodes.Store(info.Swarm.NodeID, n)
		if info.Swarm.NodeID == nodeID {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node socket for swarm node %s", short(nodeID))
}

// replicaContainer inspects the container of one replica: the container
// itself on one host; on a swarm, the task's container on the node that
// runs it, which is what actually landed in Docker there.
func (d *daemon) replicaContainer(id string) (container.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.runtime != runtimeSwarm {
		return d.docker.ContainerInspect(ctx, id)
	}
	tk, _, err := d.docker.TaskInspectWithRaw(ctx, id)
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("inspect task %s: %w", short(id), err)
	}
	if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID == "" {
		return container.InspectResponse{}, fmt.Errorf("task %s (%s) has no container yet", short(id), tk.Status.State)
	}
	node, err := d.swarmNode(ctx, tk.NodeID)
	if err != nil {
		return container.InspectResponse{}, err
	}
	c, err := node.ContainerInspect(ctx, tk.Status.ContainerStatus.ContainerID)
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("task %s: %w", short(id), err)
	}
	return c, nil
}

// replicaHostnames returns the hostnames of a function's running replicas
// (fn-hostname answers with its container's hostname on both runtimes).
func (d *daemon) replicaHostnames(name, ns string) (map[string]bool, int, error) {
	ids, err := d.replicaIDs(name, ns)
	if err != nil {
		return nil, 0, err
	}
	hosts := map[string]bool{}
	for _, id := range ids {
		c, err := d.replicaContainer(id)
		if err != nil {
			return nil, 0, err
		}
		hosts[c.Config.Hostname] = true
	}
	return hosts, len(ids), nil
}

// replicaStartedAt is when the container of a replica last started.
func (d *daemon) replicaStartedAt(id string) (string, error) {
	c, err := d.replicaContainer(id)
	if err != nil {
		return "", err
	}
	if c.State == nil {
		return "", fmt.Errorf("replica %s: container %s has no state", short(id), short(c.ID))
	}
	return c.State.StartedAt, nil
}

// swarmNetworkName is the function network's name on a swarm:
// PREFIX-NAME_NAMESPACE (swarm names are DNS labels, so '_' stands where
// one host's names have a dot).
func (d *daemon) swarmNetworkName(ns, fn string) string {
	return d.network + "-" + fn + "_" + ns
}

// fnLeftovers describes what is left of a deleted function ("" when
// nothing): containers and networks on one host; on a swarm its service,
// its tasks' containers on every node (swarm removes them with the
// service) and its overlay network.
func (d *daemon) fnLeftovers(name, ns string) (string, error) {
	nws, err := d.fnNetworks(name)
	if err != nil {
		return "", err
	}
	if d.runtime != runtimeSwarm {
		cs, err := d.fnContainers(name, ns, true)
		if err != nil {
			return "", err
		}
		if len(cs) != 0 || len(nws) != 0 {
			return fmt.Sprintf("%s: %d containers and %d networks left", name, len(cs), len(nws)), nil
		}
		return "", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+d.instance),
		filters.Arg("label", labelFunction+"="+name), filters.Arg("label", labelNamespace+"="+ns))
	svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return "", err
	}
	var ctrs []string
	for i, n := range d.swarm.nodes {
		cs, err := n.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return "", fmt.Errorf("node%d: %w", i+1, err)
		}
		for _, c := range cs {
			ctrs = append(ctrs, fmt.Sprintf("%s on node%d (%s)", short(c.ID), i+1, c.State))
		}
	}
	if len(svcs) != 0 || len(ctrs) != 0 || len(nws) != 0 {
		return fmt.Sprintf("%s: %d services, containers %v and %d networks left", name, len(svcs), ctrs, len(nws)), nil
	}
	return "", nil
}

// checkSwarmObjects is the swarm half of the spine's "docker objects":
// one replicated service per function carrying the ownership labels and
// named after the instance, its ContainerSpec (env, labels, read-only
// root, no-new-privileges) and resources, the function's own attachable
// overlay network and nothing else; and then the task's container on its
// node, which must show the same.
func (d *daemon) checkSwarmObjects(t *testing.T, name string, spec types.FunctionDeployment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantLabels := map[string]string{labelManaged: "true", labelInstance: d.instance, labelFunction: name, labelNamespace: defaultNamespace}
	svc, err := d.swarmService(ctx, name, defaultNamespace)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	s := svc.Spec
	cs := s.TaskTemplate.ContainerSpec
	if cs == nil {
		t.Errorf("%s: service %s has no container spec", name, s.Name)
		return
	}
	for k, v := range wantLabels {
		if s.Labels[k] != v {
			t.Errorf("%s: service label %s=%q, want %q", name, k, s.Labels[k], v)
		}
		if cs.Labels[k] != v {
			t.Errorf("%s: container spec label %s=%q, want %q", name, k, cs.Labels[k], v)
		}
	}
	for k, v := range deref(spec.Labels) {
		if cs.Labels[k] != v {
			t.Errorf("%s: container spec label %s=%q, want the function's %q", name, k, cs.Labels[k], v)
		}
	}
	if !strings.HasPrefix(s.Name, d.instance) {
		t.Errorf("%s: service name %q does not start with the instance %q", name, s.Name, d.instance)
	}
	if s.Mode.Replicated == nil || s.Mode.Replicated.Replicas == nil || *s.Mode.Replicated.Replicas != 1 {
		t.Errorf("%s: service mode %+v, want replicated with 1 replica", name, s.Mode)
	}

	// The function's own network: the only one of the service, an
	// attachable overlay with the ownership labels.
	wantNet := d.swarmNetworkName(defaultNamespace, name)
	if len(s.TaskTemplate.Networks) != 1 {
		t.Errorf("%s: service networks %+v, want only %q", name, s.TaskTemplate.Networks, wantNet)
	} else if n, err := d.docker.NetworkInspect(ctx, s.TaskTemplate.Networks[0].Target, network.InspectOptions{}); err != nil {
		t.Errorf("%s: inspect the service's network: %v", name, err)
	} else if n.Name != wantNet || n.Driver != "overlay" || !n.Attachable {
		t.Errorf("%s: service network %s driver %s attachable %v, want the attachable overlay %q", name, n.Name, n.Driver, n.Attachable, wantNet)
	}
	nws, err := d.fnNetworks(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(nws) != 1 || nws[0].Name != wantNet {
		t.Errorf("%s: networks labelled for the function: %+v, want one named %q", name, nws, wantNet)
	} else {
		for k, v := range wantLabels {
			if nws[0].Labels[k] != v {
				t.Errorf("%s: network label %s=%q, want %q", name, k, nws[0].Labels[k], v)
			}
		}
	}

	// What the daemon asked swarm for.
	env := envList(cs.Env)
	for k, v := range spec.EnvVars {
		if env[k] != v {
			t.Errorf("%s: container spec env %s=%q, want %q", name, k, env[k], v)
		}
	}
	if spec.EnvProcess != "" && env["fprocess"] != spec.EnvProcess {
		t.Errorf("%s: container spec env fprocess=%q, want %q", name, env["fprocess"], spec.EnvProcess)
	}
	if cs.ReadOnly != spec.ReadOnlyRootFilesystem {
		t.Errorf("%s: container spec ReadOnly=%v, want %v", name, cs.ReadOnly, spec.ReadOnlyRootFilesystem)
	}
	res := s.TaskTemplate.Resources
	if spec.Limits != nil && spec.Limits.Memory == "128Mi" && (res == nil || res.Limits == nil || res.Limits.MemoryBytes != 128<<20) {
		t.Errorf("%s: service resources %+v, want a memory limit of %d (128Mi)", name, res, 128<<20)
	}
	// Swarm keeps ContainerSpec.Privileges.NoNewPrivileges only from API
	// 1.46 (Engine 27) on; an older engine drops the field, and its tasks
	// run without the flag (the daemon cannot ask for it another way).
	nnpKept := versions.GreaterThanOrEqualTo(d.docker.ClientVersion(), "1.46")
	if nnpKept && (cs.Privileges == nil || !cs.Privileges.NoNewPrivileges) {
		t.Errorf("%s: container spec privileges %+v lack no-new-privileges", name, cs.Privileges)
	}

	// What landed on the node: the one running task's container.
	tasks, err := d.swarmTasks(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Errorf("%s: %d running tasks, want 1", name, len(tasks))
		return
	}
	tk := tasks[0]
	var attached []string
	for _, a := range tk.NetworksAttachments {
		attached = append(attached, a.Network.Spec.Name)
	}
	if !reflect.DeepEqual(attached, []string{wantNet}) {
		t.Errorf("%s: task %s attached to %v, want only %q", name, short(tk.ID), attached, wantNet)
	}
	c, err := d.replicaContainer(tk.ID)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	for k, v := range wantLabels {
		if c.Config.Labels[k] != v {
			t.Errorf("%s: container label %s=%q, want %q", name, k, c.Config.Labels[k], v)
		}
	}
	if !strings.HasPrefix(strings.TrimPrefix(c.Name, "/"), d.instance) {
		t.Errorf("%s: container name %q does not start with the instance %q", name, c.Name, d.instance)
	}
	if c.State == nil || !c.State.Running {
		t.Errorf("%s: container not running: %+v", name, c.State)
	}
	if gotNets := slices.Sorted(maps.Keys(c.NetworkSettings.Networks)); !reflect.DeepEqual(gotNets, []string{wantNet}) {
		t.Errorf("%s: container networks %v, want only %q", name, gotNets, wantNet)
	}
	cenv := envList(c.Config.Env)
	for k, v := range spec.EnvVars {
		if cenv[k] != v {
			t.Errorf("%s: container env %s=%q, want %q", name, k, cenv[k], v)
		}
	}
	if spec.EnvProcess != "" && cenv["fprocess"] != spec.EnvProcess {
		t.Errorf("%s: container env fprocess=%q, want %q", name, cenv["fprocess"], spec.EnvProcess)
	}
	if c.HostConfig.ReadonlyRootfs != spec.ReadOnlyRootFilesystem {
		t.Errorf("%s: ReadonlyRootfs=%v, want %v", name, c.HostConfig.ReadonlyRootfs, spec.ReadOnlyRootFilesystem)
	}
	if spec.Limits != nil && spec.Limits.Memory == "128Mi" && c.HostConfig.Memory != 128<<20 {
		t.Errorf("%s: memory limit %d, want %d (128Mi)", name, c.HostConfig.Memory, 128<<20)
	}
	hasNNP := slices.ContainsFunc(c.HostConfig.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") })
	switch {
	case nnpKept && !hasNNP:
		t.Errorf("%s: SecurityOpt %v lacks no-new-privileges", name, c.HostConfig.SecurityOpt)
	case !nnpKept:
		// The flag cannot be had on such an engine; the daemon must say
		// so rather than leave the difference from one host unseen.
		t.Logf("%s: engine API %s < 1.46 keeps no NoNewPrivileges in a service spec: the task runs with SecurityOpt %v",
			name, d.docker.ClientVersion(), c.HostConfig.SecurityOpt)
		if err := poll(10*time.Second, pollInterval, func() error {
			b, err := os.ReadFile(d.logPath)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), "dropped no-new-privileges") {
				return errors.New("no warning in the daemon log")
			}
			return nil
		}); err != nil {
			t.Errorf("%s: the engine dropped no-new-privileges and the daemon did not warn: %v", name, err)
		}
	}
	var lim, resv swarm.Resources
	if res != nil && res.Limits != nil {
		lim = swarm.Resources{NanoCPUs: res.Limits.NanoCPUs, MemoryBytes: res.Limits.MemoryBytes}
	}
	if res != nil && res.Reservations != nil {
		resv = *res.Reservations
	}
	t.Logf("%s: service %s task %s on node %s container %s hostname=%s limits cpu=%d mem=%d reservations cpu=%d mem=%d NanoCPUs=%d",
		name, s.Name, short(tk.ID), short(tk.NodeID), short(c.ID), c.Config.Hostname,
		lim.NanoCPUs, lim.MemoryBytes, resv.NanoCPUs, resv.MemoryBytes, c.HostConfig.NanoCPUs)
}

// replicaKind names what liveReplicas counts on a runtime, for messages.
func replicaKind(rt string) string {
	if rt == runtimeSwarm {
		return "tasks not ended"
	}
	return "containers (all states)"
}
