package store

import (
	"context"
	"errors"
	"time"
)

// ImageUpload is the record of one image reference loaded into the engine
// through POST /system/images: which image it was and when, so that GET
// /system/images can tell uploaded images from pulled or built ones.
type ImageUpload struct {
	// Ref is the reference as the engine reported it loaded ("my-fn:latest").
	Ref string `json:"ref"`
	// ID is the image ID ("sha256:…") and Size its size in bytes, as the
	// engine reported them after the load.
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	UploadedAt time.Time `json:"uploadedAt"`
}

// Images keeps the record of uploaded images, one per reference: a later
// upload of the same reference replaces it. Writes wake no watcher: no
// function changes.
type Images interface {
	// PutImageUploads records the references of one upload, in one write
	// (all or none); an empty Ref is refused and nothing is written.
	PutImageUploads(ctx context.Context, uploads []ImageUpload) error
	// ListImageUploads returns every record, sorted by reference.
	ListImageUploads(ctx context.Context) ([]ImageUpload, error)
}

// imageRecords is the images bucket: one ImageUpload per reference.
var imageRecords = &bucket[ImageUpload]{
	name: []byte("images"),
	kind: "image",
	key:  func(u ImageUpload) string { return u.Ref },
}

// PutImageUploads implements Images.
func (e *engine) PutImageUploads(ctx context.Context, uploads []ImageUpload) error {
	about := subject{what: "record image uploads", bare: true}
	for _, u := range uploads {
		if u.Ref == "" {
			return about.wrap(errors.New("an image upload without a reference"))
		}
	}
	_, err := write(ctx, e, about, func(tx *txn) (struct{}, error) {
		for _, u := range uploads {
			u.UploadedAt = u.UploadedAt.UTC()
			if _, err := imageRecords.save(tx, u.Ref, u); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}

// ListImageUploads implements Images.
func (e *engine) ListImageUploads(ctx context.Context) ([]ImageUpload, error) {
	return listIn(ctx, e, subject{what: "list image uploads", bare: true}, imageRecords, nil)
}
