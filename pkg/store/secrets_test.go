package store_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func TestSecretsKeyFileCreatedPrivateAndReused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	withSecret(t, path)
	keyFile := filepath.Join(dir, store.SecretKeyFile)
	if store.DefaultKeyFile(path) != keyFile {
		t.Errorf("DefaultKeyFile = %s, want %s", store.DefaultKeyFile(path), keyFile)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o600 || st.Size() != store.SecretKeySize {
		t.Errorf("key file: mode %v size %d, want -rw------- and %d bytes", st.Mode(), st.Size(), store.SecretKeySize)
	}
	before, _ := os.ReadFile(keyFile)
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}

	s := openBolt(t, path)
	sec, err := s.GetSecret(t.Context(), "", "sec")
	if err != nil || string(sec.Value) != "value" {
		t.Fatalf("GetSecret after reopen: %v (value matches: %v)", err, string(sec.Value) == "value")
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Error("reopening replaced the key file")
	}
}

func TestOpenWithKeyFile(t *testing.T) {
	dbDir, keyDir := t.TempDir(), filepath.Join(t.TempDir(), "keys")
	path, keyFile := filepath.Join(dbDir, "state.db"), filepath.Join(keyDir, "k")
	s, err := store.OpenWithKeyFile(path, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(keyFile); err != nil {
		t.Errorf("key file not created at the given path: %v", err)
	}
	if st, err := os.Stat(keyDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, %v; want mode 0700", st.Mode(), err)
	}
	if _, err := os.Stat(store.DefaultKeyFile(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was also created next to the state file: %v", err)
	}
}

// TestSecretsKeyRefused: a key file that cannot be the right key stops Open
// with a message naming the file, and is never replaced.
func TestSecretsKeyRefused(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, path, keyFile string)
		want  string
	}{
		{"WrongSize", func(t *testing.T, _, keyFile string) {
			writeKey(t, keyFile, make([]byte, 16))
		}, "holds 16 bytes, want 32"},
		{"Empty", func(t *testing.T, _, keyFile string) {
			writeKey(t, keyFile, nil)
		}, "holds 0 bytes, want 32"},
		{"Unreadable", func(t *testing.T, _, keyFile string) {
			// A directory cannot be read as a file, even by root.
			if err := os.Mkdir(keyFile, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "cannot be read"},
		{"Replaced", func(t *testing.T, path, keyFile string) {
			withSecret(t, path)
			key := make([]byte, store.SecretKeySize)
			_, _ = rand.Read(key)
			writeKey(t, keyFile, key)
		}, "did not encrypt the stored secrets"},
		{"Lost", func(t *testing.T, path, keyFile string) {
			withSecret(t, path)
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
		}, "is missing, but the state file holds 1 secret(s)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path, keyFile := filepath.Join(dir, "state.db"), filepath.Join(dir, store.SecretKeyFile)
			c.setup(t, path, keyFile)
			before, _ := os.ReadFile(keyFile)
			s, err := store.Open(path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), keyFile) {
				t.Errorf("Open = %q, want it to contain %q and the key file's path", err, c.want)
			}
			after, _ := os.ReadFile(keyFile)
			if !bytes.Equal(before, after) {
				t.Error("Open changed the key file")
			}
			if c.name == "Lost" {
				if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused new key was left behind: %v", err)
				}
			}
		})
	}
}

func writeKey(t *testing.T, path string, key []byte) {
	t.Helper()
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// withSecret stores one secret in the state file at path and closes it.
func withSecret(t *testing.T, path string) {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSecret(t.Context(), "", "sec", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsKeyCreatedOnce: processes racing to create the key all end up
// with the same one, and exactly one of them created it.
func TestSecretsKeyCreatedOnce(t *testing.T) {
	const racers = 16
	path := filepath.Join(t.TempDir(), "sub", store.SecretKeyFile)
	keys := make([][]byte, racers)
	created := make([]bool, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], created[i], errs[i] = store.LoadOrCreateKey(path)
		}()
	}
	wg.Wait()
	n := 0
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("racer %d got another key", i)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d racers say they created the key, want 1", n)
	}
}

// TestSecretsNotInPlaintext: the state file holds no secret value, in any
// encoding a careless implementation might use, before or after an update.
func TestSecretsNotInPlaintext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	first := []byte("first-plaintext-value-4f1c9e2a")
	second := []byte("second-plaintext-value-8b7d3a61")
	if _, err := s.CreateSecret(t.Context(), "", "sec", first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSecret(t.Context(), "", "sec", second); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("openfaas-fn/sec")) {
		t.Fatal("the state file does not even hold the secret's key; is this the right file?")
	}
	for _, v := range [][]byte{first, second} {
		for enc, b := range map[string][]byte{
			"raw":    v,
			"base64": []byte(base64.StdEncoding.EncodeToString(v)),
			"hex":    []byte(strings.ToLower(string(bytesToHex(v)))),
		} {
			if bytes.Contains(data, b) {
				t.Errorf("the state file contains a value (%s)", enc)
			}
		}
	}
}

func bytesToHex(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// TestSecretsBoundToKey: a ciphertext copied onto another secret's record
// (someone editing the file) does not open as that secret.
func TestSecretsBoundToKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"a": "value-a", "b": "value-b"} {
		if _, err := s.CreateSecret(t.Context(), "", name, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(store.SecretsBucket)
		a := b.Get([]byte("openfaas-fn/a"))
		// Keep b's name and metadata, take a's sealed value.
		moved := bytes.Replace(a, []byte(`"name":"a"`), []byte(`"name":"b"`), 1)
		if bytes.Equal(moved, a) {
			return errors.New("record layout changed; update the test")
		}
		return b.Put([]byte("openfaas-fn/b"), moved)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path)
	if sec, err := s.GetSecret(t.Context(), "", "b"); err == nil {
		t.Fatalf("GetSecret(b) with a's ciphertext succeeded (value is a's: %v)", string(sec.Value) == "value-a")
	} else if !strings.Contains(err.Error(), "decrypt") {
		t.Errorf("GetSecret(b) = %v, want a decrypt error", err)
	}
	if sec, err := s.GetSecret(t.Context(), "", "a"); err != nil || string(sec.Value) != "value-a" {
		t.Errorf("GetSecret(a) = %v; want the untouched value", err)
	}
}
