package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fullStore fails every write as a full disk makes the store fail it.
type fullStore struct{ *store.Memory }

var errFull = fmt.Errorf("function %q: write: %w: %w", "openfaas-fn/x", store.ErrNotStored,
	&os.PathError{Op: "write", Path: "/var/lib/dockerfaasd/state.db", Err: syscall.ENOSPC})

func (fullStore) Create(context.Context, types.FunctionDeployment, uint64) (store.Function, error) {
	return store.Function{}, errFull
}
func (fullStore) Update(context.Context, types.FunctionDeployment, func(uint64) uint64) (store.Function, error) {
	return store.Function{}, errFull
}
func (fullStore) ScaleBy(context.Context, string, uint64, string) (store.Function, error) {
	return store.Function{}, errFull
}
func (fullStore) Scale(context.Context, string, uint64) (store.Function, error) {
	return store.Function{}, errFull
}
func (fullStore) Delete(context.Context, string) error { return errFull }
func (fullStore) CreateSecret(context.Context, string, string, []byte) (store.SecretInfo, error) {
	return store.SecretInfo{}, errFull
}

// TestWriteOnFullDisk: a write the state file could not keep answers 507
// with a message that says nothing was changed, and no file path.
func TestWriteOnFullDisk(t *testing.T) {
	mem := store.NewMemory()
	if _, err := mem.CreateSecret(t.Context(), "", "api-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Create(t.Context(), types.FunctionDeployment{Service: "hello", Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Store = fullStore{mem} })
	reqs := []struct{ method, target, body string }{
		{"POST", "/system/functions", strings.Replace(helloBody, `"hello"`, `"other"`, 1)},
		{"PUT", "/system/functions", helloBody},
		{"DELETE", "/system/functions", `{"functionName":"hello"}`},
		{"POST", "/system/scale-function/hello", `{"replicas":2}`},
		{"POST", "/system/secrets", `{"name":"new","value":"x"}`},
	}
	for _, r := range reqs {
		w := f.do(t, r.method, r.target, r.body)
		body := w.Body.String()
		if w.Code != http.StatusInsufficientStorage || !strings.Contains(body, "disk holding the state file is full") || strings.Contains(body, "/var/lib") {
			t.Errorf("%s %s: got %d %q, want 507 saying the disk is full", r.method, r.target, w.Code, body)
		}
	}
	// Reads still work.
	if w := f.do(t, "GET", "/system/functions", ""); w.Code != http.StatusOK {
		t.Errorf("list on a full disk: %d", w.Code)
	}
}

func TestBackupRoute(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateSecret(t.Context(), "", "api-key", []byte("do-not-log-me")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Backup = s })
	if w := f.send(t, "GET", "/system/backup", "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("backup without credentials: %d, want 401", w.Code)
	}
	w := f.do(t, "GET", "/system/backup", "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/gzip" {
		t.Fatalf("backup: %d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	gz, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "manifest.json,state.db,secrets.key" {
		t.Errorf("archive holds %s", got)
	}
	for _, e := range f.logs.AllEntries() {
		if s, _ := e.String(); strings.Contains(s, "do-not-log-me") {
			t.Errorf("a secret value was logged: %s", s)
		}
	}
	// Without a Backup the route is absent.
	if w := newFixture(t, nil).do(t, "GET", "/system/backup", ""); w.Code != http.StatusNotFound {
		t.Errorf("backup with no BackupWriter: %d, want 404", w.Code)
	}
}
