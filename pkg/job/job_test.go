package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fakeRunner stands in for the runtime: run decides what each run does.
type fakeRunner struct {
	mu    sync.Mutex
	info  runtime.JobInfo
	notOK bool
	run   func(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error)
	reqs  []runtime.RunRequest
}

func (f *fakeRunner) Job(string) (runtime.JobInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info, !f.notOK
}

func (f *fakeRunner) RunOnce(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	run := f.run
	f.mu.Unlock()
	return run(ctx, req)
}

func (f *fakeRunner) requests() []runtime.RunRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// fakeRecords keeps every record written, in order.
type fakeRecords struct {
	mu   sync.Mutex
	puts []store.Execution
}

func (f *fakeRecords) PutExecution(_ context.Context, e store.Execution) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, e)
	return nil
}

func (f *fakeRecords) all() []store.Execution {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.puts)
}

// ran is a run that read stdin, wrote out and err, and exited with code.
func ran(out, stderr string, res runtime.RunResult) func(context.Context, runtime.RunRequest) (runtime.RunResult, error) {
	return func(_ context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
		if req.Stdin != nil {
			if _, err := io.Copy(io.Discard, req.Stdin); err != nil {
				return runtime.RunResult{Started: time.Now()}, fmt.Errorf("copy the request body to stdin: %w", err)
			}
		}
		_, _ = io.WriteString(req.Stderr, stderr)
		_, _ = io.WriteString(req.Stdout, out)
		res.Container = "0123456789ab"
		res.Started = time.Now().Add(-10 * time.Millisecond)
		res.Exited = time.Now()
		return res, nil
	}
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func call(key string) proxy.JobCall {
	ns, name, _ := strings.Cut(key, "/")
	return proxy.JobCall{Key: key, Name: name, Namespace: ns, CallID: "call-1", Start: time.Now(), StartHeader: "1", Path: "/", Timeout: 5 * time.Second}
}

func TestServeJobAnswers(t *testing.T) {
	errDocker := errors.New("create the job's container: boom")
	tests := []struct {
		name     string
		notJob   bool
		run      func(context.Context, runtime.RunRequest) (runtime.RunResult, error)
		body     string
		maxBody  int64
		cancel   bool // the client goes away during the run
		code     int
		respBody string // "" = don't check
		headers  map[string]string
		state    string
		exit     *int
		internal bool
	}{
		{name: "exit 0 is 200 with stdout", run: ran("hello", "", runtime.RunResult{}), code: 200, respBody: "hello",
			headers: map[string]string{HeaderExitCode: "0", proxy.HeaderCallID: "call-1"}, state: store.ExecutionSucceeded, exit: new(0)},
		{name: "non-zero exit is 500 with stdout and the code", run: ran("partial", "oops\n", runtime.RunResult{ExitCode: 3}), code: 500, respBody: "partial",
			headers: map[string]string{HeaderExitCode: "3"}, state: store.ExecutionFailed, exit: new(3)},
		{name: "OOM-killed is 500 with X-OOM-Killed", run: ran("", "", runtime.RunResult{ExitCode: 137, OOMKilled: true}), code: 500,
			headers: map[string]string{HeaderExitCode: "137", HeaderOOMKilled: "true"}, state: store.ExecutionOOMKilled, exit: new(137)},
		{name: "timed out is 504", run: ran("some", "", runtime.RunResult{ExitCode: 137, TimedOut: true}), code: 504,
			respBody: "function fn.ns timed out after 5s\n", headers: map[string]string{HeaderExitCode: "137"}, state: store.ExecutionTimedOut, exit: new(137)},
		{name: "could not run is 502", run: func(context.Context, runtime.RunRequest) (runtime.RunResult, error) {
			return runtime.RunResult{}, errDocker
		}, code: 502, respBody: "could not run a job of fn.ns\n", state: store.ExecutionFailed, internal: true},
		{name: "no job function is 503", notJob: true, code: 503, internal: true},
		{name: "run says no job function: 503", run: func(context.Context, runtime.RunRequest) (runtime.RunResult, error) {
			return runtime.RunResult{}, fmt.Errorf("function ns/fn: %w", runtime.ErrNotJob)
		}, code: 503, state: store.ExecutionFailed, internal: true},
		{name: "body over the bound is 413", run: ran("x", "", runtime.RunResult{}), body: strings.Repeat("b", 100), maxBody: 10,
			code: 413, respBody: "request body larger than 10 bytes\n", state: store.ExecutionFailed, internal: true},
		{name: "stopped by a removal is 503", run: func(context.Context, runtime.RunRequest) (runtime.RunResult, error) {
			return runtime.RunResult{Started: time.Now(), Exited: time.Now(), ExitCode: 137, Killed: true}, nil
		}, code: 503, state: store.ExecutionFailed, internal: true},
		{name: "client gone is 499", cancel: true, run: func(ctx context.Context, _ runtime.RunRequest) (runtime.RunResult, error) {
			<-ctx.Done()
			return runtime.RunResult{Started: time.Now(), Exited: time.Now(), ExitCode: 137, Killed: true}, nil
		}, code: proxy.StatusClientClosedRequest, state: store.ExecutionFailed, internal: true},
		{name: "output broken after start is 502", run: func(context.Context, runtime.RunRequest) (runtime.RunResult, error) {
			return runtime.RunResult{Started: time.Now(), Exited: time.Now()}, errors.New("copy the output: broken")
		}, code: 502, state: store.ExecutionFailed, exit: new(0), internal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &fakeRunner{notOK: tt.notJob, run: tt.run}
			recs := &fakeRecords{}
			e := New(Config{Log: quietLog()}, fr, recs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/function/fn.ns", strings.NewReader(tt.body))
			if tt.maxBody > 0 {
				r.ContentLength = -1 // streamed: the bound is met while reading
				r.Body = http.MaxBytesReader(nil, r.Body, tt.maxBody)
			}
			w := httptest.NewRecorder()
			if tt.cancel {
				time.AfterFunc(20*time.Millisecond, cancel)
			}
			got := e.ServeJob(w, r, call("ns/fn"))
			if got != tt.code || w.Code != tt.code && tt.code != proxy.StatusClientClosedRequest {
				t.Fatalf("ServeJob = %d (recorder %d), want %d; body %q", got, w.Code, tt.code, w.Body.String())
			}
			if tt.respBody != "" && w.Body.String() != tt.respBody {
				t.Errorf("body %q, want %q", w.Body.String(), tt.respBody)
			}
			for k, v := range tt.headers {
				if g := w.Header().Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			if g := w.Header().Get(proxy.HeaderInternal) != ""; g != tt.internal {
				t.Errorf("internal answer %v, want %v", g, tt.internal)
			}
			e.Wait(context.Background())
			puts := recs.all()
			if tt.state == "" {
				if len(puts) != 0 {
					t.Fatalf("records %+v, want none", puts)
				}
				return
			}
			if len(puts) != 1 {
				t.Fatalf("records %+v, want the final one only", puts)
			}
			rec := puts[0]
			if rec.State != tt.state || rec.StatusCode != tt.code || rec.ID != "call-1" || rec.Kind != store.ExecutionJob || rec.Function != "ns/fn" {
				t.Errorf("record %+v, want state %s, status %d", rec, tt.state, tt.code)
			}
			switch {
			case tt.exit == nil && rec.ExitCode != nil:
				t.Errorf("record exit code %d, want none", *rec.ExitCode)
			case tt.exit != nil && (rec.ExitCode == nil || *rec.ExitCode != *tt.exit):
				t.Errorf("record exit code %v, want %d", rec.ExitCode, *tt.exit)
			}
		})
	}
}

func TestServeJobStreamsBeyondTheBufferWithTrailers(t *testing.T) {
	big := strings.Repeat("0123456789", 10)
	tests := []struct {
		name     string
		res      runtime.RunResult
		trailers map[string]string
	}{
		{"exit 0", runtime.RunResult{}, map[string]string{HeaderExitCode: "0", HeaderOOMKilled: "", HeaderTimedOut: ""}},
		{"exit 4", runtime.RunResult{ExitCode: 4}, map[string]string{HeaderExitCode: "4"}},
		{"timed out", runtime.RunResult{ExitCode: 137, TimedOut: true}, map[string]string{HeaderExitCode: "137", HeaderTimedOut: "true"}},
		{"OOM-killed", runtime.RunResult{ExitCode: 137, OOMKilled: true}, map[string]string{HeaderExitCode: "137", HeaderOOMKilled: "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &fakeRunner{run: ran(big, "", tt.res)}
			e := New(Config{BufferBytes: 10, Log: quietLog()}, fr, nil)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.ServeJob(w, r, call("ns/fn"))
			}))
			defer srv.Close()
			resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("in"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != big {
				t.Fatalf("status %d body %q, want 200 and all the output", resp.StatusCode, b)
			}
			if resp.Header.Get(HeaderExitCode) != "" {
				t.Errorf("exit code sent as a header of a streamed answer")
			}
			for k, v := range tt.trailers {
				if g := resp.Trailer.Get(k); g != v {
					t.Errorf("trailer %s = %q, want %q (trailers %v)", k, g, v, resp.Trailer)
				}
			}
			if resp.Trailer.Get(proxy.HeaderDuration) == "" {
				t.Errorf("no %s trailer", proxy.HeaderDuration)
			}
		})
	}
}

