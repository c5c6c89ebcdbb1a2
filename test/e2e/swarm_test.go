package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/openfaas/go-sdk/stack"
)

// Swarm-only tests: what a swarm adds to one host (placement across
// nodes, node drain and loss) and how functions map onto services.

// TestSwarmStackDeployMapsToServices deploys the spine's stack file on the
// swarm and checks what lands there: one replicated service per function
// on its own attachable overlay, resources as Kubernetes quantities (500m
// included), read-only root with a tmpfs /tmp, the constraint, labels;
// invocations reach tasks on several nodes; delete removes it all.
func TestSwarmStackDeployMapsToServices(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, onRuntime(runtimeSwarm))
	hostImg, echoImg := swarmFnImage(t, fnHostname), swarmFnImage(t, fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	stackPath := filepath.Join(t.TempDir(), "stack.yml")
	writeFile(t, stackPath, fmt.Sprintf(stackTemplate, d.baseURL, hostImg, echoImg))
	services, err := stack.ParseYAMLFile(stackPath, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range services.Functions {
		spec, err := deploymentFromStack(filepath.Dir(stackPath), name, f)
		if err != nil {
			t.Fatal(err)
		}
		if put, post := d.deployLikeFaasCLI(spec); put != http.StatusNotFound || post != http.StatusAccepted {
			t.Fatalf("deploy %s like faas-cli: PUT %d then POST %d", name, put, post)
		}
	}
	d.waitReady("echo", defaultNamespace, 1)
	d.waitReady("hostname", defaultNamespace, 1)

	svc, err := d.swarmService(ctx, "echo", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	spec := svc.Spec
	if spec.Mode.Replicated == nil || spec.Mode.Replicated.Replicas == nil || *spec.Mode.Replicated.Replicas != 1 {
		t.Errorf("service mode %+v, want replicated with 1 replica", spec.Mode)
	}
	cs := spec.TaskTemplate.ContainerSpec
	res := spec.TaskTemplate.Resources
	switch {
	case res == nil || res.Limits == nil || res.Reservations == nil:
		t.Errorf("resources %+v, want limits and reservations", res)
	default:
		if res.Limits.NanoCPUs != 500_000_000 || res.Limits.MemoryBytes != 128<<20 {
			t.Errorf("limits cpu=%d nano, memory=%d; want 500m = 5e8 and 128Mi", res.Limits.NanoCPUs, res.Limits.MemoryBytes)
		}
		if res.Reservations.NanoCPUs != 100_000_000 || res.Reservations.MemoryBytes != 64<<20 {
			t.Errorf("reservations cpu=%d nano, memory=%d; want 100m and 64Mi", res.Reservations.NanoCPUs, res.Reservations.MemoryBytes)
		}
	}
	if cs == nil || !cs.ReadOnly {
		t.Errorf("read-only root fs not set: %+v", cs)
	}
	if cs != nil && !slices.ContainsFunc(cs.Mounts, func(m mount.Mount) bool { return m.Target == "/tmp" && m.Type == "tmpfs" }) {
		t.Errorf("no tmpfs at /tmp: %+v", cs.Mounts)
	}
	if p := spec.TaskTemplate.Placement; p == nil || !slices.Contains(p.Constraints, "node.platform.os == linux") {
		t.Errorf("placement %+v, want the stack's constraint", spec.TaskTemplate.Placement)
	}
	if spec.Labels[labelFunction] != "echo" || spec.Labels[labelInstance] != d.instance {
		t.Errorf("service labels %v lack the ownership labels", spec.Labels)
	}
	if cs != nil && cs.Labels["team"] != "blue" {
		t.Errorf("container labels %v lack the function's label team=blue", cs.Labels)
	}
	if len(spec.TaskTemplate.Networks) != 1 {
		t.Errorf("service networks %+v, want the function's own overlay", spec.TaskTemplate.Networks)
	} else {
		n, err := d.docker.NetworkInspect(ctx, spec.TaskTemplate.Networks[0].Target, network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Driver != "overlay" || !n.Attachable || n.Labels[labelFunction] != "echo" {
			t.Errorf("function network %s: driver %s attachable %v labels %v", n.Name, n.Driver, n.Attachable, n.Labels)
		}
	}

	// Spread: three replicas land on several nodes and all of them serve.
	if err := d.client().ScaleFunction(ctx, "hostname", defaultNamespace, 3); err != nil {
		t.Fatal(err)
	}
	d.waitReady("hostname", defaultNamespace, 3)
	tasks, err := d.swarmTasks("hostname", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, tk := range tasks {
		nodes[tk.NodeID] = true
	}
	if len(nodes) < 2 {
		t.Errorf("3 tasks on %d node(s); swarm should spread them", len(nodes))
	}
	hosts := map[string]bool{}
	for i := 0; i < 30 && len(hosts) < 3; i++ {
		r := d.invoke(http.MethodGet, "/function/hostname", nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("invoke: %s", r)
		}
		hosts[strings.TrimSpace(string(r.Body))] = true
	}
	if len(hosts) != 3 {
		t.Errorf("30 calls reached %d of 3 replicas: %v", len(hosts), hosts)
	}
	if r := d.invoke(http.MethodPost, "/function/echo", []byte("hi"), nil); r.Status != http.StatusOK {
		t.Errorf("invoke echo: %s", r)
	}

	// The debug page says where each replica runs.
	view, err := d.reconcileStatus()
	if err != nil {
		t.Fatal(err)
	}
	fv, ok := view.function("hostname")
	if !ok {
		t.Fatal("hostname missing from /debug/reconcile")
	}
	placed, swarmNodes := 0, map[string]bool{}
	for _, n := range view.Nodes {
		placed += n.Replicas
		swarmNodes[n.Hostname] = true
	}
	for _, r := range fv.Replicas {
		if !strings.Contains(r.Name, "@dfswarm-node") {
			t.Errorf("replica %q does not name its node", r.Name)
		}
		// The console's Node column: the hostname of one of the swarm's nodes.
		if !swarmNodes[r.Node] || !strings.HasSuffix(r.Name, "@"+r.Node) {
			t.Errorf("replica %q: node %q, want its task's node, one of %v", r.Name, r.Node, slices.Sorted(maps.Keys(swarmNodes)))
		}
	}
	if len(view.Nodes) < 3 || placed != 4 {
		t.Errorf("/debug/reconcile nodes %+v: want every node and the 4 replicas (3 hostname, 1 echo) on them", view.Nodes)
	}

	for _, name := range []string{"echo", "hostname"} {
		if err := d.client().DeleteFunction(ctx, name, defaultNamespace); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, pollInterval, func() error {
		f := filters.NewArgs(filters.Arg("label", labelInstance+"="+d.instance))
		svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
		if err != nil {
			return err
		}
		nets, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			return err
		}
		if len(svcs)+len(nets) > 0 {
			return fmt.Errorf("%d services and %d networks left after delete", len(svcs), len(nets))
		}
		return nil
	})
}

// TestSwarmConstraintsPlaceTasks checks that faas-cli's constraints become
// placement: node labels and node.role.
func TestSwarmConstraintsPlaceTasks(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, onRuntime(runtimeSwarm))
	sw := d.swarm
	img := swarmFnImage(t, fnHostname)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes, err := d.docker.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byLabel, role := map[string]string{}, map[string]string{}
	for _, n := range nodes {
		byLabel[n.Spec.Labels["dockerfaasd.node"]] = n.ID
		role[n.ID] = string(n.Spec.Role)
	}
	if byLabel["node2"] == "" || sw.workers == 0 {
		t.Fatalf("the test swarm lacks the node labels hack/swarm-up.sh sets, or workers: %v", byLabel)
	}
	cases := []struct {
		name       string
		constraint string
		ok         func(nodeID string) bool
	}{
		{"pinned", "node.labels.dockerfaasd.node == node2", func(id string) bool { return id == byLabel["node2"] }},
		{"workers", "node.role == worker", func(id string) bool { return role[id] == "worker" }},
	}
	for _, c := range cases {
		spec := simpleSpec(c.name, img, nil, map[string]string{"com.openfaas.scale.min": "1"})
		spec.Constraints = []string{c.constraint}
		d.deploy(spec)
		if err := d.client().ScaleFunction(ctx, c.name, defaultNamespace, 3); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		d.waitReady(c.name, defaultNamespace, 3)
		tasks, err := d.swarmTasks(c.name, defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			if !c.ok(tk.NodeID) {
				t.Errorf("%s (%s): task %s runs on node %s (%s)", c.name, c.constraint, short(tk.ID), short(tk.NodeID), role[tk.NodeID])
			}
		}
		if r := d.invoke(http.MethodGet, "/function/"+c.name, nil, nil); r.Status != http.StatusOK {
			t.Errorf("invoke %s: %s", c.name, r)
		}
	}
	// A constraint no node meets: the function is accepted (swarm waits for
	// such a node) and reports zero available replicas, it does not fail.
	spec := simpleSpec("nowhere", img, nil, nil)
	spec.Constraints = []string{"node.labels.dockerfaasd.node == node99"}
	d.deploy(spec)
	time.Sleep(3 * time.Second)
	fs, _, err := d.getFunction("nowhere", defaultNamespace)
	if err != nil || fs.AvailableReplicas != 0 || fs.Replicas != 1 {
		t.Errorf("unplaceable function: %+v %v, want replicas 1, available 0", fs, err)
	}
}

// TestSwarmDriftIsHealed: a service removed or scaled by hand, a task's
// container killed on its node; a daemon killed and started again adopts
// the services without restarting a task.
func TestSwarmDriftIsHealed(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, onRuntime(runtimeSwarm))
	img := swarmFnImage(t, fnHostname)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const name = "drifty"
	d.deploy(simpleSpec(name, img, nil, nil))
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 2); err != nil {
		t.Fatal(err)
	}
	d.waitReady(name, defaultNamespace, 2)

	t.Run("service scaled by hand", func(t *testing.T) {
		svc, err := d.swarmService(ctx, name, defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		five := uint64(5)
		svc.Spec.Mode.Replicated.Replicas = &five
		if _, err := d.docker.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, pollInterval, func() error {
			svc, err := d.swarmService(ctx, name, defaultNamespace)
			if err != nil {
				return err
			}
			if n := *svc.Spec.Mode.Replicated.Replicas; n != 2 {
				return fmt.Errorf("service replicas %d, want 2 again", n)
			}
			return nil
		})
		// Swarm itself runs 2 again: its orchestrator can give up on a
		// scale-down racing the new tasks' scheduling, and the daemon
		// makes it try again (retryScaleDown).
		eventually(t, readyTimeout, pollInterval, func() error {
			wanted, err := d.swarmWantedTasks(name, defaultNamespace)
			if err != nil {
				return err
			}
			running := 0
			for _, tk := range wanted {
				if tk.Status.State == swarm.TaskStateRunning {
					running++
				}
			}
			if len(wanted) != 2 || running != 2 {
				return fmt.Errorf("swarm wants %d tasks running (%d are), want 2", len(wanted), running)
			}
			return nil
		})
		d.waitReady(name, defaultNamespace, 2)
	})

	t.Run("task container killed on its node", func(t *testing.T) {
		tasks, err := d.swarmTasks(name, defaultNamespace)
		if err != nil || len(tasks) == 0 {
			t.Fatalf("tasks: %v %v", tasks, err)
		}
		victim := tasks[0]
		node := d.swarm.nodeClient(ctx, t, victim.NodeID)
		if err := node.ContainerKill(ctx, victim.Status.ContainerStatus.ContainerID, "KILL"); err != nil {
			t.Fatal(err)
		}
		eventually(t, readyTimeout, pollInterval, func() error {
			ids, err := d.replicaIDs(name, defaultNamespace)
			if err != nil {
				return err
			}
			if len(ids) != 2 || slices.Contains(ids, victim.ID) {
				return fmt.Errorf("running tasks %v, want 2 without %s", ids, short(victim.ID))
			}
			return nil
		})
		d.waitReady(name, defaultNamespace, 2)
		for i := 0; i < 10; i++ {
			if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
				t.Fatalf("invoke after the kill: %s", r)
			}
		}
	})

	t.Run("service removed by hand", func(t *testing.T) {
		svc, err := d.swarmService(ctx, name, defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.docker.ServiceRemove(ctx, svc.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, readyTimeout, pollInterval, func() error {
			now, err := d.swarmService(ctx, name, defaultNamespace)
			if err != nil {
				return err
			}
			if now.ID == svc.ID {
				return fmt.Errorf("still the removed service")
			}
			return nil
		})
		d.waitReady(name, defaultNamespace, 2)
	})

	t.Run("daemon killed and restarted adopts without restarts", func(t *testing.T) {
		before, err := d.replicaIDs(name, defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		d.Kill()
		d.start()
		d.waitReady(name, defaultNamespace, 2)
		if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
			t.Fatalf("invoke after the restart: %s", r)
		}
		time.Sleep(2 * time.Second)
		after, err := d.replicaIDs(name, defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(before, after) {
			t.Errorf("tasks before the restart %v, after %v: the restart replaced tasks", before, after)
		}
	})
}

// TestSwarmNodeDrainMovesReplicas drains a node that runs replicas: swarm
// moves them, the endpoint cache follows, and calls keep being answered.
// Not parallel: it changes a node every swarm test uses.
func TestSwarmNodeDrainMovesReplicas(t *testing.T) {
	d := startDaemon(t, onRuntime(runtimeSwarm))
	img := swarmFnImage(t, fnHostname)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const name = "drained"
	spec := simpleSpec(name, img, nil, nil)
	// Off node1, where the daemons run; the drained node is one of the
	// others, so its replicas have somewhere to go.
	spec.Constraints = []string{"node.labels.dockerfaasd.node != node1"}
	d.deploy(spec)
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 4); err != nil {
		t.Fatal(err)
	}
	d.waitReady(name, defaultNamespace, 4)
	tasks, err := d.swarmTasks(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	target := tasks[0].NodeID
	setAvailability(ctx, t, d, target, swarm.NodeAvailabilityDrain)
	t.Cleanup(func() { setAvailability(context.Background(), t, d, target, swarm.NodeAvailabilityActive) })
	drainAt := time.Now()
	failures := 0
	eventually(t, readyTimeout, pollInterval, func() error {
		if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
			failures++
		}
		tasks, err := d.swarmTasks(name, defaultNamespace)
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.NodeID == target {
				return fmt.Errorf("task %s still on the drained node", short(tk.ID))
			}
		}
		fs, _, err := d.getFunction(name, defaultNamespace)
		if err != nil {
			return err
		}
		if fs.AvailableReplicas != 4 || len(tasks) != 4 {
			return fmt.Errorf("%d tasks running, %d available", len(tasks), fs.AvailableReplicas)
		}
		return nil
	})
	t.Logf("node drain: 4 replicas ready off the drained node %s after the drain; %d calls failed meanwhile",
		time.Since(drainAt).Round(time.Millisecond), failures)
	for i := 0; i < 20; i++ {
		if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
			t.Fatalf("invoke after the drain: %s", r)
		}
	}
}

