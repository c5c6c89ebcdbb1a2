// Command dockerfaasd runs OpenFaaS functions as Docker containers on one
// host. It serves the OpenFaaS gateway API, keeps desired state in an
// embedded bbolt file and reconciles Docker towards it continuously.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/addresses"
	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/autoscale"
	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/executions"
	"github.com/dockerfaasd/dockerfaasd/pkg/front"
	"github.com/dockerfaasd/dockerfaasd/pkg/job"
	"github.com/dockerfaasd/dockerfaasd/pkg/jobinit"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
	"github.com/dockerfaasd/dockerfaasd/pkg/metrics"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/routes"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	dockerrt "github.com/dockerfaasd/dockerfaasd/pkg/runtime/docker"
	swarmrt "github.com/dockerfaasd/dockerfaasd/pkg/runtime/swarm"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/supervise"
	"github.com/dockerfaasd/dockerfaasd/pkg/tlsreload"
	"github.com/dockerfaasd/dockerfaasd/pkg/ui"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...";
// otherwise resolveIdentity reads them from the build info (version.go).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	resolveIdentity()
	// Subcommands come before the daemon's flags.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "version":
			os.Exit(runVersion(os.Args[2:], os.Stdout))
		case "push":
			os.Exit(runPush(os.Args[2:]))
		case "backup":
			os.Exit(runBackup(os.Args[2:]))
		case "restore":
			os.Exit(runRestore(os.Args[2:]))
		case "healthcheck":
			os.Exit(runHealthcheck(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "job-init":
			// Inside a pre-started job container (pkg/jobinit): not for users.
			os.Exit(jobinit.Main(os.Args[2:]))
		}
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerfaasd:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.WithError(err).Error("dockerfaasd stopped")
		os.Exit(1)
	}
}

func newLogger(cfg config) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	if lvl, err := logrus.ParseLevel(cfg.LogLevel); err == nil {
		log.SetLevel(lvl)
	}
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	}
	return log
}

