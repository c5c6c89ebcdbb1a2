package async

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseGuard(t *testing.T) {
	cases := []struct {
		in      string
		want    string // Guard.String(); "" with wantErr
		wantErr bool
	}{
		{in: "", want: "any host"},
		{in: " , ,", want: "any host"},
		{in: "hooks.example.com", want: "hooks.example.com"},
		{in: "Hooks.Example.COM", want: "hooks.example.com"},
		{in: "localhost", want: "localhost"},
		{in: "*.example.com", want: "*.example.com"},
		{in: "192.168.1.7", want: "192.168.1.7/32"},
		{in: "10.1.2.3/16", want: "10.1.0.0/16"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "::1", want: "::1/128"},
		{in: "[::1]", want: "::1/128"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "fd00::1/8", want: "fd00::/8"},
		{in: " a.example , 10.0.0.0/8 , *.b.example ", want: "a.example,*.b.example,10.0.0.0/8"},
		{in: "*", wantErr: true},
		{in: "*.", wantErr: true},
		{in: "a*.example.com", wantErr: true},
		{in: "*.*.example.com", wantErr: true},
		{in: "hooks.example.com:8080", wantErr: true},
		{in: "user@hooks.example.com", wantErr: true},
		{in: "https://hooks.example.com", wantErr: true},
		{in: "hooks example", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "10.0.0.0/x", wantErr: true},
		{in: "300.0.0.0/8", wantErr: true},
		{in: "10.0.0.0/8/8", wantErr: true},
		{in: "ok.example,bad:1", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			g, err := ParseGuard(c.in)
			if c.wantErr {
				if err == nil {
					t.Fatalf("ParseGuard(%q) = %v, nil; want an error", c.in, g)
				}
				if !strings.Contains(err.Error(), "callback host rule") {
					t.Errorf("error %q does not say which rule", err)
				}
				if !g.Open() {
					t.Errorf("on error ParseGuard returned %v, want the zero Guard", g)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseGuard(%q): %v", c.in, err)
			}
			if got := g.String(); got != c.want {
				t.Errorf("ParseGuard(%q) = %q, want %q", c.in, got, c.want)
			}
			if g.Open() != (c.want == "any host") {
				t.Errorf("ParseGuard(%q).Open() = %v", c.in, g.Open())
			}
		})
	}
}