// TestSwarmNodeLossReschedules powers a worker off (SIGKILL to its dockerd
// and everything of it, as a host that dies): swarm reschedules its tasks,
// the endpoint cache drops the lost ones and takes the new ones, and all
// replicas serve again within a bound; the time is logged. The node is
// started again afterwards. Not parallel: it takes a node away.
func TestSwarmNodeLossReschedules(t *testing.T) {
	d := startDaemon(t, onRuntime(runtimeSwarm))
	img := swarmFnImage(t, fnHostname)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const name = "survivor"
	// One replica per node (swarm spreads a service's tasks), so the node
	// powered off surely runs one.
	replicas := len(d.swarm.nodes)
	d.deploy(simpleSpec(name, img, nil, nil))
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, uint64(replicas)); err != nil {
		t.Fatal(err)
	}
	d.waitReady(name, defaultNamespace, uint64(replicas))

	// The last node is a worker, and not the manager the daemon runs on.
	victim := len(d.swarm.nodes)
	victimID := d.swarm.nodeID(ctx, t, victim-1)
	tasks, err := d.swarmTasks(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, tk := range tasks {
		if tk.NodeID == victimID {
			lost++
		}
	}
	if lost == 0 {
		t.Fatalf("no replica on node%d to lose: %+v", victim, tasks)
	}
	t.Cleanup(func() { swarmScript(t, "swarm-up.sh") })
	lossAt := time.Now()
	swarmScript(t, "swarm-down.sh", "--power-off", fmt.Sprint(victim))

	var sent, failed int
	eventually(t, 3*time.Minute, 250*time.Millisecond, func() error {
		sent++
		if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
			failed++
		}
		fs, _, err := d.getFunction(name, defaultNamespace)
		if err != nil {
			return err
		}
		view, err := d.reconcileStatus()
		if err != nil {
			return err
		}
		fv, _ := view.function(name)
		onVictim := 0
		for _, r := range fv.Replicas {
			if strings.HasSuffix(r.Name, fmt.Sprintf("@dfswarm-node%d", victim)) && r.State == "ready" {
				onVictim++
			}
		}
		if fs.AvailableReplicas != uint64(replicas) || onVictim > 0 {
			return fmt.Errorf("available %d, ready on the lost node %d", fs.AvailableReplicas, onVictim)
		}
		return nil
	})
	recovered := time.Since(lossAt)
	// Every replica counted ready must answer.
	hosts := map[string]bool{}
	for i := 0; i < 60 && len(hosts) < replicas; i++ {
		r := d.invoke(http.MethodGet, "/function/"+name, nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("invoke after recovery: %s", r)
		}
		hosts[strings.TrimSpace(string(r.Body))] = true
	}
	if len(hosts) != replicas {
		t.Errorf("after recovery 60 calls reached %d replicas, want %d", len(hosts), replicas)
	}
	t.Logf("node loss: node%d (%d of %d replicas) powered off; all %d replicas serving again after %s; %d of %d probe calls failed meanwhile",
		victim, lost, replicas, replicas, recovered.Round(time.Millisecond), failed, sent)
	if line := os.Getenv("E2E_NODE_LOSS_OUT"); line != "" {
		f, err := os.OpenFile(line, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", recovered.Milliseconds())
			f.Close()
		}
	}
}

