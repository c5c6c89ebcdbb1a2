package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// The swarm section's image holds both programs that run on node1: the
// daemon and baseproxy, each started with its own entrypoint. FROM scratch
// around static binaries, built on node1 itself, so nothing is pulled.
const swarmDockerfile = "FROM scratch\nCOPY dockerfaasd /dockerfaasd\nCOPY baseproxy /baseproxy\nEXPOSE 8080\n"

// swarmFn is the function the swarm section deploys.
const swarmFn = "warm"

// swarmBench is what the swarm section set up on the test swarm; cleanup
// removes exactly that.
type swarmBench struct {
	r        *runner
	node     *client.Client // node1's engine: the manager everything runs on
	sock     string         // node1's engine socket on this machine
	addr     string         // node1's address, reachable from this machine
	hostname string         // node1's hostname, for the placement constraint
	version  string         // node1's Docker Engine version
	nodes    int            // nodes in the swarm
	image    string         // swarmDockerfile's image on node1, when built

	d                 *daemon // the daemon in its container on node1
	daemonID, proxyID string
	stopWait          context.CancelFunc // ends the wait for the daemon container's exit
}

// swarm measures warm C/B on a real Docker Swarm: the test swarm of
// hack/swarm-up.sh (several dockerds on this machine, in network namespaces
// of their own). The daemon runs where it has to, as a container on the
// manager (node1) with RUNTIME=swarm: it reaches each task at its address
// on the function's overlay network, which only containers on that overlay
// can reach. The one-hop baseline therefore runs there too: baseproxy in a
// container on node1, joined to the same overlay, forwarding to the task.
// wrk runs on this machine, as in the warm section, and reaches both at
// node1's address.
func (r *runner) swarm(ctx context.Context) error {
	sock, err := r.swarmUp(ctx)
	if err != nil {
		return fmt.Errorf("the test swarm could not be started or found, so nothing was measured "+
			"(BENCH_SKIP=swarm skips this section): %w", err)
	}
	sw := &swarmBench{r: r, sock: sock}
	defer sw.cleanup()
	if err := sw.connect(ctx); err != nil {
		return err
	}
	sw.image = "dockerfaasd-bench/swarm:" + r.id
	files := make([]contextFile, 0, 2)
	for _, f := range []struct{ name, path string }{{"dockerfaasd", r.daemonBin}, {"baseproxy", r.baseproxyBin}} {
		cf, err := imageFile(f.name, f.path)
		if err != nil {
			return err
		}
		files = append(files, cf)
	}
	if err := buildImage(ctx, sw.node, sw.image, swarmDockerfile, map[string]string{labelBench: r.id}, files...); err != nil {
		return fmt.Errorf("node1: %w", err)
	}
	if err := sw.startDaemon(ctx); err != nil {
		return err
	}
	// Pinned to node1, where the daemon and baseproxy run: the daemon's hop
	// to the task then stays on one node, as it does on one host, and every
	// run measures the same topology whichever node swarm would pick.
	constraint := "node.hostname == " + sw.hostname
	if err := sw.d.deploySpec(ctx, types.FunctionDeployment{Service: swarmFn, Image: r.image, Constraints: []string{constraint}}); err != nil {
		return fmt.Errorf("swarm daemon: %w", err)
	}
	viaDaemon := sw.d.base + "/function/" + swarmFn
	// A service's first task takes longer than a container: the manager
	// schedules it and node1 attaches it to the overlay first.
	if _, err := firstOK(ctx, viaDaemon, sw.d.authHeader(), nil, 10*time.Millisecond, 2*time.Minute); err != nil {
		return fmt.Errorf("swarm daemon: %w", err)
	}
	netID, taskIP, err := sw.taskAddress(ctx)
	if err != nil {
		return err
	}
	bpPort, err := sw.startBaseproxy(ctx, netID, taskIP)
	if err != nil {
		return err
	}
	viaProxy := fmt.Sprintf("http://%s/", net.JoinHostPort(sw.addr, bpPort))
	// Both paths must end at the same task: fn-hostname answers with its
	// container's hostname.
	bodyB, err := getOnce(ctx, viaProxy)
	if err != nil {
		return fmt.Errorf("baseproxy on node1: %w", err)
	}
	bodyC, err := sw.d.callOnce(ctx, swarmFn)
	if err != nil {
		return fmt.Errorf("swarm daemon: %w", err)
	}
	if bodyB != bodyC {
		return fmt.Errorf("baseproxy reached task %q, the daemon %q: not the same replica", bodyB, bodyC)
	}
	logf("swarm: daemon on %s, task %s at %s on node1, baseproxy on %s", sw.d.base, bodyC, taskIP, viaProxy)

	dPid, err := sw.hostPid(ctx, sw.daemonID, "dockerfaasd")
	if err != nil {
		return err
	}
	bpPid, err := sw.hostPid(ctx, sw.proxyID, "baseproxy")
	if err != nil {
		return err
	}
	cells, err := r.measureRounds(ctx, []warmPath{
		{"B baseproxy on node1", viaProxy, "", bpPid},
		{"C dockerfaasd on node1", viaDaemon, sw.d.authHeader(), dPid},
	})
	if err != nil {
		return sw.explain(ctx, err)
	}
	// The figures are only about one replica if the function stayed at one.
	st, err := sw.d.function(ctx, swarmFn)
	if err != nil {
		return fmt.Errorf("swarm daemon: %w", err)
	}
	if st.Replicas != 1 {
		return fmt.Errorf("function %s has %d replicas after the measurement, not 1", swarmFn, st.Replicas)
	}
	r.rep.add("swarm", sw.render(cells, r.hostWarm, constraint))
	return nil
}

