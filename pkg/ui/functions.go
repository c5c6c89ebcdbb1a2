package ui

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// Annotations that tell how a function runs (pkg/faas).
const (
	annotationMode      = "io.dockerfaas.mode"
	annotationIsolation = "io.dockerfaas.isolation"
)

// fnRow is one function as the pages show it.
type fnRow struct {
	types.FunctionStatus
	Mode   string
	Labels map[string]string
	Annots map[string]string
}

// Link is the function page's address.
func (f fnRow) Link() string {
	return "/ui/function?" + url.Values{"name": {f.Name}, "namespace": {f.Namespace}}.Encode()
}

// Invocations is the count as a whole number.
func (f fnRow) Invocations() string { return strconv.FormatFloat(f.InvocationCount, 'f', 0, 64) }

func newRow(s types.FunctionStatus) fnRow {
	row := fnRow{FunctionStatus: s, Mode: "replicas", Labels: map[string]string{}, Annots: map[string]string{}}
	if s.Labels != nil {
		row.Labels = *s.Labels
	}
	if s.Annotations != nil {
		row.Annots = *s.Annotations
	}
	switch {
	case row.Annots[annotationMode] == "job":
		row.Mode = "job"
	case row.Annots[annotationIsolation] == "per-request":
		row.Mode = "per-request isolation"
	}
	return row
}

type listData struct {
	Namespace  string
	Namespaces []string
	Functions  []fnRow
}

// functionsPage is GET /ui/: the functions of one namespace.
func (h *Handler) functionsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d := listData{Namespace: nsParam(r), Namespaces: h.namespaces(ctx, r)}
	var fns []types.FunctionStatus
	if err := h.get(ctx, r, "/system/functions?namespace="+url.QueryEscape(d.Namespace), &fns); err != nil {
		h.render(w, r, failStatus(err), "functions", "Functions", d, err.Error())
		return
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	for _, f := range fns {
		d.Functions = append(d.Functions, newRow(f))
	}
	h.render(w, r, http.StatusOK, "functions", "Functions", d, "")
}

// invokeResult is an invocation made from the function page.
type invokeResult struct {
	Method, Path string
	Status       int
	StatusText   string
	Headers      []string // "Name: value", sorted
	Body         string
	Truncated    bool
	Duration     time.Duration
}

type functionData struct {
	Fn       fnRow
	Env      []string // names only: values may be sensitive
	Status   *status.Function
	Invoke   *invokeResult
	Form     invokeForm
	LogsPath string
}

type invokeForm struct{ Method, Path, Headers, Body string }

// loadFunction reads what the function page shows.
func (h *Handler) loadFunction(ctx context.Context, r *http.Request, name, ns string) (*functionData, error) {
	var s types.FunctionStatus
	if err := h.get(ctx, r, "/system/function/"+url.PathEscape(name)+"?namespace="+url.QueryEscape(ns), &s); err != nil {
		return nil, err
	}
	d := &functionData{Fn: newRow(s), Form: invokeForm{Method: http.MethodPost, Path: "/"}}
	for k := range s.EnvVars {
		d.Env = append(d.Env, k)
	}
	sort.Strings(d.Env)
	d.LogsPath = "/system/logs?" + url.Values{"name": {s.Name}, "namespace": {s.Namespace}}.Encode()
	// Where the replicas run: the controller's view, as /debug/reconcile
	// shows it. Without the debug page the section is left out.
	var dbg struct {
		Functions []status.Function `json:"functions"`
	}
	if err := h.get(ctx, r, "/debug/reconcile?format=json", &dbg); err == nil {
		for i := range dbg.Functions {
			if dbg.Functions[i].Key == s.Namespace+"/"+s.Name {
				d.Status = &dbg.Functions[i]
			}
		}
	}
	return d, nil
}

// functionPage is GET /ui/function?name=N&namespace=NS.
func (h *Handler) functionPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	name, ns := r.FormValue("name"), nsParam(r)
	d, err := h.loadFunction(ctx, r, name, ns)
	if err != nil {
		h.render(w, r, failStatus(err), "error", "Function "+name, nil, err.Error())
		return
	}
	h.render(w, r, http.StatusOK, "function", "Function "+name, d, "")
}

