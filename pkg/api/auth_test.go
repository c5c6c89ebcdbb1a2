package api

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// protected lists one request per route behind basic auth.
var protected = []struct{ method, target, body string }{
	{"GET", "/system/functions", ""},
	{"POST", "/system/functions", helloBody},
	{"PUT", "/system/functions", helloBody},
	{"DELETE", "/system/functions", `{"functionName":"hello"}`},
	{"GET", "/system/function/hello", ""},
	{"POST", "/system/scale-function/hello", `{"replicas":1}`},
	{"GET", "/system/namespaces", ""},
	{"GET", "/system/info", ""},
	{"PATCH", "/system/functions", ""}, // auth comes before the method check
}

func TestAuth(t *testing.T) {
	creds := []struct {
		name string
		prep func(*http.Request)
		ok   bool
	}{
		{"no header", nil, false},
		// faas-cli when not logged in sends the bare word [cap 01].
		{"bare bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer") }, false},
		{"bearer token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer sometoken") }, false},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth(testUser, "nope") }, false},
		{"password prefix", func(r *http.Request) { r.SetBasicAuth(testUser, testPass[:3]) }, false},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("root", testPass) }, false},
		{"empty basic", func(r *http.Request) { r.SetBasicAuth("", "") }, false},
		{"garbage basic", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, false},
		{"right", func(r *http.Request) { r.SetBasicAuth(testUser, testPass) }, true},
		// The header as clients send it is decided by its hash; these
		// others take the full check, with the same outcome as ever.
		{"right, scheme in lower case", func(r *http.Request) {
			r.Header.Set("Authorization", "basic "+base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass)))
		}, true},
		{"right, then more bytes", func(r *http.Request) {
			r.SetBasicAuth(testUser, testPass)
			r.Header.Set("Authorization", r.Header.Get("Authorization")+"x")
		}, false},
		{"right header twice", func(r *http.Request) {
			r.SetBasicAuth(testUser, testPass)
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
		}, true},
	}
	for _, c := range creds {
		for _, p := range protected {
			t.Run(c.name+" "+p.method+" "+p.target, func(t *testing.T) {
				f := newFixture(t, nil)
				w := f.send(t, p.method, p.target, p.body, c.prep)
				if !c.ok {
					if w.Code != http.StatusUnauthorized {
						t.Fatalf("got %d, want 401", w.Code)
					}
					if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="Restricted"` {
						t.Errorf("WWW-Authenticate = %q", got)
					}
					if got := w.Body.String(); got != "invalid credentials\n" {
						t.Errorf("body = %q", got)
					}
					return
				}
				if w.Code == http.StatusUnauthorized {
					t.Fatalf("valid credentials refused")
				}
			})
		}
	}
}

func TestAuthOpenRoutes(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.send(t, "GET", "/healthz", "", nil); w.Code != 200 {
		t.Errorf("/healthz without auth: got %d, want 200", w.Code)
	}
	// Credentials on an open route are simply ignored.
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer") }
	if w := f.send(t, "GET", "/healthz", "", bearer); w.Code != 200 {
		t.Errorf("/healthz with bare Bearer: got %d, want 200", w.Code)
	}
}

func TestAuthInvokeSwitch(t *testing.T) {
	proxy := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, open := range []bool{false, true} {
		f := newFixture(t, func(c *Config) {
			c.Invoke = proxy
			c.Auth.InvokeOpen = open
		})
		// faas-cli invoke sends no credentials [cap 46].
		w := f.send(t, "POST", "/function/hello.openfaas-fn", "hi", nil)
		want := http.StatusUnauthorized
		if open {
			want = http.StatusOK
		}
		if w.Code != want {
			t.Errorf("InvokeOpen=%v, no credentials: got %d, want %d", open, w.Code, want)
		}
		if w := f.do(t, "POST", "/function/hello", "hi"); w.Code != http.StatusOK {
			t.Errorf("InvokeOpen=%v, valid credentials: got %d, want 200", open, w.Code)
		}
		// /system stays protected either way.
		if w := f.send(t, "GET", "/system/functions", "", nil); w.Code != http.StatusUnauthorized {
			t.Errorf("InvokeOpen=%v: /system/functions without auth got %d, want 401", open, w.Code)
		}
	}
}

// TestAuthNoPassword: with no password configured nothing is accepted, not
// even the empty credentials.
func TestAuthNoPassword(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Auth = Auth{User: "admin"} })
	for _, prep := range []func(*http.Request){
		nil,
		func(r *http.Request) { r.SetBasicAuth("admin", "") },
	} {
		if w := f.send(t, "GET", "/system/functions", "", prep); w.Code != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", w.Code)
		}
	}
}

// TestAuthNotLogged: a rejected request never puts the credentials it
// carried into the log.
func TestAuthNotLogged(t *testing.T) {
	f := newFixture(t, nil)
	f.send(t, "GET", "/system/functions", "", func(r *http.Request) { r.SetBasicAuth("admin", "hunter2-secret") })
	for _, e := range f.logs.AllEntries() {
		s, _ := e.String()
		if strings.Contains(s, "hunter2") || strings.Contains(s, "Basic ") {
			t.Errorf("log leaks credentials: %s", s)
		}
	}
}

// TestInvokeAllows: NewHandlers' invokeAllows lets a call through only
// when the invoke handler would at once (the configured credentials as
// clients send them, from a client not throttled, or any call when
// invocations are open), and says so for those, so that a server
// forwarding plain calls without the handler keeps its answers.
func TestInvokeAllows(t *testing.T) {
	valid := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":nope"))
	tests := []struct {
		name      string
		open      bool
		authz     string
		throttled bool // the client failed FailuresMax times first
		want      bool
	}{
		{"valid", false, valid, false, true},
		{"none", false, "", false, false},
		{"wrong password", false, wrong, false, false},
		{"other spelling", false, "basic " + valid[len("Basic "):], false, false}, // the handler decides it
		{"bearer", false, "Bearer", false, false},
		{"valid but throttled", false, valid, true, false},
		{"open, none", true, "", false, true},
		{"open, wrong", true, wrong, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{
				Store: store.NewMemory(), Status: status.NewBoard(), Log: logrus.New(),
				Invoke: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
				Auth:   Auth{User: testUser, Password: testPass, InvokeOpen: tt.open, FailuresMax: 2},
			}
			cfg.Log.(*logrus.Logger).SetOutput(io.Discard)
			_, invoke, allows := NewHandlers(cfg)
			const remote = "192.0.2.7:4000"
			call := func(authz string) int {
				r := httptest.NewRequest(http.MethodPost, "/function/hello", nil)
				r.RemoteAddr = remote
				if authz != "" {
					r.Header.Set("Authorization", authz)
				}
				w := httptest.NewRecorder()
				invoke.ServeHTTP(w, r)
				return w.Code
			}
			if tt.throttled {
				for range 2 {
					call(wrong)
				}
			}
			got := allows([]byte(tt.authz), remote, nil)
			if got != tt.want {
				t.Errorf("allows = %v, want %v", got, tt.want)
			}
			if code := call(tt.authz); got && code != http.StatusOK {
				t.Errorf("allowed, but the handler answers %d", code)
			}
		})
	}
}

// TestInvokeAllowsBehindProxy: behind a trusted proxy the throttled client
// is the one X-Forwarded-For names, as for the handler; behind another
// peer the header is not read.
func TestInvokeAllowsBehindProxy(t *testing.T) {
	valid := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	trusted, err := ParseTrustedProxies("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	_, invoke, allows := NewHandlers(Config{
		Store: store.NewMemory(), Status: status.NewBoard(), Log: log,
		Invoke: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
		Auth:   Auth{User: testUser, Password: testPass, FailuresMax: 2, TrustedProxies: trusted},
	})
	// Two wrong passwords from 198.51.100.9, through the trusted proxy.
	for range 2 {
		r := httptest.NewRequest(http.MethodPost, "/function/hello", nil)
		r.RemoteAddr = "192.0.2.1:4000"
		r.Header.Set("X-Forwarded-For", "198.51.100.9")
		r.SetBasicAuth(testUser, "nope")
		invoke.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, tt := range []struct {
		remote string
		xff    []string
		want   bool
	}{
		{"192.0.2.1:4000", []string{"198.51.100.9"}, false},
		{"192.0.2.1:4000", []string{"203.0.113.5, 198.51.100.9"}, false},
		{"192.0.2.1:4000", []string{"198.51.100.10"}, true},
		{"192.0.2.1:4000", nil, true},                      // the proxy itself
		{"192.0.2.2:4000", []string{"198.51.100.9"}, true}, // not trusted: its own address counts
	} {
		var xff [][]byte
		for _, v := range tt.xff {
			xff = append(xff, []byte(v))
		}
		if got := allows([]byte(valid), tt.remote, xff); got != tt.want {
			t.Errorf("from %s with X-Forwarded-For %q: allows = %v, want %v", tt.remote, tt.xff, got, tt.want)
		}
	}
}
