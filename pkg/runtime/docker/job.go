package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// Job mode (faas.ModeJob): one fresh container per call. A Sync of a job
// function runs no replicas (those of an earlier spec are drained and
// removed as for a scale to zero), ensures the image and the function's
// network as for replicas, remembers the resolved Desired and publishes
// one pseudo endpoint (faas.JobEndpoints), so the proxy hands the
// function's calls to the job executor, which calls RunOnce.
//
// A run's container is built like a replica (containerSpec: network,
// environment, secrets, limits, read-only root filesystem with /tmp,
// process limit, labels) plus the run's Http_* environment, the function's
// fprocess as its command, an open stdin, and no log driver (stdout is the
// answer; stderr lines are kept by the runtime, see joblogs.go). It carries
// the job labels (engine.LabelRole, LabelJob, LabelRun, LabelCallID)
// instead of the replica ones, so nothing built for replicas sees it.
//
// Every run is registered (by a run ID unique to this process) before its
// container is created, and forgotten once that container is removed,
// which happens off the caller's path, with retries. A job container of
// this instance whose run this process does not know was left by a daemon
// that died: List removes it (its caller is gone; pkg/executions marks
// its record interrupted).

// Bounds of a job container's removal.
const (
	jobRemoveAttempts = 6
	jobRemoveTimeout  = 30 * time.Second
	jobRemoveBackoff  = 200 * time.Millisecond
	// jobRemovers bounds the removals sent to Docker at once.
	jobRemovers = 8
	// jobOutputGrace bounds how long the output may go on after the
	// process exited (it ends with the process; this is a safety net).
	jobOutputGrace = 5 * time.Second
	// jobKillTimeout bounds the kill of a run that timed out or whose
	// caller left.
	jobKillTimeout = 10 * time.Second
	// maxCallIDLabel bounds the call ID put in a label.
	maxCallIDLabel = 128
)

// jobState is what the runtime keeps for job mode.
type jobState struct {
	// eng is nil when the engine cannot attach to containers: no job mode.
	eng  engine.JobEngine
	logs *jobLogs

	mu    sync.Mutex
	specs map[string]runtime.Desired // job functions, as their last Sync resolved them
	runs  map[string]*jobRun         // by run ID: running or being removed
	// byContainer holds the runs by container ID, for die events.
	byContainer map[string]*jobRun
	stopping    bool
	// pools are the job functions' containers started ahead of calls
	// (jobwarm.go); init provisions what they run first (jobinit.go).
	pools map[string]*jobPool
	init  jobInitVolume

	removeSem chan struct{}
}

// jobRun is one run, from before its container is created until that
// container is removed.
type jobRun struct {
	id        string
	key       string
	container string             // set once created (under jobState.mu)
	cancel    context.CancelFunc // kills the run
	done      chan struct{}      // closed once its container is removed (or given up)
	// died gets the exit code from Docker's die event (see jobDied).
	died chan int
	// oom is set when Docker's oom event or the kernel's log says its
	// container's process was killed for memory (see jobOOM).
	oom atomic.Bool
	// warm is set (under jobState.mu) on a run started ahead of its call.
	warm *warmJob
	// iso is set (under jobState.mu) on a pooled container of a function
	// with per-request isolation (isolated.go).
	iso *isoBox
	// finished: finishRun ran (under jobState.mu); it acts once.
	finished bool
}

func newJobState(eng engine.Engine) *jobState {
	j := &jobState{
		logs:        newJobLogs(),
		specs:       map[string]runtime.Desired{},
		runs:        map[string]*jobRun{},
		byContainer: map[string]*jobRun{},
		pools:       map[string]*jobPool{},
		removeSem:   make(chan struct{}, jobRemovers),
	}
	j.eng, _ = eng.(engine.JobEngine)
	return j
}

var _ runtime.RunOnce = (*Runtime)(nil)

// isJob reports whether d asks for job mode.
func isJob(spec types.FunctionDeployment) bool {
	return spec.Annotations != nil && faas.IsJob(*spec.Annotations)
}

// rememberJob keeps d as the job function its runs are made from and
// returns its pseudo endpoint.
func (r *Runtime) rememberJob(d runtime.Desired) []faas.Endpoint {
	r.jobs.mu.Lock()
	r.jobs.specs[d.Key] = d
	r.jobs.mu.Unlock()
	r.syncPool(d)
	return faas.JobEndpoints(d.Key)
}

