package ui_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/ui"
)

const (
	user = "admin"
	pass = "s3cr3t"
)

// counter is a fixed invocation count for every function.
type counter float64

func (c counter) Count(string) float64 { return float64(c) }

// console is the console mounted on the daemon's real router over an
// in-memory store; invocations reach echo, which answers with what it got.
type console struct {
	t     *testing.T
	h     http.Handler
	store *store.Memory
}

// newConsole mounts the console; opts set the router's optional parts
// (image loader, async queue) before it is built.
func newConsole(t *testing.T, opts ...func(*api.Config)) *console {
	t.Helper()
	log, _ := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	c, err := ui.New(ui.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Method", r.Method)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("got " + r.URL.Path + " " + r.Header.Get("X-Test") + " " + string(b) + " auth=" + r.Header.Get("Authorization")))
	})
	st := store.NewMemory()
	cfg := api.Config{
		Store: st, Status: status.NewBoard(), Invocations: counter(7), Invoke: echo, JobMode: true,
		Auth: api.Auth{User: user, Password: pass}, Log: log, UI: c,
	}
	for _, o := range opts {
		o(&cfg)
	}
	router := api.NewRouter(cfg)
	c.Bind(router)
	return &console{t: t, h: router, store: st}
}

// do sends one request as the logged-in user.
func (c *console) do(method, target string, body io.Reader, contentType string) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest(method, target, body)
	r.SetBasicAuth(user, pass)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

var tokenRE = regexp.MustCompile(`action="([^"]+)"[^>]*>\s*(?:<fieldset><legend>[^<]*</legend>\s*)?<input type="hidden" name="csrf" value="([0-9a-f]+)"`)

// token reads the CSRF token of the form posting to action on page.
func (c *console) token(page, action string) string {
	c.t.Helper()
	w := c.do(http.MethodGet, page, nil, "")
	for _, m := range tokenRE.FindAllStringSubmatch(w.Body.String(), -1) {
		if m[1] == action {
			return m[2]
		}
	}
	c.t.Fatalf("no form posting to %s on %s (HTTP %d):\n%s", action, page, w.Code, w.Body)
	return ""
}

// post sends a form to action with the token read from page.
func (c *console) post(page, action string, form url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	form.Set("csrf", c.token(page, action))
	return c.do(http.MethodPost, action, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
}

func (c *console) deploy(name, image string, extra url.Values) *httptest.ResponseRecorder {
	c.t.Helper()
	form := url.Values{"name": {name}, "image": {image}, "namespace": {"openfaas-fn"}}
	for k, v := range extra {
		form[k] = v
	}
	return c.post("/ui/deploy", "/ui/deploy", form)
}

func TestAuthRequired(t *testing.T) {
	c := newConsole(t)
	for _, path := range []string{"/ui", "/ui/", "/ui/deploy", "/ui/static/console.js"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", path, w.Code)
		}
	}
	if w := c.do(http.MethodGet, "/ui", nil, ""); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want 301 to /ui/", w.Code, w.Header().Get("Location"))
	}
}

func TestDeployListAndFunctionPage(t *testing.T) {
	c := newConsole(t)
	w := c.deploy("hello", "example/hello:1", url.Values{
		"env":         {"GREETING=hi\n\nSECRET_ISH=do-not-show"},
		"labels":      {"team=blue"},
		"annotations": {"io.dockerfaas.mode=job"},
	})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("deploy: %d, want 303:\n%s", w.Code, w.Body)
	}
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/ui/function?") || !strings.Contains(loc, "name=hello") {
		t.Fatalf("deploy redirected to %q, want the function page", loc)
	}
	page := c.do(http.MethodGet, loc, nil, "")
	body := page.Body.String()
	for _, want := range []string{"Deployed hello", "example/hello:1", "GREETING", "team=blue", ">job<", `id="invoke-form"`, `id="fn-invocations">7<`} {
		if !strings.Contains(body, want) {
			t.Errorf("function page lacks %q", want)
		}
	}
	if strings.Contains(body, "do-not-show") {
		t.Error("function page shows an environment value")
	}

	list := c.do(http.MethodGet, "/ui/?namespace=openfaas-fn", nil, "").Body.String()
	for _, want := range []string{`data-fn="hello"`, "example/hello:1", `class="mode">job<`, `class="invocations num">7<`, "/ui/function?name=hello&amp;namespace=openfaas-fn"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
}

