package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// executionFixture is a router over a store holding execution records of
// fn and other in openfaas-fn and of fn in dev, one a second from base.
func executionFixture(t *testing.T) (*fixture, time.Time) {
	t.Helper()
	f := newFixture(t, nil)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	exit := 3
	for i, e := range []store.Execution{
		{ID: "j1", Kind: store.ExecutionJob, Function: "openfaas-fn/fn", State: store.ExecutionFailed, ExitCode: &exit, StderrHead: "boom"},
		{ID: "c1.1", Kind: store.ExecutionAsync, Attempt: 1, Function: "openfaas-fn/fn", State: store.ExecutionSucceeded, StatusCode: 200, BytesIn: 3, BytesOut: 5},
		{ID: "j2", Kind: store.ExecutionJob, Function: "openfaas-fn/other", State: store.ExecutionOOMKilled, OOMKilled: true},
		{ID: "j3", Kind: store.ExecutionJob, Function: "dev/fn", State: store.ExecutionSucceeded},
		{ID: "j4", Kind: store.ExecutionJob, Function: "openfaas-fn/fn", State: store.ExecutionRunning},
	} {
		e.StartedAt = base.Add(time.Duration(i) * time.Second)
		if e.State != store.ExecutionRunning {
			e.FinishedAt = e.StartedAt.Add(500 * time.Millisecond)
		}
		if err := f.store.PutExecution(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	return f, base
}

func executionIDsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var list []store.Execution
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	ids := make([]string, 0, len(list))
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestExecutionsList(t *testing.T) {
	f, _ := executionFixture(t)
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"j4", "j3", "j2", "c1.1", "j1"}},
		{"?limit=2", []string{"j4", "j3"}},
		{"?function=fn", []string{"j4", "c1.1", "j1"}},
		{"?function=fn.openfaas-fn", []string{"j4", "c1.1", "j1"}},
		{"?function=fn.dev", []string{"j3"}},
		{"?function=fn&namespace=dev", []string{"j3"}},
		{"?function=fn.dev&namespace=dev", []string{"j3"}},
		{"?namespace=dev", []string{"j3"}},
		{"?namespace=openfaas-fn&limit=3", []string{"j4", "j2", "c1.1"}},
		{"?namespace=gone", []string{}}, // records outlive their namespace
		{"?state=running", []string{"j4"}},
		{"?state=oom-killed", []string{"j2"}},
		{"?kind=async", []string{"c1.1"}},
		{"?function=fn&state=failed&kind=job", []string{"j1"}},
		{"?function=nope", []string{}},
		{"?limit=1000", []string{"j4", "j3", "j2", "c1.1", "j1"}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			w := f.do(t, http.MethodGet, "/system/executions"+c.query, "")
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if ids := executionIDsOf(t, w.Body.Bytes()); !slices.Equal(ids, c.want) {
				t.Errorf("GET /system/executions%s = %q, want %q", c.query, ids, c.want)
			}
		})
	}
}

