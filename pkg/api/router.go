package api

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// DefaultMaxReplicas is the replica limit used when Config.MaxReplicas is 0.
const DefaultMaxReplicas = 100

// StatusReader is the read side of the controller's status board; the API
// only ever reads it. *status.Board satisfies it.
type StatusReader interface {
	// Get returns the last observed status of the function key.
	Get(key string) (status.Function, bool)
}

var _ StatusReader = (*status.Board)(nil)

// ScalingReader is the read side of the autoscaler's board, for the debug
// page. *status.ScalingBoard satisfies it.
type ScalingReader interface {
	// Get returns what the autoscaler last decided for the function key.
	Get(key string) (status.Scaling, bool)
}

var _ ScalingReader = (*status.ScalingBoard)(nil)

// InvocationCounter reports how often a function was invoked, for the
// invocationCount field faas-cli list and describe display.
type InvocationCounter interface {
	// Count returns the invocations of the function key so far.
	Count(key string) float64
}

// UsageReader reports what a function's replicas use; a runtime with the
// usage feature implements it (the API never asks Docker itself).
type UsageReader interface {
	Usage(ctx context.Context, key string) (types.FunctionUsage, error)
}

// Config is everything the router needs. Store, Status and Auth are
// required; the handlers are optional and their routes absent when nil.
type Config struct {
	// Store receives desired state; it is the only thing handlers write.
	Store store.Store
	// Status supplies observed state (ready replicas) for list and describe.
	Status StatusReader
	// Invocations supplies invocationCount; nil reports 0.
	Invocations InvocationCounter
	// Usage supplies CPU and memory use for ?usage=1; nil omits it.
	Usage UsageReader
	// Logs streams function logs for GET /system/logs; nil answers 501.
	Logs LogStreamer
	// Images loads uploaded images for POST /system/images, Inspect
	// tells which images the engine has for GET /system/images; nil
	// answers 501.
	Images  ImageLoader
	Inspect ImageInspector
	// ImageUploadMax bounds an image upload, received and decompressed
	// (413 beyond it); 0 means DefaultImageUploadMax.
	ImageUploadMax int64
	// UploadIdleTimeout cuts off an image upload that sends nothing for
	// that long (it is exempt from the server's read and write
	// timeouts); 0 means a minute.
	UploadIdleTimeout time.Duration
	// Invoke is the invocation proxy, mounted on /function/.
	Invoke http.Handler
	// JobMode: the runtime can run job-mode functions (io.dockerfaas.mode:
	// job); without it, deploying one answers 501.
	JobMode bool
	// Isolation: the runtime can run functions with per-request isolation
	// (io.dockerfaas.isolation: per-request); without it, deploying one
	// answers 501.
	Isolation bool
	// Async is the queue of async calls, mounted on /async-function/ and
	// /system/async; nil leaves them unmounted.
	Async AsyncQueue
	// AsyncMaxBodyBytes bounds the body of an async call (413 beyond);
	// 0 means DefaultAsyncMaxBody.
	AsyncMaxBodyBytes int64
	// Build serves POST /build (the OpenFaaS builder API, authenticated
	// by its HMAC signature), /system/builds and /system/templates; nil
	// leaves them unmounted.
	Build *build.Service
	// UI serves the web console under /ui/ (pkg/ui), behind the same auth
	// as /system/*; nil leaves it unmounted.
	UI http.Handler
	// Debug serves /debug/reconcile (behind auth); nil leaves it unmounted.
	Debug http.Handler
	// Metrics serves /metrics without auth, as Prometheus scrapers expect;
	// nil leaves it unmounted.
	Metrics http.Handler
	// Auth holds the basic-auth credentials for /system/* and invocation.
	Auth Auth
	// Info is reported by /system/info.
	Info Info
	// MaxReplicas is the upper bound for any function's replicas, whatever
	// its labels say; 0 means DefaultMaxReplicas.
	MaxReplicas uint64
	// Scaling holds the values a missing scale label takes (the max of a
	// function without a max label, idle time before zero, scale-down
	// window). A zero field takes scaling.DefaultDefaults' value, except
	// Limit, which is MaxReplicas (and never above it). The autoscaler must
	// be given the same defaults, or it would read a policy other than the
	// one the API validated.
	Scaling scaling.Defaults
	// ScalingStatus supplies the autoscaler's per-function state for the
	// /debug/reconcile page built by DebugHandler; nil leaves it out.
	ScalingStatus ScalingReader
	// Nodes lists the hosts of a multi-host runtime for /debug/reconcile;
	// nil on one host.
	Nodes NodeLister
	// Pools describes the pools of per-request isolation for
	// /debug/reconcile; nil leaves them out.
	Pools PoolLister
	// Routes lists the functions' path routes for /debug/reconcile; nil
	// leaves them out. Serving them is the route table's own handler,
	// in front of this router (pkg/routes).
	Routes RouteLister
	// AddressPort is the port dedicated function addresses (FUNCTION_CIDR)
	// are served on: list and describe then show a function's address, read
	// from the store, as the annotation AnnotationAddress. 0: the feature is
	// off and nothing is shown.
	AddressPort int
	// Backup serves GET /system/backup (state file and secrets key, in
	// one archive); nil leaves it unmounted.
	Backup BackupWriter
	// Log receives one line per accepted write and every server error;
	// nil means logrus' standard logger.
	Log logrus.FieldLogger
}

