package store_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestBoltNamespacesPersist: namespaces survive a restart, and so does the
// refusal to delete one that holds a function.
func TestBoltNamespacesPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	dev := types.FunctionNamespace{Name: "dev", Labels: map[string]string{"openfaas": "1"}, Annotations: map[string]string{"a": "b"}}

	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateNamespace(t.Context(), dev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), types.FunctionDeployment{Service: "fn", Namespace: "dev", Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	got, err := s.GetNamespace(t.Context(), "dev")
	if err != nil {
		t.Fatalf("GetNamespace after reopen: %v", err)
	}
	if got.Annotations["a"] != "b" || got.Labels["openfaas"] != "1" {
		t.Errorf("dev after reopen = %+v", got)
	}
	if err := s.DeleteNamespace(t.Context(), "dev"); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("DeleteNamespace after reopen = %v, want ErrNotEmpty", err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

// TestBoltOpensFileWithoutNamespaces: a state file written before
// namespaces existed (schema 1, no namespaces bucket) opens, keeps its
// functions and gains the bucket.
func TestBoltOpensFileWithoutNamespaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), types.FunctionDeployment{Service: "fn", Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("namespaces")) }); err != nil {
		t.Fatalf("removing the namespaces bucket: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	if _, err := s.Get(t.Context(), store.Key(store.DefaultNamespace, "fn")); err != nil {
		t.Fatalf("function after reopen: %v", err)
	}
	list, err := s.ListNamespaces(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != store.DefaultNamespace {
		t.Fatalf("ListNamespaces = %+v, %v; want only the default", list, err)
	}
	if _, err := s.CreateNamespace(t.Context(), types.FunctionNamespace{Name: "dev"}); err != nil {
		t.Errorf("CreateNamespace: %v", err)
	}
}
