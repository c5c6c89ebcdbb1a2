package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// authRoute is one request per route of pkg/api/router.go. Its body makes
// the authenticated request harmless: it is refused (or finds nothing) for
// a reason other than auth, so the matrix changes no state.
type authRoute struct {
	pattern      string // the route as registered in router.go
	method, path string
	body         string
}

// authRoutes covers every route of the router. TestAuthMatrix fails when
// router.go registers a route this table lacks.
var authRoutes = []authRoute{
	{"/system/functions", "GET", "/system/functions", ""},
	{"/system/functions", "POST", "/system/functions", `{}`},
	{"/system/functions", "PUT", "/system/functions", `{}`},
	{"/system/functions", "DELETE", "/system/functions", `{"functionName":"ghost"}`},
	{"/system/function/{name}", "GET", "/system/function/x", ""},
	{"/system/scale-function/{name}", "POST", "/system/scale-function/x", `{"replicas":1}`},
	{"/system/info", "GET", "/system/info", ""},
	{"/system/providers", "GET", "/system/providers", ""},
	{"/system/namespaces", "GET", "/system/namespaces", ""},
	{"/system/secrets", "GET", "/system/secrets", ""},
	{"/system/secrets", "POST", "/system/secrets", `{}`},
	{"/system/secrets", "PUT", "/system/secrets", `{}`},
	{"/system/secrets", "DELETE", "/system/secrets", `{"name":"ghost"}`},
	{"/system/namespace/", "POST", "/system/namespace/", `{}`},
	{"/system/namespace/{ns}", "GET", "/system/namespace/x", ""},
	{"/system/namespace/{ns}", "PUT", "/system/namespace/x", `{"name":"x","labels":{"openfaas":"1"}}`},
	{"/system/namespace/{ns}", "DELETE", "/system/namespace/x", `{"name":"x","labels":{"openfaas":"1"}}`},
	{"/system/logs", "GET", "/system/logs?name=x", ""},
	// Image upload: the authenticated upload is refused as no archive.
	{"/system/images", "GET", "/system/images", ""},
	{"/system/images", "POST", "/system/images", "not an archive"},
	{"/system/metrics", "GET", "/system/metrics", ""},
	{"/system/backup", "GET", "/system/backup", ""},
	{"/debug/reconcile", "GET", "/debug/reconcile", ""},
	{"/debug/reconcile/", "GET", "/debug/reconcile/x", ""},
	// The web console (README "Web console"): a page and a form post
	// (refused by its CSRF check when authenticated).
	{"/ui", "GET", "/ui", ""},
	{"/ui/", "GET", "/ui/", ""},
	{"/ui/", "POST", "/ui/deploy", "name=x"},
	{"/function/{name}", "GET", "/function/x", ""},
	{"/function/{name}/", "POST", "/function/x/", "body"},
	{"/function/{name}/{params:.*}", "DELETE", "/function/x.openfaas-fn/a/b?c=d", ""},
	// Async (docs/async.md): accepting is authenticated like /function/,
	// cancelling and the records like /system/*.
	{"/async-function/{name}", "POST", "/async-function/x", "body"},
	{"/async-function/{name}", "DELETE", "/async-function/x", ""},
	{"/async-function/{name}/", "PUT", "/async-function/x/", "body"},
	{"/async-function/{name}/{params:.*}", "PATCH", "/async-function/x.openfaas-fn/a/b?c=d", "body"},
	{"/async-function/{name}/{params:.*}", "DELETE", "/async-function/x/a", ""},
	{"/system/async", "GET", "/system/async?function=x", ""},
	{"/system/async/{id}", "GET", "/system/async/x", ""},
	// Execution records (README "Execution records").
	{"/system/executions", "GET", "/system/executions?function=x", ""},
	{"/system/executions/{id}", "GET", "/system/executions/x", ""},
	// Builds (README "Build on the server"): records and templates.
	{"/system/builds", "GET", "/system/builds", ""},
	{"/system/builds/{id}", "GET", "/system/builds/x", ""},
	{"/system/templates", "GET", "/system/templates", ""},
	{"/system/templates/{lang}", "GET", "/system/templates/x", ""},
	{"/system/templates/{lang}", "PUT", "/system/templates/x", "not a tar"},
	{"/system/templates/{lang}", "DELETE", "/system/templates/x", ""},
}

// hmacRoutes are authenticated by an HMAC signature of the body only (the
// builder API, as faas-cli's remote builder signs it): whatever
// Authorization says, an unsigned request gets 401.
var hmacRoutes = []authRoute{{"/build", "POST", "/build", "not a tar"}}

// invokeRoute reports whether INVOKE_AUTH=false opens r: the invocations,
// synchronous and async, but not cancelling an async call.
func invokeRoute(r authRoute) bool {
	return strings.HasPrefix(r.path, "/function/") ||
		strings.HasPrefix(r.path, "/async-function/") && r.method != http.MethodDelete
}

// openRoutes answer without credentials, whatever Authorization says.
var openRoutes = []authRoute{
	{"/healthz", "GET", "/healthz", ""},
	{"/metrics", "GET", "/metrics", ""},
}

