package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds what the console keeps of one in-process answer: an
// invocation's body is shown on the page, and a page is no place for more.
const maxBody = 1 << 20

// apiResult is one in-process answer of the daemon's own handler.
type apiResult struct {
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool // the body was longer than maxBody
}

// ok reports a 2xx answer.
func (r *apiResult) ok() bool { return r.Status >= 200 && r.Status < 300 }

// message is the API's error text, what the page shows: its plain-text
// body, trimmed, or the status text when the body is empty.
func (r *apiResult) message() string {
	if m := strings.TrimSpace(string(r.Body)); m != "" {
		return m
	}
	return fmt.Sprintf("%d %s", r.Status, http.StatusText(r.Status))
}

// decode reads a 2xx JSON answer into v; any other answer is an *apiError.
func (r *apiResult) decode(v any) error {
	if !r.ok() {
		return &apiError{Status: r.Status, Msg: r.message()}
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode the API's answer: %w", err)
	}
	return nil
}

// apiError is an answer other than 2xx, with the API's own message.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// recorder is an http.ResponseWriter that keeps at most maxBody bytes of
// the body. It implements http.Flusher (a no-op) because the invocation
// proxy flushes streamed answers.
type recorder struct {
	header    http.Header
	status    int
	body      bytes.Buffer
	truncated bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if room := maxBody - w.body.Len(); room < len(p) {
		w.body.Write(p[:max(room, 0)])
		w.truncated = true
		return len(p), nil
	}
	return w.body.Write(p)
}

func (w *recorder) Flush() {}

// call sends one request to the daemon's handler in process, as the
// browser's user: the Authorization header of orig is carried over, so the
// API authenticates and validates it exactly as it would a faas-cli call.
func (h *Handler) call(ctx context.Context, orig *http.Request, method, path string, body io.Reader, hdr http.Header) (*apiResult, error) {
	api := h.api.Load()
	if api == nil {
		return nil, fmt.Errorf("console not bound to the API handler")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+orig.Host+path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if a := orig.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	req.RemoteAddr = orig.RemoteAddr
	req.RequestURI = req.URL.RequestURI()
	if body == nil {
		req.Body = http.NoBody
	}
	w := newRecorder()
	(*api).ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &apiResult{Status: w.status, Header: w.header, Body: w.body.Bytes(), Truncated: w.truncated}, nil
}

// callJSON sends v as a JSON body.
func (h *Handler) callJSON(ctx context.Context, orig *http.Request, method, path string, v any) (*apiResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
	}
	return h.call(ctx, orig, method, path, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
}

// get reads a JSON answer into v.
func (h *Handler) get(ctx context.Context, orig *http.Request, path string, v any) error {
	res, err := h.call(ctx, orig, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return res.decode(v)
}
