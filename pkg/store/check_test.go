package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestBoltCheck plants records the daemon could not read and checks that
// Open or Check names each of them, and that a healthy file passes.
func TestBoltCheck(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		bucket string
		key    string
		value  string
		want   string // in the error; "" means the file is healthy
	}{
		{name: "healthy"},
		{"function not JSON", "functions", "openfaas-fn/broken", "{", `function "openfaas-fn/broken": decode`},
		{"function under another key", "functions", "openfaas-fn/alias", `{"spec":{"service":"other"},"namespace":"openfaas-fn"}`, `record is for "openfaas-fn/other"`},
		{"secret not JSON", "secrets", "openfaas-fn/s", "[]", `secret "openfaas-fn/s": decode`},
		{"secret that does not decrypt", "secrets", "openfaas-fn/good", "tampered", `secret "openfaas-fn/good": decrypt`},
		{"namespace not JSON", "namespaces", "dev", "x", `namespace "dev": decode`},
		{"namespace under another name", "namespaces", "dev", `{"name":"prod"}`, `record is for "prod"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateSecret(ctx, "", "good", []byte("v")); err != nil {
				t.Fatal(err)
			}
			labels := map[string]string{}
			if _, err := s.Create(ctx, types.FunctionDeployment{Service: "good", Image: "img", Labels: &labels}, 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if c.bucket != "" {
				db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				err = db.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket([]byte(c.bucket))
					v := []byte(c.value)
					if c.value == "tampered" {
						// The stored record with its ciphertext changed:
						// the right key, but nothing it sealed.
						var rec map[string]any
						if err := json.Unmarshal(b.Get([]byte(c.key)), &rec); err != nil {
							return err
						}
						rec["sealed"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
						if v, err = json.Marshal(rec); err != nil {
							return err
						}
					}
					return b.Put([]byte(c.key), v)
				})
				if cerr := db.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// Open itself reads the secrets to check the key: a damaged
			// secret may already fail there, which is as good.
			s, err = store.Open(path)
			if err == nil {
				err = s.Check()
				if cerr := s.Close(); cerr != nil {
					t.Errorf("Close: %v", cerr)
				}
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check of a healthy file: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
