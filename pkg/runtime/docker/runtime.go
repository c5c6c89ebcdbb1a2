// Package docker runs functions on one Docker Engine: each function gets its
// own bridge network and N replica containers reached at their address on
// it. It implements runtime.Runtime with the optional logs, usage and
// image (load, inspect) features, and keeps what it must remember between
// Syncs itself: replicas draining, replicas parked (paused at zero, see
// runtime.Desired.ParkFor), crash backoff, networks joined, the replicas and
// endpoints each Sync left, and the listings of the last List.
//
// The decisions of a Sync (which containers to remove, which slots to start,
// which replicas to drain and stop, whether it converged) are pure functions
// in plan.go; this file and sync.go only observe Docker and apply them.
package docker

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Config tunes the runtime. Zero values get defaults from withDefaults
// (those of the settings every runtime has: runtime.CommonConfig).
type Config struct {
	// Instance names this daemon's containers and networks (label and name
	// prefix), so several daemons can share one Docker host.
	Instance string
	// NetworkPrefix prefixes per-function network names.
	NetworkPrefix string
	// Self is the full ID of the daemon's own container when it runs in
	// one ("" otherwise): it then joins every function network, because
	// replicas are reached by their address on those networks.
	Self string
	// DrainGrace is how long a replica keeps serving in-flight requests after
	// it left the endpoint set, before it is stopped.
	DrainGrace time.Duration
	// DrainTimeout bounds how much longer a drained replica is kept while
	// the proxy still serves calls on it (see Load); a call cannot outlive
	// the exec timeout anyway.
	DrainTimeout time.Duration
	// StopTimeout is how long a stopping replica gets before SIGKILL. Short,
	// because OpenFaaS watchdogs ignore SIGTERM for about ten seconds.
	StopTimeout time.Duration
	// ProbeTimeout bounds one readiness probe; ProbeInterval is how often a
	// function that is not ready yet is looked at again.
	ProbeTimeout  time.Duration
	ProbeInterval time.Duration
	// MaxRequeue caps how long a function in crash backoff waits for its
	// next look (the controller's resync period).
	MaxRequeue time.Duration
	// PidsLimit caps processes per container (0 = Docker's default).
	PidsLimit int64
	// CrashBackoff and CrashBackoffMax space out replacements of replicas
	// that keep exiting.
	CrashBackoff    time.Duration
	CrashBackoffMax time.Duration
	// NeighborLimit is the kernel's hard limit of neighbour (ARP) entries
	// in the daemon's network namespace (net.ipv4.neigh.default.gc_thresh3;
	// 0 = unknown). Every replica is reached at its own address on its own
	// bridge, so each takes one entry; List warns when they near it.
	NeighborLimit int
	// Prober decides readiness (default: the watchdog's /_/health).
	Prober runtime.Prober
	// Load tells how many calls a replica is serving, so drained replicas
	// are kept until their calls end; nil means DrainGrace alone.
	Load runtime.LoadReader
	// JobWarm is how many containers each job function keeps started
	// ahead of its calls, unless its io.dockerfaas.job.warm annotation
	// says otherwise (0: none).
	JobWarm int
	// JobInitBinary is the path of the daemon's own (statically linked)
	// binary, which pre-started job containers run first (pkg/jobinit);
	// "" turns pre-starting off.
	JobInitBinary string
	// PoolSize is how many ready containers each function with
	// per-request isolation keeps, unless its io.dockerfaas.pool.size
	// annotation says otherwise.
	PoolSize int
	// HandoffDir is where the control sockets of socket-protocol
	// containers are made ("" turns the socket protocol off); the engine
	// sees it as HandoffHostDir when that is set (the daemon runs in a
	// container), else as HandoffDir itself.
	HandoffDir     string
	HandoffHostDir string
	// KernelLog is the kernel's log device (DefaultKernelLog), read for
	// the OOM kills of job containers that Docker may not report ("":
	// Docker's word alone).
	KernelLog string
	// Registerer receives the runtime's metrics (nil = not registered).
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
	// LogPoll is how often a log follow stream looks for new replicas.
	LogPoll time.Duration
}

func (c Config) withDefaults() Config {
	runtime.CommonConfig{
		Instance: &c.Instance, NetworkPrefix: &c.NetworkPrefix,
		DrainTimeout: &c.DrainTimeout, ProbeTimeout: &c.ProbeTimeout, ProbeInterval: &c.ProbeInterval,
		MaxRequeue: &c.MaxRequeue, LogPoll: &c.LogPoll, Prober: &c.Prober, Log: &c.Log,
	}.SetDefaults()
	if c.DrainGrace <= 0 {
		c.DrainGrace = 2 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 2 * time.Second
	}
	if c.CrashBackoff <= 0 {
		c.CrashBackoff = time.Second
	}
	if c.CrashBackoffMax <= 0 {
		c.CrashBackoffMax = 5 * time.Minute
	}
	return c
}

