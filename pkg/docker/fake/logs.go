package fake

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// dockerTimeFormat is how Docker stamps log lines: RFC 3339 with a fixed
// nine-digit fraction (jsonmessage.RFC3339NanoFixed).
const dockerTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// followPoll is how often a following reader looks at the container's
// state; new lines wake it at once.
const followPoll = 10 * time.Millisecond

// logLine is one message a fake container (or task) wrote.
type logLine struct {
	stderr bool
	ts     time.Time
	text   string
	// details are Docker's details of a service log message ("" for a
	// container's log, which is read without them).
	details string
}

// logWaker wakes the readers following a fake's logs; the fake's lock
// guards it.
type logWaker struct {
	ch chan struct{}
}

// waitLocked returns a channel closed by the next notifyLocked.
func (w *logWaker) waitLocked() <-chan struct{} {
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// notifyLocked wakes every reader waiting.
func (w *logWaker) notifyLocked() {
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// WriteLog appends text to container id's log as if its process wrote it
// at ts, on stderr when stderr is true and on stdout otherwise. End text
// with "\n" for a complete line; text without one is a partial message, as
// Docker records pieces of lines longer than 16 KiB. Readers following the
// container see it at once. An unknown container is docker.ErrNotFound.
func (e *Engine) WriteLog(id string, stderr bool, ts time.Time, text string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[id]; !ok {
		return fmt.Errorf("write log of %s: %w", id, docker.ErrNotFound)
	}
	if e.logs == nil {
		e.logs = map[string][]logLine{}
	}
	e.logs[id] = append(e.logs[id], logLine{stderr: stderr, ts: ts, text: text})
	e.logWake.notifyLocked()
	return nil
}

// ContainerLogs implements the log reading of docker.Client: the
// multiplexed stdout/stderr stream, one frame per message, each stamped like
// Docker does. Since is inclusive, Tail applies to the history only, and
// Follow keeps the stream open while the container is running.
func (e *Engine) ContainerLogs(ctx context.Context, id string, opts docker.LogOptions) (io.ReadCloser, error) {
	e.mu.Lock()
	if err := e.fail("logs", id); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	c, ok := e.containers[id]
	if !ok {
		e.mu.Unlock()
		return nil, fmt.Errorf("logs of %s: %w", id, docker.ErrNotFound)
	}
	all := e.logs[id]
	next := len(all)
	history := sinceFilter(all, opts.Since)
	if opts.Tail > 0 && len(history) > opts.Tail {
		history = history[len(history)-opts.Tail:]
	}
	history = streamFilter(history, opts.Streams) // after the tail, as Docker does
	follow := opts.Follow && c.State == docker.StateRunning
	e.mu.Unlock()

	pr, pw := io.Pipe()
	go func() {
		stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
		defer stop()
		err := writeFrames(pw, history, false)
		for follow && err == nil {
			e.mu.Lock()
			fresh := streamFilter(sinceFilter(e.logs[id][next:], opts.Since), opts.Streams)
			next = len(e.logs[id])
			cur, ok := e.containers[id]
			running := ok && cur.State == docker.StateRunning
			wake := e.logWake.waitLocked()
			e.mu.Unlock()
			if len(fresh) > 0 {
				err = writeFrames(pw, fresh, false)
				continue
			}
			if !running {
				break
			}
			select {
			case <-wake:
			case <-time.After(followPoll):
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return pr, nil
}

// sinceFilter returns a copy of the lines stamped at or after since.
func sinceFilter(lines []logLine, since time.Time) []logLine {
	out := make([]logLine, 0, len(lines))
	for _, l := range lines {
		if since.IsZero() || !l.ts.Before(since) {
			out = append(out, l)
		}
	}
	return out
}

// streamFilter returns the lines of the streams selected.
func streamFilter(lines []logLine, streams docker.LogStreams) []logLine {
	if streams == docker.BothStreams {
		return lines
	}
	out := make([]logLine, 0, len(lines))
	for _, l := range lines {
		if l.stderr == (streams == docker.StderrOnly) {
			out = append(out, l)
		}
	}
	return out
}

// writeFrames writes lines as Docker does: each a multiplexed frame, or
// raw for a TTY.
func writeFrames(w io.Writer, lines []logLine, tty bool) error {
	stdout, stderr := stdcopy.NewStdWriter(w, stdcopy.Stdout), stdcopy.NewStdWriter(w, stdcopy.Stderr)
	for _, l := range lines {
		dst := stdout
		switch {
		case tty:
			dst = w
		case l.stderr:
			dst = stderr
		}
		msg := l.ts.UTC().Format(dockerTimeFormat) + " "
		if l.details != "" {
			msg += l.details + " "
		}
		if _, err := io.WriteString(dst, msg+l.text); err != nil {
			return err
		}
	}
	return nil
}
