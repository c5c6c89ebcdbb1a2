package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/build"
)

// BuildOptions is one image build as the engine is asked for it.
type BuildOptions struct {
	// Tag names the image built.
	Tag string
	// BuildArgs are the Dockerfile's ARG values.
	BuildArgs map[string]string
	// Labels are put on the image.
	Labels map[string]string
}

// BuildError is the engine's reason for a failed build: the errorDetail of
// the build stream (a Dockerfile step that failed, a missing file).
type BuildError struct{ Message string }

func (e *BuildError) Error() string { return e.Message }

// BuildEngine is the part of the Docker Engine API that image builds use.
// *Client implements it; it is separate from Engine so that the runtime's
// fakes need not.
type BuildEngine interface {
	// BuildImage builds the image from buildContext (a plain tar whose
	// root holds the Dockerfile) and tags it opts.Tag, in the engine only:
	// nothing is pushed or pulled. Each line of the build's output goes to
	// emit as it comes. A build the engine ran and that failed is a
	// *BuildError with the engine's text.
	BuildImage(ctx context.Context, buildContext io.Reader, opts BuildOptions, emit func(line string)) error
	// Platform is the engine's own platform, "os/arch" ("linux/amd64").
	Platform(ctx context.Context) (string, error)
}

var _ BuildEngine = (*Client)(nil)

// BuildImage implements BuildEngine. It asks for the classic builder
// (BuilderV1): it speaks the plain JSON message stream over one request,
// where BuildKit needs a session the daemon has no use for.
func (d *Client) BuildImage(ctx context.Context, buildContext io.Reader, opts BuildOptions, emit func(string)) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	args := make(map[string]*string, len(opts.BuildArgs))
	for k, v := range opts.BuildArgs {
		args[k] = &v
	}
	resp, err := d.c.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		Tags:        []string{opts.Tag},
		BuildArgs:   args,
		Labels:      opts.Labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return wrap("build image "+opts.Tag, err)
	}
	defer resp.Body.Close()
	if err := ParseBuildStream(resp.Body, emit); err != nil {
		var be *BuildError
		if errors.As(err, &be) {
			return err
		}
		return wrap("build image "+opts.Tag, err)
	}
	return nil
}

// Platform implements BuildEngine.
func (d *Client) Platform(ctx context.Context) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	v, err := d.c.ServerVersion(ctx)
	if err != nil {
		return "", wrap("engine version", err)
	}
	return v.Os + "/" + v.Arch, nil
}

// buildMessage is one message of the build stream (a jsonmessage).
type buildMessage struct {
	Stream      string          `json:"stream"`
	Status      string          `json:"status"`
	ID          string          `json:"id"`
	Aux         json.RawMessage `json:"aux"`
	Error       string          `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// ParseBuildStream reads a build's message stream to its end and sends its
// output to emit line by line: stream text split into lines, status
// messages (a base image pulled) as "ID: status", the image ID the aux
// message reports as "built sha256:…". The engine's error is a
// *BuildError; a stream that breaks off is an error too.
func ParseBuildStream(r io.Reader, emit func(string)) error {
	if emit == nil {
		emit = func(string) {}
	}
	dec := json.NewDecoder(r)
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the build's answer: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return &BuildError{Message: strings.TrimSpace(m.ErrorDetail.Message)}
		case m.Error != "":
			return &BuildError{Message: strings.TrimSpace(m.Error)}
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			if line = strings.TrimRight(line, " \r\t"); line != "" {
				emit(line)
			}
		}
		if m.Status != "" {
			if m.ID != "" {
				emit(m.ID + ": " + m.Status)
			} else {
				emit(m.Status)
			}
		}
		if len(m.Aux) > 0 {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				emit("built " + aux.ID)
			}
		}
	}
}