func TestAPIErrorsShown(t *testing.T) {
	c := newConsole(t)
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"no image", url.Values{"name": {"x"}, "image": {""}}, http.StatusBadRequest, "image"},
		{"bad name", url.Values{"name": {"Not_Valid"}, "image": {"a:1"}}, http.StatusBadRequest, "Not_Valid"},
		{"bad env line", url.Values{"name": {"x"}, "image": {"a:1"}, "env": {"novalue"}}, http.StatusBadRequest, "environment, line 1: want KEY=VALUE"},
		{"missing secret", url.Values{"name": {"x"}, "image": {"a:1"}, "secrets": {"nope"}}, http.StatusBadRequest, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("namespace", "openfaas-fn")
			w := c.post("/ui/deploy", "/ui/deploy", tt.form)
			if w.Code != tt.status {
				t.Fatalf("%d, want %d:\n%s", w.Code, tt.status, w.Body)
			}
			if !regexp.MustCompile(`(?s)class="error"[^>]*>[^<]*` + regexp.QuoteMeta(tt.want)).MatchString(w.Body.String()) {
				t.Errorf("page does not show an error mentioning %q:\n%s", tt.want, w.Body)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	c := newConsole(t)
	good := c.token("/ui/deploy", "/ui/deploy")
	other := c.token("/ui/namespaces", "/ui/namespaces")
	form := func(tok string) io.Reader {
		return strings.NewReader(url.Values{"csrf": {tok}, "name": {"x"}, "image": {"a:1"}}.Encode())
	}
	tests := []struct {
		name   string
		token  string
		origin string
		want   int
	}{
		{"no token", "", "", http.StatusForbidden},
		{"token of another form", other, "", http.StatusForbidden},
		{"forged token", strings.Repeat("0", 64), "", http.StatusForbidden},
		{"cross-origin", good, "http://evil.example", http.StatusForbidden},
		{"good", good, "http://example.com", http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/ui/deploy", form(tt.token))
			r.SetBasicAuth(user, pass)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			c.h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("%d, want %d:\n%s", w.Code, tt.want, w.Body)
			}
		})
	}
}

