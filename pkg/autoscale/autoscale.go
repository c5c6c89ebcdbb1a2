// Package autoscale sizes functions by their load, inside the daemon: no
// Prometheus, no AlertManager. Every Interval it reads each stored
// function's scaling policy (pkg/scaling, from its OpenFaaS labels), samples
// the load the proxy publishes (pkg/load) and, for the cpu type, the
// runtime's usage, and writes the replicas the policy asks for into the
// store, exactly as the API does, with the writer recorded
// (store.ScaledByAutoscaler, ScaledByIdler, ScaledByWake). The controller
// then reconciles the new count like any other change: the autoscaler never
// touches a runtime.
//
// Three jobs share one loop and one view of each function's load:
//
//   - scaling by load, for functions whose labels ask for it (a max, type
//     or target label; scaling.Policy.Static): OpenFaaS Pro's formula for
//     the rps, capacity and cpu types (up at once, down only after the down
//     window), and OpenFaaS CE's alert rule for functions with a max label
//     but neither a type nor a target, so stacks written for CE (and the
//     certifier) behave as they do there;
//   - the idler: a function that opted in with com.openfaas.scale.zero and
//     is not pinned by min = max or factor 0 (scaling.Policy.Idles) goes to
//     zero replicas after zero-duration without calls;
//   - waking: the proxy calls Wake when a call finds a function with no
//     ready replica, and a function at zero is scaled back to its minimum.
//
// What it decided and why is published per function on a
// status.ScalingBoard, for /debug/reconcile.
package autoscale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/load"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Store is what the autoscaler needs of desired state; store.Store
// implements it. It is declared here, narrow, so tests can count writes.
type Store interface {
	List(ctx context.Context, namespace string) ([]store.Function, error)
	Get(ctx context.Context, key string) (store.Function, error)
	ScaleBy(ctx context.Context, key string, replicas uint64, by string) (store.Function, error)
}

// ReadyCounter reports how many replicas of a function are ready now, as
// the controller last observed them. It only feeds the per-replica figures
// of a decision's reason: the formula itself needs the total load only.
type ReadyCounter interface {
	Ready(key string) uint64
}

// ReadyFunc adapts a function to ReadyCounter.
type ReadyFunc func(key string) uint64

// Ready implements ReadyCounter.
func (f ReadyFunc) Ready(key string) uint64 { return f(key) }

// BoardReady reads ready replicas from the controller's status board.
func BoardReady(b *status.Board) ReadyFunc {
	return func(key string) uint64 {
		f, _ := b.Get(key)
		return f.ReadyReplicas
	}
}

// Waker is what the proxy calls when a call finds a known function with no
// ready replica. The proxy declares the same interface on its side
// (`Wake(key string)`, with key "namespace/name"); *Autoscaler implements
// it. Wake must not block the call: it only starts the wake-up.
type Waker interface {
	Wake(key string)
}

var _ Waker = (*Autoscaler)(nil)