// forgetJob stops running new jobs of key (its spec is no job any more);
// runs under way finish, its pooled containers are removed.
func (r *Runtime) forgetJob(key string) {
	r.jobs.mu.Lock()
	delete(r.jobs.specs, key)
	r.jobs.mu.Unlock()
	r.dropPool(key)
}

// Job implements runtime.RunOnce.
func (r *Runtime) Job(key string) (runtime.JobInfo, bool) {
	r.jobs.mu.Lock()
	d, ok := r.jobs.specs[key]
	r.jobs.mu.Unlock()
	if !ok || r.jobs.eng == nil {
		return runtime.JobInfo{}, false
	}
	info := runtime.JobInfo{Env: d.Spec.EnvVars}
	if d.Spec.Annotations != nil {
		info.Concurrency, _ = faas.JobConcurrencyOf(*d.Spec.Annotations) // validated by the API
		info.Stream, _ = faas.JobStreamOf(*d.Spec.Annotations)
	}
	return info, true
}

// newRunID is a random ID for one run.
func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// begin registers a run of key; its context ends with ctx or when the
// run is cancelled (the function is removed, the daemon stops).
func (j *jobState) begin(ctx context.Context, key string) (*jobRun, context.Context, error) {
	ctx, cancel := context.WithCancel(ctx)
	run := &jobRun{id: newRunID(), key: key, cancel: cancel, done: make(chan struct{}), died: make(chan int, 1)}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopping {
		cancel()
		return nil, nil, fmt.Errorf("the daemon is stopping: %w", context.Canceled)
	}
	j.runs[run.id] = run
	return run, ctx, nil
}

func (j *jobState) setContainer(run *jobRun, id string) {
	j.mu.Lock()
	run.container = id
	j.byContainer[id] = run
	j.mu.Unlock()
}

// jobDied hands the exit code of a die event to the run of container id.
// Docker sends it before it tears the container's network and mounts
// down, which its wait for the exit waits for too: a run whose die event
// arrives answers that much sooner (on the bench machine, tens of ms of a
// run's few hundred). Events are lossy; the wait stays the fallback.
func (r *Runtime) jobDied(id, exitCode string) {
	code, err := strconv.Atoi(exitCode)
	if err != nil {
		return
	}
	r.jobs.mu.Lock()
	run := r.jobs.byContainer[id]
	var idle *warmJob
	var box *isoBox
	if run != nil && run.warm != nil && !run.warm.taken {
		idle = run.warm
	}
	if run != nil {
		box = run.iso
	}
	r.jobs.mu.Unlock()
	if run == nil {
		return
	}
	if box != nil {
		select {
		case run.died <- code: // for a container still getting ready
		default:
		}
		r.boxDied(box)
		return
	}
	if idle != nil {
		r.warmDied(idle, code)
		return
	}
	select {
	case run.died <- code:
	default:
	}
}

// jobOOM takes note that the kernel killed a process of job container id
// for memory: Docker's "oom" event for it (watch.go), or the kernel's own
// log line (kmsg.go).
func (r *Runtime) jobOOM(id string) {
	r.jobs.mu.Lock()
	run := r.jobs.byContainer[id]
	r.jobs.mu.Unlock()
	if run != nil {
		run.oom.Store(true)
	}
}

// RunOnce implements runtime.RunOnce: the call goes to a container of the
// function's pool (jobwarm.go) when there is one, else to one made for it
// (runCold). Either way its input is copied in and its output out, the
// process is killed at req.Timeout or when ctx ends, whether it was
// OOM-killed is read (only for exit 137), and the container is removed
// after RunOnce returns.
func (r *Runtime) RunOnce(ctx context.Context, req runtime.RunRequest) (res runtime.RunResult, err error) {
	if r.jobs.eng == nil {
		return res, runtime.NotSupported("run-once (the Docker client cannot attach)")
	}
	r.jobs.mu.Lock()
	d, ok := r.jobs.specs[req.Key]
	r.jobs.mu.Unlock()
	if !ok {
		return res, fmt.Errorf("function %s: %w", req.Key, runtime.ErrNotJob)
	}
	if w := r.takeWarm(ctx, req.Key); w != nil {
		took, err := r.handOff(ctx, w, req)
		if err != nil {
			return res, err
		}
		if took {
			return r.runWarm(ctx, d, w, req)
		}
	}
	return r.runCold(ctx, d, req)
}

