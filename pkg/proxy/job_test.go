package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// recordingJobs is a JobRunner that answers with what it was handed.
type recordingJobs struct {
	mu    sync.Mutex
	calls []JobCall
	body  []string
	code  int
	load  *load.Signals
	// inFlight is the function's in-flight count seen during the call.
	inFlight int64
}

func (j *recordingJobs) ServeJob(w http.ResponseWriter, r *http.Request, c JobCall) int {
	b, err := io.ReadAll(r.Body)
	j.mu.Lock()
	j.calls = append(j.calls, c)
	j.body = append(j.body, string(b))
	if j.load != nil {
		j.inFlight = j.load.Function(c.Key).InFlight
	}
	j.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return http.StatusRequestEntityTooLarge
	}
	w.WriteHeader(j.code)
	fmt.Fprint(w, "job ran")
	return j.code
}

func TestJobFunctionCallsGoToTheJobRunner(t *testing.T) {
	key := faas.Key("ns", "fn")
	tests := []struct {
		name     string
		jobs     bool
		path     string
		body     string
		maxBody  int64
		timeouts faas.Timeouts
		code     int
		want     JobCall
	}{
		{name: "handed over with the call's ID, path and the daemon's timeout", jobs: true, path: "/function/fn.ns/a%2Fb/c?x=1", body: "in",
			code: 200, want: JobCall{Key: key, Name: "fn", Namespace: "ns", Path: "/a/b/c", Timeout: 3 * time.Second}},
		{name: "the function's exec timeout", jobs: true, path: "/function/fn.ns", timeouts: faas.Timeouts{Exec: 7 * time.Second},
			code: 500, want: JobCall{Key: key, Name: "fn", Namespace: "ns", Path: "/", Timeout: 7 * time.Second}},
		{name: "a body over the bound is 413 before any run", jobs: true, path: "/function/fn.ns", body: strings.Repeat("x", 20), maxBody: 10, code: 413},
		{name: "no job runner: 501", path: "/function/fn.ns", code: 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := NewCache()
			cache.SetTimeouts(key, tt.timeouts)
			cache.Set(key, faas.JobEndpoints(key))
			signals := new(load.Signals)
			runner := &recordingJobs{code: tt.code, load: signals}
			opts := Options{Timeout: 3 * time.Second, MaxBodyBytes: tt.maxBody, Load: signals, Log: quietLogger()}
			if tt.jobs {
				opts.Jobs = runner
			}
			var observed []int
			var mu sync.Mutex
			opts.Observe = func(k string, code int, _ time.Duration) {
				mu.Lock()
				observed = append(observed, code)
				mu.Unlock()
			}
			base := front(t, New(cache, opts))
			req, _ := http.NewRequest(http.MethodPost, base+tt.path, strings.NewReader(tt.body))
			req.Header.Set(HeaderCallID, "my-call")
			resp, body := do(t, req)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.code)
			}
			if tt.code == 501 && !strings.Contains(string(body), "job mode needs RUNTIME=docker") {
				t.Errorf("501 body %q", body)
			}
			runner.mu.Lock()
			defer runner.mu.Unlock()
			if tt.want.Key == "" {
				if len(runner.calls) != 0 {
					t.Errorf("runner called: %+v", runner.calls)
				}
				return
			}
			if len(runner.calls) != 1 {
				t.Fatalf("runner called %d times", len(runner.calls))
			}
			got := runner.calls[0]
			if got.Key != tt.want.Key || got.Name != tt.want.Name || got.Namespace != tt.want.Namespace || got.Path != tt.want.Path ||
				got.Timeout != tt.want.Timeout || got.CallID != "my-call" || got.StartHeader == "" || got.Start.IsZero() {
				t.Errorf("JobCall %+v, want %+v", got, tt.want)
			}
			if runner.body[0] != tt.body {
				t.Errorf("body %q, want %q", runner.body[0], tt.body)
			}
			if runner.inFlight != 1 {
				t.Errorf("function in flight during the run: %d, want 1 (load signals count job calls)", runner.inFlight)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(observed) != 1 || observed[0] != tt.code {
				t.Errorf("observed %v, want one call with %d", observed, tt.code)
			}
		})
	}
}

// A job function whose pseudo endpoint is not published yet is waited for
// like a replica.
func TestJobCallWaitsForThePseudoEndpoint(t *testing.T) {
	key := faas.Key("openfaas-fn", "fn")
	cache := NewCache()
	cache.Set(key, nil)
	runner := &recordingJobs{code: 200}
	base := front(t, New(cache, Options{ReadyWait: 5 * time.Second, Jobs: runner, Log: quietLogger()}))
	time.AfterFunc(50*time.Millisecond, func() { cache.Set(key, faas.JobEndpoints(key)) })
	resp, body := get(t, base+"/function/fn")
	if resp.StatusCode != 200 || string(body) != "job ran" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}
