// Package swarm runs functions on a Docker Swarm: each function is one
// replicated service with its own attachable overlay network, its secrets
// are swarm secrets, and the daemon (on a manager) reaches every task at
// its own address on that network. It implements runtime.Runtime beside
// the one-host Docker runtime, for the same controller.
//
// What swarm decides and what the daemon decides:
//   - Swarm places tasks (constraints), restarts them (condition any, no
//     attempt limit), reschedules them when a node is drained or lost, and
//     rolls a changed spec one task at a time, the new one started first.
//   - The daemon decides readiness (its own probe; swarm healthchecks are
//     off) and routes only to ready tasks by their address, never a VIP.
//
// Draining. Swarm, not the daemon, chooses which task a scale down or a
// roll stops, and the API cannot stop one chosen task. So a task leaves the
// endpoints as soon as swarm marks it for shutdown (a Sync that lowers the
// replicas waits, up to Config.SettleTimeout, for swarm to choose, so the
// endpoints it returns no longer hold the chosen tasks), and what it still
// serves finishes within the task's stop grace period: the OpenFaaS
// watchdog stops accepting and finishes its calls on SIGTERM, and swarm
// kills only after Config.StopGracePeriod. A drain that takes a task out of
// the endpoints before swarm signals it needs swarm to stop tasks the
// daemon chooses; see the report of issue 12 for the options.
//
// Parking (runtime.Desired.ParkFor): swarm cannot freeze tasks, so a
// function scaled to zero is scaled to zero at once.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// Config tunes the runtime. Zero values get defaults (withDefaults; those
// of the settings every runtime has: runtime.CommonConfig).
type Config struct {
	// Instance labels and names this daemon's services, networks and
	// secrets, so several daemons can share one swarm.
	Instance string
	// NetworkPrefix prefixes per-function network names.
	NetworkPrefix string
	// Self is the full ID of the daemon's own container on this manager
	// (run as a container or as a service task; "" when not in one): it
	// joins every function network, because tasks are reached by their
	// address on those networks.
	Self string
	// EncryptedNetworks creates function networks with IPsec encryption
	// (the kernel needs ESP).
	EncryptedNetworks bool
	// PidsLimit caps processes per task (0 = none).
	PidsLimit int64
	// StopGracePeriod is how long a task swarm stops gets between SIGTERM
	// and SIGKILL: its calls finish in that time (see the package doc).
	StopGracePeriod time.Duration
	// RestartDelay is swarm's wait before it replaces a task that exited.
	RestartDelay time.Duration
	// DrainTimeout bounds how long a call may still run on a task leaving
	// the endpoints (the exec timeout); StopGracePeriod defaults from it.
	DrainTimeout time.Duration
	// SettleTimeout bounds how long a Sync that lowered the replicas waits
	// for swarm to choose the tasks it stops.
	SettleTimeout time.Duration
	// ProbeTimeout bounds one readiness probe; ProbeInterval is how often a
	// function that is not ready yet is looked at again.
	ProbeTimeout  time.Duration
	ProbeInterval time.Duration
	// MaxRequeue caps the wait of a function that swarm cannot run
	// (missing image, crash loop).
	MaxRequeue time.Duration
	// Prober decides readiness (default: the watchdog's /_/health).
	Prober runtime.Prober
	// Load tells how many calls a task is serving (keyed by task ID, as
	// Endpoint.Replica); nil when unknown.
	Load runtime.LoadReader
	// Registerer receives the runtime's metrics (nil = not registered).
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
	// LogPoll is how often a log follow stream looks whether the
	// function's service was removed or created again.
	LogPoll time.Duration
}

func (c Config) withDefaults() Config {
	runtime.CommonConfig{
		Instance: &c.Instance, NetworkPrefix: &c.NetworkPrefix,
		DrainTimeout: &c.DrainTimeout, ProbeTimeout: &c.ProbeTimeout, ProbeInterval: &c.ProbeInterval,
		MaxRequeue: &c.MaxRequeue, LogPoll: &c.LogPoll, Prober: &c.Prober, Log: &c.Log,
	}.SetDefaults()
	if c.StopGracePeriod <= 0 {
		c.StopGracePeriod = c.DrainTimeout + 2*time.Second
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = 5 * time.Second
	}
	if c.SettleTimeout <= 0 {
		c.SettleTimeout = 2 * time.Second
	}
	return c
}