// A streaming function's (or an event-stream caller's) first line reaches
// the client while the process still runs; how it ended follows in the
// trailers. Nothing written still gets the exact status.
func TestServeJobStreamsFromTheFirstByte(t *testing.T) {
	tests := []struct {
		name   string
		stream bool
		accept string
	}{
		{name: "io.dockerfaas.job.stream: true", stream: true},
		{name: "Accept: text/event-stream", accept: "text/event-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan struct{})
			fr := &fakeRunner{info: runtime.JobInfo{Stream: tt.stream}, run: func(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
				res := runtime.RunResult{Started: time.Now()}
				_, _ = io.WriteString(req.Stdout, "first\n")
				select {
				case <-seen:
				case <-time.After(5 * time.Second):
					return res, errors.New("the first line did not reach the client while the run went on")
				}
				_, _ = io.WriteString(req.Stdout, "second\n")
				res.ExitCode, res.Exited = 3, time.Now()
				return res, nil
			}}
			e := New(Config{Log: quietLog()}, fr, nil) // the default bound, far above the output
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				e.ServeJob(w, r, call("ns/fn"))
			}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("in"))
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := make([]byte, len("first\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first\n" {
				t.Fatalf("first line %q, %v", first, err)
			}
			close(seen)
			rest, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(rest) != "second\n" {
				t.Errorf("status %d, rest %q; want 200 and the second line", resp.StatusCode, rest)
			}
			if g := resp.Trailer.Get(HeaderExitCode); g != "3" {
				t.Errorf("trailer %s = %q, want 3", HeaderExitCode, g)
			}
		})
	}
	t.Run("no output keeps the exact status", func(t *testing.T) {
		fr := &fakeRunner{info: runtime.JobInfo{Stream: true}, run: ran("", "", runtime.RunResult{ExitCode: 3})}
		e := New(Config{Log: quietLog()}, fr, nil)
		w := httptest.NewRecorder()
		e.ServeJob(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("in")), call("ns/fn"))
		if w.Code != 500 || w.Header().Get(HeaderExitCode) != "3" {
			t.Errorf("status %d, %s %q; want 500 and 3", w.Code, HeaderExitCode, w.Header().Get(HeaderExitCode))
		}
	})
}

