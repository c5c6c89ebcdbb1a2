package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Queue is a keyed, de-duplicating work queue in the style of client-go's
// workqueue: a key added many times while waiting is processed once, a key is
// never handed to two workers at once (a key added while it is processed is
// re-queued when Done is called), delayed adds keep the earliest deadline, and
// failures are retried with per-key exponential backoff until Forget.
//
// Keys whose delay ran out (a function waiting for its new replica to pass
// the readiness probe, a retry) wait in a lane of their own, served in turn
// with the lane of fresh keys. In a burst of deploys a single lane put every
// probe behind all pending creations: with 200 functions deployed at once
// the first was routable only after a minute. Alternating bounds the wait of
// either lane by the other's turn, so neither can starve.
type Queue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	order []string // fresh keys
	due   []string // keys whose delay ran out
	// dirty holds the keys waiting or to be re-queued, each with whether it
	// belongs in the due lane.
	dirty      map[string]bool
	turn       bool // the due lane goes next when both have keys (the fresh one was served last)
	processing map[string]struct{}
	timers     map[string]delayed
	backoffs   map[string]*backoff.ExponentialBackOff
	notBefore  map[string]time.Time // end of a key's current failure backoff
	shutdown   bool

	newBackOff func() *backoff.ExponentialBackOff
}

type delayed struct {
	at time.Time
	t  *time.Timer
}

// NewQueue returns a Queue whose per-key backoff starts at base and is capped
// at max. It never gives up (MaxElapsedTime 0): a daemon retries forever.
func NewQueue(base, max time.Duration) *Queue {
	q := &Queue{
		dirty:      map[string]bool{},
		processing: map[string]struct{}{},
		timers:     map[string]delayed{},
		backoffs:   map[string]*backoff.ExponentialBackOff{},
		notBefore:  map[string]time.Time{},
	}
	q.cond = sync.NewCond(&q.mu)
	q.newBackOff = func() *backoff.ExponentialBackOff {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = base
		b.MaxInterval = max
		b.Multiplier = 2
		b.RandomizationFactor = 0.2
		b.MaxElapsedTime = 0
		b.Reset()
		return b
	}
	return q
}

// Add queues key for processing now.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key, false)
}

func (q *Queue) addLocked(key string, due bool) {
	if q.shutdown {
		return
	}
	_, processing := q.processing[key]
	if wasDue, ok := q.dirty[key]; ok {
		if due && !wasDue {
			// Waiting among fresh keys already, typically because the
			// key's own container events nudged it; a due key must not
			// lose its turn to that.
			q.dirty[key] = true
			if !processing {
				q.order = slices.DeleteFunc(q.order, func(k string) bool { return k == key })
				q.pushLocked(key, true)
			}
		}
		return
	}
	q.dirty[key] = due
	if processing {
		return // Done re-queues it
	}
	q.pushLocked(key, due)
}

func (q *Queue) pushLocked(key string, due bool) {
	if due {
		q.due = append(q.due, key)
	} else {
		q.order = append(q.order, key)
	}
	q.cond.Signal()
}

// AddAfter queues key after d. An earlier pending deadline for the key wins.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	at := time.Now().Add(d)
	if old, ok := q.timers[key]; ok {
		if !old.at.After(at) {
			return
		}
		old.t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if cur, ok := q.timers[key]; ok && cur.t == t {
			delete(q.timers, key)
		}
		q.addLocked(key, true)
	})
	q.timers[key] = delayed{at: at, t: t}
}

// AddRateLimited queues key after its next backoff interval and returns it.
func (q *Queue) AddRateLimited(key string) time.Duration {
	q.mu.Lock()
	b, ok := q.backoffs[key]
	if !ok {
		b = q.newBackOff()
		q.backoffs[key] = b
	}
	d := b.NextBackOff()
	q.notBefore[key] = time.Now().Add(d)
	q.mu.Unlock()
	q.AddAfter(key, d)
	return d
}

// Nudge queues key like Add, unless the key is backing off after a failure:
// then it waits for the backoff to end. Hints that something changed in
// Docker use it, because a failing reconcile makes Docker events of its own
// (a container created and destroyed), which must not turn the backoff into
// a tight loop. Changes of desired state use Add: a new spec may be the fix.
func (q *Queue) Nudge(key string) {
	q.mu.Lock()
	until, ok := q.notBefore[key]
	q.mu.Unlock()
	if ok {
		if d := time.Until(until); d > 0 {
			q.AddAfter(key, d)
			return
		}
	}
	q.Add(key)
}

// Forget resets key's backoff after a success.
func (q *Queue) Forget(key string) {
	q.mu.Lock()
	delete(q.backoffs, key)
	delete(q.notBefore, key)
	q.mu.Unlock()
}

// Failures reports whether key is currently backing off.
func (q *Queue) Failures(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.backoffs[key]
	return ok
}

// Get blocks until a key is available and marks it as processing; ok is false
// once the queue is shut down.
func (q *Queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order)+len(q.due) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	if len(q.due) > 0 && (q.turn || len(q.order) == 0) {
		key, q.due = q.due[0], q.due[1:]
		q.turn = false
	} else {
		key, q.order = q.order[0], q.order[1:]
		q.turn = true
	}
	delete(q.dirty, key)
	q.processing[key] = struct{}{}
	return key, true
}

// Done marks key as processed, re-queueing it if it was added meanwhile.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if due, ok := q.dirty[key]; ok && !q.shutdown {
		q.pushLocked(key, due)
	}
}

// Len is the number of keys waiting (not counting delayed or processing ones).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order) + len(q.due)
}

// ShutDown stops the queue: Get returns ok=false and pending timers stop.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, d := range q.timers {
		d.t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}
