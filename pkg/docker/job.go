package docker

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Labels of a job's container (job mode: one container per call). A job
// container carries LabelManaged and LabelInstance like everything the
// daemon creates, but not LabelFunction/LabelNamespace: what is built for
// replicas (listing, events, logs, drift) selects by those and must never
// mistake a job for a replica. LabelJob names its function instead.
const (
	// LabelRole is RoleJob on a job's container.
	LabelRole = "io.dockerfaas.role"
	// LabelJob is the function key ("namespace/name") a job ran for.
	LabelJob = "io.dockerfaas.job"
	// LabelRun identifies one run, unique per daemon process: the daemon
	// knows the runs it started by it, so it can tell those of a daemon
	// that died (orphans) from its own.
	LabelRun = "io.dockerfaas.run"
	// LabelCallID is the call's X-Call-Id.
	LabelCallID = "io.dockerfaas.call-id"
)

// RoleJob is LabelRole's value on a job's container.
const RoleJob = "job"

// JobEngine is what running a job needs beyond Engine: the container's
// stdio, its exit and a kill. Client and the fake implement it.
type JobEngine interface {
	// AttachContainer attaches to the stdin, stdout and stderr of a
	// created container (created with ContainerSpec.Stdin), before it
	// starts so that no output is missed.
	AttachContainer(ctx context.Context, id string) (Attachment, error)
	// WaitContainer reports the exit of a started container: at once when
	// it is not running any more. One value is sent, then the channel is
	// left alone; ctx ends the wait with ctx's error.
	WaitContainer(ctx context.Context, id string) <-chan Exit
	// KillContainer sends SIGKILL; a container that is not running is
	// ErrConflict, a missing one ErrNotFound.
	KillContainer(ctx context.Context, id string) error
	// ContainerExit reads how an exited container ended.
	ContainerExit(ctx context.Context, id string) (Exit, error)
}

// Exit is how a container's process ended.
type Exit struct {
	Code int
	// OOMKilled: the kernel killed it for going over its memory limit
	// (only ContainerExit reads it).
	OOMKilled bool
	// Err: the exit could not be read.
	Err error
}

// Attachment is a hijacked connection to a container's stdio.
type Attachment interface {
	// Write writes to the container's stdin.
	io.Writer
	// CloseStdin closes the container's stdin: the process reads EOF.
	CloseStdin() error
	// Demux copies the container's stdout and stderr to the writers until
	// both end (the process exited or closed them).
	Demux(stdout, stderr io.Writer) error
	// Close releases the connection; Demux then ends.
	Close() error
}

var _ JobEngine = (*Client)(nil)

// applyJobConfig sets what a job's container needs in its config.
func applyJobConfig(cfg *container.Config, s ContainerSpec) {
	if len(s.Entrypoint) > 0 {
		// An explicit entrypoint drops the image's cmd too (Docker keeps
		// it only when the entrypoint is left as the image's).
		cfg.Entrypoint = s.Entrypoint
		cfg.Cmd = []string{}
	}
	if s.Stdin {
		cfg.OpenStdin, cfg.StdinOnce = true, true
		cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = true, true, true
	}
}

// AttachContainer implements JobEngine.
func (d *Client) AttachContainer(ctx context.Context, id string) (Attachment, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	resp, err := d.c.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, wrap("attach "+ShortID(id), err)
	}
	return &hijacked{resp: resp}, nil
}

// hijacked is an Attachment over Docker's hijacked connection, whose
// output is multiplexed (the container has no TTY).
type hijacked struct{ resp types.HijackedResponse }

func (h *hijacked) Write(p []byte) (int, error) { return h.resp.Conn.Write(p) }
func (h *hijacked) CloseStdin() error           { return h.resp.CloseWrite() }
func (h *hijacked) Close() error                { h.resp.Close(); return nil }

func (h *hijacked) Demux(stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, err := stdcopy.StdCopy(stdout, stderr, h.resp.Reader)
	if err != nil && isClosed(err) {
		return nil
	}
	return err
}

// isClosed: the connection was closed under a reader (Close), which ends
// Demux as the end of the stream would.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// WaitContainer implements JobEngine with Docker's wait for "not-running".
func (d *Client) WaitContainer(ctx context.Context, id string) <-chan Exit {
	out := make(chan Exit, 1)
	if err := d.ready(ctx); err != nil {
		out <- Exit{Err: err}
		return out
	}
	resC, errC := d.c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	go func() {
		select {
		case res := <-resC:
			e := Exit{Code: int(res.StatusCode)}
			if res.Error != nil && res.Error.Message != "" {
				e.Err = wrap("wait "+ShortID(id), errString(res.Error.Message))
			}
			out <- e
		case err := <-errC:
			out <- Exit{Err: wrap("wait "+ShortID(id), err)}
		}
	}()
	return out
}

type errString string

func (e errString) Error() string { return string(e) }

// KillContainer implements JobEngine.
func (d *Client) KillContainer(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("kill "+ShortID(id), d.c.ContainerKill(ctx, id, "KILL"))
}

// ContainerExit implements JobEngine.
func (d *Client) ContainerExit(ctx context.Context, id string) (Exit, error) {
	if err := d.ready(ctx); err != nil {
		return Exit{}, err
	}
	c, err := d.c.ContainerInspect(ctx, id)
	if err != nil {
		return Exit{}, wrap("inspect "+ShortID(id), err)
	}
	if c.State == nil {
		return Exit{}, wrap("inspect "+ShortID(id), errString("no state"))
	}
	return Exit{Code: c.State.ExitCode, OOMKilled: c.State.OOMKilled}, nil
}
