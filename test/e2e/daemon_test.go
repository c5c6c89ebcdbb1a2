package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	sdk "github.com/openfaas/go-sdk"
)

// Bounds of the daemon's life cycle as seen by the harness.
const (
	healthzTimeout = 30 * time.Second
	stopTimeout    = 30 * time.Second
	logTailLines   = 200
)

// daemon is one dockerfaasd process started by a test, plus everything the
// test needs to talk to it. Restart keeps the port, state dir and instance,
// so the restarted process sees the same desired state and Docker objects.
type daemon struct {
	t      *testing.T
	docker *client.Client

	bin      string
	port     int
	instance string // INSTANCE, also the value of the io.dockerfaas.instance label
	network  string // FUNCTIONS_NETWORK prefix
	stateDir string
	user     string
	password string
	env      map[string]string // extra/overriding environment
	logPath  string
	baseURL  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has been waited for
	waitEr error
	starts int

	http *http.Client // no redirects followed, bounded timeout
	// transport is what every harness client uses: nil (the default) for
	// plain HTTP, or one that trusts the test CA of withTLS.
	transport http.RoundTripper

	// runtime is runtimeDocker (a process on this machine, the default) or
	// runtimeSwarm (a container on the test swarm's manager: swarm, image
	// and ctr, its container, are set then; see swarm_harness_test.go).
	runtime string
	swarm   *testSwarm
	image   string
	ctr     string
}

// daemonOption customises startDaemon.
type daemonOption func(*daemon)

// withEnv sets (or overrides) one environment variable of the daemon.
func withEnv(key, value string) daemonOption {
	return func(d *daemon) { d.env[key] = value }
}

// withTLS makes the daemon serve HTTPS with the pair in certFile and
// keyFile, and the harness talk to it over https trusting roots.
func withTLS(certFile, keyFile string, roots *x509.CertPool) daemonOption {
	return func(d *daemon) {
		d.env["TLS_CERT_FILE"], d.env["TLS_KEY_FILE"] = certFile, keyFile
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		d.transport = tr
	}
}

// scheme is how the harness reaches the daemon.
func (d *daemon) scheme() string {
	if d.transport != nil {
		return "https"
	}
	return "http"
}

// withInvokeAuth turns basic auth on /function/* on or off (INVOKE_AUTH).
func withInvokeAuth(on bool) daemonOption {
	return withEnv("INVOKE_AUTH", strconv.FormatBool(on))
}

