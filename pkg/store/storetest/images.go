package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// imageTests run against empty stores: an upload record needs no function.
var imageTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"ImageUploadsPutList", testImageUploadsPutList},
	{"ImageUploadsReplace", testImageUploadsReplace},
	{"ImageUploadsInvalid", testImageUploadsInvalid},
	{"ImageUploadsCancelledContext", testImageUploadsCancelledContext},
	{"ImageUploadsWakeNoOne", testImageUploadsWakeNoOne},
}

func mustListImageUploads(t *testing.T, s store.Store) []store.ImageUpload {
	t.Helper()
	list, err := s.ListImageUploads(t.Context())
	if err != nil {
		t.Fatalf("ListImageUploads: %v", err)
	}
	return list
}

// testImageUploadsPutList: the records of one upload come back sorted by
// reference, with the upload time in UTC; an empty store lists none (an
// empty list, not nil).
func testImageUploadsPutList(t *testing.T, open opener) {
	s := open(t)
	if list := mustListImageUploads(t, s); list == nil || len(list) != 0 {
		t.Fatalf("empty store lists %#v, want an empty list", list)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	in := []store.ImageUpload{
		{Ref: "zeta:1", ID: "sha256:z", Size: 30, UploadedAt: at},
		{Ref: "alpha:1", ID: "sha256:a", Size: 10, UploadedAt: at},
		{Ref: "alpha:2", ID: "sha256:a", Size: 10, UploadedAt: at},
	}
	if err := s.PutImageUploads(t.Context(), in); err != nil {
		t.Fatalf("PutImageUploads: %v", err)
	}
	want := []store.ImageUpload{
		{Ref: "alpha:1", ID: "sha256:a", Size: 10, UploadedAt: at.UTC()},
		{Ref: "alpha:2", ID: "sha256:a", Size: 10, UploadedAt: at.UTC()},
		{Ref: "zeta:1", ID: "sha256:z", Size: 30, UploadedAt: at.UTC()},
	}
	if got := mustListImageUploads(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("ListImageUploads =\n %+v\nwant\n %+v", got, want)
	}
	if err := s.PutImageUploads(t.Context(), nil); err != nil {
		t.Errorf("PutImageUploads(nil) = %v, want nil", err)
	}
}

// testImageUploadsReplace: a later upload of a reference replaces its
// record; the others stay.
func testImageUploadsReplace(t *testing.T, open opener) {
	s := open(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	if err := s.PutImageUploads(t.Context(), []store.ImageUpload{
		{Ref: "fn:1", ID: "sha256:old", Size: 1, UploadedAt: t0},
		{Ref: "other:1", ID: "sha256:o", Size: 2, UploadedAt: t0},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutImageUploads(t.Context(), []store.ImageUpload{{Ref: "fn:1", ID: "sha256:new", Size: 3, UploadedAt: t0.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	want := []store.ImageUpload{
		{Ref: "fn:1", ID: "sha256:new", Size: 3, UploadedAt: t0.Add(time.Minute)},
		{Ref: "other:1", ID: "sha256:o", Size: 2, UploadedAt: t0},
	}
	if got := mustListImageUploads(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("after the replace =\n %+v\nwant\n %+v", got, want)
	}
}

// testImageUploadsInvalid: a record without a reference is refused, and
// none of its upload is written.
func testImageUploadsInvalid(t *testing.T, open opener) {
	s := open(t)
	err := s.PutImageUploads(t.Context(), []store.ImageUpload{{Ref: "ok:1", ID: "sha256:a"}, {ID: "sha256:b"}})
	if err == nil {
		t.Fatal("an upload without a reference was accepted")
	}
	if list := mustListImageUploads(t, s); len(list) != 0 {
		t.Errorf("a refused upload stored %+v", list)
	}
}

func testImageUploadsCancelledContext(t *testing.T, open opener) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutImageUploads(ctx, []store.ImageUpload{{Ref: "a:1", ID: "sha256:a"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutImageUploads = %v, want context.Canceled", err)
	}
	if _, err := s.ListImageUploads(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListImageUploads = %v, want context.Canceled", err)
	}
	if list := mustListImageUploads(t, s); len(list) != 0 {
		t.Errorf("a cancelled put stored %+v", list)
	}
}

// testImageUploadsWakeNoOne: recording an upload changes no function, so
// it must not make the controller look at anything.
func testImageUploadsWakeNoOne(t *testing.T, open opener) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := s.Watch(ctx)
	if err := s.PutImageUploads(t.Context(), []store.ImageUpload{{Ref: "a:1", ID: "sha256:a"}}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	if key, err := w.Next(wctx); err == nil {
		t.Errorf("an image upload woke a watcher with %q", key)
	}
}
