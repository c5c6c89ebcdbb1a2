package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// TestRoutes covers every route with the codes of CONTRACT.md §10. No
// namespace but openfaas-fn is created here, so "dev" stands for a
// namespace that does not exist (400); namespaces_test.go covers functions
// in created namespaces and the namespace routes.
func TestRoutes(t *testing.T) {
	tests := []struct {
		name   string
		seed   bool // deploy hello first
		method string
		target string
		body   string
		want   int
	}{
		{"healthz", false, "GET", "/healthz", "", 200},
		{"healthz head", false, "HEAD", "/healthz", "", 200},
		{"list empty", false, "GET", "/system/functions", "", 200},
		{"list default ns", true, "GET", "/system/functions?namespace=openfaas-fn", "", 200},
		{"list unknown ns", true, "GET", "/system/functions?namespace=dev", "", 400},
		{"deploy new", false, "POST", "/system/functions", helloBody, 202},
		{"deploy existing", true, "POST", "/system/functions", helloBody, 409},
		{"deploy bad", false, "POST", "/system/functions", `{"service":"x"}`, 400},
		{"update existing", true, "PUT", "/system/functions", helloBody, 202},
		{"update unknown", false, "PUT", "/system/functions", helloBody, 404},
		{"update bad", true, "PUT", "/system/functions", `{`, 400},
		{"delete existing", true, "DELETE", "/system/functions", `{"functionName":"hello"}`, 202},
		{"delete existing ns in body", true, "DELETE", "/system/functions", `{"functionName":"hello","namespace":"openfaas-fn"}`, 202},
		{"delete existing ns in query", true, "DELETE", "/system/functions?namespace=openfaas-fn", `{"functionName":"hello"}`, 202},
		{"delete body ns wins", true, "DELETE", "/system/functions?namespace=dev", `{"functionName":"hello","namespace":"openfaas-fn"}`, 202},
		{"delete unknown", false, "DELETE", "/system/functions", `{"functionName":"ghost"}`, 404},
		{"delete invalid name", false, "DELETE", "/system/functions", `{"functionName":"../x"}`, 404},
		{"delete no name", true, "DELETE", "/system/functions", `{"namespace":"openfaas-fn"}`, 400},
		{"delete no body", true, "DELETE", "/system/functions", "", 400},
		{"delete unknown ns", true, "DELETE", "/system/functions", `{"functionName":"hello","namespace":"dev"}`, 400},
		{"delete unknown ns in query", true, "DELETE", "/system/functions?namespace=dev", `{"functionName":"hello"}`, 400},
		{"describe", true, "GET", "/system/function/hello", "", 200},
		{"describe usage", true, "GET", "/system/function/hello?usage=1", "", 200},
		{"describe usage false", true, "GET", "/system/function/hello?usage=false&namespace=openfaas-fn", "", 200},
		{"describe missing", false, "GET", "/system/function/nope?usage=1", "", 404},
		{"describe invalid name", false, "GET", "/system/function/Hello", "", 404},
		{"describe unknown ns", true, "GET", "/system/function/hello?namespace=dev", "", 400},
		{"scale", true, "POST", "/system/scale-function/hello", `{"serviceName":"hello","replicas":3}`, 202},
		{"scale ns in query", true, "POST", "/system/scale-function/hello?namespace=openfaas-fn", `{"replicas":2}`, 202},
		{"scale missing", false, "POST", "/system/scale-function/ghost", `{"serviceName":"ghost","replicas":1}`, 404},
		{"scale bad body", true, "POST", "/system/scale-function/hello", `{"replicas":"3"}`, 400},
		{"scale unknown ns", true, "POST", "/system/scale-function/hello", `{"replicas":1,"namespace":"dev"}`, 400},
		{"info", false, "GET", "/system/info", "", 200},
		{"namespaces", false, "GET", "/system/namespaces", "", 200},
		{"unknown path", false, "GET", "/nope", "", 404},
		{"unknown system path", false, "GET", "/system/nope", "", 404},
		{"trailing slash is another path", false, "GET", "/system/functions/", "", 404},
		{"function without name", false, "POST", "/function/", "", 404},
		{"async not served yet", false, "POST", "/async-function/hello", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if tt.seed {
				f.deploy(t, helloBody)
			}
			w := f.do(t, tt.method, tt.target, tt.body)
			if w.Code != tt.want {
				t.Fatalf("%s %s: got %d %q, want %d", tt.method, tt.target, w.Code, w.Body.String(), tt.want)
			}
			if w.Code >= 400 {
				if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("error Content-Type = %q", ct)
				}
				if b := w.Body.String(); tt.method != "HEAD" && (!strings.HasSuffix(b, "\n") || strings.TrimSpace(b) == "") {
					t.Errorf("error body %q: want a message ending in newline", w.Body.String())
				}
			}
		})
	}
}