func TestGuardCheck(t *testing.T) {
	const (
		ok         = iota
		bad        // refused, but not because of the rules (malformed URL)
		notAllowed // refused by the rules: wraps ErrCallbackNotAllowed
	)
	cases := []struct {
		name  string
		rules string
		url   string
		want  int
	}{
		{"open http", "", "http://anything.example/cb", ok},
		{"open https", "", "https://anything.example:8443/cb?x=1", ok},
		{"open metadata address", "", "http://169.254.169.254/latest", ok},
		{"open ipv6", "", "http://[::1]:9000/", ok},
		{"open ftp", "", "ftp://files.example/x", bad},
		{"open file", "", "file:///etc/passwd", bad},
		{"open websocket", "", "ws://hooks.example/", bad},
		{"open relative", "", "/cb", bad},
		{"open no scheme", "", "hooks.example.com/cb", bad},
		{"open no host", "", "http:///cb", bad},
		{"open port only", "", "http://:8080/cb", bad},
		{"rules no host", "hooks.example.com", "http:///cb", bad},
		{"rules bad scheme", "hooks.example.com", "gopher://hooks.example.com/", bad},

		{"name match", "hooks.example.com", "http://hooks.example.com/cb", ok},
		{"name match https with port", "hooks.example.com", "https://hooks.example.com:8443/cb", ok},
		{"name match case-insensitive", "hooks.example.com", "http://HOOKS.Example.com/cb", ok},
		{"name match trailing dot", "hooks.example.com", "http://hooks.example.com./cb", ok},
		{"name match with user", "hooks.example.com", "http://u:p@hooks.example.com/cb", ok},
		{"name other host", "hooks.example.com", "http://evil.example.com/cb", notAllowed},
		{"name as prefix of host", "hooks.example.com", "http://hooks.example.com.evil.io/cb", notAllowed},
		{"name subdomain", "hooks.example.com", "http://a.hooks.example.com/cb", notAllowed},
		{"name rules only: IP refused", "hooks.example.com", "http://10.0.0.1/cb", notAllowed},
		{"name rules only: loopback refused", "localhost", "http://127.0.0.1/cb", notAllowed},

		{"wildcard subdomain", "*.example.com", "http://a.example.com/cb", ok},
		{"wildcard deep subdomain", "*.example.com", "https://a.b.example.com/cb", ok},
		{"wildcard not the bare domain", "*.example.com", "http://example.com/cb", notAllowed},
		{"wildcard not a longer name", "*.example.com", "http://badexample.com/cb", notAllowed},
		{"wildcard not a suffix elsewhere", "*.example.com", "http://a.example.com.evil.io/cb", notAllowed},

		{"IP rule exact", "192.168.1.7", "http://192.168.1.7:8080/cb", ok},
		{"IP rule other", "192.168.1.7", "http://192.168.1.8/cb", notAllowed},
		{"CIDR inside", "10.0.0.0/8", "http://10.1.2.3:9000/cb", ok},
		{"CIDR first address", "10.0.0.0/8", "http://10.0.0.0/cb", ok},
		{"CIDR last address", "10.0.0.0/8", "http://10.255.255.255/cb", ok},
		{"CIDR outside", "10.0.0.0/8", "http://11.0.0.1/cb", notAllowed},
		{"CIDR metadata outside", "10.0.0.0/8", "http://169.254.169.254/cb", notAllowed},
		{"CIDR inside as mapped ipv6", "10.0.0.0/8", "http://[::ffff:10.0.0.1]/cb", ok},
		{"CIDR outside as mapped ipv6", "10.0.0.0/8", "http://[::ffff:11.0.0.1]/cb", notAllowed},
		{"ipv6 CIDR inside", "fd00::/8", "http://[fd00::1]:80/cb", ok},
		{"ipv6 CIDR outside", "fd00::/8", "http://[fe80::1]/cb", notAllowed},
		{"ipv6 CIDR does not hold ipv4", "fd00::/8", "http://10.0.0.1/cb", notAllowed},
		// Addresses are unmapped before matching (and a mapped IP rule is
		// unmapped), so a mapped CIDR rule must hold the IPv4 addresses it
		// maps rather than match nothing.
		{"mapped ipv6 CIDR rule holds ipv4", "::ffff:10.0.0.0/104", "http://10.1.2.3/cb", ok},
		{"CIDR rules: any name passes (checked at dial)", "10.0.0.0/8", "http://hooks.example.com/cb", ok},

		{"mixed: name match", "hooks.example.com,10.0.0.0/8", "http://hooks.example.com/cb", ok},
		{"mixed: other name passes", "hooks.example.com,10.0.0.0/8", "http://other.example.org/cb", ok},
		{"mixed: IP inside", "hooks.example.com,10.0.0.0/8", "http://10.9.9.9/cb", ok},
		{"mixed: IP outside", "hooks.example.com,10.0.0.0/8", "http://192.168.0.1/cb", notAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGuard(c.rules)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check(u)
			switch c.want {
			case ok:
				if err != nil {
					t.Errorf("Check(%s) with rules %q = %v, want nil", c.url, c.rules, err)
				}
			case bad:
				if err == nil || errors.Is(err, ErrCallbackNotAllowed) {
					t.Errorf("Check(%s) with rules %q = %v, want a malformed-URL error", c.url, c.rules, err)
				}
			case notAllowed:
				if !errors.Is(err, ErrCallbackNotAllowed) {
					t.Errorf("Check(%s) with rules %q = %v, want ErrCallbackNotAllowed", c.url, c.rules, err)
				}
			}
		})
	}
}

// TestGuardCheckRedactsPassword: the error quotes the URL, but not the
// password it may carry.
func TestGuardCheckRedactsPassword(t *testing.T) {
	g, err := ParseGuard("hooks.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"http://user:s3cret@evil.example/cb", "ftp://user:s3cret@hooks.example.com/"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Check(u); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Check(%s) = %v, want an error without the password", raw, err)
		}
	}
}

// guardTestServer is a local HTTP server on 127.0.0.1 and its port.
func guardTestServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return srv, port
}