// TestSwarmUpWithDaemon drives the daemon that `hack/swarm-up.sh
// --with-daemon` started (as README tells users to), when CI started one:
// GATEWAY and PASSWORD_FILE from its output.
func TestSwarmUpWithDaemon(t *testing.T) {
	t.Parallel()
	requireSwarm(t)
	gw, pwFile := os.Getenv("E2E_SWARM_GATEWAY"), os.Getenv("E2E_SWARM_PASSWORD_FILE")
	if gw == "" || pwFile == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: E2E_SWARM_GATEWAY and E2E_SWARM_PASSWORD_FILE are not set (.ci/run takes them from hack/swarm-up.sh --with-daemon)")
		}
		t.Skip("E2E_SWARM_GATEWAY/E2E_SWARM_PASSWORD_FILE not set: start hack/swarm-up.sh --with-daemon and pass its GATEWAY and PASSWORD_FILE")
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	img := swarmFnImage(t, fnHostname)
	d := &daemon{t: t, docker: requireSwarm(t).manager(), instance: "dockerfaasd", user: "admin",
		password: strings.TrimSpace(string(pw)), baseURL: gw, runtime: runtimeSwarm,
		http: &http.Client{Timeout: 30 * time.Second}}
	name := "upcheck-" + randomSuffix(5)
	d.deploy(simpleSpec(name, img, nil, nil))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.client().DeleteFunction(ctx, name, defaultNamespace); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	})
	d.waitReady(name, defaultNamespace, 1)
	if r := d.invoke(http.MethodGet, "/function/"+name, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("invoke through the swarm-up daemon: %s", r)
	}
}

