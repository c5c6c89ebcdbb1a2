package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	imagetypes "github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
	"github.com/openfaas/faas-provider/types"
)

// TestCompose runs the repository's compose.yaml as README tells users
// (`make build`, then `docker compose up -d`), in a project of its own,
// with a free port, a unique INSTANCE and a fresh DOCKERFAASD_IMAGE tag
// from an env file: compose builds that image from the Dockerfile through
// the file's `build: .` (no pull: FROM scratch), the container runs it and
// turns healthy through `dockerfaasd healthcheck`, /healthz
// answers on 127.0.0.1, a function deployed and invoked with the Go SDK
// answers, its state is in the project's named volume; a delete, then
// `docker compose down -v` of that project leaves none of its containers,
// networks or volume.
func TestCompose(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	requireCompose(t)
	fnImg := fnImage(t, "fn-hostname")
	buildDir := composeBuildContext(t)
	image := imageRepoPrefix + "compose:" + randomSuffix(8)

	inst := "e2e-" + randomSuffix(6)
	project := "dockerfaasd-" + inst
	password := randomSuffix(16)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "compose.env")
	compose := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		// The project directory is where `build: .` points: the build
		// context as `make build` leaves it in a checkout.
		args = append([]string{"compose", "--project-name", project, "--env-file", envFile,
			"--file", filepath.Join(suite.moduleRoot, "compose.yaml"), "--project-directory", buildDir}, args...)
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Dir = suite.moduleRoot
		cmd.Env = composeEnviron(envFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Last to run: whatever the daemon left of the instance.
	t.Cleanup(func() {
		if os.Getenv("E2E_KEEP") == "1" {
			return
		}
		if err := removeInstance(cli, inst); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// After down: the image compose built.
	t.Cleanup(func() {
		if os.Getenv("E2E_KEEP") == "1" {
			return
		}
		if _, err := cli.ImageRemove(context.Background(), image, imagetypes.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: remove %s: %v", image, err)
		}
	})
	// First to run: this project only.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose(30*time.Second, "logs", "--no-color", "--tail", "80")
			t.Logf("compose logs:\n%s", out)
		}
		if os.Getenv("E2E_KEEP") == "1" {
			return
		}
		if out, err := compose(2*time.Minute, "down", "--volumes", "--timeout", "30"); err != nil {
			t.Errorf("docker compose down: %v\n%s", err, out)
		}
	})

	var port int
	for attempt := 1; ; attempt++ {
		port = freePort(t)
		writeFile(t, envFile, strings.Join([]string{
			"DOCKERFAASD_IMAGE=" + image,
			fmt.Sprintf("DOCKERFAASD_PORT=%d", port),
			"INSTANCE=" + inst,
			"AUTH_PASSWORD=" + password,
			"LOG_LEVEL=debug",
		}, "\n")+"\n")
		// No --build: the image is missing, so up builds it, as on a
		// user's first `docker compose up -d`.
		start := time.Now()
		out, err := compose(3*time.Minute, "up", "--detach", "--pull", "never", "--wait", "--wait-timeout", "90")
		if err == nil {
			t.Logf("docker compose up (build included) took %s", time.Since(start).Round(time.Millisecond))
			break
		}
		if attempt == 3 || !strings.Contains(out, "address already in use") {
			t.Fatalf("docker compose up: %v\n%s", err, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := compose(30*time.Second, "ps", "--quiet", "dockerfaasd")
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("docker compose ps: %v %q", err, out)
	}
	ctr, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ctr.Config.Image != image {
		t.Errorf("container runs %s, want %s", ctr.Config.Image, image)
	}
	if img, err := cli.ImageInspect(ctx, image); err != nil || img.ID != ctr.Image ||
		img.Config == nil || img.Config.Labels["com.docker.compose.project"] != project {
		t.Errorf("image %s was not built by compose for this project: %v %+v", image, err, img.Config)
	}
	if ctr.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart policy %q, want unless-stopped", ctr.HostConfig.RestartPolicy.Name)
	}
	if b := ctr.HostConfig.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != fmt.Sprint(port) {
		t.Errorf("port bindings %v, want 127.0.0.1:%d", ctr.HostConfig.PortBindings, port)
	}
	// --wait returned, so the healthcheck passed: through the binary.
	if h := ctr.State.Health; h == nil || h.Status != "healthy" || len(h.Log) == 0 ||
		h.Log[len(h.Log)-1].ExitCode != 0 || strings.TrimSpace(h.Log[len(h.Log)-1].Output) != "ok" {
		t.Fatalf("container health: %+v", h)
	}

	d := &daemon{
		t: t, docker: cli, instance: inst, network: inst, port: port, user: "admin", password: password,
		baseURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		http:    &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		res, err := d.request(http.MethodGet, "/healthz", nil, nil, authNone)
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			return fmt.Errorf("healthz %d", res.Status)
		}
		return nil
	})

	c := d.client()
	labels, ann := map[string]string{}, map[string]string{}
	if code, err := c.Deploy(ctx, types.FunctionDeployment{Service: "hello", Image: fnImg, Labels: &labels, Annotations: &ann}); err != nil || code != http.StatusAccepted {
		t.Fatalf("deploy: %d %v", code, err)
	}
	d.waitReady("hello", "openfaas-fn", 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(d.user, d.password) // INVOKE_AUTH is on
	res, err := c.InvokeFunction("hello", "openfaas-fn", false, false, req)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	cs, err := d.fnContainers("hello", "openfaas-fn", false)
	if err != nil || len(cs) != 1 {
		t.Fatalf("replicas: %v %v", cs, err)
	}
	if res.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != cs[0].ID[:12] {
		t.Fatalf("invoke: %d %q, want 200 from replica %s", res.StatusCode, body, short(cs[0].ID))
	}

	// The state is in the project's volume, not in the container.
	vols, err := cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("project volumes: %v %v", vols.Volumes, err)
	}
	stateVol := vols.Volumes[0].Name
	mounted := false
	for _, m := range ctr.Mounts {
		mounted = mounted || (m.Name == stateVol && m.Destination == "/var/lib/dockerfaasd")
	}
	if !mounted {
		t.Errorf("volume %s not mounted at /var/lib/dockerfaasd: %+v", stateVol, ctr.Mounts)
	}
	if _, err := cli.ContainerStatPath(ctx, id, "/var/lib/dockerfaasd/state.db"); err != nil {
		t.Errorf("state file in the volume: %v", err)
	}

	if err := c.DeleteFunction(ctx, "hello", "openfaas-fn"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		cs, err := d.fnContainers("hello", "openfaas-fn", true)
		if err != nil {
			return err
		}
		nets, err := d.fnNetworks("hello")
		if err != nil {
			return err
		}
		if len(cs)+len(nets) > 0 {
			return fmt.Errorf("%d containers and %d networks of hello left", len(cs), len(nets))
		}
		return nil
	})

	if out, err := compose(2*time.Minute, "down", "--volumes", "--timeout", "30"); err != nil {
		t.Fatalf("docker compose down: %v\n%s", err, out)
	}
	projectFilter := filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))
	left, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: projectFilter})
	if err != nil || len(left) != 0 {
		t.Errorf("containers of the project after down: %v %v", left, err)
	}
	if vols, err := cli.VolumeList(ctx, volume.ListOptions{Filters: projectFilter}); err != nil || len(vols.Volumes) != 0 {
		t.Errorf("volumes of the project after down: %v %v", vols.Volumes, err)
	}
}

