// Package job runs the calls of job-mode functions (annotation
// io.dockerfaas.mode: job): one fresh container per call, its command the
// function's fprocess (else the image's entrypoint and cmd), the request
// body on its stdin and the request's method, path, query and headers in
// its environment as the classic OpenFaaS watchdog names them (Http_*),
// its stdout the response body and its exit code the status.
//
// The proxy hands such calls to the Executor (proxy.JobRunner) once it
// found the function's pseudo endpoint; the Executor bounds how many run
// at once per function, asks the runtime to run one (runtime.RunOnce),
// answers, and writes the run's execution record.
//
// Status and streaming: stdout is held back up to Config.BufferBytes, so
// an answer that fits gets the exact status: 200 for exit 0, 500 with
// X-Exit-Code for another exit code, 500 with X-OOM-Killed: true when
// the kernel killed it for memory, 504 when the exec timeout killed it.
// An answer beyond that bound is sent on as it comes, with 200, and how
// the process ended follows in the HTTP trailers X-Exit-Code,
// X-OOM-Killed and X-Timed-Out. A function annotated
// io.dockerfaas.job.stream: "true", or a call with Accept:
// text/event-stream, holds nothing back: its first byte starts the answer.
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/executions"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Defaults of a zero Config.
const (
	// DefaultConcurrency is how many calls of one job function run at once
	// when neither its annotation nor JOB_CONCURRENCY says otherwise.
	DefaultConcurrency = 8
	// DefaultBufferBytes is how much stdout is held back to answer with
	// the exact status.
	DefaultBufferBytes = 1 << 20
	// DefaultReadyWait is how long a call waits for a free slot.
	DefaultReadyWait = 10 * time.Second
	// recordHeadTail is how much of the start and the end of stdout and
	// stderr a record keeps.
	recordHeadTail = 4 << 10
	// runningRecordAfter: a run still running this long after it started
	// is written as running (what a kill -9 leaves, marked interrupted at
	// the next start); a shorter one costs no write but its final one.
	runningRecordAfter = executions.DefaultRunningAfter
)

// Headers of a job's answer.
const (
	// HeaderExitCode carries the process's exit code (a header, or a
	// trailer once the answer is streamed).
	HeaderExitCode = "X-Exit-Code"
	// HeaderOOMKilled is "true" when the kernel killed the process for
	// going over its memory limit.
	HeaderOOMKilled = "X-OOM-Killed"
	// HeaderTimedOut is "true" in the trailers of a streamed answer whose
	// process the exec timeout killed (an answer not streamed yet is 504).
	HeaderTimedOut = "X-Timed-Out"
)

// Runner runs job functions: runtime.RunOnce, which the Docker runtime
// implements.
type Runner interface {
	Job(key string) (runtime.JobInfo, bool)
	RunOnce(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error)
}

// Records keeps execution records: the store.
type Records interface {
	PutExecution(ctx context.Context, e store.Execution) error
}

// Config tunes the Executor; zero values take the defaults.
type Config struct {
	// Concurrency is how many calls of one function run at once when its
	// io.dockerfaas.job.concurrency annotation is absent (JOB_CONCURRENCY).
	Concurrency int
	// ReadyWait is how long a call beyond the bound waits for a slot
	// before it is answered 429 (READY_WAIT); negative: not at all.
	ReadyWait time.Duration
	// BufferBytes is how much stdout is held back before the answer is
	// streamed with 200 (see the package doc).
	BufferBytes int
	// KeepAuthorization passes the request's Authorization header into
	// the environment (Http_Authorization). Off, it is dropped: with
	// INVOKE_AUTH it carries the gateway's credentials, which a container's
	// environment would show to anyone who can inspect it.
	KeepAuthorization bool
	Log               logrus.FieldLogger
}

// Executor answers calls of job functions; it implements proxy.JobRunner.
type Executor struct {
	cfg  Config
	run  Runner
	recs Records // nil writes no records

	mu    sync.Mutex
	slots map[string]*slots

	// writes tracks record writes still under way (Wait).
	writes sync.WaitGroup
}

var _ proxy.JobRunner = (*Executor)(nil)

