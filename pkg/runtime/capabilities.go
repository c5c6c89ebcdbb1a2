package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"
)

// ErrNotSupported is wrapped by errors for features the runtime lacks; the
// API answers them with 501.
var ErrNotSupported = errors.New("not supported by this runtime")

// LogStreamer streams a function's logs (GET /system/logs).
type LogStreamer interface {
	// Stream sends the logs of req's function to emit until the history is
	// sent (or, with req.Follow, until ctx is done).
	Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error
}

// UsageReader reports what a function's replicas use (?usage=1).
type UsageReader interface {
	Usage(ctx context.Context, key string) (types.FunctionUsage, error)
}

// ImageLoader loads images from a `docker save` archive, so functions can
// be deployed without a registry (POST /system/images).
type ImageLoader interface {
	// LoadImages streams archive, a plain (uncompressed) tar, into the
	// engine and returns every reference it tagged, with the image's ID
	// and size (Ref "" for an image the archive names by ID only). It is
	// all or nothing: when it fails, or when ctx ends before it returns,
	// no reference it tagged is left tagged (a reference it moved points
	// at its old image again); an image that existed before is never
	// removed. An archive the engine refuses is an error wrapping
	// ErrBadArchive, with the engine's reason.
	LoadImages(ctx context.Context, archive io.Reader) ([]LoadedImage, error)
}

// ErrBadArchive is wrapped by ImageLoader errors for an archive the engine
// refused (corrupt, truncated, not a `docker save` archive); the API
// answers it with 400.
var ErrBadArchive = errors.New("the engine could not load the archive")

// LoadedImage is one reference an image load tagged.
type LoadedImage struct {
	Ref  string
	ID   string
	Size int64
}

// ImageInspector tells whether the engine has an image (GET /system/images).
type ImageInspector interface {
	// InspectImage returns the image ref names; found is false (and err
	// nil) when the engine has none.
	InspectImage(ctx context.Context, ref string) (info ImageInfo, found bool, err error)
}

// ImageInfo is what the engine knows of one image.
type ImageInfo struct {
	ID   string
	Size int64
}

// Builder builds images in the engine (POST /build) and runs a built
// image once, in a throwaway container, to test it before it serves.
type Builder interface {
	// Build builds req.Image from req.Context and leaves it in the engine
	// (never pushed). Each line of the build's output goes to emit as it
	// comes. A build the engine ran and that failed is an error wrapping
	// ErrBuildFailed, whose text is the engine's.
	Build(ctx context.Context, req BuildRequest, emit func(line string)) error
	// Platform is the one platform the engine builds for ("linux/amd64").
	Platform(ctx context.Context) (string, error)
	// TestImage runs req.Image in a throwaway container on a throwaway
	// network, waits for it to listen on 8080, sends the request and
	// returns the answer; container and network are removed either way.
	// No answer at all is an error.
	TestImage(ctx context.Context, req ImageTest) (ImageTestResult, error)
}

// ErrBuildFailed is wrapped by Builder.Build errors for a build the engine
// ran and refused (a broken Dockerfile): the build's failure, not the
// daemon's.
var ErrBuildFailed = errors.New("the build failed")

// BuildRequest is one image build.
type BuildRequest struct {
	// Image is the tag the image gets.
	Image string
	// Context is a plain tar with the Dockerfile at its root.
	Context   io.Reader
	BuildArgs map[string]string
	// Labels are put on the image.
	Labels map[string]string
}

// ImageTest is one request sent to a freshly built image.
type ImageTest struct {
	Image  string
	Method string
	// Path includes the query, if any ("/?q=1").
	Path string
	Body []byte
	// Ready bounds the wait for the container to accept connections, and
	// Timeout the request itself (0: a default each).
	Ready, Timeout time.Duration
}

// ImageTestResult is the answer of a tested image.
type ImageTestResult struct {
	Status int
	// Body is the start of the answer's body (a few KiB at most).
	Body []byte
}

// RunOnce runs job-mode functions: one fresh container per call, run to
// completion (faas.ModeJob). Sync of a job function publishes one pseudo
// endpoint (faas.JobEndpoints) once it can run, and remembers the resolved
// Desired the runs are made from.
type RunOnce interface {
	// Job tells whether key is a job function the runtime can run now,
	// and how it is bounded; ok is false otherwise (not synced as a job
	// function, or removed).
	Job(key string) (info JobInfo, ok bool)
	// RunOnce runs one container of req.Key to completion: the function's
	// command with req.Env added to its environment, req.Stdin copied to
	// its stdin (closed at EOF), its stdout and stderr copied to req.Stdout
	// and req.Stderr as they come. It returns once the process ended and
	// its output was copied; the container is removed afterwards in any
	// case (off the caller's path). A failure to run at all (the function
	// is no job function, Docker refused, the stdin copy failed reading
	// req.Stdin) is an error; how the process ended is in the result.
	RunOnce(ctx context.Context, req RunRequest) (RunResult, error)
}

// JobInfo is what a job function's runs need to know before they start.
type JobInfo struct {
	// Concurrency is the function's io.dockerfaas.job.concurrency (0 when
	// absent: the daemon's default applies).
	Concurrency int
	// Stream is the function's io.dockerfaas.job.stream: its stdout is sent
	// on from the first byte.
	Stream bool
	// Env is the function's own environment (envVars), for the exec
	// timeout and the classic watchdog's content_type.
	Env map[string]string
}

