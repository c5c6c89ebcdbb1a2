package async

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fakeFunctions stands in for the proxy: each function is a handler
// keyed by "name.namespace", and every call is counted by call id.
type fakeFunctions struct {
	mu    sync.Mutex
	fns   map[string]http.HandlerFunc
	calls map[string]int // by X-Call-Id
}

func (f *fakeFunctions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/function/")
	ref, _, _ := strings.Cut(rest, "/")
	f.mu.Lock()
	h := f.fns[ref]
	f.calls[r.Header.Get("X-Call-Id")]++
	f.mu.Unlock()
	if h == nil {
		w.Header().Set(HeaderInternal, "proxy")
		http.Error(w, "function "+ref+" not found", http.StatusNotFound)
		return
	}
	h(w, r)
}

func (f *fakeFunctions) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

// callbacks records the callbacks a test receiver got, by call id.
type callbacks struct {
	mu   sync.Mutex
	got  map[string][]http.Header
	body map[string]string
}

func (c *callbacks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	id := r.Header.Get("X-Call-Id")
	c.got[id] = append(c.got[id], r.Header.Clone())
	c.body[id] = string(b)
	c.mu.Unlock()
}

func (c *callbacks) of(id string) ([]http.Header, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id], c.body[id]
}

type harness struct {
	t     *testing.T
	st    *store.Memory
	fns   *fakeFunctions
	cb    *callbacks
	srv   *httptest.Server
	svc   *Service
	stop  context.CancelFunc
	done  chan error
	grace time.Duration // StopGrace of the services started
}

func newHarness(t *testing.T, functions ...string) *harness {
	t.Helper()
	h := &harness{
		t:   t,
		st:  store.NewMemory(),
		fns: &fakeFunctions{fns: map[string]http.HandlerFunc{}, calls: map[string]int{}},
		cb:  &callbacks{got: map[string][]http.Header{}, body: map[string]string{}},
	}
	h.srv = httptest.NewServer(h.cb)
	t.Cleanup(h.srv.Close)
	for _, fn := range functions {
		h.deploy(fn, nil)
	}
	return h
}

func (h *harness) deploy(name string, annotations map[string]string) {
	h.t.Helper()
	spec := types.FunctionDeployment{Service: name, Image: "img"}
	if annotations != nil {
		spec.Annotations = &annotations
	}
	if _, err := h.st.Create(context.Background(), spec, 1); err != nil {
		h.t.Fatal(err)
	}
	h.fns.mu.Lock()
	h.fns.fns[name+".openfaas-fn"] = func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Method", r.Method)
		_, _ = w.Write(b)
	}
	h.fns.mu.Unlock()
}

func (h *harness) handle(name string, fn http.HandlerFunc) {
	h.fns.mu.Lock()
	h.fns.fns[name+".openfaas-fn"] = fn
	h.fns.mu.Unlock()
}

// start runs a new Service over the harness's store.
func (h *harness) start() {
	h.t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	svc, err := New(Config{
		Defaults:  Policy{MaxInflight: 4, Attempts: 3, Codes: DefaultRetryCodes, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond},
		Log:       log,
		StopGrace: h.grace,
	}, h.st, h.fns)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.svc, h.stop, h.done = svc, cancel, make(chan error, 1)
	go func() { h.done <- svc.Run(ctx) }()
	h.t.Cleanup(h.halt)
}

// halt stops the Service as a shutdown would.
func (h *harness) halt() {
	if h.stop == nil {
		return
	}
	h.stop()
	if err := <-h.done; err != nil {
		h.t.Error(err)
	}
	h.stop = nil
}

