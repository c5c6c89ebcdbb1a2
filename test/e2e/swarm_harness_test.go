package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// The swarm half of the harness. hack/swarm-up.sh starts a real multi-node
// swarm on this machine (dockerds in network namespaces); the suite finds
// it by its node sockets and runs the daemon the way README tells users
// to: as a container on a manager with that manager's socket, RUNTIME=swarm
// and a published port, reached at the manager's address.

// Runtimes a test can run against (see eachRuntime).
const (
	runtimeDocker = "docker"
	runtimeSwarm  = "swarm"
)

// swarmRunDir is where hack/swarm-up.sh puts the node sockets.
func swarmRunDir() string {
	if d := os.Getenv("E2E_SWARM_RUN_DIR"); d != "" {
		return d
	}
	return "/run/dockerfaasd-swarm"
}

// testSwarm is the swarm the suite found (once per run).
type testSwarm struct {
	nodes   []*client.Client // node1 first: the manager the daemon runs on
	sockets []string
	addr    string // node1's address, reachable from this machine
	workers int
}

var swarmSuite struct {
	once sync.Once
	sw   *testSwarm
	err  error

	daemonOnce  sync.Once
	daemonImage string
	daemonErr   error

	mu     sync.Mutex
	loaded map[string]*sync.Once
	loadEr map[string]error
}

// requireSwarm returns the test swarm. Without one it fails the test
// under CI=true (CI starts it) and skips it otherwise, saying how to start it.
func requireSwarm(t *testing.T) *testSwarm {
	t.Helper()
	requireDocker(t)
	swarmSuite.once.Do(func() { swarmSuite.sw, swarmSuite.err = findSwarm() })
	if err := swarmSuite.err; err != nil {
		msg := fmt.Sprintf("no test swarm (%v); start one with hack/swarm-up.sh", err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s", msg)
		}
		t.Skip(msg)
	}
	return swarmSuite.sw
}

// findSwarm connects to every node socket under swarmRunDir and checks that
// node1 is a manager of a swarm of at least three Ready nodes.
func findSwarm() (*testSwarm, error) {
	socks, err := filepath.Glob(filepath.Join(swarmRunDir(), "node*", "docker.sock"))
	if err != nil || len(socks) == 0 {
		return nil, fmt.Errorf("no node sockets under %s", swarmRunDir())
	}
	sort.Slice(socks, func(i, j int) bool { return nodeNumber(socks[i]) < nodeNumber(socks[j]) })
	sw := &testSwarm{sockets: socks}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range socks {
		cli, err := client.NewClientWithOpts(client.WithHost("unix://"+s), client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, err
		}
		if _, err := cli.Ping(ctx); err != nil {
			return nil, fmt.Errorf("node %s: %w", s, err)
		}
		cli.NegotiateAPIVersion(ctx)
		sw.nodes = append(sw.nodes, cli)
	}
	info, err := sw.nodes[0].Info(ctx)
	if err != nil {
		return nil, err
	}
	if !info.Swarm.ControlAvailable {
		return nil, fmt.Errorf("%s is not a swarm manager", socks[0])
	}
	sw.addr = info.Swarm.NodeAddr
	nodes, err := sw.nodes[0].NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, err
	}
	ready := 0
	for _, n := range nodes {
		if n.Status.State == swarm.NodeStateReady {
			ready++
		}
		if n.Spec.Role == swarm.NodeRoleWorker {
			sw.workers++
		}
	}
	if ready < 3 {
		return nil, fmt.Errorf("only %d Ready nodes; the suite needs 3", ready)
	}
	return sw, nil
}

func nodeNumber(sock string) int {
	var n int
	fmt.Sscanf(filepath.Base(filepath.Dir(sock)), "node%d", &n)
	return n
}

// manager is the client of node1, where the daemon runs.
func (sw *testSwarm) manager() *client.Client { return sw.nodes[0] }

// load copies an image from the local engine into every node once per run
// (tasks fall back to the node's local image; there is no registry).
func (sw *testSwarm) load(t *testing.T, img string) string {
	t.Helper()
	swarmSuite.mu.Lock()
	if swarmSuite.loaded == nil {
		swarmSuite.loaded, swarmSuite.loadEr = map[string]*sync.Once{}, map[string]error{}
	}
	once, ok := swarmSuite.loaded[img]
	if !ok {
		once = new(sync.Once)
		swarmSuite.loaded[img] = once
	}
	swarmSuite.mu.Unlock()
	once.Do(func() {
		err := sw.loadNow(img)
		swarmSuite.mu.Lock()
		swarmSuite.loadEr[img] = err
		swarmSuite.mu.Unlock()
	})
	swarmSuite.mu.Lock()
	err := swarmSuite.loadEr[img]
	swarmSuite.mu.Unlock()
	if err != nil {
		t.Fatalf("load %s into the swarm: %v", img, err)
	}
	return img
}