func TestGuardDialContext(t *testing.T) {
	_, port := guardTestServer(t)
	cases := []struct {
		name    string
		rules   string
		host    string // dialled with the server's port
		wantErr bool   // refused with ErrCallbackNotAllowed
	}{
		{"open guard", "", "127.0.0.1", false},
		{"open guard by name", "", "localhost", false},
		{"IP inside CIDR", "127.0.0.1/32", "127.0.0.1", false},
		{"IP inside wide CIDR", "127.0.0.0/8", "127.0.0.1", false},
		{"IP rule", "127.0.0.1", "127.0.0.1", false},
		{"IP outside CIDR", "10.0.0.0/8", "127.0.0.1", true},
		{"IP outside CIDRs of both families", "10.0.0.0/8,fd00::/8", "127.0.0.1", true},
		{"name rule, no IP rule covers it", "localhost", "localhost", false},
		{"wildcard rule and loopback CIDR", "*.example.com,127.0.0.0/8", "localhost", false},
		{"name resolved outside CIDR", "*.example.com,10.0.0.0/8", "localhost", true},
		{"IP with name rules only", "localhost", "127.0.0.1", true},
		{"name matching no rule, no IP rule", "hooks.example.com", "localhost", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGuard(c.rules)
			if err != nil {
				t.Fatal(err)
			}
			dial := g.DialContext(&net.Dialer{Timeout: 5 * time.Second})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			addr := net.JoinHostPort(c.host, port)

			conn, err := dial(ctx, "tcp", addr)
			if conn != nil {
				_ = conn.Close()
			}
			if c.wantErr {
				if !errors.Is(err, ErrCallbackNotAllowed) {
					t.Fatalf("dial %s with rules %q = %v, want ErrCallbackNotAllowed", addr, c.rules, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s with rules %q: %v", addr, c.rules, err)
			}

			// The same through an HTTP client, as callbacks are sent.
			tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/cb", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("POST %s with rules %q: %v", addr, c.rules, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("POST %s: status %d, want 204", addr, resp.StatusCode)
			}
		})
	}
}

// TestGuardDialContextKeepsDialerHooks: the guard must hold whatever
// Dialer it wraps. net.Dialer ignores Control when ControlContext is set,
// so a guard installed only as Control is bypassed by such a Dialer; and a
// Control the caller set must still run.
func TestGuardDialContextKeepsDialerHooks(t *testing.T) {
	_, port := guardTestServer(t)
	addr := net.JoinHostPort("127.0.0.1", port)
	cases := []struct {
		name       string
		rules      string
		dialer     func(called *bool) *net.Dialer
		wantErr    bool // refused with ErrCallbackNotAllowed
		wantCalled bool // the Dialer's own hook ran
	}{
		{
			name:  "ControlContext set, address refused",
			rules: "10.0.0.0/8",
			dialer: func(called *bool) *net.Dialer {
				return &net.Dialer{Timeout: 5 * time.Second, ControlContext: func(context.Context, string, string, syscall.RawConn) error {
					*called = true
					return nil
				}}
			},
			wantErr: true,
		},
		{
			name:  "ControlContext set, address allowed",
			rules: "127.0.0.1/32",
			dialer: func(called *bool) *net.Dialer {
				return &net.Dialer{Timeout: 5 * time.Second, ControlContext: func(context.Context, string, string, syscall.RawConn) error {
					*called = true
					return nil
				}}
			},
			wantCalled: true,
		},
		{
			name:  "Control set, address allowed",
			rules: "127.0.0.1/32",
			dialer: func(called *bool) *net.Dialer {
				return &net.Dialer{Timeout: 5 * time.Second, Control: func(string, string, syscall.RawConn) error {
					*called = true
					return nil
				}}
			},
			wantCalled: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGuard(c.rules)
			if err != nil {
				t.Fatal(err)
			}
			var called bool
			conn, err := g.DialContext(c.dialer(&called))(t.Context(), "tcp", addr)
			if conn != nil {
				_ = conn.Close()
			}
			if c.wantErr {
				if !errors.Is(err, ErrCallbackNotAllowed) {
					t.Errorf("dial %s with rules %q = %v, want ErrCallbackNotAllowed", addr, c.rules, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s with rules %q: %v", addr, c.rules, err)
			}
			if called != c.wantCalled {
				t.Errorf("the Dialer's own hook ran: %v, want %v", called, c.wantCalled)
			}
		})
	}
}
