package store_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestAddressBoltReopenKeepsAllocations: an allocation survives a restart,
// so a function keeps its address, and the next one gets the next address.
func TestAddressBoltReopenKeepsAllocations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	p := netip.MustParsePrefix("127.77.0.0/29")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := s.Create(ctx, types.FunctionDeployment{Service: n, Image: "img"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.AllocateAddress(ctx, store.Key(store.DefaultNamespace, "a"), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBolt(t, path)
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	again, err := s.AllocateAddress(ctx, store.Key(store.DefaultNamespace, "a"), p)
	if err != nil || again != a {
		t.Errorf("after a restart a has %s %v, want %s", again, err, a)
	}
	b, err := s.AllocateAddress(ctx, store.Key(store.DefaultNamespace, "b"), p)
	if err != nil || b.String() != "127.77.0.2" {
		t.Errorf("b = %s %v, want 127.77.0.2", b, err)
	}
}

// TestAddressBoltCheck: Check names an allocation filed under another
// function's key.
func TestAddressBoltCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("addresses")).Put([]byte("openfaas-fn/a"), []byte(`{"key":"openfaas-fn/b","address":"127.77.0.1"}`))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path)
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), `record is for "openfaas-fn/b"`) {
		t.Errorf("Check = %v, want the misfiled allocation named", err)
	}
}
