package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// DefaultAsyncMaxBody is the AsyncMaxBodyBytes of a zero Config: 1 MiB,
// where OpenFaaS CE stops at 256 KB.
const DefaultAsyncMaxBody = 1 << 20

// AsyncQueue is the durable queue of async calls: Accept commits a call
// before it returns, the rest read or cancel records. *async.Service
// implements it.
type AsyncQueue interface {
	Accept(ctx context.Context, r async.Request) (rec async.Record, dup bool, err error)
	Cancel(ctx context.Context, id string) (async.Record, error)
	Get(ctx context.Context, id string) (async.Record, error)
	List(ctx context.Context, f async.Filter) ([]async.Record, error)
	// CheckCallback refuses a callback URL the daemon will never call.
	CheckCallback(u *url.URL) error
}

var _ AsyncQueue = (*async.Service)(nil)

// asyncPrefix is the path prefix of async invocations.
const asyncPrefix = "/async-function/"

// asyncMethods are the methods a call may be queued with; DELETE cancels.
var asyncMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch}

// notStored are request headers an accepted call does not keep: the
// gateway's own credential, what Accept consumes, and hop-by-hop headers.
var notStored = []string{
	"Authorization", "X-Callback-Url", proxy.HeaderCallID, "Content-Length",
	"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer",
}

// asyncRoutes mounts /async-function/ and /system/async.
func (a *api) asyncRoutes(r *mux.Router, auth *basicAuth, invokeOpen bool) {
	accept := http.Handler(http.HandlerFunc(a.acceptAsync))
	if !invokeOpen {
		accept = auth.wrap(accept)
	}
	// Cancelling manages the queue: it always takes the credentials.
	h := asyncHandler{accept: accept, cancel: auth.wrap(http.HandlerFunc(a.cancelAsync))}
	r.Handle("/async-function/{name}", h)
	r.Handle("/async-function/{name}/", h)
	r.Handle("/async-function/{name}/{params:.*}", h)
	r.Handle("/system/async", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.listAsync)}))
	r.Handle("/system/async/{id}", auth.wrap(methods{http.MethodGet: http.HandlerFunc(a.getAsync)}))
}

// asyncHandler sends queueing methods to accept and DELETE to cancel.
type asyncHandler struct{ accept, cancel http.Handler }

func (h asyncHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodDelete:
		h.cancel.ServeHTTP(w, r)
	case slices.Contains(asyncMethods, r.Method):
		h.accept.ServeHTTP(w, r)
	default:
		w.Header().Set("Allow", "DELETE, PATCH, POST, PUT")
		writeError(w, nil, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+short(r.URL.Path)+": queue a call with POST, PUT or PATCH; cancel one with DELETE /async-function/{call-id}", nil)
	}
}