func run(ctx context.Context, cfg config, log *logrus.Logger) error {
	if cfg.Procs > 0 {
		goruntime.GOMAXPROCS(cfg.Procs)
	}
	log.WithFields(logrus.Fields{"version": version, "commit": commit, "instance": cfg.Instance, "procs": goruntime.GOMAXPROCS(0)}).Info("starting dockerfaasd")
	if cfg.Runtime == runtimeSwarm {
		if done, err := superviseIfServiceTask(ctx, cfg, log); done {
			return err
		}
	}

	// Before anything else is opened: a certificate that cannot be served
	// is a configuration error to report at once.
	var cert *tlsreload.Certificate
	if cfg.TLSCertFile != "" {
		var err error
		if cert, err = tlsreload.Load(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return err
		}
		log.WithFields(cert.Fields()).Info("TLS certificate loaded: serving HTTPS; SIGHUP re-reads the files")
	}

	password, pwFile, generated, err := ensurePassword(cfg)
	if err != nil {
		return err
	}
	switch {
	case generated:
		log.WithField("file", pwFile).Info("generated a basic auth password; read it from this file (faas-cli login --password-stdin < file)")
	case pwFile != "":
		log.WithField("file", pwFile).Info("using the basic auth password kept in the state directory")
	}

	engine, err := docker.New(cfg.DockerHost)
	if err != nil {
		return err
	}
	defer engine.Close()

	keyFile := secretsKeyFile(cfg.StateDir)
	st, watchJournal, err := openState(ctx, cfg, keyFile, engine, log)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	defer st.Close()
	log.WithFields(logrus.Fields{"path": cfg.DBPath, "secretsKey": keyFile, "journal": cfg.StateJournal}).Info("state database open")
	// Before anything writes execution records (the async queue, jobs):
	// a record still running is from a daemon that died while it ran.
	interrupted, err := executions.MarkInterrupted(ctx, st, time.Now())
	if err != nil {
		return fmt.Errorf("close the execution records left running: %w", err)
	}
	if interrupted > 0 {
		log.WithField("records", interrupted).Warn("execution records left running by the previous daemon marked interrupted")
	}

	self, err := selfContainer(ctx, cfg.SelfContainer, engine)
	if err != nil {
		return err
	}
	if self != "" {
		log.WithField("container", self[:min(12, len(self))]).Info("running in a container: joining each function network to reach replicas")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cache := proxy.NewCache()
	board := status.NewBoard()
	signals := new(load.Signals)
	rt, err := newRuntime(ctx, cfg, engine, self, signals, reg, log)
	if err != nil {
		return err
	}
	caps := runtime.Discover(rt)
	if missing := caps.Missing(); len(missing) > 0 {
		log.WithField("missing", strings.Join(missing, ", ")).Info("runtime features not available: their API routes answer 501")
	}
	ctrl := controller.New(controller.Config{
		Workers: cfg.Workers,
		Resync:  cfg.Resync,
		ParkFor: cfg.ParkRetention,
		Log:     log,
	}, st, rt, cache, board, controller.NewMetrics(reg))

	// The API validates with the same scaling defaults the autoscaler
	// decides with, so both read one policy from a function's labels.
	scaleDefaults := scaling.Defaults{Max: cfg.ScaleMaxDefault, Limit: cfg.MaxReplicas, ZeroDuration: cfg.ScaleZero, DownWindow: cfg.ScaleDownWindow}
	scalingBoard := status.NewScalingBoard()
	scaler, err := autoscale.New(autoscale.Config{
		Interval:   cfg.AutoscaleEvery,
		Defaults:   scaleDefaults,
		LegacyRPS:  cfg.LegacyScaleRPS,
		Log:        log,
		Registerer: reg,
	}, st, signals, autoscale.BoardReady(board), caps.Usage, scalingBoard)
	if err != nil {
		return fmt.Errorf("autoscaler: %w", err)
	}
	if err := metrics.RegisterInFlight(reg, signals); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	gw := metrics.New(reg, desiredReplicas(st, log))
	// Job-mode functions run through the runtime's run-once feature; the
	// proxy hands their calls to the executor.
	var jobs *job.Executor
	if caps.Run != nil {
		jobs = job.New(job.Config{
			Concurrency:       cfg.JobConcurrency,
			ReadyWait:         cfg.ReadyWait,
			KeepAuthorization: !cfg.InvokeAuth,
			Log:               log,
		}, caps.Run, st)
	}
	invoke := proxy.New(cache, proxy.Options{
		Timeout:      cfg.ExecTimeout,
		ReadyWait:    cfg.ReadyWait,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Started:      gw.Started,
		Observe:      gw.Observe,
		Load:         signals,
		Wake:         scaler,
		Jobs:         jobRunner(jobs),
		Pools:        poolsFor(caps.Pools),
		Log:          log,
	})
	queue, err := async.New(async.Config{
		Defaults:         cfg.Async.Policy,
		MaxResultBytes:   cfg.Async.MaxResultBytes,
		CallbackAttempts: cfg.Async.CallbackAttempts,
		CallbackTimeout:  cfg.Async.CallbackTimeout,
		Guard:            cfg.Async.Guard,
		RecordsMax:       cfg.Async.RecordsMax,
		RecordsMaxAge:    cfg.Async.RecordsMaxAge,
		UserAgent:        "dockerfaasd-queue-worker/" + version,
		Registerer:       reg,
		Log:              log,
	}, st, invoke)
	if err != nil {
		return fmt.Errorf("async queue: %w", err)
	}
	if !cfg.Async.Guard.Open() {
		log.WithField("hosts", cfg.Async.Guard.String()).Info("callbacks restricted to ASYNC_CALLBACK_HOSTS")
	}
	apiCfg := api.Config{
		Store:             st,
		Status:            board,
		Invocations:       gw,
		Invoke:            invoke,
		JobMode:           jobs != nil,
		Isolation:         caps.Pools != nil,
		Pools:             poolLister(caps.Pools),
		Async:             queue,
		AsyncMaxBodyBytes: cfg.Async.MaxBodyBytes,
		Debug:             api.DebugHandler(ctrl),
		Metrics:           promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Auth:              api.Auth{User: cfg.AuthUser, Password: password, InvokeOpen: !cfg.InvokeAuth},
		Info:              api.Info{Version: version, SHA: commit},
		MaxReplicas:       cfg.MaxReplicas,
		Scaling:           scaleDefaults,
		ScalingStatus:     scalingBoard,
		Log:               log,
	}
	// Failed logins are limited per client address, and counted.
	apiCfg.Auth.FailuresMax, apiCfg.Auth.FailureWindow = cfg.AuthFailuresMax, cfg.AuthFailureWindow
	apiCfg.Auth.TrustedProxies, apiCfg.Auth.Registerer = cfg.AuthTrustedProxies, reg
	apiCfg.Backup = st // GET /system/backup
	// Assigned only when present: a nil interface, not a typed nil, is
	// what makes a missing feature answer 501.
	if caps.Logs != nil {
		apiCfg.Logs = caps.Logs
	}
	if caps.Usage != nil {
		apiCfg.Usage = caps.Usage
	}
	if caps.Images != nil {
		apiCfg.Images = caps.Images
	}
	if caps.Inspect != nil {
		apiCfg.Inspect = caps.Inspect
	}
	buildSvc, err := newBuildService(cfg, caps.Build, st, scaleDefaults, log)
	if err != nil {
		return err
	}
	apiCfg.Build = buildSvc
	// Before any build: what a daemon that died mid-build left.
	if n, err := buildSvc.MarkInterrupted(ctx, time.Now()); err != nil {
		return fmt.Errorf("close the build records left in progress: %w", err)
	} else if n > 0 {
		log.WithField("records", n).Warn("build records left in progress by the previous daemon marked failed")
	}
	if s, ok := rt.(interface{ SweepBuildTests(context.Context) error }); ok {
		if err := s.SweepBuildTests(ctx); err != nil {
			log.WithError(err).Warn("removing build test containers an earlier daemon left failed; they stay until the next start")
		}
	}
	// An upload is exempt from the server's timeouts (it may take longer
	// than any), and is cut off only when it stalls for the read timeout.
	apiCfg.ImageUploadMax, apiCfg.UploadIdleTimeout = cfg.ImageUploadMax, cfg.ReadTimeout
	if cfg.FunctionCIDR.IsValid() {
		apiCfg.AddressPort = cfg.FunctionAddressPort // list and describe show the addresses
	}
	if nl, ok := rt.(api.NodeLister); ok {
		apiCfg.Nodes = nl
	}
	// Path routes (io.dockerfaas.route): /ROUTE/... is handed to the
	// gateway's own handler as /function/NAME.NAMESPACE/..., so with its
	// auth, timeouts and metrics. In front of the router, but a route can
	// never be one of the gateway's own paths.
	pathRoutes := routes.New(routes.Config{Resync: cfg.Resync, Log: log}, st)
	apiCfg.Routes = pathRoutes
	// The web console calls the daemon's outermost handler in process, so
	// what it does is authenticated, validated, routed and counted as a
	// faas-cli call would be.
	console, err := ui.New(ui.Config{Log: log})
	if err != nil {
		return err
	}
	apiCfg.UI = console
	router, calls, callAllowed := api.NewHandlers(apiCfg)
	handler := pathRoutes.Handler(gw.Instrument(router))
	console.Bind(handler)
	if cfg.Pprof {
		handler = withPprof(handler, cfg.AuthUser, password)
		log.Warn("PPROF=true: Go's profiler is served at /debug/pprof/ (basic auth)")
	}
	if calls != nil {
		handler = callsFirst(gw.Instrument(calls), handler)
	}

	// Before listening: a restart must not answer 404 for a function it has.
	if err := ctrl.MarkStoredKnown(ctx); err != nil {
		return err
	}
	pathRoutes.Resync(ctx)
	addr := net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		// The proxy enforces the exec timeout; the write timeout must leave
		// room for it, or a slow function's answer is cut off mid-write.
		WriteTimeout: max(cfg.WriteTimeout, cfg.ExecTimeout) + 5*time.Second,
		IdleTimeout:  2 * time.Minute,
	}
	// Follow log streams end when shutdown begins; otherwise they would
	// hold the graceful shutdown up until its timeout.
	if s, ok := rt.(interface{ StopLogs() }); ok {
		srv.RegisterOnShutdown(s.StopLogs)
	}
	if cert != nil {
		srv.TLSConfig = cert.TLSConfig()
	}
	// Function calls on plain HTTP are served by the front loop; every
	// other request, and TLS, by srv (docs/data-plane.md).
	var fast *front.Server
	if cfg.FastPath && cert == nil && calls != nil {
		fast = front.New(srv, nil, front.FunctionCalls, log.WithField("component", "front"))
		// Calls plain enough are forwarded without the handlers, with the
		// same credentials check and request count (docs/data-plane.md).
		invoke.EnablePlain(proxy.PlainHooks{Authorize: callAllowed, Count: gw.CountCall})
		fast.ServePlain(invoke)
	}
	if !cfg.InvokeAuth {
		log.Warn("INVOKE_AUTH=false: /function/* is open to anyone who can reach this port")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// A dedicated address per function (FUNCTION_CIDR), served through the
	// same handler as /function/NAME, so with the same auth, routing and
	// metrics. It stops gracefully with ctx and sends nothing on errc.
	if cfg.FunctionCIDR.IsValid() {
		fnAddrs, err := addresses.New(addresses.Config{
			Prefix:            cfg.FunctionCIDR,
			Port:              cfg.FunctionAddressPort,
			Resync:            cfg.Resync,
			ReadHeaderTimeout: srv.ReadHeaderTimeout,
			ReadTimeout:       srv.ReadTimeout,
			WriteTimeout:      srv.WriteTimeout,
			IdleTimeout:       srv.IdleTimeout,
			Log:               log,
		}, st, handler)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = fnAddrs.Run(ctx)
		}()
	}
	// Sends nothing on errc: it only stops with ctx.
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = pathRoutes.Run(ctx)
	}()
	errc := make(chan error, 5)
	wg.Add(5)
	go func() {
		defer wg.Done()
		// A daemon whose journal another daemon took over stops: its
		// controller would otherwise undo what the new owner does.
		errc <- watchJournal(ctx)
	}()
	go func() {
		defer wg.Done()
		errc <- ctrl.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		errc <- queue.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		errc <- scaler.Run(ctx)
	}()
	// SIGHUP re-reads the TLS pair (a bad one is logged and the old one
	// kept); without TLS it is only logged, so it never stops the daemon.
	// Sends nothing on errc: it only stops with ctx.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if cert != nil {
			_ = cert.Run(ctx, hup, log)
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: nothing to reload (no TLS_CERT_FILE)")
			}
		}
	}()
	// Sends nothing on errc: it only stops with ctx.
	pruner := executions.NewPruner(executions.PrunerConfig{Max: cfg.ExecutionsMax, MaxAge: cfg.ExecutionsMaxAge, Log: log}, st)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = pruner.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		serve, scheme := srv.Serve, "http"
		switch {
		case srv.TLSConfig != nil:
			// TLS stays with net/http's server: it negotiates HTTP/2.
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
			scheme = "https"
		case fast != nil:
			serve = fast.Serve
		}
		log.WithFields(logrus.Fields{"addr": ln.Addr().String(), "scheme": scheme, "fast_path": fast != nil}).Info("serving the OpenFaaS API")
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
			return
		}
		errc <- nil
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down; function containers keep running and are adopted on the next start")
	case runErr = <-errc:
	}
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if fast != nil {
		_ = fast.Shutdown(shutdownCtx)
	} else {
		_ = srv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	// No call is served any more: the records of the last job runs are
	// written, and every job container this daemon started is removed.
	jobsCtx, jobsDone := context.WithTimeout(context.Background(), 15*time.Second)
	defer jobsDone()
	if s, ok := rt.(interface{ StopJobs(context.Context) }); ok {
		s.StopJobs(jobsCtx)
	}
	if jobs != nil {
		jobs.Wait(jobsCtx)
	}
	return runErr
}