// runWarm runs the call w took.
func (r *Runtime) runWarm(ctx context.Context, d runtime.Desired, w *warmJob, req runtime.RunRequest) (runtime.RunResult, error) {
	defer r.finishRun(w.run)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.runCtx, cancel)()
	res := runtime.RunResult{Container: w.short, Created: w.created, Started: time.Now(), Warm: true}
	x := jobExec{run: w.run, runCtx: runCtx, id: w.id, att: w.att, outDone: w.outDone, lines: w.lines}
	return r.drive(ctx, d, x, req, res)
}

// jobExec is a started run, as drive needs it.
type jobExec struct {
	run     *jobRun
	runCtx  context.Context // ends when the run is to be killed
	id      string
	att     engine.Attachment
	outDone <-chan error
	lines   *lineWriter
}

// runCold runs a call in a container made for it: create (with the
// secrets copied in), attach, start.
func (r *Runtime) runCold(ctx context.Context, d runtime.Desired, req runtime.RunRequest) (res runtime.RunResult, err error) {
	run, runCtx, err := r.jobs.begin(ctx, req.Key)
	if err != nil {
		return res, err
	}
	defer r.finishRun(run)

	spec, err := r.jobContainerSpec(d, run.id, req)
	if err != nil {
		return res, fmt.Errorf("function %s: %w: %w", d.Key, runtime.ErrInvalidSpec, err)
	}
	id, err := r.eng.CreateContainer(runCtx, spec)
	if err != nil {
		r.metrics.dockerError("create")
		return res, fmt.Errorf("create the job's container: %w", err)
	}
	r.jobs.setContainer(run, id)
	res.Container, res.Created = engine.ShortID(id), time.Now()
	if err := r.copySecrets(runCtx, id, d.Secrets); err != nil {
		return res, fmt.Errorf("copy secrets into the job's container: %w", err)
	}
	att, err := r.jobs.eng.AttachContainer(runCtx, id)
	if err != nil {
		r.metrics.dockerError("attach")
		return res, fmt.Errorf("attach to the job's container: %w", err)
	}
	defer att.Close()

	lines := &lineWriter{logs: r.jobs.logs, key: d.Key, name: d.Name, ns: d.Namespace, instance: res.Container}
	stderr := teeWriter{w: req.Stderr, side: lines}
	outDone := make(chan error, 1)
	go func() { outDone <- att.Demux(req.Stdout, stderr) }()
	if err := r.eng.StartContainer(runCtx, id); err != nil {
		r.metrics.dockerError("start")
		return res, fmt.Errorf("start the job's container: %w", err)
	}
	res.Started = time.Now()
	x := jobExec{run: run, runCtx: runCtx, id: id, att: att, outDone: outDone, lines: lines}
	return r.drive(ctx, d, x, req, res)
}

// drive feeds a started run its input, waits for its exit (killing it at
// req.Timeout or when x.runCtx ends) and gathers its output and result.
func (r *Runtime) drive(ctx context.Context, d runtime.Desired, x jobExec, req runtime.RunRequest, res runtime.RunResult) (runtime.RunResult, error) {
	je, id, att, outDone, lines, run := r.jobs.eng, x.id, x.att, x.outDone, x.lines, x.run
	log := r.cfg.Log.WithFields(logrus.Fields{"function": d.Name, "namespace": d.Namespace, "call_id": req.CallID})
	// Input first: the process may wait for its stdin's end, and the wait
	// below costs a round trip to Docker before it returns.
	stdinDone := make(chan error, 1)
	go func() { stdinDone <- feedStdin(att, req.Stdin) }()
	waitCtx, stopWait := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWait()
	exitC := je.WaitContainer(waitCtx, id)

	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	kill := func(why string) {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobKillTimeout)
		defer cancel()
		if err := je.KillContainer(kctx, id); err != nil && !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
			r.metrics.dockerError("kill")
			log.WithError(err).Warn("job: kill failed")
			return
		}
		log.WithField("container", res.Container).Info("job killed: " + why)
	}
	var (
		exit              engine.Exit
		runErr            error
		outEnded, inEnded bool
		cancelled         = x.runCtx.Done()
	)