func TestHealthzBody(t *testing.T) {
	f := newFixture(t, nil)
	w := f.send(t, "GET", "/healthz", "", nil)
	if w.Code != 200 || w.Body.String() != "OK" {
		t.Fatalf("got %d %q, want 200 OK", w.Code, w.Body.String())
	}
}

// TestMethodNotAllowed checks that a known path with a wrong method gets a
// 405 with an Allow header and a message, not mux's empty response.
func TestMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, target, allow string
	}{
		{"PATCH", "/system/functions", "DELETE, GET, HEAD, POST, PUT"},
		{"POST", "/system/function/hello", "GET, HEAD"},
		{"GET", "/system/scale-function/hello", "POST"},
		{"PUT", "/system/scale-function/hello", "POST"},
		{"POST", "/system/namespaces", "GET, HEAD"},
		{"DELETE", "/system/info", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(t, tt.method, tt.target, "")
			if w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("got %d, want 405", w.Code)
			}
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if !strings.Contains(w.Body.String(), "not allowed") {
				t.Errorf("body %q: want a message", w.Body.String())
			}
		})
	}
}

// TestMounts checks that the optional handlers are mounted where and how
// the rest of the daemon expects, and absent when nil.
func TestMounts(t *testing.T) {
	type seen struct{ path, name, params string }
	var got []seen
	stub := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := mux.Vars(r)
			got = append(got, seen{r.URL.Path, v["name"], v["params"]})
			w.WriteHeader(code)
		})
	}
	f := newFixture(t, func(c *Config) {
		c.Invoke = stub(http.StatusTeapot)
		c.Debug = stub(http.StatusOK)
		c.Metrics = stub(http.StatusOK)
	})

	invoke := []struct{ path, name, params string }{
		{"/function/hello", "hello", ""},
		{"/function/hello.openfaas-fn", "hello.openfaas-fn", ""},
		{"/function/hello/", "hello", ""},
		{"/function/hello/a/b", "hello", "a/b"},
		// Not cleaned or redirected: the path belongs to the function.
		{"/function/hello//x/../y", "hello", "/x/../y"},
	}
	for _, tt := range invoke {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"} {
			got = nil
			w := f.do(t, m, tt.path+"?q=1", "")
			if w.Code != http.StatusTeapot || len(got) != 1 {
				t.Fatalf("%s %s: got %d (%d calls), want the proxy", m, tt.path, w.Code, len(got))
			}
			if want := (seen{tt.path, tt.name, tt.params}); got[0] != want {
				t.Errorf("%s %s: proxy saw %+v, want %+v", m, tt.path, got[0], want)
			}
		}
	}

	for _, p := range []string{"/debug/reconcile", "/debug/reconcile/json"} {
		if w := f.do(t, "GET", p, ""); w.Code != 200 {
			t.Errorf("GET %s: got %d, want 200", p, w.Code)
		}
		if w := f.send(t, "GET", p, "", nil); w.Code != 401 {
			t.Errorf("GET %s without auth: got %d, want 401", p, w.Code)
		}
	}
	if w := f.send(t, "GET", "/metrics", "", nil); w.Code != 200 {
		t.Errorf("GET /metrics without auth: got %d, want 200", w.Code)
	}

	bare := newFixture(t, nil)
	for _, p := range []string{"/function/hello", "/debug/reconcile", "/metrics"} {
		if w := bare.do(t, "GET", p, ""); w.Code != 404 {
			t.Errorf("unmounted %s: got %d, want 404", p, w.Code)
		}
	}
}