// Config tunes the autoscaler. Zero values get the defaults named on each
// field.
type Config struct {
	// Interval is how often load is sampled and decisions are made (1s).
	Interval time.Duration
	// Defaults are what missing scaling labels mean (scaling.DefaultDefaults).
	// Pass the same Defaults the API validates with, so both read one policy.
	Defaults scaling.Defaults
	// LegacyRPS is the threshold of OpenFaaS CE's alert rule (5 requests
	// per second): a legacy function steps up while it gets more.
	LegacyRPS float64
	// LegacyWindow is the rate window of that rule (10s: rate(...[10s])).
	LegacyWindow time.Duration
	// LegacyFor is how long the rate must stay above LegacyRPS before the
	// first step (5s, the rule's `for: 5s`).
	LegacyFor time.Duration
	// LegacyRepeat is how often a still-firing alert steps again (10s).
	LegacyRepeat time.Duration
	// RPSWindow is the window requests per second are measured over for the
	// rps type (10s).
	RPSWindow time.Duration
	// CapacityWindow is the window the capacity type takes the most calls
	// in flight over (45s, as OpenFaaS Pro's max_over_time(...[45s])).
	CapacityWindow time.Duration
	// WriteTimeout bounds each store write, above all a wake's, which runs
	// detached from any request (10s).
	WriteTimeout time.Duration
	Log          logrus.FieldLogger
	// Registerer receives the autoscaler's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now); tests drive a fake one.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Second)
	def(&c.LegacyWindow, 10*time.Second)
	def(&c.LegacyFor, 5*time.Second)
	def(&c.LegacyRepeat, 10*time.Second)
	def(&c.RPSWindow, 10*time.Second)
	def(&c.CapacityWindow, 45*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	if c.Defaults == (scaling.Defaults{}) {
		c.Defaults = scaling.DefaultDefaults
	}
	if c.LegacyRPS <= 0 {
		c.LegacyRPS = 5
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Autoscaler is the loop that scales functions. Create it with New, start
// it with Run; Wake may be called before, during and after Run.
type Autoscaler struct {
	cfg   Config
	store Store
	loads load.Reader
	ready ReadyCounter         // nil: unknown
	usage runtime.UsageReader  // nil: the runtime measures no usage
	board *status.ScalingBoard // the autoscaler is its only writer
	log   logrus.FieldLogger
	m     *metricsSet

	// life is cancelled when Run returns, so wakes still running then stop.
	life context.Context
	stop context.CancelFunc

	// writeMu serialises the autoscaler's own store writes (decisions of
	// the loop and wakes). Each write re-reads the function under it and
	// gives up if the replicas are not what the decision was based on, so
	// a stale decision (an idler's zero computed just before a wake) can
	// never undo a newer one.
	writeMu sync.Mutex

	mu      sync.Mutex
	fns     map[string]*fnState // by function key; what the loop remembers
	waking  map[string]bool     // keys with a wake running → another was asked meanwhile
	stopped bool                // Run returned: no new wake goroutines
	wakes   sync.WaitGroup
}

// New returns an autoscaler over st (desired state), loads (the proxy's
// load signals), ready (nil: ready replicas unknown), usage (nil when the
// runtime cannot measure usage: cpu-scaled functions are then left alone)
// and board, where it publishes what it decided.
func New(cfg Config, st Store, loads load.Reader, ready ReadyCounter, usage runtime.UsageReader, board *status.ScalingBoard) (*Autoscaler, error) {
	switch {
	case st == nil:
		return nil, errors.New("autoscale: a store is required")
	case loads == nil:
		return nil, errors.New("autoscale: a load reader is required")
	case board == nil:
		return nil, errors.New("autoscale: a scaling board is required")
	}
	cfg = cfg.withDefaults()
	a := &Autoscaler{
		cfg: cfg, store: st, loads: loads, ready: ready, usage: usage, board: board,
		log:    cfg.Log.WithField("component", "autoscaler"),
		fns:    map[string]*fnState{},
		waking: map[string]bool{},
	}
	a.life, a.stop = context.WithCancel(context.Background())
	m, err := newMetrics(cfg.Registerer, a)
	if err != nil {
		return nil, fmt.Errorf("autoscale: register metrics: %w", err)
	}
	a.m = m
	return a, nil
}

// Run makes decisions every Interval until ctx is done, then waits for the
// wakes still running (cancelled with it) and returns nil. The first pass
// runs at once, so idle timers of functions never called start when the
// daemon does. Call Run once.
func (a *Autoscaler) Run(ctx context.Context) error {
	defer a.shutdown()
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		a.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *Autoscaler) shutdown() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.stop()
	a.wakes.Wait()
}

// tick is one pass over every stored function.
func (a *Autoscaler) tick(ctx context.Context) {
	fns, err := a.store.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			a.log.WithError(err).Warn("autoscaler: list functions")
		}
		return
	}
	now := a.cfg.Now()
	seen := make(map[string]bool, len(fns))
	for _, f := range fns {
		if ctx.Err() != nil {
			return
		}
		seen[f.Key()] = true
		if w, ok := a.evaluate(ctx, f, now); ok {
			a.apply(ctx, w)
		}
	}
	a.mu.Lock()
	for key := range a.fns {
		if !seen[key] {
			delete(a.fns, key)
			a.board.Delete(key)
		}
	}
	a.mu.Unlock()
}
