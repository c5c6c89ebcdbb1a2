package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

func asJob(concurrency string) func(*types.FunctionDeployment) {
	return func(d *types.FunctionDeployment) {
		(*d.Annotations)[faas.AnnotationMode] = faas.ModeJob
		if concurrency != "" {
			(*d.Annotations)[faas.AnnotationJobConcurrency] = concurrency
		}
	}
}

// jobContainers lists the job containers of the fixture's instance.
func (f *fixture) jobContainers() []engine.Container {
	f.t.Helper()
	list, err := f.eng.ListContainers(context.Background(), f.rt.jobLabels(""))
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

// waitNoJobContainers waits until every job container is removed.
func (f *fixture) waitNoJobContainers() {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.jobContainers()) > 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("job containers left: %v", f.jobContainers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJobSyncPublishesOnePseudoEndpointAndNoReplica(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn", asJob("3")), 2)
	if !f.work(key, 10) {
		t.Fatal("job function did not converge")
	}
	eps, known := f.cache.Lookup(key)
	if !known || !faas.IsJobRoute(eps) {
		t.Fatalf("endpoints %v, want the job pseudo endpoint", eps)
	}
	if n := f.running(""); len(n) != 0 {
		t.Errorf("containers running for a job function: %v", n)
	}
	if nets := f.eng.NetworkNames(); !slices.Contains(nets, "t-fn.openfaas-fn") {
		t.Errorf("networks %v, want the function's network for its jobs", nets)
	}
	info, ok := f.rt.Job(key)
	if !ok || info.Concurrency != 3 {
		t.Errorf("Job(%s) = %+v, %v; want concurrency 3", key, info, ok)
	}
	st, _ := f.board.Get(key)
	if st.ReadyReplicas != 1 || st.Reason != "" {
		t.Errorf("status %+v, want ready (one pseudo endpoint) without a reason", st)
	}
	// Unchanged on a resync: no Sync needed.
	listing, err := f.rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !listing[key].Unchanged {
		t.Errorf("a converged job function is not unchanged in List: %+v", listing[key])
	}
}

func TestJobModeReplacesReplicasAndBack(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 2)
	if !f.work(key, 20) {
		t.Fatal("replicas did not converge")
	}
	if n := len(f.running("t-fn")); n != 2 {
		t.Fatalf("%d replicas running, want 2", n)
	}
	if _, err := f.st.Update(context.Background(), deployment("fn", asJob("")), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	if !f.work(key, 50) {
		t.Fatal("switch to job mode did not converge")
	}
	if n := f.running("t-fn"); len(n) != 0 {
		t.Errorf("replicas of the replicas-mode spec left running: %v", n)
	}
	if eps, _ := f.cache.Lookup(key); !faas.IsJobRoute(eps) {
		t.Errorf("endpoints %v, want the job pseudo endpoint", eps)
	}
	if _, err := f.st.Update(context.Background(), deployment("fn"), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	if !f.work(key, 50) {
		t.Fatal("switch back to replicas did not converge")
	}
	if _, ok := f.rt.Job(key); ok {
		t.Error("still a job function after the switch back")
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 2 || faas.IsJobRoute(eps) {
		t.Errorf("endpoints %v, want the two replicas", eps)
	}
}

// jobFixture is a fixture with one job function deployed and synced.
func jobFixture(t *testing.T, mutate ...func(*types.FunctionDeployment)) (*fixture, string) {
	f := newFixture(t)
	key := f.deploy(deployment("fn", append([]func(*types.FunctionDeployment){asJob("")}, mutate...)...), 1)
	if !f.work(key, 10) {
		t.Fatal("job function did not converge")
	}
	return f, key
}

// program returns a fake job process that copies stdin to stdout, writes
// stderr, then blocks on hold (when set) and ends as exit says.
func program(stderr string, hold <-chan struct{}, exit engine.Exit) fake.JobProgram {
	return func(ctx context.Context, _ engine.ContainerSpec, stdin io.Reader, stdout, errw io.Writer) engine.Exit {
		_, _ = io.Copy(stdout, stdin)
		_, _ = io.WriteString(errw, stderr)
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
			}
		}
		return exit
	}
}

func TestRunOnce(t *testing.T) {
	tests := []struct {
		name    string
		prog    fake.JobProgram
		timeout time.Duration
		cancel  time.Duration // ctx ends after this long (0: never)
		want    runtime.RunResult
		stdout  string
		err     bool
	}{
		{name: "stdin to stdout, exit 0", prog: program("", nil, engine.Exit{}), stdout: "input"},
		{name: "exit code", prog: program("failed\n", nil, engine.Exit{Code: 3}), stdout: "input", want: runtime.RunResult{ExitCode: 3}},
		{name: "OOM-killed", prog: program("", nil, engine.Exit{Code: 137, OOMKilled: true}), stdout: "input",
			want: runtime.RunResult{ExitCode: 137, OOMKilled: true}},
		{name: "killed at the timeout", prog: program("", make(chan struct{}), engine.Exit{}), timeout: 50 * time.Millisecond,
			stdout: "input", want: runtime.RunResult{ExitCode: 137, TimedOut: true}},
		{name: "killed when the caller goes", prog: program("", make(chan struct{}), engine.Exit{}), cancel: 50 * time.Millisecond,
			stdout: "input", want: runtime.RunResult{ExitCode: 137, Killed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, key := jobFixture(t)
			f.eng.SetJobProgram(tt.prog)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			var out, errOut bytes.Buffer
			res, err := f.rt.RunOnce(ctx, runtime.RunRequest{Key: key, CallID: "c1", Stdin: strings.NewReader("input"), Stdout: &out, Stderr: &errOut, Timeout: tt.timeout})
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			if res.ExitCode != tt.want.ExitCode || res.OOMKilled != tt.want.OOMKilled || res.TimedOut != tt.want.TimedOut || res.Killed != tt.want.Killed {
				t.Errorf("result %+v, want %+v", res, tt.want)
			}
			if out.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", out.String(), tt.stdout)
			}
			if res.Container == "" || res.Created.IsZero() || res.Started.Before(res.Created) || res.Exited.Before(res.Started) {
				t.Errorf("timings %+v", res)
			}
			f.waitNoJobContainers()
		})
	}
}

// Docker 20.10 leaves State.OOMKilled false when containerd's OOM event
// for the task comes after its exit event, which happens under container
// churn; Docker's "oom" event, even one that comes after the exit, must
// still make the run read as OOM-killed.
func TestRunOnceOOMKilledFromALateOOMEvent(t *testing.T) {
	tests := []struct {
		name     string
		oomEvent bool
		want     bool
	}{
		{name: "oom event after the exit", oomEvent: true, want: true},
		{name: "SIGKILL with no oom event", oomEvent: false, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, key := jobFixture(t)
			exited := make(chan struct{})
			f.eng.SetJobProgram(func(ctx context.Context, spec engine.ContainerSpec, stdin io.Reader, stdout, errw io.Writer) engine.Exit {
				defer close(exited)
				_, _ = io.Copy(stdout, stdin)
				return engine.Exit{Code: 137} // killed, and Docker did not say it was for memory
			})
			go func() {
				<-exited
				time.Sleep(100 * time.Millisecond) // the exit is handled first
				if tt.oomEvent {
					for _, c := range f.jobContainers() {
						f.rt.jobOOM(c.ID)
					}
				}
			}()
			res, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, CallID: "c1", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
			if err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			if res.ExitCode != 137 || res.OOMKilled != tt.want {
				t.Errorf("exit %d, OOM-killed %v; want 137, %v", res.ExitCode, res.OOMKilled, tt.want)
			}
			f.waitNoJobContainers()
		})
	}
}