// New returns an Executor running calls through run and recording them in
// recs (nil: no records).
func New(cfg Config, run Runner, recs Records) *Executor {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.ReadyWait == 0 {
		cfg.ReadyWait = DefaultReadyWait
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	return &Executor{cfg: cfg, run: run, recs: recs, slots: map[string]*slots{}}
}

// Wait waits (bounded by ctx) for the record writes under way: call it at
// shutdown, once no call is served any more, before the store closes.
func (e *Executor) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { e.writes.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// slots bounds the runs of one function.
type slots struct {
	limit int
	ch    chan struct{}
}

// slotsOf returns key's bound, made anew when its limit changed (runs
// under way release into the old one).
func (e *Executor) slotsOf(key string, limit int) *slots {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slots[key]
	if s == nil || s.limit != limit {
		s = &slots{limit: limit, ch: make(chan struct{}, limit)}
		e.slots[key] = s
	}
	return s
}

var errBusy = errors.New("every slot is taken")

// acquire takes a slot of s, waiting up to ReadyWait for one.
func (e *Executor) acquire(ctx context.Context, s *slots) error {
	select {
	case s.ch <- struct{}{}:
		return nil
	default:
	}
	if e.cfg.ReadyWait < 0 {
		return errBusy
	}
	t := time.NewTimer(e.cfg.ReadyWait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeJob implements proxy.JobRunner.
func (e *Executor) ServeJob(w http.ResponseWriter, r *http.Request, c proxy.JobCall) int {
	ref := c.Name + "." + c.Namespace
	log := e.cfg.Log.WithFields(logrus.Fields{"function": c.Name, "namespace": c.Namespace, "call_id": c.CallID})
	info, ok := e.run.Job(c.Key)
	if !ok {
		return fail(w, c, http.StatusServiceUnavailable, fmt.Sprintf("function %s cannot run jobs yet", ref), true)
	}
	limit := info.Concurrency
	if limit <= 0 {
		limit = e.cfg.Concurrency
	}
	s := e.slotsOf(c.Key, limit)
	if err := e.acquire(r.Context(), s); err != nil {
		if errors.Is(err, errBusy) {
			w.Header().Set("Retry-After", "1")
			return fail(w, c, http.StatusTooManyRequests,
				fmt.Sprintf("function %s is running %d jobs, its limit, and none ended within %s: try again later", ref, limit, e.cfg.ReadyWait.Round(time.Millisecond)), true)
		}
		return fail(w, c, proxy.StatusClientClosedRequest, "client closed request", true)
	}
	defer func() { <-s.ch }()

	rec := e.startRecord(c)
	in := &countingReader{r: r.Body}
	out := newOutput(w, e.holdBytes(r, info), e.headers(r, c, info))
	stderr := newHeadTail(recordHeadTail)
	res, err := e.run.RunOnce(r.Context(), runtime.RunRequest{
		Key: c.Key, CallID: c.CallID, Env: e.env(r, c),
		Stdin: in, Stdout: out, Stderr: stderr, Timeout: c.Timeout,
	})
	a := answerOf(r.Context(), res, err, c, ref)
	code := out.finish(a, res)
	if a.logLevel != 0 {
		entry := log.WithFields(logrus.Fields{"container": res.Container, "exit_code": res.ExitCode, "status": code})
		if err != nil {
			entry = entry.WithError(err)
		}
		entry.Log(a.logLevel, a.logMsg)
	}
	e.finishRecord(rec, a, res, code, in.n, out, stderr)
	return code
}

// holdBytes is how much of a call's stdout is held back before the answer
// is streamed: none for a streaming function or a caller asking for an
// event stream (Accept: text/event-stream), which want each line as it
// comes; else Config.BufferBytes. A run that writes nothing still gets the
// exact status either way.
func (e *Executor) holdBytes(r *http.Request, info runtime.JobInfo) int {
	if info.Stream || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return 0
	}
	return e.cfg.BufferBytes
}

// answer is how a run maps onto the call's answer and record.
type answer struct {
	code  int    // status when nothing was sent yet
	msg   string // body instead of stdout ("" keeps stdout)
	state string // the record's state
	err   string // the record's error
	// exited: the process ran and its exit code is meaningful.
	exited   bool
	internal bool // the answer is the daemon's, not the function's
	logLevel logrus.Level
	logMsg   string
}

// answerOf maps a run's result (and its error) onto the answer.
func answerOf(ctx context.Context, res runtime.RunResult, err error, c proxy.JobCall, ref string) answer {
	var mbe *http.MaxBytesError
	switch {
	case err != nil && errors.As(err, &mbe):
		return answer{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit),
			state: store.ExecutionFailed, err: "request body too large; killed", internal: true}
	case ctx.Err() != nil:
		return answer{code: proxy.StatusClientClosedRequest, msg: "client closed request",
			state: store.ExecutionFailed, err: "the caller went away; killed", internal: true,
			logLevel: logrus.DebugLevel, logMsg: "job: caller went away; killed"}
	case res.Killed || errors.Is(err, context.Canceled):
		// Not the caller's doing: the function was removed, or the daemon
		// is stopping.
		return answer{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("the job of %s was stopped: the function was removed or the daemon is stopping", ref),
			state: store.ExecutionFailed, err: "stopped: the function was removed or the daemon stopped", internal: true,
			logLevel: logrus.InfoLevel, logMsg: "job: stopped"}
	case errors.Is(err, runtime.ErrNotJob):
		return answer{code: http.StatusServiceUnavailable, msg: fmt.Sprintf("function %s cannot run jobs now", ref),
			state: store.ExecutionFailed, err: err.Error(), internal: true}
	case err != nil && res.Started.IsZero():
		return answer{code: http.StatusBadGateway, msg: fmt.Sprintf("could not run a job of %s", ref),
			state: store.ExecutionFailed, err: err.Error(), internal: true,
			logLevel: logrus.WarnLevel, logMsg: "job: could not run"}
	case res.TimedOut:
		return answer{code: http.StatusGatewayTimeout, msg: fmt.Sprintf("function %s timed out after %s", ref, c.Timeout),
			state: store.ExecutionTimedOut, err: fmt.Sprintf("killed at its exec timeout (%s)", c.Timeout), exited: true,
			logLevel: logrus.WarnLevel, logMsg: "job: timed out; killed"}
	case res.OOMKilled:
		return answer{code: http.StatusInternalServerError, state: store.ExecutionOOMKilled,
			err: "killed by the kernel: over its memory limit", exited: true,
			logLevel: logrus.InfoLevel, logMsg: "job: OOM-killed"}
	case err != nil:
		return answer{code: http.StatusBadGateway, msg: fmt.Sprintf("job of %s failed: its input or output broke", ref),
			state: store.ExecutionFailed, err: err.Error(), exited: true, internal: true,
			logLevel: logrus.WarnLevel, logMsg: "job: input or output failed"}
	case res.ExitCode != 0:
		return answer{code: http.StatusInternalServerError, state: store.ExecutionFailed, exited: true}
	default:
		return answer{code: http.StatusOK, state: store.ExecutionSucceeded, exited: true}
	}
}

// fail answers a call that ran nothing (or no more) with a message.
func fail(w http.ResponseWriter, c proxy.JobCall, code int, msg string, internal bool) int {
	h := w.Header()
	if internal {
		h.Set(proxy.HeaderInternal, "proxy")
	}
	h.Set(proxy.HeaderCallID, c.CallID)
	h.Set(proxy.HeaderStartTime, c.StartHeader)
	http.Error(w, msg, code)
	return code
}

// headers are the headers of the answer: the call's, and the content type
// as the classic watchdog sets it (its content_type variable, else the
// request's).
func (e *Executor) headers(r *http.Request, c proxy.JobCall, info runtime.JobInfo) http.Header {
	h := http.Header{}
	h.Set(proxy.HeaderCallID, c.CallID)
	h.Set(proxy.HeaderStartTime, c.StartHeader)
	if ct := info.Env["content_type"]; ct != "" {
		h.Set("Content-Type", ct)
	} else if ct := r.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}

// env is the request in the environment, named as the classic watchdog
// names it: Http_<Header> (dashes as underscores, the first value) for
// each header, the call's X-Call-Id and X-Start-Time included as a
// gateway sends them, and Http_Method, Http_ContentLength,
// Http_Content_Length, Http_Query, Http_Path and Http_Host.
func (e *Executor) env(r *http.Request, c proxy.JobCall) []string {
	hdr := make(map[string]string, len(r.Header)+2)
	for k, v := range r.Header {
		if len(v) == 0 {
			continue
		}
		k = http.CanonicalHeaderKey(k)
		if !e.cfg.KeepAuthorization && (k == "Authorization" || k == "Proxy-Authorization") {
			continue
		}
		hdr[k] = v[0]
	}
	hdr[proxy.HeaderCallID] = c.CallID
	hdr[proxy.HeaderStartTime] = c.StartHeader
	env := make([]string, 0, len(hdr)+7)
	for k, v := range hdr {
		env = append(env, "Http_"+strings.ReplaceAll(k, "-", "_")+"="+v)
	}
	sort.Strings(env)
	cl := strconv.FormatInt(r.ContentLength, 10)
	env = append(env, "Http_Method="+r.Method, "Http_ContentLength="+cl, "Http_Content_Length="+cl)
	if r.URL.RawQuery != "" {
		env = append(env, "Http_Query="+r.URL.RawQuery)
	}
	if c.Path != "" {
		env = append(env, "Http_Path="+c.Path)
	}
	if r.Host != "" {
		env = append(env, "Http_Host="+r.Host)
	}
	return env
}

// countingReader counts the bytes read through it (the record's bytes in).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
