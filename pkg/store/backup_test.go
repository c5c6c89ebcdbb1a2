package store_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// populated opens a state file in a new directory with two functions and
// a secret.
func populated(t *testing.T) (dir string, s *store.Bolt) {
	t.Helper()
	dir = t.TempDir()
	s, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, name := range []string{"fn-a", "fn-b"} {
		if _, err := s.Create(ctx, types.FunctionDeployment{Service: name, Image: "img"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSecret(ctx, store.DefaultNamespace, "token", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	return dir, s
}

// checkRestored opens the state in dir and checks populated's content.
func checkRestored(t *testing.T, dir string) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatalf("open restored state: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Errorf("restored state fails Check: %v", err)
	}
	fns, err := s.List(t.Context(), "")
	// populated's two, and whichever of TestBackupRestoreRoundTrip's busy
	// writers committed before the backup began.
	own := 0
	for _, fn := range fns {
		if !strings.HasPrefix(fn.Spec.Service, "busy-") {
			own++
		}
	}
	if err != nil || own != 2 {
		t.Errorf("restored functions = %d (%v), want 2", own, err)
	}
	sec, err := s.GetSecret(t.Context(), store.DefaultNamespace, "token")
	if err != nil || string(sec.Value) != "s3cret" {
		t.Errorf("restored secret = %q (%v), want the value stored", sec.Value, err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	dir, s := populated(t)
	// Writers go on during the backup: it must still be consistent.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = s.Create(t.Context(), types.FunctionDeployment{Service: fmt.Sprintf("busy-%d", i), Image: "img"}, 1)
		}
	}()
	var archive bytes.Buffer
	m, err := s.WriteBackup(t.Context(), &archive, "v-test")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("WriteBackup: %v", err)
	}
	if m.Schema != 1 || m.Version != "v-test" || !m.SecretsKey || m.StateBytes == 0 {
		t.Errorf("manifest = %+v", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Into an empty directory.
	fresh := t.TempDir()
	if _, err := store.Restore(t.Context(), bytes.NewReader(archive.Bytes()), filepath.Join(fresh, "state.db"), filepath.Join(fresh, store.SecretKeyFile), time.Now()); err != nil {
		t.Fatalf("Restore into an empty dir: %v", err)
	}
	s2, err := store.Open(filepath.Join(fresh, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Check(); err != nil {
		t.Errorf("restored state fails Check: %v", err)
	}
	if sec, err := s2.GetSecret(t.Context(), store.DefaultNamespace, "token"); err != nil || string(sec.Value) != "s3cret" {
		t.Errorf("restored secret = %q (%v)", sec.Value, err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	// Over a changed state with another key: the old files are kept.
	if err := os.Remove(filepath.Join(dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, store.SecretKeyFile)); err != nil {
		t.Fatal(err)
	}
	other, err := store.Open(filepath.Join(dir, "state.db")) // new empty state, new key
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := store.Restore(t.Context(), bytes.NewReader(archive.Bytes()), filepath.Join(dir, "state.db"), filepath.Join(dir, store.SecretKeyFile), now)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for _, kept := range []string{res.StateBackup, res.KeyBackup} {
		if !strings.HasSuffix(kept, ".bak-20260102T030405Z") {
			t.Errorf("kept %q, want a .bak-<time> file", kept)
		} else if _, err := os.Stat(kept); err != nil {
			t.Error(err)
		}
	}
	checkRestored(t, dir)
	// No temporary files left behind.
	left, _ := filepath.Glob(filepath.Join(dir, ".*restore*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// rewrite returns archive with its state file changed by fn.
func rewrite(t *testing.T, archive []byte, fn func(tx *bolt.Tx) error) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "state.db" {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, body, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(fn); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if body, err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRestoreRefuses(t *testing.T) {
	_, s := populated(t)
	var archive bytes.Buffer
	if _, err := s.WriteBackup(t.Context(), &archive, "v-test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"newer schema", rewrite(t, archive.Bytes(), func(tx *bolt.Tx) error {
			return tx.Bucket(store.MetaBucket).Put(store.SchemaKey, []byte("7"))
		}), "state file schema 7 is newer than this dockerfaasd"},
		{"bad record", rewrite(t, archive.Bytes(), func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("functions")).Put([]byte("openfaas-fn/fn-a"), []byte("{not json"))
		}), "fails its check"},
		{"not an archive", []byte("hello"), "not a dockerfaasd backup"},
		{"truncated archive", archive.Bytes()[:archive.Len()/2], ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, live := populated(t)
			if err := live.Close(); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, "state.db"))
			_, err := store.Restore(t.Context(), bytes.NewReader(tc.archive), filepath.Join(dir, "state.db"), filepath.Join(dir, store.SecretKeyFile), time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want an error saying %q", err, tc.want)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "state.db"))
			if !bytes.Equal(before, after) {
				t.Error("a refused Restore changed the state file")
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), "restore") || strings.Contains(e.Name(), ".bak-") {
					t.Errorf("a refused Restore left %s", e.Name())
				}
			}
		})
	}

	t.Run("locked", func(t *testing.T) {
		dir, live := populated(t)
		defer live.Close()
		_, err := store.Restore(t.Context(), bytes.NewReader(archive.Bytes()), filepath.Join(dir, "state.db"), filepath.Join(dir, store.SecretKeyFile), time.Now())
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("Restore under a running store = %v, want ErrLocked", err)
		}
	})
}

func TestBackupFile(t *testing.T) {
	dir, s := populated(t)
	path, key := filepath.Join(dir, "state.db"), filepath.Join(dir, store.SecretKeyFile)
	start := time.Now()
	if _, err := store.BackupFile(t.Context(), path, key, io.Discard, "v"); !errors.Is(err, store.ErrLocked) {
		t.Errorf("BackupFile of a file in use = %v, want ErrLocked", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("BackupFile took %s to see the lock", time.Since(start))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	var archive bytes.Buffer
	if _, err := store.BackupFile(t.Context(), path, key, &archive, "v"); err != nil {
		t.Fatalf("BackupFile: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("BackupFile changed the state file")
	}
	fresh := t.TempDir()
	if _, err := store.Restore(t.Context(), &archive, filepath.Join(fresh, "state.db"), filepath.Join(fresh, store.SecretKeyFile), time.Now()); err != nil {
		t.Fatal(err)
	}
	checkRestored(t, fresh)
}
