// Package controller keeps Docker matching the desired state in the store.
// Store changes, Docker events and a periodic resync only enqueue function
// keys; workers reconcile one key at a time, level-triggered and idempotent,
// and publish what they observe: ready endpoints for the proxy and a status
// for the API and /debug/reconcile.
package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Config tunes the controller. Zero values get defaults from withDefaults.
type Config struct {
	// Instance names this daemon's containers and networks (label and name
	// prefix), so several daemons can share one Docker host.
	Instance string
	// NetworkPrefix prefixes per-function network names.
	NetworkPrefix string
	// Self is the full ID of the daemon's own container when it runs in
	// one ("" otherwise): it then joins every function network, because
	// replicas are reached by their address on those networks.
	Self    string
	Workers int
	Resync  time.Duration
	// DrainGrace is how long a replica keeps serving in-flight requests after
	// it left the endpoint set, before it is stopped.
	DrainGrace time.Duration
	// DrainTimeout bounds how much longer a drained replica is kept while
	// the proxy still serves calls on it (see SetInFlight); a call cannot
	// outlive the exec timeout anyway.
	DrainTimeout time.Duration
	// StopTimeout is how long a stopping replica gets before SIGKILL. Short,
	// because OpenFaaS watchdogs ignore SIGTERM for about ten seconds.
	StopTimeout time.Duration
	// ProbeTimeout bounds one readiness probe; ProbeInterval is how often a
	// function that is not ready yet is looked at again.
	ProbeTimeout  time.Duration
	ProbeInterval time.Duration
	// PidsLimit caps processes per container (0 = Docker's default).
	PidsLimit int64
	// CrashBackoff and CrashBackoffMax space out replacements of replicas
	// that keep exiting.
	CrashBackoff    time.Duration
	CrashBackoffMax time.Duration
	// NeighborLimit is the kernel's hard limit of neighbour (ARP) entries
	// in the daemon's network namespace (net.ipv4.neigh.default.gc_thresh3;
	// 0 = unknown). Every replica is reached at its own address on its own
	// bridge, so each takes one entry; a resync warns when they near it.
	NeighborLimit int
	Log           logrus.FieldLogger
}

func (c Config) withDefaults() Config {
	if c.Instance == "" {
		c.Instance = "dockerfaasd"
	}
	if c.NetworkPrefix == "" {
		c.NetworkPrefix = c.Instance
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = proxy.DefaultTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 2 * time.Second
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = time.Second
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 250 * time.Millisecond
	}
	if c.CrashBackoff <= 0 {
		c.CrashBackoff = time.Second
	}
	if c.CrashBackoffMax <= 0 {
		c.CrashBackoffMax = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	return c
}

// Endpoints is where the controller publishes ready replicas; *proxy.Cache
// implements it.
type Endpoints interface {
	Lookup(key string) ([]proxy.Endpoint, bool)
	Set(key string, eps []proxy.Endpoint)
	SetTimeouts(key string, t proxy.Timeouts)
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

// Controller reconciles function keys.
type Controller struct {
	cfg     Config
	store   store.Store
	engine  docker.Engine
	eps     Endpoints
	board   *status.Board
	prober  Prober
	queue   *Queue
	metrics *Metrics
	// inflight, when set, keeps drained replicas until their calls end.
	inflight InFlight

	mu       sync.Mutex
	draining map[string]time.Time // container ID → when it left the endpoint set
	crashes  map[string]*crashState
	networks map[string]string // network name → function key, for network events
	// selfJoined holds the IDs of function networks the daemon's own
	// container has joined (see Config.Self).
	selfJoined map[string]bool
	// seen holds, per function key, the running replicas (ID → name) the
	// last reconcile kept, to tell one removed behind our back (drift.go).
	seen   map[string]map[string]string
	global status.Global
	// nearNeighborLimit is set while the replicas near NeighborLimit, so
	// the warning is logged once per crossing.
	nearNeighborLimit bool
	// touched holds, per key, the value of seq when a Docker event or a
	// reconcile last concerned it; snaps the resync's listings per key,
	// valid while the key stays untouched (see takeSnapshot).
	seq     uint64
	touched map[string]uint64
	snaps   map[string]*snapshot
}

type crashState struct {
	count int
	last  time.Time
	// hash is the spec hash whose replicas exited: the backoff belongs to
	// that spec, and a new spec starts without it (see forgetOldCrashes).
	hash string
}

// New returns a controller; call Run to start it.
func New(cfg Config, st store.Store, engine docker.Engine, eps Endpoints, board *status.Board, prober Prober, m *Metrics) *Controller {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Controller{
		cfg:      cfg,
		store:    st,
		engine:   engine,
		eps:      eps,
		board:    board,
		prober:   prober,
		queue:    NewQueue(500*time.Millisecond, 30*time.Second), // cap at the default resync: a fixed cause heals within ~30 s
		metrics:  m,
		draining: map[string]time.Time{},
		crashes:  map[string]*crashState{},
		networks: map[string]string{},

		selfJoined: map[string]bool{},
		touched:    map[string]uint64{},
		snaps:      map[string]*snapshot{},
		global:     status.Global{EventStream: "starting", DriftCorrections: map[string]int64{}},
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

// Run starts the sources and workers and blocks until ctx is done. Function
// containers are left running on return: a restarted daemon adopts them.
func (c *Controller) Run(ctx context.Context) error {
	c.metrics.queueDepth(c.queue.Len)
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(c.watchStore)
	run(c.watchDocker)
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

func labelKey(labels map[string]string) string {
	ns, name := labels[docker.LabelNamespace], labels[docker.LabelFunction]
	if ns == "" || name == "" {
		return ""
	}
	return store.Key(ns, name)
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

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
	var term terminalError
	switch {
	// Shutting down; the next start looks again.
	case errors.As(err, &term):
		c.queue.Forget(key)
		c.recordResult(key, "terminal", err, time.Time{})
		c.cfg.Log.WithField("key", key).WithError(err).Error("reconcile failed permanently; fix the function spec")
	case err != nil:
		d := c.queue.AddRateLimited(key)
		c.recordResult(key, "error", err, time.Now().Add(d))
		c.cfg.Log.WithField("key", key).WithError(err).WithField("retry_in", d.Round(time.Millisecond)).Warn("reconcile failed")
	case res.RequeueAfter > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, res.RequeueAfter)
		c.recordResult(key, "progressing", nil, time.Now().Add(res.RequeueAfter))
	default:
		c.queue.Forget(key)
		c.recordResult(key, "converged", nil, time.Time{})
	}
}

func result(res Result, err error) string {
	var term terminalError
	switch {
	case errors.As(err, &term):
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
func (c *Controller) recordResult(key, res string, err error, next time.Time) {
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

// drift counts one correction of the given kind, for /debug/reconcile and metrics.
func (c *Controller) drift(kind string) {
	c.mu.Lock()
	c.global.DriftCorrections[kind]++
	c.mu.Unlock()
	c.metrics.drift.WithLabelValues(kind).Inc()
}

// Functions returns the observed status of every function, sorted by key.
func (c *Controller) Functions() []status.Function { return c.board.List() }

// markKnown makes key routable (waiting for replicas) if it is not yet.
func (c *Controller) markKnown(key string) {
	if _, ok := c.eps.Lookup(key); !ok {
		c.eps.Set(key, nil)
	}
}
