package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// createNamespace creates a namespace the way faas-cli does [cap 43] and
// requires a 201.
func (f *fixture) createNamespace(t *testing.T, name string) {
	t.Helper()
	body := `{"name":"` + name + `","annotations":{"openfaas":"1"},"labels":{"openfaas":"1"}}`
	if w := f.do(t, http.MethodPost, "/system/namespace/", body); w.Code != http.StatusCreated {
		t.Fatalf("create namespace %s: got %d %q, want 201", name, w.Code, w.Body.String())
	}
}

// nsSnapshot is every namespace and function as JSON, to prove a request
// changed nothing.
func (f *fixture) nsSnapshot(t *testing.T) string {
	t.Helper()
	list, err := f.store.ListNamespaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v %s", list, f.snapshot(t))
}

// nsBody is a namespace mutation body as the go-sdk sends it [cap 43–45].
func nsBody(name string) string {
	return `{"name":"` + name + `","labels":{"openfaas":"1"}}`
}

// devHello is helloBody deployed into namespace dev.
var devHello = strings.Replace(helloBody, `"service":"hello",`, `"service":"hello","namespace":"dev",`, 1)

// TestNamespaceRoutes covers every namespace route with the codes of
// CONTRACT.md §10 and §1.10, and checks that a refused request changes
// nothing.
func TestNamespaceRoutes(t *testing.T) {
	tests := []struct {
		name   string
		dev    bool // create namespace dev first
		devFn  bool // and deploy hello into it
		method string
		target string
		body   string
		want   int
		msg    string // substring of the error message
	}{
		{"list", false, false, "GET", "/system/namespaces", "", 200, ""},
		{"list head", false, false, "HEAD", "/system/namespaces", "", 200, ""},
		{"get default", false, false, "GET", "/system/namespace/openfaas-fn", "", 200, ""},
		{"get", true, false, "GET", "/system/namespace/dev", "", 200, ""},
		{"get missing", false, false, "GET", "/system/namespace/dev", "", 404, "namespace dev not found"},
		{"get invalid name", false, false, "GET", "/system/namespace/Dev", "", 404, "not found"},

		{"create", false, false, "POST", "/system/namespace/", `{"name":"staging","annotations":{"a":"b","openfaas":"1"},"labels":{"openfaas":"1","team":"x"}}`, 201, ""},
		{"create label true", false, false, "POST", "/system/namespace/", `{"name":"dev","labels":{"openfaas":"true"}}`, 201, ""},
		{"create exists", true, false, "POST", "/system/namespace/", nsBody("dev"), 409, "namespace dev already exists"},
		{"create default", false, false, "POST", "/system/namespace/", nsBody("openfaas-fn"), 409, "namespace openfaas-fn already exists"},
		{"create no label", false, false, "POST", "/system/namespace/", `{"name":"dev"}`, 400, `label openfaas: "1"`},
		{"create wrong label", false, false, "POST", "/system/namespace/", `{"name":"dev","labels":{"openfaas":"0"}}`, 400, `label openfaas: "1"`},
		{"create label as annotation only", false, false, "POST", "/system/namespace/", `{"name":"dev","annotations":{"openfaas":"1"}}`, 400, `label openfaas: "1"`},
		{"create no name", false, false, "POST", "/system/namespace/", `{"labels":{"openfaas":"1"}}`, 400, "name is required"},
		{"create invalid name", false, false, "POST", "/system/namespace/", nsBody("Dev_1"), 400, "not a valid name"},
		{"create name too long", false, false, "POST", "/system/namespace/", nsBody(strings.Repeat("a", 64)), 400, "not a valid name"},
		{"create name with dot", false, false, "POST", "/system/namespace/", nsBody("a.b"), 400, "not a valid name"},
		{"create empty label key", false, false, "POST", "/system/namespace/", `{"name":"dev","labels":{"openfaas":"1","":"x"}}`, 400, "keys must not be empty"},
		{"create bad json", false, false, "POST", "/system/namespace/", `{"name":`, 400, "invalid JSON"},
		{"create no body", false, false, "POST", "/system/namespace/", "", 400, "empty"},
		{"create without slash", false, false, "POST", "/system/namespace", nsBody("dev"), 404, ""},
		{"create on name path", false, false, "POST", "/system/namespace/dev", nsBody("dev"), 405, ""},

		{"update", true, false, "PUT", "/system/namespace/dev", `{"name":"dev","labels":{"openfaas":"1","team":"y"}}`, 202, ""},
		{"update default", false, false, "PUT", "/system/namespace/openfaas-fn", nsBody("openfaas-fn"), 202, ""},
		{"update missing", false, false, "PUT", "/system/namespace/dev", nsBody("dev"), 404, "namespace dev not found"},
		{"update invalid name", false, false, "PUT", "/system/namespace/Dev", nsBody("Dev"), 404, "not found"},
		{"update name mismatch", true, false, "PUT", "/system/namespace/dev", nsBody("prod"), 400, "does not match"},
		{"update no name in body", true, false, "PUT", "/system/namespace/dev", `{"labels":{"openfaas":"1"}}`, 400, "does not match"},
		{"update no label", true, false, "PUT", "/system/namespace/dev", `{"name":"dev","labels":{"team":"y"}}`, 400, `label openfaas: "1"`},
		{"update no body", true, false, "PUT", "/system/namespace/dev", "", 400, "empty"},

		{"delete", true, false, "DELETE", "/system/namespace/dev", nsBody("dev"), 202, ""},
		{"delete missing", false, false, "DELETE", "/system/namespace/dev", nsBody("dev"), 404, "namespace dev not found"},
		{"delete invalid name", false, false, "DELETE", "/system/namespace/Dev", nsBody("Dev"), 404, "not found"},
		{"delete not empty", true, true, "DELETE", "/system/namespace/dev", nsBody("dev"), 409, "namespace dev is not empty: delete its functions and secrets first"},
		{"delete default", false, false, "DELETE", "/system/namespace/openfaas-fn", nsBody("openfaas-fn"), 400, "cannot be deleted"},
		{"delete name mismatch", true, false, "DELETE", "/system/namespace/dev", nsBody("prod"), 400, "does not match"},
		{"delete no label", true, false, "DELETE", "/system/namespace/dev", `{"name":"dev"}`, 400, `label openfaas: "1"`},
		{"delete no body", true, false, "DELETE", "/system/namespace/dev", "", 400, "empty"},
		{"patch", true, false, "PATCH", "/system/namespace/dev", nsBody("dev"), 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, helloBody)
			if tt.dev {
				f.createNamespace(t, "dev")
			}
			if tt.devFn {
				f.createSecret(t, "dev", "api-key") // devHello lists it
				f.deploy(t, devHello)
			}
			before := f.nsSnapshot(t)
			w := f.do(t, tt.method, tt.target, tt.body)
			if w.Code != tt.want {
				t.Fatalf("%s %s: got %d %q, want %d", tt.method, tt.target, w.Code, w.Body.String(), tt.want)
			}
			if w.Code < 400 {
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("error Content-Type = %q", ct)
			}
			if !strings.Contains(w.Body.String(), tt.msg) || !strings.HasSuffix(w.Body.String(), "\n") {
				t.Errorf("body %q: want a line containing %q", w.Body.String(), tt.msg)
			}
			if after := f.nsSnapshot(t); after != before {
				t.Errorf("a refused request changed the store:\n before %s\n after  %s", before, after)
			}
		})
	}
}

