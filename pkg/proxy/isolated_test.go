package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// isoWait bounds every wait of the isolation tests.
const isoWait = 5 * time.Second

// fakePools is a Pools whose leases dial one address (an httptest server
// standing in for a fresh container).
type fakePools struct {
	addr string
	// err is Take's error; block makes Take wait for its ctx first.
	err   error
	block bool

	mu        sync.Mutex
	takes     int
	deadline  time.Duration // how far off Take's ctx deadline was; -1: none
	leases    []*fakeLease
	dialErr   error
	onRelease func()
}

func (p *fakePools) Take(ctx context.Context, key string) (Lease, error) {
	p.mu.Lock()
	p.takes++
	p.deadline = -1
	if dl, ok := ctx.Deadline(); ok {
		p.deadline = time.Until(dl)
	}
	p.mu.Unlock()
	if p.block {
		<-ctx.Done()
	}
	if p.err != nil {
		return nil, p.err
	}
	l := &fakeLease{addr: p.addr, replica: "box-" + key, dialErr: p.dialErr, released: make(chan struct{}), onRelease: p.onRelease}
	p.mu.Lock()
	p.leases = append(p.leases, l)
	p.mu.Unlock()
	return l, nil
}

func (p *fakePools) snapshot() (takes int, deadline time.Duration, leases []*fakeLease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takes, p.deadline, append([]*fakeLease(nil), p.leases...)
}

// fakeLease counts its dials and releases.
type fakeLease struct {
	addr, replica    string
	dialErr          error
	dials, releases  atomic.Int32
	released         chan struct{}
	releasedDuringIO atomic.Bool // Release came before the dial
	onRelease        func()
}

func (l *fakeLease) Replica() string { return l.replica }

func (l *fakeLease) Dial(ctx context.Context) (net.Conn, error) {
	l.dials.Add(1)
	if l.releases.Load() > 0 {
		l.releasedDuringIO.Store(true)
	}
	if l.dialErr != nil {
		return nil, l.dialErr
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", l.addr)
}

func (l *fakeLease) Release() {
	if l.releases.Add(1) == 1 {
		if l.onRelease != nil {
			l.onRelease()
		}
		close(l.released)
	}
}

// awaitRelease waits for l's Release, then checks that it stays the only one.
func (l *fakeLease) awaitRelease(t *testing.T) {
	t.Helper()
	select {
	case <-l.released:
	case <-time.After(isoWait):
		t.Fatal("the lease was not released")
	}
	time.Sleep(10 * time.Millisecond) // a second Release would come right after
	if n := l.releases.Load(); n != 1 {
		t.Errorf("Release called %d times, want once", n)
	}
}

// isoFront serves a proxy for one isolated function "fn.ns" with pools.
func isoFront(t *testing.T, pools Pools, opts Options) (base, key string) {
	t.Helper()
	key = faas.Key("ns", "fn")
	cache := NewCache()
	cache.Set(key, faas.IsolatedEndpoints(key))
	if pools != nil {
		opts.Pools = pools
	}
	if opts.Log == nil {
		opts.Log = quietLogger()
	}
	return front(t, New(cache, opts)), key
}

func TestIsolatedCallServedThroughALease(t *testing.T) {
	var dropped atomic.Int32
	tests := []struct {
		name    string
		handler http.HandlerFunc
		dialErr error
		code    int
		echo    bool
	}{
		{name: "the function answers", handler: echoHandler("box"), code: http.StatusOK, echo: true},
		{name: "the function's own error passes through", handler: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, code: http.StatusInternalServerError},
		{name: "the container drops the connection", handler: hijacker(&dropped), code: http.StatusBadGateway},
		{name: "the dial fails", handler: echoHandler("box"), dialErr: errors.New("no such container"), code: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pools *fakePools
			var releasedInCall atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _, leases := pools.snapshot()
				if len(leases) == 1 && leases[0].releases.Load() > 0 {
					releasedInCall.Store(true)
				}
				tt.handler(w, r)
			}))
			t.Cleanup(srv.Close)
			pools = &fakePools{addr: srv.Listener.Addr().String(), dialErr: tt.dialErr}
			signals := new(load.Signals)
			var inFlightAtRelease atomic.Int64
			pools.onRelease = func() { inFlightAtRelease.Store(signals.InFlight("box-ns/fn")) }
			base, _ := isoFront(t, pools, Options{Load: signals})

			req, _ := http.NewRequest(http.MethodPost, base+"/function/fn.ns/a/b?x=1&y=%2F", strings.NewReader("input"))
			req.Header.Set(HeaderCallID, "call-1")
			resp, body := do(t, req)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.code)
			}
			takes, _, leases := pools.snapshot()
			if takes != 1 || len(leases) != 1 {
				t.Fatalf("Take called %d times, %d leases; want one", takes, len(leases))
			}
			l := leases[0]
			l.awaitRelease(t)
			if n := l.dials.Load(); n != 1 {
				t.Errorf("Dial called %d times, want once (no retries on an isolated call)", n)
			}
			if releasedInCall.Load() || l.releasedDuringIO.Load() {
				t.Error("the lease was released before the call was over")
			}
			if got := resp.Header.Get(HeaderCallID); got != "call-1" {
				t.Errorf("X-Call-Id %q, want the client's", got)
			}
			if resp.Header.Get(HeaderStartTime) == "" {
				t.Error("no X-Start-Time on the response")
			}
			if tt.code == http.StatusBadGateway && resp.Header.Get(HeaderInternal) == "" {
				t.Error("a proxy-made 502 without X-OpenFaaS-Internal")
			}
			if tt.dialErr == nil && inFlightAtRelease.Load() != 1 {
				t.Errorf("container in flight at release: %d, want 1 (the call counts on its container)", inFlightAtRelease.Load())
			}
			if !tt.echo {
				return
			}
			s := decodeSeen(t, body)
			if s.RequestURI != "/a/b?x=1&y=%2F" {
				t.Errorf("the function saw %q, want the path and query as sent", s.RequestURI)
			}
			if s.Header.Get(HeaderCallID) != "call-1" || s.Header.Get(HeaderStartTime) == "" {
				t.Errorf("call headers seen by the function: %v", s.Header)
			}
			if s.BodyLen != len("input") {
				t.Errorf("body of %d bytes reached the function, want %d", s.BodyLen, len("input"))
			}
		})
	}
}