wait:
	for {
		select {
		case exit = <-exitC:
			break wait
		case code := <-run.died:
			exit = engine.Exit{Code: code}
			break wait
		case <-timeout:
			res.TimedOut, timeout = true, nil
			kill("exec timeout")
		case <-cancelled:
			res.Killed, cancelled = true, nil
			kill("its caller went away")
		case err := <-stdinDone:
			inEnded = true
			stdinDone = nil
			if err != nil {
				runErr = fmt.Errorf("copy the request body to stdin: %w", err)
				kill("the request body could not be read")
			}
		case err := <-outDone:
			outEnded = true
			outDone = nil
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("copy the output: %w", err))
				kill("its output could not be delivered")
			}
		}
	}
	res.Exited = time.Now()
	if !outEnded {
		// The output ends with the process; a stream Docker keeps open
		// longer is cut.
		select {
		case err := <-outDone:
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("copy the output: %w", err))
			}
		case <-time.After(jobOutputGrace):
			_ = att.Close()
			<-outDone
		}
	}
	lines.flush()
	_ = att.Close() // a stdin copy blocked writing gives up
	if !inEnded {
		// Waits only for a body the client is still sending: the request
		// body must not be read after the call returned.
		<-stdinDone
	}
	if exit.Err != nil {
		return res, errors.Join(runErr, fmt.Errorf("wait for the job's container: %w", exit.Err))
	}
	res.ExitCode = exit.Code
	log.WithFields(logrus.Fields{
		"container": res.Container, "exit_code": exit.Code,
		"warm": res.Warm, "start": res.Started.Sub(res.Created).Round(time.Microsecond),
		"run": res.Exited.Sub(res.Started).Round(time.Microsecond),
	}).Debug("job ran")
	if exit.Code == 137 { // SIGKILL: by us, or by the kernel for memory
		res.OOMKilled = oomKilled(ctx, je, id, run, !res.TimedOut && !res.Killed, log)
	}
	return res, runErr
}

// oomKillLag bounds how long a SIGKILL that was not ours is taken for a
// kernel OOM kill the engine has not reported yet. Docker 20.10 sets
// State.OOMKilled only when containerd's OOM event for the task comes
// before its exit event; the two travel apart, and under container churn
// the OOM event can come hundreds of milliseconds after the exit, or never
// (the shim may exit first). Docker's "oom" event and the kernel's log
// (jobOOM) may still tell of it meanwhile.
const oomKillLag = time.Second

