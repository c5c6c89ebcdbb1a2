package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// fakeImages is an engine's image store that loads the way Docker Engine
// 20.10 does: it reads the whole archive before it registers anything (a
// read error leaves nothing), then registers and tags image after image,
// and stops at the first broken one, leaving the ones before it tagged. An
// archive is one line per image, "REF ID", "- ID" for an image saved by
// ID, or "REF !" for a broken one.
type fakeImages struct {
	mu   sync.Mutex
	tags map[string]string // reference → image ID
	ids  map[string]bool   // every image, tagged or not
	// afterRead runs once the archive is read, before anything is tagged.
	afterRead func()
	// calls records the mutating calls: "tag ID REF", "rm REF".
	calls []string
}

var _ engine.ImageEngine = (*fakeImages)(nil)

func newFakeImages(tags map[string]string, untagged ...string) *fakeImages {
	f := &fakeImages{tags: maps.Clone(tags), ids: map[string]bool{}}
	if f.tags == nil {
		f.tags = map[string]string{}
	}
	for _, id := range tags {
		f.ids[id] = true
	}
	for _, id := range untagged {
		f.ids[id] = true
	}
	return f
}

func (f *fakeImages) ListImages(context.Context) ([]engine.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Image
	for id := range f.ids {
		img := engine.Image{ID: id, Size: 100}
		for ref, tid := range f.tags {
			if tid == id {
				img.RepoTags = append(img.RepoTags, ref)
			}
		}
		out = append(out, img)
	}
	return out, nil
}

func (f *fakeImages) InspectImage(_ context.Context, ref string) (engine.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.tags[ref]
	if !ok && f.ids[ref] {
		id, ok = ref, true
	}
	if !ok {
		return engine.Image{}, fmt.Errorf("inspect image %s: %w", ref, engine.ErrNotFound)
	}
	return engine.Image{ID: id, Size: int64(len(id)) * 10}, nil
}

func (f *fakeImages) LoadImages(ctx context.Context, archive io.Reader) (engine.LoadResult, error) {
	read := make(chan error, 1)
	var data []byte
	go func() {
		var err error
		data, err = io.ReadAll(archive)
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			return engine.LoadResult{}, fmt.Errorf("load images: %w", err)
		}
	case <-ctx.Done():
		// The transport gives up on the request; the engine sees a
		// truncated archive and registers nothing.
		return engine.LoadResult{}, fmt.Errorf("load images: %w", ctx.Err())
	}
	if f.afterRead != nil {
		f.afterRead()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := engine.LoadResult{Moved: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		ref, id, _ := strings.Cut(line, " ")
		if id == "!" {
			return res, &engine.LoadError{Message: "open /var/lib/docker/tmp/x/layer.tar: no such file or directory"}
		}
		f.ids[id] = true
		if ref == "-" {
			res.Loaded = append(res.Loaded, engine.LoadedRef{ID: id})
			continue
		}
		if old, ok := f.tags[ref]; ok && old != id {
			res.Moved[ref] = old
		}
		f.tags[ref] = id
		res.Loaded = append(res.Loaded, engine.LoadedRef{Ref: ref})
	}
	return res, nil
}

func (f *fakeImages) TagImage(_ context.Context, id, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "tag "+id+" "+ref)
	f.tags[ref] = id
	return nil
}

func (f *fakeImages) RemoveImage(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "rm "+ref)
	id, ok := f.tags[ref]
	if !ok {
		return engine.ErrNotFound
	}
	delete(f.tags, ref)
	for _, other := range f.tags {
		if other == id {
			return nil
		}
	}
	delete(f.ids, id) // its last reference: Docker removes the image
	return nil
}

func (f *fakeImages) snapshot() (map[string]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.tags), slices.Clone(f.calls)
}

// quietImages is the runtime's Images over f, logging nowhere.
func quietImages(f engine.ImageEngine) *Images {
	log, _ := logtest.NewNullLogger()
	return NewImages(f, log)
}

// checkRefs fails the test when f's references after a load are not want.
func checkRefs(t *testing.T, f *fakeImages, want map[string]string) {
	t.Helper()
	if tags, calls := f.snapshot(); !maps.Equal(tags, want) {
		t.Errorf("references after the load %v, want %v (calls %v)", tags, want, calls)
	}
}

func TestImagesLoad(t *testing.T) {
	tests := []struct {
		name    string
		tags    map[string]string // before the load
		archive string
		want    []runtime.LoadedImage
		wantErr string // ErrBadArchive with this reason when set
		// wantTags are the references after the load.
		wantTags map[string]string
	}{
		{
			name:     "two images",
			tags:     map[string]string{"keep:1": "sha256:k"},
			archive:  "a:1 sha256:a\nb:1 sha256:b\n",
			want:     []runtime.LoadedImage{{Ref: "a:1", ID: "sha256:a", Size: 80}, {Ref: "b:1", ID: "sha256:b", Size: 80}},
			wantTags: map[string]string{"keep:1": "sha256:k", "a:1": "sha256:a", "b:1": "sha256:b"},
		},
		{
			name:     "an image saved by ID",
			archive:  "- sha256:x\n",
			want:     []runtime.LoadedImage{{ID: "sha256:x", Size: 80}},
			wantTags: map[string]string{},
		},
		{
			name:     "the first image broken: nothing to undo",
			archive:  "a:1 !\n",
			wantErr:  "no such file",
			wantTags: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeImages(tt.tags)
			got, err := quietImages(f).Load(context.Background(), strings.NewReader(tt.archive))
			switch {
			case tt.wantErr != "":
				if !errors.Is(err, runtime.ErrBadArchive) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want ErrBadArchive with %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Load: %v", err)
			case !slices.Equal(got, tt.want):
				t.Errorf("loaded %+v, want %+v", got, tt.want)
			}
			checkRefs(t, f, tt.wantTags)
		})
	}
}