// registeredRoutes returns the paths pkg/api registers: router.go and the
// files it delegates to (async.go mounts the async routes).
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(suite.moduleRoot, "pkg", "api", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`r\.(?:Handle|PathPrefix)\("([^"]+)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatal("found no routes in pkg/api/router.go")
	}
	return out
}

// TestAuthMatrix sends a request to every route of the router with no
// credentials, a wrong password, a wrong user, a malformed Basic header,
// faas-cli's bare "Bearer" and a bearer token: each gets 401 with
// WWW-Authenticate: Basic realm="Restricted" and a message. With the right
// credentials none gets 401. /healthz and /metrics answer 200 to all of
// them. With INVOKE_AUTH=false, /function/* is open and /system/* is not.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, r := range slices.Concat(authRoutes, openRoutes, hmacRoutes) {
		known[r.pattern] = true
	}
	for _, p := range registeredRoutes(t) {
		if !known[p] {
			t.Errorf("router.go registers %s, which the auth matrix does not cover: add it to authRoutes or openRoutes", p)
		}
	}

	basic := func(user, pass string) string {
		r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	type cred struct {
		name   string
		header string // Authorization; "" sends none
		right  bool
	}
	matrix := func(t *testing.T, d *daemon, routes []authRoute, open func(authRoute) bool) map[string]int {
		creds := []cred{
			{"no credentials", "", false},
			{"wrong password", basic(d.user, "wrong-"+d.password), false},
			{"wrong user", basic("nobody", d.password), false},
			{"malformed Basic", "Basic !!!not-base64", false},
			{"bare Bearer", "Bearer", false},
			{"bearer token", "Bearer " + d.password, false},
			{"right", basic(d.user, d.password), true},
		}
		tally := map[string]int{}
		for _, r := range routes {
			for _, c := range creds {
				var hdr map[string]string
				if c.header != "" {
					hdr = map[string]string{"Authorization": c.header}
				}
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				res, err := d.request(r.method, r.path, body, hdr, authNone)
				if err != nil {
					t.Errorf("%s %s with %s: %v", r.method, r.path, c.name, err)
					continue
				}
				what := r.method + " " + r.path + " with " + c.name
				switch {
				case c.right || open(r):
					if res.Status == http.StatusUnauthorized {
						t.Errorf("%s: %s, want anything but 401", what, res)
					}
					tally["not 401"]++
				default:
					tally["401"]++
					if res.Status != http.StatusUnauthorized {
						t.Errorf("%s: %s, want 401", what, res)
						continue
					}
					if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="Restricted"` {
						t.Errorf("%s: WWW-Authenticate %q, want %q", what, got, `Basic realm="Restricted"`)
					}
					if strings.TrimSpace(string(res.Body)) == "" {
						t.Errorf("%s: 401 without a message", what)
					}
				}
			}
		}
		for _, r := range hmacRoutes {
			for _, c := range creds {
				hdr := map[string]string{}
				if c.header != "" {
					hdr["Authorization"] = c.header
				}
				res, err := d.request(r.method, r.path, []byte(r.body), hdr, authNone)
				if err != nil || res.Status != http.StatusUnauthorized || strings.TrimSpace(string(res.Body)) == "" {
					t.Errorf("unsigned %s %s with %s: %s %v, want 401 with a message", r.method, r.path, c.name, res, err)
				}
				tally["hmac 401"]++
			}
		}
		for _, r := range openRoutes {
			for _, c := range creds {
				hdr := map[string]string{}
				if c.header != "" {
					hdr["Authorization"] = c.header
				}
				res, err := d.request(r.method, r.path, nil, hdr, authNone)
				if err != nil || res.Status != http.StatusOK {
					t.Errorf("open route %s with %s: %s %v, want 200", r.path, c.name, res, err)
				}
				tally["open 200"]++
			}
		}
		return tally
	}

	t.Run("invoke auth on (default)", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, withManyLoginFailures())
		before, err := d.apiSnapshotDefault()
		if err != nil {
			t.Fatal(err)
		}
		tally := matrix(t, d, authRoutes, func(authRoute) bool { return false })
		after, err := d.apiSnapshotDefault()
		if err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Errorf("the auth matrix changed stored state:\nbefore %s\nafter  %s", before, after)
		}
		t.Logf("%d routes × 7 credentials: %v", len(authRoutes), tally)
	})

	t.Run("INVOKE_AUTH=false", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, withInvokeAuth(false), withManyLoginFailures())
		tally := matrix(t, d, authRoutes, invokeRoute)
		t.Logf("%d routes × 7 credentials: %v", len(authRoutes), tally)
	})
}

// withManyLoginFailures lifts the login throttle (AUTH_FAILURES_MAX) far
// above what a test sending wrong credentials on purpose from 127.0.0.1
// needs: the matrix sends two wrong Basic credentials per route.
func withManyLoginFailures() daemonOption {
	return withEnv("AUTH_FAILURES_MAX", "100000")
}

// apiSnapshotDefault lists functions, secrets and namespaces as JSON, for
// a daemon with nothing but the default namespace.
func (d *daemon) apiSnapshotDefault() (string, error) {
	var parts []string
	for _, path := range []string{"/system/functions", "/system/secrets", "/system/namespaces"} {
		res, err := d.request(http.MethodGet, path, nil, nil, authBasic)
		if err != nil {
			return "", err
		}
		parts = append(parts, path+"="+string(res.Body))
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n"), nil
}
