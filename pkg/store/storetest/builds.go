package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// buildTests run against empty stores: a build record needs no function.
var buildTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"BuildsPutGetList", testBuildsPutGetList},
	{"BuildsReplace", testBuildsReplace},
	{"BuildsRetention", testBuildsRetention},
	{"BuildsInvalid", testBuildsInvalid},
	{"BuildsWakeNoOne", testBuildsWakeNoOne},
}

// testBuildsPutGetList: records come back as put (times in UTC), listed
// newest first and bounded by the limit; an unknown ID is ErrNotFound.
func testBuildsPutGetList(t *testing.T, open opener) {
	s := open(t)
	if list, err := s.ListBuilds(t.Context(), 0); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("empty store: ListBuilds = %#v, %v; want an empty list", list, err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	var want []store.Build
	for i := range 3 {
		b := store.Build{
			ID:        store.NewBuildID(at.Add(time.Duration(i) * time.Second)),
			Image:     fmt.Sprintf("fn:%d", i),
			Status:    store.BuildSuccess,
			StartedAt: at.Add(time.Duration(i) * time.Second),
			Log:       []string{"Step 1/2 : FROM scratch", "done"},
			Test:      &store.BuildTestResult{Passed: true, Status: 200, Body: "ok"},
		}
		if err := s.PutBuild(t.Context(), b, 0); err != nil {
			t.Fatalf("PutBuild: %v", err)
		}
		b.StartedAt = b.StartedAt.UTC()
		want = append([]store.Build{b}, want...)
	}
	got, err := s.ListBuilds(t.Context(), 0)
	if err != nil {
		t.Fatalf("ListBuilds: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListBuilds =\n %+v\nwant\n %+v", got, want)
	}
	if got, _ := s.ListBuilds(t.Context(), 2); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("ListBuilds(2) =\n %+v\nwant\n %+v", got, want[:2])
	}
	one, err := s.GetBuild(t.Context(), want[1].ID)
	if err != nil || !reflect.DeepEqual(one, want[1]) {
		t.Errorf("GetBuild = %+v, %v; want %+v", one, err, want[1])
	}
	if _, err := s.GetBuild(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetBuild(unknown) = %v, want ErrNotFound", err)
	}
}

// testBuildsReplace: a second put of an ID replaces its record (an
// in-progress record finished).
func testBuildsReplace(t *testing.T, open opener) {
	s := open(t)
	b := store.Build{ID: store.NewBuildID(time.Now()), Image: "fn:1", Status: store.BuildInProgress, StartedAt: time.Now()}
	if err := s.PutBuild(t.Context(), b, 0); err != nil {
		t.Fatalf("PutBuild: %v", err)
	}
	b.Status, b.Error, b.FinishedAt, b.Duration = store.BuildFailed, "boom", time.Now(), 1.5
	if err := s.PutBuild(t.Context(), b, 0); err != nil {
		t.Fatalf("PutBuild: %v", err)
	}
	got, err := s.GetBuild(t.Context(), b.ID)
	if err != nil || got.Status != store.BuildFailed || got.Error != "boom" || got.Duration != 1.5 || got.FinishedAt.IsZero() {
		t.Errorf("GetBuild = %+v, %v; want the failed record", got, err)
	}
	if list, _ := s.ListBuilds(t.Context(), 0); len(list) != 1 {
		t.Errorf("ListBuilds has %d records, want 1", len(list))
	}
}

// testBuildsRetention: only the newest keep records stay.
func testBuildsRetention(t *testing.T, open opener) {
	s := open(t)
	at := time.Now()
	var ids []string
	for i := range 5 {
		id := store.NewBuildID(at.Add(time.Duration(i) * time.Millisecond))
		ids = append(ids, id)
		if err := s.PutBuild(t.Context(), store.Build{ID: id, Image: "fn", StartedAt: at}, 3); err != nil {
			t.Fatalf("PutBuild: %v", err)
		}
	}
	list, err := s.ListBuilds(t.Context(), 0)
	if err != nil {
		t.Fatalf("ListBuilds: %v", err)
	}
	var got []string
	for _, b := range list {
		got = append(got, b.ID)
	}
	if want := []string{ids[4], ids[3], ids[2]}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if _, err := s.GetBuild(t.Context(), ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetBuild(dropped) = %v, want ErrNotFound", err)
	}
}

// testBuildsInvalid: an empty ID is refused; a cancelled context writes
// nothing.
func testBuildsInvalid(t *testing.T, open opener) {
	s := open(t)
	if err := s.PutBuild(t.Context(), store.Build{Image: "fn"}, 0); err == nil {
		t.Error("PutBuild without an ID succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutBuild(ctx, store.Build{ID: "x", Image: "fn"}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("PutBuild(cancelled) = %v, want context.Canceled", err)
	}
	if list, _ := s.ListBuilds(t.Context(), 0); len(list) != 0 {
		t.Errorf("ListBuilds = %+v, want none", list)
	}
}

// testBuildsWakeNoOne: a build record is no change of desired state.
func testBuildsWakeNoOne(t *testing.T, open opener) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := s.Watch(ctx)
	if err := s.PutBuild(t.Context(), store.Build{ID: "x", Image: "fn"}, 0); err != nil {
		t.Fatalf("PutBuild: %v", err)
	}
	next, stop := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer stop()
	if keys, err := w.Next(next); err == nil {
		t.Errorf("a build record woke a watcher with %q", keys)
	}
}
