package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// JobProgram is what the process of a job container (one created with
// ContainerSpec.Stdin) does in the fake engine: it reads stdin, writes
// stdout and stderr and returns how it ended. ctx ends when the container
// is killed or removed; the program should return then.
type JobProgram func(ctx context.Context, spec docker.ContainerSpec, stdin io.Reader, stdout, stderr io.Writer) docker.Exit

// echoProgram is the default JobProgram: stdin to stdout, exit 0.
func echoProgram(ctx context.Context, _ docker.ContainerSpec, stdin io.Reader, stdout, _ io.Writer) docker.Exit {
	_, _ = io.Copy(stdout, stdin)
	return docker.Exit{}
}

var _ docker.JobEngine = (*Engine)(nil)

// jobProc is one job container's process.
type jobProc struct {
	stdinR          *io.PipeReader
	stdinW          *io.PipeWriter
	outR, errR      *io.PipeReader
	outW, errW      *io.PipeWriter
	cancel          context.CancelFunc
	started, killed bool
	done            chan struct{} // closed when the program returned
	exit            docker.Exit
}

func newJobProc() *jobProc {
	p := &jobProc{done: make(chan struct{})}
	p.stdinR, p.stdinW = io.Pipe()
	p.outR, p.outW = io.Pipe()
	p.errR, p.errW = io.Pipe()
	return p
}

// HoldWaits makes WaitContainer report nothing while hold is true (a
// wait made then answers once hold is lifted, or its context ends): the
// exit is then known from the die event alone.
func (e *Engine) HoldWaits(hold bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if hold && !e.holdWaits {
		e.released = make(chan struct{})
	}
	if !hold && e.holdWaits {
		close(e.released)
	}
	e.holdWaits = hold
}

// SetJobProgram sets what job containers do from now on (nil: echo).
func (e *Engine) SetJobProgram(p JobProgram) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.program = p
}

// jobProcLocked returns id's process, made on first use. e.mu is held.
func (e *Engine) jobProcLocked(id string) *jobProc {
	if e.jobs == nil {
		e.jobs = map[string]*jobProc{}
	}
	p := e.jobs[id]
	if p == nil {
		p = newJobProc()
		e.jobs[id] = p
	}
	return p
}

// startJobLocked runs the program of a job container; e.mu is held.
func (e *Engine) startJobLocked(id string, spec docker.ContainerSpec) {
	p := e.jobProcLocked(id)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.started = cancel, true
	prog := e.program
	if prog == nil {
		prog = echoProgram
	}
	if isJobInit(spec) {
		prog = e.jobInitProgram()
	}
	go func() {
		exit := prog(ctx, spec, p.stdinR, p.outW, p.errW)
		_ = p.outW.Close()
		_ = p.errW.Close()
		_ = p.stdinR.Close()
		e.mu.Lock()
		defer e.mu.Unlock()
		if p.killed {
			exit = docker.Exit{Code: 137}
		}
		p.exit = exit
		if c, ok := e.containers[id]; ok {
			c.State = docker.StateExited
			// Docker's die event: the labels and the exit code.
			attrs := copyMap(c.Labels)
			attrs["exitCode"] = strconv.Itoa(exit.Code)
			e.emit(docker.Event{Type: "container", Action: "die", ID: id, Attributes: attrs})
		}
		close(p.done)
	}()
}

// stopJobLocked kills a removed container's program; e.mu is held.
func (e *Engine) stopJobLocked(id string) {
	if p := e.jobs[id]; p != nil && p.cancel != nil {
		p.killed = true
		p.cancel()
	}
}

// AttachContainer implements docker.JobEngine.
func (e *Engine) AttachContainer(ctx context.Context, id string) (docker.Attachment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("attach", id); err != nil {
		return nil, err
	}
	c, ok := e.containers[id]
	if !ok {
		return nil, fmt.Errorf("attach %s: %w", id, docker.ErrNotFound)
	}
	if !e.specs[id].Stdin {
		return nil, fmt.Errorf("attach %s: container was not created with stdin open", id)
	}
	e.record("attach %s", c.Name)
	return &attachment{p: e.jobProcLocked(id)}, nil
}

// attachment is the fake's docker.Attachment.
type attachment struct {
	p    *jobProc
	once sync.Once
}

func (a *attachment) Write(b []byte) (int, error) { return a.p.stdinW.Write(b) }
func (a *attachment) CloseStdin() error           { return a.p.stdinW.Close() }

func (a *attachment) Close() error {
	a.once.Do(func() {
		_ = a.p.stdinW.Close()
		_ = a.p.outR.Close()
		_ = a.p.errR.Close()
	})
	return nil
}

func (a *attachment) Demux(stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var wg sync.WaitGroup
	var errOut, errErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, errOut = io.Copy(stdout, a.p.outR) }()
	go func() { defer wg.Done(); _, errErr = io.Copy(stderr, a.p.errR) }()
	wg.Wait()
	err := errors.Join(errOut, errErr)
	if errors.Is(err, io.ErrClosedPipe) {
		return nil // Close under the reader: the end, as on a real connection
	}
	return err
}

// WaitContainer implements docker.JobEngine.
func (e *Engine) WaitContainer(ctx context.Context, id string) <-chan docker.Exit {
	out := make(chan docker.Exit, 1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("wait", id); err != nil {
		out <- docker.Exit{Err: err}
		return out
	}
	if _, ok := e.containers[id]; !ok {
		out <- docker.Exit{Err: fmt.Errorf("wait %s: %w", id, docker.ErrNotFound)}
		return out
	}
	p := e.jobs[id]
	held := e.released
	if !e.holdWaits {
		held = nil
	}
	if held == nil && (p == nil || !p.started) {
		out <- docker.Exit{} // not running: Docker answers at once
		return out
	}
	go func() {
		if held != nil {
			select {
			case <-held:
			case <-ctx.Done():
				out <- docker.Exit{Err: ctx.Err()}
				return
			}
			if p == nil || !p.started {
				out <- docker.Exit{}
				return
			}
		}
		select {
		case <-p.done:
			e.mu.Lock()
			out <- docker.Exit{Code: p.exit.Code}
			e.mu.Unlock()
		case <-ctx.Done():
			out <- docker.Exit{Err: ctx.Err()}
		}
	}()
	return out
}

// KillContainer implements docker.JobEngine.
func (e *Engine) KillContainer(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("kill", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("kill %s: %w", id, docker.ErrNotFound)
	}
	if c.State != docker.StateRunning {
		return fmt.Errorf("kill %s: container is not running: %w", id, docker.ErrConflict)
	}
	e.record("kill %s", c.Name)
	if e.jobs[id] == nil {
		// No emulated process (a replica-like container): it stops at
		// once, and log streams following it end.
		c.State = docker.StateExited
		e.logWake.notifyLocked()
		return nil
	}
	e.stopJobLocked(id)
	return nil
}

// ContainerExit implements docker.JobEngine.
func (e *Engine) ContainerExit(ctx context.Context, id string) (docker.Exit, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("inspect", id); err != nil {
		return docker.Exit{}, err
	}
	if _, ok := e.containers[id]; !ok {
		return docker.Exit{}, fmt.Errorf("inspect %s: %w", id, docker.ErrNotFound)
	}
	if p := e.jobs[id]; p != nil {
		return docker.Exit{Code: p.exit.Code, OOMKilled: p.exit.OOMKilled}, nil
	}
	return docker.Exit{}, nil
}
