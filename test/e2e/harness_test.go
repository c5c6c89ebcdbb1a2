// Package e2e starts the real dockerfaasd binary against the real Docker
// Engine and drives it over HTTP with the OpenFaaS Go SDK and plain requests.
//
// The harness (this file, daemon_test.go, images_test.go, helpers_test.go)
// builds what it needs lazily and at most once per test binary run: the daemon
// binary on the first startDaemon call, each test function image on the first
// fnImage call. A piece that fails to build fails only the tests that need it.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Labels the daemon puts on everything it creates (DESIGN.md §4). The suite
// relies on the instance label to find, check and clean up only its own
// containers and networks.
const (
	labelManaged   = "io.dockerfaas.managed"
	labelInstance  = "io.dockerfaas.instance"
	labelFunction  = "io.dockerfaas.function"
	labelNamespace = "io.dockerfaas.namespace"

	// defaultNamespace is the OpenFaaS default namespace (CONTRACT.md §0.1).
	defaultNamespace = "openfaas-fn"
)

// suite holds what TestMain and the lazy builders share across tests.
var suite struct {
	// skipReason is set when Docker is unreachable outside CI; every test
	// skips with it.
	skipReason string
	// workDir is a per-run temporary directory for built binaries, removed
	// when the run ends.
	workDir string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
	// docker is the shared Docker client (nil when skipping).
	docker *client.Client

	daemonOnce sync.Once
	daemonBin  string
	daemonErr  error
	// jobInitBin is a statically linked build of the daemon for job
	// containers started ahead of calls to run (JOB_INIT_BINARY), made
	// unless daemonBin is one itself ("" then).
	jobInitBin string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain is TestMain's body, split out so deferred cleanups run before
// os.Exit.
func runMain(m *testing.M) int {
	ci := os.Getenv("CI") == "true"

	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	suite.moduleRoot = root

	cli, err := connectDocker()
	switch {
	case err != nil && ci:
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the Docker Engine is unreachable and CI=true, so this is a failure, not a skip: %v\n"+
			"e2e: start one with hack/docker-up.sh or set DOCKER_HOST\n", err)
		return 1
	case err != nil:
		suite.skipReason = fmt.Sprintf("Docker Engine unreachable (%v); start it with hack/docker-up.sh, or set CI=true to make this a failure", err)
		fmt.Fprintf(os.Stderr, "e2e: skipping all tests: %s\n", suite.skipReason)
	default:
		suite.docker = cli
		defer cli.Close()
		if os.Getenv("E2E_SWEEP") == "1" {
			if err := sweepStale(cli, 10*time.Minute); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: sweeping stale e2e objects: %v\n", err)
			}
		}
	}

	dir, err := os.MkdirTemp("", "dockerfaasd-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	suite.workDir = dir
	defer removeJobInitVolume()

	return m.Run()
}

// removeJobInitVolume removes the volume the run's daemons put their
// binary in for pre-started job containers (named by the binary's hash,
// so it is this run's own), once no container uses it.
func removeJobInitVolume() {
	bin := suite.jobInitBin
	if bin == "" {
		bin = suite.daemonBin
	}
	if bin == "" || suite.docker == nil {
		return
	}
	f, err := os.Open(bin)
	if err != nil {
		return
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return
	}
	name := "dockerfaasd-job-init-" + hex.EncodeToString(h.Sum(nil))[:12]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := suite.docker.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "e2e: removing volume %s: %v\n", name, err)
	}
}

// connectDocker returns a client for the Docker Engine from the environment
// (DOCKER_HOST, default unix socket) after checking that it answers.
func connectDocker() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker ping %s: %w", cli.DaemonHost(), err)
	}
	// Negotiate now, before parallel tests share the client: the lazy
	// negotiation on first use is a data race (moby/moby#43729).
	cli.NegotiateAPIVersion(ctx)
	return cli, nil
}

// requireDocker skips t when the suite runs without Docker (outside CI) and
// returns the shared Docker client otherwise. Every test calls it first.
func requireDocker(t *testing.T) *client.Client {
	t.Helper()
	if suite.skipReason != "" {
		t.Skip(suite.skipReason)
	}
	if testing.Short() {
		t.Skip("e2e tests start real containers; skipped with -short")
	}
	return suite.docker
}

// findModuleRoot walks up from the working directory to the directory that
// holds go.mod.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// daemonBinary returns the path of the dockerfaasd binary, building it once
// per run with `go build ./cmd/dockerfaasd` from the module root.
// DOCKERFAASD_BIN names a prebuilt binary instead. The daemon is built with
// -race when the tests are (go test -race) or when E2E_RACE=1, so CI's race
// run covers the daemon's own goroutines too. -buildvcs=auto stamps the
// checkout's revision as a release build has it, even where GOFLAGS says
// -buildvcs=false, and still builds outside a git checkout
// (TestVersionFromBuild checks what the binary reports).
func daemonBinary(t *testing.T) string {
	t.Helper()
	suite.daemonOnce.Do(func() {
		if bin := os.Getenv("DOCKERFAASD_BIN"); bin != "" {
			suite.daemonBin, suite.daemonErr = filepath.Abs(bin)
			return
		}
		out := filepath.Join(suite.workDir, "dockerfaasd")
		args := []string{"build", "-buildvcs=auto", "-o", out}
		race := raceEnabled || os.Getenv("E2E_RACE") == "1"
		if race {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/dockerfaasd")
		start := time.Now()
		if err := goCommand(suite.moduleRoot, nil, args...); err != nil {
			suite.daemonErr = fmt.Errorf("building the daemon: %w", err)
			return
		}
		suite.daemonBin = out
		// The daemon links dynamically when built with -race or cgo on:
		// job containers started ahead of calls run a static build.
		if race || os.Getenv("CGO_ENABLED") != "0" {
			static := filepath.Join(suite.workDir, "dockerfaasd-static")
			if err := goCommand(suite.moduleRoot, []string{"CGO_ENABLED=0"}, "build", "-o", static, "./cmd/dockerfaasd"); err != nil {
				suite.daemonErr = fmt.Errorf("building the static daemon for job-init: %w", err)
				return
			}
			suite.jobInitBin = static
		}
		t.Logf("built daemon binary in %s", time.Since(start).Round(time.Millisecond))
	})
	if suite.daemonErr != nil {
		t.Fatalf("e2e harness: %v", suite.daemonErr)
	}
	return suite.daemonBin
}

// goCommand runs the go tool in dir with extra environment variables and
// returns an error carrying its combined output when it fails.
func goCommand(dir string, env []string, args ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go tool is not on PATH: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// sweepStale removes what aborted runs of this suite left behind (a killed
// test binary runs no cleanup): containers and networks whose instance label
// starts with "e2e-" and that are older than minAge, so that a run going on
// in parallel is never touched. Opt-in with E2E_SWEEP=1.
func sweepStale(cli *client.Client, minAge time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance))
	cutoff := time.Now().Add(-minAge)
	stale := map[string]bool{}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	for _, c := range cs {
		if inst := c.Labels[labelInstance]; strings.HasPrefix(inst, "e2e-") && time.Unix(c.Created, 0).Before(cutoff) {
			stale[inst] = true
		}
	}
	nws, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, n := range nws {
		if inst := n.Labels[labelInstance]; strings.HasPrefix(inst, "e2e-") && n.Created.Before(cutoff) {
			stale[inst] = true
		}
	}
	var errs []error
	for inst := range stale {
		fmt.Fprintf(os.Stderr, "e2e: removing stale objects of instance %s\n", inst)
		errs = append(errs, removeInstance(cli, inst))
	}
	return errors.Join(errs...)
}