// TestExecutionsDefaultLimit: without ?limit= the newest 100.
func TestExecutionsDefaultLimit(t *testing.T) {
	f := newFixture(t, nil)
	start := time.Now().Add(-time.Hour)
	for i := range defaultExecutionList + 5 {
		e := store.Execution{ID: fmt.Sprintf("e%03d", i), Kind: store.ExecutionJob, Function: "openfaas-fn/fn", State: store.ExecutionSucceeded, StartedAt: start.Add(time.Duration(i) * time.Second)}
		if err := f.store.PutExecution(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	ids := executionIDsOf(t, f.do(t, http.MethodGet, "/system/executions", "").Body.Bytes())
	if len(ids) != defaultExecutionList || ids[0] != fmt.Sprintf("e%03d", defaultExecutionList+4) {
		t.Errorf("%d records, first %v", len(ids), ids[:1])
	}
}

// TestExecutionGet: one record in the type's camelCase JSON.
func TestExecutionGet(t *testing.T) {
	f, base := executionFixture(t)
	w := f.do(t, http.MethodGet, "/system/executions/j1", "")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got map[string]any
	decodeJSON(t, w, &got)
	want := map[string]any{
		"id": "j1", "kind": "job", "function": "openfaas-fn/fn", "state": "failed",
		"startedAt": base.Format(time.RFC3339Nano), "finishedAt": base.Add(500 * time.Millisecond).Format(time.RFC3339Nano),
		"durationSeconds": 0.5, "exitCode": float64(3), "stderrHead": "boom", "bytesIn": float64(0), "bytesOut": float64(0),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GET /system/executions/j1 =\n %v\nwant\n %v", got, want)
	}
	w = f.do(t, http.MethodGet, "/system/executions/c1.1", "")
	decodeJSON(t, w, &got)
	if got["attempt"] != float64(1) || got["statusCode"] != float64(200) || got["kind"] != "async" {
		t.Errorf("async record %v", got)
	}
}

func TestExecutionsRefusals(t *testing.T) {
	f, _ := executionFixture(t)
	cases := []struct {
		target string
		want   int
		msg    string // in the answer
	}{
		{"/system/executions/nope", 404, "no execution nope"},
		{"/system/executions/" + strings.Repeat("a", 300), 404, "no execution"},
		{"/system/executions?state=done", 400, "state done: want one of running, succeeded"},
		{"/system/executions?kind=cron", 400, "kind cron: want one of job, async"},
		{"/system/executions?limit=0", 400, "limit 0: want a number from 1 to 1000"},
		{"/system/executions?limit=-3", 400, "limit -3"},
		{"/system/executions?limit=1001", 400, "limit 1001"},
		{"/system/executions?limit=ten", 400, "limit ten"},
		{"/system/executions?function=a%2Fb", 400, "not a valid name or name.namespace"},
		{"/system/executions?function=fn.", 400, "not a valid name"},
		{"/system/executions?namespace=Bad_NS", 400, "namespace Bad_NS is not valid"},
		{"/system/executions?namespace=a%0Ab", 400, `namespace "a\nb" is not valid`},
		{"/system/executions?function=fn.dev&namespace=openfaas-fn", 400, "function fn.dev is not in namespace openfaas-fn"},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			w := f.do(t, http.MethodGet, c.target, "")
			if w.Code != c.want || !strings.Contains(w.Body.String(), c.msg) {
				t.Errorf("GET %s: %d %q, want %d with %q", c.target, w.Code, w.Body, c.want, c.msg)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want a plain-text message", ct)
			}
		})
	}
	for _, m := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
		for _, target := range []string{"/system/executions", "/system/executions/j1"} {
			if w := f.do(t, m, target, ""); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow %q, want 405 GET, HEAD", m, target, w.Code, w.Header().Get("Allow"))
			}
		}
	}
	for _, target := range []string{"/system/executions", "/system/executions/j1"} {
		if w := f.send(t, http.MethodGet, target, "", nil); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d", target, w.Code)
		}
	}
	// Reads wrote nothing: the records are as seeded.
	if list, err := f.store.ListExecutions(context.Background(), store.ExecutionFilter{}); err != nil || len(list) != 5 {
		t.Errorf("records after the refusals: %d, %v", len(list), err)
	}
}

// TestDebugExecutions: the page sums up each function's records (kept,
// running, failures) with its newest runs, in HTML and JSON; without
// records there is no section.
func TestDebugExecutions(t *testing.T) {
	f, _ := executionFixture(t)
	f.h = NewRouter(Config{Store: f.store, Status: f.board, Auth: Auth{User: testUser, Password: testPass}, Debug: DebugHandler(debugFixture())})
	body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String()
	for _, want := range []string{
		`<h2>Executions</h2>`,
		`<tr data-executions-key="openfaas-fn/fn"><td class="key"><code>openfaas-fn/fn</code></td><td class="retained num">3</td><td class="running num">1</td><td class="failures num">1</td>`,
		`<li data-execution="j4"><code>j4</code> job <span class="x-running">running</span> <span class="muted">(`,
		`<li data-execution="c1.1"><code>c1.1</code> async <span class="x-succeeded">succeeded</span> 500ms HTTP 200 <span class="muted">(`,
		`<li data-execution="j1"><code>j1</code> job <span class="x-failed">failed</span> 500ms exit 3 <span class="muted">(`,
		`<tr data-executions-key="openfaas-fn/other">`,
		`<tr data-executions-key="dev/fn">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	w := f.do(t, http.MethodGet, "/debug/reconcile?format=json", "")
	var v struct {
		Executions []store.ExecutionSummary `json:"executions"`
	}
	decodeJSON(t, w, &v)
	if len(v.Executions) != 3 || v.Executions[1].Function != "openfaas-fn/fn" || v.Executions[1].Failures != 1 || len(v.Executions[1].Last) != 3 {
		t.Errorf("JSON executions = %+v", v.Executions)
	}

	empty := newFixture(t, func(c *Config) { c.Debug = DebugHandler(debugFixture()) })
	if body := empty.do(t, http.MethodGet, "/debug/reconcile", "").Body.String(); strings.Contains(body, "<h2>Executions</h2>") {
		t.Error("a section without records is shown")
	}
}

type failingSummaries struct{}

func (failingSummaries) SummarizeExecutions(context.Context, int) ([]store.ExecutionSummary, error) {
	return nil, fmt.Errorf("summarize executions: %w", context.DeadlineExceeded)
}

// TestDebugExecutionsError: a store that cannot answer is said so, and the
// rest of the page is served.
func TestDebugExecutionsError(t *testing.T) {
	h := &debugHandler{src: debugFixture(), executions: failingSummaries{}}
	rec := httptestGet(h, "/debug/reconcile")
	if !strings.Contains(rec, "<h2>Executions</h2>") || !strings.Contains(rec, "summarize executions: context deadline exceeded") ||
		!strings.Contains(rec, `data-key="openfaas-fn/healthy"`) {
		t.Errorf("page:\n%s", rec)
	}
}

// httptestGet serves a GET of target with h and returns the body.
func httptestGet(h http.Handler, target string) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Body.String()
}