// ErrNotJob is returned by RunOnce for a key that is not a job function
// the runtime can run.
var ErrNotJob = errors.New("not a job function")

// RunRequest is one run-to-completion execution.
type RunRequest struct {
	// Key is the function, "namespace/name".
	Key string
	// CallID is the call's X-Call-Id, put on the container as a label.
	CallID string
	// Env is added to the function's environment (the request's Http_*).
	Env []string
	// Stdin is copied to the process's stdin, which is closed at its end
	// (nil: closed at once).
	Stdin io.Reader
	// Stdout and Stderr receive the process's output as it comes; each is
	// written from one goroutine at a time. nil discards.
	Stdout, Stderr io.Writer
	// Timeout kills the process when it runs longer (0: no limit).
	Timeout time.Duration
}

// RunResult is how one execution ended.
type RunResult struct {
	// Container is the short ID of the container that ran.
	Container string
	// ExitCode is the process's exit status (137 when it was killed).
	ExitCode int
	// OOMKilled: the kernel killed it for going over its memory limit.
	OOMKilled bool
	// TimedOut: it was killed at RunRequest.Timeout.
	TimedOut bool
	// Warm: it ran in a container started ahead of the call.
	Warm bool
	// Killed: it was killed because ctx ended (the caller went away).
	Killed bool
	// Created, Started and Exited are when the container was created,
	// started and seen to exit (timings for logs and benchmarks).
	Created, Started, Exited time.Time
}

// Pools serves functions with per-request isolation (faas.IsPerRequest):
// each keeps a pool of started containers that have served no call. Sync
// of such a function publishes one pseudo endpoint
// (faas.IsolatedEndpoints) while it has a pool (not at zero replicas).
type Pools interface {
	// Take hands out a container of key that has served no call: a ready
	// one, else the next one the pool makes ready, waiting until ctx ends
	// (then a *PoolBusyError). A key without a pool is an error wrapping
	// ErrNoPool.
	Take(ctx context.Context, key string) (Lease, error)
	// PoolStats describes every pool, for /debug/reconcile.
	PoolStats() []PoolStats
}

// Lease is one pooled container handed out for one call.
type Lease interface {
	// Replica is the container's short ID.
	Replica() string
	// Dial connects to the function in the container: its port 8080, or
	// the connection handed over its control socket. Once only.
	Dial(ctx context.Context) (net.Conn, error)
	// Release ends the lease: the container is removed (off the caller's
	// path), whatever happened.
	Release()
}

// ErrNoPool is wrapped by Take's error for a key without a pool.
var ErrNoPool = errors.New("no pool of fresh containers")

// PoolBusyError is Take's error when no container became ready in time.
type PoolBusyError struct {
	Key string
	// RetryAfter is when the pool is likely to have a container again.
	RetryAfter time.Duration
}

func (e *PoolBusyError) Error() string {
	return fmt.Sprintf("no fresh container of %s became ready in time (calls outrun the pool's refill)", e.Key)
}

// PoolStats is one pool as /debug/reconcile and the metrics show it.
type PoolStats struct {
	Key      string `json:"key"`
	Protocol string `json:"protocol"`
	// Size is how many ready containers the pool keeps; Ready, Starting
	// and Waiting (calls waiting for one) are now.
	Size     int `json:"size"`
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	Waiting  int `json:"waiting"`
	// Served counts the calls handed a container, Waited those of them
	// that had to wait, Busy those that got none in time (429).
	Served uint64 `json:"served"`
	Waited uint64 `json:"waited"`
	Busy   uint64 `json:"busy"`
	// Refills counts containers made ready; RefillsPerSecond is the rate
	// over the last minute.
	Refills          uint64  `json:"refills"`
	RefillsPerSecond float64 `json:"refillsPerSecond"`
	// StartSeconds is the mean time from create to ready of recent fills.
	StartSeconds float64 `json:"startSeconds"`
	// LastError is the last failure to make a container ready, if the
	// pool is backing off.
	LastError string `json:"lastError,omitempty"`
}

// Capabilities are the optional features of one runtime, found once at
// wiring; a nil field is a feature the runtime lacks.
type Capabilities struct {
	Logs   LogStreamer
	Usage  UsageReader
	Images ImageLoader
	// Inspect tells which images the engine has.
	Inspect ImageInspector
	Build   Builder
	Run     RunOnce
	Pools   Pools
}

// Discover finds the optional features rt implements.
func Discover(rt Runtime) Capabilities {
	var c Capabilities
	c.Logs, _ = rt.(LogStreamer)
	c.Usage, _ = rt.(UsageReader)
	c.Images, _ = rt.(ImageLoader)
	c.Inspect, _ = rt.(ImageInspector)
	c.Build, _ = rt.(Builder)
	c.Run, _ = rt.(RunOnce)
	c.Pools, _ = rt.(Pools)
	return c
}

// Missing lists the features c lacks, for the startup log.
func (c Capabilities) Missing() []string {
	var out []string
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"logs", c.Logs != nil}, {"usage", c.Usage != nil},
		{"image load", c.Images != nil}, {"image inspect", c.Inspect != nil},
		{"build", c.Build != nil}, {"run-once", c.Run != nil},
		{"per-request isolation", c.Pools != nil},
	} {
		if !f.has {
			out = append(out, f.name)
		}
	}
	return out
}

// NotSupported is the error for a missing feature.
func NotSupported(feature string) error {
	return fmt.Errorf("%s: %w", feature, ErrNotSupported)
}