// swarmUp starts the test swarm, or finds it up (hack/swarm-up.sh is
// idempotent), loads the function image into every node, and returns
// node1's engine address from the script's last line.
func (r *runner) swarmUp(ctx context.Context) (string, error) {
	// Starting the nodes takes up to a few of the script's 120 s stages;
	// it also waits up to 10 min for another swarm-up or swarm-down.
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	script := filepath.Join(r.s.ModuleDir, "hack", "swarm-up.sh")
	cmd := exec.CommandContext(ctx, script, "--load", r.image)
	cmd.Dir = r.s.ModuleDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	// Its progress goes to the bench's log as well.
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	logf("swarm: hack/swarm-up.sh --load %s", r.image)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/swarm-up.sh --load %s: %w\n%s", r.image, err, lastLines(stderr.String(), 20))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	host, ok := strings.CutPrefix(lines[len(lines)-1], "DOCKER_HOST=")
	if !ok || !strings.HasPrefix(host, "unix://") {
		return "", fmt.Errorf("hack/swarm-up.sh: last line %q, want DOCKER_HOST=unix://…", lines[len(lines)-1])
	}
	return host, nil
}

// connect opens node1's engine and checks that it manages the swarm.
func (sw *swarmBench) connect(ctx context.Context) error {
	cli, err := client.NewClientWithOpts(client.WithHost(sw.sock), client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("node1 client: %w", err)
	}
	sw.node = cli
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return fmt.Errorf("node1 %s: %w", sw.sock, err)
	}
	cli.NegotiateAPIVersion(pctx)
	info, err := cli.Info(pctx)
	if err != nil {
		return fmt.Errorf("node1 info: %w", err)
	}
	if !info.Swarm.ControlAvailable {
		return fmt.Errorf("node1 (%s) is not a swarm manager", sw.sock)
	}
	sw.addr, sw.hostname, sw.version, sw.nodes = info.Swarm.NodeAddr, info.Name, info.ServerVersion, info.Swarm.Nodes
	return nil
}

// runContainer creates and starts a container of sw.image on node1, on the
// default bridge with port 8080 published on a port node1 picks, and
// returns its ID (also after a failed start, for cleanup) and that port.
func (sw *swarmBench) runContainer(ctx context.Context, name string, cmd, env []string, mounts []mount.Mount) (id, port string, err error) {
	p := nat.Port("8080/tcp")
	created, err := sw.node.ContainerCreate(ctx,
		&container.Config{
			Image: sw.image, Entrypoint: cmd[:1], Cmd: cmd[1:], Env: env,
			ExposedPorts: nat.PortSet{p: {}},
			Labels:       map[string]string{labelBench: sw.r.id},
		},
		&container.HostConfig{PortBindings: nat.PortMap{p: {{}}}, Mounts: mounts},
		nil, nil, name)
	if err != nil {
		return "", "", fmt.Errorf("node1: create %s: %w", name, err)
	}
	if err := sw.node.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return created.ID, "", fmt.Errorf("node1: start %s: %w", name, err)
	}
	ins, err := sw.node.ContainerInspect(ctx, created.ID)
	if err != nil {
		return created.ID, "", fmt.Errorf("node1: inspect %s: %w", name, err)
	}
	if ins.NetworkSettings != nil {
		for _, b := range ins.NetworkSettings.Ports[p] {
			if b.HostPort != "" {
				return created.ID, b.HostPort, nil
			}
		}
	}
	return created.ID, "", fmt.Errorf("node1: %s has no published port for %s", name, p)
}

