package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"

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
// be deployed without a registry. It returns the references loaded.
type ImageLoader interface {
	LoadImages(ctx context.Context, archive io.Reader) ([]string, error)
}

// Builder builds an image from a build context tar.
type Builder interface {
	Build(ctx context.Context, req BuildRequest, progress io.Writer) (image string, err error)
}

// BuildRequest is one image build.
type BuildRequest struct {
	Image     string
	Context   io.Reader
	BuildArgs map[string]string
}

// RunOnce runs one fresh container to completion (job mode).
type RunOnce interface {
	RunOnce(ctx context.Context, req RunRequest) (RunResult, error)
}

// RunRequest is one run-to-completion execution.
type RunRequest struct {
	Key   string
	Input io.Reader
}

// RunResult is how one execution ended.
type RunResult struct {
	ExitCode int
	Output   []byte
}

// Capabilities are the optional features of one runtime, found once at
// wiring; a nil field is a feature the runtime lacks.
type Capabilities struct {
	Logs   LogStreamer
	Usage  UsageReader
	Images ImageLoader
	Build  Builder
	Run    RunOnce
}

// Discover finds the optional features rt implements.
func Discover(rt Runtime) Capabilities {
	var c Capabilities
	c.Logs, _ = rt.(LogStreamer)
	c.Usage, _ = rt.(UsageReader)
	c.Images, _ = rt.(ImageLoader)
	c.Build, _ = rt.(Builder)
	c.Run, _ = rt.(RunOnce)
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
		{"image load", c.Images != nil}, {"build", c.Build != nil}, {"run-once", c.Run != nil},
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
