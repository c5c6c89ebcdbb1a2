package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// LogStreamer streams a function's logs; the controller's log service
// (*controller.Logs) implements it, so the API never talks to Docker.
type LogStreamer interface {
	// Stream sends the messages req asks for to emit until the history is
	// sent (or, with req.Follow, until ctx is done). An error from emit
	// ends the stream and is returned.
	Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error
}

// logRequestError is a query GET /system/logs cannot serve, with the
// status to answer.
type logRequestError struct {
	code int
	msg  string
}

func (e *logRequestError) Error() string { return e.msg }

// parseLogRequest reads the query of GET /system/logs with faas-provider's
// semantics (CONTRACT.md §3.4): the last value of a repeated key wins,
// follow is strconv.ParseBool (anything unparsable is false, so faas-cli's
// true/false and the go-sdk's 1/0 both work), tail <= 0 means all lines,
// and a bad tail or since is 422. since is RFC 3339 with any offset and
// optional fractional seconds; a '+' that arrived as a space (an unencoded
// offset from curl) is read as the '+' it was. A missing name is 400.
// The namespace is returned as given.
func parseLogRequest(q url.Values) (logs.Request, error) {
	last := func(key string) string {
		if vs := q[key]; len(vs) > 0 {
			return vs[len(vs)-1]
		}
		return ""
	}
	req := logs.Request{
		Name:      last("name"),
		Namespace: last("namespace"),
		Instance:  last("instance"),
	}
	req.Follow, _ = strconv.ParseBool(last("follow"))
	if v := last("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, &logRequestError{http.StatusUnprocessableEntity,
				"could not parse the log request: tail must be an integer, got " + short(v)}
		}
		req.Tail = max(n, 0)
	}
	if v := last("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil && strings.Contains(v, " ") {
			t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
		}
		if err != nil {
			return req, &logRequestError{http.StatusUnprocessableEntity,
				"could not parse the log request: since must be an RFC 3339 time such as 2006-01-02T15:04:05Z, got " + short(v)}
		}
		req.Since = &t
	}
	if req.Name == "" {
		return req, &logRequestError{http.StatusBadRequest, "name is required"}
	}
	return req, nil
}

// getLogs answers GET /system/logs (faas-cli logs, go-sdk GetLogs): a
// stream of JSON log messages, one per line, flushed line by line. Without
// follow it ends after the history; with follow it runs until the client
// goes away or the daemon stops.
func (a *api) getLogs(w http.ResponseWriter, r *http.Request) {
	if a.logs == nil {
		writeError(w, a.log, http.StatusNotImplemented, "logs are not available", nil)
		return
	}
	req, err := parseLogRequest(r.URL.Query())
	if err != nil {
		var bad *logRequestError
		errors.As(err, &bad)
		writeError(w, a.log, bad.code, bad.msg, nil)
		return
	}
	ns, ok := a.namespace(w, r, req.Namespace)
	if !ok {
		return
	}
	req.Namespace = ns
	// A name that could never have been deployed is simply not there.
	if !validName(req.Name) {
		writeError(w, a.log, http.StatusNotFound, notFoundMsg(req.Name, ns), nil)
		return
	}
	if _, err := a.store.Get(r.Context(), store.Key(ns, req.Name)); err != nil {
		writeStoreError(w, a.log, err, req.Name, ns)
		return
	}

	rc := http.NewResponseController(w)
	log := a.log.WithFields(logrus.Fields{"function": req.Name, "namespace": ns})
	if req.Follow {
		// A follow stream lasts as long as the client wants it, so the
		// server's write timeout must not cut it. (The read deadline needs
		// no care: net/http clears it once the request is read.) Without
		// follow the write timeout still bounds the reply.
		if err := rc.SetWriteDeadline(time.Time{}); err != nil {
			log.WithError(err).Debug("log stream: cannot clear the write deadline")
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// Headers go out now, so a follow client knows the stream is open
	// before the first line is written.
	_ = rc.Flush()

	var writeFailed bool
	lines, start := 0, time.Now()
	defer func() {
		log.WithFields(logrus.Fields{"follow": req.Follow, "lines": lines, "duration": time.Since(start).Round(time.Millisecond)}).
			Debug("log stream ended")
	}()
	emit := func(m logs.Message) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if _, err = w.Write(append(b, '\n')); err == nil {
			err = rc.Flush()
		}
		if writeFailed = err != nil; !writeFailed {
			lines++
		}
		return err
	}
	// The status line is sent, so a failure can only end the stream; the
	// client sees it end early and the reason is in the daemon's log.
	if err := a.logs.Stream(r.Context(), req, emit); err != nil {
		if writeFailed || r.Context().Err() != nil {
			log.WithError(err).Debug("log stream: client went away")
			return
		}
		log.WithError(err).Warn("log stream ended early")
	}
}
