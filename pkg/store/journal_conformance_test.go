package store_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/dockerfaasd/dockerfaasd/pkg/store/storetest"
)

// TestJournaledConformance runs the conformance suite on journaled stores
// (snapshotting often, so that replays mix a snapshot and entries), and
// after each test rebuilds the state from the journal on another state
// file and compares it, byte for byte, with the store's.
func TestJournaledConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		dir := t.TempDir()
		keyFile := filepath.Join(dir, store.SecretKeyFile)
		j := store.NewFakeJournal()
		s, err := store.OpenJournaled(context.Background(), filepath.Join(dir, "state.db"), keyFile, j, store.SnapshotAfter(7))
		if err != nil {
			t.Fatalf("OpenJournaled: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		// Registered after Close, so it runs before it (cleanups run last
		// first): every write of the test is done, s is still open.
		t.Cleanup(func() {
			r, err := store.OpenJournaled(context.Background(), filepath.Join(dir, "replayed", "state.db"), keyFile, j)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			defer r.Close()
			got, err := store.StateOps(r)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.StateOps(s)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("replayed state differs from the store's: %d ops, want %d", len(got), len(want))
			}
		})
		return s
	})
}
