package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// executionTests run against empty stores: execution records do not need
// their function to exist (a record outlives a deleted function).
var executionTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"ExecutionPutGetReplace", testExecutionPutGetReplace},
	{"ExecutionInvalid", testExecutionInvalid},
	{"ExecutionMissing", testExecutionMissing},
	{"ExecutionList", testExecutionList},
	{"ExecutionPrune", testExecutionPrune},
	{"ExecutionSummaries", testExecutionSummaries},
	{"ExecutionCancelledContext", testExecutionCancelledContext},
	{"ExecutionConcurrentPuts", testExecutionConcurrentPuts},
}

// execBase is the start time of the fixture records: recent, so that an
// age bound of a day keeps them.
var execBase = time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

// execution is a final record of fn that started at execBase + startSec
// seconds and took one second.
func execution(id, fn, kind, state string, startSec int) store.Execution {
	start := execBase.Add(time.Duration(startSec) * time.Second)
	e := store.Execution{ID: id, Kind: kind, Function: fn, State: state, StartedAt: start, BytesIn: 10, BytesOut: 20}
	if state != store.ExecutionRunning {
		e.FinishedAt = start.Add(time.Second)
		e.DurationSeconds = 1
	}
	return e
}

func mustPutExecution(t *testing.T, s store.Store, e store.Execution) {
	t.Helper()
	if err := s.PutExecution(t.Context(), e); err != nil {
		t.Fatalf("PutExecution(%s): %v", e.ID, err)
	}
}

func executionIDs(list []store.Execution) []string {
	ids := make([]string, 0, len(list))
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	return ids
}

func mustListExecutions(t *testing.T, s store.Store, f store.ExecutionFilter) []store.Execution {
	t.Helper()
	list, err := s.ListExecutions(t.Context(), f)
	if err != nil {
		t.Fatalf("ListExecutions(%+v): %v", f, err)
	}
	return list
}

func testExecutionPutGetReplace(t *testing.T, open opener) {
	s := open(t)
	fn := key("", "job")
	exit := 0
	// Times in another zone and with a monotonic reading come back in UTC
	// without one, as JSON keeps them.
	start := time.Now().In(time.FixedZone("X", 3600))
	running := store.Execution{ID: "call-1", Kind: store.ExecutionJob, Function: fn, State: store.ExecutionRunning, StartedAt: start, BytesIn: 5}
	mustPutExecution(t, s, running)
	got, err := s.GetExecution(t.Context(), "call-1")
	if err != nil {
		t.Fatal(err)
	}
	want := running
	want.StartedAt = start.UTC().Round(0)
	assertSameJSON(t, "running record", got, want)
	if !got.StartedAt.Equal(start) || got.StartedAt.Location() != time.UTC {
		t.Errorf("StartedAt = %v, want %v in UTC", got.StartedAt, start)
	}

	final := running
	final.State, final.FinishedAt = store.ExecutionSucceeded, start.Add(1500*time.Millisecond)
	final.ExitCode, final.BytesOut = &exit, 7
	final.StdoutHead, final.StdoutTail, final.StderrHead = "head", "tail", "warn"
	mustPutExecution(t, s, final)
	got, err = s.GetExecution(t.Context(), "call-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.ExecutionSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.StdoutTail != "tail" {
		t.Errorf("replaced record = %+v", got)
	}
	if got.DurationSeconds != 1.5 {
		t.Errorf("DurationSeconds = %v, want 1.5 (filled in from the times)", got.DurationSeconds)
	}
	// Replacing with another start moves the record in the order: still one.
	moved := final
	moved.StartedAt = start.Add(-time.Hour)
	mustPutExecution(t, s, moved)
	mustPutExecution(t, s, execution("other", fn, store.ExecutionJob, store.ExecutionFailed, 1800))
	list := mustListExecutions(t, s, store.ExecutionFilter{})
	if ids := executionIDs(list); !slices.Equal(ids, []string{"other", "call-1"}) {
		t.Errorf("list after moving call-1 an hour back = %q, want [other call-1]", ids)
	}
}

