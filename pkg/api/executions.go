package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Bounds of ?limit= on GET /system/executions.
const (
	defaultExecutionList = 100
	maxExecutionList     = 1000
)

// maxExecutionID bounds an ID worth looking up: call IDs are at most 128
// bytes, and an async attempt's record adds its number.
const maxExecutionID = 256

// executionRoutes mounts the execution records (job runs and async
// attempts), read from the store.
func (a *api) executionRoutes(r *mux.Router, auth *basicAuth) {
	r.Handle("/system/executions", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.listExecutions)}))
	r.Handle("/system/executions/{id}", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.getExecution)}))
}

// listExecutions is GET /system/executions[?function=name[.ns]][&namespace=ns][&state=s][&kind=k][&limit=n]:
// records newest first.
func (a *api) listExecutions(w http.ResponseWriter, r *http.Request) {
	f, msg := executionFilter(r)
	if msg != "" {
		writeError(w, a.log, http.StatusBadRequest, msg, nil)
		return
	}
	list, err := a.store.ListExecutions(r.Context(), f)
	if err != nil {
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	writeJSON(w, a.log, http.StatusOK, list)
}

// executionFilter reads the query of GET /system/executions; msg says
// what is wrong with it. A namespace need not exist: the records of a
// deleted one's functions are kept until pruned.
func executionFilter(r *http.Request) (f store.ExecutionFilter, msg string) {
	q := r.URL.Query()
	ns := q.Get("namespace")
	if ns != "" {
		if _, err := effectiveNamespace(ns); err != nil {
			return f, err.Error()
		}
	}
	if fn := q.Get("function"); fn != "" {
		name, fnNS, err := proxy.ParseName(fn)
		if err != nil {
			return f, "function " + short(fn) + ": not a valid name or name.namespace"
		}
		switch {
		case !strings.Contains(fn, "."):
			if ns != "" {
				fnNS = ns
			}
		case ns != "" && ns != fnNS:
			return f, fmt.Sprintf("function %s is not in namespace %s", short(fn), short(ns))
		}
		f.Function = faas.Key(fnNS, name)
	} else {
		f.Namespace = ns
	}
	if s := q.Get("state"); s != "" {
		if !slices.Contains(store.ExecutionStates, s) {
			return f, "state " + short(s) + ": want one of " + strings.Join(store.ExecutionStates, ", ")
		}
		f.State = s
	}
	if k := q.Get("kind"); k != "" {
		if !slices.Contains(store.ExecutionKinds, k) {
			return f, "kind " + short(k) + ": want one of " + strings.Join(store.ExecutionKinds, ", ")
		}
		f.Kind = k
	}
	f.Limit = defaultExecutionList
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxExecutionList {
			return f, fmt.Sprintf("limit %s: want a number from 1 to %d", short(l), maxExecutionList)
		}
		f.Limit = n
	}
	return f, ""
}

// getExecution is GET /system/executions/{id}.
func (a *api) getExecution(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if len(id) > maxExecutionID {
		writeError(w, a.log, http.StatusNotFound, "no execution "+short(id), nil)
		return
	}
	e, err := a.store.GetExecution(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, "no execution "+short(id), nil)
	case err != nil:
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
	default:
		writeJSON(w, a.log, http.StatusOK, e)
	}
}
