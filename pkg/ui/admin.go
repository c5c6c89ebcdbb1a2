package ui

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

type secretsData struct {
	Namespace  string
	Namespaces []string
	Names      []string
	NewName    string // re-shown after an error; the value never is
}

// secretsPage is GET /ui/secrets: names only, never values (the API does
// not return them either).
func (h *Handler) secretsPage(w http.ResponseWriter, r *http.Request) {
	h.showSecrets(w, r, http.StatusOK, "", "")
}

func (h *Handler) showSecrets(w http.ResponseWriter, r *http.Request, code int, newName, errMsg string) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d := secretsData{Namespace: nsParam(r), Namespaces: h.namespaces(ctx, r), NewName: newName}
	var list []types.Secret
	if err := h.get(ctx, r, "/system/secrets?namespace="+url.QueryEscape(d.Namespace), &list); err != nil && errMsg == "" {
		code, errMsg = failStatus(err), err.Error()
	}
	for _, s := range list {
		d.Names = append(d.Names, s.Name)
	}
	sort.Strings(d.Names)
	h.render(w, r, code, "secrets", "Secrets", d, errMsg)
}

// createSecret is POST /ui/secrets.
func (h *Handler) createSecret(w http.ResponseWriter, r *http.Request) {
	name, ns := strings.TrimSpace(r.PostFormValue("name")), nsParam(r)
	res, err := h.callJSON(r.Context(), r, http.MethodPost, "/system/secrets",
		types.Secret{Name: name, Namespace: ns, Value: r.PostFormValue("value")})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.showSecrets(w, r, failStatus(err), name, err.Error())
		return
	}
	redirect(w, r, "/ui/secrets", url.Values{"namespace": {ns}}, "Created secret "+name+".")
}

// deleteSecret is POST /ui/secrets/delete.
func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PostFormValue("name"), nsParam(r)
	res, err := h.callJSON(r.Context(), r, http.MethodDelete, "/system/secrets", types.Secret{Name: name, Namespace: ns})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.showSecrets(w, r, failStatus(err), "", err.Error())
		return
	}
	redirect(w, r, "/ui/secrets", url.Values{"namespace": {ns}}, "Deleted secret "+name+".")
}

type namespacesData struct {
	Namespaces []string
	NewName    string
}

// namespacesPage is GET /ui/namespaces.
func (h *Handler) namespacesPage(w http.ResponseWriter, r *http.Request) {
	h.showNamespaces(w, r, http.StatusOK, "", "")
}

func (h *Handler) showNamespaces(w http.ResponseWriter, r *http.Request, code int, newName, errMsg string) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	var ns []string
	if err := h.get(ctx, r, "/system/namespaces", &ns); err != nil && errMsg == "" {
		code, errMsg = failStatus(err), err.Error()
	}
	sort.Strings(ns)
	h.render(w, r, code, "namespaces", "Namespaces", namespacesData{Namespaces: ns, NewName: newName}, errMsg)
}

// openfaasLabels is what faas-cli puts on a namespace it creates; the API
// requires it.
func openfaasLabels() map[string]string { return map[string]string{"openfaas": "1"} }

// createNamespace is POST /ui/namespaces.
func (h *Handler) createNamespace(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	res, err := h.callJSON(r.Context(), r, http.MethodPost, "/system/namespace/",
		types.FunctionNamespace{Name: name, Labels: openfaasLabels()})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.showNamespaces(w, r, failStatus(err), name, err.Error())
		return
	}
	redirect(w, r, "/ui/namespaces", nil, "Created namespace "+name+".")
}

// deleteNamespace is POST /ui/namespaces/delete; the API refuses a
// namespace that still has functions or secrets.
func (h *Handler) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("name")
	res, err := h.callJSON(r.Context(), r, http.MethodDelete, "/system/namespace/"+url.PathEscape(name),
		types.FunctionNamespace{Name: name, Labels: openfaasLabels()})
	if err == nil && !res.ok() {
		err = &apiError{Status: res.Status, Msg: res.message()}
	}
	if err != nil {
		h.showNamespaces(w, r, failStatus(err), "", err.Error())
		return
	}
	redirect(w, r, "/ui/namespaces", nil, "Deleted namespace "+name+".")
}

type executionsData struct {
	Function    string // name or name.namespace filter; "" for all
	Executions  []store.Execution
	ExecError   string
	Async       []async.Record
	AsyncError  string
	AsyncAbsent bool // the daemon has no async queue
}

// executionsPage is GET /ui/executions[?function=NAME[.NS]]: job runs and
// async attempts (/system/executions) and the async calls (/system/async).
func (h *Handler) executionsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	d := executionsData{Function: strings.TrimSpace(r.FormValue("function"))}
	q := url.Values{"limit": {"50"}}
	if d.Function != "" {
		q.Set("function", d.Function)
	}
	if err := h.get(ctx, r, "/system/executions?"+q.Encode(), &d.Executions); err != nil {
		d.ExecError = err.Error()
	}
	res, err := h.call(ctx, r, http.MethodGet, "/system/async?"+q.Encode(), nil, nil)
	switch {
	case err != nil:
		d.AsyncError = err.Error()
	case res.Status == http.StatusNotFound:
		d.AsyncAbsent = true
	default:
		if err := res.decode(&d.Async); err != nil {
			d.AsyncError = err.Error()
		}
	}
	h.render(w, r, http.StatusOK, "executions", "Executions", d, "")
}
