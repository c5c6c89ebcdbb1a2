package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// PutBuild without a retention (BUILD_RETENTION unset) keeps the newest
// DefaultBuildRetention records and drops the older ones.
func TestPutBuildDefaultRetention(t *testing.T) {
	s := store.NewMemory()
	t.Cleanup(func() { _ = s.Close() })
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	extra := 3
	var ids []string
	for i := range store.DefaultBuildRetention + extra {
		id := store.NewBuildID(at.Add(time.Duration(i) * time.Second))
		ids = append(ids, id)
		if err := s.PutBuild(t.Context(), store.Build{ID: id, Image: "fn", StartedAt: at}, 0); err != nil {
			t.Fatalf("PutBuild %d: %v", i, err)
		}
	}
	list, err := s.ListBuilds(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != store.DefaultBuildRetention || list[0].ID != ids[len(ids)-1] || list[len(list)-1].ID != ids[extra] {
		t.Fatalf("kept %d records (newest %v), want the newest %d", len(list), list[0].ID, store.DefaultBuildRetention)
	}
	for _, id := range ids[:extra] {
		if _, err := s.GetBuild(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBuild(%s) = %v, want ErrNotFound (dropped)", id, err)
		}
	}
}
