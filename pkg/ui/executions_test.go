package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fakeQueue is the async queue behind /system/async: it lists its records
// and keeps the filters it was asked for.
type fakeQueue struct {
	recs []async.Record

	mu      sync.Mutex
	filters []async.Filter
}

var _ api.AsyncQueue = (*fakeQueue)(nil)

func (q *fakeQueue) Accept(context.Context, async.Request) (async.Record, bool, error) {
	return async.Record{}, false, store.ErrNotFound
}
func (q *fakeQueue) Cancel(context.Context, string) (async.Record, error) {
	return async.Record{}, store.ErrNotFound
}
func (q *fakeQueue) Get(context.Context, string) (async.Record, error) {
	return async.Record{}, store.ErrNotFound
}
func (q *fakeQueue) CheckCallback(*url.URL) error { return nil }

func (q *fakeQueue) List(_ context.Context, f async.Filter) ([]async.Record, error) {
	q.mu.Lock()
	q.filters = append(q.filters, f)
	q.mu.Unlock()
	var out []async.Record
	for _, r := range q.recs {
		if f.Function == "" || f.Function == r.Namespace+"/"+r.Function {
			out = append(out, r)
		}
	}
	return out, nil
}

// TestExecutionsPage renders /ui/executions with a job run and a failed
// async attempt in the store and an async call in the queue: each record's
// fields are on the page, and the function filter reaches both sources.
func TestExecutionsPage(t *testing.T) {
	started := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	exit := 3
	q := &fakeQueue{recs: []async.Record{{
		CallID: "call-7f3a", Function: "worker", Namespace: "openfaas-fn", Method: http.MethodPost, Path: "/resize",
		State: "retrying", Attempts: 2, MaxAttempts: 5, LastStatus: 503, LastError: "upstream unavailable",
		AcceptedAt: started,
	}}}
	c := newConsole(t, func(cfg *api.Config) { cfg.Async = q })
	for _, e := range []store.Execution{
		{
			ID: "job-91c2", Kind: store.ExecutionJob, Function: "openfaas-fn/batch", State: store.ExecutionFailed,
			StartedAt: started, FinishedAt: started.Add(1500 * time.Millisecond), ExitCode: &exit, Error: "exit status 3",
		},
		{
			ID: "call-7f3a.2", Kind: store.ExecutionAsync, Attempt: 2, Function: "openfaas-fn/worker", State: store.ExecutionFailed,
			StartedAt: started.Add(time.Minute), FinishedAt: started.Add(time.Minute + 250*time.Millisecond), StatusCode: 503,
		},
	} {
		if err := c.store.PutExecution(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}

	job := []string{`data-execution="job-91c2"`, "openfaas-fn/batch", ">job<", ">failed<", "2026-03-04 05:06:07Z", ">1.5s<", "exit 3", "exit status 3"}
	attempt := []string{`data-execution="call-7f3a.2"`, "openfaas-fn/worker", ">async<", ">250ms<", "HTTP 503"}
	call := []string{`data-call="call-7f3a"`, "worker.openfaas-fn", "POST /resize", ">retrying<", ">2 / 5<", ">503<", "upstream unavailable"}
	tests := []struct {
		name     string
		query    string
		want     [][]string
		absent   []string
		queueFor string // the filter the async queue gets
	}{
		{name: "all", query: "", want: [][]string{job, attempt, call}},
		{
			name: "one function", query: "?function=worker.openfaas-fn", want: [][]string{attempt, call},
			absent: []string{`data-execution="job-91c2"`}, queueFor: "openfaas-fn/worker",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := c.do(http.MethodGet, "/ui/executions"+tt.query, nil, "")
			if w.Code != http.StatusOK {
				t.Fatalf("GET /ui/executions%s: %d\n%s", tt.query, w.Code, w.Body)
			}
			page := w.Body.String()
			for _, rec := range tt.want {
				for _, s := range rec {
					if !strings.Contains(page, s) {
						t.Errorf("the page lacks %q of record %s", s, rec[0])
					}
				}
			}
			for _, s := range append(tt.absent, "None recorded.", "None.", `class="error"`) {
				if strings.Contains(page, s) {
					t.Errorf("the page shows %q", s)
				}
			}
			q.mu.Lock()
			f := q.filters[len(q.filters)-1]
			q.mu.Unlock()
			if f.Function != tt.queueFor || f.Limit != 50 {
				t.Errorf("the queue was asked for %+v, want function %q, limit 50", f, tt.queueFor)
			}
			if t.Failed() {
				t.Logf("page:\n%s", page)
			}
		})
	}
}

// TestExecutionsPageNoQueue: on a daemon without an async queue the page
// says so instead of showing an empty table or an error.
func TestExecutionsPageNoQueue(t *testing.T) {
	c := newConsole(t)
	page := c.do(http.MethodGet, "/ui/executions", nil, "").Body.String()
	for _, want := range []string{"This daemon has no async queue.", "None recorded."} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `id="async"`) || strings.Contains(page, `class="error"`) {
		t.Errorf("the page shows an async table or an error without a queue:\n%s", page)
	}
}