func (sw *testSwarm) loadNow(img string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want, err := suite.docker.ImageInspect(ctx, img)
	if err != nil {
		return err
	}
	var tarball []byte
	for i, n := range sw.nodes {
		if have, err := n.ImageInspect(ctx, img); err == nil && have.ID == want.ID {
			continue
		}
		if tarball == nil {
			rc, err := suite.docker.ImageSave(ctx, []string{img})
			if err != nil {
				return err
			}
			tarball, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		res, err := n.ImageLoad(ctx, bytes.NewReader(tarball))
		if err != nil {
			return fmt.Errorf("node%d: %w", i+1, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return nil
}

// swarmFnImage is fnImage, loaded into every node.
func swarmFnImage(t *testing.T, fn string) string {
	t.Helper()
	return requireSwarm(t).load(t, fnImage(t, fn))
}

// swarmDaemonImage builds the daemon image once per run and loads it into
// every node (a failover may start it on any manager).
func swarmDaemonImage(t *testing.T, sw *testSwarm) string {
	t.Helper()
	swarmSuite.daemonOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				swarmSuite.daemonErr = fmt.Errorf("%v", r)
			}
		}()
		swarmSuite.daemonImage = daemonImage(t)
	})
	if swarmSuite.daemonErr != nil || swarmSuite.daemonImage == "" {
		t.Fatalf("daemon image: %v", swarmSuite.daemonErr)
	}
	return sw.load(t, swarmSuite.daemonImage)
}

// onRuntime runs the daemon on the named runtime: docker (a process, the
// default) or swarm (a container on the test swarm's manager).
func onRuntime(rt string) daemonOption {
	return func(d *daemon) { d.runtime = rt }
}

// eachRuntime runs body once per runtime, as subtests named after it.
func eachRuntime(t *testing.T, body func(t *testing.T, rt string)) {
	for _, rt := range []string{runtimeDocker, runtimeSwarm} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			body(t, rt)
		})
	}
}

// prepareSwarm points the daemon at the swarm: the manager's client, the
// manager's address, the image (before launch).
func (d *daemon) prepareSwarm() {
	sw := requireSwarm(d.t)
	d.swarm = sw
	d.docker = sw.manager()
	d.image = swarmDaemonImage(d.t, sw)
	d.baseURL = fmt.Sprintf("http://%s:%d", sw.addr, d.port)
}

// launchContainer starts the daemon's container (created on the first
// start; later starts reuse it, and its state volume), follows its output
// into the log file, and waits until /healthz answers.
func (d *daemon) launchContainer() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := d.docker
	d.mu.Lock()
	d.starts++
	starts := d.starts
	id := d.ctr
	d.mu.Unlock()
	if id == "" {
		env := []string{}
		for k, v := range d.containerEnv() {
			env = append(env, k+"="+v)
		}
		port := nat.Port("8080/tcp")
		created, err := cli.ContainerCreate(ctx,
			&container.Config{
				Image: d.image, Env: env, ExposedPorts: nat.PortSet{port: {}},
				// So cleanup finds (and removes) the daemon with its functions.
				Labels: map[string]string{labelInstance: d.instance, labelE2E: "true"},
			},
			&container.HostConfig{
				PortBindings: nat.PortMap{port: {{HostPort: fmt.Sprint(d.port)}}},
				Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: d.swarm.sockets[0], Target: "/var/run/docker.sock"}},
			}, nil, nil, d.instance+"-daemon")
		if err != nil {
			return fmt.Errorf("create daemon container: %w", err)
		}
		id = created.ID
		d.mu.Lock()
		d.ctr = id
		d.mu.Unlock()
	}
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "===== e2e harness: start #%d of %s (container %s on the swarm manager) at %s =====\n",
		starts, d.instance, short(id), time.Now().Format(time.RFC3339Nano))
	// Wait is registered before the start, so a quick exit is not missed.
	waitC, waitErrC := cli.ContainerWait(context.Background(), id, container.WaitConditionNextExit)
	err = cli.ContainerStart(ctx, id, container.StartOptions{})
	if err != nil && strings.Contains(err.Error(), "network") && strings.Contains(err.Error(), "not found") {
		// Engine 20.10 cannot re-attach a stopped container to an
		// attachable overlay that has no task on this node any more (a
		// service removed meanwhile): leave the function networks, which
		// the daemon joins again itself at start, and start once more.
		leaveFunctionNetworks(ctx, cli, id)
		err = cli.ContainerStart(ctx, id, container.StartOptions{})
	}
	if err != nil {
		logFile.Close()
		return fmt.Errorf("start daemon container: %w", err)
	}
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	exited := make(chan struct{})
	d.mu.Lock()
	d.exited, d.waitEr = exited, nil
	d.mu.Unlock()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		rc, err := cli.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Since: since})
		if err != nil {
			fmt.Fprintf(logFile, "e2e harness: follow the container log: %v\n", err)
			return
		}
		defer rc.Close()
		_, _ = stdcopy.StdCopy(logFile, logFile, rc)
	}()
	go func() {
		var err error
		select {
		case res := <-waitC:
			if res.StatusCode != 0 {
				err = fmt.Errorf("exit status %d", res.StatusCode)
			}
		case err = <-waitErrC:
		}
		select {
		case <-logsDone:
		case <-time.After(5 * time.Second):
		}
		logFile.Close()
		d.mu.Lock()
		d.waitEr = err
		d.mu.Unlock()
		close(exited)
	}()
	return d.waitHealthy(exited)
}