// oomKilled reads whether the kernel killed the run's process for memory:
// Docker's State.OOMKilled, or jobOOM's word for its container. Unless the
// daemon killed it itself (notOurs false), a first "no" is read again for
// up to oomKillLag.
func oomKilled(ctx context.Context, je engine.JobEngine, id string, run *jobRun, notOurs bool, log logrus.FieldLogger) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobKillTimeout)
	defer cancel()
	deadline := time.Now().Add(oomKillLag)
	for {
		if run.oom.Load() {
			return true
		}
		st, err := je.ContainerExit(ctx, id)
		if err != nil {
			log.WithError(err).Warn("job: cannot read whether it was OOM-killed")
			return run.oom.Load()
		}
		if st.OOMKilled || !notOurs || time.Now().After(deadline) {
			return st.OOMKilled || run.oom.Load()
		}
		select {
		case <-ctx.Done():
			return run.oom.Load()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// feedStdin copies in to the container's stdin and closes it. A failed
// write is no error: the process may exit without reading its input. A
// failed read of in is.
func feedStdin(att engine.Attachment, in io.Reader) error {
	if in != nil {
		tr := &trackedReader{r: in}
		_, _ = io.Copy(att, tr)
		if tr.err != nil {
			return tr.err
		}
	}
	_ = att.CloseStdin()
	return nil
}

type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// teeWriter writes to w and hands a copy to side, whose result is ignored.
type teeWriter struct {
	w    io.Writer
	side io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	_, _ = t.side.Write(p)
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

// relabelAsJob gives a replica's container spec the labels of run runID of
// key's job instead of the replica ones, so nothing built for replicas
// sees it (job runs and pooled containers of per-request isolation).
func relabelAsJob(cs *engine.ContainerSpec, key, runID string) {
	delete(cs.Labels, engine.LabelFunction)
	delete(cs.Labels, engine.LabelNamespace)
	delete(cs.Labels, engine.LabelSlot)
	cs.Labels[engine.LabelRole] = engine.RoleJob
	cs.Labels[engine.LabelJob] = key
	cs.Labels[engine.LabelRun] = runID
}

// jobContainerSpec is the container of one run of d: a replica's (see
// containerSpec) with the job labels instead of the replica ones, the
// run's environment added, the function's fprocess as its command, stdin
// open and Docker's log driver off.
func (r *Runtime) jobContainerSpec(d runtime.Desired, runID string, req runtime.RunRequest) (engine.ContainerSpec, error) {
	cs, err := r.containerSpec(d, 0)
	if err != nil {
		return cs, err
	}
	relabelAsJob(&cs, d.Key, runID)
	callID := req.CallID
	if len(callID) > maxCallIDLabel {
		callID = callID[:maxCallIDLabel]
	}
	cs.Labels[engine.LabelCallID] = callID
	cs.Name = fmt.Sprintf("%s-%s.%s-job-%s", r.cfg.Instance, d.Name, d.Namespace, runID)
	cs.Env = append(cs.Env, req.Env...)
	cs.Entrypoint = JobCommand(d.Spec)
	cs.Stdin, cs.NoLogs = true, true
	return cs, nil
}

// JobCommand is a job function's command from its fprocess (envVars
// fprocess, else envProcess), split at spaces as the classic OpenFaaS
// watchdog splits it: no shell, so FROM scratch images work, and no
// quoting. nil (the image's entrypoint and cmd) when there is none.
func JobCommand(spec types.FunctionDeployment) []string {
	fp := spec.EnvProcess
	if v, ok := spec.EnvVars["fprocess"]; ok {
		fp = v
	}
	var out []string
	for _, part := range strings.Split(fp, " ") {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

// finishRun has run's container removed, off the caller's path, and
// forgets the run once it is gone.
func (r *Runtime) finishRun(run *jobRun) {
	run.cancel()
	r.jobs.mu.Lock()
	id, again := run.container, run.finished
	run.finished = true
	r.jobs.mu.Unlock()
	if again { // a pooled container retired as its fill failed, say
		return
	}
	if id == "" {
		r.jobs.forget(run)
		return
	}
	go func() {
		defer r.jobs.forget(run)
		r.jobs.removeSem <- struct{}{}
		defer func() { <-r.jobs.removeSem }()
		r.awaitTeardown(id)
		r.removeJobContainer(id, run.key)
	}()
}

// jobTeardownWait bounds the wait for Docker to finish a job container's
// exit before it is removed.
const jobTeardownWait = 10 * time.Second

// awaitTeardown waits (bounded) until Docker has finished the exit of
// container id: a call is answered at the die event, before Docker tore
// the container's network down, which a removal should not race. (Engine
// 20.10 can miscount the network's endpoints all the same when containers
// join and leave it side by side: see Remove.)
func (r *Runtime) awaitTeardown(id string) {
	if r.jobs.eng == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobTeardownWait)
	defer cancel()
	<-r.jobs.eng.WaitContainer(ctx, id)
}

// removeJobContainer force-removes a job's container, retrying with
// backoff. Given up, the run is forgotten all the same, so the next List
// finds the container an orphan and tries again.
func (r *Runtime) removeJobContainer(id, key string) {
	wait := jobRemoveBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), jobRemoveTimeout)
		err := r.eng.RemoveContainer(ctx, id)
		cancel()
		if err == nil || errors.Is(err, engine.ErrNotFound) {
			return
		}
		r.metrics.dockerError("remove")
		log := r.cfg.Log.WithError(err).WithFields(logrus.Fields{"job": key, "container": engine.ShortID(id), "attempt": attempt})
		if attempt == jobRemoveAttempts {
			log.Warn("job: giving up removing its container for now; the next resync tries again")
			return
		}
		log.Debug("job: removing its container failed; trying again")
		time.Sleep(wait)
		wait *= 2
	}
}

func (j *jobState) forget(run *jobRun) {
	j.mu.Lock()
	delete(j.runs, run.id)
	if run.container != "" && j.byContainer[run.container] == run {
		delete(j.byContainer, run.container)
	}
	j.mu.Unlock()
	close(run.done)
}

// sweepJobs removes the job containers in cs whose runs this process does
// not know: left by a daemon that died or was stopped while they ran.
// Their callers are gone, so they are not waited for.
func (r *Runtime) sweepJobs(cs []engine.Container) {
	for _, ct := range cs {
		if ct.Labels[engine.LabelRole] != engine.RoleJob {
			continue
		}
		runID := ct.Labels[engine.LabelRun]
		if runID == "" {
			runID = "orphan-" + ct.ID
		}
		r.jobs.mu.Lock()
		_, known := r.jobs.runs[runID]
		run := &jobRun{id: runID, key: ct.Labels[engine.LabelJob], container: ct.ID, cancel: func() {}, done: make(chan struct{}), died: make(chan int, 1)}
		if !known {
			r.jobs.runs[runID] = run
		}
		r.jobs.mu.Unlock()
		if known {
			continue
		}
		r.cfg.Log.WithFields(logrus.Fields{"job": run.key, "container": ct.Name, "state": ct.State, "call_id": ct.Labels[engine.LabelCallID]}).
			Info("removing the container of a job this daemon did not start (left by a daemon that stopped while it ran)")
		if ct.Labels[LabelPool] != "" && r.jobs.eng != nil {
			// A pooled container waits for a call that will not come:
			// kill it rather than wait for it to exit.
			ctx, cancel := context.WithTimeout(context.Background(), jobKillTimeout)
			_ = r.jobs.eng.KillContainer(ctx, ct.ID)
			cancel()
		}
		r.finishRun(run)
	}
}

// removeJobs is Remove's part for a job function: no new runs, runs under
// way killed, every job container of key removed (also those a dead
// daemon left), and its log lines forgotten.
func (r *Runtime) removeJobs(ctx context.Context, key string) error {
	r.forgetJob(key)
	r.jobs.mu.Lock()
	var runs []*jobRun
	for _, run := range r.jobs.runs {
		if run.key == key {
			runs = append(runs, run)
		}
	}
	r.jobs.mu.Unlock()
	if err := killAndAwait(ctx, runs); err != nil {
		return err
	}
	list, err := r.eng.ListContainers(ctx, r.jobLabels(key))
	if err != nil {
		r.metrics.dockerError("list")
		return err
	}
	var errs []error
	for _, ct := range list {
		if err := r.remove(ctx, ct.ID); err != nil {
			errs = append(errs, err)
		}
	}
	r.jobs.logs.drop(key)
	return errors.Join(errs...)
}

// killAndAwait kills runs and waits until their containers are removed,
// or ctx ends (its error).
func killAndAwait(ctx context.Context, runs []*jobRun) error {
	for _, run := range runs {
		run.cancel()
	}
	for _, run := range runs {
		select {
		case <-run.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// jobLabels select the job containers of key (all of them with key "").
func (r *Runtime) jobLabels(key string) map[string]string {
	l := function.OwnerLabels(r.cfg.Instance, "", "")
	l[engine.LabelRole] = engine.RoleJob
	if key != "" {
		l[engine.LabelJob] = key
	}
	return l
}

// StopJobs kills the runs under way and waits (bounded by ctx) until the
// containers of every run this process started are removed. Call it when
// the HTTP server has shut down: a daemon stopping gracefully leaves no
// job container behind.
func (r *Runtime) StopJobs(ctx context.Context) {
	r.stopIsolated()
	r.jobs.mu.Lock()
	r.jobs.stopping = true
	keys := slices.Collect(maps.Keys(r.jobs.pools))
	r.jobs.mu.Unlock()
	for _, k := range keys {
		r.dropPool(k)
	}
	r.jobs.mu.Lock()
	runs := make([]*jobRun, 0, len(r.jobs.runs))
	for _, run := range r.jobs.runs {
		runs = append(runs, run)
	}
	r.jobs.mu.Unlock()
	if killAndAwait(ctx, runs) != nil {
		r.cfg.Log.Warn("job containers still being removed at shutdown; the next start removes what is left")
	}
}