func TestServeJobConcurrencyLimit(t *testing.T) {
	tests := []struct {
		name       string
		annotation int // the function's concurrency (0: the daemon's)
		daemon     int
		want       int // runs at once
	}{
		{"annotation", 2, 5, 2},
		{"daemon default", 0, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			running, peak := 0, 0
			fr := &fakeRunner{info: runtime.JobInfo{Concurrency: tt.annotation}, run: func(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				defer func() { mu.Lock(); running--; mu.Unlock() }()
				if slices.Contains(req.Env, "Http_Query=block=1") {
					<-release
				}
				return runtime.RunResult{Started: time.Now(), Exited: time.Now()}, nil
			}}
			e := New(Config{Concurrency: tt.daemon, ReadyWait: 150 * time.Millisecond, Log: quietLog()}, fr, nil)
			serve := func(query string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				e.ServeJob(w, httptest.NewRequest(http.MethodPost, "/function/fn.ns?"+query, nil), call("ns/fn"))
				return w
			}
			var wg sync.WaitGroup
			codes := make(chan int, tt.want)
			for range tt.want {
				wg.Add(1)
				go func() { defer wg.Done(); codes <- serve("block=1").Code }()
			}
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return running == tt.want })
			start := time.Now()
			w := serve("over=1")
			if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), fmt.Sprintf("running %d jobs, its limit", tt.want)) {
				t.Fatalf("call over the limit: %d %q, want 429 naming the limit", w.Code, w.Body.String())
			}
			if waited := time.Since(start); waited < 150*time.Millisecond {
				t.Errorf("429 after %s, want after ReadyWait (150ms)", waited)
			}
			// A call that waits gets the slot of a run that ends.
			done := make(chan int)
			go func() { done <- serve("waits=1").Code }()
			time.Sleep(20 * time.Millisecond)
			close(release)
			if c := <-done; c != 200 {
				t.Errorf("call that waited for a slot: %d, want 200", c)
			}
			wg.Wait()
			close(codes)
			for c := range codes {
				if c != 200 {
					t.Errorf("blocked call: %d, want 200", c)
				}
			}
			if peak != tt.want {
				t.Errorf("peak runs at once %d, want %d", peak, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeJobEnvironmentAndRequest(t *testing.T) {
	tests := []struct {
		name     string
		keepAuth bool
		want     []string
		absent   []string
	}{
		{name: "classic watchdog names, credentials dropped",
			want: []string{"Http_Method=PUT", "Http_Path=/a/b", "Http_Query=x=1&y=2", "Http_X_Foo=first", "Http_Content_Type=text/plain",
				"Http_X_Call_Id=call-1", "Http_X_Start_Time=1", "Http_Host=example.test", "Http_Content_Length=4", "Http_ContentLength=4"},
			absent: []string{"Http_Authorization=", "Http_Proxy_Authorization="}},
		{name: "credentials kept without invoke auth", keepAuth: true, want: []string{"Http_Authorization=Basic abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &fakeRunner{info: runtime.JobInfo{Env: map[string]string{}}, run: ran("", "", runtime.RunResult{})}
			e := New(Config{KeepAuthorization: tt.keepAuth, Log: quietLog()}, fr, nil)
			r := httptest.NewRequest(http.MethodPut, "http://example.test/function/fn.ns/a/b?x=1&y=2", strings.NewReader("body"))
			r.Header.Add("X-Foo", "first")
			r.Header.Add("X-Foo", "second")
			r.Header.Set("Content-Type", "text/plain")
			r.Header.Set("Authorization", "Basic abc")
			r.Header.Set("Proxy-Authorization", "Basic def")
			c := call("ns/fn")
			c.Path = "/a/b"
			c.Timeout = 7 * time.Second
			w := httptest.NewRecorder()
			e.ServeJob(w, r, c)
			reqs := fr.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d runs", len(reqs))
			}
			req := reqs[0]
			if req.Key != "ns/fn" || req.CallID != "call-1" || req.Timeout != 7*time.Second {
				t.Errorf("request %+v", req)
			}
			for _, kv := range tt.want {
				if !slices.Contains(req.Env, kv) {
					t.Errorf("env lacks %s: %q", kv, req.Env)
				}
			}
			for _, prefix := range tt.absent {
				for _, kv := range req.Env {
					if strings.HasPrefix(kv, prefix) {
						t.Errorf("env has %s", kv)
					}
				}
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type %q, want the request's, as the classic watchdog answers", ct)
			}
		})
	}
}

func TestServeJobContentTypeFromFunction(t *testing.T) {
	fr := &fakeRunner{info: runtime.JobInfo{Env: map[string]string{"content_type": "application/json"}}, run: ran("{}", "", runtime.RunResult{})}
	e := New(Config{Log: quietLog()}, fr, nil)
	r := httptest.NewRequest(http.MethodPost, "/function/fn.ns", strings.NewReader("x"))
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	e.ServeJob(w, r, call("ns/fn"))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want the function's content_type", ct)
	}
}

