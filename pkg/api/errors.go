package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// writeError answers with a short plain-text message. faas-cli prints the
// body of unexpected responses verbatim, so the message is what users see.
// Server errors are logged here, once, so that callers cannot forget to.
func writeError(w http.ResponseWriter, log logrus.FieldLogger, code int, msg string, err error) {
	if code == http.StatusInternalServerError && errors.Is(err, store.ErrNotStored) {
		// A full disk is the operator's to fix, and says nothing was done.
		code, msg = http.StatusInsufficientStorage, notStoredMsg(err)
	}
	if code >= 500 && log != nil {
		log.WithError(err).WithField("status", code).Error(msg)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// writeStoreError maps a store error to a response. Only the sentinel errors
// carry a meaning a client can act on; anything else is reported as a bare
// 500 so that file paths or bbolt internals never reach the caller.
func writeStoreError(w http.ResponseWriter, log logrus.FieldLogger, err error, name, ns string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, log, http.StatusNotFound, notFoundMsg(name, ns), nil)
	case errors.Is(err, store.ErrConflict):
		writeError(w, log, http.StatusConflict, "function "+name+" already exists in namespace "+ns, nil)
	case errors.Is(err, store.ErrNamespaceNotFound):
		// The namespace was deleted between the check and the write.
		writeError(w, log, http.StatusBadRequest, "namespace "+ns+" is not valid", nil)
	default:
		writeError(w, log.WithFields(logrus.Fields{"function": name, "namespace": ns}),
			http.StatusInternalServerError, "internal error", err)
	}
}

// notStoredMsg answers a write the state file could not keep: nothing was
// changed, so the client may retry once space is freed.
func notStoredMsg(err error) string {
	why := "the state file could not be written"
	if errors.Is(err, syscall.ENOSPC) {
		why = "the disk holding the state file is full"
	}
	return "insufficient storage: " + why + "; nothing was changed, retry once the operator has freed space"
}

// notFoundMsg names the function the way faas-cli addresses it (NAME.NS).
func notFoundMsg(name, ns string) string {
	// short quotes names with control characters, so a %0a in a path
	// cannot forge lines in the answer.
	return "function " + short(name+"."+ns) + " not found"
}

// writeJSON answers with v as JSON. Our own types always encode, so an error
// here means the client went away mid-response; the status line is already
// sent, so it is only worth a debug line.
func writeJSON(w http.ResponseWriter, log logrus.FieldLogger, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil && log != nil {
		log.WithError(err).Debug("writing response")
	}
}
