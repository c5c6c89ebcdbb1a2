package api

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// routeBody is a minimal deployment of name in ns with route (none when "").
func routeBody(name, ns, route string) string {
	b := `{"service":"` + name + `","image":"img:1"`
	if ns != "" {
		b += `,"namespace":"` + ns + `"`
	}
	if route != "" {
		b += `,"annotations":{"` + faas.AnnotationRoute + `":"` + route + `"}`
	}
	return b + `}`
}

// TestDeployRoutes: a route is validated (400), must be free (409, any
// namespace), and stays the function's own on its redeploys.
func TestDeployRoutes(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.store.CreateNamespace(context.Background(), types.FunctionNamespace{Name: "team"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name           string
		method, body   string
		want           int
		wantBodyHas    string
		wantStoreRoute string // "-": the function must not exist
	}{
		{"first", "POST", routeBody("sum", "", "/sum"), http.StatusAccepted, "", "/sum"},
		{"redeploy keeps it", "PUT", routeBody("sum", "", "/sum"), http.StatusAccepted, "", "/sum"},
		{"taken", "POST", routeBody("sum2", "", "/sum"), http.StatusConflict,
			"annotation io.dockerfaas.route: /sum is already the route of function sum in namespace openfaas-fn", "-"},
		{"taken from another namespace", "POST", routeBody("sum", "team", "/sum"), http.StatusConflict,
			"already the route of function sum in namespace openfaas-fn", "-"},
		{"reserved", "POST", routeBody("sys", "", "/system/x"), http.StatusBadRequest,
			"annotations: io.dockerfaas.route \"/system/x\": /system is the gateway's own path prefix", "-"},
		{"trailing slash", "POST", routeBody("sl", "", "/sl/"), http.StatusBadRequest, "must not end with /", "-"},
		{"longer name, same start", "POST", routeBody("summ", "", "/summ"), http.StatusAccepted, "", "/summ"},
		{"nested under another route", "POST", routeBody("deep", "team", "/sum/deep"), http.StatusAccepted, "", "/sum/deep"},
		{"update to a taken route", "PUT", routeBody("summ", "", "/sum"), http.StatusConflict, "already the route of function sum", "/summ"},
		{"update to a free route", "PUT", routeBody("summ", "", "/add"), http.StatusAccepted, "", "/add"},
		{"route dropped", "PUT", routeBody("sum", "", ""), http.StatusAccepted, "", ""},
		{"freed route taken", "POST", routeBody("sum", "team", "/sum"), http.StatusAccepted, "", "/sum"},
	}
	for _, s := range steps {
		w := f.do(t, s.method, "/system/functions", s.body)
		if w.Code != s.want || !strings.Contains(w.Body.String(), s.wantBodyHas) {
			t.Fatalf("%s: %s %s = %d %q, want %d containing %q", s.name, s.method, s.body, w.Code, w.Body.String(), s.want, s.wantBodyHas)
		}
		var spec types.FunctionDeployment
		if err := json.Unmarshal([]byte(s.body), &spec); err != nil {
			t.Fatal(err)
		}
		ns := spec.Namespace
		if ns == "" {
			ns = faas.DefaultNamespace
		}
		rec, err := f.store.Get(context.Background(), faas.Key(ns, spec.Service))
		switch {
		case s.wantStoreRoute == "-":
			if err == nil {
				t.Fatalf("%s: %s/%s was stored", s.name, ns, spec.Service)
			}
		case err != nil:
			t.Fatalf("%s: %v", s.name, err)
		default:
			got := ""
			if rec.Spec.Annotations != nil {
				got = (*rec.Spec.Annotations)[faas.AnnotationRoute]
			}
			if got != s.wantStoreRoute {
				t.Fatalf("%s: stored route %q, want %q", s.name, got, s.wantStoreRoute)
			}
		}
	}
}

// fakeRoutes lists routes for the debug page.
type fakeRoutes []faas.Route

func (f fakeRoutes) Routes() []faas.Route { return f }

func TestDebugRoutes(t *testing.T) {
	rs := fakeRoutes{
		{Path: "/mul", Function: "mul", Namespace: "openfaas-fn"},
		{Path: "/sum", Function: "sum", Namespace: "openfaas-fn"},
		{Path: "/sum", Function: "late", Namespace: "team", Error: "route taken by openfaas-fn/sum, created first"},
	}
	f := newFixture(t, func(c *Config) {
		c.Debug = DebugHandler(debugFixture())
		c.Routes = rs
	})
	body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String()
	for _, want := range []string{
		`<h2>Path routes</h2>`, `<tr data-route="/mul"><td><code>/mul</code></td><td class="key"><code>mul.openfaas-fn</code></td><td>yes</td></tr>`,
		`<code>late.team</code></td><td><span class="err">route taken by openfaas-fn/sum, created first</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	var v struct {
		Routes []faas.Route `json:"routes"`
	}
	decodeJSON(t, f.do(t, http.MethodGet, "/debug/reconcile?format=json", ""), &v)
	if !reflect.DeepEqual(v.Routes, []faas.Route(rs)) {
		t.Errorf("JSON routes = %+v, want %+v", v.Routes, rs)
	}
	// No routes, no section.
	f = newFixture(t, func(c *Config) {
		c.Debug = DebugHandler(debugFixture())
		c.Routes = fakeRoutes{}
	})
	if body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String(); strings.Contains(body, "Path routes") {
		t.Error("an empty routes section is shown")
	}
}