// TestNamespaceAuth: every namespace route is behind basic auth.
func TestNamespaceAuth(t *testing.T) {
	f := newFixture(t, nil)
	f.createNamespace(t, "dev")
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/system/namespaces", ""},
		{"GET", "/system/namespace/dev", ""},
		{"POST", "/system/namespace/", nsBody("qa")},
		{"PUT", "/system/namespace/dev", nsBody("dev")},
		{"DELETE", "/system/namespace/dev", nsBody("dev")},
	} {
		before := f.nsSnapshot(t)
		w := f.send(t, r.method, r.target, r.body, func(req *http.Request) { req.SetBasicAuth(testUser, "wrong") })
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong password: got %d, want 401", r.method, r.target, w.Code)
		}
		if after := f.nsSnapshot(t); after != before {
			t.Errorf("%s %s without auth changed the store", r.method, r.target)
		}
	}
}

// TestNamespaceLifecycle follows faas-cli's namespace commands [cap 40–45]
// and checks what each one reads back.
func TestNamespaceLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	list := func() []string {
		t.Helper()
		var names []string
		decodeJSON(t, f.do(t, "GET", "/system/namespaces", ""), &names)
		return names
	}
	get := func(name string) types.FunctionNamespace {
		t.Helper()
		w := f.do(t, "GET", "/system/namespace/"+name, "")
		if w.Code != 200 {
			t.Fatalf("get %s: %d %q", name, w.Code, w.Body.String())
		}
		var ns types.FunctionNamespace
		decodeJSON(t, w, &ns)
		return ns
	}
	if got := list(); fmt.Sprint(got) != "[openfaas-fn]" {
		t.Fatalf("namespaces of a new daemon = %v, want exactly [openfaas-fn] (the certifier checks)", got)
	}
	if ns := get("openfaas-fn"); ns.Name != "openfaas-fn" {
		t.Errorf("get openfaas-fn = %+v", ns)
	}

	create := `{"name":"staging","annotations":{"a":"b","openfaas":"1"},"labels":{"openfaas":"1","team":"x"}}`
	if w := f.do(t, "POST", "/system/namespace/", create); w.Code != 201 {
		t.Fatalf("create: %d %q", w.Code, w.Body.String())
	}
	f.createNamespace(t, "dev")
	if got := list(); fmt.Sprint(got) != "[openfaas-fn dev staging]" {
		t.Errorf("namespaces = %v, want [openfaas-fn dev staging]", got)
	}
	ns := get("staging")
	if ns.Name != "staging" || ns.Labels["team"] != "x" || ns.Labels["openfaas"] != "1" || ns.Annotations["a"] != "b" || len(ns.Labels) != 2 || len(ns.Annotations) != 2 {
		t.Errorf("get staging = %+v, want the labels and annotations as created", ns)
	}
	var entry *logrus.Entry
	for _, e := range f.infoEntries() {
		if e.Message == "namespace created" && e.Data["namespace"] == "staging" {
			entry = e
		}
	}
	if entry == nil {
		t.Errorf("no info line for the created namespace; got %v", f.infoEntries())
	}

	// Update replaces labels and annotations: what is not sent is gone.
	if w := f.do(t, "PUT", "/system/namespace/staging", `{"name":"staging","annotations":{"openfaas":"1"},"labels":{"openfaas":"1","team":"y"}}`); w.Code != 202 {
		t.Fatalf("update: %d %q", w.Code, w.Body.String())
	}
	ns = get("staging")
	if ns.Labels["team"] != "y" || ns.Annotations["a"] != "" {
		t.Errorf("staging after update = %+v, want team=y and annotation a gone", ns)
	}

	if w := f.do(t, "DELETE", "/system/namespace/staging", `{"name":"staging","labels":{"openfaas":"1"}}`); w.Code != 202 {
		t.Fatalf("delete: %d %q", w.Code, w.Body.String())
	}
	if w := f.do(t, "GET", "/system/namespace/staging", ""); w.Code != 404 {
		t.Errorf("get after delete: %d, want 404", w.Code)
	}
	if got := list(); fmt.Sprint(got) != "[openfaas-fn dev]" {
		t.Errorf("namespaces after delete = %v", got)
	}
}

