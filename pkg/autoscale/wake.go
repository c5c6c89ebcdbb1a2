package autoscale

import (
	"context"
	"errors"
	"fmt"

	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Wake starts waking the function key ("namespace/name") and returns at
// once. The proxy calls it when a call finds a known function with no
// ready replica; the call then waits for a replica as usual. If the stored
// replicas are 0 (scaled to zero by the idler or by the API), they are set
// to the policy's WakeTo (min, at least 1) with store.ScaledByWake, and the
// function's idle timer restarts, so the idler does not put it straight
// back to zero. A function with replicas that are merely not ready yet
// (starting, rolling) is left as it is.
//
// Wake is safe for many concurrent calls: one wake per key runs at a time,
// and calls that arrive while it runs are folded into one more pass after
// it (which finds the replicas already set and writes nothing), so N
// concurrent calls write the store once. A call that arrives just after a
// wake found replicas > 0 still gets its own look, which matters when the
// function was scaled to zero in between.
func (a *Autoscaler) Wake(key string) {
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	// A call is activity whatever happens next: an idler decision made
	// before it is dropped (see stillIdle).
	a.state(key, now).lastActive = now
	if a.stopped {
		return
	}
	if _, running := a.waking[key]; running {
		a.waking[key] = true
		return
	}
	a.waking[key] = false
	a.wakes.Add(1)
	go a.wakeLoop(key)
}

// wakeLoop runs wake for key until no Wake came in during the last pass.
func (a *Autoscaler) wakeLoop(key string) {
	defer a.wakes.Done()
	for {
		if err := a.wake(key); err != nil && a.life.Err() == nil {
			a.log.WithField("function", key).WithError(err).Warn("autoscaler: wake")
		}
		a.mu.Lock()
		if a.waking[key] {
			a.waking[key] = false
			a.mu.Unlock()
			continue
		}
		delete(a.waking, key)
		a.mu.Unlock()
		return
	}
}

// wake scales key from zero to its WakeTo; anything else is left alone.
func (a *Autoscaler) wake(key string) error {
	ctx, cancel := context.WithTimeout(a.life, a.cfg.WriteTimeout)
	defer cancel()
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	f, err := a.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile: the proxy answers 404 or 503
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if f.Replicas != 0 {
		return nil
	}
	p, err := scaling.Parse(labelsOf(f), a.cfg.Defaults)
	to := p.WakeTo()
	if err != nil {
		// The API refuses bad labels, so these predate a change of the
		// rules; a call still deserves a replica.
		to = 1
	}
	// The idle timer restarts before the write, so a pass that sees the
	// new replicas also sees the fresh timer.
	now := a.cfg.Now()
	a.mu.Lock()
	a.state(key, now).lastActive = now
	a.mu.Unlock()
	if _, err := a.store.ScaleBy(ctx, key, to, store.ScaledByWake); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("scale %s from zero to %d: %w", key, to, err)
	}
	a.decided(write{key: key, from: 0, to: to, by: store.ScaledByWake, direction: DirWake, cause: causeCall,
		reason: fmt.Sprintf("call to a function at zero: woken to %d", to)})
	return nil
}