// effectiveDefaults fills the zero fields of d from scaling.DefaultDefaults
// and bounds every max by limit, the absolute MAX_REPLICAS.
func effectiveDefaults(d scaling.Defaults, limit uint64) scaling.Defaults {
	def := scaling.DefaultDefaults
	if d.Max == 0 {
		d.Max = def.Max
	}
	if d.ZeroDuration == 0 {
		d.ZeroDuration = def.ZeroDuration
	}
	if d.DownWindow == 0 {
		d.DownWindow = def.DownWindow
	}
	if d.Limit == 0 || d.Limit > limit {
		d.Limit = limit
	}
	d.Max = min(d.Max, d.Limit)
	return d
}

// api holds what the handlers share.
type api struct {
	store        store.Store
	status       StatusReader
	invocations  InvocationCounter
	usage        UsageReader
	logs         LogStreamer
	async        AsyncQueue
	asyncMaxBody int64
	info         Info
	maxReplicas  uint64

	// images and inspect serve /system/images, whose uploads
	// imageUploadMax and uploadIdle bound.
	images         ImageLoader
	inspect        ImageInspector
	imageUploadMax int64
	uploadIdle     time.Duration
	// jobMode: job-mode functions can be deployed (Config.JobMode).
	jobMode bool
	// isolation: per-request isolated functions can be deployed.
	isolation bool
	// scaling are the effective label defaults, Limit = maxReplicas.
	scaling scaling.Defaults
	// addressPort: Config.AddressPort.
	addressPort int
	log         logrus.FieldLogger
}

// NewRouter returns the daemon's HTTP handler.
func NewRouter(cfg Config) http.Handler {
	router, _, _ := NewHandlers(cfg)
	return router
}