// startDaemon runs the daemon on node1 as README shows for a swarm: a
// container with the manager's socket and RUNTIME=swarm. Its instance is
// the run ID, so everything it creates carries the run ID like the rest.
func (sw *swarmBench) startDaemon(ctx context.Context) error {
	d := &daemon{instance: sw.r.id, password: "pw-" + randomSuffix(20), http: apiClient()}
	env := []string{
		"RUNTIME=swarm",
		"INSTANCE=" + d.instance,
		"FUNCTIONS_NETWORK=" + d.instance,
		"AUTH_USER=admin",
		"AUTH_PASSWORD=" + d.password,
		// No volume: the state goes with the container.
		"STATE_DIR=/state",
		"LOG_LEVEL=info",
	}
	// The node's engine reads the bind source in its own mount namespace,
	// where the run directory of the node sockets is the host's.
	sock := strings.TrimPrefix(sw.sock, "unix://")
	id, port, err := sw.runContainer(ctx, sw.r.id+"-swarm-daemon", []string{"/dockerfaasd"}, env,
		[]mount.Mount{{Type: mount.TypeBind, Source: sock, Target: "/var/run/docker.sock"}})
	sw.daemonID = id
	if err != nil {
		return err
	}
	d.base = "http://" + net.JoinHostPort(sw.addr, port)
	// waitHealthy gives up as soon as the container exits.
	wctx, stop := context.WithCancel(context.Background())
	sw.stopWait = stop
	exited := make(chan struct{})
	d.exited = exited
	waitC, errC := sw.node.ContainerWait(wctx, id, container.WaitConditionNotRunning)
	go func() {
		select {
		case <-waitC:
			close(exited)
		case <-errC:
		}
	}()
	sw.d = d
	if _, err := d.waitHealthy(ctx, time.Minute); err != nil {
		return fmt.Errorf("swarm daemon on node1: %w; its last log lines:\n%s", err, sw.logTail(id, 20))
	}
	logf("swarm: daemon %s in container %s on node1, %s", d.instance, id[:12], d.base)
	return nil
}

// explain adds to a failed measurement what became of the daemon's and
// baseproxy's containers: on a swarm others test on, a node's engine may
// have been restarted under the run, taking them down.
func (sw *swarmBench) explain(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, c := range []struct{ what, id string }{{"daemon", sw.daemonID}, {"baseproxy", sw.proxyID}} {
		ins, ierr := sw.node.ContainerInspect(ictx, c.id)
		switch {
		case ierr != nil:
			return fmt.Errorf("%w (the %s container on node1 cannot be inspected: %v)", err, c.what, ierr)
		case ins.State != nil && !ins.State.Running:
			return fmt.Errorf("%w (the %s container on node1 is no longer running, since %s: was node1's engine "+
				"restarted by another user of the test swarm?)", err, c.what, ins.State.FinishedAt)
		}
	}
	return err
}

// taskAddress finds the function's only running task and returns its
// overlay network's ID and its address there.
func (sw *swarmBench) taskAddress(ctx context.Context) (netID, ip string, err error) {
	f := filters.NewArgs(
		filters.Arg("label", docker.LabelInstance+"="+sw.r.id),
		filters.Arg("label", docker.LabelFunction+"="+swarmFn),
	)
	svcs, err := sw.node.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return "", "", fmt.Errorf("node1: list services: %w", err)
	}
	if len(svcs) != 1 || len(svcs[0].Spec.TaskTemplate.Networks) != 1 {
		return "", "", fmt.Errorf("node1: want one service of %s on one network, found %d services", swarmFn, len(svcs))
	}
	svc := svcs[0]
	target := svc.Spec.TaskTemplate.Networks[0].Target
	tasks, err := sw.node.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
	if err != nil {
		return "", "", fmt.Errorf("node1: list tasks of %s: %w", svc.Spec.Name, err)
	}
	var running []swarm.Task
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateRunning {
			running = append(running, t)
		}
	}
	if len(running) != 1 {
		return "", "", fmt.Errorf("service %s: %d running tasks, want 1", svc.Spec.Name, len(running))
	}
	// The stored spec may name the network by name or by ID.
	for _, a := range running[0].NetworksAttachments {
		if (a.Network.ID == target || a.Network.Spec.Name == target) && len(a.Addresses) > 0 {
			addr, _, err := net.ParseCIDR(a.Addresses[0])
			if err != nil {
				return "", "", fmt.Errorf("task address %q: %w", a.Addresses[0], err)
			}
			return a.Network.ID, addr.String(), nil
		}
	}
	return "", "", fmt.Errorf("service %s: its task has no address on network %s", svc.Spec.Name, target)
}

