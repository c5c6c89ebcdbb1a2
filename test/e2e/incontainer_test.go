package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/go-connections/nat"
	"github.com/openfaas/faas-provider/types"
)

// TestDaemonInAContainer builds the project's Dockerfile around a static
// daemon binary and runs it as a container with the Docker socket mounted
// and only a published port: it must join each function network to reach
// the replicas, serve invocations, and leave the network so a delete can
// remove it.
func TestDaemonInAContainer(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	image := daemonImage(t)
	fnImg := fnImage(t, "fn-hostname")

	inst := "e2e-" + randomSuffix(6)
	port := freePort(t)
	password := randomSuffix(16)
	t.Cleanup(func() {
		if err := removeInstance(cli, inst); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hostPort := nat.PortBinding{HostIP: "127.0.0.1", HostPort: fmt.Sprint(port)}
	created, err := cli.ContainerCreate(ctx,
		&container.Config{
			Image:        image,
			Env:          []string{"INSTANCE=" + inst, "AUTH_PASSWORD=" + password, "LOG_LEVEL=debug", "RESYNC_INTERVAL=5s"},
			Labels:       map[string]string{labelInstance: inst}, // so cleanup removes the daemon too
			ExposedPorts: nat.PortSet{"8080/tcp": {}},
		},
		&container.HostConfig{
			PortBindings: nat.PortMap{"8080/tcp": {hostPort}},
			Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}},
		}, nil, nil, inst+"-daemon")
	if err != nil {
		t.Fatalf("create daemon container: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start daemon container: %v", err)
	}
	d := &daemon{
		t: t, docker: cli, instance: inst, network: inst, port: port, user: "admin", password: password,
		baseURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		http:    &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, err := cli.ContainerLogs(context.Background(), created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "80"})
			if err == nil {
				var b bytes.Buffer
				_, _ = b.ReadFrom(logs)
				logs.Close()
				t.Logf("daemon container log:\n%s", b.String())
			}
		}
	})
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

	labels, ann := map[string]string{}, map[string]string{}
	d.deploy(types.FunctionDeployment{Service: "inbox", Image: fnImg, Labels: &labels, Annotations: &ann})
	d.waitReady("inbox", "openfaas-fn", 1)
	if res := d.invoke(http.MethodGet, "/function/inbox", nil, nil); res.Status != http.StatusOK {
		t.Fatalf("invoke through the containerised daemon: %v", res)
	}
	nets, err := d.fnNetworks("inbox")
	if err != nil || len(nets) != 1 {
		t.Fatalf("function networks: %v %v", nets, err)
	}
	self, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := self.NetworkSettings.Networks[nets[0].Name]; !ok {
		t.Fatalf("daemon container not attached to %s: %v", nets[0].Name, self.NetworkSettings.Networks)
	}

	// Per-request isolation over the socket protocol: the control sockets
	// are made in the daemon's state volume, which function containers
	// mount by its path on the host (found by inspecting the daemon's own
	// container), and the handler has no network.
	d.deployIsolated("sealed", "socket", 1)
	for i := range 3 {
		got, res := d.callIsolated("sealed", "/", fmt.Sprint(i))
		if res.Status != http.StatusOK || got.Count != 1 || got.Protocol != "socket" || !slices.Equal(got.Interfaces, []string{"lo"}) {
			t.Fatalf("isolated call %d through the containerised daemon: %s %+v", i, res, got)
		}
	}
	if err := d.client().DeleteFunction(ctx, "sealed", "openfaas-fn"); err != nil {
		t.Fatal(err)
	}

	if err := d.client().DeleteFunction(ctx, "inbox", "openfaas-fn"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		nets, err := d.fnNetworks("inbox")
		if err != nil {
			return err
		}
		if len(nets) != 0 {
			return fmt.Errorf("network %s still there", nets[0].Name)
		}
		return nil
	})
}

// daemonImage builds the project's Dockerfile around a static daemon
// binary, once per run, tagged by the binary's content.
func daemonImage(t *testing.T) string {
	t.Helper()
	cli := requireDocker(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "dockerfaasd")
	if err := goCommand(suite.moduleRoot, []string{"CGO_ENABLED=0", "GOOS=linux"},
		"build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/dockerfaasd"); err != nil {
		t.Fatalf("static daemon build: %v", err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(suite.moduleRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"bin/dockerfaasd", 0o755, data}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tag := imageRepoPrefix + "daemon:" + randomSuffix(8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Version: build.BuilderV1, Labels: map[string]string{labelE2E: "true"},
	})
	if err != nil {
		t.Fatalf("build daemon image: %v", err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		t.Fatalf("build daemon image: %v\n%s", err, strings.TrimSpace(out.String()))
	}
	t.Cleanup(func() {
		// Each run tags a fresh image; remove it so runs do not pile up.
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