// invoke is POST /ui/function/invoke: one call to /function/NAME.NS made
// by the console, whose answer is shown on the function page.
func (h *Handler) invoke(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PostFormValue("name"), nsParam(r)
	form := invokeForm{
		Method:  strings.ToUpper(strings.TrimSpace(r.PostFormValue("method"))),
		Path:    strings.TrimSpace(r.PostFormValue("path")),
		Headers: r.PostFormValue("headers"),
		Body:    r.PostFormValue("body"),
	}
	if form.Method == "" {
		form.Method = http.MethodPost
	}
	if form.Path == "" {
		form.Path = "/"
	}
	if !strings.HasPrefix(form.Path, "/") {
		form.Path = "/" + form.Path
	}
	hdr, herr := parseHeaders(form.Headers)
	var res *invokeResult
	var errMsg string
	code := http.StatusOK
	switch {
	case herr != nil:
		errMsg, code = herr.Error(), http.StatusBadRequest
	case !validMethod(form.Method):
		errMsg, code = "method "+form.Method+": want one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", http.StatusBadRequest
	default:
		path := "/function/" + url.PathEscape(name+"."+ns) + form.Path
		start := time.Now()
		out, err := h.call(r.Context(), r, form.Method, path, strings.NewReader(form.Body), hdr)
		if err != nil {
			errMsg, code = err.Error(), http.StatusBadGateway
			break
		}
		redact := credentialRedactor(r)
		res = &invokeResult{Method: form.Method, Path: path, Status: out.Status, StatusText: http.StatusText(out.Status),
			Body: redact.Replace(string(out.Body)), Truncated: out.Truncated, Duration: time.Since(start).Round(time.Microsecond)}
		for k, vs := range out.Header {
			for _, v := range vs {
				res.Headers = append(res.Headers, redact.Replace(k+": "+v))
			}
		}
		sort.Strings(res.Headers)
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d, err := h.loadFunction(ctx, r, name, ns)
	if err != nil {
		h.render(w, r, failStatus(err), "error", "Function "+name, nil, err.Error())
		return
	}
	d.Invoke, d.Form = res, form
	h.render(w, r, code, "function", "Function "+name, d, errMsg)
}

// credentialRedactor hides the console user's credentials in what a
// function answers: the gateway passes the Authorization header on to the
// function (as OpenFaaS does), and one that echoes its request would
// otherwise put the password on the page.
func credentialRedactor(r *http.Request) *strings.Replacer {
	var pairs []string
	if _, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && len(tok) >= 4 {
		pairs = append(pairs, tok, "[redacted]")
	}
	if _, p, ok := r.BasicAuth(); ok && len(p) >= 4 {
		pairs = append(pairs, p, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// parseHeaders reads "Name: value" lines.
func parseHeaders(s string) (http.Header, error) {
	h := http.Header{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(strings.TrimSpace(k), " \t") {
			return nil, fmt.Errorf("header line %d %q: want Name: value", n, line)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h, nil
}

// scale is POST /ui/function/scale.
func (h *Handler) scale(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PostFormValue("name"), nsParam(r)
	back := url.Values{"name": {name}, "namespace": {ns}}
	n, err := strconv.ParseUint(strings.TrimSpace(r.PostFormValue("replicas")), 10, 64)
	if err != nil {
		h.failOnFunction(w, r, name, ns, http.StatusBadRequest, "replicas: want a whole number, 0 or more")
		return
	}
	res, err := h.callJSON(r.Context(), r, http.MethodPost, "/system/scale-function/"+url.PathEscape(name),
		types.ScaleServiceRequest{ServiceName: name, Namespace: ns, Replicas: n})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.failOnFunction(w, r, name, ns, failStatus(err), err.Error())
		return
	}
	redirect(w, r, "/ui/function", back, fmt.Sprintf("Scaling %s to %d replicas (within its scale.min/max labels).", name, n))
}

// failOnFunction shows the function page with an error.
func (h *Handler) failOnFunction(w http.ResponseWriter, r *http.Request, name, ns string, code int, msg string) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d, err := h.loadFunction(ctx, r, name, ns)
	if err != nil {
		h.render(w, r, code, "error", "Function "+name, nil, msg)
		return
	}
	h.render(w, r, code, "function", "Function "+name, d, msg)
}

type deleteData struct{ Name, Namespace string }

// confirmDelete is GET /ui/function/delete: the confirmation step.
func (h *Handler) confirmDelete(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "delete", "Delete "+r.FormValue("name"),
		deleteData{Name: r.FormValue("name"), Namespace: nsParam(r)}, "")
}

// deleteFunction is POST /ui/function/delete, sent by the confirmation
// page; the name must be typed again there.
func (h *Handler) deleteFunction(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PostFormValue("name"), nsParam(r)
	if r.PostFormValue("confirm") != name {
		h.render(w, r, http.StatusBadRequest, "delete", "Delete "+name, deleteData{Name: name, Namespace: ns},
			"type the function's name to confirm the deletion")
		return
	}
	res, err := h.callJSON(r.Context(), r, http.MethodDelete, "/system/functions",
		types.DeleteFunctionRequest{FunctionName: name, Namespace: ns})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.render(w, r, failStatus(err), "delete", "Delete "+name, deleteData{Name: name, Namespace: ns}, err.Error())
		return
	}
	redirect(w, r, "/ui/", url.Values{"namespace": {ns}}, "Deleted "+name+"."+ns+": its containers and network are being removed.")
}