// callsFirst serves function calls (/function/NAME/…) with calls, the
// handler the router mounts there, without the router: it matches a
// request against every route registered before those (a regular
// expression each), which cost a warm call more CPU than its forwarding.
func callsFirst(calls, rest http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if front.FunctionCalls(r.URL.Path) {
			calls.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// withPprof serves net/http/pprof under /debug/pprof/ in front of next,
// behind the API's basic auth credentials (PPROF=true, for profiling).
func withPprof(next http.Handler, user, password string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			next.ServeHTTP(w, r)
			return
		}
		u, pw, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user))&subtle.ConstantTimeCompare([]byte(pw), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="dockerfaasd"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// jobRunner is the proxy's job runner: nil (job functions answer 501)
// without an executor, never a typed nil.
func jobRunner(e *job.Executor) proxy.JobRunner {
	if e == nil {
		return nil
	}
	return e
}

// newRuntime builds the runtime RUNTIME selects. The swarm runtime needs
// the engine to be a swarm manager; anything else is refused here, with a
// message that says what to do, rather than failing on the first deploy.
func newRuntime(ctx context.Context, cfg config, engine *docker.Client, self string, signals *load.Signals, reg prometheus.Registerer, log *logrus.Logger) (runtime.Runtime, error) {
	if cfg.Runtime == runtimeSwarm {
		if err := swarmrt.CheckManager(ctx, engine); err != nil {
			return nil, fmt.Errorf("RUNTIME=swarm: %w", err)
		}
		if self == "" {
			log.Warn("RUNTIME=swarm but the daemon is not running in a container on this manager: replicas on overlay networks will be unreachable; run it as README \"When one host is not enough\" shows")
		}
		if cfg.SwarmEncrypted && !kernelHasESP() {
			log.Warn("SWARM_ENCRYPTED_NETWORKS=true but this kernel shows no ESP support (no esp4 module): encrypted overlay networks will not carry traffic here")
		}
		log.WithField("encryptedNetworks", cfg.SwarmEncrypted).Info("runtime: Docker Swarm (one service per function)")
		return swarmrt.New(swarmrt.Config{
			Instance:          cfg.Instance,
			NetworkPrefix:     cfg.FunctionsNetwork,
			Self:              self,
			EncryptedNetworks: cfg.SwarmEncrypted,
			PidsLimit:         cfg.PidsLimit,
			DrainTimeout:      cfg.ExecTimeout,
			MaxRequeue:        cfg.Resync,
			Load:              signals,
			Registerer:        reg,
			Log:               log,
		}, engine), nil
	}
	return dockerrt.New(dockerrt.Config{
		Instance:      cfg.Instance,
		NetworkPrefix: cfg.FunctionsNetwork,
		Self:          self,
		PidsLimit:     cfg.PidsLimit,
		DrainTimeout:  cfg.ExecTimeout,
		MaxRequeue:    cfg.Resync,
		NeighborLimit: neighborLimit(),
		JobWarm:       cfg.JobWarm,
		JobInitBinary: jobInitBinary(cfg.JobInitBinary, log),
		PoolSize:      cfg.PoolSize,
		HandoffDir:    cfg.HandoffDir,
		KernelLog:     dockerrt.DefaultKernelLog,
		// Running in a container, the daemon's path is not the engine's.
		HandoffHostDir: handoffHostDir(ctx, cfg.HandoffDir, self, engine, log),
		// Drained replicas are stopped once the proxy's calls on them ended.
		Load:       signals,
		Registerer: reg,
		Log:        log,
	}, engine), nil
}

// openState opens the state file. Without a journal the file is the only
// copy of the state: one that is unreadable or of a newer schema stops the
// daemon and is never overwritten (restore a backup). With
// STATE_JOURNAL=swarm the file is a
// cache rebuilt from the journal in the swarm (pkg/runtime/swarm.Journal),
// which then keeps every write before it is acknowledged. watch returns
// an error once the journal is lost to another daemon, nil when ctx ends.
func openState(ctx context.Context, cfg config, keyFile string, engine *docker.Client, log *logrus.Logger) (st *store.Bolt, watch func(context.Context) error, err error) {
	if cfg.StateJournal != runtimeSwarm {
		st, err = store.OpenWithKeyFile(cfg.DBPath, keyFile)
		return st, func(ctx context.Context) error { <-ctx.Done(); return nil }, err
	}
	j, err := swarmrt.NewJournal(ctx, engine, cfg.Instance, log)
	if err != nil {
		return nil, nil, fmt.Errorf("state journal in the swarm: %w", err)
	}
	st, err = store.OpenJournaled(ctx, cfg.DBPath, keyFile, j, store.JournalLogger(log))
	watch = func(ctx context.Context) error {
		if err := j.WatchOwner(ctx, journalOwnerCheck); ctx.Err() == nil {
			return err
		}
		return nil
	}
	return st, watch, err
}

// journalOwnerCheck is how often a journaled daemon checks that it still
// owns the journal: the bound on how long a replaced daemon that writes
// nothing keeps reconciling.
const journalOwnerCheck = 2 * time.Second

// superviseIfServiceTask runs the supervisor (pkg/supervise) instead of
// the daemon when this process is the task of a swarm service: the daemon
// itself then runs as the gateway container the supervisor starts. done is
// false when this is not a service task.
func superviseIfServiceTask(ctx context.Context, cfg config, log *logrus.Logger) (done bool, err error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return false, nil // the daemon's own client reports it
	}
	defer cli.Close()
	task, ok := supervise.InSwarmTask(ctx, cli)
	if !ok {
		return false, nil
	}
	log.WithFields(logrus.Fields{"task": task.TaskID, "service": task.ServiceID}).
		Info("running as a swarm service task: supervising the gateway container on this node")
	return true, supervise.Run(ctx, cli, supervise.Config{
		Instance:     cfg.Instance,
		StateDir:     cfg.StateDir,
		Port:         cfg.Port,
		KeyFile:      filepath.Base(secretsKeyFile(cfg.StateDir)),
		PasswordFile: filepath.Base(passwordFile(cfg.StateDir)),
		KeySize:      store.SecretKeySize,
		SecretsDir:   "/run/secrets",
		StopTimeout:  15 * time.Second,
		Log:          log,
	}, task)
}