// acceptAsync commits a call to the queue and answers 202 once it is on
// disk.
func (a *api) acceptAsync(w http.ResponseWriter, r *http.Request) {
	name, ns, path, err := asyncTarget(r.URL)
	if err != nil {
		writeError(w, a.log, http.StatusBadRequest, err.Error(), nil)
		return
	}
	id := r.Header.Get(proxy.HeaderCallID)
	if id != "" && !async.ValidCallID(id) {
		writeError(w, a.log, http.StatusBadRequest, "X-Call-Id "+short(id)+" is not valid: use 1 to 128 of A-Z a-z 0-9 . _ : -", nil)
		return
	}
	callback := r.Header.Get("X-Callback-Url")
	if callback != "" {
		u, err := url.Parse(callback)
		if err == nil {
			err = a.async.CheckCallback(u)
		} else {
			err = fmt.Errorf("callback URL %s: not a URL", short(callback))
		}
		if err != nil {
			writeError(w, a.log, http.StatusBadRequest, "X-Callback-Url: "+err.Error(), nil)
			return
		}
	}
	body, ok := a.readAsyncBody(w, r)
	if !ok {
		return
	}
	header := r.Header.Clone()
	for _, k := range notStored {
		header.Del(k)
	}
	rec, _, err := a.async.Accept(r.Context(), async.Request{
		CallID: id, Function: faas.Key(ns, name),
		Method: r.Method, Path: path, Query: r.URL.RawQuery,
		Header: header, Body: body, CallbackURL: callback,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, notFoundMsg(name, ns), nil)
		return
	case errors.Is(err, store.ErrConflict):
		writeError(w, a.log, http.StatusConflict, "X-Call-Id "+short(id)+" was already used for a call to another function", nil)
		return
	case err != nil:
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	h := w.Header()
	h.Set(proxy.HeaderCallID, rec.CallID)
	h.Set(proxy.HeaderStartTime, strconv.FormatInt(rec.AcceptedAt.UnixNano(), 10))
	w.WriteHeader(http.StatusAccepted)
}

// readAsyncBody reads the whole body, answering 413 beyond the limit.
func (a *api) readAsyncBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := a.asyncMaxBody
	tooLarge := func() ([]byte, bool) {
		writeError(w, a.log, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (ASYNC_MAX_BODY_BYTES)", limit), nil)
		return nil, false
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case err != nil:
		writeError(w, a.log, http.StatusBadRequest, "cannot read the request body", nil)
		return nil, false
	}
	return body, true
}

// asyncTarget reads /async-function/{name}[.{ns}][/path]: the function and
// the path it is called with, escaped as sent ("/" when there is none).
func asyncTarget(u *url.URL) (name, ns, path string, err error) {
	rest, _ := strings.CutPrefix(u.EscapedPath(), asyncPrefix)
	ref, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		ref, path = rest[:i], rest[i:]
	}
	if name, ns, err = proxy.ParseName(ref); err != nil {
		return "", "", "", fmt.Errorf("function %s: not a valid name or name.namespace", short(ref))
	}
	if _, err := url.PathUnescape(path); err != nil {
		return "", "", "", fmt.Errorf("path %s: bad escaping", short(path))
	}
	return name, ns, path, nil
}

// cancelAsync is DELETE /async-function/{call-id}.
func (a *api) cancelAsync(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), asyncPrefix)
	id, extra, _ := strings.Cut(rest, "/")
	if extra != "" || !async.ValidCallID(id) {
		writeError(w, a.log, http.StatusNotFound, "no async call "+short(rest)+": cancel with DELETE /async-function/{call-id}", nil)
		return
	}
	rec, err := a.async.Cancel(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, "no async call "+id, nil)
	case errors.Is(err, async.ErrFinished):
		writeError(w, a.log, http.StatusConflict, "async call "+id+" already finished: "+stateOf(a, r.Context(), id), nil)
	case err != nil:
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
	default:
		writeJSON(w, a.log, http.StatusAccepted, rec)
	}
}

// stateOf is the state of call id, for a 409's message.
func stateOf(a *api, ctx context.Context, id string) string {
	if rec, err := a.async.Get(ctx, id); err == nil {
		return rec.State
	}
	return "final"
}

// getAsync is GET /system/async/{id}.
func (a *api) getAsync(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !async.ValidCallID(id) {
		writeError(w, a.log, http.StatusNotFound, "no async call "+short(id), nil)
		return
	}
	rec, err := a.async.Get(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, "no async call "+id, nil)
	case err != nil:
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
	default:
		writeJSON(w, a.log, http.StatusOK, rec)
	}
}

// maxAsyncList bounds ?limit= of GET /system/async.
const maxAsyncList = 1000

// listAsync is GET /system/async[?function=name[.ns]][&namespace=ns][&state=s][&limit=n].
func (a *api) listAsync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f async.Filter
	if fn := q.Get("function"); fn != "" {
		name, ns, err := proxy.ParseName(fn)
		if err != nil {
			writeError(w, a.log, http.StatusBadRequest, "function "+short(fn)+": not a valid name or name.namespace", nil)
			return
		}
		if n := q.Get("namespace"); n != "" && !strings.Contains(fn, ".") {
			ns = n
		}
		f.Function = faas.Key(ns, name)
	}
	f.Namespace = q.Get("namespace")
	if s := q.Get("state"); s != "" {
		if !slices.Contains(async.States, s) {
			writeError(w, a.log, http.StatusBadRequest, "state "+short(s)+": want one of "+strings.Join(async.States, ", "), nil)
			return
		}
		f.State = s
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxAsyncList {
			writeError(w, a.log, http.StatusBadRequest, fmt.Sprintf("limit %s: want 1 to %d", short(l), maxAsyncList), nil)
			return
		}
		f.Limit = n
	}
	recs, err := a.async.List(r.Context(), f)
	if err != nil {
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	writeJSON(w, a.log, http.StatusOK, recs)
}
