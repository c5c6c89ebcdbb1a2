// Package ui serves the web console at /ui/: server-rendered pages to list,
// deploy, invoke, scale and delete functions, and to manage secrets and
// namespaces, for a person with a browser rather than faas-cli.
//
// The console holds no state and reads nothing itself: every page and every
// form is one or more calls to the daemon's own HTTP handler, in process,
// with the browser's credentials. Validation, auth and error messages are
// therefore exactly the API's, and the console cannot do what the API would
// refuse. The only script is a small embedded file that follows logs.
package ui

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.js
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// callTimeout bounds one page's reads of the API; an invocation is bounded
// by the gateway's own timeouts instead.
const callTimeout = 10 * time.Second

// Config configures the console.
type Config struct {
	// Log receives server-side failures; nil means logrus' standard logger.
	Log logrus.FieldLogger
}

// Handler serves the console. Bind must give it the daemon's handler
// before it serves a request.
type Handler struct {
	api   atomic.Pointer[http.Handler]
	key   []byte
	log   logrus.FieldLogger
	pages map[string]*template.Template
}

var _ http.Handler = (*Handler)(nil)

// New returns the console with a fresh random CSRF key.
func New(cfg Config) (*Handler, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("console csrf key: %w", err)
	}
	h := &Handler{key: key, log: cfg.Log, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = logrus.StandardLogger()
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	return h, nil
}

// Bind gives the console the handler it calls: the daemon's outermost one,
// so that an invocation from the console is counted and routed like any
// other.
func (h *Handler) Bind(api http.Handler) { h.api.Store(&api) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	if r.Method == http.MethodPost {
		if !sameOrigin(r) {
			http.Error(w, "cross-origin form refused: post the console's forms from the console", http.StatusForbidden)
			return
		}
	}
	type route struct {
		get, post func(http.ResponseWriter, *http.Request)
	}
	routes := map[string]route{
		"/ui/":                  {get: h.functionsPage},
		"/ui/function":          {get: h.functionPage},
		"/ui/function/invoke":   {post: h.invoke},
		"/ui/function/scale":    {post: h.scale},
		"/ui/function/delete":   {get: h.confirmDelete, post: h.deleteFunction},
		"/ui/deploy":            {get: h.deployPage, post: h.deploy},
		"/ui/upload":            {post: h.upload},
		"/ui/secrets":           {get: h.secretsPage, post: h.createSecret},
		"/ui/secrets/delete":    {post: h.deleteSecret},
		"/ui/namespaces":        {get: h.namespacesPage, post: h.createNamespace},
		"/ui/namespaces/delete": {post: h.deleteNamespace},
		"/ui/executions":        {get: h.executionsPage},
		"/ui/static/console.js": {get: serveJS},
	}
	rt, ok := routes[r.URL.Path]
	if !ok {
		h.render(w, r, http.StatusNotFound, "error", "Not found", nil, "no console page "+r.URL.Path)
		return
	}
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && rt.get != nil:
		rt.get(w, r)
	case r.Method == http.MethodPost && rt.post != nil:
		// The upload checks its token itself: it streams the form.
		if r.URL.Path != "/ui/upload" && !h.validToken(r, r.PostFormValue(csrfField)) {
			h.render(w, r, http.StatusForbidden, "error", "Form expired", nil,
				"the form's security token is missing or stale (the daemon restarted?): reload the page and send it again")
			return
		}
		rt.post(w, r)
	default:
		var allow []string
		if rt.get != nil {
			allow = append(allow, http.MethodGet, http.MethodHead)
		}
		if rt.post != nil {
			allow = append(allow, http.MethodPost)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		http.Error(w, "method "+r.Method+" not allowed on "+r.URL.Path, http.StatusMethodNotAllowed)
	}
}

func serveJS(w http.ResponseWriter, _ *http.Request) {
	b, _ := staticFS.ReadFile("static/console.js")
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(b)
}

// page is what every template gets.
type page struct {
	Title string
	User  string
	Flash string // what the last action did
	Error string // why it failed, the API's message
	Data  any
	h     *Handler
}

// Token is the CSRF token of the page's user for the form posting to action.
func (p *page) Token(action string) string { return p.h.token(p.User, action) }

// render writes the page tmpl with code. errMsg, when set, is shown as an
// error; the flash comes from the query (?msg=) after a redirect.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, tmpl, title string, data any, errMsg string) {
	t, ok := h.pages[tmpl]
	if !ok {
		http.Error(w, "no template "+tmpl, http.StatusInternalServerError)
		return
	}
	p := &page{Title: title, User: user(r), Flash: r.URL.Query().Get("msg"), Error: errMsg, Data: data, h: h}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := t.ExecuteTemplate(w, "layout.html", p); err != nil {
		h.log.WithError(err).WithField("page", tmpl).Error("console: rendering a page")
	}
}

// redirect sends the browser to path after a successful form (POST,
// redirect, GET), with msg shown at the top of that page.
func redirect(w http.ResponseWriter, r *http.Request, path string, q url.Values, msg string) {
	if q == nil {
		q = url.Values{}
	}
	if msg != "" {
		q.Set("msg", msg)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// failStatus is the status a page takes for err: the API's 4xx as is,
// anything else a 502 (the console could not get an answer).
func failStatus(err error) int {
	if e, ok := err.(*apiError); ok {
		return e.Status
	}
	return http.StatusBadGateway
}

// namespaces lists the namespaces, sorted, for the selectors; on failure
// it falls back to the default one so the page still works.
func (h *Handler) namespaces(ctx context.Context, r *http.Request) []string {
	var ns []string
	if err := h.get(ctx, r, "/system/namespaces", &ns); err != nil || len(ns) == 0 {
		return []string{defaultNamespace}
	}
	sort.Strings(ns)
	return ns
}

// defaultNamespace is the gateway's (faas.DefaultNamespace).
const defaultNamespace = "openfaas-fn"

// nsParam is the namespace a request names, else the default one.
func nsParam(r *http.Request) string {
	if ns := strings.TrimSpace(r.FormValue("namespace")); ns != "" {
		return ns
	}
	return defaultNamespace
}

var funcs = template.FuncMap{
	"shortID": func(id string) string {
		if len(id) > 12 {
			return id[:12]
		}
		return id
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"seconds": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
	"join": strings.Join,
	"methods": func() []string {
		return []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions}
	},
}