// kernelHasESP reports whether IPsec ESP looks available (loaded as a
// module, or its configuration says built in), which encrypted overlay
// networks need.
func kernelHasESP() bool {
	if _, err := os.Stat("/sys/module/esp4"); err == nil {
		return true
	}
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return false
	}
	conf, err := os.ReadFile("/boot/config-" + strings.TrimSpace(string(b)))
	return err == nil && strings.Contains(string(conf), "CONFIG_INET_ESP=y")
}

// desiredReplicas reads desired replicas per function for
// gateway_service_count at scrape time.
func desiredReplicas(st store.Store, log logrus.FieldLogger) metrics.ReplicaLister {
	return func() map[string]uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fns, err := st.List(ctx, "")
		if err != nil {
			log.WithError(err).Warn("gateway_service_count: cannot list functions")
			return nil
		}
		out := make(map[string]uint64, len(fns))
		for _, f := range fns {
			out[f.Key()] = f.Replicas
		}
		return out
	}
}

// poolLister is the debug page's view of the pools (nil: none).
func poolLister(p runtime.Pools) api.PoolLister {
	if p == nil {
		return nil
	}
	return p
}

// poolsFor adapts the runtime's pools to the proxy (nil: none).
func poolsFor(p runtime.Pools) proxy.Pools {
	if p == nil {
		return nil
	}
	return pools{p}
}