func TestInvokeScaleDelete(t *testing.T) {
	c := newConsole(t)
	if w := c.deploy("fn", "a:1", nil); w.Code != http.StatusSeeOther {
		t.Fatalf("deploy: %d\n%s", w.Code, w.Body)
	}
	page := "/ui/function?name=fn&namespace=openfaas-fn"
	base := url.Values{"name": {"fn"}, "namespace": {"openfaas-fn"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}

	w := c.post(page, "/ui/function/invoke", with("method", "PUT", "path", "/a/b?c=d", "headers", "X-Test: yes", "body", "ping"))
	body := w.Body.String()
	for _, want := range []string{`id="invoke-status" class="ok">201 Created`, "X-Echo-Method: PUT", "got /function/fn.openfaas-fn/a/b yes ping", `id="invoke-time"`} {
		if !strings.Contains(body, want) {
			t.Errorf("invoke result lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(body, "auth=Basic [redacted]") || strings.Contains(body, pass) {
		t.Errorf("the function's echo of the user's credentials is not redacted:\n%s", body)
	}
	if w := c.post(page, "/ui/function/invoke", with("headers", "not a header")); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "want Name: value") {
		t.Errorf("bad header line: %d, want 400 with a message", w.Code)
	}

	if w := c.post(page, "/ui/function/scale", with("replicas", "3")); w.Code != http.StatusSeeOther {
		t.Fatalf("scale: %d\n%s", w.Code, w.Body)
	}
	if got := c.do(http.MethodGet, page, nil, "").Body.String(); !strings.Contains(got, `id="fn-replicas">0 / 3<`) {
		t.Errorf("after scaling to 3 the page does not show 3 desired:\n%s", got)
	}
	if w := c.post(page, "/ui/function/scale", with("replicas", "-1")); w.Code != http.StatusBadRequest {
		t.Errorf("scale to -1: %d, want 400", w.Code)
	}

	confirm := "/ui/function/delete?name=fn&namespace=openfaas-fn"
	if w := c.post(confirm, "/ui/function/delete", with("confirm", "wrong")); w.Code != http.StatusBadRequest {
		t.Errorf("delete with a wrong confirmation: %d, want 400", w.Code)
	}
	if w := c.post(confirm, "/ui/function/delete", with("confirm", "fn")); w.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", w.Code, w.Body)
	}
	if w := c.do(http.MethodGet, page, nil, ""); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "not found") {
		t.Errorf("function page after delete: %d, want 404 with the API's message", w.Code)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	c := newConsole(t)
	w := c.post("/ui/secrets", "/ui/secrets", url.Values{"name": {"api-key"}, "value": {"hunter2-value"}, "namespace": {"openfaas-fn"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", w.Code, w.Body)
	}
	page := c.do(http.MethodGet, "/ui/secrets?namespace=openfaas-fn", nil, "").Body.String()
	if !strings.Contains(page, `data-secret="api-key"`) {
		t.Errorf("secrets page does not list api-key")
	}
	// A failed create re-shows the form without the value.
	w = c.post("/ui/secrets", "/ui/secrets", url.Values{"name": {"api-key"}, "value": {"hunter2-value"}, "namespace": {"openfaas-fn"}})
	if w.Code < 400 {
		t.Errorf("duplicate secret: %d, want an error", w.Code)
	}
	for _, p := range []string{page, w.Body.String(), c.do(http.MethodGet, "/ui/deploy", nil, "").Body.String()} {
		if strings.Contains(p, "hunter2") {
			t.Fatal("a page shows a secret's value")
		}
	}
	if w := c.post("/ui/secrets?namespace=openfaas-fn", "/ui/secrets/delete", url.Values{"name": {"api-key"}, "namespace": {"openfaas-fn"}}); w.Code != http.StatusSeeOther {
		t.Errorf("delete: %d\n%s", w.Code, w.Body)
	}
}

func TestNamespaces(t *testing.T) {
	c := newConsole(t)
	if w := c.post("/ui/namespaces", "/ui/namespaces", url.Values{"name": {"dev"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", w.Code, w.Body)
	}
	if p := c.do(http.MethodGet, "/ui/namespaces", nil, "").Body.String(); !strings.Contains(p, `data-namespace="dev"`) {
		t.Errorf("namespaces page lacks dev")
	}
	if w := c.post("/ui/namespaces", "/ui/namespaces", url.Values{"name": {"Bad Name"}}); w.Code != http.StatusBadRequest {
		t.Errorf("invalid name: %d, want 400", w.Code)
	}
	if w := c.post("/ui/namespaces", "/ui/namespaces/delete", url.Values{"name": {"dev"}}); w.Code != http.StatusSeeOther {
		t.Errorf("delete: %d\n%s", w.Code, w.Body)
	}
}

func TestUploadWithoutImageSupport(t *testing.T) {
	c := newConsole(t)
	tok := c.token("/ui/deploy", "/ui/upload")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", tok)
	_ = mw.WriteField("name", "up")
	fw, _ := mw.CreateFormFile("archive", "image.tar")
	_, _ = fw.Write([]byte("not an archive"))
	_ = mw.Close()
	w := c.do(http.MethodPost, "/ui/upload", &buf, mw.FormDataContentType())
	// This router has no image loader: the API's 501 is what the page says.
	if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), `class="error"`) {
		t.Errorf("upload: %d, want 501 with the API's message:\n%s", w.Code, w.Body)
	}

	buf.Reset()
	mw = multipart.NewWriter(&buf)
	fw, _ = mw.CreateFormFile("archive", "image.tar")
	_, _ = fw.Write([]byte("x"))
	_ = mw.Close()
	if w := c.do(http.MethodPost, "/ui/upload", &buf, mw.FormDataContentType()); w.Code != http.StatusForbidden {
		t.Errorf("upload without a token: %d, want 403", w.Code)
	}
}

func TestPagesRender(t *testing.T) {
	c := newConsole(t)
	for _, p := range []struct {
		path string
		want int
	}{
		{"/ui/", 200}, {"/ui/deploy", 200}, {"/ui/secrets", 200}, {"/ui/namespaces", 200},
		{"/ui/executions", 200}, {"/ui/executions?function=x", 200}, {"/ui/static/console.js", 200},
		{"/ui/nope", 404}, {"/ui/function?name=ghost", 404},
	} {
		w := c.do(http.MethodGet, p.path, nil, "")
		if w.Code != p.want {
			t.Errorf("GET %s: %d, want %d:\n%s", p.path, w.Code, p.want, w.Body)
		}
	}
	if w := c.do(http.MethodPost, "/ui/executions", nil, ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/executions: %d, want 405", w.Code)
	}
}
