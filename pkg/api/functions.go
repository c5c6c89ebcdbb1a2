package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// listFunctions answers GET /system/functions: every function of the
// namespace, desired state as deployed plus what the controller observed.
// faas-cli login also validates credentials here.
func (a *api) listFunctions(w http.ResponseWriter, r *http.Request) {
	ns, ok := a.namespace(w, r, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	recs, err := a.store.List(r.Context(), ns)
	if err != nil {
		writeError(w, a.log.WithField("namespace", ns), http.StatusInternalServerError, "internal error", err)
		return
	}
	// Never null: some clients (not faas-cli) treat null as an error.
	out := make([]types.FunctionStatus, 0, len(recs))
	addrs := a.addressesOf(r.Context())
	for _, rec := range recs {
		st := a.functionStatus(rec)
		a.withAddress(&st, addrs[rec.Key()])
		out = append(out, st)
	}
	writeJSON(w, a.log, http.StatusOK, out)
}

// getFunction answers GET /system/function/{name}, polled by describe,
// `faas-cli ready NAME` and the certifier until availableReplicas > 0.
// With usage=1 (faas-cli describe) it also reports the replicas' CPU and
// memory use; the gateway's usage=false skips it.
func (a *api) getFunction(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	ns, ok := a.namespace(w, r, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	// A name that could never have been deployed is simply not there.
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, notFoundMsg(name, ns), nil)
		return
	}
	rec, err := a.store.Get(r.Context(), store.Key(ns, name))
	if err != nil {
		writeStoreError(w, a.log, err, name, ns)
		return
	}
	st := a.functionStatus(rec)
	a.withAddress(&st, a.addressOf(r.Context(), rec.Key()))
	if want, _ := strconv.ParseBool(r.URL.Query().Get("usage")); want && a.usage != nil {
		st.Usage = a.functionUsage(r.Context(), rec.Key())
	}
	writeJSON(w, a.log, http.StatusOK, st)
}

// usageTimeout bounds the stats calls behind ?usage=1: describe must answer
// even when Docker is slow, just without usage.
const usageTimeout = 3 * time.Second

// functionUsage asks the usage source, leaving usage out on failure.
func (a *api) functionUsage(ctx context.Context, key string) *types.FunctionUsage {
	ctx, cancel := context.WithTimeout(ctx, usageTimeout)
	defer cancel()
	u, err := a.usage.Usage(ctx, key)
	if err != nil {
		a.log.WithError(err).WithField("key", key).Debug("usage not available")
		return nil
	}
	return &u
}

// labelFunction is the label OpenFaaS providers add to every function; the
// certifier requires it from any provider not named "faasd".
const labelFunction = "faas_function"

// functionStatus echoes the deployment exactly as submitted (faas-cli diff
// and the certifier compare it field by field) and adds observed state. The
// one addition is the faas_function label, which OpenFaaS providers report
// among a function's labels.
func (a *api) functionStatus(rec store.Function) types.FunctionStatus {
	s := rec.Spec
	st := types.FunctionStatus{
		Name:                   s.Service,
		Image:                  s.Image,
		Namespace:              rec.Namespace,
		EnvProcess:             s.EnvProcess,
		EnvVars:                s.EnvVars,
		Constraints:            s.Constraints,
		Secrets:                s.Secrets,
		Labels:                 withFunctionLabel(s.Labels, s.Service),
		Annotations:            s.Annotations,
		Limits:                 s.Limits,
		Requests:               s.Requests,
		ReadOnlyRootFilesystem: s.ReadOnlyRootFilesystem,
		Replicas:               rec.Replicas,
		CreatedAt:              rec.CreatedAt,
	}
	if a.status != nil {
		if obs, ok := a.status.Get(rec.Key()); ok {
			st.AvailableReplicas = obs.ReadyReplicas
		}
	}
	if a.invocations != nil {
		st.InvocationCount = a.invocations.Count(rec.Key())
	}
	return st
}

// withFunctionLabel returns a copy of labels with faas_function set; the
// stored spec is never modified.
func withFunctionLabel(labels *map[string]string, name string) *map[string]string {
	out := map[string]string{labelFunction: name}
	if labels != nil {
		for k, v := range *labels {
			out[k] = v
		}
	}
	return &out
}

// deployFunction answers POST /system/functions: create a new function.
// 202, never 201: faas-cli exits 1 on a 201.
func (a *api) deployFunction(w http.ResponseWriter, r *http.Request) {
	spec, ns, p, ok := a.readDeployment(w, r)
	if !ok {
		return
	}
	rec, err := a.store.Create(r.Context(), spec, initialReplicas(p))
	if err != nil {
		writeStoreError(w, a.log, err, spec.Service, ns)
		return
	}
	writeLog(a.log, rec).Info("function deployed")
	w.WriteHeader(http.StatusAccepted)
}

