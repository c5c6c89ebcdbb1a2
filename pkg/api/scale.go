package api

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// scaleFunction answers POST /system/scale-function/{name}, used by the
// SDK, the certifier and scale-from-zero callers. The namespace is in the
// body (SDK) or the query (the CE gateway); the body wins.
func (a *api) scaleFunction(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	var req types.ScaleServiceRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.writeDecodeError(w, err)
		return
	}
	if req.ServiceName != "" && req.ServiceName != name {
		writeError(w, a.log, http.StatusBadRequest,
			fmt.Sprintf("serviceName %s does not match the function %s in the path", short(req.ServiceName), short(name)), nil)
		return
	}
	if req.Namespace == "" {
		req.Namespace = r.URL.Query().Get("namespace")
	}
	ns, ok := a.namespace(w, r, req.Namespace)
	if !ok {
		return
	}
	if req.Replicas > a.maxReplicas {
		writeError(w, a.log, http.StatusBadRequest, fmt.Sprintf("replicas must be between 0 and %d", a.maxReplicas), nil)
		return
	}
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, notFoundMsg(name, ns), nil)
		return
	}
	key := store.Key(ns, name)
	rec, err := a.store.Get(r.Context(), key)
	if err != nil {
		writeStoreError(w, a.log, err, name, ns)
		return
	}
	p, err := policyOf(rec.Spec.Labels, a.scaling)
	if err != nil {
		// Labels are validated on deploy, so either the limit was lowered
		// since or the function was stored before its scale labels were
		// all validated (zero-duration, type, target...); honour the limit
		// rather than refuse to scale.
		a.log.WithFields(logrus.Fields{"function": name, "namespace": ns}).WithError(err).
			Warn("ignoring scale labels")
		p = scaling.Policy{Max: a.scaling.Limit}
	}
	// 0 is taken as asked for every function, even below min or with
	// min = max: it means "none until called", and the next call wakes the
	// function to min (OpenFaaS's scale-from-zero; the certifier's
	// Test_ScaleFromZeroDuringInvoke scales to 0, expects replicas 0 on the
	// next read, then invokes). Anything else moves into [min, max].
	n := p.Clamp(req.Replicas)
	// The labels are read before Scale writes; a concurrent update that
	// changes them is rare, and the next scale or update re-clamps.
	rec, err = a.store.Scale(r.Context(), key, n)
	if err != nil {
		writeStoreError(w, a.log, err, name, ns)
		return
	}
	log, msg := writeLog(a.log, rec), "function scaled"
	switch {
	case n != req.Replicas:
		log = log.WithFields(logrus.Fields{"requested": req.Replicas, "scaleMin": p.Min, "scaleMax": p.Max})
		msg = "function scaled; requested replicas clamped by its scale labels"
	case n == 0:
		msg = "function scaled to zero; the next call wakes it"
	}
	log.Info(msg)
	w.WriteHeader(http.StatusAccepted)
}