func TestIsolatedCallGetsACallID(t *testing.T) {
	srv := httptest.NewServer(echoHandler("box"))
	t.Cleanup(srv.Close)
	pools := &fakePools{addr: srv.Listener.Addr().String()}
	base, _ := isoFront(t, pools, Options{})
	resp, body := get(t, base+"/function/fn.ns")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	id := resp.Header.Get(HeaderCallID)
	if id == "" || decodeSeen(t, body).Header.Get(HeaderCallID) != id {
		t.Errorf("call ID %q on the response, %q seen by the function: want one, the same", id, decodeSeen(t, body).Header.Get(HeaderCallID))
	}
	_, _, leases := pools.snapshot()
	leases[0].awaitRelease(t)
}

// A client that goes away mid-call ends the call: the container is released.
func TestIsolatedCallReleasedWhenTheClientLeaves(t *testing.T) {
	reached := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(reached)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	pools := &fakePools{addr: srv.Listener.Addr().String()}
	var mu sync.Mutex
	var codes []int
	base, _ := isoFront(t, pools, Options{Observe: func(_ string, code int, _ time.Duration) {
		mu.Lock()
		codes = append(codes, code)
		mu.Unlock()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/function/fn.ns", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-reached:
	case <-time.After(isoWait):
		t.Fatal("the call did not reach the container")
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the client's request did not fail")
	}
	_, _, leases := pools.snapshot()
	leases[0].awaitRelease(t)
	waitObservations(&mu, &codes, 1)
	mu.Lock()
	defer mu.Unlock()
	if len(codes) != 1 || codes[0] != StatusClientClosedRequest {
		t.Errorf("observed %v, want one 499", codes)
	}
}

func TestIsolatedCallBusyIs429(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		want       string
	}{
		{0, "1"},
		{100 * time.Millisecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{3 * time.Second, "3"},
		{3*time.Second + time.Nanosecond, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.retryAfter.String(), func(t *testing.T) {
			pools := &fakePools{err: &BusyError{RetryAfter: tt.retryAfter}}
			base, _ := isoFront(t, pools, Options{})
			resp, body := get(t, base+"/function/fn.ns")
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("status %d %q, want 429", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After %q, want %q", got, tt.want)
			}
			if resp.Header.Get(HeaderInternal) == "" {
				t.Error("no X-OpenFaaS-Internal on the 429")
			}
			if resp.Header.Get(HeaderCallID) == "" {
				t.Error("no X-Call-Id on the 429")
			}
			if !strings.Contains(string(body), "per-request isolation") {
				t.Errorf("body %q does not say why", body)
			}
		})
	}
}

func TestIsolatedCallFailsWithoutALease(t *testing.T) {
	tests := []struct {
		name  string
		pools Pools
		code  int
		body  string
	}{
		{name: "no pools: 501", code: http.StatusNotImplemented, body: "needs RUNTIME=docker"},
		{name: "no pool of the function: 503", pools: &fakePools{err: errors.New("no pool of fresh containers")}, code: http.StatusServiceUnavailable, body: "no pool of fresh containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := isoFront(t, tt.pools, Options{})
			resp, body := get(t, base+"/function/fn.ns")
			if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.body) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, body, tt.code, tt.body)
			}
			if resp.Header.Get(HeaderInternal) == "" {
				t.Error("no X-OpenFaaS-Internal")
			}
		})
	}
}

// Take waits at most ReadyWait for a container: its ctx carries that
// deadline, and a pool that stays empty gets the call a 429 in time.
func TestIsolatedTakeBoundedByReadyWait(t *testing.T) {
	const readyWait = 200 * time.Millisecond
	pools := &fakePools{block: true, err: &BusyError{RetryAfter: time.Second}}
	base, _ := isoFront(t, pools, Options{ReadyWait: readyWait})
	start := time.Now()
	resp, body := get(t, base+"/function/fn.ns")
	took := time.Since(start)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d %q, want 429", resp.StatusCode, body)
	}
	_, deadline, _ := pools.snapshot()
	if deadline <= 0 || deadline > readyWait {
		t.Errorf("Take's ctx deadline was %v away, want within ReadyWait %v", deadline, readyWait)
	}
	if took < readyWait || took > isoWait {
		t.Errorf("the call took %v, want about ReadyWait %v", took, readyWait)
	}
}

