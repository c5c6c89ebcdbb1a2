// Package async runs async invocations: calls accepted on
// /async-function/, kept in the store until they are final, invoked through
// the same handler as /function/, retried, and reported to a callback URL.
// The store is the queue; what this package keeps in memory (who is queued,
// waiting to retry or running) is rebuilt from it on start, so a crash at
// any moment loses no accepted call.
package async

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Errors the API maps to statuses.
var (
	// ErrFinished: the call is final and can no longer be cancelled (409).
	ErrFinished = errors.New("call already finished")
	// ErrNotRunning: the service is not running (yet), e.g. during shutdown.
	ErrNotRunning = errors.New("async service not running")
)

// Store is what the service needs of the store.
type Store interface {
	store.Calls
	// Executions receives the record of every attempt (execution.go).
	store.Executions
	Get(ctx context.Context, key string) (store.Function, error)
	Watch(ctx context.Context, opts ...store.WatchOption) *store.Watcher
}

// Config tunes a Service; zero fields take the defaults named.
type Config struct {
	// Defaults is the policy of a function without async annotations
	// (DefaultPolicy).
	Defaults Policy
	// MaxResultBytes bounds the response kept for a callback (1 MiB); a
	// longer one is cut and the callback says so in X-Result-Truncated.
	MaxResultBytes int64
	// CallbackAttempts is how often a callback is tried (5).
	CallbackAttempts int
	// CallbackTimeout bounds one callback request (30s).
	CallbackTimeout time.Duration
	// Guard restricts callback hosts (the zero Guard allows all).
	Guard Guard
	// RecordsMax and RecordsMaxAge bound the records of finished calls
	// (10,000 and 7 days).
	RecordsMax    int
	RecordsMaxAge time.Duration
	// PruneEvery is how often old records are pruned (1m).
	PruneEvery time.Duration
	// StopGrace is how long attempts and callbacks under way may finish
	// when Run stops (10s); what is still running then is abandoned, and
	// runs again after the next start.
	StopGrace time.Duration
	// UserAgent is sent with callbacks.
	UserAgent string
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Log receives one entry per failure; nil is logrus' standard logger.
	Log logrus.FieldLogger
}

