package docker

import (
	"sync"
	"time"
)

// fillPause spaces out the fills of a pool of containers started ahead of
// calls (job mode's, jobwarm.go, and per-request isolation's, isolated.go)
// after failures in a row: a wait doubling from base up to max, and one
// timer that kicks the fills again when it ends. The pool's mutex guards it.
type fillPause struct {
	base, max time.Duration
	fails     int
	until     time.Time
	retry     *time.Timer
}

// fail counts one more failure and returns how long fills now wait.
func (f *fillPause) fail() time.Duration {
	f.fails++
	wait := min(f.base<<min(f.fails-1, 16), f.max)
	f.until = time.Now().Add(wait)
	return wait
}

// reset forgets the failures (a fill succeeded, or the spec changed).
func (f *fillPause) reset() { f.fails, f.until = 0, time.Time{} }

// paused reports whether fills wait now.
func (f *fillPause) paused() bool { return time.Now().Before(f.until) }

// holdLocked reports whether fills wait now; when they do, it arranges
// (once) for kick to run as the wait ends. mu is the pool's mutex, which
// the caller holds; kick runs without it.
func (f *fillPause) holdLocked(mu *sync.Mutex, kick func()) bool {
	wait := time.Until(f.until)
	if wait <= 0 {
		return false
	}
	if f.retry == nil {
		f.retry = time.AfterFunc(wait, func() {
			mu.Lock()
			f.retry = nil
			mu.Unlock()
			kick()
		})
	}
	return true
}

// stop cancels the pending kick (the pool is dropped).
func (f *fillPause) stop() {
	if f.retry != nil {
		f.retry.Stop()
	}
}