// startBaseproxy runs baseproxy on node1 the way the daemon runs there (a
// container on the default bridge with a published port, then joined to
// the function's overlay), forwarding to the task, and returns its
// published port once it answers.
func (sw *swarmBench) startBaseproxy(ctx context.Context, netID, taskIP string) (string, error) {
	target := "http://" + net.JoinHostPort(taskIP, "8080")
	id, port, err := sw.runContainer(ctx, sw.r.id+"-swarm-baseproxy",
		[]string{"/baseproxy", "-listen", "0.0.0.0:8080", "-target", target}, nil, nil)
	sw.proxyID = id
	if err != nil {
		return "", err
	}
	if err := sw.node.NetworkConnect(ctx, netID, id, nil); err != nil {
		return "", fmt.Errorf("node1: connect baseproxy to the function's overlay: %w", err)
	}
	url := "http://" + net.JoinHostPort(sw.addr, port) + "/"
	if _, err := firstOK(ctx, url, "", nil, 10*time.Millisecond, 30*time.Second); err != nil {
		return "", fmt.Errorf("baseproxy on node1: %w; its log:\n%s", err, sw.logTail(id, 10))
	}
	return port, nil
}

// hostPid returns the PID on this machine of a container's main process
// on node1: the nodes' dockerds share this machine's PID namespace, so it
// can be read in /proc like any other. The name is checked, so that CPU is
// never counted for the wrong process; 0 (no CPU figures) when it differs.
func (sw *swarmBench) hostPid(ctx context.Context, id, comm string) (int, error) {
	ins, err := sw.node.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("node1: inspect %s: %w", id, err)
	}
	if ins.State == nil || ins.State.Pid == 0 {
		return 0, fmt.Errorf("node1: container %s has no process", id)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ins.State.Pid))
	if got := strings.TrimSpace(string(b)); err != nil || got != comm {
		logf("swarm: PID %d of %s is not %s here (%q, %v): no CPU figures for it", ins.State.Pid, id[:12], comm, got, err)
		return 0, nil
	}
	return ins.State.Pid, nil
}

// logTail returns the last n lines of a container's log on node1.
func (sw *swarmBench) logTail(id string, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := sw.node.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return err.Error()
	}
	return out.String()
}

// cleanup removes what the section created on the swarm and nothing else:
// its containers (labelled with the run ID by the bench), then the
// daemon's services, secrets and networks (labelled with its instance, the
// run ID), then the image. It runs on success, failure and interrupt.
func (sw *swarmBench) cleanup() {
	if sw.node == nil {
		return
	}
	defer sw.node.Close()
	if sw.image == "" {
		return // nothing was created: node1 was not reached
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if sw.stopWait != nil {
		sw.stopWait()
	}
	if sw.d != nil {
		// Let the daemon remove its service and leave the network first;
		// what it leaves behind is swept below anyway.
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		if err := sw.d.remove(dctx, swarmFn); err != nil {
			logf("swarm cleanup: delete %s through the daemon: %v", swarmFn, err)
		}
		dcancel()
	}
	// The whole sweep is retried: a network and a secret stay in use until
	// the service's tasks are gone (up to their stop grace period), and
	// node1's engine may be restarting, as others' tests of the shared
	// swarm restart nodes.
	var err error
	for {
		if err = sw.sweep(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		logf("swarm cleanup of %s on node1 (remove what is left by these labels): %v", sw.r.id, err)
		return
	}
	logf("swarm: removed the containers, services, networks, secrets and image of %s on node1", sw.r.id)
}

// sweep removes, on node1, the run's containers, then the services,
// secrets, task containers and networks labelled with its instance, then
// its image; what is already gone counts as removed.
func (sw *swarmBench) sweep(ctx context.Context) error {
	r := sw.r
	// The daemon goes before its services, or it would recreate them.
	if err := r.removeLabelled(ctx, sw.node, labelBench); err != nil {
		return err
	}
	f := filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+r.id))
	svcs, err := sw.node.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	var errs []error
	for _, s := range svcs {
		if s.Spec.Labels[docker.LabelInstance] != r.id {
			continue
		}
		if err := sw.node.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove service %s: %w", s.Spec.Name, err))
		}
	}
	errs = append(errs, sw.removeSecrets(ctx, f), r.removeLabelled(ctx, sw.node, docker.LabelInstance))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if sw.image != "" {
		if _, err := sw.node.ImageRemove(ctx, sw.image, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %s: %w", sw.image, err)
		}
	}
	return nil
}