// startDaemon builds (once per run) and starts dockerfaasd on a free port of
// 127.0.0.1 with a unique instance name and a temporary state dir, and waits
// until /healthz answers 200. t.Cleanup stops it, dumps its log when the test
// failed, and removes the containers and networks labelled with its instance.
func startDaemon(t *testing.T, opts ...daemonOption) *daemon {
	t.Helper()
	cli := requireDocker(t)
	bin := daemonBinary(t)

	inst := "e2e-" + randomSuffix(6)
	dir := t.TempDir() // removed after our cleanup below, which is registered later
	d := &daemon{
		t:        t,
		docker:   cli,
		bin:      bin,
		port:     freePort(t),
		instance: inst,
		network:  inst,
		stateDir: filepath.Join(dir, "state"),
		user:     "admin",
		password: "pw-" + randomSuffix(16),
		env:      map[string]string{},
		logPath:  filepath.Join(dir, "dockerfaasd.log"),
		http: &http.Client{
			Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	d.http.Transport = d.transport
	d.baseURL = fmt.Sprintf("%s://127.0.0.1:%d", d.scheme(), d.port)
	if d.runtime == runtimeSwarm {
		d.prepareSwarm()
	}
	if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cleanup)
	// The port was free when picked but may have been taken since; retry
	// with another one when the daemon says so.
	for attempt := 1; ; attempt++ {
		err := d.launch()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(d.logTail(20), "address already in use") {
			d.dumpLog()
			t.Fatalf("daemon %s: %v", d.instance, err)
		}
		d.port = freePort(t)
		d.baseURL = fmt.Sprintf("%s://127.0.0.1:%d", d.scheme(), d.port)
		if d.runtime == runtimeSwarm {
			d.baseURL = fmt.Sprintf("http://%s:%d", d.swarm.addr, d.port)
		}
	}
	t.Logf("daemon %s listening on %s (log %s)", d.instance, d.baseURL, d.logPath)
	return d
}

// environ returns the daemon's environment.
func (d *daemon) environ() []string {
	env := os.Environ()
	set := map[string]string{
		"GATEWAY_PORT":      strconv.Itoa(d.port),
		"BIND_ADDRESS":      "127.0.0.1",
		"STATE_DIR":         d.stateDir,
		"AUTH_USER":         d.user,
		"AUTH_PASSWORD":     d.password,
		"INSTANCE":          d.instance,
		"FUNCTIONS_NETWORK": d.network,
		"LOG_LEVEL":         "debug",
		"RESYNC_INTERVAL":   "5s",
	}
	if suite.jobInitBin != "" {
		set["JOB_INIT_BINARY"] = suite.jobInitBin
	}
	for k, v := range d.env {
		set[k] = v
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// start launches the process and waits for /healthz; it fails the test
// (after dumping the log) when the daemon exits or never becomes healthy.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.launch(); err != nil {
		d.dumpLog()
		d.t.Fatalf("daemon %s: %v", d.instance, err)
	}
}

// launch starts the process and waits until /healthz answers 200.
func (d *daemon) launch() error {
	if d.runtime == runtimeSwarm {
		return d.launchContainer()
	}
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.starts++
	fmt.Fprintf(logFile, "===== e2e harness: start #%d of %s at %s =====\n", d.starts, d.instance, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin)
	cmd.Dir = filepath.Dir(d.logPath)
	cmd.Env = d.environ()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group, so a ^C on `go test` does not race our shutdown; and
	// die with the test binary, so an aborted run leaves no daemon behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		logFile.Close()
		return fmt.Errorf("starting %s: %w", d.bin, err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited, d.waitEr = cmd, exited, nil
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logFile.Close()
		d.mu.Lock()
		d.waitEr = err
		d.mu.Unlock()
		close(exited)
	}()

	return d.waitHealthy(exited)
}

// waitHealthy polls GET /healthz until it answers 200, the process exits, or
// healthzTimeout passes.
func (d *daemon) waitHealthy(exited <-chan struct{}) error {
	deadline := time.Now().Add(healthzTimeout)
	c := &http.Client{Timeout: 2 * time.Second, Transport: d.transport}
	var last error
	for i := 0; time.Now().Before(deadline) && i < 1000; i++ {
		select {
		case <-exited:
			d.mu.Lock()
			err := d.waitEr
			d.mu.Unlock()
			return fmt.Errorf("exited before becoming healthy: %v", err)
		default:
		}
		res, err := c.Get(d.baseURL + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz: %s", res.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %s: %v", healthzTimeout, last)
}

// running reports whether the process is alive.
func (d *daemon) running() bool {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the process and waits up to timeout for it to exit,
// escalating to SIGKILL after that. It returns how the process ended.
func (d *daemon) signal(sig syscall.Signal, timeout time.Duration) error {
	if d.runtime == runtimeSwarm {
		name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT"}[sig]
		return d.signalContainer(name, timeout)
	}
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil || exited == nil {
		return nil
	}
	select {
	case <-exited:
		return errors.New("daemon had already exited")
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("did not exit within %s of %v; killed", timeout, sig)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitEr
}

// Stop sends SIGTERM and waits for the daemon to exit. A daemon that needs
// SIGKILL or exits non-zero fails the test: graceful shutdown is a feature.
func (d *daemon) Stop() {
	d.t.Helper()
	if err := d.signal(syscall.SIGTERM, stopTimeout); err != nil {
		d.t.Errorf("daemon %s: graceful stop: %v", d.instance, err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) Kill() {
	d.t.Helper()
	_ = d.signal(syscall.SIGKILL, stopTimeout)
}

// Restart stops the daemon if it is running and starts it again with the
// same port, state dir and instance.
func (d *daemon) Restart() {
	d.t.Helper()
	if d.running() {
		d.Stop()
	}
	d.start()
}

// cleanup stops the daemon, dumps its log if the test failed, and removes the
// containers and networks carrying this daemon's instance label. It never
// touches anything else.
func (d *daemon) cleanup() {
	t := d.t
	if t.Failed() && d.running() {
		d.dumpDebug()
	}
	if d.running() {
		if err := d.signal(syscall.SIGTERM, stopTimeout); err != nil {
			t.Logf("daemon %s: stop during cleanup: %v", d.instance, err)
		}
	}
	if bad := d.logProblems(); len(bad) > 0 {
		t.Errorf("the daemon log of %s shows a crash or a data race:\n%s", d.instance, strings.Join(bad, "\n"))
	}
	if t.Failed() {
		d.dumpDockerState()
		if d.runtime == runtimeSwarm {
			d.dumpSwarmState()
		}
		d.dumpLog()
	}
	if os.Getenv("E2E_KEEP") == "1" {
		t.Logf("E2E_KEEP=1: leaving containers and networks labelled %s=%s", labelInstance, d.instance)
		return
	}
	remove := removeInstance
	if d.runtime == runtimeSwarm {
		remove = removeSwarmInstance
	}
	if err := remove(d.docker, d.instance); err != nil {
		var stale *staleEndpointError
		if errors.As(err, &stale) && onlyStaleEndpoints(err) {
			t.Logf("cleanup of instance %s: %v", d.instance, err)
		} else {
			t.Errorf("cleanup of instance %s: %v", d.instance, err)
		}
	}
}

// onlyStaleEndpoints reports whether every error joined in err is a
// staleEndpointError.
func onlyStaleEndpoints(err error) bool {
	var stale *staleEndpointError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyStaleEndpoints(e) {
				return false
			}
		}
		return true
	}
	return errors.As(err, &stale)
}

// staleEndpointError: Docker refuses to remove a network that has no
// container attached, for an endpoint it leaked (Engine 20.10).
type staleEndpointError struct{ network string }

func (e *staleEndpointError) Error() string {
	return "network " + e.network + " keeps a stale endpoint with no container attached (an Engine 20.10 leak after heavy container churn; an engine restart clears it)"
}

// removeInstance force-removes the containers, then the networks, that carry
// io.dockerfaas.instance=inst. Network removal is retried briefly because
// Docker may still be detaching endpoints of just-removed containers.
func removeInstance(cli *client.Client, inst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+inst))

	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range cs {
		if c.Labels[labelInstance] != inst { // belt and braces: never remove what is not ours
			continue
		}
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
		}
	}

	for attempt := 0; attempt < 10; attempt++ {
		nws, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
		}
		var left []error
		for _, n := range nws {
			if n.Labels[labelInstance] != inst {
				continue
			}
			err := cli.NetworkRemove(ctx, n.ID)
			if err != nil && strings.Contains(err.Error(), "active endpoints") && attempt >= 3 {
				// Engine 20.10 can keep a stale endpoint after heavy
				// container churn (a job test's thousand runs): the
				// containers are gone, so disconnect what is left by force.
				in, ierr := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{})
				if ierr == nil {
					for cid, ep := range in.Containers {
						if derr := cli.NetworkDisconnect(ctx, n.ID, ep.Name, true); derr != nil {
							_ = cli.NetworkDisconnect(ctx, n.ID, cid, true)
						}
					}
				}
				err = cli.NetworkRemove(ctx, n.ID)
				if err != nil && ierr == nil && len(in.Containers) == 0 && attempt == 9 {
					// No container is attached, yet the engine counts an
					// endpoint no API call can reach: its own bookkeeping,
					// which only an engine restart clears. Every container
					// of the instance is gone (checked above), so this is
					// reported, not failed.
					err = &staleEndpointError{network: n.Name}
				}
			}
			if err != nil && !cerrdefs.IsNotFound(err) {
				left = append(left, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
		if len(left) == 0 {
			return errors.Join(errs...)
		}
		if attempt == 9 {
			errs = append(errs, left...)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// dumpLog writes the last logTailLines lines of the daemon's log to the test log.
func (d *daemon) dumpLog() {
	lines, total, err := tailFile(d.logPath, logTailLines)
	if err != nil {
		d.t.Logf("daemon log: %v", err)
		return
	}
	d.t.Logf("----- last %d of %d lines of the %s daemon log (%s) -----\n%s\n----- end of daemon log -----",
		len(lines), total, d.instance, d.logPath, strings.Join(lines, "\n"))
}

// logTail returns the last n lines of the daemon's log as one string.
func (d *daemon) logTail(n int) string {
	lines, _, _ := tailFile(d.logPath, n)
	return strings.Join(lines, "\n")
}

// logProblems returns the log lines that show a Go panic, a fatal runtime
// error or a data race report (the binary may be built with E2E_RACE=1).
func (d *daemon) logProblems() []string {
	f, err := os.Open(d.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() && len(bad) < 20 {
		line := sc.Text()
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") ||
			strings.Contains(line, "WARNING: DATA RACE") {
			bad = append(bad, line)
		}
	}
	return bad
}

// tailFile returns the last n lines of the file at path and its line count.
func tailFile(path string, n int) ([]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	ring := make([]string, n)
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		ring[total%n] = sc.Text()
		total++
	}
	first := max(total-n, 0)
	out := make([]string, 0, total-first)
	for i := first; i < total; i++ {
		out = append(out, ring[i%n])
	}
	return out, total, sc.Err()
}

// dumpDebug logs the daemon's /debug/reconcile JSON (best effort).
func (d *daemon) dumpDebug() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.baseURL+"/debug/reconcile", nil)
	if err != nil {
		return
	}
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(d.user, d.password)
	res, err := d.http.Do(req)
	if err != nil {
		d.t.Logf("GET /debug/reconcile: %v", err)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 8<<10))
	d.t.Logf("GET /debug/reconcile: %s\n%s", res.Status, body)
}

// dumpDockerState logs the containers and networks of this instance.
func (d *daemon) dumpDockerState() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+d.instance))
	var b strings.Builder
	cs, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		fmt.Fprintf(&b, "list containers: %v\n", err)
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "container %s %v image=%s state=%s status=%q function=%s\n",
			c.ID[:12], c.Names, c.Image, c.State, c.Status, c.Labels[labelFunction])
	}
	nws, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		fmt.Fprintf(&b, "list networks: %v\n", err)
	}
	for _, n := range nws {
		fmt.Fprintf(&b, "network %s %s function=%s\n", n.ID[:12], n.Name, n.Labels[labelFunction])
	}
	d.t.Logf("----- Docker objects of instance %s -----\n%s", d.instance, b.String())
}

// client returns an OpenFaaS Go SDK client for the daemon, with basic auth.
func (d *daemon) client() *sdk.Client {
	u, err := url.Parse(d.baseURL)
	if err != nil {
		d.t.Fatal(err)
	}
	return sdk.NewClient(u, &sdk.BasicAuth{Username: d.user, Password: d.password},
		&http.Client{Timeout: 60 * time.Second, Transport: d.transport})
}

// networkName is the Docker network the daemon should create for a function.
func (d *daemon) networkName(ns, fn string) string {
	return d.network + "-" + fn + "." + ns
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// randomSuffix returns n random lowercase letters and digits.
func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}