// Runtime is the swarm runtime.
type Runtime struct {
	cfg     Config
	spec    specConfig
	eng     engine.SwarmEngine
	metrics *metrics
	// logStops ends the log streams on shutdown (StopLogs).
	logStops *runtime.LogStops
	// now is the clock log streams start following by (a test's own).
	now func() time.Time

	mu sync.Mutex
	// last holds, per key, how its last Sync ended (for drift and List).
	last map[string]lastSync
	// names maps service and network names to their key, for events.
	names map[string]string
	// self holds the function networks the daemon's own container has
	// joined (see Config.Self).
	self engine.SelfNetworks
	// nodes maps node IDs to hostnames, for /debug/reconcile.
	nodes map[string]string
	// placed maps a node ID to the keys with tasks on it and how many, for
	// node events and /debug/reconcile.
	placed map[string]map[string]int
	// nnpWarned: the engine was seen dropping no-new-privileges from a
	// service spec, and that was logged (once: it is the engine's
	// version, not the function, so every service is the same).
	nnpWarned atomic.Bool
}

// lastSync is how the last Sync of a key ended.
type lastSync struct {
	generation int64
	hash       string
	converged  bool
	// service and version are the service as the Sync left it: another
	// version means someone (or swarm) changed it since.
	service string
	version uint64
	network string
	// endpoints are the addresses published, by task ID.
	endpoints map[string]string
	// unmounted are function secrets the service stopped mounting whose
	// swarm versions are not pruned yet (see unmountedSecrets).
	unmounted map[string]bool
	// extraSince is when Syncs began to see swarm want more slots running
	// than the service's replicas (zero while it does not; see
	// retryScaleDown).
	extraSince time.Time
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a swarm runtime over eng, which must talk to a swarm
// manager (see CheckManager).
func New(cfg Config, eng engine.SwarmEngine) *Runtime {
	cfg = cfg.withDefaults()
	return &Runtime{
		cfg: cfg,
		spec: specConfig{
			Instance: cfg.Instance, NetworkPrefix: cfg.NetworkPrefix, PidsLimit: cfg.PidsLimit,
			StopGracePeriod: cfg.StopGracePeriod, RestartDelay: cfg.RestartDelay,
		},
		eng:      eng,
		metrics:  newMetrics(cfg.Registerer),
		logStops: runtime.NewLogStops(),
		now:      time.Now,
		last:     map[string]lastSync{},
		names:    map[string]string{},
		nodes:    map[string]string{},
		placed:   map[string]map[string]int{},
	}
}

// CheckManager tells, with a message a person can act on, why eng cannot
// run the swarm runtime: it is not in a swarm, or it is a worker.
func CheckManager(ctx context.Context, eng engine.SwarmEngine) error {
	info, err := eng.SwarmInfo(ctx)
	if err != nil {
		return fmt.Errorf("ask the Docker engine about its swarm: %w", err)
	}
	switch {
	case info.LocalNodeState != "active":
		return fmt.Errorf("%w: the engine's swarm state is %q; run `docker swarm init` (or join it to a swarm as a manager), or use RUNTIME=docker",
			engine.ErrNotManager, info.LocalNodeState)
	case !info.ControlAvailable:
		return fmt.Errorf("%w: node %s is a swarm worker; point DOCKER_HOST at a manager (or run the daemon as a service constrained to node.role==manager)",
			engine.ErrNotManager, info.NodeID)
	}
	return nil
}

// keyLabels selects everything of one function of this instance.
func (r *Runtime) keyLabels(ns, name string) map[string]string {
	return function.OwnerLabels(r.cfg.Instance, ns, name)
}

// instanceLabels selects everything this instance owns.
func (r *Runtime) instanceLabels() map[string]string {
	return function.OwnerLabels(r.cfg.Instance, "", "")
}

func (r *Runtime) serviceName(ns, name string) string { return objectName(r.cfg.Instance, ns, name) }
func (r *Runtime) networkName(ns, name string) string {
	return objectName(r.cfg.NetworkPrefix, ns, name)
}

func (r *Runtime) rememberName(name, key string) {
	r.mu.Lock()
	r.names[name] = key
	r.mu.Unlock()
}

// ignoreGone treats an object already gone as removed.
func ignoreGone(err error) error {
	if errors.Is(err, engine.ErrNotFound) {
		return nil
	}
	return err
}
