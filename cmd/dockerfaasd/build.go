package main

import (
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// buildConfig are the settings of the image builder (POST /build).
type buildConfig struct {
	MaxBytes     int64
	Concurrency  int
	Timeout      time.Duration
	Retention    int
	SecretFile   string
	TemplatesDir string
}

// newBuildService wires the image builder: the payload secret (made on
// first start), the templates and the deployer of built images. b nil (a
// runtime without builds) still serves the routes, with a 501 for builds.
func newBuildService(cfg config, b runtime.Builder, st store.Store, d scaling.Defaults, log logrus.FieldLogger) (*build.Service, error) {
	secret, created, err := build.LoadOrCreateSecret(cfg.Build.SecretFile)
	if err != nil {
		return nil, err
	}
	l := log.WithField("file", cfg.Build.SecretFile)
	if created {
		l.Info("builder payload secret generated (faas-cli --payload-secret FILE)")
	} else {
		l.Info("builder payload secret read")
	}
	return build.New(build.Config{
		Builder:     b,
		Records:     st,
		Deploy:      api.NewImageDeployer(st, d, cfg.MaxReplicas, log),
		Templates:   &build.Templates{Dir: cfg.Build.TemplatesDir},
		WorkDir:     filepath.Join(cfg.StateDir, "build"),
		Secret:      secret,
		MaxBytes:    cfg.Build.MaxBytes,
		Concurrency: cfg.Build.Concurrency,
		Timeout:     cfg.Build.Timeout,
		Retention:   cfg.Build.Retention,
		Log:         log.WithField("component", "build"),
	}), nil
}