func testExecutionInvalid(t *testing.T, open opener) {
	s := open(t)
	good := execution("x", key("", "fn"), store.ExecutionAsync, store.ExecutionFailed, 0)
	long := make([]byte, 257)
	for i := range long {
		long[i] = 'a'
	}
	cases := []struct {
		name string
		edit func(e *store.Execution)
	}{
		{"no id", func(e *store.Execution) { e.ID = "" }},
		{"id too long", func(e *store.Execution) { e.ID = string(long) }},
		{"no function", func(e *store.Execution) { e.Function = "" }},
		{"unknown kind", func(e *store.Execution) { e.Kind = "cron" }},
		{"no kind", func(e *store.Execution) { e.Kind = "" }},
		{"unknown state", func(e *store.Execution) { e.State = "done" }},
		{"no start", func(e *store.Execution) { e.StartedAt = time.Time{} }},
	}
	for _, c := range cases {
		e := good
		c.edit(&e)
		err := s.PutExecution(t.Context(), e)
		if err == nil {
			t.Errorf("%s: stored", c.name)
		} else if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %v matches a sentinel", c.name, err)
		}
	}
	if list := mustListExecutions(t, s, store.ExecutionFilter{}); len(list) != 0 {
		t.Errorf("refused records were stored: %q", executionIDs(list))
	}
}

