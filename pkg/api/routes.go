package api

import (
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// RouteLister lists the path routes (io.dockerfaas.route) for
// /debug/reconcile; the route table (*routes.Table) satisfies it.
type RouteLister interface {
	Routes() []faas.Route
}

// routeFree answers 409 when the validated spec's route is another
// function's already (any namespace); the function itself redeploying
// keeps its route. The check reads the store before the write, so two
// deploys racing can both pass it: the route table then serves the
// function created first (pkg/routes).
func (a *api) routeFree(w http.ResponseWriter, r *http.Request, ns string, spec types.FunctionDeployment) bool {
	if spec.Annotations == nil {
		return true
	}
	route, err := faas.RouteOf(*spec.Annotations)
	if err != nil || route == "" {
		return true // validated before: err cannot happen
	}
	fns, err := a.store.List(r.Context(), "")
	if err != nil {
		writeError(w, a.log.WithField("function", store.Key(ns, spec.Service)), http.StatusInternalServerError, "internal error", err)
		return false
	}
	self := store.Key(ns, spec.Service)
	for _, f := range fns {
		if f.Key() == self || f.Spec.Annotations == nil {
			continue
		}
		// Compared as stored: an invalid stored route serves nothing, but
		// is still no route for someone else to share.
		if (*f.Spec.Annotations)[faas.AnnotationRoute] == route {
			writeError(w, a.log, http.StatusConflict, "annotation "+faas.AnnotationRoute+": "+route+
				" is already the route of function "+f.Name()+" in namespace "+f.Namespace, nil)
			return false
		}
	}
	return true
}