// nodeClient returns the client of the node with that swarm ID.
func (sw *testSwarm) nodeClient(ctx context.Context, t *testing.T, nodeID string) *client.Client {
	t.Helper()
	for _, n := range sw.nodes {
		info, err := n.Info(ctx)
		if err == nil && info.Swarm.NodeID == nodeID {
			return n
		}
	}
	t.Fatalf("no node socket for node %s", nodeID)
	return nil
}

// nodeID returns the swarm node ID of the i-th node (0-based).
func (sw *testSwarm) nodeID(ctx context.Context, t *testing.T, i int) string {
	t.Helper()
	info, err := sw.nodes[i].Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.Swarm.NodeID
}

// setAvailability drains or reactivates a node.
func setAvailability(ctx context.Context, t *testing.T, d *daemon, nodeID string, a swarm.NodeAvailability) {
	t.Helper()
	n, _, err := d.docker.NodeInspectWithRaw(ctx, nodeID)
	if err != nil {
		t.Errorf("inspect node %s: %v", nodeID, err)
		return
	}
	n.Spec.Availability = a
	if err := d.docker.NodeUpdate(ctx, nodeID, n.Version, n.Spec); err != nil {
		t.Errorf("set node %s %s: %v", nodeID, a, err)
	}
}

// swarmScript runs one of the hack/ swarm scripts, failing the test on error.
func swarmScript(t *testing.T, script string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(suite.moduleRoot, "hack", script), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}
