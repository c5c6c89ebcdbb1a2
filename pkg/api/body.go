package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxBodyBytes bounds management request bodies. A FunctionDeployment is a
// few hundred bytes; 1 MiB leaves room for large env maps without letting a
// client make the daemon buffer arbitrary amounts.
const maxBodyBytes = 1 << 20

// errBodyTooLarge marks a body over maxBodyBytes so the caller answers 413;
// errors.Is matches it for a body over any limit (see decodeBodyLimit).
var errBodyTooLarge error = bodyTooLargeError{maxBodyBytes}

// bodyTooLargeError is a body over limit bytes.
type bodyTooLargeError struct{ limit int64 }

func (e bodyTooLargeError) Error() string {
	return fmt.Sprintf("request body larger than %d bytes", e.limit)
}

// Is makes every bodyTooLargeError match errBodyTooLarge.
func (e bodyTooLargeError) Is(target error) bool {
	_, ok := target.(bodyTooLargeError)
	return ok
}

// decodeBody reads one JSON object from the request body into v. Unknown
// fields are accepted on purpose: newer clients may send fields this daemon
// does not know yet. Everything else that is not exactly one object is an
// error, so that typos in hand-written curl bodies do not pass silently.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBodyLimit(w, r, v, maxBodyBytes)
}

// decodeBodyLimit is decodeBody for a body of at most limit bytes.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return bodyTooLargeError{limit}
		}
		return fmt.Errorf("reading request body: %w", err)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return errors.New("request body is empty: expected a JSON object")
	}
	if trimmed[0] != '{' {
		return errors.New("invalid JSON body: expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON body: unexpected data after the JSON object")
	}
	return nil
}

// writeDecodeError answers a decodeBody error: 413 for an oversize body,
// 400 for everything else.
func (a *api) writeDecodeError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, errBodyTooLarge) {
		code = http.StatusRequestEntityTooLarge
	}
	writeError(w, a.log, code, err.Error(), err)
}

// readDelete decodes a DELETE body into req and resolves the namespace of
// what it names, answering the request itself when either fails. name and
// namespace point into req, so they are read once it is decoded; field is
// the JSON name of the required name. faas-cli sends the namespace in the body,
// older clients in the query; the body wins.
func (a *api) readDelete(w http.ResponseWriter, r *http.Request, req any, field string, name, namespace *string) (ns string, ok bool) {
	if err := decodeBody(w, r, req); err != nil {
		a.writeDecodeError(w, err)
		return "", false
	}
	if *name == "" {
		writeError(w, a.log, http.StatusBadRequest, field+" is required", nil)
		return "", false
	}
	requested := *namespace
	if requested == "" {
		requested = r.URL.Query().Get("namespace")
	}
	return a.namespace(w, r, requested)
}
