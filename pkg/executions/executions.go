// Package executions looks after the execution records of job runs and
// async attempts (store.Executions): at start it closes the records a
// daemon that died left running, while a run lasts it writes its running
// record (DelayedRunning), and while the daemon runs it keeps the records
// within their bounds of count and age.
package executions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// InterruptedError is the Error of a record MarkInterrupted closed.
const InterruptedError = "the daemon stopped while it ran"

// markers bounds the records MarkInterrupted writes at once: enough for
// their grouped writes to share commits.
const markers = 32

// MarkInterrupted marks every record still running as interrupted (final,
// FinishedAt now, Error InterruptedError) and returns how many it marked.
// A record is running only while the daemon that wrote it runs, so at
// start every running record is from a daemon that died or was stopped
// while it ran. Call it before anything that writes records starts (the
// async queue, the job executor), or it would close their new records too.
func MarkInterrupted(ctx context.Context, st store.Executions, now time.Time) (int, error) {
	running, err := st.ListExecutions(ctx, store.ExecutionFilter{State: store.ExecutionRunning})
	if err != nil {
		return 0, fmt.Errorf("list running executions: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, markers)
	)
	now = now.UTC()
	for _, e := range running {
		e.State, e.Error = store.ExecutionInterrupted, InterruptedError
		if now.After(e.StartedAt) {
			e.FinishedAt = now
		} else {
			e.FinishedAt = e.StartedAt // a clock set back: never a negative duration
		}
		e.DurationSeconds = e.FinishedAt.Sub(e.StartedAt).Seconds()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := st.PutExecution(ctx, e); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("mark execution %q interrupted: %w", e.ID, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(running) - len(errs), errors.Join(errs...)
}

// Defaults of a zero PrunerConfig.
const (
	DefaultMax    = 10000
	DefaultMaxAge = 7 * 24 * time.Hour
	DefaultEvery  = time.Minute
)

// PrunerConfig bounds the records; zero fields take the defaults.
type PrunerConfig struct {
	// Max is how many final records are kept (EXECUTIONS_MAX).
	Max int
	// MaxAge is how long a final record is kept after it ended
	// (EXECUTIONS_MAX_AGE).
	MaxAge time.Duration
	// Every is how often the bounds are applied.
	Every time.Duration
	// Log receives what was pruned and failures; nil is logrus' standard
	// logger.
	Log logrus.FieldLogger
}

// Pruner removes the records beyond the bounds, oldest first; running
// records are never removed.
type Pruner struct {
	cfg PrunerConfig
	st  store.Executions
}

// NewPruner returns a Pruner of st's records.
func NewPruner(cfg PrunerConfig, st store.Executions) *Pruner {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	return &Pruner{cfg: cfg, st: st}
}

// Run prunes at once and then every Every until ctx is done. A pass with
// nothing due only reads the store's index (store.PruneExecutions).
func (p *Pruner) Run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.Every)
	defer tick.Stop()
	for {
		p.Prune(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Prune applies the bounds once and returns how many records it removed.
func (p *Pruner) Prune(ctx context.Context) int {
	n, err := p.st.PruneExecutions(ctx, p.cfg.Max, p.cfg.MaxAge)
	switch {
	case err != nil && ctx.Err() == nil:
		p.cfg.Log.WithError(err).Warn("executions: cannot prune records")
	case n > 0:
		p.cfg.Log.WithFields(logrus.Fields{"removed": n, "max": p.cfg.Max, "maxAge": p.cfg.MaxAge.String()}).Debug("executions: pruned records")
	}
	return n
}
