package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func TestWriteStoreError(t *testing.T) {
	tests := []struct {
		err  error
		code int
		body string
	}{
		{fmt.Errorf("function %q: %w", "openfaas-fn/x", store.ErrNotFound), 404, "function x.openfaas-fn not found\n"},
		{fmt.Errorf("function %q: %w", "openfaas-fn/x", store.ErrConflict), 409, "function x already exists in namespace openfaas-fn\n"},
		{errors.New("open /var/lib/dockerfaasd/state.db: disk full"), 500, "internal error\n"},
	}
	for _, tt := range tests {
		log, hook := logtest.NewNullLogger()
		w := httptest.NewRecorder()
		writeStoreError(w, log, tt.err, "x", "openfaas-fn")
		if w.Code != tt.code || w.Body.String() != tt.body {
			t.Errorf("%v: got %d %q, want %d %q", tt.err, w.Code, w.Body.String(), tt.code, tt.body)
		}
		logged := len(hook.AllEntries()) > 0
		if logged != (tt.code >= 500) {
			t.Errorf("%v: logged=%v, want only server errors logged", tt.err, logged)
		}
	}
}

// brokenStore fails every call the way a broken disk would.
type brokenStore struct{ store.Store }

var errDisk = errors.New("write /var/lib/dockerfaasd/state.db: input/output error")

func (brokenStore) Get(context.Context, string) (store.Function, error) {
	return store.Function{}, errDisk
}
func (brokenStore) List(context.Context, string) ([]store.Function, error) {
	return nil, errDisk
}
func (brokenStore) Create(context.Context, types.FunctionDeployment, uint64) (store.Function, error) {
	return store.Function{}, errDisk
}
func (brokenStore) Update(context.Context, types.FunctionDeployment, func(uint64) uint64) (store.Function, error) {
	return store.Function{}, errDisk
}
func (brokenStore) ListSecrets(context.Context, string) ([]store.SecretInfo, error) {
	return nil, errDisk
}
func (brokenStore) CreateSecret(context.Context, string, string, []byte) (store.SecretInfo, error) {
	return store.SecretInfo{}, errDisk
}
func (brokenStore) UpdateSecret(context.Context, string, string, []byte) (store.SecretInfo, error) {
	return store.SecretInfo{}, errDisk
}
func (brokenStore) DeleteSecret(context.Context, string, string) error {
	return errDisk
}

// TestStoreFailure: a store failure is a 500 that does not leak internals
// and is logged with the cause.
func TestStoreFailure(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Store = brokenStore{} })
	reqs := []struct{ method, target, body string }{
		{"GET", "/system/functions", ""},
		{"GET", "/system/function/hello", ""},
		{"POST", "/system/functions", helloBody},
		{"PUT", "/system/functions", helloBody},
		{"DELETE", "/system/functions", `{"functionName":"hello"}`},
		{"POST", "/system/scale-function/hello", `{"replicas":1}`},
	}
	for _, r := range reqs {
		f.logs.Reset()
		w := f.do(t, r.method, r.target, r.body)
		if w.Code != 500 || w.Body.String() != "internal error\n" {
			t.Errorf("%s %s: got %d %q, want 500 internal error", r.method, r.target, w.Code, w.Body.String())
		}
		e := f.logs.LastEntry()
		if e == nil || e.Level != logrus.ErrorLevel || !errors.Is(e.Data[logrus.ErrorKey].(error), errDisk) {
			t.Errorf("%s %s: want the cause logged at error level, got %v", r.method, r.target, e)
		}
	}
}

// TestConcurrent drives every handler at once so -race sees shared state.
func TestConcurrent(t *testing.T) {
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		name := fmt.Sprintf("fn%d", i%3)
		body := strings.Replace(helloBody, `"hello"`, `"`+name+`"`, 1)
		wg.Go(func() {
			for j := range 20 {
				r := httptest.NewRequest("PUT", "/system/functions", strings.NewReader(body))
				r.SetBasicAuth(testUser, testPass)
				w := httptest.NewRecorder()
				f.h.ServeHTTP(w, r)
				if w.Code == http.StatusNotFound {
					r = httptest.NewRequest("POST", "/system/functions", strings.NewReader(body))
					r.SetBasicAuth(testUser, testPass)
					f.h.ServeHTTP(httptest.NewRecorder(), r)
				}
				for _, req := range []*http.Request{
					httptest.NewRequest("POST", "/system/scale-function/"+name, strings.NewReader(fmt.Sprintf(`{"replicas":%d}`, j%5))),
					httptest.NewRequest("GET", "/system/functions", nil),
					httptest.NewRequest("GET", "/system/function/"+name, nil),
				} {
					req.SetBasicAuth(testUser, testPass)
					f.h.ServeHTTP(httptest.NewRecorder(), req)
				}
			}
		})
	}
	wg.Wait()
	var list []types.FunctionStatus
	decodeJSON(t, f.do(t, "GET", "/system/functions", ""), &list)
	if len(list) != 3 {
		t.Errorf("%d functions, want 3", len(list))
	}
}
