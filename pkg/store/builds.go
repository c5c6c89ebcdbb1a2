package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Build statuses, as the OpenFaaS builder API spells them.
const (
	BuildInProgress = "in_progress"
	BuildSuccess    = "success"
	BuildFailed     = "failed"
)

// DefaultBuildRetention is how many build records are kept when PutBuild
// is given no retention: the oldest beyond it are dropped.
const DefaultBuildRetention = 200

// Build is the record of one image build (POST /build): what was built,
// how it ended, its (bounded) log and the result of its test.
type Build struct {
	// ID sorts by start time (NewBuildID), so the newest build is last.
	ID    string `json:"id"`
	Image string `json:"image"`
	// Lang is the server-side template the context was assembled from
	// ("" when the request sent a complete context).
	Lang string `json:"lang,omitempty"`
	// Status is BuildInProgress, BuildSuccess or BuildFailed.
	Status     string    `json:"status"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Duration is in seconds, like the builder API's result.
	Duration float64 `json:"duration"`
	Error    string  `json:"error,omitempty"`
	// Log holds the last lines of the build's log (the builder bounds it).
	Log []string `json:"log"`
	// Test is the result of the test run before it served; nil when the
	// build defined none (or never got to it).
	Test *BuildTestResult `json:"test,omitempty"`
	// Deployed is the function key the image was deployed to on success.
	Deployed string `json:"deployed,omitempty"`
}

// BuildTestResult is how the test of a build went.
type BuildTestResult struct {
	Passed bool `json:"passed"`
	// Status is the HTTP status the image answered (0: no answer).
	Status int `json:"status,omitempty"`
	// Body is the start of the answer's body.
	Body  string `json:"body,omitempty"`
	Error string `json:"error,omitempty"`
}

// Builds keeps the records of image builds. Writes wake no watcher: a
// build changes no desired state by itself.
type Builds interface {
	// PutBuild creates or replaces the record under b.ID (an empty ID is
	// refused) and drops the oldest records beyond keep (0 or less:
	// DefaultBuildRetention), in the same write.
	PutBuild(ctx context.Context, b Build, keep int) error
	// GetBuild returns the record under id or an error wrapping ErrNotFound.
	GetBuild(ctx context.Context, id string) (Build, error)
	// ListBuilds returns up to limit records (all for 0 or less), newest
	// first.
	ListBuilds(ctx context.Context, limit int) ([]Build, error)
}

// buildRecords is the builds bucket: one Build per ID, in ID order, which
// is start order.
var buildRecords = &bucket[Build]{
	name: []byte("builds"),
	kind: "build",
	key:  func(b Build) string { return b.ID },
}

// NewBuildID returns an ID for a build started at t: it sorts by t (UTC,
// to the nanosecond) and a random suffix keeps builds started in the same
// nanosecond apart.
func NewBuildID(t time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return t.UTC().Format("20060102-150405.000000000") + "-" + hex.EncodeToString(r[:])
}

// PutBuild implements Builds.
func (e *engine) PutBuild(ctx context.Context, b Build, keep int) error {
	about := buildRecords.about(b.ID)
	if b.ID == "" {
		return subject{what: "record build", bare: true}.wrap(errors.New("a build without an ID"))
	}
	if keep <= 0 {
		keep = DefaultBuildRetention
	}
	b.StartedAt, b.FinishedAt = b.StartedAt.UTC(), b.FinishedAt.UTC()
	if b.FinishedAt.Equal(time.Time{}.UTC()) {
		b.FinishedAt = time.Time{}
	}
	_, err := write(ctx, e, about, func(tx *txn) (struct{}, error) {
		if _, err := buildRecords.save(tx, b.ID, b); err != nil {
			return struct{}{}, err
		}
		var old []string
		n := 0
		tx.kv.bucket(buildRecords.name).scanReverse(func(k, _ []byte) bool {
			n++
			if n > keep {
				old = append(old, string(k))
			}
			return true
		})
		for _, id := range old {
			if err := buildRecords.delete(tx, id); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}

// GetBuild implements Builds.
func (e *engine) GetBuild(ctx context.Context, id string) (Build, error) {
	return getOne(ctx, e, buildRecords, id)
}

// ListBuilds implements Builds.
func (e *engine) ListBuilds(ctx context.Context, limit int) ([]Build, error) {
	about := subject{what: "list builds", bare: true}
	list := make([]Build, 0)
	err := e.read(ctx, about, func(tx *txn) error {
		var err error
		tx.kv.bucket(buildRecords.name).scanReverse(func(k, v []byte) bool {
			if limit > 0 && len(list) >= limit {
				return false
			}
			var b Build
			if b, err = buildRecords.decode(string(k), v); err != nil {
				return false
			}
			list = append(list, b)
			return true
		})
		if err != nil {
			return about.wrap(err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}
