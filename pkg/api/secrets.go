package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const (
	// maxSecretBytes bounds one secret's value. Kubernetes allows 1 MiB;
	// half of that is ample for keys, tokens and certificates, and a value
	// is copied into every replica of every function that uses it.
	maxSecretBytes = 512 << 10
	// maxSecretBodyBytes leaves room for faas-cli --from-file, which sends
	// the value twice: as text and, base64-encoded (4/3 larger), as rawValue.
	maxSecretBodyBytes = 3 * maxSecretBytes
)

// listSecrets answers GET /system/secrets[?namespace=]: the names of the
// namespace's secrets, never their values.
func (a *api) listSecrets(w http.ResponseWriter, r *http.Request) {
	ns, ok := a.namespace(w, r, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	list, err := a.store.ListSecrets(r.Context(), ns)
	if err != nil {
		writeError(w, a.log.WithField("namespace", ns), http.StatusInternalServerError, "internal error", err)
		return
	}
	// Never null, as for functions.
	out := make([]types.Secret, 0, len(list))
	for _, s := range list {
		out = append(out, types.Secret{Name: s.Name, Namespace: s.Namespace})
	}
	writeJSON(w, a.log, http.StatusOK, out)
}

// createSecret answers POST /system/secrets. 201: faas-cli and the go-sdk
// accept 200, 201 and 202 here (unlike deploy), and it says what happened.
// 409 carries the message faas-cli shows, after which `--replace` PUTs.
func (a *api) createSecret(w http.ResponseWriter, r *http.Request) {
	ns, name, value, ok := a.readSecret(w, r)
	if !ok {
		return
	}
	info, err := a.store.CreateSecret(r.Context(), ns, name, value)
	switch {
	case errors.Is(err, store.ErrConflict):
		writeError(w, a.log, http.StatusConflict, `secret with the name "`+name+`" already exists`, nil)
		return
	case err != nil:
		a.writeSecretStoreError(w, err, name, ns)
		return
	}
	secretLog(a.log, info).Info("secret created")
	w.WriteHeader(http.StatusCreated)
}

// updateSecret answers PUT /system/secrets: replace the value of an existing
// secret. The controller then rolls every function that uses it.
func (a *api) updateSecret(w http.ResponseWriter, r *http.Request) {
	ns, name, value, ok := a.readSecret(w, r)
	if !ok {
		return
	}
	info, err := a.store.UpdateSecret(r.Context(), ns, name, value)
	if err != nil {
		a.writeSecretStoreError(w, err, name, ns)
		return
	}
	secretLog(a.log, info).Info("secret updated")
	w.WriteHeader(http.StatusAccepted)
}

// deleteSecret answers DELETE /system/secrets with {"name","namespace"}
// (see readDelete). Functions still listing the secret keep their running
// replicas but cannot be reconciled until it exists again, which is worth a
// warning.
func (a *api) deleteSecret(w http.ResponseWriter, r *http.Request) {
	var req types.Secret
	ns, ok := a.readDelete(w, r, &req, "name", &req.Name, &req.Namespace)
	if !ok {
		return
	}
	// A name that could never have been stored is simply not there.
	if !validSecretName(req.Name) {
		writeError(w, a.log, http.StatusNotFound, secretNotFoundMsg(req.Name), nil)
		return
	}
	if err := a.store.DeleteSecret(r.Context(), ns, req.Name); err != nil {
		a.writeSecretStoreError(w, err, req.Name, ns)
		return
	}
	log := a.log.WithFields(logrus.Fields{"secret": req.Name, "namespace": ns})
	if users := a.secretUsers(r, ns, req.Name); len(users) > 0 {
		log.WithField("functions", users).Warn("secret removed while functions still use it; they cannot be updated or healed until it is created again")
	} else {
		log.Info("secret removed")
	}
	w.WriteHeader(http.StatusAccepted)
}

// readSecret decodes and checks a POST/PUT body, answering the request
// itself when that fails. rawValue wins over value when it is not empty,
// as in every OpenFaaS provider: faas-cli --from-file sends both, the text
// trimmed and the raw bytes untouched.
func (a *api) readSecret(w http.ResponseWriter, r *http.Request) (ns, name string, value []byte, ok bool) {
	var req types.Secret
	if err := decodeBodyLimit(w, r, &req, maxSecretBodyBytes); err != nil {
		a.writeDecodeError(w, err)
		return "", "", nil, false
	}
	if req.Namespace == "" {
		req.Namespace = r.URL.Query().Get("namespace")
	}
	value = req.RawValue
	if len(value) == 0 {
		value = []byte(req.Value)
	}
	switch {
	case req.Name == "":
		writeError(w, a.log, http.StatusBadRequest, "name is required", nil)
		return "", "", nil, false
	case !validSecretName(req.Name):
		writeError(w, a.log, http.StatusBadRequest, fmt.Sprintf(
			"name %s is not a valid secret name: use a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
			short(req.Name)), nil)
		return "", "", nil, false
	case len(value) == 0:
		writeError(w, a.log, http.StatusBadRequest, "secret "+req.Name+" has no value: set value or rawValue", nil)
		return "", "", nil, false
	case len(value) > maxSecretBytes:
		writeError(w, a.log, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("secret %s: value larger than %d bytes", req.Name, maxSecretBytes), nil)
		return "", "", nil, false
	}
	ns, ok = a.namespace(w, r, req.Namespace)
	return ns, req.Name, value, ok
}

// secretsExist answers 400 "unable to find secret: NAME", faasd's message,
// when a deployment lists a secret its namespace does not hold: better now
// than a function that can never start. A secret deleted right after this
// check is caught by the controller (status reason SecretNotFound).
func (a *api) secretsExist(w http.ResponseWriter, r *http.Request, ns string, names []string) bool {
	if len(names) == 0 {
		return true
	}
	list, err := a.store.ListSecrets(r.Context(), ns)
	if err != nil {
		writeError(w, a.log.WithField("namespace", ns), http.StatusInternalServerError, "internal error", err)
		return false
	}
	have := make(map[string]bool, len(list))
	for _, s := range list {
		have[s.Name] = true
	}
	for _, n := range names {
		if !have[n] {
			writeError(w, a.log, http.StatusBadRequest, secretNotFoundMsg(n), nil)
			return false
		}
	}
	return true
}

// secretUsers names the functions of ns that list the secret; a failure to
// find out only costs the warning.
func (a *api) secretUsers(r *http.Request, ns, name string) []string {
	fns, err := a.store.List(r.Context(), ns)
	if err != nil {
		return nil
	}
	var users []string
	for _, f := range fns {
		if slices.Contains(f.Spec.Secrets, name) {
			users = append(users, f.Name())
		}
	}
	return users
}

// writeSecretStoreError maps a store error of a secret write to a response;
// as for functions, only the sentinels mean something to the client.
func (a *api) writeSecretStoreError(w http.ResponseWriter, err error, name, ns string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, a.log, http.StatusNotFound, secretNotFoundMsg(name), nil)
	case errors.Is(err, store.ErrNamespaceNotFound):
		a.writeNamespaceError(w, err, ns)
	default:
		writeError(w, a.log.WithFields(logrus.Fields{"secret": name, "namespace": ns}),
			http.StatusInternalServerError, "internal error", err)
	}
}

// secretNotFoundMsg is the message faas-cli prints for a missing secret.
func secretNotFoundMsg(name string) string { return "unable to find secret: " + short(name) }

// secretLog is the logger for one accepted secret write. Never add the value.
func secretLog(log logrus.FieldLogger, info store.SecretInfo) logrus.FieldLogger {
	return log.WithFields(logrus.Fields{
		"secret":    info.Name,
		"namespace": info.Namespace,
		"revision":  info.Revision,
	})
}