// TestFunctionsInNamespace: once dev exists, every function route works in
// it, independently of a function of the same name in openfaas-fn; a
// namespace never created stays a 400 everywhere.
func TestFunctionsInNamespace(t *testing.T) {
	f := newFixture(t, nil)
	f.createNamespace(t, "dev")
	f.deploy(t, helloBody)
	f.createSecret(t, "dev", "api-key") // devHello lists it
	f.deploy(t, devHello)
	if w := f.do(t, "POST", "/system/functions", devHello); w.Code != 409 {
		t.Errorf("second deploy into dev: %d, want 409", w.Code)
	}
	def, dv := f.get(t, store.Key("openfaas-fn", "hello")), f.get(t, store.Key("dev", "hello"))
	if def.Namespace != "openfaas-fn" || dv.Namespace != "dev" {
		t.Fatalf("namespaces %s and %s", def.Namespace, dv.Namespace)
	}

	var list []types.FunctionStatus
	decodeJSON(t, f.do(t, "GET", "/system/functions?namespace=dev", ""), &list)
	if len(list) != 1 || list[0].Name != "hello" || list[0].Namespace != "dev" {
		t.Errorf("list dev = %+v", list)
	}
	var one types.FunctionStatus
	decodeJSON(t, f.do(t, "GET", "/system/function/hello?namespace=dev", ""), &one)
	if one.Namespace != "dev" {
		t.Errorf("get hello in dev: namespace %q", one.Namespace)
	}

	steps := []struct{ method, target, body string }{
		{"PUT", "/system/functions", strings.Replace(devHello, `"MY_VAR":"my-value"`, `"MY_VAR":"changed"`, 1)},
		{"POST", "/system/scale-function/hello", `{"serviceName":"hello","replicas":3,"namespace":"dev"}`},
		{"POST", "/system/scale-function/hello?namespace=dev", `{"replicas":4}`},
	}
	for _, s := range steps {
		if w := f.do(t, s.method, s.target, s.body); w.Code != 202 {
			t.Fatalf("%s %s: %d %q", s.method, s.target, w.Code, w.Body.String())
		}
	}
	if got := f.get(t, store.Key("dev", "hello")); got.Replicas != 4 || got.Spec.EnvVars["MY_VAR"] != "changed" {
		t.Errorf("dev/hello = replicas %d env %v", got.Replicas, got.Spec.EnvVars)
	}
	if got := f.get(t, store.Key("openfaas-fn", "hello")); got.Generation != def.Generation || got.Replicas != def.Replicas {
		t.Errorf("openfaas-fn/hello changed with dev/hello: %+v", got)
	}

	if w := f.do(t, "DELETE", "/system/functions", `{"functionName":"hello","namespace":"dev"}`); w.Code != 202 {
		t.Fatalf("delete in dev: %d %q", w.Code, w.Body.String())
	}
	f.get(t, store.Key("openfaas-fn", "hello"))
	if w := f.do(t, "DELETE", "/system/secrets", `{"name":"api-key","namespace":"dev"}`); w.Code != 202 {
		t.Fatalf("delete secret in dev: %d %q", w.Code, w.Body.String())
	}
	if w := f.do(t, "DELETE", "/system/namespace/dev", nsBody("dev")); w.Code != 202 {
		t.Fatalf("delete emptied dev: %d %q", w.Code, w.Body.String())
	}

	// dev is gone again: every function route refuses it, and so does a
	// namespace never created.
	for _, ns := range []string{"dev", "qa"} {
		before := f.nsSnapshot(t)
		for _, r := range []struct{ method, target, body string }{
			{"GET", "/system/functions?namespace=" + ns, ""},
			{"GET", "/system/function/hello?namespace=" + ns, ""},
			{"POST", "/system/functions", strings.Replace(devHello, `"dev"`, `"`+ns+`"`, 1)},
			{"PUT", "/system/functions", strings.Replace(devHello, `"dev"`, `"`+ns+`"`, 1)},
			{"DELETE", "/system/functions", `{"functionName":"hello","namespace":"` + ns + `"}`},
			{"POST", "/system/scale-function/hello", `{"replicas":1,"namespace":"` + ns + `"}`},
		} {
			w := f.do(t, r.method, r.target, r.body)
			if want := "namespace " + ns + " is not valid\n"; w.Code != 400 || w.Body.String() != want {
				t.Errorf("%s %s in %s: got %d %q, want 400 %q", r.method, r.target, ns, w.Code, w.Body.String(), want)
			}
		}
		if after := f.nsSnapshot(t); after != before {
			t.Errorf("requests into %s changed the store", ns)
		}
	}
}

