package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// labelOpenFaaS marks a namespace as one OpenFaaS may use. faas-cli and the
// go-sdk add it to every namespace mutation and faasd refuses mutations
// without it, so a request without it did not come from an OpenFaaS client
// and is refused the same way.
const labelOpenFaaS = "openfaas"

// invalidNamespaceError is a namespace a request names but that does not
// exist (or could not): a 400, the code faasd answers.
type invalidNamespaceError struct{ ns string }

func (e *invalidNamespaceError) Error() string {
	return fmt.Sprintf("namespace %s is not valid", short(e.ns))
}

// effectiveNamespace is the namespace a request means: the default when
// none is given. A name that is not a DNS-1123 label can never exist.
func effectiveNamespace(ns string) (string, error) {
	if ns == "" {
		return store.DefaultNamespace, nil
	}
	if !validName(ns) {
		return "", &invalidNamespaceError{ns}
	}
	return ns, nil
}

// resolveNamespace returns the effective namespace for a requested one and
// checks that it exists. The error is an *invalidNamespaceError when it does
// not, anything else is the store failing. The default namespace always
// exists and costs no store read.
func (a *api) resolveNamespace(ctx context.Context, requested string) (string, error) {
	ns, err := effectiveNamespace(requested)
	if err != nil || ns == store.DefaultNamespace {
		return ns, err
	}
	if _, err := a.store.GetNamespace(ctx, ns); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", &invalidNamespaceError{ns}
		}
		return "", fmt.Errorf("namespace %s: %w", ns, err)
	}
	return ns, nil
}

// namespace is resolveNamespace for handlers: when the namespace is not
// usable it answers the request itself (400, or 500 when the store fails)
// and reports false.
func (a *api) namespace(w http.ResponseWriter, r *http.Request, requested string) (string, bool) {
	ns, err := a.resolveNamespace(r.Context(), requested)
	if err != nil {
		a.writeNamespaceError(w, err, requested)
		return "", false
	}
	return ns, true
}

// writeNamespaceError answers an error of resolveNamespace or of a store
// write whose namespace vanished meanwhile.
func (a *api) writeNamespaceError(w http.ResponseWriter, err error, ns string) {
	var invalid *invalidNamespaceError
	switch {
	case errors.As(err, &invalid):
		writeError(w, a.log, http.StatusBadRequest, invalid.Error(), nil)
	case errors.Is(err, store.ErrNamespaceNotFound):
		writeError(w, a.log, http.StatusBadRequest, (&invalidNamespaceError{ns}).Error(), nil)
	default:
		writeError(w, a.log.WithField("namespace", ns), http.StatusInternalServerError, "internal error", err)
	}
}

// listNamespaces answers GET /system/namespaces (faas-cli namespace list):
// the names, openfaas-fn first. With no namespace created that is exactly
// ["openfaas-fn"], which the certifier expects.
func (a *api) listNamespaces(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.ListNamespaces(r.Context())
	if err != nil {
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	names := make([]string, 0, len(list))
	for _, ns := range list {
		names = append(names, ns.Name)
	}
	writeJSON(w, a.log, http.StatusOK, names)
}

// getNamespace answers GET /system/namespace/{ns}: the namespace with the
// labels and annotations it was created with.
func (a *api) getNamespace(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["ns"]
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, nsNotFoundMsg(name), nil)
		return
	}
	ns, err := a.store.GetNamespace(r.Context(), name)
	if err != nil {
		a.writeNamespaceStoreError(w, err, name)
		return
	}
	writeJSON(w, a.log, http.StatusOK, ns)
}

// createNamespace answers POST /system/namespace/ (faas-cli namespace
// create; the name is in the body, the path ends in a slash): 201, or 409
// when it exists. openfaas-fn always exists.
func (a *api) createNamespace(w http.ResponseWriter, r *http.Request) {
	req, ok := a.readNamespace(w, r)
	if !ok {
		return
	}
	if !validName(req.Name) {
		writeError(w, a.log, http.StatusBadRequest, invalidNameMsg(req.Name), nil)
		return
	}
	ns, err := a.store.CreateNamespace(r.Context(), req)
	if err != nil {
		a.writeNamespaceStoreError(w, err, req.Name)
		return
	}
	nsLog(a.log, ns).Info("namespace created")
	w.WriteHeader(http.StatusCreated)
}

