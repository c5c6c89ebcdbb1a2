package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// warmFixture is a fixture whose runtime keeps job containers started
// ahead of calls (pool size warm), with a stand-in for the daemon's
// binary, and the runtime watching Docker's events.
func warmFixture(t *testing.T, warm int, mutate ...func(*types.FunctionDeployment)) (*fixture, string) {
	t.Helper()
	f := newFixture(t)
	bin := filepath.Join(t.TempDir(), "dockerfaasd")
	if err := os.WriteFile(bin, []byte("the daemon's binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(f.prober)
	cfg.JobWarm, cfg.JobInitBinary = warm, bin
	f.wire(cfg, f.eng, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	watching := make(chan struct{})
	go func() {
		_ = f.rt.Watch(ctx, func(context.Context) error { close(watching); return nil }, func(string) {})
	}()
	<-watching
	key := f.deploy(deployment("fn", append([]func(*types.FunctionDeployment){asJob("")}, mutate...)...), 1)
	if !f.work(key, 10) {
		t.Fatal("job function did not converge")
	}
	return f, key
}

// waitPooled waits until n job containers are running and returns them.
func (f *fixture) waitPooled(n int) []engine.Container {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var running []engine.Container
		for _, c := range f.jobContainers() {
			if c.State == engine.StateRunning {
				running = append(running, c)
			}
		}
		if len(running) == n {
			return running
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d job containers running, want %d pooled: %v", len(running), n, f.jobContainers())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitPooledWithin is waitPooled with a longer deadline.
func (f *fixture) waitPooledWithin(n int, within time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		running := 0
		for _, c := range f.jobContainers() {
			if c.State == engine.StateRunning {
				running++
			}
		}
		if running == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.t.Fatalf("job containers %v, want %d running", f.jobContainers(), n)
}

// envProgram answers with the process's command and environment.
func envProgram(ctx context.Context, spec engine.ContainerSpec, stdin io.Reader, stdout, _ io.Writer) engine.Exit {
	in, _ := io.ReadAll(stdin)
	fmt.Fprintf(stdout, "cmd=%s env=%s in=%s", strings.Join(spec.Entrypoint, " "), strings.Join(spec.Env, ","), in)
	return engine.Exit{}
}

func TestWarmPoolHandsACallToAPreStartedContainer(t *testing.T) {
	f, key := warmFixture(t, 1)
	f.eng.SetJobProgram(envProgram)
	pooled := f.waitPooled(1)[0]
	spec, _ := f.eng.Spec(pooled.ID)
	if !slices.Equal(spec.Entrypoint, []string{engine.JobInitBinary, "job-init", "--", "/fn"}) {
		t.Errorf("pooled container's command %q", spec.Entrypoint)
	}
	if len(spec.VolumeMounts) != 1 || !spec.VolumeMounts[0].ReadOnly || spec.VolumeMounts[0].Target != engine.JobInitDir {
		t.Errorf("volume mounts %+v, want the job-init volume read-only", spec.VolumeMounts)
	}
	vols := f.eng.VolumeNames()
	if len(vols) != 1 || !strings.HasPrefix(vols[0], jobInitVolumePrefix) {
		t.Fatalf("volumes %v, want one job-init volume", vols)
	}

	var out bytes.Buffer
	res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, CallID: "c1",
		Env: []string{"Http_Method=POST"}, Stdin: strings.NewReader("input"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Warm || res.Container != engine.ShortID(pooled.ID) || res.ExitCode != 0 {
		t.Errorf("result %+v, want a warm run in %s", res, engine.ShortID(pooled.ID))
	}
	got := out.String()
	if !strings.HasPrefix(got, "cmd=/fn env=") || !strings.Contains(got, "Http_Method=POST") || !strings.HasSuffix(got, " in=input") {
		t.Errorf("output %q: want the function's command, the call's environment and its input (and no ack byte)", got)
	}
	// The container served one call: removed, and another takes its place.
	next := f.waitPooled(1)[0]
	if next.ID == pooled.ID {
		t.Fatal("the used container is back in the pool")
	}
	if _, ok := f.eng.Spec(pooled.ID); ok && slices.ContainsFunc(f.jobContainers(), func(c engine.Container) bool { return c.ID == pooled.ID }) {
		deadline := time.Now().Add(5 * time.Second)
		for slices.ContainsFunc(f.jobContainers(), func(c engine.Container) bool { return c.ID == pooled.ID }) {
			if time.Now().After(deadline) {
				t.Fatal("the used container was not removed")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if vols := f.eng.VolumeNames(); len(vols) != 1 {
		t.Errorf("volumes %v: the binary's volume is made once", vols)
	}
}

func TestWarmRunsKeepRunOnceSemantics(t *testing.T) {
	tests := []struct {
		name    string
		prog    fake.JobProgram
		timeout time.Duration
		cancel  time.Duration
		want    runtime.RunResult
	}{
		{name: "exit code", prog: program("failed\n", nil, engine.Exit{Code: 3}), want: runtime.RunResult{ExitCode: 3}},
		{name: "killed at the timeout", prog: program("", make(chan struct{}), engine.Exit{}), timeout: 50 * time.Millisecond,
			want: runtime.RunResult{ExitCode: 137, TimedOut: true}},
		{name: "killed when the caller goes", prog: program("", make(chan struct{}), engine.Exit{}), cancel: 50 * time.Millisecond,
			want: runtime.RunResult{ExitCode: 137, Killed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, key := warmFixture(t, 1)
			f.eng.SetJobProgram(tt.prog)
			f.waitPooled(1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			var out, errOut bytes.Buffer
			res, err := f.rt.RunOnce(ctx, runtime.RunRequest{Key: key, Stdin: strings.NewReader("input"), Stdout: &out, Stderr: &errOut, Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Warm || res.ExitCode != tt.want.ExitCode || res.TimedOut != tt.want.TimedOut || res.Killed != tt.want.Killed {
				t.Errorf("result %+v, want a warm run like %+v", res, tt.want)
			}
			if out.String() != "input" {
				t.Errorf("stdout %q", out.String())
			}
			f.rt.StopJobs(context.Background())
			f.waitNoJobContainers()
		})
	}
}

func TestWarmPoolFollowsTheSpec(t *testing.T) {
	f, key := warmFixture(t, 2)
	old := f.waitPooled(2)
	// A new spec: the pooled containers of the old one go, new ones come.
	if _, err := f.st.Update(context.Background(), deployment("fn", asJob(""), func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"V": "2"}
		(*d.Annotations)[faas.AnnotationJobWarm] = "1"
	}), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	if !f.work(key, 10) {
		t.Fatal("no convergence")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := f.jobContainers()
		if len(cs) == 1 && !slices.ContainsFunc(old, func(o engine.Container) bool { return o.ID == cs[0].ID }) {
			spec, _ := f.eng.Spec(cs[0].ID)
			if !slices.Contains(spec.Env, "V=2") {
				t.Errorf("pooled container's env %q, want the new spec's", spec.Env)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job containers %v: want one of the new spec (annotation warm 1)", cs)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Removed: nothing left.
	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	f.work(key, 10)
	f.waitNoJobContainers()
}

func TestWarmPoolOffByAnnotation(t *testing.T) {
	f, key := warmFixture(t, 1, func(d *types.FunctionDeployment) { (*d.Annotations)[faas.AnnotationJobWarm] = "0" })
	res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, Stdin: strings.NewReader("x")})
	if err != nil || res.Warm {
		t.Fatalf("RunOnce: %+v, %v; want a run in a container made for it", res, err)
	}
	f.waitNoJobContainers()
	if vols := f.eng.VolumeNames(); len(vols) != 0 {
		t.Errorf("volumes %v with no pool", vols)
	}
}

func TestWarmContainerDyingIdleIsReplacedAfterABackoff(t *testing.T) {
	f, key := warmFixture(t, 1)
	pooled := f.waitPooled(1)[0]
	if err := f.eng.KillContainer(context.Background(), pooled.ID); err != nil {
		t.Fatal(err)
	}
	// The pool pauses (backoff); a call meanwhile runs the classic way.
	deadline := time.Now().Add(5 * time.Second)
	for slices.ContainsFunc(f.jobContainers(), func(c engine.Container) bool { return c.ID == pooled.ID }) {
		if time.Now().After(deadline) {
			t.Fatal("the dead pooled container was not removed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	var out bytes.Buffer
	res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, Stdin: strings.NewReader("x"), Stdout: &out})
	if err != nil || res.Warm || out.String() != "x" {
		t.Fatalf("RunOnce during the backoff: %+v, %v, %q; want a classic run", res, err, out.String())
	}
	// After the backoff (1 s) the pool is refilled.
	f.waitPooledWithin(1, 5*time.Second)
}

func TestCallsWaitForAFillUnderWay(t *testing.T) {
	f, key := warmFixture(t, 1)
	f.waitPooled(1)
	// Slow starts from now on: the second call finds the pool filling.
	f.eng.SetFail(func(op, arg string) error {
		if op == "start" {
			time.Sleep(100 * time.Millisecond) // under the fake's lock: starts one at a time
		}
		return nil
	})
	for i := range 3 {
		res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, Stdin: strings.NewReader("x")})
		if err != nil || !res.Warm {
			t.Fatalf("call %d: %+v, %v; want each served by a pre-started container", i, res, err)
		}
	}
	f.eng.SetFail(nil)
}

func TestWarmFillFailuresFallBackAndRetry(t *testing.T) {
	f := newFixture(t)
	f.eng.SetFail(func(op, arg string) error {
		if op == "create" && strings.Contains(arg, "-job-") {
			return errors.New("injected: no room")
		}
		return nil
	})
	bin := filepath.Join(t.TempDir(), "dockerfaasd")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(f.prober)
	cfg.JobWarm, cfg.JobInitBinary = 1, bin
	f.wire(cfg, f.eng, nil)
	key := f.deploy(deployment("fn", asJob("")), 1)
	if !f.work(key, 10) {
		t.Fatal("no convergence")
	}
	// Every create of a job container fails: the call fails as a classic
	// run would, and nothing is left.
	if _, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, Stdin: strings.NewReader("x")}); err == nil {
		t.Fatal("RunOnce succeeded although every create fails")
	}
	f.waitNoJobContainers()
	// Docker recovers: after the backoff (1 s) the pool is filled again.
	f.eng.SetFail(nil)
	f.waitPooledWithin(1, 5*time.Second)
	res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, Stdin: strings.NewReader("x")})
	if err != nil || !res.Warm {
		t.Fatalf("RunOnce after recovery: %+v, %v; want a warm run", res, err)
	}
}