func TestRunOnceContainerIsAReplicaWithJobLabels(t *testing.T) {
	f := newFixture(t)
	f.secret("openfaas-fn", "api-key", "s3cr3t")
	key := f.deploy(deployment("fn", asJob(""), withSecrets("api-key"), func(d *types.FunctionDeployment) {
		d.EnvProcess = "/fn  --flag value"
		d.EnvVars = map[string]string{"MODE": "x"}
		d.ReadOnlyRootFilesystem = true
		d.Limits = &types.FunctionResources{Memory: "20Mi"}
		(*d.Labels)["team"] = "a"
	}), 1)
	if !f.work(key, 10) {
		t.Fatal("not converged")
	}
	hold := make(chan struct{})
	var spec engine.ContainerSpec
	var mu sync.Mutex
	f.eng.SetJobProgram(func(ctx context.Context, s engine.ContainerSpec, stdin io.Reader, stdout, stderr io.Writer) engine.Exit {
		mu.Lock()
		spec = s
		mu.Unlock()
		<-hold
		return engine.Exit{}
	})
	done := make(chan error)
	go func() {
		_, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key, CallID: "call-42", Env: []string{"Http_Method=POST"}})
		done <- err
	}()
	var jobs []engine.Container
	deadline := time.Now().Add(5 * time.Second)
	for len(jobs) == 0 || jobs[0].State != engine.StateRunning {
		if time.Now().After(deadline) {
			t.Fatal("no running job container")
		}
		time.Sleep(5 * time.Millisecond)
		jobs = f.jobContainers()
	}
	files := f.eng.Files(jobs[0].ID)
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	l := spec.Labels
	if l[engine.LabelRole] != engine.RoleJob || l[engine.LabelJob] != key || l[engine.LabelCallID] != "call-42" || l[engine.LabelRun] == "" ||
		l[engine.LabelManaged] != "true" || l[engine.LabelInstance] != "t" || l["team"] != "a" || l[function.AnnotationPrefix+faas.AnnotationMode] != faas.ModeJob {
		t.Errorf("labels %v", l)
	}
	if k := function.KeyOf(l); k != "" {
		t.Errorf("a job container carries the replica key labels (%s): replica listings and events would see it", k)
	}
	if !slices.Equal(spec.Entrypoint, []string{"/fn", "--flag", "value"}) {
		t.Errorf("entrypoint %q, want fprocess split at spaces", spec.Entrypoint)
	}
	for _, kv := range []string{"MODE=x", "fprocess=/fn  --flag value", "Http_Method=POST"} {
		if !slices.Contains(spec.Env, kv) {
			t.Errorf("env %q lacks %s", spec.Env, kv)
		}
	}
	if !spec.Stdin || !spec.NoLogs || !spec.ReadOnlyRootfs || spec.Tmpfs["/tmp"] == "" || spec.Memory != 20<<20 ||
		spec.Network != "t-fn.openfaas-fn" || !slices.Equal(spec.Volumes, []string{runtime.SecretsDir}) {
		t.Errorf("spec %+v", spec)
	}
	if sf, ok := files[runtime.SecretsDir+"/api-key"]; !ok || string(sf.Content) != "s3cr3t" {
		t.Errorf("secret files %v", files)
	}
	f.waitNoJobContainers()
}