// TestNamespaceVanishesBeforeWrite: when the namespace is deleted between
// the handler's check and the store write, the store's refusal is a 400
// like the check's, not a 404 (which would make faas-cli retry with POST)
// or a 500.
func TestNamespaceVanishesBeforeWrite(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	w := httptest.NewRecorder()
	err := fmt.Errorf("namespace %q: %w", "dev", store.ErrNamespaceNotFound)
	writeStoreError(w, log, err, "hello", "dev")
	if w.Code != 400 || w.Body.String() != "namespace dev is not valid\n" {
		t.Errorf("got %d %q, want 400 namespace dev is not valid", w.Code, w.Body.String())
	}
}

// GetNamespace and the other namespace methods of brokenStore fail like
// its function methods (errors_test.go).
func (brokenStore) GetNamespace(context.Context, string) (types.FunctionNamespace, error) {
	return types.FunctionNamespace{}, errDisk
}
func (brokenStore) ListNamespaces(context.Context) ([]types.FunctionNamespace, error) {
	return nil, errDisk
}
func (brokenStore) CreateNamespace(context.Context, types.FunctionNamespace) (types.FunctionNamespace, error) {
	return types.FunctionNamespace{}, errDisk
}
func (brokenStore) UpdateNamespace(context.Context, types.FunctionNamespace) (types.FunctionNamespace, error) {
	return types.FunctionNamespace{}, errDisk
}
func (brokenStore) DeleteNamespace(context.Context, string) error { return errDisk }

// TestNamespaceStoreFailure: a failing store is a 500 that leaks nothing,
// also when a function route has to look its namespace up.
func TestNamespaceStoreFailure(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Store = brokenStore{} })
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/system/namespaces", ""},
		{"GET", "/system/namespace/dev", ""},
		{"POST", "/system/namespace/", nsBody("dev")},
		{"PUT", "/system/namespace/dev", nsBody("dev")},
		{"DELETE", "/system/namespace/dev", nsBody("dev")},
		{"GET", "/system/functions?namespace=dev", ""},
		{"POST", "/system/functions", devHello},
		{"POST", "/system/scale-function/hello", `{"replicas":1,"namespace":"dev"}`},
	} {
		f.logs.Reset()
		w := f.do(t, r.method, r.target, r.body)
		if w.Code != 500 || w.Body.String() != "internal error\n" {
			t.Errorf("%s %s: got %d %q, want 500 internal error", r.method, r.target, w.Code, w.Body.String())
		}
		e := f.logs.LastEntry()
		if e == nil || e.Level != logrus.ErrorLevel || !errors.Is(e.Data[logrus.ErrorKey].(error), errDisk) {
			t.Errorf("%s %s: want the cause logged at error level, got %v", r.method, r.target, e)
		}
	}
}
