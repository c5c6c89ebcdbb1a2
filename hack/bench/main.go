// Command bench measures dockerfaasd against the physical limit and writes
// docs/performance.md. Every figure it reports is a ratio against a baseline
// measured in the same run on the same machine: the function container
// called directly, one minimal reverse proxy hop (hack/baseproxy), a bare
// Docker create+start, an empty daemon.
//
// It builds the fn-hostname test function into a FROM scratch image, starts
// the real daemon binary on a free 127.0.0.1 port with its own INSTANCE
// (bench-<random>) and a temporary state dir, drives it over HTTP and with
// wrk, and removes everything labelled with its run ID when it ends, also
// on failure or interrupt. Run it with `make bench`; the environment knobs
// are listed in settings below. Section "swarm" repeats the warm
// measurement on the test swarm of hack/swarm-up.sh, with the daemon in a
// container on the manager (see swarm.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// settings are the environment knobs of a run.
type settings struct {
	Duration   time.Duration // BENCH_DURATION: one wrk cell
	Warmup     time.Duration // BENCH_WARMUP: unmeasured wrk run before each cell
	WarmRounds int           // BENCH_WARM_ROUNDS: rounds of the warm section
	ColdRuns   int           // BENCH_COLD_RUNS: cold starts per side
	HealRuns   int           // BENCH_HEAL_RUNS: heals and scale-outs
	Scale      int           // BENCH_SCALE: functions in the scale test
	Idle       time.Duration // BENCH_IDLE: idle CPU window
	GoBench    string        // BENCH_GOBENCHTIME: go test -benchtime
	Out        string        // BENCH_OUT: the markdown file to write
	Note       string        // BENCH_NOTE: free text put in the report
	Skip       map[string]bool
	ModuleDir  string
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func loadSettings() (settings, error) {
	var s settings
	var errs []error
	dur := func(key, def string) time.Duration {
		d, err := time.ParseDuration(envOr(key, def))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration such as 10s", key))
		}
		return d
	}
	num := func(key, def string, lo, hi int) int {
		n, err := strconv.Atoi(envOr(key, def))
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s: want a number from %d to %d", key, lo, hi))
		}
		return n
	}
	s.Duration = dur("BENCH_DURATION", "10s")
	s.Warmup = dur("BENCH_WARMUP", "2s")
	s.Idle = dur("BENCH_IDLE", "10s")
	s.WarmRounds = num("BENCH_WARM_ROUNDS", "3", 1, 20)
	s.ColdRuns = num("BENCH_COLD_RUNS", "5", 1, 50)
	s.HealRuns = num("BENCH_HEAL_RUNS", "3", 1, 20)
	s.Scale = num("BENCH_SCALE", "200", 1, 2000)
	s.GoBench = envOr("BENCH_GOBENCHTIME", "1s")
	s.Note = os.Getenv("BENCH_NOTE")
	s.Skip = map[string]bool{}
	for _, k := range strings.Split(os.Getenv("BENCH_SKIP"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			if !validSection[k] {
				errs = append(errs, fmt.Errorf("BENCH_SKIP: unknown section %q (want warm, swarm, async, cold, heal, zero, scale, go, upload, job, isolation, build)", k))
			}
			s.Skip[k] = true
		}
	}
	dir, err := moduleRoot()
	if err != nil {
		errs = append(errs, err)
	}
	s.ModuleDir = dir
	s.Out = envOr("BENCH_OUT", filepath.Join(dir, "docs", "performance.md"))
	return s, errors.Join(errs...)
}

var validSection = map[string]bool{"warm": true, "swarm": true, "async": true, "cold": true, "heal": true, "zero": true, "scale": true, "go": true, "upload": true, "job": true, "isolation": true, "build": true}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("go.mod not found above the working directory; run from the repository")
}

func main() {
	s, err := loadSettings()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, s)
	os.Exit(code)
}

// run does the whole benchmark and returns the exit code. Each section
// records its own failure in the report and the others still run.
func run(ctx context.Context, s settings) int {
	r := &runner{s: s, id: "bench-" + randomSuffix(6)}
	r.rep = newReport(s)
	logf("run %s: duration %s per cell, scale %d, output %s", r.id, s.Duration, s.Scale, s.Out)

	tmp, err := os.MkdirTemp("", r.id+"-")
	if err != nil {
		logf("temp dir: %v", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	r.tmp = tmp
	defer r.cleanup()

	if err := r.setup(ctx); err != nil {
		logf("setup: %v", err)
		return 1
	}
	sections := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"warm", r.warm},
		// swarm runs right after warm, so that the one-host C/B it is set
		// against was measured under much the same background load.
		{"swarm", r.swarm},
		{"async", r.async},
		{"cold", r.cold},
		{"heal", r.heal},
		// zero runs before scale, which starts a daemon with hundreds of
		// functions; it is reported last, as section 6.
		{"zero", r.zero},
		{"scale", r.scale},
		{"go", r.goBench},
		{"upload", r.upload},
		{"job", r.job},
		{"isolation", r.isolation},
		{"build", r.buildOnServer},
	}
	failed := false
	for _, sec := range sections {
		if s.Skip[sec.name] {
			r.rep.skipped(sec.name)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		logf("== %s", sec.name)
		if err := sec.fn(ctx); err != nil {
			failed = true
			logf("%s failed: %v", sec.name, err)
			r.rep.failed(sec.name, err)
		}
		logf("== %s done in %s", sec.name, time.Since(start).Round(time.Second))
	}
	if ctx.Err() != nil {
		logf("interrupted; %s not written", s.Out)
		r.keepLog()
		return 130
	}
	if err := r.rep.write(s.Out); err != nil {
		logf("write report: %v", err)
		return 1
	}
	logf("wrote %s", s.Out)
	if failed {
		r.keepLog()
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