// NewHandlers returns the daemon's HTTP handler and, on its own, the one
// it mounts on /function/NAME (cfg.Invoke behind the same credentials
// and login throttle, nil without cfg.Invoke), for a server that routes
// function calls itself; invokeAllows says whether that handler would
// let a call with this Authorization value, from remote with these
// X-Forwarded-For values, through at once, for a server that forwards
// calls without it (proxy.PlainHooks).
func NewHandlers(cfg Config) (router, invoke http.Handler, invokeAllows func(authorization []byte, remote string, forwardedFor [][]byte) bool) {
	a := &api{
		store:        cfg.Store,
		status:       cfg.Status,
		invocations:  cfg.Invocations,
		usage:        cfg.Usage,
		logs:         cfg.Logs,
		async:        cfg.Async,
		asyncMaxBody: cfg.AsyncMaxBodyBytes,
		info:         cfg.Info,
		maxReplicas:  cfg.MaxReplicas,
		jobMode:      cfg.JobMode,
		isolation:    cfg.Isolation,
		log:          cfg.Log,
	}
	a.images, a.inspect = cfg.Images, cfg.Inspect
	a.addressPort = cfg.AddressPort
	a.imageUploadMax, a.uploadIdle = cfg.ImageUploadMax, cfg.UploadIdleTimeout
	if a.maxReplicas == 0 {
		a.maxReplicas = DefaultMaxReplicas
	}
	a.scaling = effectiveDefaults(cfg.Scaling, a.maxReplicas)
	if a.log == nil {
		a.log = logrus.StandardLogger()
	}
	if a.asyncMaxBody <= 0 {
		a.asyncMaxBody = DefaultAsyncMaxBody
	}
	if a.imageUploadMax <= 0 {
		a.imageUploadMax = DefaultImageUploadMax
	}
	if a.uploadIdle <= 0 {
		a.uploadIdle = defaultUploadIdle
	}
	auth := newBasicAuth(cfg.Auth, a.log)

	r := mux.NewRouter()
	// Invocation paths belong to the function: mux's default cleaning would
	// answer "//" or ".." in them with a 301, which breaks POSTs.
	r.SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, a.log, http.StatusNotFound, "not found", nil)
	})

	r.Handle("/healthz", methods{http.MethodGet: http.HandlerFunc(healthz)})

	r.Handle("/system/functions", auth.wrap(methods{
		http.MethodGet:    http.HandlerFunc(a.listFunctions),
		http.MethodPost:   http.HandlerFunc(a.deployFunction),
		http.MethodPut:    http.HandlerFunc(a.updateFunction),
		http.MethodDelete: http.HandlerFunc(a.deleteFunction),
	}))
	r.Handle("/system/function/{name}", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.getFunction)}))
	r.Handle("/system/secrets", auth.wrap(methods{
		http.MethodGet:    http.HandlerFunc(a.listSecrets),
		http.MethodPost:   http.HandlerFunc(a.createSecret),
		http.MethodPut:    http.HandlerFunc(a.updateSecret),
		http.MethodDelete: http.HandlerFunc(a.deleteSecret),
	}))
	r.Handle("/system/scale-function/{name}", auth.wrap(methods{http.MethodPost: http.HandlerFunc(a.scaleFunction)}))
	r.Handle("/system/namespaces", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.listNamespaces)}))
	// faas-cli creates with a POST to the bare path with a trailing slash;
	// the name is in the body.
	r.Handle("/system/namespace/", auth.wrap(methods{http.MethodPost: http.HandlerFunc(a.createNamespace)}))
	r.Handle("/system/namespace/{ns}", auth.wrap(methods{
		http.MethodGet:    http.HandlerFunc(a.getNamespace),
		http.MethodPut:    http.HandlerFunc(a.updateNamespace),
		http.MethodDelete: http.HandlerFunc(a.deleteNamespace),
	}))
	a.infoRoutes(r, auth, cfg) // /system/info, /system/providers
	if cfg.Backup != nil {
		r.Handle("/system/backup", auth.wrap(methods{http.MethodGet: backupHandler(cfg.Backup, cfg.Info.Version, a.log)}))
	}
	r.Handle("/system/logs", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.getLogs)}))
	r.Handle("/system/images", auth.wrap(methods{
		http.MethodGet:  http.HandlerFunc(a.listImages),
		http.MethodPost: http.HandlerFunc(a.uploadImages),
	}))
	a.executionRoutes(r, auth)
	if cfg.Build != nil {
		a.buildRoutes(r, auth, cfg.Build)
	}

	if cfg.Invoke != nil {
		invoke = cfg.Invoke
		invokeAllows = func([]byte, string, [][]byte) bool { return true }
		if !cfg.Auth.InvokeOpen {
			invoke = auth.wrap(invoke)
			invokeAllows = auth.allows
		}
		r.Handle("/function/{name}", invoke)
		r.Handle("/function/{name}/", invoke)
		r.Handle("/function/{name}/{params:.*}", invoke)
	}
	if cfg.Async != nil {
		a.asyncRoutes(r, auth, cfg.Auth.InvokeOpen)
	}
	if cfg.Debug != nil {
		dbg := cfg.Debug
		// The page built by DebugHandler shows the autoscaler's state and
		// the async queues next to the controller's. It is handed the reader here, so that the
		// whole read side is configured in one place, Config.
		if d, ok := dbg.(*debugHandler); ok {
			nd := *d
			if nd.scaling == nil && cfg.ScalingStatus != nil {
				nd.scaling = cfg.ScalingStatus
			}
			if q, ok := cfg.Async.(AsyncDepths); ok && nd.async == nil {
				nd.async = q
			}
			if nd.nodes == nil && cfg.Nodes != nil {
				nd.nodes = cfg.Nodes
			}
			if nd.pools == nil && cfg.Pools != nil {
				nd.pools = cfg.Pools
			}
			if nd.routes == nil && cfg.Routes != nil {
				nd.routes = cfg.Routes
			}
			if nd.executions == nil && cfg.Store != nil {
				nd.executions = cfg.Store
			}
			dbg = &nd
		}
		dbg = auth.wrap(dbg)
		r.Handle("/debug/reconcile", dbg)
		r.PathPrefix("/debug/reconcile/").Handler(dbg)
	}
	if cfg.UI != nil {
		r.Handle("/ui", auth.wrap(http.RedirectHandler("/ui/", http.StatusMovedPermanently)))
		r.PathPrefix("/ui/").Handler(auth.wrap(cfg.UI))
	}
	if cfg.Metrics != nil {
		r.Handle("/metrics", methods{http.MethodGet: cfg.Metrics})
		// The same metrics under /system, where all of the gateway's own
		// surface lives, and behind the same auth.
		r.Handle("/system/metrics", auth.wrap(methods{http.MethodGet: cfg.Metrics}))
	}
	return r, invoke, invokeAllows
}

// healthz answers liveness probes and `faas-cli ready`. It says nothing about
// functions, only that the daemon serves HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("OK"))
}

// methods dispatches one path by HTTP method. Doing this ourselves instead of
// with mux's Methods matcher lets a wrong method get a 405 with an Allow
// header rather than mux's empty response. HEAD is served by the GET handler
// (net/http drops the body).
type methods map[string]http.Handler

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if !ok {
		w.Header().Set("Allow", m.allow())
		writeError(w, nil, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path, nil)
		return
	}
	h.ServeHTTP(w, r)
}

func (m methods) allow() string {
	list := make([]string, 0, len(m)+1)
	for k := range m {
		list = append(list, k)
	}
	if _, ok := m[http.MethodGet]; ok {
		if _, ok := m[http.MethodHead]; !ok {
			list = append(list, http.MethodHead)
		}
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}