func TestRunOnceRefusesWhatIsNoJobFunction(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("fn"), 1)
	f.work(key, 10)
	_, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key})
	if !errors.Is(err, runtime.ErrNotJob) {
		t.Errorf("RunOnce of a replicas function: %v, want ErrNotJob", err)
	}
	if _, ok := f.rt.Job(key); ok {
		t.Error("Job reports a replicas function")
	}
}

func TestRunOnceRemovesTheContainerWhenDockerFails(t *testing.T) {
	for _, op := range []string{"attach", "start"} {
		t.Run(op, func(t *testing.T) {
			f, key := jobFixture(t)
			f.eng.Fail = func(o, _ string) error {
				if o == op {
					return errors.New(op + " refused")
				}
				return nil
			}
			_, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key})
			if err == nil || !strings.Contains(err.Error(), op+" refused") {
				t.Fatalf("RunOnce: %v, want the %s error", err, op)
			}
			f.waitNoJobContainers()
		})
	}
}

func TestListRemovesJobContainersOfADeadDaemon(t *testing.T) {
	f, key := jobFixture(t)
	hold := make(chan struct{})
	f.eng.SetJobProgram(program("", hold, engine.Exit{}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key})
	}()
	for len(f.jobContainers()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	orphan := engine.Container{ID: "orphan-1", Name: "t-fn.openfaas-fn-job-dead", State: engine.StateRunning, Labels: f.rt.jobLabels(key)}
	orphan.Labels[engine.LabelRun] = "run-of-a-dead-daemon"
	f.eng.AddContainer(orphan)
	if _, err := f.rt.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		list := f.jobContainers()
		if len(list) == 1 && list[0].ID != orphan.ID {
			break // the orphan is gone, the run under way kept
		}
		if time.Now().After(deadline) {
			t.Fatalf("job containers %v, want only the run under way", list)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(hold)
	<-done
	f.waitNoJobContainers()
}

// startEndlessRun starts a run of key whose process never ends by itself
// and returns once its container runs, with where its result will arrive.
func (f *fixture) startEndlessRun(key string) <-chan runtime.RunResult {
	f.eng.SetJobProgram(program("", make(chan struct{}), engine.Exit{}))
	done := make(chan runtime.RunResult)
	go func() {
		res, _ := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key})
		done <- res
	}()
	for len(f.running("t-fn")) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

