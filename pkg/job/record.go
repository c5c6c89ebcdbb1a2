package job

import (
	"context"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/executions"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// maxRecordID is the longest call ID a record can carry (the store's bound
// on IDs); a call with a longer one runs without a record.
const maxRecordID = 256

// record is the execution record of one run. Like an async attempt's, it
// is written as running only once the run has lasted runningRecordAfter,
// so a short job costs one write, its final one, and that write happens
// after the answer went out.
type record struct {
	e       store.Execution // never changes after start
	running *executions.DelayedRunning
}

// startRecord begins the record of call c, which starts running now.
func (e *Executor) startRecord(c proxy.JobCall) *record {
	if e.recs == nil || c.CallID == "" || len(c.CallID) > maxRecordID {
		return nil
	}
	rec := &record{
		e: store.Execution{
			ID: c.CallID, Kind: store.ExecutionJob, Function: c.Key,
			State: store.ExecutionRunning, StartedAt: time.Now(),
		},
		running: executions.NewDelayedRunning(runningRecordAfter, e.put),
	}
	e.writes.Add(1) // done once the final record is written
	rec.running.Start(rec.e)
	return rec
}

// finishRecord writes the final record in the background.
func (e *Executor) finishRecord(rec *record, a answer, res runtime.RunResult, code int, bytesIn int64, out *output, stderr *headTail) {
	if rec == nil {
		return
	}
	final := rec.e // StartedAt and the rest never change after start
	final.State = a.state
	final.FinishedAt = time.Now()
	final.StatusCode = code
	final.OOMKilled = res.OOMKilled
	final.Error = a.err
	if a.exited {
		exit := res.ExitCode
		final.ExitCode = &exit
	}
	final.BytesIn, final.BytesOut = bytesIn, out.n
	final.StdoutHead, final.StdoutTail = out.capture.Head(), out.capture.Tail()
	final.StderrHead, final.StderrTail = stderr.Head(), stderr.Tail()
	go func() {
		defer e.writes.Done()
		rec.running.Finish(final)
	}()
}

func (e *Executor) put(rec store.Execution) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.recs.PutExecution(ctx, rec); err != nil {
		e.cfg.Log.WithError(err).WithField("execution", rec.ID).Warn("job: cannot write its execution record")
	}
}