// containerEnv is the daemon's environment in its container: what the
// process gets, minus what only fits a process on this machine.
func (d *daemon) containerEnv() map[string]string {
	set := map[string]string{
		"RUNTIME":           runtimeSwarm,
		"AUTH_USER":         d.user,
		"AUTH_PASSWORD":     d.password,
		"INSTANCE":          d.instance,
		"FUNCTIONS_NETWORK": d.network,
		"LOG_LEVEL":         "debug",
		"RESYNC_INTERVAL":   "5s",
	}
	for k, v := range d.env {
		set[k] = v
	}
	return set
}

// signalContainer is signal for a daemon in a container.
func (d *daemon) signalContainer(sig string, timeout time.Duration) error {
	d.mu.Lock()
	id, exited := d.ctr, d.exited
	d.mu.Unlock()
	if id == "" || exited == nil {
		return nil
	}
	select {
	case <-exited:
		return errors.New("daemon had already exited")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	_ = d.docker.ContainerKill(ctx, id, sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = d.docker.ContainerKill(ctx, id, "KILL")
		<-exited
		return fmt.Errorf("did not exit within %s of %s; killed", timeout, sig)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitEr
}

// removeSwarmInstance removes the services, then the secrets and networks,
// labelled with the instance (and then its containers: the daemon's).
func removeSwarmInstance(cli *client.Client, inst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+inst))
	var errs []error
	svcs, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	for _, s := range svcs {
		if s.Spec.Labels[labelInstance] != inst {
			continue
		}
		if err := cli.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove service %s: %w", s.Spec.Name, err))
		}
	}
	// The journal of a daemon run as a service (swarm configs).
	configs, err := cli.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
	if err != nil {
		errs = append(errs, fmt.Errorf("list configs: %w", err))
	}
	for _, c := range configs {
		if c.Spec.Labels[labelInstance] != inst {
			continue
		}
		if err := cli.ConfigRemove(ctx, c.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove config %s: %w", c.Spec.Name, err))
		}
	}
	// Secrets and networks are freed once the tasks are gone.
	for attempt := 0; ; attempt++ {
		var left []error
		secrets, err := cli.SecretList(ctx, swarm.SecretListOptions{Filters: f})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("list secrets: %w", err))...)
		}
		for _, s := range secrets {
			if s.Spec.Labels[labelInstance] != inst {
				continue
			}
			if err := cli.SecretRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
				left = append(left, fmt.Errorf("remove secret %s: %w", s.Spec.Name, err))
			}
		}
		if len(left) == 0 {
			break
		}
		if attempt == 40 {
			errs = append(errs, left...)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.Join(append(errs, removeInstance(cli, inst))...)
}

// swarmTasks lists the running tasks of a function's service on the swarm
// (by the service's instance and function labels).
func (d *daemon) swarmTasks(name, ns string) ([]swarm.Task, error) {
	wanted, err := d.swarmWantedTasks(name, ns)
	var out []swarm.Task
	for _, tk := range wanted {
		if tk.Status.State == swarm.TaskStateRunning {
			out = append(out, tk)
		}
	}
	return out, err
}

// swarmWantedTasks lists the tasks of a function's service that swarm
// wants running, in whatever state they are.
func (d *daemon) swarmWantedTasks(name, ns string) ([]swarm.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := d.swarmService(ctx, name, ns)
	if err != nil {
		return nil, err
	}
	return d.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
}