// Runtime is the Docker runtime.
type Runtime struct {
	cfg     Config
	eng     engine.Engine
	metrics *metrics
	logs    *Logs
	usage   *Usage
	// jobs runs job-mode functions (job.go).
	jobs *jobState
	// iso keeps the pools of functions with per-request isolation
	// (isolated.go).
	iso *isoState
	// images loads and inspects images; nil when the engine cannot.
	images *Images
	// host is the engine's host name, for the replicas' status.
	host hostName

	mu       sync.Mutex
	draining map[string]time.Time // container ID → when it left the endpoint set
	// parked holds the replicas this runtime paused (or first saw paused),
	// by container ID: the retention of a parked replica runs from then,
	// and a paused replica with no record that the last Sync left running
	// was paused by someone else (see syncParked).
	parked   map[string]parkRecord
	crashes  map[string]*crashState
	networks map[string]string // network name → function key, for network events
	// leaked holds the networks of deleted functions Docker will not
	// remove for a miscounted endpoint (engine.ErrNetworkLeaked), by ID
	// → name: each is warned about once and tried again at every resync.
	leaked map[string]string
	// self holds the function networks the daemon's own container has
	// joined (see Config.Self).
	self engine.SelfNetworks
	// seen holds, per function key, the running replicas (ID → name) the
	// last Sync kept, to tell one removed behind our back (drift.go).
	seen map[string]map[string]string
	// last holds, per key, how its last Sync ended (for steady and List).
	last map[string]lastSync
	// nearNeighborLimit is set while the replicas near NeighborLimit, so
	// the warning is logged once per crossing.
	nearNeighborLimit bool
	// touched holds, per key, the value of seq when a Docker event or a
	// Sync last concerned it; listing is what the last List found, valid
	// per key while the key stays untouched (see takeSnapshot).
	seq     uint64
	touched map[string]uint64
	listing *listing
	// warming holds, per key whose Sync started replicas, how many quick
	// looks it had while they were not ready yet (see warmupWait).
	warming map[string]int
}

// lastSync is how the last Sync of a key ended.
type lastSync struct {
	generation int64
	hash       string
	// converged: exactly as desired, all ready, nothing left to do.
	converged bool
	// endpoints are the addresses published, by container ID.
	endpoints map[string]string
	// parked are the replicas left parked, by container ID, with the end of
	// their retention: List finds a function unchanged while they stay
	// paused and within it.
	parked map[string]time.Time
}

// parkRecord is one parked replica: its function and when it was parked.
type parkRecord struct {
	key   string
	since time.Time
}

type crashState struct {
	count int
	last  time.Time
	// hash is the spec hash whose replicas exited: the backoff belongs to
	// that spec, and a new spec starts without it (see forgetOldCrashes).
	hash string
}

var (
	_ runtime.Runtime     = (*Runtime)(nil)
	_ runtime.LogStreamer = (*Runtime)(nil)
	_ runtime.UsageReader = (*Runtime)(nil)
)

// New returns a Docker runtime over eng.
func New(cfg Config, eng engine.Engine) *Runtime {
	cfg = cfg.withDefaults()
	r := &Runtime{
		cfg:      cfg,
		eng:      eng,
		metrics:  newMetrics(cfg.Registerer),
		draining: map[string]time.Time{},
		parked:   map[string]parkRecord{},
		crashes:  map[string]*crashState{},
		networks: map[string]string{},
		leaked:   map[string]string{},
		seen:     map[string]map[string]string{},
		last:     map[string]lastSync{},
		touched:  map[string]uint64{},
		warming:  map[string]int{},
	}
	r.jobs = newJobState(eng)
	r.iso = newIsoState()
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(poolCollector{stats: r.PoolStats})
	}
	if err := clearHandoffDir(cfg.HandoffDir); err != nil {
		cfg.Log.WithError(err).Warn("per-request isolation: the socket protocol is off")
		r.cfg.HandoffDir = ""
	}
	r.logs = NewLogs(eng, LogsConfig{Instance: cfg.Instance, Poll: cfg.LogPoll, Log: cfg.Log})
	r.logs.jobs = r.jobs.logs
	r.usage = newUsage(r)
	if ie, ok := eng.(engine.ImageEngine); ok {
		r.images = NewImages(ie, cfg.Log)
	}
	if cfg.KernelLog != "" {
		// For the daemon's lifetime: the kernel's log is not the engine's,
		// and outlives any one event stream.
		go func() {
			if err := r.followKernelOOMs(context.Background(), cfg.KernelLog); err != nil {
				cfg.Log.WithError(err).Info("jobs: OOM kills are known from Docker alone")
			}
		}()
	}
	return r
}

// StopLogs ends every log stream, running or future. Register it with
// http.Server.RegisterOnShutdown, so follow streams do not hold the
// graceful shutdown up.
func (r *Runtime) StopLogs() { r.logs.Stop() }