func testExecutionMissing(t *testing.T, open opener) {
	s := open(t)
	mustPutExecution(t, s, execution("there", key("", "fn"), store.ExecutionJob, store.ExecutionSucceeded, 0))
	for _, id := range []string{"absent", "", "there.1"} {
		if _, err := s.GetExecution(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetExecution(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func testExecutionList(t *testing.T, open opener) {
	s := open(t)
	a, b, dev := key("", "a"), key("", "b"), key("dev", "a")
	seed := []store.Execution{
		execution("a1", a, store.ExecutionJob, store.ExecutionSucceeded, 1),
		execution("b1", b, store.ExecutionAsync, store.ExecutionFailed, 2),
		execution("a2", a, store.ExecutionAsync, store.ExecutionSucceeded, 3),
		execution("dev1", dev, store.ExecutionJob, store.ExecutionOOMKilled, 4),
		execution("a3", a, store.ExecutionJob, store.ExecutionRunning, 5),
		execution("b2", b, store.ExecutionJob, store.ExecutionTimedOut, 6),
		// Same start as b2: ties are ordered by ID.
		execution("b3", b, store.ExecutionJob, store.ExecutionSucceeded, 6),
	}
	// Put out of order: the list orders by start, not by write.
	for _, i := range []int{3, 0, 6, 2, 5, 1, 4} {
		mustPutExecution(t, s, seed[i])
	}
	cases := []struct {
		name string
		f    store.ExecutionFilter
		want []string
	}{
		{"all newest first", store.ExecutionFilter{}, []string{"b3", "b2", "a3", "dev1", "a2", "b1", "a1"}},
		{"limit", store.ExecutionFilter{Limit: 2}, []string{"b3", "b2"}},
		{"function", store.ExecutionFilter{Function: a}, []string{"a3", "a2", "a1"}},
		{"function limit", store.ExecutionFilter{Function: a, Limit: 1}, []string{"a3"}},
		{"function in another namespace", store.ExecutionFilter{Function: dev}, []string{"dev1"}},
		{"namespace", store.ExecutionFilter{Namespace: "dev"}, []string{"dev1"}},
		{"namespace default", store.ExecutionFilter{Namespace: store.DefaultNamespace, Limit: 3}, []string{"b3", "b2", "a3"}},
		{"namespace ignored with function", store.ExecutionFilter{Function: b, Namespace: "dev"}, []string{"b3", "b2", "b1"}},
		{"state", store.ExecutionFilter{State: store.ExecutionSucceeded}, []string{"b3", "a2", "a1"}},
		{"state running", store.ExecutionFilter{State: store.ExecutionRunning}, []string{"a3"}},
		{"kind", store.ExecutionFilter{Kind: store.ExecutionAsync}, []string{"a2", "b1"}},
		{"function and state", store.ExecutionFilter{Function: b, State: store.ExecutionFailed}, []string{"b1"}},
		{"all filters", store.ExecutionFilter{Function: a, State: store.ExecutionSucceeded, Kind: store.ExecutionJob, Limit: 5}, []string{"a1"}},
		{"no match", store.ExecutionFilter{Function: key("", "none")}, []string{}},
		{"namespace not a prefix of a name", store.ExecutionFilter{Namespace: "de"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustListExecutions(t, s, c.f)
			if ids := executionIDs(got); !slices.Equal(ids, c.want) {
				t.Errorf("ListExecutions(%+v) = %q, want %q", c.f, ids, c.want)
			}
			if got == nil {
				t.Error("an empty list is nil, want []")
			}
		})
	}
	// Records come back whole.
	got := mustListExecutions(t, s, store.ExecutionFilter{Function: dev})
	assertSameJSON(t, "listed record", got[0], seed[3])
}

func testExecutionPrune(t *testing.T, open opener) {
	fn := key("", "fn")
	// Starts in seconds after execBase, which is an hour ago; "old" ones
	// started two days earlier.
	const old = -48 * 3600
	cases := []struct {
		name    string
		seed    []store.Execution
		max     int
		maxAge  time.Duration
		removed int
		want    []string // newest first
	}{
		{"nothing to do", []store.Execution{
			execution("e1", fn, store.ExecutionJob, store.ExecutionSucceeded, 1),
			execution("e2", fn, store.ExecutionJob, store.ExecutionSucceeded, 2),
		}, 5, 24 * time.Hour, 0, []string{"e2", "e1"}},
		{"no bounds", []store.Execution{
			execution("e1", fn, store.ExecutionJob, store.ExecutionSucceeded, old),
		}, 0, 0, 0, []string{"e1"}},
		{"count keeps the newest", []store.Execution{
			execution("e1", fn, store.ExecutionJob, store.ExecutionSucceeded, 1),
			execution("e2", fn, store.ExecutionAsync, store.ExecutionFailed, 2),
			execution("e3", fn, store.ExecutionJob, store.ExecutionSucceeded, 3),
			execution("e4", fn, store.ExecutionJob, store.ExecutionSucceeded, 4),
		}, 2, 0, 2, []string{"e4", "e3"}},
		{"count never removes running", []store.Execution{
			execution("r0", fn, store.ExecutionJob, store.ExecutionRunning, 0),
			execution("e1", fn, store.ExecutionJob, store.ExecutionSucceeded, 1),
			execution("r2", fn, store.ExecutionJob, store.ExecutionRunning, 2),
			execution("e3", fn, store.ExecutionJob, store.ExecutionSucceeded, 3),
			execution("e4", fn, store.ExecutionJob, store.ExecutionSucceeded, 4),
		}, 1, 0, 2, []string{"e4", "r2", "r0"}},
		{"age", []store.Execution{
			execution("old1", fn, store.ExecutionJob, store.ExecutionSucceeded, old),
			execution("old2", fn, store.ExecutionJob, store.ExecutionInterrupted, old+10),
			execution("new", fn, store.ExecutionJob, store.ExecutionSucceeded, 0),
		}, 0, 24 * time.Hour, 2, []string{"new"}},
		{"age never removes running", []store.Execution{
			execution("old-running", fn, store.ExecutionJob, store.ExecutionRunning, old),
			execution("old", fn, store.ExecutionJob, store.ExecutionFailed, old+1),
		}, 0, 24 * time.Hour, 1, []string{"old-running"}},
		{"age counts from the end", func() []store.Execution {
			// Started two days ago, ended a minute ago: kept.
			long := execution("long", fn, store.ExecutionJob, store.ExecutionSucceeded, old)
			long.FinishedAt = time.Now().Add(-time.Minute)
			return []store.Execution{long, execution("old", fn, store.ExecutionJob, store.ExecutionSucceeded, old+1)}
		}(), 0, 24 * time.Hour, 1, []string{"long"}},
		{"count and age", []store.Execution{
			execution("old", fn, store.ExecutionJob, store.ExecutionSucceeded, old),
			execution("e1", fn, store.ExecutionJob, store.ExecutionSucceeded, 1),
			execution("e2", fn, store.ExecutionJob, store.ExecutionSucceeded, 2),
			execution("e3", fn, store.ExecutionJob, store.ExecutionSucceeded, 3),
		}, 2, 24 * time.Hour, 2, []string{"e3", "e2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			for _, e := range c.seed {
				mustPutExecution(t, s, e)
			}
			n, err := s.PruneExecutions(t.Context(), c.max, c.maxAge)
			if err != nil {
				t.Fatal(err)
			}
			if n != c.removed {
				t.Errorf("PruneExecutions(%d, %s) removed %d, want %d", c.max, c.maxAge, n, c.removed)
			}
			if ids := executionIDs(mustListExecutions(t, s, store.ExecutionFilter{})); !slices.Equal(ids, c.want) {
				t.Errorf("kept %q, want %q", ids, c.want)
			}
			for _, e := range c.seed {
				_, err := s.GetExecution(t.Context(), e.ID)
				if kept := slices.Contains(c.want, e.ID); kept != (err == nil) {
					t.Errorf("GetExecution(%s) after prune: %v (kept: %v)", e.ID, err, kept)
				}
			}
			// A second pass finds nothing more.
			if n, err := s.PruneExecutions(t.Context(), c.max, c.maxAge); err != nil || n != 0 {
				t.Errorf("second prune removed %d (%v), want 0", n, err)
			}
		})
	}
}

func testExecutionSummaries(t *testing.T, open opener) {
	s := open(t)
	a, b := key("", "a"), key("dev", "b")
	for _, e := range []store.Execution{
		execution("a1", a, store.ExecutionJob, store.ExecutionFailed, 1),
		execution("a2", a, store.ExecutionJob, store.ExecutionSucceeded, 2),
		execution("a3", a, store.ExecutionAsync, store.ExecutionTimedOut, 3),
		execution("a4", a, store.ExecutionJob, store.ExecutionRunning, 4),
		execution("b1", b, store.ExecutionJob, store.ExecutionSucceeded, 5),
	} {
		mustPutExecution(t, s, e)
	}
	sums, err := s.SummarizeExecutions(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		fn                          string
		retained, running, failures int
		last                        []string
	}
	var got []row
	for _, x := range sums {
		got = append(got, row{x.Function, x.Retained, x.Running, x.Failures, executionIDs(x.Last)})
	}
	want := []row{ // sorted by function: dev/b first
		{b, 1, 0, 0, []string{"b1"}},
		{a, 4, 1, 2, []string{"a4", "a3"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SummarizeExecutions = %v, want %v", got, want)
	}
	empty, err := open(t).SummarizeExecutions(t.Context(), 2)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("SummarizeExecutions of an empty store = %v, %v; want [], nil", empty, err)
	}
}

func testExecutionCancelledContext(t *testing.T, open opener) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := execution("x", key("", "fn"), store.ExecutionJob, store.ExecutionSucceeded, 0)
	if err := s.PutExecution(ctx, e); !errors.Is(err, context.Canceled) {
		t.Errorf("PutExecution = %v, want context.Canceled", err)
	}
	if _, err := s.ListExecutions(ctx, store.ExecutionFilter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListExecutions = %v, want context.Canceled", err)
	}
	if _, err := s.PruneExecutions(ctx, 1, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("PruneExecutions = %v, want context.Canceled", err)
	}
	if list := mustListExecutions(t, s, store.ExecutionFilter{}); len(list) != 0 {
		t.Errorf("a cancelled put stored %q", executionIDs(list))
	}
}

// testExecutionConcurrentPuts: writers that share commits (grouped
// writes) each get their own record stored, running then final, with the
// index in step.
func testExecutionConcurrentPuts(t *testing.T, open opener) {
	s := open(t)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := execution(fmt.Sprintf("w%d-%d", w, i), key("", fmt.Sprintf("fn%d", w%3)), store.ExecutionAsync, store.ExecutionRunning, w*each+i)
				errs <- s.PutExecution(t.Context(), e)
				e.State, e.FinishedAt = store.ExecutionSucceeded, e.StartedAt.Add(time.Second)
				errs <- s.PutExecution(t.Context(), e)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list := mustListExecutions(t, s, store.ExecutionFilter{})
	if len(list) != writers*each {
		t.Fatalf("%d records, want %d", len(list), writers*each)
	}
	for i, e := range list {
		if e.State != store.ExecutionSucceeded {
			t.Errorf("%s is %s", e.ID, e.State)
		}
		if i > 0 && e.StartedAt.After(list[i-1].StartedAt) {
			t.Errorf("%s listed after an older record", e.ID)
		}
	}
	if running := mustListExecutions(t, s, store.ExecutionFilter{State: store.ExecutionRunning}); len(running) != 0 {
		t.Errorf("index still says running for %q", executionIDs(running))
	}
}
