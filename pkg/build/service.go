package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Defaults of the builder's settings.
const (
	DefaultMaxBytes    = 512 << 20
	DefaultConcurrency = 2
	DefaultTimeout     = 10 * time.Minute
	// DefaultLogMax is how much of a build's log its record keeps (the
	// last lines).
	DefaultLogMax = 64 << 10
	// testLogBody is how much of a failed test's answer goes to the log.
	testLogBody = 1 << 10
)

// LabelBuild is put on every image built, with the build's ID.
const LabelBuild = "io.dockerfaas.build"

// Deployer writes the desired state of a function running image: it
// creates the function, or updates its spec with the new image. It
// returns the function's key.
type Deployer interface {
	DeployImage(ctx context.Context, name, namespace, image string) (key string, err error)
}

// Config is what the builder needs.
type Config struct {
	// Builder is the runtime's build capability; nil: builds are 501.
	Builder runtime.Builder
	// Records keeps the build records.
	Records store.Builds
	// Deploy deploys on success when a build asks for it; nil refuses
	// such builds.
	Deploy Deployer
	// Templates are the server-side templates.
	Templates *Templates
	// WorkDir holds spooled requests and build contexts while they build.
	WorkDir string
	// Secret is the payload secret the requests are signed with.
	Secret []byte
	// MaxBytes bounds a request body; Concurrency the builds at once;
	// Timeout one build with its test and deploy; LogMax the log a record
	// keeps; Retention the records kept. Zero means the default.
	MaxBytes    int64
	Concurrency int
	Timeout     time.Duration
	LogMax      int
	Retention   int
	Log         logrus.FieldLogger
}

// Service runs builds.
type Service struct {
	cfg   Config
	slots chan struct{}
	// platform caches the engine's platform once known.
	mu       sync.Mutex
	platform string
}

// New returns the builder over cfg.
func New(cfg Config) *Service {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LogMax <= 0 {
		cfg.LogMax = DefaultLogMax
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Templates == nil {
		cfg.Templates = &Templates{Dir: filepath.Join(cfg.WorkDir, "templates")}
	}
	return &Service{cfg: cfg, slots: make(chan struct{}, cfg.Concurrency)}
}

// Supported tells whether the runtime can build at all.
func (s *Service) Supported() bool { return s.cfg.Builder != nil }

// Concurrency is the number of builds that may run at once.
func (s *Service) Concurrency() int { return s.cfg.Concurrency }

// MaxBytes is the bound of a request body.
func (s *Service) MaxBytes() int64 { return s.cfg.MaxBytes }

// Timeout bounds one build.
func (s *Service) Timeout() time.Duration { return s.cfg.Timeout }

// Templates are the server-side templates.
func (s *Service) Templates() *Templates { return s.cfg.Templates }

// Records are the build records.
func (s *Service) Records() store.Builds { return s.cfg.Records }

// Acquire takes one of the build slots, without waiting: ok is false when
// all are taken (429). release gives it back.
func (s *Service) Acquire() (release func(), ok bool) {
	select {
	case s.slots <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-s.slots }) }, true
	default:
		return nil, false
	}
}

// Spool writes the request body to the work directory with its HMAC.
func (s *Service) Spool(body io.Reader) (*Spooled, error) {
	return Spool(body, filepath.Join(s.cfg.WorkDir, "spool"), s.cfg.Secret, s.cfg.MaxBytes)
}

// Request is the com.openfaas.docker.config of a build: the OpenFaaS
// fields, then ours.
type Request struct {
	Image     string            `json:"image"`
	BuildArgs map[string]string `json:"buildArgs,omitempty"`
	Platforms []string          `json:"platforms,omitempty"`
	// SkipPush is accepted and ignored: nothing is ever pushed.
	SkipPush bool `json:"skipPush,omitempty"`
	// Lang (our extension) names a server-side template: the context sent
	// is only the handler folder, assembled with the template as faas-cli
	// does. "dockerfile": the handler folder is the context.
	Lang string `json:"lang,omitempty"`
	// Test (our extension) is sent to the built image before it counts as
	// built.
	Test *Test `json:"test,omitempty"`
	// Deploy (our extension) deploys the image on success.
	Deploy *Deploy `json:"deploy,omitempty"`
}

// Test is the request a built image must answer as expected.
type Test struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Body   string `json:"body,omitempty"`
	// Status is the status expected (0: any 2xx).
	Status int `json:"status,omitempty"`
	// Contains must appear in the answer's body (its first 4 KiB).
	Contains string `json:"contains,omitempty"`
}

// Deploy names the function to deploy the image to.
type Deploy struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// Job is one prepared build: its request and assembled context.
type Job struct {
	Req Request
	dir string
	ctx string
}

// Close removes the job's files.
func (j *Job) Close() {
	if j != nil && j.dir != "" {
		_ = os.RemoveAll(j.dir)
	}
}