type pools struct{ p runtime.Pools }

func (a pools) Take(ctx context.Context, key string) (proxy.Lease, error) {
	l, err := a.p.Take(ctx, key)
	var busy *runtime.PoolBusyError
	if errors.As(err, &busy) {
		return nil, &proxy.BusyError{RetryAfter: busy.RetryAfter}
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// handoffHostDir is where the engine finds dir when the daemon runs in
// container self: under the mount that holds it ("" when the daemon runs
// on the host, or when no mount holds dir: the socket protocol then
// cannot work, which is logged).
func handoffHostDir(ctx context.Context, dir, self string, engine *docker.Client, log logrus.FieldLogger) string {
	if self == "" || dir == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	mounts, err := engine.ContainerMounts(ctx, self)
	if err != nil {
		log.WithError(err).Warn("per-request isolation: cannot read this daemon's mounts; the socket protocol will fail")
		return ""
	}
	host, ok := docker.HostPath(mounts, dir)
	if !ok {
		log.WithField("dir", dir).Warn("per-request isolation: HANDOFF_DIR is on no volume or bind mount of this daemon's container, so function containers cannot mount its sockets; the socket protocol will fail (put HANDOFF_DIR under STATE_DIR, a volume)")
		return ""
	}
	return host
}

// selfContainer finds the daemon's own container: the configured one, or
// with "auto" the container of this engine whose ID or name the hostname is
// (Docker's default hostname is the short ID), when /.dockerenv suggests we
// run in one. "auto" that finds no such container means "not in a container
// of this engine" (a sandbox can have /.dockerenv too); "none" disables it.
func selfContainer(ctx context.Context, setting string, engine *docker.Client) (string, error) {
	auto := setting == "auto"
	switch {
	case setting == "none" || setting == "":
		return "", nil
	case auto:
		if _, err := os.Stat("/.dockerenv"); err != nil {
			return "", nil
		}
		host, err := os.Hostname()
		if err != nil {
			return "", nil
		}
		setting = host
	}
	// Docker may be starting too; give it a moment before giving up.
	wait := 30 * time.Second
	if auto {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		id, err := engine.ContainerID(ctx, setting)
		switch {
		case err == nil:
			return id, nil
		case auto && (errors.Is(err, docker.ErrNotFound) || ctx.Err() != nil):
			// Guessing: better to run than to refuse to start while Docker
			// is unreachable; an explicit SELF_CONTAINER makes it strict.
			return "", nil
		case errors.Is(err, docker.ErrNotFound) || ctx.Err() != nil:
			return "", fmt.Errorf("SELF_CONTAINER=%s: cannot find this daemon's container (set SELF_CONTAINER to its name, or none): %w", setting, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// neighborLimit reads the hard limit of the kernel's IPv4 neighbour table
// in this network namespace; 0 when it cannot be read (not Linux).
func neighborLimit() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}