func (c *Config) fill() {
	if c.Defaults.MaxInflight == 0 { // unset: Valid refuses 0
		c.Defaults = DefaultPolicy
	}
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = 1 << 20
	}
	if c.CallbackAttempts <= 0 {
		c.CallbackAttempts = 5
	}
	if c.CallbackTimeout <= 0 {
		c.CallbackTimeout = 30 * time.Second
	}
	if c.RecordsMax <= 0 {
		c.RecordsMax = 10000
	}
	if c.RecordsMaxAge <= 0 {
		c.RecordsMaxAge = 7 * 24 * time.Hour
	}
	if c.PruneEvery <= 0 {
		c.PruneEvery = time.Minute
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "dockerfaasd-queue-worker"
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

// Service accepts, runs and reports async calls. Accept, Cancel, Get and
// List may be called before Run; calls accepted then are run once Run has
// reloaded the store.
type Service struct {
	cfg      Config
	st       Store
	invoke   http.Handler
	callback *http.Client
	meters   *meters
	now      func() time.Time
	rnd      func() float64

	mu  sync.Mutex
	ctx context.Context // Run's; nil until Run has reloaded the store
	// work is the context attempts and callbacks run in: it outlives ctx
	// by StopGrace, so that what is under way at shutdown can finish
	// (and not run twice).
	work      context.Context
	abort     context.CancelFunc
	queues    map[string]*fnQueue
	items     map[string]*item // every call queued, waiting to retry or running, by id
	callbacks map[string]*time.Timer
	sending   chan struct{}  // semaphore of callback deliveries
	wg        sync.WaitGroup // attempts and callbacks under way
}

// fnQueue is one function's calls: queued ones in order, how many wait to
// retry and how many run. Functions never share slots, which is what
// keeps a slow or failing function from delaying another's calls.
type fnQueue struct {
	key     string
	policy  Policy
	ready   []*item
	waiting int // retrying, timer set
	running int
}

// item is a call the service holds in memory.
type item struct {
	call    store.Call
	running bool
	cancel  context.CancelFunc // of the running attempt
	timer   *time.Timer        // of a retry wait
}

// New returns a Service over st that invokes calls through invoke (the
// /function/ handler).
func New(cfg Config, st Store, invoke http.Handler) (*Service, error) {
	cfg.fill()
	if err := cfg.Defaults.Valid(); err != nil {
		return nil, fmt.Errorf("async defaults: %w", err)
	}
	s := &Service{
		cfg:       cfg,
		st:        st,
		invoke:    invoke,
		callback:  newCallbackClient(cfg.Guard, cfg.CallbackTimeout),
		now:       time.Now,
		rnd:       jitter,
		queues:    make(map[string]*fnQueue),
		items:     make(map[string]*item),
		callbacks: make(map[string]*time.Timer),
		sending:   make(chan struct{}, maxCallbacks),
	}
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.meters = m
	return s, nil
}

// Request is a call as the API accepted it.
type Request struct {
	// CallID is the caller's X-Call-Id, or "" for a new one.
	CallID string
	// Function is the store key "namespace/name".
	Function    string
	Method      string
	Path        string // escaped, as sent after /async-function/{name}; "/" when empty
	Query       string
	Header      http.Header
	Body        []byte
	CallbackURL string
}

// Accept stores r durably and queues it. dup is true when the call id was
// already accepted for the same function (nothing new is queued). Errors
// wrap store.ErrNotFound (no such function) or store.ErrConflict (call id
// used for another function).
func (s *Service) Accept(ctx context.Context, r Request) (rec Record, dup bool, err error) {
	id := r.CallID
	if id == "" {
		id = proxy.NewCallID()
	}
	c := store.Call{
		ID: id, Function: r.Function,
		Method: r.Method, Path: r.Path, Query: r.Query, CallbackURL: r.CallbackURL,
		State: store.CallQueued, AcceptedAt: s.now().UTC(),
	}
	stored, dup, err := s.st.AcceptCall(ctx, c, store.CallPayload{Header: r.Header, Body: r.Body})
	if err != nil {
		return Record{}, false, err
	}
	if !dup {
		s.meters.submitted.WithLabelValues(functionName(stored.Function)).Inc()
		s.mu.Lock()
		s.enqueueLocked(stored)
		s.mu.Unlock()
	}
	return s.record(stored), dup, nil
}

// Get returns the record of call id (an error wrapping store.ErrNotFound
// when there is none).
func (s *Service) Get(ctx context.Context, id string) (Record, error) {
	c, err := s.st.GetCall(ctx, id)
	if err != nil {
		return Record{}, err
	}
	return s.record(c), nil
}

// List returns the records f selects, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Record, error) {
	calls, err := s.st.ListCalls(ctx)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	out := make([]Record, 0, min(limit, len(calls)))
	for i := len(calls) - 1; i >= 0 && len(out) < limit; i-- {
		c := calls[i]
		switch {
		case f.Function != "" && c.Function != f.Function:
			continue
		case f.Function == "" && f.Namespace != "" && !strings.HasPrefix(c.Function, f.Namespace+"/"):
			continue
		}
		r := s.record(c)
		if f.State != "" && r.State != f.State {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Cancel cancels call id if it is not final: queued or retrying calls are
// never run again, a running attempt is aborted. It returns the record as
// cancelled, or an error wrapping store.ErrNotFound or ErrFinished.
func (s *Service) Cancel(ctx context.Context, id string) (Record, error) {
	c, err := s.cancel(ctx, id, "cancelled through the API")
	if err != nil {
		return Record{}, err
	}
	return s.record(c), nil
}

// cancel makes call id final as cancelled, with reason, and drops what the
// service holds of it.
func (s *Service) cancel(ctx context.Context, id, reason string) (store.Call, error) {
	now := s.now().UTC()
	c, err := s.st.UpdateCall(ctx, id, func(c *store.Call) (store.PayloadChange, error) {
		if !c.Pending() {
			return store.PayloadChange{}, fmt.Errorf("call %q is %s: %w", id, c.State, ErrFinished)
		}
		c.State, c.LastError, c.FinishedAt = store.CallCancelled, reason, now
		c.NextAttemptAt = time.Time{}
		return store.PayloadChange{Drop: true}, nil
	})
	if err != nil {
		return store.Call{}, err
	}
	s.mu.Lock()
	s.forgetLocked(id)
	s.mu.Unlock()
	s.cfg.Log.WithFields(logrus.Fields{"call_id": id, "function": c.Function, "reason": reason}).Info("async call cancelled")
	return c, nil
}

// record is the Record of c, showing it running when an attempt is.
func (s *Service) record(c store.Call) Record {
	s.mu.Lock()
	it := s.items[c.ID]
	running := it != nil && it.running
	s.mu.Unlock()
	return recordOf(c, running)
}

// ValidCallID reports whether id may be used as a call id: 1 to 128 of
// A-Z a-z 0-9 . _ : - (it names a record and goes into headers and logs).
func ValidCallID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// CheckCallback validates a callback URL for Accept (see Guard.Check).
func (s *Service) CheckCallback(u *url.URL) error { return s.cfg.Guard.Check(u) }

// Run reloads the calls the store holds, runs them and every call accepted
// from then on, and prunes old records, until ctx is done. Attempts under
// way when it stops are abandoned, not failed: they run again on the next
// start.
func (s *Service) Run(ctx context.Context) error {
	w := s.st.Watch(ctx)
	calls, err := s.st.ListCalls(ctx)
	switch {
	case ctx.Err() != nil:
		return nil // stopped before it started
	case err != nil:
		return fmt.Errorf("async: reload calls: %w", err)
	}
	pending, callbacks := 0, 0
	s.mu.Lock()
	s.ctx = ctx
	s.work, s.abort = context.WithCancel(context.WithoutCancel(ctx))
	for _, c := range calls {
		if c.Pending() {
			pending++
			s.enqueueLocked(c)
		}
	}
	for _, q := range s.queues {
		s.pumpLocked(q)
	}
	s.mu.Unlock()
	for _, c := range calls {
		if c.Callback == store.CallbackPending {
			callbacks++
			s.scheduleCallback(c, c.CallbackNextAt.Sub(s.now()))
		}
	}
	if pending+callbacks > 0 {
		s.cfg.Log.WithFields(logrus.Fields{"calls": pending, "callbacks": callbacks}).Info("async: resuming calls and callbacks kept in the state file")
	}
	s.prune(ctx)

	tick := time.NewTicker(s.cfg.PruneEvery)
	defer tick.Stop()
	changed := make(chan []string)
	go func() {
		defer close(changed)
		for {
			keys, err := w.Next(ctx)
			if err != nil {
				return
			}
			select {
			case changed <- keys:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil
		case <-tick.C:
			s.prune(ctx)
		case keys, ok := <-changed:
			if !ok {
				continue
			}
			for _, k := range keys {
				s.functionChanged(ctx, k)
			}
		}
	}
}

// stop lets what is under way finish within StopGrace, then abandons the
// rest: an attempt abandoned is not recorded, so it runs again on the next
// start. Nothing new starts: pumpLocked and scheduleCallback check ctx.
func (s *Service) stop() {
	s.mu.Lock()
	for _, it := range s.items {
		if it.timer != nil {
			it.timer.Stop()
		}
	}
	for _, t := range s.callbacks {
		t.Stop()
	}
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(s.cfg.StopGrace):
		s.cfg.Log.Warn("async: abandoning calls still running at shutdown; they run again on the next start")
	}
	s.abort()
	<-finished
}

// functionChanged applies a change of function key: a deleted function's
// pending calls are cancelled, a changed one's policy is read again.
func (s *Service) functionChanged(ctx context.Context, key string) {
	s.mu.Lock()
	q := s.queues[key]
	s.mu.Unlock()
	if q == nil {
		return
	}
	f, err := s.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		s.cancelFunction(ctx, key, "function deleted")
		return
	}
	if err != nil {
		return
	}
	p := s.policyOf(f)
	s.mu.Lock()
	q.policy = p
	s.pumpLocked(q)
	s.mu.Unlock()
}

// cancelFunction cancels every pending call of function key.
func (s *Service) cancelFunction(ctx context.Context, key, reason string) {
	s.mu.Lock()
	var ids []string
	for id, it := range s.items {
		if it.call.Function == key {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { // concurrent, so that the writes share commits
			defer wg.Done()
			if _, err := s.cancel(ctx, id, reason); err != nil && !errors.Is(err, ErrFinished) && !errors.Is(err, store.ErrNotFound) {
				s.cfg.Log.WithError(err).WithField("call_id", id).Warn("async: cannot cancel a call of a deleted function")
			}
		}()
	}
	wg.Wait()
}

// policyOf is f's async policy; annotations the API refused cannot be
// stored, so an error here falls back to the defaults.
func (s *Service) policyOf(f store.Function) Policy {
	var ann map[string]string
	if f.Spec.Annotations != nil {
		ann = *f.Spec.Annotations
	}
	p, _ := ParsePolicy(ann, s.cfg.Defaults)
	return p
}

// queueLocked returns function key's queue, creating it.
func (s *Service) queueLocked(key string) *fnQueue {
	q := s.queues[key]
	if q == nil {
		q = &fnQueue{key: key, policy: s.cfg.Defaults}
		// A read of the store under s.mu: quick, and the store never
		// calls back into the service.
		if f, err := s.st.Get(context.Background(), key); err == nil {
			q.policy = s.policyOf(f)
		}
		s.queues[key] = q
	}
	return q
}

// enqueueLocked holds c in memory, queued or (retrying, not due yet)
// waiting; a call held already is left alone.
func (s *Service) enqueueLocked(c store.Call) {
	if _, ok := s.items[c.ID]; ok {
		return
	}
	it := &item{call: c}
	s.items[c.ID] = it
	q := s.queueLocked(c.Function)
	if c.State == store.CallRetrying {
		if wait := c.NextAttemptAt.Sub(s.now()); wait > 0 {
			s.waitLocked(q, it, wait)
			return
		}
	}
	q.ready = append(q.ready, it)
	s.pumpLocked(q)
}

// waitLocked makes it wait d before it is queued again.
func (s *Service) waitLocked(q *fnQueue, it *item, d time.Duration) {
	q.waiting++
	it.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.items[it.call.ID] != it || it.timer == nil {
			return // cancelled meanwhile
		}
		it.timer = nil
		q.waiting--
		q.ready = append(q.ready, it)
		s.pumpLocked(q)
	})
}

// pumpLocked starts queued calls of q while it has free slots. Nothing
// starts before Run has reloaded the store, so that a call accepted before
// is not run by both.
func (s *Service) pumpLocked(q *fnQueue) {
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	for q.running < q.policy.MaxInflight && len(q.ready) > 0 {
		it := q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		ctx, cancel := context.WithCancel(s.work)
		it.running, it.cancel = true, cancel
		q.running++
		s.wg.Add(1)
		go s.attempt(ctx, q, it)
	}
}

// forgetLocked drops call id from memory: out of its queue, its retry
// timer stopped, its running attempt aborted.
func (s *Service) forgetLocked(id string) {
	it := s.items[id]
	if it == nil {
		return
	}
	delete(s.items, id)
	q := s.queues[it.call.Function]
	switch {
	case it.running:
		it.cancel() // the attempt finds itself forgotten and gives its slot back
	case it.timer != nil:
		it.timer.Stop()
		it.timer = nil
		q.waiting--
	default:
		q.ready = slices.DeleteFunc(q.ready, func(x *item) bool { return x == it })
	}
	s.dropIdleLocked(q)
}

// dropIdleLocked forgets an empty queue, so that queues are bounded by the
// functions with calls, not every function ever called.
func (s *Service) dropIdleLocked(q *fnQueue) {
	if q.running == 0 && q.waiting == 0 && len(q.ready) == 0 {
		delete(s.queues, q.key)
	}
}

// Depth is one function's async queue, for /debug/reconcile.
type Depth struct {
	Function    string `json:"function"` // "namespace/name"
	Queued      int    `json:"queued"`
	Retrying    int    `json:"retrying"`
	Running     int    `json:"running"`
	MaxInflight int    `json:"maxInflight"`
}

// Depths returns every function with calls, sorted by key.
func (s *Service) Depths() []Depth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Depth, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, Depth{Function: q.key, Queued: len(q.ready), Retrying: q.waiting, Running: q.running, MaxInflight: q.policy.MaxInflight})
	}
	slices.SortFunc(out, func(a, b Depth) int {
		switch {
		case a.Function < b.Function:
			return -1
		case a.Function > b.Function:
			return 1
		}
		return 0
	})
	return out
}
