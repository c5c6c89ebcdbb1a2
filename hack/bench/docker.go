package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// labelBench marks the containers and networks the driver creates itself
// (the Docker floor), with the run ID as value. What the daemon creates
// carries docker.LabelInstance = run ID instead; cleanup removes both.
const labelBench = "io.dockerfaas.bench"

// The function image: test/e2e/testdata/fn-hostname, static, FROM scratch.
const (
	fnSource     = "test/e2e/testdata/fn-hostname"
	fnDockerfile = "FROM scratch\nCOPY fn /fn\nEXPOSE 8080\nENTRYPOINT [\"/fn\"]\n"
	imageRepo    = "dockerfaasd-bench/fn-hostname"
	labelContent = "io.dockerfaas.bench.content"
)

var fnBuildFlags = []string{"-trimpath", "-ldflags=-s -w"}

func randomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func connectDocker(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker ping (start it with hack/docker-up.sh): %w", err)
	}
	cli.NegotiateAPIVersion(pctx)
	return cli, nil
}

// goBuild runs `go build` in the module with extra environment.
func (r *runner) goBuild(ctx context.Context, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	cmd.Dir = r.s.ModuleDir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ensureImage builds the function image unless one built from the same
// sources, Dockerfile, toolchain and flags is already there.
func (r *runner) ensureImage(ctx context.Context) (string, error) {
	return r.ensureFnImage(ctx, fnSource, imageRepo, "fn")
}

// ensureFnImage builds the Go program in source into a FROM scratch image
// of repo, tagged by a hash of what went into it, unless that is there.
func (r *runner) ensureFnImage(ctx context.Context, source, repo, bin string) (string, error) {
	src := filepath.Join(r.s.ModuleDir, source)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", fnDockerfile, runtime.Version(), runtime.GOARCH, strings.Join(fnBuildFlags, " "))
	main, err := os.ReadFile(filepath.Join(src, "main.go"))
	if err != nil {
		return "", err
	}
	h.Write(main)
	hash := hex.EncodeToString(h.Sum(nil))
	tag := repo + ":" + hash[:16]
	if img, err := r.docker.ImageInspect(ctx, tag); err == nil && img.Config != nil && img.Config.Labels[labelContent] == hash {
		return tag, nil
	}
	out := filepath.Join(r.tmp, bin)
	args := append(append([]string{}, fnBuildFlags...), "-o", out, "./"+source)
	if err := r.goBuild(ctx, []string{"CGO_ENABLED=0", "GOOS=linux"}, args...); err != nil {
		return "", err
	}
	fn, err := imageFile("fn", out)
	if err != nil {
		return "", err
	}
	if err := buildImage(ctx, r.docker, tag, fnDockerfile, map[string]string{labelContent: hash}, fn); err != nil {
		return "", err
	}
	return tag, nil
}

// contextFile is one file of an image's build context.
type contextFile struct {
	name string
	mode int64
	data []byte
}

// imageFile reads an executable into a build context file called name.
func imageFile(name, path string) (contextFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return contextFile{}, fmt.Errorf("read %s: %w", path, err)
	}
	return contextFile{name: name, mode: 0o755, data: data}, nil
}

// buildImage builds tag on the engine cli from dockerfile and files, with
// the classic builder: the images here are FROM scratch around static
// binaries, so nothing is pulled and no BuildKit is needed (the swarm
// nodes' engines may have none).
func buildImage(ctx context.Context, cli *client.Client, tag, dockerfile string, labels map[string]string, files ...contextFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range append([]contextFile{{"Dockerfile", 0o644, []byte(dockerfile)}}, files...) {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Version: build.BuilderV1, Labels: labels,
	})
	if err != nil {
		return fmt.Errorf("image build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		return fmt.Errorf("image build %s: %w\n%s", tag, err, out.String())
	}
	return nil
}

// createNetwork makes a bridge network labelled with the run ID.
func (r *runner) createNetwork(ctx context.Context, name string) (string, error) {
	// Docker's stock address pools hold about 30 bridge networks for the
	// whole host (docs/operations.md); when others use them all, wait a
	// while for one.
	for i := 0; ; i++ {
		resp, err := r.docker.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "bridge", Labels: map[string]string{labelBench: r.id},
		})
		if err == nil {
			return resp.ID, nil
		}
		if !strings.Contains(err.Error(), "address pool") || i == 60 || ctx.Err() != nil {
			return "", fmt.Errorf("create network %s: %w", name, err)
		}
		if i == 0 {
			logf("Docker's address pools are exhausted; waiting up to 2 min for a free one")
		}
		time.Sleep(2 * time.Second)
	}
}

// runFloor creates and starts one function container on network nw and
// returns its ID and IP: `docker run` through the API, nothing more.
func (r *runner) runFloor(ctx context.Context, name, nw string) (id, ip string, err error) {
	created, err := r.docker.ContainerCreate(ctx,
		&container.Config{Image: r.image, Labels: map[string]string{labelBench: r.id}},
		&container.HostConfig{NetworkMode: container.NetworkMode(nw)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw: {}}},
		nil, name)
	if err != nil {
		return "", "", fmt.Errorf("create %s: %w", name, err)
	}
	if err := r.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return created.ID, "", fmt.Errorf("start %s: %w", name, err)
	}
	ins, err := r.docker.ContainerInspect(ctx, created.ID)
	if err != nil {
		return created.ID, "", err
	}
	if ins.NetworkSettings == nil || ins.NetworkSettings.Networks[nw] == nil || ins.NetworkSettings.Networks[nw].IPAddress == "" {
		return created.ID, "", fmt.Errorf("container %s has no address on %s", name, nw)
	}
	return created.ID, ins.NetworkSettings.Networks[nw].IPAddress, nil
}

// removeContainer force-removes one container of engine cli; gone counts
// as removed.
func removeContainer(ctx context.Context, cli *client.Client, id string) error {
	err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// removeNetwork removes one network of engine cli, retrying briefly while
// Docker still detaches the endpoints of just-removed containers.
func removeNetwork(ctx context.Context, cli *client.Client, id string) error {
	var err error
	for range 20 {
		err = cli.NetworkRemove(ctx, id)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// functionContainers lists the daemon's containers of one function.
func (r *runner) functionContainers(ctx context.Context, name string) ([]container.Summary, error) {
	f := filters.NewArgs(
		filters.Arg("label", docker.LabelInstance+"="+r.id),
		filters.Arg("label", docker.LabelFunction+"="+name),
	)
	return r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
}

// instanceContainers lists every container the daemon of this run created.
func (r *runner) instanceContainers(ctx context.Context) ([]container.Summary, error) {
	f := filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+r.id))
	return r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
}

// removeLabelled force-removes the containers, then the networks, of engine
// cli that carry label=r.id, and checks the value again before each
// removal: nothing that another run or a person made is touched.
func (r *runner) removeLabelled(ctx context.Context, cli *client.Client, label string) error {
	f := filters.NewArgs(filters.Arg("label", label+"="+r.id))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var mu sync.Mutex
	var errs []error
	parallel(len(cs), func(i int) {
		if cs[i].Labels[label] != r.id {
			return
		}
		if err := removeContainer(ctx, cli, cs[i].ID); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	nws, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	parallel(len(nws), func(i int) {
		if nws[i].Labels[label] != r.id {
			return
		}
		if err := removeNetwork(ctx, cli, nws[i].ID); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("remove network %s: %w", nws[i].Name, err))
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

// parallel runs f(0) … f(n-1), eight at a time: a thousand removals one
// by one would take minutes.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// drain reads and closes a response body so the connection is reused.
func drain(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, rc)
	_ = rc.Close()
}