func TestServeJobRecords(t *testing.T) {
	long := strings.Repeat("a", recordHeadTail) + "MIDDLE" + strings.Repeat("z", recordHeadTail)
	tests := []struct {
		name        string
		sleep       time.Duration
		out, stderr string
		wantRunning bool
		outHead     string
		outTail     string
	}{
		{name: "short run: one write, the final one", out: "small", stderr: "warn\n", outHead: "small"},
		{name: "long run: running, then final", sleep: 400 * time.Millisecond, out: long, wantRunning: true,
			outHead: strings.Repeat("a", recordHeadTail), outTail: strings.Repeat("z", recordHeadTail)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := ran(tt.out, tt.stderr, runtime.RunResult{})
			fr := &fakeRunner{run: func(ctx context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
				time.Sleep(tt.sleep)
				return run(ctx, req)
			}}
			recs := &fakeRecords{}
			e := New(Config{Log: quietLog()}, fr, recs)
			w := httptest.NewRecorder()
			e.ServeJob(w, httptest.NewRequest(http.MethodPost, "/function/fn.ns", strings.NewReader("input")), call("ns/fn"))
			e.Wait(context.Background())
			puts := recs.all()
			want := 1
			if tt.wantRunning {
				want = 2
			}
			if len(puts) != want {
				t.Fatalf("%d records written, want %d: %+v", len(puts), want, puts)
			}
			if tt.wantRunning && (puts[0].State != store.ExecutionRunning || puts[0].Final()) {
				t.Errorf("first write %+v, want running", puts[0])
			}
			final := puts[len(puts)-1]
			if final.State != store.ExecutionSucceeded || final.BytesIn != 5 || final.BytesOut != int64(len(tt.out)) ||
				final.StdoutHead != tt.outHead || final.StdoutTail != tt.outTail || final.StderrHead != tt.stderr || final.FinishedAt.IsZero() {
				t.Errorf("final record %+v", final)
			}
			if !final.StartedAt.Equal(puts[0].StartedAt) {
				t.Errorf("start moved between writes")
			}
		})
	}
}

