package executions

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// writeLog keeps the states of every record written, in order, as a store
// would see them: the last one is what stays. It fails the test when two
// writes of the same record overlap.
type writeLog struct {
	t        testing.TB
	mu       sync.Mutex
	states   []string
	inflight bool
	pause    time.Duration // how long a write takes
}

func (l *writeLog) write(e store.Execution) {
	l.mu.Lock()
	if l.inflight {
		l.t.Errorf("record %s: a write of state %s overlaps another", e.ID, e.State)
	}
	l.inflight = true
	l.mu.Unlock()
	time.Sleep(l.pause)
	l.mu.Lock()
	l.inflight = false
	l.states = append(l.states, e.State)
	l.mu.Unlock()
}

func (l *writeLog) written() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.states)
}

func runningRecord(id string) store.Execution {
	return store.Execution{ID: id, Kind: store.ExecutionJob, Function: "openfaas-fn/fn", State: store.ExecutionRunning, StartedAt: time.Now()}
}

func finalOf(e store.Execution) store.Execution {
	e.State, e.FinishedAt = store.ExecutionSucceeded, time.Now()
	return e
}

func TestDelayedRunning(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after time.Duration
		run   func(t *testing.T, d *DelayedRunning, l *writeLog) bool // reports what Finish did
		want  []string
	}{
		{
			name: "a short run writes its final record only", after: time.Hour,
			run: func(t *testing.T, d *DelayedRunning, l *writeLog) bool {
				d.Start(runningRecord("short"))
				return d.Finish(finalOf(runningRecord("short")))
			},
			want: []string{store.ExecutionSucceeded},
		},
		{
			name: "a long run is written running, then final", after: time.Millisecond,
			run: func(t *testing.T, d *DelayedRunning, l *writeLog) bool {
				d.Start(runningRecord("long"))
				poll.Until(t, 5*time.Second, "the running record", func() bool { return len(l.written()) == 1 })
				return d.Finish(finalOf(runningRecord("long")))
			},
			want: []string{store.ExecutionRunning, store.ExecutionSucceeded},
		},
		{
			name: "a run that never started has no record", after: time.Millisecond,
			run: func(t *testing.T, d *DelayedRunning, l *writeLog) bool {
				return d.Finish(finalOf(runningRecord("never")))
			},
		},
		{
			name: "a start after settling writes no running record", after: time.Millisecond,
			run: func(t *testing.T, d *DelayedRunning, l *writeLog) bool {
				if d.Settle() {
					t.Error("Settle before Start reports a start")
				}
				d.Start(runningRecord("late"))
				time.Sleep(20 * time.Millisecond) // well past the delay
				return d.Finish(finalOf(runningRecord("late")))
			},
			want: []string{store.ExecutionSucceeded},
		},
		{
			name: "only the first start counts", after: time.Millisecond,
			run: func(t *testing.T, d *DelayedRunning, l *writeLog) bool {
				d.Start(runningRecord("twice"))
				d.Start(runningRecord("twice"))
				poll.Until(t, 5*time.Second, "the running record", func() bool { return len(l.written()) == 1 })
				time.Sleep(20 * time.Millisecond) // a second running write would have come
				return d.Finish(finalOf(runningRecord("twice")))
			},
			want: []string{store.ExecutionRunning, store.ExecutionSucceeded},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &writeLog{t: t}
			d := NewDelayedRunning(tt.after, l.write)
			wrote := tt.run(t, d, l)
			if wrote != (len(tt.want) > 0) {
				t.Errorf("Finish reports writing %v, want %v", wrote, len(tt.want) > 0)
			}
			if got := l.written(); !slices.Equal(got, tt.want) {
				t.Errorf("written %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDelayedRunningNeverOverwritesTheFinalRecord races the running write
// against Finish, with runs ending just before, at and just after the
// delay and writes that take a while: the final record is always the last
// written, no write starts once Finish returned, and the two never
// overlap (writeLog checks that). Run it with -race.
func TestDelayedRunningNeverOverwritesTheFinalRecord(t *testing.T) {
	const (
		runs  = 500
		after = 200 * time.Microsecond
	)
	logs := make([]*writeLog, runs)
	var wg sync.WaitGroup
	for i := range runs {
		l := &writeLog{t: t, pause: rand.N(100 * time.Microsecond)}
		logs[i] = l
		wg.Go(func() {
			d := NewDelayedRunning(after, l.write)
			e := runningRecord("race")
			d.Start(e)
			time.Sleep(rand.N(2 * after))
			d.Finish(finalOf(e))
			if got := l.written(); len(got) == 0 || got[len(got)-1] != store.ExecutionSucceeded {
				t.Errorf("run %d: written %q when Finish returned, want the final record last", i, got)
			}
		})
	}
	wg.Wait()
	time.Sleep(10 * after) // let any timer still pending fire
	for i, l := range logs {
		got := l.written()
		if len(got) == 0 || got[len(got)-1] != store.ExecutionSucceeded || len(got) > 2 {
			t.Errorf("run %d: written %q, want at most one running record, then the final one", i, got)
		}
	}
}