// removeSecrets removes the swarm secrets that match f and carry the run's
// instance label.
func (sw *swarmBench) removeSecrets(ctx context.Context, f filters.Args) error {
	secrets, err := sw.node.SecretList(ctx, swarm.SecretListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	var errs []error
	for _, s := range secrets {
		if s.Spec.Labels[docker.LabelInstance] != sw.r.id {
			continue
		}
		if err := sw.node.SecretRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove secret %s: %w", s.Spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// render lays out the section: the cells, then C/B on the swarm next to
// C/B on one host from the warm section of the same run.
func (sw *swarmBench) render(cells, host []warmCell, constraint string) string {
	var b strings.Builder
	s := sw.r.s
	fmt.Fprintf(&b, "Section 1's measurement (wrk from this machine, %s per cell after a warm-up, %d rounds, B and C back "+
		"to back at each concurrency, ratios taken within each round) on a real Docker Swarm: the test swarm of "+
		"`hack/swarm-up.sh`, %d nodes, each a Docker Engine %s in a network namespace of its own on this machine. "+
		"The daemon runs as it must on a swarm: a container on the manager (node1) with node1's socket and "+
		"`RUNTIME=swarm`. The function is one service with 1 replica on its own attachable overlay network, pinned "+
		"to node1 (`%s`) so that every run measures the same topology; the daemon reaches the task at its overlay "+
		"address.\n\n", s.Duration, s.WarmRounds, sw.nodes, sw.version, constraint)
	b.WriteString("(B) is `hack/baseproxy` in a container on node1, started like the daemon's (default bridge, port " +
		"published on node1, then joined to the function's overlay) and forwarding to the task's overlay address: " +
		"task addresses are reachable only from containers on the overlay, so one ideal hop from where the daemon " +
		"runs is the fair baseline. (C) is `/function/" + swarmFn + "` through the daemon with basic auth. wrk reaches " +
		"both at node1's address through ports published on node1. CPU/request is that of the baseproxy or daemon " +
		"process: the nodes' containers are processes of this machine, found by `docker inspect` on node1.\n\n")
	writeCellTable(&b, cells, []string{"B baseproxy on node1", "C dockerfaasd on node1"})
	hostNote := "section 1"
	if len(host) == 0 {
		hostNote = "section 1, not measured in this run"
	}
	fmt.Fprintf(&b, "\n| C/B (dockerfaasd vs one ideal hop) | swarm, c=1 | swarm, c=32 | one host (%s), c=1 | one host, c=32 |\n"+
		"|---|---:|---:|---:|---:|\n", hostNote)
	for _, row := range []struct {
		name   string
		f      func(x, y warmCell) float64
		format func(float64) string
	}{
		{"requests/s", rpsRatio, fmtRatio},
		{"CPU per request", cpuRatio, fmtRatio},
		{"p99 added by C over B", addedP99, fmtMs},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", row.name,
			spread(perRound(cells, "C", "B", 1, row.f), row.format), spread(perRound(cells, "C", "B", 32, row.f), row.format),
			spread(perRound(host, "C", "B", 1, row.f), row.format), spread(perRound(host, "C", "B", 32, row.f), row.format))
	}
	return b.String()
}

// getOnce sends one GET without credentials, wants a 200 and returns the
// body.
func getOnce(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	res, err := pollClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, res.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