func (h *harness) accept(fn, id string, callback bool) Record {
	h.t.Helper()
	r := Request{CallID: id, Function: "openfaas-fn/" + fn, Method: http.MethodPost, Path: "/", Body: []byte("body-" + id)}
	if callback {
		r.CallbackURL = h.srv.URL + "/cb"
	}
	rec, _, err := h.svc.Accept(context.Background(), r)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func (h *harness) waitState(id, state string) Record {
	h.t.Helper()
	var rec Record
	poll.Until(h.t, 5*time.Second, "call "+id+" "+state, func() bool {
		var err error
		if rec, err = h.svc.Get(context.Background(), id); err != nil {
			h.t.Fatal(err)
		}
		return rec.State == state && (rec.Callback == nil || rec.Callback.State != store.CallbackPending)
	})
	return rec
}

func TestCallSucceedsAndCallsBack(t *testing.T) {
	h := newHarness(t, "echo")
	h.start()
	rec := h.accept("echo", "c1", true)
	if rec.State != store.CallQueued && rec.State != store.CallRunning {
		t.Fatalf("accepted record state %q", rec.State)
	}
	rec = h.waitState("c1", store.CallSucceeded)
	if rec.Attempts != 1 || rec.LastStatus != 200 || rec.Callback == nil || rec.Callback.State != store.CallbackDelivered {
		t.Fatalf("record %+v", rec)
	}
	hdrs, body := h.cb.of("c1")
	if len(hdrs) != 1 || body != "body-c1" {
		t.Fatalf("callbacks %v body %q", hdrs, body)
	}
	for k, want := range map[string]string{
		"X-Function-Status": "200", "X-Function-Name": "echo.openfaas-fn", "X-Call-Id": "c1",
		"X-Retry": "0", "X-Retry-Max": "2", "X-Echo-Method": "POST",
	} {
		if got := hdrs[0].Get(k); got != want {
			t.Errorf("callback %s = %q, want %q", k, got, want)
		}
	}
	if _, err := h.st.GetCallPayload(context.Background(), "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("payload kept after the callback was delivered: %v", err)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	h := newHarness(t, "flaky")
	var n atomic.Int32
	h.handle("flaky", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	h.start()
	h.accept("flaky", "r1", true)
	rec := h.waitState("r1", store.CallSucceeded)
	if rec.Attempts != 3 || h.fns.count("r1") != 3 {
		t.Fatalf("attempts %d, invocations %d, want 3", rec.Attempts, h.fns.count("r1"))
	}
	hdrs, _ := h.cb.of("r1")
	if len(hdrs) != 1 || hdrs[0].Get("X-Retry") != "2" {
		t.Fatalf("callbacks %v", hdrs)
	}
}

func TestDeadLetterAfterLastAttempt(t *testing.T) {
	h := newHarness(t, "bad")
	h.handle("bad", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	h.start()
	h.accept("bad", "d1", true)
	rec := h.waitState("d1", store.CallFailed)
	if rec.Attempts != 3 || rec.LastStatus != 500 {
		t.Fatalf("record %+v", rec)
	}
	hdrs, body := h.cb.of("d1")
	if len(hdrs) != 1 || hdrs[0].Get("X-Function-Status") != "500" || !strings.Contains(body, "boom") {
		t.Fatalf("callbacks %v body %q", hdrs, body)
	}
}

func TestNotRetriedStatusFailsAtOnce(t *testing.T) {
	h := newHarness(t, "teapot")
	h.handle("teapot", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h.start()
	h.accept("teapot", "t1", false)
	if rec := h.waitState("t1", store.CallFailed); rec.Attempts != 1 {
		t.Fatalf("record %+v", rec)
	}
}

func TestMaxInflightAndFairness(t *testing.T) {
	h := newHarness(t, "fast")
	h.deploy("slow", map[string]string{AnnotationMaxInflight: "2"})
	release := make(chan struct{})
	var running, peak atomic.Int32
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	h.start()
	slow := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	for _, id := range slow {
		h.accept("slow", id, false)
	}
	poll.Until(t, 5*time.Second, "two slow calls running", func() bool { return running.Load() == 2 })
	// The slow function's backlog must not hold up the fast one.
	for _, id := range []string{"f0", "f1", "f2"} {
		h.accept("fast", id, false)
		h.waitState(id, store.CallSucceeded)
	}
	var slowDepth *Depth
	for _, d := range h.svc.Depths() { // fast's queue may still be there, emptying
		if d.Function == "openfaas-fn/slow" {
			slowDepth = &d
		}
	}
	if slowDepth == nil || slowDepth.Running != 2 || slowDepth.Queued != 4 || slowDepth.MaxInflight != 2 {
		t.Fatalf("depth of slow: %+v", slowDepth)
	}
	if rec, _ := h.svc.Get(context.Background(), "s0"); rec.State != store.CallRunning {
		t.Errorf("s0 is %s, want running", rec.State)
	}
	close(release)
	for _, id := range slow {
		h.waitState(id, store.CallSucceeded)
	}
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrency %d, want 2", p)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t)
	h.deploy("slow", map[string]string{AnnotationMaxInflight: "1"})
	release := make(chan struct{})
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	h.start()
	h.accept("slow", "a", false)
	h.accept("slow", "b", false)
	h.accept("slow", "c", false)
	ctx := context.Background()
	poll.Until(t, 5*time.Second, "a running", func() bool { return h.fns.count("a") == 1 })
	rec, err := h.svc.Cancel(ctx, "c") // queued
	if err != nil || rec.State != store.CallCancelled {
		t.Fatalf("cancel c: %+v %v", rec, err)
	}
	if rec, err = h.svc.Cancel(ctx, "a"); err != nil || rec.State != store.CallCancelled { // running
		t.Fatalf("cancel a: %+v %v", rec, err)
	}
	close(release)
	h.waitState("b", store.CallSucceeded)
	if _, err := h.svc.Cancel(ctx, "b"); !errors.Is(err, ErrFinished) {
		t.Fatalf("cancel of a finished call: %v", err)
	}
	if _, err := h.svc.Cancel(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel of an unknown call: %v", err)
	}
	if n := h.fns.count("c"); n != 0 {
		t.Fatalf("cancelled queued call ran %d times", n)
	}
	if rec, _ := h.svc.Get(ctx, "a"); rec.State != store.CallCancelled {
		t.Fatalf("a ended %s after its cancelled attempt returned", rec.State)
	}
}

func TestDeletedFunctionCancelsItsCalls(t *testing.T) {
	h := newHarness(t)
	h.deploy("gone", map[string]string{AnnotationMaxInflight: "1"})
	block := make(chan struct{})
	h.handle("gone", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	h.start()
	h.accept("gone", "g1", false)
	h.accept("gone", "g2", false)
	poll.Until(t, 5*time.Second, "g1 running", func() bool { return h.fns.count("g1") == 1 })
	if err := h.st.Delete(context.Background(), "openfaas-fn/gone"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g1", "g2"} {
		rec := h.waitState(id, store.CallCancelled)
		if rec.LastError != "function deleted" {
			t.Errorf("%s: lastError %q", id, rec.LastError)
		}
	}
	close(block)
}

func TestPendingCallsResumeAfterRestart(t *testing.T) {
	h := newHarness(t, "echo")
	h.start()
	h.halt() // stopped: accepts are stored but not run
	for _, id := range []string{"p1", "p2", "p3"} {
		h.accept("echo", id, true)
	}
	// One is half way: retrying, due now.
	if _, err := h.st.UpdateCall(context.Background(), "p2", func(c *store.Call) (store.PayloadChange, error) {
		c.State, c.Attempts, c.NextAttemptAt = store.CallRetrying, 1, time.Now()
		return store.PayloadChange{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.start()
	for _, id := range []string{"p1", "p2", "p3"} {
		h.waitState(id, store.CallSucceeded)
		if n := h.fns.count(id); n != 1 {
			t.Errorf("%s invoked %d times", id, n)
		}
		if hdrs, _ := h.cb.of(id); len(hdrs) != 1 {
			t.Errorf("%s: %d callbacks", id, len(hdrs))
		}
	}
	// A finished call is never run again.
	h.halt()
	h.start()
	h.accept("echo", "p4", false)
	h.waitState("p4", store.CallSucceeded)
	if n := h.fns.count("p1"); n != 1 {
		t.Errorf("p1 ran again after a restart: %d", n)
	}
}

func TestPendingCallbackResumesAfterRestart(t *testing.T) {
	h := newHarness(t, "echo")
	var refuse atomic.Bool
	refuse.Store(true)
	inner := h.srv.Config.Handler
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	})
	h.start()
	h.accept("echo", "k1", true)
	poll.Until(t, 5*time.Second, "a refused callback", func() bool {
		rec, _ := h.svc.Get(context.Background(), "k1")
		return rec.Callback != nil && rec.Callback.Attempts >= 1
	})
	h.halt()
	refuse.Store(false)
	h.start()
	rec := h.waitState("k1", store.CallSucceeded)
	if rec.Callback.State != store.CallbackDelivered || h.fns.count("k1") != 1 {
		t.Fatalf("record %+v, invocations %d", rec, h.fns.count("k1"))
	}
}

func TestDuplicateAcceptQueuesOnce(t *testing.T) {
	h := newHarness(t, "echo", "other")
	h.start()
	h.accept("echo", "x", false)
	_, dup, err := h.svc.Accept(context.Background(), Request{CallID: "x", Function: "openfaas-fn/echo", Method: "POST", Path: "/"})
	if err != nil || !dup {
		t.Fatalf("second accept: dup %v err %v", dup, err)
	}
	if _, _, err := h.svc.Accept(context.Background(), Request{CallID: "x", Function: "openfaas-fn/other", Method: "POST", Path: "/"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id for another function: %v", err)
	}
	if _, _, err := h.svc.Accept(context.Background(), Request{Function: "openfaas-fn/nope", Method: "POST", Path: "/"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown function: %v", err)
	}
	h.waitState("x", store.CallSucceeded)
	if n := h.fns.count("x"); n != 1 {
		t.Fatalf("invoked %d times", n)
	}
}

func TestPruneKeepsPendingAndNewest(t *testing.T) {
	h := newHarness(t, "echo")
	h.start()
	for _, id := range []string{"o1", "o2", "o3"} {
		h.accept("echo", id, false)
		h.waitState(id, store.CallSucceeded)
	}
	h.halt()
	h.accept("echo", "pending", false) // not run: the service is stopped
	h.svc.cfg.RecordsMax = 1
	h.svc.prune(context.Background())
	calls, err := h.st.ListCalls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, ",") != "o3,pending" {
		t.Fatalf("after pruning to 1 record: %v", ids)
	}
}

func TestStopLetsRunningAttemptsFinish(t *testing.T) {
	h := newHarness(t, "slow")
	h.grace = 5 * time.Second
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
			_, _ = w.Write([]byte("done"))
		case <-r.Context().Done():
		}
	})
	h.start()
	h.accept("slow", "g1", false)
	<-started
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	h.halt() // returns once g1 finished, within the grace
	c, err := h.st.GetCall(context.Background(), "g1")
	if err != nil || c.State != store.CallSucceeded {
		t.Fatalf("after a graceful stop: %+v %v", c, err)
	}

	// Beyond the grace, the attempt is abandoned and runs after restart.
	h.grace = 20 * time.Millisecond
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	h.start()
	h.accept("slow", "g2", false)
	<-started
	h.halt()
	if c, _ := h.st.GetCall(context.Background(), "g2"); c.State != store.CallQueued || c.Attempts != 0 {
		t.Fatalf("abandoned attempt was recorded: %+v", c)
	}
	h.serveOK("slow")
	h.start()
	h.waitState("g2", store.CallSucceeded)
	if n := h.fns.count("g2"); n != 2 {
		t.Fatalf("g2 invoked %d times, want 2 (abandoned, then run)", n)
	}
}

// serveOK makes function name answer 200 at once.
func (h *harness) serveOK(name string) {
	h.handle(name, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
}

func TestUnknownToTheProxyButStoredIsRetried(t *testing.T) {
	h := newHarness(t)
	// Known to the store, not (yet) to the proxy; attempts enough to
	// outlast the test's wait.
	ann := map[string]string{AnnotationRetryAttempts: "1000", AnnotationRetryMinWait: "10ms", AnnotationRetryMaxWait: "10ms"}
	if _, err := h.st.Create(context.Background(), types.FunctionDeployment{Service: "late", Image: "img", Annotations: &ann}, 1); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.accept("late", "l1", false)
	poll.Until(t, 5*time.Second, "a first attempt answered 404 by the proxy", func() bool { return h.fns.count("l1") >= 1 })
	h.serveOK("late")
	rec := h.waitState("l1", store.CallSucceeded)
	if rec.Attempts < 2 {
		t.Fatalf("record %+v", rec)
	}
}