// swarmService finds the function's service by its labels.
func (d *daemon) swarmService(ctx context.Context, name, ns string) (swarm.Service, error) {
	svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance), filters.Arg("label", labelFunction+"="+name),
		filters.Arg("label", labelNamespace+"="+ns))})
	switch {
	case err != nil:
		return swarm.Service{}, err
	case len(svcs) != 1:
		return swarm.Service{}, fmt.Errorf("%d services for %s.%s, want 1", len(svcs), name, ns)
	}
	return svcs[0], nil
}

// replicaIDs returns the IDs of a function's running replicas: containers
// on one host, tasks on a swarm. Tests that only count or compare replicas
// use it on both runtimes.
func (d *daemon) replicaIDs(name, ns string) ([]string, error) {
	if d.runtime != runtimeSwarm {
		return d.runningIDs(name, ns)
	}
	tasks, err := d.swarmTasks(name, ns)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(tasks))
	for _, tk := range tasks {
		ids = append(ids, tk.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// dumpSwarmState logs the services and tasks of this instance.
func (d *daemon) dumpSwarmState() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+d.instance))
	var b strings.Builder
	svcs, err := d.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		fmt.Fprintf(&b, "list services: %v\n", err)
	}
	for _, s := range svcs {
		fmt.Fprintf(&b, "service %s %s\n", short(s.ID), s.Spec.Name)
		tasks, err := d.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", s.ID))})
		if err != nil {
			fmt.Fprintf(&b, "  list tasks: %v\n", err)
		}
		for _, tk := range tasks {
			fmt.Fprintf(&b, "  task %s slot=%d node=%s state=%s desired=%s err=%q\n",
				short(tk.ID), tk.Slot, short(tk.NodeID), tk.Status.State, tk.DesiredState, tk.Status.Err)
		}
	}
	d.t.Logf("----- swarm objects of instance %s -----\n%s", d.instance, b.String())
}

// fnImage is the image of a test function, on the daemon's runtime (loaded
// into every node of the swarm).
func (d *daemon) fnImage(fn string) string {
	d.t.Helper()
	if d.runtime == runtimeSwarm {
		return swarmFnImage(d.t, fn)
	}
	return fnImage(d.t, fn)
}

// replicaEnv is the environment a replica was started with: its
// container's on one host, its task spec's on a swarm.
func (d *daemon) replicaEnv(id string) map[string]string {
	d.t.Helper()
	if d.runtime != runtimeSwarm {
		return envList(d.inspect(id).Config.Env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, _, err := d.docker.TaskInspectWithRaw(ctx, id)
	if err != nil {
		d.t.Fatalf("inspect task %s: %v", short(id), err)
	}
	return envList(tk.Spec.ContainerSpec.Env)
}

// tasksAre is replicasAre on a swarm: exactly n tasks not yet ended (a
// task swarm is stopping counts until it has stopped), each running.
func (d *daemon) tasksAre(name string, n int, check func(id string) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := d.swarmService(ctx, name, defaultNamespace)
	if err != nil {
		return err
	}
	tasks, err := d.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return err
	}
	var live []swarm.Task
	for _, tk := range tasks {
		switch tk.Status.State {
		case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected,
			swarm.TaskStateOrphaned, swarm.TaskStateRemove:
			continue
		}
		live = append(live, tk)
	}
	if len(live) != n {
		return fmt.Errorf("%d tasks not ended, want %d", len(live), n)
	}
	for _, tk := range live {
		if tk.Status.State != swarm.TaskStateRunning || tk.DesiredState != swarm.TaskStateRunning {
			return fmt.Errorf("task %s is %s (desired %s)", short(tk.ID), tk.Status.State, tk.DesiredState)
		}
		if err := check(tk.ID); err != nil {
			return err
		}
	}
	return nil
}

// managers counts the swarm's managers.
func (sw *testSwarm) managers(ctx context.Context) (int, error) {
	nodes, err := sw.manager().NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, nd := range nodes {
		if nd.Spec.Role == swarm.NodeRoleManager {
			n++
		}
	}
	return n, nil
}

// leaveFunctionNetworks disconnects a stopped daemon container from every
// network of its instance (those labelled with it), by force.
func leaveFunctionNetworks(ctx context.Context, cli *client.Client, id string) {
	ctr, err := cli.ContainerInspect(ctx, id)
	if err != nil || ctr.NetworkSettings == nil {
		return
	}
	for name, ep := range ctr.NetworkSettings.Networks {
		if ep == nil || name == "bridge" || !strings.Contains(name, ctr.Config.Labels[labelInstance]) {
			continue
		}
		_ = cli.NetworkDisconnect(ctx, name, id, true)
	}
}
