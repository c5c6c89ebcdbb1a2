package controller

import (
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Queue is a keyed, de-duplicating work queue in the style of client-go's
// workqueue: a key added many times while waiting is processed once, a key is
// never handed to two workers at once (a key added while it is processed is
// re-queued when Done is called), delayed adds keep the earliest deadline, and
// failures are retried with per-key exponential backoff until Forget.
type Queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []string
	dirty      map[string]struct{}
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
		dirty:      map[string]struct{}{},
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
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.shutdown {
		return
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	q.dirty[key] = struct{}{}
	if _, ok := q.processing[key]; ok {
		return // Done re-queues it
	}
	q.order = append(q.order, key)
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
		q.addLocked(key)
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
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key, q.order = q.order[0], q.order[1:]
	delete(q.dirty, key)
	q.processing[key] = struct{}{}
	return key, true
}

// Done marks key as processed, re-queueing it if it was added meanwhile.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if _, ok := q.dirty[key]; ok && !q.shutdown {
		q.order = append(q.order, key)
		q.cond.Signal()
	}
}

// Len is the number of keys waiting (not counting delayed or processing ones).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
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