// fnName is an OpenFaaS function name (a DNS label).
var fnName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Prepare reads the spooled request: it extracts the context, decodes and
// checks the config, and assembles the context from a template when the
// config names one. A request that cannot be built is a *RequestError.
func (s *Service) Prepare(ctx context.Context, sp *Spooled) (*Job, error) {
	f, err := os.Open(sp.Path)
	if err != nil {
		return nil, fmt.Errorf("read spooled request: %w", err)
	}
	defer f.Close()
	dir, err := os.MkdirTemp(filepath.Join(s.cfg.WorkDir, "spool"), "ctx-")
	if err != nil {
		return nil, fmt.Errorf("build directory: %w", err)
	}
	job := &Job{dir: dir, ctx: filepath.Join(dir, "context")}
	handler := filepath.Join(dir, "handler")
	if err := os.Mkdir(handler, 0o700); err != nil {
		job.Close()
		return nil, err
	}
	raw, err := readRequest(f, handler)
	if err == nil {
		err = s.check(ctx, raw, job)
	}
	if err == nil {
		if job.Req.Lang == "" {
			err = os.Rename(handler, job.ctx)
		} else {
			err = s.cfg.Templates.Assemble(job.Req.Lang, handler, job.ctx)
			if errors.Is(err, ErrTemplateNotFound) {
				err = badRequest("no template %q on this server (upload it with PUT /system/templates/%s)", job.Req.Lang, job.Req.Lang)
			}
		}
	}
	if err == nil {
		if _, serr := os.Stat(filepath.Join(job.ctx, "Dockerfile")); serr != nil {
			err = badRequest("the build context has no Dockerfile")
		}
	}
	if err != nil {
		job.Close()
		return nil, err
	}
	return job, nil
}

// check decodes and validates the config into job.Req.
func (s *Service) check(ctx context.Context, raw []byte, job *Job) error {
	req := &job.Req
	if err := json.Unmarshal(raw, req); err != nil {
		return badRequest("%s: %v", configName, err)
	}
	if req.Image == "" {
		return badRequest("%s: image is required", configName)
	}
	if _, err := reference.ParseNormalizedNamed(req.Image); err != nil {
		return badRequest("image %q: %v", req.Image, err)
	}
	if req.Lang != "" && !ValidLang(req.Lang) {
		return badRequest("invalid lang %q", req.Lang)
	}
	if t := req.Test; t != nil {
		if t.Status != 0 && (t.Status < 100 || t.Status > 599) {
			return badRequest("test: status %d is no HTTP status", t.Status)
		}
		if t.Method != "" && !validMethod(t.Method) {
			return badRequest("test: invalid method %q", t.Method)
		}
	}
	if d := req.Deploy; d != nil {
		if s.cfg.Deploy == nil {
			return badRequest("deploy: this builder cannot deploy")
		}
		if !fnName.MatchString(d.Name) {
			return badRequest("deploy: invalid function name %q", d.Name)
		}
		if d.Namespace == "" {
			d.Namespace = store.DefaultNamespace
		}
	}
	if len(req.Platforms) > 0 {
		own, err := s.enginePlatform(ctx)
		if err != nil {
			return err
		}
		for _, p := range req.Platforms {
			if !samePlatform(p, own) {
				return badRequest("platform %s: this builder builds for %s only (one host, one platform)", p, own)
			}
		}
	}
	return nil
}

func (s *Service) enginePlatform(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.platform == "" {
		p, err := s.cfg.Builder.Platform(ctx)
		if err != nil {
			return "", fmt.Errorf("engine platform: %w", err)
		}
		s.platform = p
	}
	return s.platform, nil
}

// samePlatform compares os/arch, ignoring a variant.
func samePlatform(want, own string) bool {
	w := strings.Split(strings.ToLower(strings.TrimSpace(want)), "/")
	o := strings.Split(strings.ToLower(own), "/")
	return len(w) >= 2 && len(o) >= 2 && w[0] == o[0] && w[1] == o[1]
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// logBuffer keeps the last max bytes of a build's log, in lines.
type logBuffer struct {
	mu    sync.Mutex
	max   int
	size  int
	lines []string
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	b.size += len(line)
	for b.size > b.max && len(b.lines) > 1 {
		b.size -= len(b.lines[0])
		b.lines = b.lines[1:]
	}
}

func (b *logBuffer) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// Run builds job, tests the image and deploys it as the job asks, and
// records the build; emit receives each log line as it comes. It returns
// the final record: Status success or failed.
func (s *Service) Run(ctx context.Context, job *Job, emit func(string)) store.Build {
	start := time.Now()
	rec := store.Build{
		ID:        store.NewBuildID(start),
		Image:     job.Req.Image,
		Lang:      job.Req.Lang,
		Status:    store.BuildInProgress,
		StartedAt: start,
	}
	log := s.cfg.Log.WithFields(logrus.Fields{"build": rec.ID, "image": rec.Image})
	logs := &logBuffer{max: s.cfg.LogMax}
	line := func(l string) {
		logs.add(l)
		if emit != nil {
			emit(l)
		}
	}
	s.save(ctx, rec, log)

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	err := s.run(ctx, job, &rec, line)
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("the build took longer than %s: %w", s.cfg.Timeout, err)
	}
	rec.FinishedAt = time.Now()
	rec.Duration = rec.FinishedAt.Sub(start).Seconds()
	if err != nil {
		rec.Status, rec.Error = store.BuildFailed, err.Error()
		log.WithError(err).Info("build failed")
	} else {
		rec.Status = store.BuildSuccess
		log.WithField("seconds", rec.Duration).Info("build succeeded")
	}
	rec.Log = logs.snapshot()
	// Recorded whatever ctx says: the client may have gone away.
	s.save(context.WithoutCancel(ctx), rec, log)
	return rec
}