func TestIsolatedBodyOverTheLimit(t *testing.T) {
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name      string
		chunked   bool
		wantTakes int
	}{
		// A declared length over the bound is refused before a container is taken.
		{name: "declared length: before Take", wantTakes: 0},
		// An undeclared length is found out while the body is sent.
		{name: "chunked: while sending", chunked: true, wantTakes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := &fakePools{addr: srv.Listener.Addr().String()}
			base, _ := isoFront(t, pools, Options{MaxBodyBytes: 10})
			var body io.Reader = strings.NewReader(strings.Repeat("x", 1000))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, base+"/function/fn.ns", body)
			resp, got := do(t, req)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d %q, want 413", resp.StatusCode, got)
			}
			takes, _, leases := pools.snapshot()
			if takes != tt.wantTakes {
				t.Errorf("Take called %d times, want %d", takes, tt.wantTakes)
			}
			for _, l := range leases {
				l.awaitRelease(t)
			}
		})
	}
}

// Only the pseudo endpoint of an isolated function routes to the pools.
func TestIsolatedRouteOnlyForThePseudoEndpoint(t *testing.T) {
	_, ep := backend(t, echoHandler("replica"))
	pools := &fakePools{err: errors.New("must not be asked")}
	cache := NewCache()
	cache.Set("ns/shared", []faas.Endpoint{ep})
	base := front(t, New(cache, Options{Pools: pools, Log: quietLogger()}))
	resp, body := get(t, base+"/function/shared.ns")
	if resp.StatusCode != http.StatusOK || decodeSeen(t, body).Backend != "replica" {
		t.Fatalf("%d %q, want the replica's answer", resp.StatusCode, body)
	}
	if takes, _, _ := pools.snapshot(); takes != 0 {
		t.Errorf("Take called %d times for a shared function", takes)
	}
}

// An isolated call past its exec timeout gets 504, and its container is
// released all the same: one Take, one Dial, one Release, so the next call
// gets a container of its own, never the one the timed-out call used.
func TestIsolatedCallExecTimeout(t *testing.T) {
	tests := []struct {
		name   string
		fnExec time.Duration // the function's exec_timeout; 0: the default applies
		def    time.Duration
	}{
		{"the function's exec timeout", 100 * time.Millisecond, time.Minute},
		{"the default exec timeout", 0, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var abandoned atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					abandoned.Add(1)
				case <-time.After(isoWait):
					_, _ = io.WriteString(w, "too late")
				}
			}))
			t.Cleanup(srv.Close)
			pools := &fakePools{addr: srv.Listener.Addr().String()}
			key := faas.Key("ns", "fn")
			cache := NewCache()
			cache.Set(key, faas.IsolatedEndpoints(key))
			cache.SetTimeouts(key, faas.Timeouts{Exec: tt.fnExec})
			var mu sync.Mutex
			var codes []int
			base := front(t, New(cache, Options{Pools: pools, Timeout: tt.def, Log: quietLogger(),
				Observe: func(_ string, code int, _ time.Duration) {
					mu.Lock()
					codes = append(codes, code)
					mu.Unlock()
				}}))

			for i := 1; i <= 2; i++ {
				start := time.Now()
				resp, body := get(t, base+"/function/fn.ns")
				if resp.StatusCode != http.StatusGatewayTimeout {
					t.Fatalf("call %d: status %d %q, want 504", i, resp.StatusCode, body)
				}
				if took := time.Since(start); took > isoWait/2 {
					t.Errorf("call %d took %v, want about the exec timeout", i, took)
				}
				takes, _, leases := pools.snapshot()
				if takes != i || len(leases) != i {
					t.Fatalf("after call %d: %d Takes, %d leases; want one per call", i, takes, len(leases))
				}
				l := leases[i-1]
				l.awaitRelease(t)
				if n := l.dials.Load(); n != 1 {
					t.Errorf("call %d: Dial called %d times, want once", i, n)
				}
				if l.releasedDuringIO.Load() {
					t.Errorf("call %d: released before its dial", i)
				}
				for _, earlier := range leases[:i-1] {
					if n := earlier.dials.Load(); n != 1 {
						t.Errorf("call %d dialed the container of an earlier call (%d dials)", i, n)
					}
				}
			}
			// The function saw each call abandoned at the deadline.
			deadline := time.Now().Add(isoWait)
			for abandoned.Load() < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := abandoned.Load(); n != 2 {
				t.Errorf("%d calls abandoned in the container, want 2", n)
			}
			waitObservations(&mu, &codes, 2)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(codes, []int{http.StatusGatewayTimeout, http.StatusGatewayTimeout}) {
				t.Errorf("observed %v, want two 504s", codes)
			}
		})
	}
}
