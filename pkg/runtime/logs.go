package runtime

import (
	"context"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

// What the runtimes' log streams (LogStreamer) share: the same follow,
// since and tail semantics, however each reads its replicas' logs.

// LogStops ends log streams when the daemon shuts down, so that follow
// streams do not hold the HTTP server's graceful shutdown up.
type LogStops struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// NewLogStops returns a LogStops that has not stopped.
func NewLogStops() *LogStops {
	ctx, cancel := context.WithCancel(context.Background())
	return &LogStops{ctx: ctx, cancel: cancel}
}

// Stop ends every stream bound, running or future.
func (s *LogStops) Stop() { s.cancel() }

// Bind returns ctx ended by Stop as well; call release when the stream is
// over.
func (s *LogStops) Bind(ctx context.Context) (bound context.Context, release func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	if s.ctx.Err() != nil {
		cancel() // AfterFunc would, but in a goroutine of its own
	}
	return ctx, func() {
		stop()
		cancel()
	}
}

// LogStreamEnd turns the error of a stream that ended because its context
// did into nil: the consumer went away or the daemon is stopping, nothing
// failed.
func LogStreamEnd(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// LogMark is how far a replica's log has been sent: the newest timestamp
// and how many lines carried exactly that timestamp. Docker's since filter
// is inclusive, so when the log is read again from the mark's time (the
// live part after the history, a follow opened again) those lines come
// again; Seen recognises them.
type LogMark struct {
	ts time.Time
	n  int
	// from and skip are the mark as Replay found it, and how many of its
	// lines stamped exactly from are still to come again.
	from time.Time
	skip int
}

// MarkAt is the mark of a log of which nothing before since is wanted and
// nothing has been sent.
func MarkAt(since time.Time) LogMark { return LogMark{ts: since} }

// Time is the timestamp of the newest line sent (or MarkAt's since).
func (m *LogMark) Time() time.Time { return m.ts }

// Advance records a line stamped ts as sent. A line older than the mark
// (a clock step) leaves it where it is: it is the newest line that a reading
// from the mark's time finds again.
func (m *LogMark) Advance(ts time.Time) {
	switch {
	case ts.Equal(m.ts):
		m.n++
	case ts.After(m.ts):
		m.ts, m.n = ts, 1
	}
}

// Replay starts reading the log again from the mark's time (a since filter
// at Time).
func (m *LogMark) Replay() { m.from, m.skip = m.ts, m.n }

// Seen tells whether a line stamped ts, read after Replay, was sent
// already: it is older than the mark was at Replay, or one of the lines
// stamped exactly then. A line not seen is recorded as sent (Advance).
func (m *LogMark) Seen(ts time.Time) bool {
	switch {
	case ts.Before(m.from):
		return true
	case ts.Equal(m.from) && m.skip > 0:
		m.skip--
		return true
	}
	m.Advance(ts)
	return false
}

// LogTail keeps the last Max messages pushed (a request's tail).
type LogTail struct {
	Max   int
	buf   []logs.Message
	start int
}

// Push adds m, dropping the oldest message kept when Max are.
func (r *LogTail) Push(m logs.Message) {
	if len(r.buf) < r.Max {
		r.buf = append(r.buf, m)
		return
	}
	r.buf[r.start] = m
	r.start = (r.start + 1) % r.Max
}

// Lines returns the kept messages, oldest first.
func (r *LogTail) Lines() []logs.Message {
	return append(r.buf[r.start:len(r.buf):len(r.buf)], r.buf[:r.start]...)
}
