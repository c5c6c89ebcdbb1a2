package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func TestBackupRestoreCLI(t *testing.T) {
	src := t.TempDir()
	s, err := store.Open(filepath.Join(src, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), types.FunctionDeployment{Service: "fn", Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSecret(t.Context(), "", "tok", []byte("v4lue")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	noEnv := func(string) string { return "" }
	// Held by an open store: refused, nothing written.
	var out, errOut bytes.Buffer
	if code := backupMain(t.Context(), []string{"--state-dir", src, archive}, noEnv, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "locked") {
		t.Errorf("backup of a held file: exit %d, %q", code, errOut.String())
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		t.Errorf("a failed backup left %s: %v", archive, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := backupMain(t.Context(), []string{"--state-dir", src, archive}, noEnv, nil, &out, &errOut); code != 0 {
		t.Fatalf("backup: exit %d, %s", code, errOut.String())
	}

	dst := t.TempDir()
	env := func(k string) string { return map[string]string{"STATE_DIR": dst}[k] }
	out.Reset()
	if code := restoreMain(t.Context(), []string{archive}, env, nil, &out, &errOut); code != 0 {
		t.Fatalf("restore: exit %d, %s", code, errOut.String())
	}
	r, err := store.Open(filepath.Join(dst, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if sec, err := r.GetSecret(t.Context(), "", "tok"); err != nil || string(sec.Value) != "v4lue" {
		t.Errorf("restored secret: %q %v", sec.Value, err)
	}

	tests := []struct {
		name string
		code int
		want string
		main func() int
	}{
		{"backup without FILE", 2, "want exactly one FILE", func() int {
			return backupMain(t.Context(), nil, noEnv, nil, &out, &errOut)
		}},
		{"restore without FILE", 2, "want exactly one FILE", func() int {
			return restoreMain(t.Context(), nil, env, nil, &out, &errOut)
		}},
		{"restore with a journal", 1, "STATE_JOURNAL=swarm", func() int {
			return restoreMain(t.Context(), []string{archive}, func(k string) string {
				return map[string]string{"STATE_DIR": dst, "STATE_JOURNAL": "swarm"}[k]
			}, nil, &out, &errOut)
		}},
		{"restore under a running store", 1, "locked by a running dockerfaasd", func() int {
			return restoreMain(t.Context(), []string{archive}, env, nil, &out, &errOut)
		}},
	}
	for _, tc := range tests {
		errOut.Reset()
		if code := tc.main(); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d %q, want %d saying %q", tc.name, code, errOut.String(), tc.code, tc.want)
		}
	}
}