func TestRemoveKillsRunningJobs(t *testing.T) {
	f, key := jobFixture(t)
	done := f.startEndlessRun(key)
	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if !f.work(key, 10) {
		t.Fatal("teardown did not finish")
	}
	res := <-done
	if !res.Killed {
		t.Errorf("run of a deleted function: %+v, want killed", res)
	}
	if len(f.jobContainers()) != 0 || len(f.eng.NetworkNames()) != 0 {
		t.Errorf("left: containers %v networks %v", f.jobContainers(), f.eng.NetworkNames())
	}
	if _, ok := f.rt.Job(key); ok {
		t.Error("removed function still a job function")
	}
}

func TestStopJobsKillsRunsAndRemovesTheirContainers(t *testing.T) {
	f, key := jobFixture(t)
	done := f.startEndlessRun(key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.rt.StopJobs(ctx)
	if res := <-done; !res.Killed {
		t.Errorf("run at stop: %+v, want killed", res)
	}
	if list := f.jobContainers(); len(list) != 0 {
		t.Errorf("job containers left after StopJobs returned: %v", list)
	}
	if _, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key}); err == nil {
		t.Error("a run started after StopJobs")
	}
}

func TestJobStderrInLogs(t *testing.T) {
	f, key := jobFixture(t)
	run := func(stderr string) {
		t.Helper()
		f.eng.SetJobProgram(program(stderr, nil, engine.Exit{}))
		if _, err := f.rt.RunOnce(context.Background(), runtime.RunRequest{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	run("one\ntwo\n")
	run("three") // no newline: flushed at the end
	var got []string
	if err := f.rt.Stream(context.Background(), logs.Request{Name: "fn"}, func(m logs.Message) error {
		if m.Name != "fn" || m.Namespace != "openfaas-fn" || m.Instance == "" {
			t.Errorf("message %+v", m)
		}
		got = append(got, m.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("history %q", got)
	}
	got = nil
	if err := f.rt.Stream(context.Background(), logs.Request{Name: "fn", Tail: 2}, func(m logs.Message) error {
		got = append(got, m.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"two", "three"}) {
		t.Errorf("tail 2: %q", got)
	}

	// Follow: the history, then lines of later runs.
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 10)
	followed := make(chan error)
	go func() {
		followed <- f.rt.Stream(ctx, logs.Request{Name: "fn", Follow: true, Tail: 1}, func(m logs.Message) error {
			lines <- m.Text
			return nil
		})
	}()
	if l := <-lines; l != "three" {
		t.Errorf("follow history %q, want three", l)
	}
	run("four\n")
	select {
	case l := <-lines:
		if l != "four" {
			t.Errorf("followed %q, want four", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a later run's line did not reach the follower")
	}
	cancel()
	if err := <-followed; err != nil {
		t.Errorf("follow ended with %v", err)
	}
}

func TestJobCommand(t *testing.T) {
	tests := []struct {
		name string
		spec types.FunctionDeployment
		want []string
	}{
		{"none: the image's", types.FunctionDeployment{}, nil},
		{"envProcess", types.FunctionDeployment{EnvProcess: "cat"}, []string{"cat"}},
		{"split at spaces, no shell", types.FunctionDeployment{EnvProcess: "sh -c 'a b'"}, []string{"sh", "-c", "'a", "b'"}},
		{"envVars fprocess wins", types.FunctionDeployment{EnvProcess: "cat", EnvVars: map[string]string{"fprocess": "/bin/fn  x"}}, []string{"/bin/fn", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := JobCommand(tt.spec); !slices.Equal(got, tt.want) {
				t.Errorf("JobCommand = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunOnceEndsOnTheDieEvent: Docker's die event carries the exit code
// before its wait returns (it tears the network down in between); a run
// whose event arrives does not wait for the wait.
func TestRunOnceEndsOnTheDieEvent(t *testing.T) {
	f, key := jobFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching := make(chan struct{})
	go func() {
		_ = f.rt.Watch(ctx, func(context.Context) error { close(watching); return nil }, func(string) {})
	}()
	<-watching
	f.eng.HoldWaits(true)
	f.eng.SetJobProgram(program("", nil, engine.Exit{Code: 4}))
	done := make(chan runtime.RunResult)
	go func() {
		res, err := f.rt.RunOnce(ctx, runtime.RunRequest{Key: key})
		if err != nil {
			t.Errorf("RunOnce: %v", err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		if res.ExitCode != 4 {
			t.Errorf("exit code %d, want 4 from the die event", res.ExitCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunOnce waited for Docker's wait although the die event came")
	}
	f.eng.HoldWaits(false)
	f.waitNoJobContainers()
}
