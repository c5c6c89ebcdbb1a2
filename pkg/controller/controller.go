// Package controller keeps a runtime matching the desired state in the
// store. Store changes, the runtime's own change stream and a periodic
// resync only enqueue function keys; workers reconcile one key at a time,
// level-triggered and idempotent: they resolve desired state (store and
// secrets into a runtime.Desired), hand it to the runtime, and publish what
// it observed: ready endpoints for the proxy and a status for the API and
// /debug/reconcile. It knows nothing of Docker: pkg/runtime is the seam.
package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Config tunes the controller. Zero values get defaults from withDefaults.
type Config struct {
	Workers int
	Resync  time.Duration
	// ParkFor is how long a function scaled to zero keeps its replicas
	// frozen before they are removed (runtime.Desired.ParkFor).
	ParkFor time.Duration
	Log     logrus.FieldLogger
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	return c
}

// Endpoints is where the controller publishes ready replicas; *proxy.Cache
// implements it.
type Endpoints interface {
	Lookup(key string) ([]faas.Endpoint, bool)
	Set(key string, eps []faas.Endpoint)
	SetTimeouts(key string, t faas.Timeouts)
	Delete(key string)
}

// Result tells the worker what to do after a successful reconcile.
type Result struct {
	// RequeueAfter > 0 asks to look at the key again after that long,
	// because it has not converged yet (a replica starting, one draining).
	RequeueAfter time.Duration
}

// terminalError marks errors that retrying cannot fix (an invalid spec):
// no backoff requeue, the status shows it, a change or resync looks again.
type terminalError struct{ error }

func (t terminalError) Unwrap() error { return t.error }

// Terminal wraps err so the worker does not retry it.
func Terminal(err error) error { return terminalError{err} }

// IsTerminal reports whether err, or an error it wraps, came from Terminal.
func IsTerminal(err error) bool {
	var term terminalError
	return errors.As(err, &term)
}

// Controller reconciles function keys.
type Controller struct {
	cfg     Config
	store   store.Store
	rt      runtime.Runtime
	eps     Endpoints
	board   *status.Board
	queue   *Queue
	metrics *Metrics

	mu     sync.Mutex
	global status.Global
	// synced holds the desired keys a reconcile has read since they were
	// last torn down, with the spec hash last handed to the runtime ("" if
	// none yet): what the runtime still runs of any other key is an orphan.
	synced map[string]string
}

// New returns a controller; call Run to start it.
func New(cfg Config, st store.Store, rt runtime.Runtime, eps Endpoints, board *status.Board, m *Metrics) *Controller {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Controller{
		cfg:     cfg,
		store:   st,
		rt:      rt,
		eps:     eps,
		board:   board,
		queue:   NewQueue(500*time.Millisecond, 30*time.Second), // cap at the default resync: a fixed cause heals within ~30 s
		metrics: m,
		global:  status.Global{EventStream: "starting", DriftCorrections: map[string]int64{}},
		synced:  map[string]string{},
	}
}

// Global returns a copy of the controller-wide state.
func (c *Controller) Global() status.Global {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.global
	g.DriftCorrections = make(map[string]int64, len(c.global.DriftCorrections))
	for k, v := range c.global.DriftCorrections {
		g.DriftCorrections[k] = v
	}
	g.QueueDepth = c.queue.Len()
	return g
}

// Board returns the status board the controller publishes to.
func (c *Controller) Board() *status.Board { return c.board }

