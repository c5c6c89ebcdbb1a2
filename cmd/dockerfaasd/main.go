// Command dockerfaasd runs OpenFaaS functions as Docker containers on one
// host. It serves the OpenFaaS gateway API, keeps desired state in an
// embedded bbolt file and reconciles Docker towards it continuously.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
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
	log.WithFields(logrus.Fields{"version": version, "commit": commit, "instance": cfg.Instance}).Info("starting dockerfaasd")

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

	st, err := store.Open(cfg.DBPath)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	defer st.Close()
	log.WithField("path", cfg.DBPath).Info("state database open")

	engine, err := docker.New(cfg.DockerHost)
	if err != nil {
		return err
	}
	defer engine.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cache := proxy.NewCache()
	board := status.NewBoard()
	ctrl := controller.New(controller.Config{
		Instance:      cfg.Instance,
		NetworkPrefix: cfg.FunctionsNetwork,
		Workers:       cfg.Workers,
		Resync:        cfg.Resync,
		PidsLimit:     cfg.PidsLimit,
		Log:           log,
	}, st, engine, cache, board, controller.NewHTTPProber(time.Second), controller.NewMetrics(reg))

	invoke := proxy.New(cache, proxy.Options{Timeout: cfg.ExecTimeout, ReadyWait: cfg.ReadyWait, Log: log})
	handler := api.NewRouter(api.Config{
		Store:       st,
		Status:      board,
		Invoke:      invoke,
		Debug:       api.DebugHandler(ctrl),
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Auth:        api.Auth{User: cfg.AuthUser, Password: password, InvokeOpen: !cfg.InvokeAuth},
		Info:        api.Info{Version: version, SHA: commit},
		MaxReplicas: cfg.MaxReplicas,
		Log:         log,
	})

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
	if !cfg.InvokeAuth {
		log.Warn("INVOKE_AUTH=false: /function/* is open to anyone who can reach this port")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errc <- ctrl.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		log.WithField("addr", ln.Addr().String()).Info("serving the OpenFaaS API")
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	return runErr
}