// requireCompose fails the test under CI=true, and skips it elsewhere,
// when `docker compose` (v2) is missing: hack/install-compose.sh installs it.
func requireCompose(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput()
	if err == nil {
		t.Logf("%s", bytes.TrimSpace(out))
		return
	}
	msg := fmt.Sprintf("docker compose (v2) is not available (install it with hack/install-compose.sh): %v %s", err, bytes.TrimSpace(out))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// composeEnviron is this process's environment without the variables the
// env file sets: compose prefers the environment to --env-file.
func composeEnviron(envFile string) []string {
	b, _ := os.ReadFile(envFile)
	set := map[string]bool{}
	for l := range strings.Lines(string(b)) {
		if k, _, ok := strings.Cut(l, "="); ok {
			set[k] = true
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return env
}

// composeBuildContext returns a directory laid out as compose.yaml's
// `build: .` expects in a checkout after `make build`: the repository's
// Dockerfile and a static daemon in bin/. It is built here rather than in
// the checkout's bin/, which belongs to the developer.
func composeBuildContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The flags daemonImage uses, so the go build cache serves both.
	if err := goCommand(suite.moduleRoot, []string{"CGO_ENABLED=0", "GOOS=linux"},
		"build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "bin", "dockerfaasd"), "./cmd/dockerfaasd"); err != nil {
		t.Fatalf("static daemon build: %v", err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(suite.moduleRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), string(dockerfile))
	return dir
}