// updateNamespace answers PUT /system/namespace/{ns}: the labels and
// annotations are replaced by the body's (202), whose name must be the
// path's.
func (a *api) updateNamespace(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["ns"]
	req, ok := a.readNamespace(w, r)
	if !ok || !a.samePathName(w, name, req.Name) {
		return
	}
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, nsNotFoundMsg(name), nil)
		return
	}
	ns, err := a.store.UpdateNamespace(r.Context(), req)
	if err != nil {
		a.writeNamespaceStoreError(w, err, name)
		return
	}
	nsLog(a.log, ns).Info("namespace updated")
	w.WriteHeader(http.StatusAccepted)
}

// deleteNamespace answers DELETE /system/namespace/{ns}: 202 for an empty
// namespace; one still holding functions or secrets is refused with 409 and
// left as it is, so deleting a namespace never deletes anything else.
func (a *api) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["ns"]
	req, ok := a.readNamespace(w, r)
	if !ok || !a.samePathName(w, name, req.Name) {
		return
	}
	if name == store.DefaultNamespace {
		writeError(w, a.log, http.StatusBadRequest,
			"namespace "+name+" is the default namespace and cannot be deleted", nil)
		return
	}
	if !validName(name) {
		writeError(w, a.log, http.StatusNotFound, nsNotFoundMsg(name), nil)
		return
	}
	if err := a.store.DeleteNamespace(r.Context(), name); err != nil {
		a.writeNamespaceStoreError(w, err, name)
		return
	}
	a.log.WithField("namespace", name).Info("namespace removed")
	w.WriteHeader(http.StatusAccepted)
}

// readNamespace decodes a mutation's body and checks the openfaas label,
// answering the request itself when either fails.
func (a *api) readNamespace(w http.ResponseWriter, r *http.Request) (types.FunctionNamespace, bool) {
	var req types.FunctionNamespace
	if err := decodeBody(w, r, &req); err != nil {
		a.writeDecodeError(w, err)
		return req, false
	}
	if v := req.Labels[labelOpenFaaS]; v != "1" && v != "true" {
		writeError(w, a.log, http.StatusBadRequest,
			`namespace requests must carry the label openfaas: "1" (faas-cli and the OpenFaaS SDK add it)`, nil)
		return req, false
	}
	if err := nonEmptyKeys("labels", &req.Labels); err != nil {
		writeError(w, a.log, http.StatusBadRequest, err.Error(), nil)
		return req, false
	}
	if err := nonEmptyKeys("annotations", &req.Annotations); err != nil {
		writeError(w, a.log, http.StatusBadRequest, err.Error(), nil)
		return req, false
	}
	return req, true
}

// samePathName refuses a body that names another namespace than the path,
// as faasd does: the path says what is changed, the body what it becomes.
func (a *api) samePathName(w http.ResponseWriter, path, body string) bool {
	if path == body {
		return true
	}
	writeError(w, a.log, http.StatusBadRequest,
		fmt.Sprintf("name %s in the body does not match the namespace %s in the path", short(body), short(path)), nil)
	return false
}

// writeNamespaceStoreError maps a namespace store error to a response.
func (a *api) writeNamespaceStoreError(w http.ResponseWriter, err error, name string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, nsNotFoundMsg(name), nil)
	case errors.Is(err, store.ErrConflict):
		writeError(w, a.log, http.StatusConflict, "namespace "+name+" already exists", nil)
	case errors.Is(err, store.ErrNotEmpty):
		writeError(w, a.log, http.StatusConflict,
			"namespace "+name+" is not empty: delete its functions and secrets first", nil)
	case errors.Is(err, store.ErrDefaultNamespace):
		writeError(w, a.log, http.StatusBadRequest,
			"namespace "+name+" is the default namespace and cannot be deleted", nil)
	default:
		writeError(w, a.log.WithField("namespace", name), http.StatusInternalServerError, "internal error", err)
	}
}

// nsNotFoundMsg is the message the go-sdk itself prints for a 404.
func nsNotFoundMsg(name string) string {
	return "namespace " + short(name) + " not found"
}

func invalidNameMsg(name string) string {
	if name == "" {
		return "name is required"
	}
	return fmt.Sprintf("namespace %s is not a valid name: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit",
		short(name), maxNameLen)
}

// nsLog is the logger for one accepted namespace write.
func nsLog(log logrus.FieldLogger, ns types.FunctionNamespace) logrus.FieldLogger {
	return log.WithFields(logrus.Fields{"namespace": ns.Name, "labels": len(ns.Labels), "annotations": len(ns.Annotations)})
}