// initialReplicas is what a new function starts with: its min, as OpenFaaS
// defines it (the certifier's Test_ScaleMinimum reads min replicas right
// after the deploy), but at least one even when min is 0. Min 0 means "may
// scale to zero", and a function deployed at zero would leave its first
// call waiting for a wake-up where it could have found a replica. Only a
// max of 0 (min = max = 0: a function parked on purpose) starts none.
func initialReplicas(p scaling.Policy) uint64 {
	return p.Clamp(p.WakeTo())
}

// updateFunction answers PUT /system/functions: replace the spec of an
// existing function. An unknown function is a 404 because that is the one
// answer on which faas-cli falls back to POST.
func (a *api) updateFunction(w http.ResponseWriter, r *http.Request) {
	spec, ns, p, ok := a.readDeployment(w, r)
	if !ok {
		return
	}
	// Keep the current replicas (someone may have scaled the function), but
	// move them into the range the new labels allow. A function at zero
	// stays there: an update is no call, and the next call wakes it.
	var before uint64
	rec, err := a.store.Update(r.Context(), spec, func(cur uint64) uint64 {
		before = cur
		return p.Clamp(cur)
	})
	if err != nil {
		writeStoreError(w, a.log, err, spec.Service, ns)
		return
	}
	log := writeLog(a.log, rec)
	if before != rec.Replicas {
		log = log.WithField("previousReplicas", before)
	}
	log.Info("function updated")
	w.WriteHeader(http.StatusAccepted)
}

// deleteFunction answers DELETE /system/functions (see readDelete).
func (a *api) deleteFunction(w http.ResponseWriter, r *http.Request) {
	var req types.DeleteFunctionRequest
	ns, ok := a.readDelete(w, r, &req, "functionName", &req.FunctionName, &req.Namespace)
	if !ok {
		return
	}
	name := req.FunctionName
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, notFoundMsg(name, ns), nil)
		return
	}
	key := store.Key(ns, name)
	// Read first only to log the generation being removed.
	rec, err := a.store.Get(r.Context(), key)
	if err == nil {
		err = a.store.Delete(r.Context(), key)
	}
	if err != nil {
		writeStoreError(w, a.log, err, name, ns)
		return
	}
	writeLog(a.log, rec).Info("function removed")
	w.WriteHeader(http.StatusAccepted)
}

// readDeployment decodes and validates a POST/PUT body, answering the
// request itself when that fails.
func (a *api) readDeployment(w http.ResponseWriter, r *http.Request) (types.FunctionDeployment, string, scaling.Policy, bool) {
	var spec types.FunctionDeployment
	if err := decodeBody(w, r, &spec); err != nil {
		a.writeDecodeError(w, err)
		return spec, "", scaling.Policy{}, false
	}
	ns, p, err := validateDeployment(&spec, a.scaling)
	if err != nil {
		writeError(w, a.log, http.StatusBadRequest, err.Error(), nil)
		return spec, "", scaling.Policy{}, false
	}
	if isJobMode(spec) && !a.jobMode {
		writeError(w, a.log, http.StatusNotImplemented,
			"annotation "+faas.AnnotationMode+": "+faas.ModeJob+" is not available on this runtime: job mode needs RUNTIME=docker", nil)
		return spec, "", scaling.Policy{}, false
	}
	if spec.Annotations != nil && faas.IsPerRequest(*spec.Annotations) && !a.isolation {
		writeError(w, a.log, http.StatusNotImplemented,
			"annotation "+faas.AnnotationIsolation+": "+faas.IsolationPerRequest+" is not available on this runtime: per-request isolation needs RUNTIME=docker", nil)
		return spec, "", scaling.Policy{}, false
	}
	if _, ok := a.namespace(w, r, ns); !ok {
		return spec, "", scaling.Policy{}, false
	}
	if !a.secretsExist(w, r, ns, spec.Secrets) {
		return spec, "", scaling.Policy{}, false
	}
	if !a.routeFree(w, r, ns, spec) {
		return spec, "", scaling.Policy{}, false
	}
	return spec, ns, p, true
}

// writeLog is the logger for one accepted write, with the fields operators
// grep for. It never carries env values or secrets.
func writeLog(log logrus.FieldLogger, rec store.Function) logrus.FieldLogger {
	return log.WithFields(logrus.Fields{
		"function":   rec.Name(),
		"namespace":  rec.Namespace,
		"generation": rec.Generation,
		"replicas":   rec.Replicas,
	})
}