// Run starts the sources and workers and blocks until ctx is done. What the
// runtime runs is left running on return: a restarted daemon adopts it.
func (c *Controller) Run(ctx context.Context) error {
	c.metrics.queueDepth(c.queue.Len)
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(c.watchStore)
	run(c.watchRuntime)
	run(c.resyncLoop)
	for i := 0; i < c.cfg.Workers; i++ {
		run(c.worker)
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// Enqueue asks for key to be reconciled.
func (c *Controller) Enqueue(key string) { c.queue.Add(key) }

func (c *Controller) watchStore(ctx context.Context) {
	// A deployed function must be known to the proxy by the time the
	// deploy is answered, or an immediate invoke would get 404 instead of
	// waiting for the first replica. The hook runs in the writer before
	// the reply; marking a deleted key known is harmless, as the teardown
	// this same change enqueues removes it again. Secret keys are no
	// functions.
	w := c.store.Watch(ctx, store.OnCommit(func(k string) {
		if _, _, secret := store.SplitSecretWatchKey(k); !secret {
			c.markKnown(k)
		}
	}))
	for {
		keys, err := w.Next(ctx)
		if err != nil {
			return
		}
		for _, k := range keys {
			// A changed secret changes the spec hash of its users.
			if ns, name, ok := store.SplitSecretWatchKey(k); ok {
				c.enqueueSecretUsers(ctx, ns, name)
				continue
			}
			c.queue.Add(k)
		}
	}
}

// healthyRun is how long a watch must have stayed connected for its backoff
// to start again from the beginning after the next failure.
const healthyRun = time.Minute

// watchRuntime keeps the runtime's change stream open for as long as ctx
// lives, re-listing everything after each subscription (ResyncAll), so no
// change falls between; changes only nudge keys.
func (c *Controller) watchRuntime(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0 // a daemon never gives up on its runtime
	b.Reset()
	subscribed := func(ctx context.Context) error {
		if err := c.ResyncAll(ctx); err != nil {
			return err
		}
		c.setStream("connected", nil)
		return nil
	}
	for ctx.Err() == nil {
		started := time.Now()
		err := c.rt.Watch(ctx, subscribed, c.queue.Nudge)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > healthyRun {
			b.Reset()
		}
		d := b.NextBackOff()
		c.setStream("reconnecting", err)
		c.cfg.Log.WithError(err).WithField("retry_in", d.Round(time.Millisecond)).Warn("runtime event stream lost")
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

func (c *Controller) setStream(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.global.EventStream = state
	if state == "connected" {
		c.global.LastConnect = time.Now()
	}
	if err != nil {
		c.global.LastStreamError = err.Error()
	}
}

func (c *Controller) resyncLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Resync)
	defer t.Stop()
	for {
		// The first pass runs at once, so desired state is acted on even
		// while the event stream cannot connect.
		if err := c.ResyncAll(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Log.WithError(err).Warn("resync failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

// Step processes one queued key the way a worker does (waiting for one if
// the queue is empty) and reports false once the queue is shut down. It is
// for driving the controller by hand, step by step, in tests of runtimes.
func (c *Controller) Step(ctx context.Context) bool { return c.processNext(ctx) }

// QueueLen is how many keys wait to be reconciled.
func (c *Controller) QueueLen() int { return c.queue.Len() }

func (c *Controller) processNext(ctx context.Context) bool {
	key, ok := c.queue.Get()
	if !ok {
		return false
	}
	defer c.queue.Done(key)

	start := time.Now()
	res, err := c.reconcileSafe(ctx, key)
	c.metrics.observe(result(res, err), time.Since(start))
	if ctx.Err() == nil {
		c.processResult(key, res, err)
	}
	return true
}

// processResult applies the Result/error of one reconcile to the queue and
// the status board: errors back off, requeues wait, success forgets.
func (c *Controller) processResult(key string, res Result, err error) {
	switch {
	case IsTerminal(err):
		c.queue.Forget(key)
		c.recordResult(key, faas.Terminal, err, time.Time{})
		c.cfg.Log.WithField("key", key).WithError(err).Error("reconcile failed permanently; fix the function spec")
	case err != nil:
		d := c.queue.AddRateLimited(key)
		c.recordResult(key, faas.Failed, err, time.Now().Add(d))
		c.cfg.Log.WithField("key", key).WithError(err).WithField("retry_in", d.Round(time.Millisecond)).Warn("reconcile failed")
	case res.RequeueAfter > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, res.RequeueAfter)
		c.recordResult(key, faas.Progressing, nil, time.Now().Add(res.RequeueAfter))
	default:
		c.queue.Forget(key)
		c.recordResult(key, faas.Converged, nil, time.Time{})
	}
}

func result(res Result, err error) string {
	switch {
	case IsTerminal(err):
		return "terminal"
	case err != nil:
		return "error"
	case res.RequeueAfter > 0:
		return "requeue"
	default:
		return "success"
	}
}

// reconcileSafe turns a panic in one reconcile into an error for that key,
// instead of taking the daemon down.
func (c *Controller) reconcileSafe(ctx context.Context, key string) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.metrics.panics.Inc()
			c.cfg.Log.WithField("key", key).Errorf("reconcile panic: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("reconcile panic: %v", r)
		}
	}()
	return c.Reconcile(ctx, key)
}

// recordResult stores the outcome on the status board, if the key still has
// a status (a deleted function has none).
func (c *Controller) recordResult(key string, res faas.Outcome, err error, next time.Time) {
	if _, ok := c.board.Get(key); !ok && err == nil {
		return
	}
	c.board.Update(key, func(f *status.Function) {
		f.LastReconcile = time.Now()
		f.LastResult = res
		f.NextRetry = next
		f.LastError = ""
		if err != nil {
			f.LastError = err.Error()
		}
	})
}

// countDrift counts corrections the runtime made, for /debug/reconcile and metrics.
func (c *Controller) countDrift(drift map[string]int) {
	if len(drift) == 0 {
		return
	}
	c.mu.Lock()
	for kind, n := range drift {
		c.global.DriftCorrections[kind] += int64(n)
	}
	c.mu.Unlock()
	for kind, n := range drift {
		c.metrics.drift.WithLabelValues(kind).Add(float64(n))
	}
}

// Functions returns the observed status of every function, sorted by key.
func (c *Controller) Functions() []status.Function { return c.board.List() }

// markKnown makes key routable (waiting for replicas) if it is not yet.
func (c *Controller) markKnown(key string) {
	if _, ok := c.eps.Lookup(key); !ok {
		c.eps.Set(key, nil)
	}
}
