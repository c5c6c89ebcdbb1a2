package executions

import (
	"sync"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// DefaultRunningAfter is how long a run lasts before its record is
// written as running. A run still running then leaves a running record,
// what a kill -9 leaves of it and what MarkInterrupted closes at the next
// start; a shorter run costs no write but its final one.
const DefaultRunningAfter = 250 * time.Millisecond

// DelayedRunning writes the running record of one run (a job run or an
// async attempt) only once the run has lasted a delay, and never after
// the run settled, so the final record written then is never overwritten
// by a late running one. Its methods are safe to call from any goroutine.
type DelayedRunning struct {
	after time.Duration
	write func(store.Execution)

	mu      sync.Mutex
	started bool        // Start was called: the run has a record
	settled bool        // the final record is due: no running write starts
	timer   *time.Timer // writes the running record
	// written is closed once the running write returned; nil while none
	// started.
	written chan struct{}
}

// NewDelayedRunning returns a DelayedRunning that writes records with
// write (which logs its own failures) and writes the running record once
// the run has lasted after.
func NewDelayedRunning(after time.Duration, write func(store.Execution)) *DelayedRunning {
	return &DelayedRunning{after: after, write: write}
}

// Start notes that the run started and has running, its running record,
// written unless the run settles within the delay. Only the first Start
// counts; once settled, Start writes nothing.
func (d *DelayedRunning) Start(running store.Execution) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return
	}
	d.started = true
	if d.settled {
		return
	}
	d.timer = time.AfterFunc(d.after, func() { d.writeRunning(running) })
}

// writeRunning writes the running record unless the run settled first.
func (d *DelayedRunning) writeRunning(running store.Execution) {
	d.mu.Lock()
	if d.settled {
		d.mu.Unlock()
		return
	}
	done := make(chan struct{})
	d.written = done
	d.mu.Unlock()
	defer close(done)
	d.write(running)
}

// Settle keeps the running write from starting and waits for one under
// way: a final record written after Settle returns is never overwritten
// by it. It reports whether the run started. Calling it again is harmless.
func (d *DelayedRunning) Settle() (started bool) {
	d.mu.Lock()
	d.settled = true
	if d.timer != nil {
		d.timer.Stop()
	}
	started, written := d.started, d.written
	d.mu.Unlock()
	if written != nil {
		<-written
	}
	return started
}

// Finish settles the run and then writes final, its final record, when
// the run started (a run that never started has no record). It reports
// whether it wrote.
func (d *DelayedRunning) Finish(final store.Execution) bool {
	if !d.Settle() {
		return false
	}
	d.write(final)
	return true
}