func TestHeadTail(t *testing.T) {
	tests := []struct {
		name       string
		max        int
		writes     []string
		head, tail string
	}{
		{"fits", 5, []string{"ab", "c"}, "abc", ""},
		{"head then tail", 3, []string{"abcdef"}, "abc", "def"},
		{"tail keeps the last max", 3, []string{"abc", "defg", "hijk"}, "abc", "ijk"},
		{"a character cut at the head's end is dropped", 4, []string{"abcé", "xyz"}, "abc", "xyz"},
		{"a character cut at the tail's start is dropped", 2, []string{"ab", "cdéf"}, "ab", "f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHeadTail(tt.max)
			for _, w := range tt.writes {
				_, _ = h.Write([]byte(w))
			}
			if h.Head() != tt.head || h.Tail() != tt.tail {
				t.Errorf("head %q tail %q, want %q %q", h.Head(), h.Tail(), tt.head, tt.tail)
			}
		})
	}
}

// plainWriter is a ResponseWriter that cannot flush, like an in-process
// caller's.
type plainWriter struct {
	h    http.Header
	code int
	body strings.Builder
}

func (p *plainWriter) Header() http.Header         { return p.h }
func (p *plainWriter) WriteHeader(code int)        { p.code = code }
func (p *plainWriter) Write(b []byte) (int, error) { return p.body.Write(b) }

func TestServeJobStreamsToAWriterThatCannotFlush(t *testing.T) {
	var writeErr error
	fr := &fakeRunner{run: func(_ context.Context, req runtime.RunRequest) (runtime.RunResult, error) {
		for range 10 {
			if _, err := io.WriteString(req.Stdout, "0123456789"); err != nil {
				writeErr = err
			}
		}
		return runtime.RunResult{Started: time.Now(), Exited: time.Now()}, nil
	}}
	e := New(Config{BufferBytes: 15, Log: quietLog()}, fr, nil)
	w := &plainWriter{h: http.Header{}}
	code := e.ServeJob(w, httptest.NewRequest(http.MethodPost, "/function/fn.ns", nil), call("ns/fn"))
	if writeErr != nil || code != 200 || w.body.Len() != 100 {
		t.Errorf("write error %v, status %d, %d bytes; want all 100 bytes with 200", writeErr, code, w.body.Len())
	}
}
