package async

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/executions"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Every attempt of a call leaves an execution record (store.Execution,
// kind async, ID "<call id>.<n>"), listed with the job runs on
// GET /system/executions. Its outcome is written in the same write as the
// call's update, so it costs no commit of its own. An attempt that is
// still running runningRecordAfter after its request was sent is also
// written as running then, in a write of its own: what a kill -9 leaves
// of it, and what the next start marks interrupted (pkg/executions).
// Writing every attempt as running when it starts cost a second commit
// per attempt, waited for by the queue while accepts competed for the
// same commits: the async bench section's queue fell far behind its
// accepts (docs/async.md has the figures). An attempt shorter than
// runningRecordAfter costs no extra write; a longer one pays a grouped
// write that is small next to its own duration. A kill -9 within
// runningRecordAfter of an attempt's start leaves no record of it (the
// call runs again all the same).

// runningRecordAfter is how long an attempt runs before its record is
// written as running.
const runningRecordAfter = executions.DefaultRunningAfter

// maxRecordProbe bounds how many attempt numbers newAttemptRecord tries.
const maxRecordProbe = 100

// attemptRecord is the execution record of one attempt. e is only changed
// by the attempt's goroutine, before the request is sent; running writes
// its copy of e as running, and keeps it from overwriting the outcome.
type attemptRecord struct {
	e       store.Execution
	running *executions.DelayedRunning
}

// newAttemptRecord numbers c's next attempt: n is c.Attempts + 1 unless a
// record of that number exists already, left by an attempt a crash or a
// shutdown interrupted (the call does not count those), and then the
// first number free after it. A few reads, no write.
func (s *Service) newAttemptRecord(ctx context.Context, c store.Call, started time.Time) *attemptRecord {
	n := c.Attempts + 1
	for range maxRecordProbe {
		_, err := s.st.GetExecution(ctx, executionID(c.ID, n))
		if errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
			break
		}
		n++ // taken, or unreadable (the store would not replace it)
	}
	return &attemptRecord{
		e: store.Execution{
			ID: executionID(c.ID, n), Kind: store.ExecutionAsync, Attempt: n,
			Function: c.Function, State: store.ExecutionRunning, StartedAt: started,
		},
		running: executions.NewDelayedRunning(runningRecordAfter, s.putRecord),
	}
}

// executionID is the record ID of attempt n of call id.
func executionID(id string, n int) string { return id + "." + strconv.Itoa(n) }

// sendRecord notes that r's request, of bytesIn bytes, is being sent, and
// has it written as running unless it ends within runningRecordAfter.
func (s *Service) sendRecord(r *attemptRecord, bytesIn int64) {
	r.e.BytesIn = bytesIn
	r.running.Start(r.e)
}

// settle stops r's running write from starting and waits for one under
// way, so that the outcome written next is never overwritten by it. It
// reports whether the request was sent.
func (r *attemptRecord) settle() bool { return r.running.Settle() }

// finishRecord writes e, the final record of r, in a write of its own:
// for outcomes no update of the call carries. An attempt that never sent
// its request has no record.
func (s *Service) finishRecord(r *attemptRecord, e store.Execution) {
	r.running.Finish(e)
}

// putRecord writes e, the record of an attempt, running or final.
func (s *Service) putRecord(e store.Execution) {
	if err := s.st.PutExecution(context.Background(), e); err != nil {
		msg := "async: cannot write the record of an attempt"
		if !e.Final() {
			msg = "async: cannot write the record of a running attempt"
		}
		s.cfg.Log.WithError(err).WithField("execution", e.ID).Warn(msg)
	}
}

// ended is r as final in state, with reason, after d.
func (r *attemptRecord) ended(state, reason string, d time.Duration, now time.Time) store.Execution {
	e := r.e
	e.State, e.Error = state, reason
	e.FinishedAt, e.DurationSeconds = now.UTC(), d.Seconds()
	return e
}

// maxRecordError bounds the proxy's message kept as a record's Error.
const maxRecordError = 256

// outcome is r as final with out: succeeded for an answer below 400 (as
// the call counts it), timeout when the proxy cut the call at its exec
// timeout, failed otherwise; a proxy's own answer (no replica, timeout)
// gives its message as Error.
func (r *attemptRecord) outcome(out outcome, now time.Time) store.Execution {
	e := r.ended(store.ExecutionFailed, out.err, out.duration, now)
	if out.res == nil {
		return e
	}
	code := out.res.Code
	internal := out.res.Header.Get(HeaderInternal) != ""
	e.StatusCode, e.BytesOut = code, out.bytesOut
	switch {
	case internal && code == http.StatusGatewayTimeout:
		e.State = store.ExecutionTimedOut
	case code < 400:
		e.State = store.ExecutionSucceeded
	}
	if internal && e.Error == "" {
		msg := strings.TrimSpace(string(out.res.Body))
		if len(msg) > maxRecordError {
			msg = msg[:maxRecordError]
		}
		e.Error = msg
	}
	return e
}

// stopping reports whether Run is ending: attempts cut short now are
// interrupted, not cancelled.
func (s *Service) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx != nil && s.ctx.Err() != nil
}
