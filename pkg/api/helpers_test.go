package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const (
	testUser = "admin"
	testPass = "s3cr3t"
)

// helloBody is the FunctionDeployment faas-cli sends for the stack in
// captures/_inputs [cap 04].
const helloBody = `{"service":"hello","image":"docker.io/example/hello:0.1.0","envProcess":"python3 index.py","envVars":{"FROM_FILE":"yes-from-file","MY_VAR":"my-value","exec_timeout":"15s","read_timeout":"15s","write_timeout":"15s"},"constraints":["node.platform.os == linux"],"secrets":["api-key"],"labels":{"com.openfaas.scale.min":"1","team":"blue"},"annotations":{"schedule":"*/5 * * * *","topic":"cron-function"},"limits":{"memory":"128Mi","cpu":"500m"},"requests":{"memory":"64Mi","cpu":"100m"},"readOnlyRootFilesystem":true}`

// fixture is a router over a fresh in-memory store.
type fixture struct {
	h     http.Handler
	store *store.Memory
	board *status.Board
	logs  *logtest.Hook
}

// newFixture builds a router; edit tweaks the Config before it is used.
func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	f := &fixture{store: store.NewMemory(), board: status.NewBoard(), logs: hook}
	// helloBody lists this secret, and a deploy needs it to exist.
	if _, err := f.store.CreateSecret(context.Background(), "", "api-key", []byte("test-value")); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store:  f.store,
		Status: f.board,
		Auth:   Auth{User: testUser, Password: testPass},
		Info:   Info{Version: "0.1.0", SHA: "abc123"},
		Log:    log,
	}
	if edit != nil {
		edit(&cfg)
	}
	f.h = NewRouter(cfg)
	return f
}

// do sends one request with valid credentials.
func (f *fixture) do(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	return f.send(t, method, target, body, func(r *http.Request) { r.SetBasicAuth(testUser, testPass) })
}

// send sends one request; prep may set headers.
func (f *fixture) send(t *testing.T, method, target, body string, prep func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if prep != nil {
		prep(r)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// deploy POSTs body and requires a 202.
func (f *fixture) deploy(t *testing.T, body string) {
	t.Helper()
	if w := f.do(t, http.MethodPost, "/system/functions", body); w.Code != http.StatusAccepted {
		t.Fatalf("deploy: got %d %q, want 202", w.Code, w.Body.String())
	}
}

// snapshot is the whole store as JSON, to prove a request changed nothing.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	fns, err := f.store.List(context.Background(), "")
	if err != nil {
		t.Fatalf("list store: %v", err)
	}
	b, err := json.Marshal(fns)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// get reads one record from the store.
func (f *fixture) get(t *testing.T, key string) store.Function {
	t.Helper()
	fn, err := f.store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return fn
}

// infoEntries returns the messages logged at Info level.
func (f *fixture) infoEntries() []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range f.logs.AllEntries() {
		if e.Level == logrus.InfoLevel {
			out = append(out, e)
		}
	}
	return out
}

// decodeJSON decodes a response body, failing the test on error.
func decodeJSON(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
}

// with returns helloBody with the top-level field set to raw JSON (or
// removed when raw is "").
func with(t *testing.T, field, raw string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(helloBody), &m); err != nil {
		t.Fatal(err)
	}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
