package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	frontloop "github.com/dockerfaasd/dockerfaasd/pkg/front"
)

// mapResolver is a Resolver without change notification, so waits poll.
type mapResolver struct {
	mu sync.Mutex
	m  map[string][]faas.Endpoint
}

func (r *mapResolver) Lookup(key string) ([]faas.Endpoint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	eps, ok := r.m[key]
	return eps, ok
}

func (r *mapResolver) set(key string, eps []faas.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[key] = eps
}

// seen is what the echo backend reports about the request it received.
type seen struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"requestURI"`
	Host       string      `json:"host"`
	Header     http.Header `json:"header"`
	BodyLen    int         `json:"bodyLen"`
	Backend    string      `json:"backend"`
}

// echoHandler answers with a JSON description of the request; name tells
// backends apart.
func echoHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Method", r.Method)
		_ = json.NewEncoder(w).Encode(seen{
			Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header, BodyLen: len(body), Backend: name,
		})
	}
}

// backend starts an httptest server and returns it with its faas.Endpoint.
func backend(t testing.TB, h http.Handler) (*httptest.Server, faas.Endpoint) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, faas.Endpoint{Replica: "c-" + srv.Listener.Addr().String(), Addr: srv.Listener.Addr().String()}
}

// closedAddr returns an address nothing listens on any more.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// front serves p over HTTP and returns its base URL. Function calls
// reach the proxy through the daemon's own loop (pkg/front) in
// production, so the tests use it too; PROXY_TEST_SERVER=net/http runs
// them on net/http's server alone, which serves the proxy over TLS and on
// dedicated function addresses.
func front(t testing.TB, p *Proxy) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(p)
	if os.Getenv("PROXY_TEST_SERVER") == "net/http" {
		srv.Start()
		t.Cleanup(func() {
			srv.Close()
			p.CloseIdleConnections()
		})
		return srv.URL
	}
	loop := frontloop.New(srv.Config, nil, func(string) bool { return true }, quietLogger())
	// The loop hands plain calls to the proxy's ServePlain, as in the
	// daemon, unless a test set hooks of its own or PROXY_TEST_PLAIN=off
	// has every call take ServeHTTP.
	if p.plain == nil && os.Getenv("PROXY_TEST_PLAIN") != "off" {
		p.EnablePlain(PlainHooks{Authorize: func([]byte, string, [][]byte) bool { return true }})
	}
	loop.ServePlain(p)
	go func() { _ = loop.Serve(srv.Listener) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = loop.Shutdown(ctx)
		p.CloseIdleConnections()
	})
	return "http://" + srv.Listener.Addr().String()
}

// noRedirects is a client that reports redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func decodeSeen(t testing.TB, body []byte) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return s
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in       string
		name, ns string
		wantErr  bool
	}{
		{in: "fn", name: "fn", ns: "openfaas-fn"},
		{in: "fn.team-a", name: "fn", ns: "team-a"},
		{in: "my_fn-2.ns_1", name: "my_fn-2", ns: "ns_1"},
		{in: "", wantErr: true},
		{in: ".openfaas-fn", wantErr: true},
		{in: "fn.", wantErr: true},
		{in: "a.b.c", wantErr: true}, // split at the last dot leaves "a.b", not a safe name
		{in: "fn/x", wantErr: true},
		{in: "fn%2F", wantErr: true},
		{in: "fn ns", wantErr: true},
		{in: "fn\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, ns, err := ParseName(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("ParseName(%q) error = %v, want ErrInvalidName", tt.in, err)
				}
				return
			}
			if err != nil || name != tt.name || ns != tt.ns {
				t.Fatalf("ParseName(%q) = %q, %q, %v; want %q, %q", tt.in, name, ns, err, tt.name, tt.ns)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	_, ep := backend(t, echoHandler("a"))
	c := NewCache()
	c.Set("openfaas-fn/echo", []faas.Endpoint{ep})
	c.Set("team-a/echo", []faas.Endpoint{ep})
	base := front(t, New(c, Options{Log: quietLogger()}))

	tests := []struct {
		name     string
		path     string
		wantCode int
		wantURI  string // RequestURI the function sees
		wantBody string // substring of a non-200 body
	}{
		{name: "bare name", path: "/function/echo", wantCode: 200, wantURI: "/"},
		{name: "trailing slash", path: "/function/echo/", wantCode: 200, wantURI: "/"},
		{name: "default namespace explicit", path: "/function/echo.openfaas-fn", wantCode: 200, wantURI: "/"},
		{name: "namespace and sub-path", path: "/function/echo.team-a/x/y", wantCode: 200, wantURI: "/x/y"},
		{name: "query preserved", path: "/function/echo/x?q=1&b=two", wantCode: 200, wantURI: "/x?q=1&b=two"},
		{name: "query on bare name", path: "/function/echo?testing=1", wantCode: 200, wantURI: "/?testing=1"},
		{name: "unparsable query kept raw", path: "/function/echo?a=1;b=2&c=%zz", wantCode: 200, wantURI: "/?a=1;b=2&c=%zz"},
		{name: "encoded slash kept", path: "/function/echo/a%2Fb", wantCode: 200, wantURI: "/a%2Fb"},
		{name: "deep path", path: "/function/echo.team-a/a/b/c/", wantCode: 200, wantURI: "/a/b/c/"},
		{name: "empty name", path: "/function/.openfaas-fn", wantCode: 404},
		{name: "empty namespace", path: "/function/echo.", wantCode: 404},
		{name: "no name", path: "/function/", wantCode: 404},
		{name: "no name, sub-path", path: "/function//x", wantCode: 404},
		{name: "not a function path", path: "/functions/echo", wantCode: 404},
		{name: "bad characters", path: "/function/ec%24ho", wantCode: 404},
		{name: "too many dots", path: "/function/a.b.c", wantCode: 404},
		{name: "unknown function", path: "/function/nope", wantCode: 404, wantBody: "function nope.openfaas-fn not found"},
		{name: "unknown namespace", path: "/function/echo.other/x", wantCode: 404, wantBody: "function echo.other not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base+tt.path)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantCode, body)
			}
			if tt.wantCode != 200 {
				if !strings.Contains(string(body), tt.wantBody) {
					t.Fatalf("body = %q, want it to contain %q", body, tt.wantBody)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Fatalf("Content-Type = %q, want text/plain", ct)
				}
				return
			}
			if got := decodeSeen(t, body).RequestURI; got != tt.wantURI {
				t.Fatalf("function saw %q, want %q", got, tt.wantURI)
			}
		})
	}
}

func TestAllMethodsProxied(t *testing.T) {
	_, ep := backend(t, echoHandler("a"))
	c := NewCache()
	c.Set("openfaas-fn/echo", []faas.Endpoint{ep})
	base := front(t, New(c, Options{Log: quietLogger()}))

	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND", "PURGE"} {
		t.Run(m, func(t *testing.T) {
			var body io.Reader
			if m == "POST" || m == "PUT" || m == "PATCH" {
				body = strings.NewReader("hello")
			}
			req, err := http.NewRequest(m, base+"/function/echo/p?x=1", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, got := do(t, req)
			if resp.StatusCode != 200 || resp.Header.Get("X-Method") != m {
				t.Fatalf("status %d, X-Method %q; want 200, %q", resp.StatusCode, resp.Header.Get("X-Method"), m)
			}
			if m == "HEAD" {
				return
			}
			s := decodeSeen(t, got)
			if s.RequestURI != "/p?x=1" {
				t.Fatalf("function saw %q", s.RequestURI)
			}
			if body != nil && s.BodyLen != len("hello") {
				t.Fatalf("function got %d body bytes, want 5", s.BodyLen)
			}
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestHeaders(t *testing.T) {
	_, ep := backend(t, echoHandler("a"))
	_, timed := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderDuration, "1.500000")
		w.Header().Set(HeaderCallID, "from-function") // the gateway's value wins
	}))
	c := NewCache()
	c.Set("openfaas-fn/echo", []faas.Endpoint{ep})
	c.Set("openfaas-fn/timed", []faas.Endpoint{timed})
	base := front(t, New(c, Options{Log: quietLogger()}))

	tests := []struct {
		name       string
		path       string
		reqHeader  map[string]string
		wantCallID string // "" = generated
		wantXFF    string
		wantXFHost string // "" = the Host the client used
		wantProto  string
	}{
		{name: "generated call id", path: "/function/echo", wantXFF: "127.0.0.1", wantProto: "http"},
		{
			name: "client call id and forwarding chain kept", path: "/function/echo",
			reqHeader: map[string]string{
				HeaderCallID: "client-id-1", "X-Forwarded-For": "10.1.2.3",
				"X-Forwarded-Host": "faas.example.com", "X-Forwarded-Proto": "https",
			},
			wantCallID: "client-id-1", wantXFF: "10.1.2.3, 127.0.0.1",
			wantXFHost: "faas.example.com", wantProto: "https",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+tt.path, nil)
			for k, v := range tt.reqHeader {
				req.Header.Set(k, v)
			}
			before := time.Now().UnixNano()
			resp, body := do(t, req)
			after := time.Now().UnixNano()
			s := decodeSeen(t, body)

			callID := s.Header.Get(HeaderCallID)
			if tt.wantCallID != "" && callID != tt.wantCallID {
				t.Errorf("function saw X-Call-Id %q, want %q", callID, tt.wantCallID)
			}
			if tt.wantCallID == "" && !uuidV4.MatchString(callID) {
				t.Errorf("generated X-Call-Id %q is not a UUIDv4", callID)
			}
			if got := resp.Header.Get(HeaderCallID); got != callID {
				t.Errorf("response X-Call-Id %q, function saw %q", got, callID)
			}
			start, err := strconv.ParseInt(s.Header.Get(HeaderStartTime), 10, 64)
			if err != nil || start < before || start > after {
				t.Errorf("X-Start-Time %q not a unix-ns time within the call", s.Header.Get(HeaderStartTime))
			}
			if got := resp.Header.Get(HeaderStartTime); got != s.Header.Get(HeaderStartTime) {
				t.Errorf("response X-Start-Time %q, function saw %q", got, s.Header.Get(HeaderStartTime))
			}
			if d, err := strconv.ParseFloat(resp.Header.Get(HeaderDuration), 64); err != nil || d < 0 || d > 30 {
				t.Errorf("X-Duration-Seconds = %q", resp.Header.Get(HeaderDuration))
			}
			if got := s.Header.Get("X-Forwarded-For"); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For %q, want %q", got, tt.wantXFF)
			}
			wantHost := tt.wantXFHost
			if wantHost == "" {
				wantHost = req.URL.Host
			}
			if got := s.Header.Get("X-Forwarded-Host"); got != wantHost {
				t.Errorf("X-Forwarded-Host %q, want %q", got, wantHost)
			}
			if got := s.Header.Get("X-Forwarded-Proto"); got != tt.wantProto {
				t.Errorf("X-Forwarded-Proto %q, want %q", got, tt.wantProto)
			}
			if s.Host != ep.Addr {
				t.Errorf("function saw Host %q, want its own address %q", s.Host, ep.Addr)
			}
		})
	}

	t.Run("function's duration kept", func(t *testing.T) {
		resp, _ := get(t, base+"/function/timed")
		if got := resp.Header.Get(HeaderDuration); got != "1.500000" {
			t.Errorf("X-Duration-Seconds = %q, want the function's 1.500000", got)
		}
		if got := resp.Header.Values(HeaderCallID); len(got) != 1 || !uuidV4.MatchString(got[0]) {
			t.Errorf("X-Call-Id = %q, want exactly the gateway's", got)
		}
	})
}

func TestHopByHopHeadersStripped(t *testing.T) {
	_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization"} {
			if v := r.Header.Get(h); v != "" {
				http.Error(w, "function saw "+h+": "+v, http.StatusTeapot)
				return
			}
		}
		if r.Header.Get("X-Kept") != "yes" {
			http.Error(w, "end-to-end header lost", http.StatusTeapot)
			return
		}
		w.Header().Set("Connection", "X-Internal")
		w.Header().Set("X-Internal", "leak")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Public", "ok")
	}))
	c := NewCache()
	c.Set("openfaas-fn/hop", []faas.Endpoint{ep})
	base := front(t, New(c, Options{Log: quietLogger()}))

	req, _ := http.NewRequest(http.MethodGet, base+"/function/hop", nil)
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "s3cr3t")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-Kept", "yes")
	resp, body := do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, h := range []string{"X-Internal", "Proxy-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client saw hop-by-hop %s: %q", h, v)
		}
	}
	if resp.Header.Get("X-Public") != "ok" {
		t.Errorf("end-to-end response header lost")
	}
}

func TestRedirectPassedThrough(t *testing.T) {
	var followed atomic.Int32
	_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	c := NewCache()
	c.Set("openfaas-fn/redirector", []faas.Endpoint{ep})
	base := front(t, New(c, Options{Log: quietLogger()}))

	resp, _ := get(t, base+"/function/redirector")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
		t.Fatalf("got %d Location %q, want 302 /elsewhere", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("the proxy followed the redirect %d times", n)
	}
}

func TestRoundRobin(t *testing.T) {
	const backends, rounds = 3, 10
	hits := make([]atomic.Int32, backends)
	var eps []faas.Endpoint
	for i := range backends {
		_, ep := backend(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits[i].Add(1) }))
		eps = append(eps, ep)
	}
	c := NewCache()
	c.Set("openfaas-fn/rr", eps)
	base := front(t, New(c, Options{Log: quietLogger()}))

	for range backends * rounds {
		if resp, body := get(t, base+"/function/rr"); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	for i := range hits {
		if n := hits[i].Load(); n != rounds {
			t.Errorf("backend %d got %d calls, want %d", i, n, rounds)
		}
	}
}

func TestDialErrorRetriedOnNextEndpoint(t *testing.T) {
	_, good := backend(t, echoHandler("good"))
	bad := faas.Endpoint{Replica: "gone", Addr: closedAddr(t)}
	c := NewCache()
	c.Set("openfaas-fn/flaky", []faas.Endpoint{bad, good})
	log, hook := logtest.NewNullLogger()
	base := front(t, New(c, Options{Log: log}))

	payload := strings.Repeat("payload-", 1000)
	tests := []struct {
		name   string
		method string
		body   func() io.Reader // nil = no body
	}{
		{name: "GET", method: http.MethodGet},
		{name: "POST sized body", method: http.MethodPost, body: func() io.Reader { return strings.NewReader(payload) }},
		// An io.Reader the client can't size is sent chunked.
		{name: "POST chunked body", method: http.MethodPost, body: func() io.Reader { return io.MultiReader(strings.NewReader(payload)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two calls so that the round-robin start lands on the bad endpoint once.
			for i := range 2 {
				var body io.Reader
				if tt.body != nil {
					body = tt.body()
				}
				req, _ := http.NewRequest(tt.method, base+"/function/flaky", body)
				resp, got := do(t, req)
				if resp.StatusCode != 200 {
					t.Fatalf("call %d: status %d: %s", i, resp.StatusCode, got)
				}
				s := decodeSeen(t, got)
				if tt.body != nil && s.BodyLen != len(payload) {
					t.Fatalf("call %d: function got %d body bytes, want %d", i, s.BodyLen, len(payload))
				}
			}
		})
	}
	// Each subtest's first call started on the unreachable replica.
	if n := countEntries(hook, "replica unreachable, retrying on the next one"); n != len(tests) {
		t.Errorf("%d retries logged, want %d", n, len(tests))
	}
}

func TestDialErrorWithoutOtherEndpointIs502(t *testing.T) {
	c := NewCache()
	c.Set("openfaas-fn/gone", []faas.Endpoint{{Replica: "gone", Addr: closedAddr(t)}})
	log, hook := logtest.NewNullLogger()
	base := front(t, New(c, Options{Log: log}))

	resp, body := get(t, base+"/function/gone")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream error for gone.openfaas-fn") {
		t.Fatalf("got %d %q, want 502 upstream error", resp.StatusCode, body)
	}
	if resp.Header.Get(HeaderCallID) == "" {
		t.Errorf("no X-Call-Id on the error response")
	}
	assertFailureLogged(t, hook, "gone", resp.Header.Get(HeaderCallID))
}

// hijacker accepts a request, then drops the connection without answering.
func hijacker(calls *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	}
}

func TestUpstreamClosesConnectionIs502(t *testing.T) {
	var dropped, served atomic.Int32
	_, drop := backend(t, hijacker(&dropped))
	_, good := backend(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }))
	c := NewCache()
	// The dropping replica comes first in the rotation; the request reached
	// it, so it must not be replayed on the good one.
	c.Set("openfaas-fn/crash", []faas.Endpoint{drop, good})
	log, hook := logtest.NewNullLogger()
	base := front(t, New(c, Options{Log: log}))

	req, _ := http.NewRequest(http.MethodPost, base+"/function/crash", strings.NewReader("side effect"))
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream error for crash.openfaas-fn") {
		t.Fatalf("got %d %q, want 502 upstream error", resp.StatusCode, body)
	}
	if dropped.Load() != 1 || served.Load() != 0 {
		t.Fatalf("dropping replica called %d times, good one %d; want 1 and 0 (no replay)", dropped.Load(), served.Load())
	}
	assertFailureLogged(t, hook, "crash", resp.Header.Get(HeaderCallID))
}

func TestSlowUpstreamIs504(t *testing.T) {
	release := make(chan struct{})
	_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before the backend closes
	c := NewCache()
	c.Set("openfaas-fn/slow", []faas.Endpoint{ep})
	log, hook := logtest.NewNullLogger()
	base := front(t, New(c, Options{Timeout: 100 * time.Millisecond, Log: log}))

	start := time.Now()
	resp, body := get(t, base+"/function/slow")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "function slow.openfaas-fn timed out") {
		t.Fatalf("got %d %q, want 504 timed out", resp.StatusCode, body)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("timeout took %v", el)
	}
	assertFailureLogged(t, hook, "slow", resp.Header.Get(HeaderCallID))
}

func TestNoReadyReplica(t *testing.T) {
	const wait = 100 * time.Millisecond
	tests := []struct {
		name     string
		resolver func() Resolver
	}{
		{name: "cache", resolver: func() Resolver {
			c := NewCache()
			c.Set("openfaas-fn/cold", nil)
			return c
		}},
		{name: "polling resolver", resolver: func() Resolver {
			return &mapResolver{m: map[string][]faas.Endpoint{"openfaas-fn/cold": {}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := front(t, New(tt.resolver(), Options{ReadyWait: wait, Log: quietLogger()}))
			start := time.Now()
			resp, body := get(t, base+"/function/cold")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no ready replica for cold.openfaas-fn") {
				t.Fatalf("got %d %q, want 503 no ready replica", resp.StatusCode, body)
			}
			if el := time.Since(start); el < wait {
				t.Fatalf("answered after %v, before ReadyWait %v", el, wait)
			}
		})
	}
}

func TestWaitForReadyReplica(t *testing.T) {
	_, ep := backend(t, echoHandler("late"))
	c := NewCache()
	m := &mapResolver{m: map[string][]faas.Endpoint{}}
	tests := []struct {
		name     string
		resolver Resolver
		set      func(key string, eps []faas.Endpoint)
	}{
		{name: "cache notifies", resolver: c, set: c.Set},
		{name: "resolver polled", resolver: m, set: m.set},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.set("openfaas-fn/late", nil)
			base := front(t, New(tt.resolver, Options{ReadyWait: 20 * time.Second, Log: quietLogger()}))
			go func() {
				time.Sleep(100 * time.Millisecond)
				tt.set("openfaas-fn/other", nil) // an unrelated change must not end the wait
				tt.set("openfaas-fn/late", []faas.Endpoint{ep})
			}()
			resp, body := get(t, base+"/function/late")
			if resp.StatusCode != 200 || decodeSeen(t, body).Backend != "late" {
				t.Fatalf("got %d %q, want the replica published during the wait", resp.StatusCode, body)
			}
		})
	}
}

func TestWaitEndsWhenFunctionDeleted(t *testing.T) {
	c := NewCache()
	c.Set("openfaas-fn/doomed", nil)
	base := front(t, New(c, Options{ReadyWait: 20 * time.Second, Log: quietLogger()}))
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Delete("openfaas-fn/doomed")
	}()
	resp, body := get(t, base+"/function/doomed")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %d %q, want 404 once the function is deleted", resp.StatusCode, body)
	}
}

func TestObserve(t *testing.T) {
	_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	release := make(chan struct{})
	_, slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	c := NewCache()
	c.Set("openfaas-fn/obs", []faas.Endpoint{ep})
	c.Set("openfaas-fn/cold", nil)
	c.Set("openfaas-fn/slow", []faas.Endpoint{slow})

	type obs struct {
		key  string
		code int
	}
	var mu sync.Mutex
	var got []obs
	p := New(c, Options{ReadyWait: 20 * time.Second, Log: quietLogger(), Observe: func(key string, code int, d time.Duration) {
		if d <= 0 {
			t.Errorf("duration %v", d)
		}
		mu.Lock()
		got = append(got, obs{key, code})
		mu.Unlock()
	}})
	base := front(t, p)

	get(t, base+"/function/obs")
	get(t, base+"/function/random-name-1")
	get(t, base+"/function/.bad")

	// A client that gives up, while waiting for a replica or for the
	// function, is recorded as 499.
	for i, fn := range []string{"cold", "slow"} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/function/"+fn, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("call to %s returned %d before the client gave up", fn, resp.StatusCode)
		}
		cancel()
		waitObservations(&mu, &got, 3+i+1)
	}

	want := []obs{
		{"openfaas-fn/obs", 201},
		{"", 404}, // unknown names don't become metric labels
		{"", 404},
		{"openfaas-fn/cold", StatusClientClosedRequest},
		{"openfaas-fn/slow", StatusClientClosedRequest},
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// waitObservations waits (generously) until *got has n entries: the server
// finishes a handler after its client has already given up.
func waitObservations[T any](mu *sync.Mutex, got *[]T, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		l := len(*got)
		mu.Unlock()
		if l >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLargeBodyEchoedIntact(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answer while still reading, like a streaming function would.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.Copy(w, r.Body)
	})
	_, a := backend(t, echo)
	_, b := backend(t, echo)
	c := NewCache()
	c.Set("openfaas-fn/echo", []faas.Endpoint{a, b}) // two replicas: the retry guard is in the path
	base := front(t, New(c, Options{Log: quietLogger()}))

	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, base+"/function/echo", bytes.NewReader(payload))
		resp, got := do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: status %d", i, resp.StatusCode)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("call %d: echoed %d bytes, sent %d (equal prefix: %d)", i, len(got), len(payload), commonPrefix(got, payload))
		}
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func TestStreamingResponseFlushed(t *testing.T) {
	const first, second = "data: first\n", "\ndata: second\n\n"
	tests := []struct {
		name        string
		contentType string
		sized       bool // a Content-Length announced up front
	}{
		{name: "server-sent events", contentType: "text/event-stream"},
		{name: "chunked ndjson", contentType: "application/x-ndjson"},
		// ReverseProxy flushes SSE and unsized bodies by itself; only
		// a FlushInterval other than 0 makes a slow sized body flow too.
		{name: "sized body", contentType: "application/octet-stream", sized: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock) // runs before the backend closes
			_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.sized {
					w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
				}
				_, _ = io.WriteString(w, first)
				_ = http.NewResponseController(w).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				_, _ = io.WriteString(w, second)
			}))
			c := NewCache()
			c.Set("openfaas-fn/stream", []faas.Endpoint{ep})
			base := front(t, New(c, Options{Log: quietLogger()}))

			resp, err := noRedirects.Get(base + "/function/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			got := make(chan string, 1)
			go func() {
				line, _ := r.ReadString('\n')
				got <- line
			}()
			select {
			case line := <-got:
				if line != first {
					t.Fatalf("first line %q, want %q", line, first)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("first chunk not flushed while the function was still running")
			}
			unblock()
			rest, err := io.ReadAll(r)
			if err != nil || string(rest) != second {
				t.Fatalf("rest %q, %v; want %q", rest, err, second)
			}
		})
	}
}

// TestConcurrentSwapsWhileProxying runs requests while the controller
// rewrites the cache, for the race detector.
func TestConcurrentSwapsWhileProxying(t *testing.T) {
	_, a := backend(t, echoHandler("a"))
	_, b := backend(t, echoHandler("b"))
	c := NewCache()
	c.Set("openfaas-fn/hot", []faas.Endpoint{a})
	base := front(t, New(c, Options{Log: quietLogger()}))

	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sets := [][]faas.Endpoint{{a}, {b}, {a, b}, {b, a}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Set("openfaas-fn/hot", sets[i%len(sets)])
			c.Set(fmt.Sprintf("openfaas-fn/other-%d", i%10), sets[i%len(sets)])
			c.Delete(fmt.Sprintf("openfaas-fn/other-%d", (i+5)%10))
		}
	}()
	var failures atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := http.Get(base + "/function/hot")
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-writerDone
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d calls failed during swaps", n)
	}
}

func countEntries(hook *logtest.Hook, msg string) int {
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Message == msg {
			n++
		}
	}
	return n
}

// assertFailureLogged checks that a failure entry carries the identifying fields.
func assertFailureLogged(t *testing.T, hook *logtest.Hook, function, callID string) {
	t.Helper()
	for _, e := range hook.AllEntries() {
		if e.Level > logrus.WarnLevel {
			continue
		}
		if e.Data["function"] == function && e.Data["namespace"] == "openfaas-fn" &&
			e.Data["upstream"] != "" && e.Data["call_id"] == callID && e.Data[logrus.ErrorKey] != nil {
			return
		}
	}
	t.Errorf("no warning with function=%s namespace=openfaas-fn upstream call_id=%s error; entries: %v", function, callID, hook.AllEntries())
}