// A load that stops at a broken image after tagging a good one undoes
// the references it made, and only those: what was there before stays.
func TestImagesLoadUndo(t *testing.T) {
	type refs = map[string]string
	tests := []struct {
		name     string
		tags     refs     // before the load
		untagged []string // images there before without a reference
		first    string   // the archive's good first image, "REF ID"; its second is broken
		wantTags refs     // after the load
	}{
		{"second image broken: the first is untagged again", refs{"keep:1": "sha256:k"}, nil, "a:1 sha256:a", refs{"keep:1": "sha256:k"}},
		{"a moved reference goes back to its image", refs{"a:1": "sha256:old"}, nil, "a:1 sha256:new", refs{"a:1": "sha256:old"}},
		{"a reference that was there already is untouched", refs{"a:1": "sha256:a"}, nil, "a:1 sha256:a", refs{"a:1": "sha256:a"}},
		{"a new reference to an image that was tagged otherwise is removed", refs{"other:1": "sha256:a"}, nil, "a:1 sha256:a", refs{"other:1": "sha256:a"}},
		{"an image that existed untagged is never removed", nil, []string{"sha256:a"}, "a:1 sha256:a", refs{"a:1": "sha256:a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeImages(tt.tags, tt.untagged...)
			_, err := quietImages(f).Load(context.Background(), strings.NewReader(tt.first+"\nb:1 !\n"))
			if !errors.Is(err, runtime.ErrBadArchive) || !strings.Contains(err.Error(), "layer.tar: no such file or directory") {
				t.Errorf("error %v, want ErrBadArchive with the engine's reason", err)
			}
			checkRefs(t, f, tt.wantTags)
		})
	}
}

// blockingReader hands out data, then blocks until released, like a
// client's upload that stalls half-way.
type blockingReader struct {
	data    []byte
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.release
	return 0, errors.New("connection reset")
}

// A client that goes away mid-upload aborts the load: nothing is tagged.
func TestImagesLoadClientGoneMidUpload(t *testing.T) {
	f := newFakeImages(nil)
	im := quietImages(f)
	ctx, cancel := context.WithCancel(context.Background())
	body := &blockingReader{data: []byte("a:1 sha256:a\n"), release: make(chan struct{})}
	defer close(body.release)
	done := make(chan error, 1)
	go func() {
		_, err := im.Load(ctx, body)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, runtime.ErrBadArchive) {
			t.Errorf("error %v, want the abort", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load did not return after its ctx ended")
	}
	if tags, _ := f.snapshot(); len(tags) != 0 {
		t.Errorf("references %v after an aborted upload", tags)
	}
}

// A client that goes away after the whole archive was sent, while the
// engine loads it, gets nothing kept either: the load runs to its end, so
// that what it tagged is known, and is then undone.
func TestImagesLoadClientGoneAfterUpload(t *testing.T) {
	f := newFakeImages(map[string]string{"a:1": "sha256:old"})
	ctx, cancel := context.WithCancel(context.Background())
	f.afterRead = cancel
	im := quietImages(f)
	_, err := im.Load(ctx, strings.NewReader("a:1 sha256:new\nb:1 sha256:b\n"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if tags, calls := f.snapshot(); !maps.Equal(tags, map[string]string{"a:1": "sha256:old"}) {
		t.Errorf("references %v, want only a:1 back on its old image (calls %v)", tags, calls)
	}
}

// The load is bounded once the archive is sent: an engine that never
// answers does not hold the request forever.
func TestImagesLoadFinishBound(t *testing.T) {
	f := &stuckEngine{fakeImages: newFakeImages(nil)}
	im := quietImages(f)
	im.finish = 50 * time.Millisecond
	_, err := im.Load(context.Background(), strings.NewReader("a:1 sha256:a\n"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want the bound's cancellation", err)
	}
}

// stuckEngine reads the archive and then never answers until ctx ends.
type stuckEngine struct{ *fakeImages }

func (s *stuckEngine) LoadImages(ctx context.Context, archive io.Reader) (engine.LoadResult, error) {
	if _, err := io.Copy(io.Discard, archive); err != nil {
		return engine.LoadResult{}, err
	}
	<-ctx.Done()
	return engine.LoadResult{}, ctx.Err()
}

func TestImagesInspect(t *testing.T) {
	f := newFakeImages(map[string]string{"a:1": "sha256:a"})
	im := NewImages(f, nil)
	info, found, err := im.Inspect(context.Background(), "a:1")
	if err != nil || !found || info.ID != "sha256:a" || info.Size != 80 {
		t.Errorf("Inspect(a:1) = %+v %v %v", info, found, err)
	}
	info, found, err = im.Inspect(context.Background(), "b:1")
	if err != nil || found || info.ID != "" {
		t.Errorf("Inspect(b:1) = %+v %v %v, want not found", info, found, err)
	}
}

// A runtime over an engine without the image API says so.
func TestRuntimeWithoutImageEngine(t *testing.T) {
	r := &Runtime{}
	if _, err := r.LoadImages(context.Background(), strings.NewReader("")); !errors.Is(err, runtime.ErrNotSupported) {
		t.Errorf("LoadImages: %v, want ErrNotSupported", err)
	}
	if _, _, err := r.InspectImage(context.Background(), "a"); !errors.Is(err, runtime.ErrNotSupported) {
		t.Errorf("InspectImage: %v, want ErrNotSupported", err)
	}
}
