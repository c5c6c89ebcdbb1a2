package executions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const fn = "openfaas-fn/fn"

func rec(id, state string, start time.Time) store.Execution {
	e := store.Execution{ID: id, Kind: store.ExecutionJob, Function: fn, State: state, StartedAt: start}
	if state != store.ExecutionRunning {
		e.FinishedAt = start.Add(time.Second)
	}
	return e
}

func put(t *testing.T, st store.Store, recs ...store.Execution) {
	t.Helper()
	for _, e := range recs {
		if err := st.PutExecution(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMarkInterrupted(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		seed   []store.Execution
		marked int
		want   map[string]store.Execution // the records as they must read afterwards
	}{
		{"none", nil, 0, map[string]store.Execution{}},
		{"only final ones", []store.Execution{rec("done", store.ExecutionSucceeded, now.Add(-time.Hour))}, 0,
			map[string]store.Execution{"done": rec("done", store.ExecutionSucceeded, now.Add(-time.Hour))}},
		{"running ones closed, final ones kept", []store.Execution{
			rec("r1", store.ExecutionRunning, now.Add(-90*time.Second)),
			rec("f1", store.ExecutionFailed, now.Add(-time.Hour)),
			rec("r2", store.ExecutionRunning, now.Add(-time.Second)),
		}, 2, map[string]store.Execution{
			"r1": {ID: "r1", Kind: store.ExecutionJob, Function: fn, State: store.ExecutionInterrupted, StartedAt: now.Add(-90 * time.Second), FinishedAt: now, DurationSeconds: 90, Error: InterruptedError},
			"f1": rec("f1", store.ExecutionFailed, now.Add(-time.Hour)),
			"r2": {ID: "r2", Kind: store.ExecutionJob, Function: fn, State: store.ExecutionInterrupted, StartedAt: now.Add(-time.Second), FinishedAt: now, DurationSeconds: 1, Error: InterruptedError},
		}},
		{"started after now (clock set back)", []store.Execution{rec("future", store.ExecutionRunning, now.Add(time.Minute))}, 1,
			map[string]store.Execution{"future": {ID: "future", Kind: store.ExecutionJob, Function: fn, State: store.ExecutionInterrupted, StartedAt: now.Add(time.Minute), FinishedAt: now.Add(time.Minute), Error: InterruptedError}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := store.NewMemory()
			put(t, st, c.seed...)
			n, err := MarkInterrupted(t.Context(), st, now)
			if err != nil || n != c.marked {
				t.Fatalf("MarkInterrupted = %d, %v; want %d", n, err, c.marked)
			}
			all, err := st.ListExecutions(t.Context(), store.ExecutionFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != len(c.want) {
				t.Errorf("%d records, want %d", len(all), len(c.want))
			}
			for _, got := range all {
				want := normalized(c.want[got.ID])
				if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
					t.Errorf("record %s:\n got  %+v\n want %+v", got.ID, got, want)
				}
			}
			if n, _ := MarkInterrupted(t.Context(), st, now); n != 0 {
				t.Errorf("a second pass marked %d", n)
			}
		})
	}
}

// normalized is e as the store gives it back (a final record's duration
// filled in).
func normalized(e store.Execution) store.Execution {
	if e.Final() && e.DurationSeconds == 0 && !e.FinishedAt.IsZero() {
		e.DurationSeconds = e.FinishedAt.Sub(e.StartedAt).Seconds()
	}
	return e
}

// failingStore fails every write.
type failingStore struct{ *store.Memory }

func (failingStore) PutExecution(context.Context, store.Execution) error {
	return errors.New("disk full")
}

func TestMarkInterruptedReportsFailures(t *testing.T) {
	st := store.NewMemory()
	now := time.Now()
	put(t, st, rec("r1", store.ExecutionRunning, now), rec("r2", store.ExecutionRunning, now))
	n, err := MarkInterrupted(t.Context(), failingStore{st}, now)
	if n != 0 || err == nil {
		t.Errorf("MarkInterrupted = %d, %v; want 0 and an error", n, err)
	}
}

func TestPrunerRun(t *testing.T) {
	st := store.NewMemory()
	now := time.Now()
	put(t, st,
		rec("old", store.ExecutionSucceeded, now.Add(-3*time.Hour)),
		rec("running", store.ExecutionRunning, now.Add(-3*time.Hour)),
		rec("e1", store.ExecutionSucceeded, now.Add(-3*time.Minute)),
		rec("e2", store.ExecutionFailed, now.Add(-2*time.Minute)),
		rec("e3", store.ExecutionSucceeded, now.Add(-time.Minute)),
	)
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	p := NewPruner(PrunerConfig{Max: 2, MaxAge: time.Hour, Every: 10 * time.Millisecond, Log: log}, st)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// Run prunes at once: 3 removed (old by age, e1 by count). Bounded
	// wait, not a speed requirement.
	deadline := time.Now().Add(10 * time.Second)
	var ids []string
	for time.Now().Before(deadline) {
		all, err := st.ListExecutions(t.Context(), store.ExecutionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, e := range all {
			ids = append(ids, e.ID)
		}
		if len(ids) == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if want := []string{"e3", "e2", "running"}; !slices.Equal(ids, want) {
		t.Errorf("kept %q, want %q", ids, want)
	}
	// A record added later is pruned by a later tick.
	put(t, st, rec("e4", store.ExecutionSucceeded, now))
	for time.Now().Before(deadline) {
		if _, err := st.GetExecution(t.Context(), "e2"); errors.Is(err, store.ErrNotFound) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := st.GetExecution(t.Context(), "e2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("e2 not pruned after e4 came: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	pruned := 0
	for _, e := range hook.AllEntries() {
		if e.Message == "executions: pruned records" {
			pruned += e.Data["removed"].(int)
		}
	}
	if pruned != 3 {
		t.Errorf("logged %d removed, want 3", pruned)
	}
}

func TestPrunerDefaults(t *testing.T) {
	p := NewPruner(PrunerConfig{}, store.NewMemory())
	if p.cfg.Max != DefaultMax || p.cfg.MaxAge != DefaultMaxAge || p.cfg.Every != DefaultEvery || p.cfg.Log == nil {
		t.Errorf("defaults = %+v", p.cfg)
	}
}
