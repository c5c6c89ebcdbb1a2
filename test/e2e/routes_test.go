package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// annotationRoute gives a function a path route.
const annotationRoute = "io.dockerfaas.route"

// routedSpec is fn-echo's simpleSpec with the route annotation.
func routedSpec(name, image, route string) types.FunctionDeployment {
	s := simpleSpec(name, image, nil, nil)
	(*s.Annotations)[annotationRoute] = route
	return s
}

// routeEcho sends method path (with the daemon's credentials) and requires
// a 200 from fn-echo served by a replica of fn, returning its reply.
func (d *daemon) routeEcho(method, path, body, fn string) (echoReply, error) {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	res, err := d.request(method, path, b, nil, authBasic)
	if err != nil {
		return echoReply{}, err
	}
	if res.Status != http.StatusOK {
		return echoReply{}, fmt.Errorf("%s %s: %s, want 200", method, path, res)
	}
	rep, err := decodeEcho(res)
	if err != nil {
		return rep, err
	}
	ids, err := d.runningIDs(fn, defaultNamespace)
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if short(id) == rep.Hostname {
			return rep, nil
		}
	}
	return rep, fmt.Errorf("%s %s: answered by %q, not a replica of %s", method, path, rep.Hostname, fn)
}

// routeStatus is the status of an authenticated GET of path.
func (d *daemon) routeStatus(path string) (int, error) {
	res, err := d.request(http.MethodGet, path, nil, nil, authBasic)
	return res.Status, err
}

// debugRoutes reads the routes from /debug/reconcile's JSON.
func (d *daemon) debugRoutes() ([]debugRoute, error) {
	res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /debug/reconcile: %s", res)
	}
	var v struct {
		Routes []debugRoute `json:"routes"`
	}
	if err := json.Unmarshal(res.Body, &v); err != nil {
		return nil, fmt.Errorf("GET /debug/reconcile: %w", err)
	}
	return v.Routes, nil
}

// debugRoute is one route on /debug/reconcile.
type debugRoute struct {
	Path      string `json:"path"`
	Function  string `json:"function"`
	Namespace string `json:"namespace"`
	Error     string `json:"error"`
}

