package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// TestSwarmDaemonFailover runs the daemon as README's high-availability
// form: a swarm service constrained to managers (its task supervises the
// gateway container on its node; the state is journaled in the swarm).
// The manager running it is powered off right after an acknowledged write:
// swarm starts the service on another manager, whose gateway rebuilds the
// state from the journal — the write included — and adopts the functions'
// services: no service recreated, no task on a surviving node restarted.
// The time from the power-off to the API answering with the state again is
// logged. Not parallel: it takes a manager away.
func TestSwarmDaemonFailover(t *testing.T) {
	sw := requireSwarm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if n, err := sw.managers(ctx); err != nil || n < 3 {
		msg := fmt.Sprintf("the failover test needs a swarm of 3 managers (hack/swarm-up.sh --managers 3 --workers 1); this one has %d (%v)", n, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	image := swarmDaemonImage(t, sw)
	fnImg := swarmFnImage(t, fnHostname)
	mgr := sw.manager()

	inst := "e2e-" + randomSuffix(6)
	port := freePort(t)
	password := "pw-" + randomSuffix(16)
	t.Cleanup(func() {
		if os.Getenv("E2E_KEEP") == "1" {
			return
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer ccancel()
		// The supervisor stops its gateway when its task ends; until then
		// the gateway would recreate the services removed below.
		removeServiceNamed(cctx, t, mgr, inst+"-dockerfaasd")
		eventually(t, 2*time.Minute, time.Second, func() error {
			for _, n := range sw.nodes {
				cs, err := n.ContainerList(cctx, container.ListOptions{Filters: filters.NewArgs(
					filters.Arg("label", labelInstance+"="+inst), filters.Arg("label", "io.dockerfaas.role=gateway"),
					filters.Arg("status", "running"))})
				if err == nil && len(cs) > 0 {
					return fmt.Errorf("%s still runs on a node", cs[0].Names)
				}
			}
			return nil
		})
		if err := removeSwarmInstance(mgr, inst); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Gateways (the one on the node powered off included) and their
		// state volumes, on every node.
		for _, n := range sw.nodes {
			if err := removeGateways(cctx, n, inst); err != nil {
				t.Errorf("cleanup on a node: %v", err)
			}
		}
	})
	// The operator's password, kept by the supervisor (it generates one
	// only when this secret does not exist).
	if _, err := mgr.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: inst + "-auth-password", Labels: map[string]string{labelInstance: inst}},
		Data:        []byte(password),
	}); err != nil {
		t.Fatal(err)
	}
	replicas := uint64(1)
	// Managers other than node1, where the other tests' daemons run.
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: inst + "-dockerfaasd", Labels: map[string]string{labelInstance: inst}},
		Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: image,
				Env: []string{"RUNTIME=swarm", "INSTANCE=" + inst, fmt.Sprintf("GATEWAY_PORT=%d", port),
					"RESYNC_INTERVAL=5s", "LOG_LEVEL=debug"},
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/run/docker/docker.sock", Target: "/var/run/docker.sock"}},
			},
			Placement:     &swarm.Placement{Constraints: []string{"node.role == manager", "node.labels.dockerfaasd.node != node1"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny},
		},
	}
	if _, err := mgr.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d, node, _ := waitGateway(ctx, t, sw, inst, port, password, "")
	t.Logf("daemon service %s: gateway on %s", inst, node)

	// Desired state, and an acknowledged write right before the loss.
	for _, name := range []string{"keep", "grow"} {
		d.deploy(simpleSpec(name, fnImg, nil, nil))
		if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 3); err != nil {
			t.Fatal(err)
		}
	}
	d.waitReady("keep", defaultNamespace, 3)
	d.waitReady("grow", defaultNamespace, 3)
	keepSvc, err := d.swarmService(ctx, "keep", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	tasksBefore, err := d.swarmTasks("keep", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.client().ScaleFunction(ctx, "grow", defaultNamespace, 4); err != nil {
		t.Fatalf("the write before the loss: %v", err)
	}
	victim := nodeNumberOf(node)
	victimID := sw.nodeID(ctx, t, victim-1)
	lossAt := time.Now()
	swarmScript(t, "swarm-down.sh", "--power-off", fmt.Sprint(victim))
	t.Cleanup(func() { swarmScript(t, "swarm-up.sh") })

	d2, node2, rescheduled := waitGateway(ctx, t, sw, inst, port, password, node)
	answered := time.Since(lossAt)
	var fs statusOf
	eventually(t, 2*time.Minute, pollInterval, func() error {
		got, _, err := d2.getFunction("grow", defaultNamespace)
		if err != nil {
			return err
		}
		fs = statusOf{got.Replicas, got.AvailableReplicas}
		if got.Replicas != 4 {
			return fmt.Errorf("grow wants %d replicas: the write acknowledged before the loss is lost", got.Replicas)
		}
		return nil
	})
	d2.waitReady("keep", defaultNamespace, 3)
	d2.waitReady("grow", defaultNamespace, 4)
	serving := time.Since(lossAt)
	if r := d2.invoke(http.MethodGet, "/function/keep", nil, nil); r.Status != http.StatusOK {
		t.Errorf("invoke after the failover: %s", r)
	}
	t.Logf("daemon failover: node%d (gateway) powered off; swarm started the daemon's task on %s after %s, its gateway answered after %s, all replicas serving after %s (grow: %+v)",
		victim, node2, rescheduled.Sub(lossAt).Round(time.Millisecond), answered.Round(time.Millisecond), serving.Round(time.Millisecond), fs)
	if out := os.Getenv("E2E_FAILOVER_OUT"); out != "" {
		if f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintf(f, "%d %d %d\n", rescheduled.Sub(lossAt).Milliseconds(), answered.Milliseconds(), serving.Milliseconds())
			f.Close()
		}
	}

	// Adoption, not redeployment: the same service, and every task that
	// ran on a surviving node still runs.
	now, err := d2.swarmService(ctx, "keep", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if now.ID != keepSvc.ID {
		t.Errorf("service keep was recreated (%s, was %s)", short(now.ID), short(keepSvc.ID))
	}
	tasksAfter, err := d2.swarmTasks("keep", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for _, tk := range tasksAfter {
		after = append(after, tk.ID)
	}
	for _, tk := range tasksBefore {
		if tk.NodeID != victimID && !slices.Contains(after, tk.ID) {
			t.Errorf("task %s on a surviving node was restarted by the failover", short(tk.ID))
		}
	}
}

// statusOf is what the failover test logs of a function.
type statusOf struct{ Replicas, Available uint64 }

// waitGateway waits until the daemon service's gateway answers /healthz on
// a node other than notOn, and returns a daemon handle for it and its
// node's hostname.
func waitGateway(ctx context.Context, t *testing.T, sw *testSwarm, inst string, port int, password, notOn string) (*daemon, string, time.Time) {
	t.Helper()
	var d *daemon
	var host string
	var created time.Time
	eventually(t, 3*time.Minute, 250*time.Millisecond, func() error {
		// Any manager that is up answers for the swarm.
		var cli *client.Client
		for _, n := range sw.nodes {
			if info, err := n.Info(ctx); err == nil && info.Swarm.ControlAvailable {
				cli = n
				break
			}
		}
		if cli == nil {
			return fmt.Errorf("no manager answers")
		}
		tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", inst+"-dockerfaasd"), filters.Arg("desired-state", "running"))})
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.Status.State != swarm.TaskStateRunning {
				continue
			}
			n, _, err := cli.NodeInspectWithRaw(ctx, tk.NodeID)
			if err != nil {
				return err
			}
			if n.Description.Hostname == notOn {
				continue
			}
			dd := &daemon{t: t, docker: cli, instance: inst, network: inst, user: "admin", password: password,
				runtime: runtimeSwarm, swarm: sw, baseURL: fmt.Sprintf("http://%s:%d", n.Status.Addr, port),
				http: &http.Client{Timeout: 10 * time.Second}}
			res, err := dd.request(http.MethodGet, "/healthz", nil, nil, authNone)
			if err != nil {
				return err
			}
			if res.Status != http.StatusOK {
				return fmt.Errorf("healthz on %s: %s", n.Description.Hostname, res)
			}
			d, host, created = dd, n.Description.Hostname, tk.CreatedAt
			return nil
		}
		return fmt.Errorf("no running task of the daemon service off %q yet", notOn)
	})
	return d, host, created
}

// nodeNumberOf is N of a test swarm hostname dfswarm-nodeN.
func nodeNumberOf(hostname string) int {
	var n int
	fmt.Sscanf(strings.TrimPrefix(hostname, "dfswarm-node"), "%d", &n)
	return n
}

// removeGateways removes the gateway containers and state volume a daemon
// service of instance inst left on one node.
func removeGateways(ctx context.Context, cli *client.Client, inst string) error {
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+inst))})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if c.Labels[labelInstance] != inst {
			continue
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}
	if err := cli.VolumeRemove(ctx, inst+"-state", true); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove volume %s-state: %w", inst, err))
	}
	return errors.Join(errs...)
}

// removeServiceNamed removes a service the test created, by name.
func removeServiceNamed(ctx context.Context, t *testing.T, cli *client.Client, name string) {
	if err := cli.ServiceRemove(ctx, name); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Errorf("remove service %s: %v", name, err)
	}
}