func (s *Service) save(ctx context.Context, rec store.Build, log logrus.FieldLogger) {
	if s.cfg.Records == nil {
		return
	}
	if rec.Log == nil {
		rec.Log = []string{}
	}
	if err := s.cfg.Records.PutBuild(ctx, rec, s.cfg.Retention); err != nil {
		log.WithError(err).Warn("build record not written")
	}
}

// run is Run's work: build, test, deploy.
func (s *Service) run(ctx context.Context, job *Job, rec *store.Build, line func(string)) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, job.ctx)) }()
	err := s.cfg.Builder.Build(ctx, runtime.BuildRequest{
		Image:     job.Req.Image,
		Context:   pr,
		BuildArgs: job.Req.BuildArgs,
		Labels:    map[string]string{LabelBuild: rec.ID},
	}, line)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), runtime.ErrBuildFailed.Error()+": "); ok && errors.Is(err, runtime.ErrBuildFailed) {
			return errors.New(msg)
		}
		return err
	}
	if t := job.Req.Test; t != nil {
		res := s.test(ctx, job.Req.Image, t, line)
		rec.Test = &res
		if !res.Passed {
			return fmt.Errorf("test failed: %s", res.Error)
		}
	}
	if d := job.Req.Deploy; d != nil {
		key, err := s.cfg.Deploy.DeployImage(ctx, d.Name, d.Namespace, job.Req.Image)
		if err != nil {
			return fmt.Errorf("deploy %s.%s: %w", d.Name, d.Namespace, err)
		}
		rec.Deployed = key
		line("deployed " + job.Req.Image + " to " + key)
	}
	return nil
}

// test runs the image once and compares its answer with t.
func (s *Service) test(ctx context.Context, image string, t *Test, line func(string)) store.BuildTestResult {
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	line(fmt.Sprintf("test: %s %s", method, t.Path))
	ans, err := s.cfg.Builder.TestImage(ctx, runtime.ImageTest{Image: image, Method: method, Path: t.Path, Body: []byte(t.Body)})
	res := store.BuildTestResult{Status: ans.Status, Body: string(ans.Body)}
	if err != nil {
		res.Error = err.Error()
		line("test: " + err.Error())
		return res
	}
	var problems []string
	switch {
	case t.Status != 0 && ans.Status != t.Status:
		problems = append(problems, fmt.Sprintf("status %d, want %d", ans.Status, t.Status))
	case t.Status == 0 && (ans.Status < 200 || ans.Status > 299):
		problems = append(problems, fmt.Sprintf("status %d, want 2xx", ans.Status))
	}
	if t.Contains != "" && !strings.Contains(string(ans.Body), t.Contains) {
		problems = append(problems, fmt.Sprintf("body does not contain %q", t.Contains))
	}
	if len(problems) == 0 {
		res.Passed = true
		line(fmt.Sprintf("test: passed (status %d)", ans.Status))
		return res
	}
	sort.Strings(problems)
	res.Error = strings.Join(problems, "; ")
	body := ans.Body
	if len(body) > testLogBody {
		body = body[:testLogBody]
	}
	line(fmt.Sprintf("test: failed: %s", res.Error))
	line(fmt.Sprintf("test: response status %d, body: %s", ans.Status, body))
	return res
}

// MarkInterrupted closes the records an earlier daemon left in progress
// (it died while they ran) as failed, and returns how many. Call it once
// at start, before any build.
func (s *Service) MarkInterrupted(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.Records == nil {
		return 0, nil
	}
	recs, err := s.cfg.Records.ListBuilds(ctx, 0)
	if err != nil {
		return 0, fmt.Errorf("list build records: %w", err)
	}
	n := 0
	for _, rec := range recs {
		if rec.Status != store.BuildInProgress {
			continue
		}
		rec.Status, rec.FinishedAt = store.BuildFailed, now
		rec.Duration = now.Sub(rec.StartedAt).Seconds()
		rec.Error = "interrupted: the daemon stopped while the build ran"
		if err := s.cfg.Records.PutBuild(ctx, rec, s.cfg.Retention); err != nil {
			return n, fmt.Errorf("close build record %s: %w", rec.ID, err)
		}
		n++
	}
	return n, nil
}