// TestPathRoutes: with invoke auth on, functions with io.dockerfaas.route
// are served at their path prefix exactly as on /function/NAME (path and
// query passed on, 401 without credentials, the invocation metric
// counted, the exec timeout's 504); a taken route is a 409, a reserved one a 400, a longer one is
// not confused with a shorter; the routes are on /debug/reconcile; a
// deleted function's route answers 404, and a changed route moves.
func TestPathRoutes(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withInvokeAuth(true))
	img := fnImage(t, fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	d.deploy(routedSpec("rt-sum", img, "/sum"))
	d.deploy(routedSpec("rt-mul", img, "/mul"))
	d.waitReady("rt-sum", defaultNamespace, 1)
	d.waitReady("rt-mul", defaultNamespace, 1)

	// The table follows the store within moments of the write.
	eventually(t, 30*time.Second, pollInterval, func() error {
		_, err := d.routeEcho(http.MethodGet, "/sum", "", "rt-sum")
		return err
	})
	for _, c := range []struct {
		method, path, body  string
		fn, wantPath, query string
	}{
		{http.MethodGet, "/sum", "", "rt-sum", "/", ""},
		{http.MethodGet, "/sum/", "", "rt-sum", "/", ""},
		{http.MethodGet, "/sum/x?y=1", "", "rt-sum", "/x", "y=1"},
		{http.MethodPost, "/sum/x?y=1", "3 4", "rt-sum", "/x", "y=1"},
		{http.MethodPost, "/sum/a/b/c?p=q&r", "", "rt-sum", "/a/b/c", "p=q&r"},
		{http.MethodGet, "/mul/6/7", "", "rt-mul", "/6/7", ""},
	} {
		rep, err := d.routeEcho(c.method, c.path, c.body, c.fn)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Method != c.method || rep.Path != c.wantPath || rep.Query != c.query || rep.Body != c.body {
			t.Errorf("%s %s: fn-echo got %s %q query %q body %q, want %s %q query %q body %q",
				c.method, c.path, rep.Method, rep.Path, rep.Query, rep.Body, c.method, c.wantPath, c.query, c.body)
		}
	}

	// The same auth as /function/NAME.
	for _, p := range []string{"/sum", "/sum/x?y=1", "/mul"} {
		res, err := d.request(http.MethodGet, p, nil, nil, authNone)
		if err != nil || res.Status != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %v %v, want 401", p, res, err)
		}
	}

	// The same metrics: the calls count for the function.
	metric := `gateway_function_invocation_total{code="200",function_name="rt-sum.openfaas-fn"}`
	before := metricValue(t, d, metric)
	const calls = 5
	for i := range calls {
		if _, err := d.routeEcho(http.MethodGet, "/sum/m?i="+strconv.Itoa(i), "", "rt-sum"); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, d, metric); got != before+calls {
		t.Errorf("%s = %v after %d calls through /sum, want %v", metric, got, calls, before+calls)
	}

	// The same timeouts: the function's exec_timeout ends a call through
	// its route with a 504, as on /function/NAME.
	slow := routedSpec("rt-slow", img, "/slow")
	slow.EnvVars = map[string]string{"exec_timeout": "1s"}
	d.deploy(slow)
	d.waitReady("rt-slow", defaultNamespace, 1)
	eventually(t, 30*time.Second, pollInterval, func() error {
		res, err := d.request(http.MethodGet, "/slow/sleep?d=10s", nil, nil, authBasic)
		if err != nil || res.Status != http.StatusGatewayTimeout {
			return fmt.Errorf("GET /slow/sleep?d=10s with exec_timeout 1s: %v %v, want 504", res, err)
		}
		return nil
	})
	if err := d.client().DeleteFunction(ctx, "rt-slow", defaultNamespace); err != nil {
		t.Fatalf("delete rt-slow: %v", err)
	}

	// Collisions and reserved paths are refused at deploy, and nothing is stored.
	for _, c := range []struct {
		name, route string
		want        int
		msg         string
	}{
		{"rt-sum2", "/sum", http.StatusConflict, "is already the route of function rt-sum in namespace openfaas-fn"},
		{"rt-sys", "/system/x", http.StatusBadRequest, "/system is the gateway's own path prefix"},
		{"rt-fn", "/function", http.StatusBadRequest, "/function is the gateway's own path prefix"},
	} {
		code, err := d.client().Deploy(ctx, routedSpec(c.name, img, c.route))
		if code != c.want || err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("deploy %s with route %s: %d %v, want %d with %q", c.name, c.route, code, err, c.want, c.msg)
		}
		if _, code, _ := d.getFunction(c.name, defaultNamespace); code != http.StatusNotFound {
			t.Errorf("%s was refused but GET /system/function answers %d", c.name, code)
		}
	}

	// A longer route sharing the start is another route.
	d.deploy(routedSpec("rt-summ", img, "/summ"))
	d.waitReady("rt-summ", defaultNamespace, 1)
	eventually(t, 30*time.Second, pollInterval, func() error {
		_, err := d.routeEcho(http.MethodGet, "/summ/z", "", "rt-summ")
		return err
	})
	if _, err := d.routeEcho(http.MethodGet, "/sum/z", "", "rt-sum"); err != nil {
		t.Error(err)
	}
	if code, err := d.routeStatus("/summary"); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /summary: %d %v, want 404", code, err)
	}

	// Listed on /debug/reconcile.
	eventually(t, 30*time.Second, pollInterval, func() error {
		rs, err := d.debugRoutes()
		if err != nil {
			return err
		}
		want := []debugRoute{
			{Path: "/mul", Function: "rt-mul", Namespace: defaultNamespace},
			{Path: "/sum", Function: "rt-sum", Namespace: defaultNamespace},
			{Path: "/summ", Function: "rt-summ", Namespace: defaultNamespace},
		}
		if fmt.Sprint(rs) != fmt.Sprint(want) {
			return fmt.Errorf("/debug/reconcile routes %+v, want %+v", rs, want)
		}
		return nil
	})

	// Deleted: its route answers 404, the others still serve.
	if err := d.client().DeleteFunction(ctx, "rt-sum", defaultNamespace); err != nil {
		t.Fatalf("delete rt-sum: %v", err)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		for _, p := range []string{"/sum", "/sum/x"} {
			if code, err := d.routeStatus(p); err != nil || code != http.StatusNotFound {
				return fmt.Errorf("GET %s after the delete: %d %v, want 404", p, code, err)
			}
		}
		return nil
	})
	if _, err := d.routeEcho(http.MethodGet, "/summ", "", "rt-summ"); err != nil {
		t.Error(err)
	}

	// A changed route: the old path 404s, the new one serves.
	code, err := d.client().Update(ctx, routedSpec("rt-mul", img, "/times"))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("PUT rt-mul with route /times: %d %v, want 202", code, err)
	}
	eventually(t, 60*time.Second, pollInterval, func() error {
		if code, err := d.routeStatus("/mul"); err != nil || code != http.StatusNotFound {
			return fmt.Errorf("GET /mul after the route changed: %d %v, want 404", code, err)
		}
		rep, err := d.routeEcho(http.MethodGet, "/times/6/7?x=1", "", "rt-mul")
		if err != nil {
			return err
		}
		if rep.Path != "/6/7" || rep.Query != "x=1" {
			return fmt.Errorf("GET /times/6/7?x=1: fn-echo got %q query %q", rep.Path, rep.Query)
		}
		return nil
	})
	// The freed route can be taken by another function now.
	d.deploy(routedSpec("rt-sum2", img, "/sum"))
	d.waitReady("rt-sum2", defaultNamespace, 1)
	eventually(t, 30*time.Second, pollInterval, func() error {
		_, err := d.routeEcho(http.MethodGet, "/sum", "", "rt-sum2")
		return err
	})
}
