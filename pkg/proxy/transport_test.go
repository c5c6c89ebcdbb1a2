package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// scriptedTransport fails the first attempts with the given errors after
// optionally reading the body, then succeeds; it records what it saw.
type scriptedTransport struct {
	errs      []error
	readFirst bool // read one byte of the body before failing
	closeBody bool // close the body before failing, as http.Transport does
	hosts     []string
	bodies    []string
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.hosts = append(s.hosts, req.URL.Host)
	attempt := len(s.hosts) - 1
	if attempt < len(s.errs) {
		if s.readFirst && req.Body != nil {
			_, _ = req.Body.Read(make([]byte, 1))
		}
		if s.closeBody && req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, s.errs[attempt]
	}
	var body string
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		body = string(b)
		_ = req.Body.Close()
	}
	s.bodies = append(s.bodies, body)
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}, nil
}

// trackedBody is a request body that fails reads after Close, like
// ReverseProxy's own wrapper.
type trackedBody struct {
	r      io.Reader
	closed bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read after close")
	}
	return b.r.Read(p)
}

func (b *trackedBody) Close() error { b.closed = true; return nil }

var errDial = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func TestRetryTransport(t *testing.T) {
	eps := []faas.Endpoint{{Addr: "10.0.0.1:8080"}, {Addr: "10.0.0.2:8080"}}
	tests := []struct {
		name      string
		eps       []faas.Endpoint
		body      string // "" = no body
		guard     bool   // wrap the body like rewrite does
		readFirst bool
		cancel    bool
		err       error
		failures  int // failing attempts before success; 0 means 1
		wantHosts []string
		wantOK    bool
	}{
		{name: "dial error, no body", eps: eps, err: errDial,
			wantHosts: []string{"10.0.0.1:8080", "10.0.0.2:8080"}, wantOK: true},
		{name: "dial error, untouched guarded body", eps: eps, body: "payload", guard: true, err: errDial,
			wantHosts: []string{"10.0.0.1:8080", "10.0.0.2:8080"}, wantOK: true},
		{name: "dial error after a body read", eps: eps, body: "payload", guard: true, readFirst: true, err: errDial,
			wantHosts: []string{"10.0.0.1:8080"}},
		{name: "dial error, body not guarded", eps: eps, body: "payload", err: errDial,
			wantHosts: []string{"10.0.0.1:8080"}},
		{name: "dial error, single endpoint", eps: eps[:1], err: errDial,
			wantHosts: []string{"10.0.0.1:8080"}},
		{name: "dial error, client gone", eps: eps, err: errDial, cancel: true,
			wantHosts: []string{"10.0.0.1:8080"}},
		{name: "error after connecting", eps: eps, err: io.ErrUnexpectedEOF,
			wantHosts: []string{"10.0.0.1:8080"}},
		{name: "both endpoints down", eps: eps, body: "payload", guard: true, err: errDial, failures: 2,
			wantHosts: []string{"10.0.0.1:8080", "10.0.0.2:8080"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := &scriptedTransport{errs: []error{tt.err}, readFirst: tt.readFirst, closeBody: true}
			for range tt.failures - 1 {
				base.errs = append(base.errs, tt.err)
			}
			c := &call{eps: tt.eps, upstream: tt.eps[0].Addr}
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), callKey{}, c))
			defer cancel()
			if tt.cancel {
				cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.upstream+"/", nil)
			var raw *trackedBody
			if tt.body != "" {
				raw = &trackedBody{r: strings.NewReader(tt.body)}
				req.Body = raw
				if tt.guard {
					req.Body = newReplayGuard(raw)
				}
			}
			var retries int
			rt := &retryTransport{base: base, onRetry: func(*call, error) { retries++ }}
			resp, err := rt.RoundTrip(req)

			if got := strings.Join(base.hosts, ","); got != strings.Join(tt.wantHosts, ",") {
				t.Fatalf("attempts went to %s, want %s", got, strings.Join(tt.wantHosts, ","))
			}
			if retries != len(tt.wantHosts)-1 {
				t.Errorf("onRetry called %d times", retries)
			}
			if tt.wantOK {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("RoundTrip = %v, %v; want success", resp, err)
				}
				if resp.Request == nil {
					t.Errorf("response without Request")
				}
				if c.upstream != tt.wantHosts[len(tt.wantHosts)-1] {
					t.Errorf("call upstream %q, want the endpoint that answered", c.upstream)
				}
				if tt.body != "" && base.bodies[0] != tt.body {
					t.Errorf("retried body %q, want %q", base.bodies[0], tt.body)
				}
			} else if err == nil {
				t.Fatalf("RoundTrip succeeded, want the error")
			}
			if raw != nil && !raw.closed {
				t.Errorf("the body was never closed")
			}
		})
	}
}

func TestReplayGuardReleasesHeldClose(t *testing.T) {
	raw := &trackedBody{r: strings.NewReader("x")}
	g := newReplayGuard(raw)
	_ = g.Close()
	if raw.closed {
		t.Fatal("Close passed through while a retry was possible")
	}
	g.release()
	if !raw.closed {
		t.Fatal("release did not perform the held Close")
	}

	raw = &trackedBody{r: strings.NewReader("x")}
	g = newReplayGuard(raw)
	_, _ = g.Read(make([]byte, 1))
	_ = g.Close()
	if !raw.closed {
		t.Fatal("Close of a consumed body was held back")
	}
}

func TestIsDialError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errDial, true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
		{context.DeadlineExceeded, false},
		{errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := isDialError(tt.err); got != tt.want {
			t.Errorf("isDialError(%v) = %v", tt.err, got)
		}
	}
}
