package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

var (
	_ runtime.ImageLoader    = (*Runtime)(nil)
	_ runtime.ImageInspector = (*Runtime)(nil)
)

// LoadImages implements runtime.ImageLoader (see Images.Load).
func (r *Runtime) LoadImages(ctx context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	if r.images == nil {
		return nil, runtime.NotSupported("image load")
	}
	return r.images.Load(ctx, archive)
}

// InspectImage implements runtime.ImageInspector (see Images.Inspect).
func (r *Runtime) InspectImage(ctx context.Context, ref string) (runtime.ImageInfo, bool, error) {
	if r.images == nil {
		return runtime.ImageInfo{}, false, runtime.NotSupported("image inspect")
	}
	return r.images.Inspect(ctx, ref)
}

// finishBound bounds a load once the whole archive reached the engine:
// what is left is the engine's own work on local files.
const finishBound = 10 * time.Minute

// Images loads `docker save` archives into the engine for POST
// /system/images, all or nothing, and tells which images it has.
//
// Docker Engine 20.10 unpacks the whole archive before it registers any
// image, so an archive cut short (truncated, or its upload aborted) leaves
// nothing behind. But it registers and tags the images of a complete
// archive one by one and stops at the first broken one, leaving the ones
// before it tagged (seen on 20.10: the second image's layer missing left
// the first tagged). Load undoes that from what the load stream reports.
type Images struct {
	eng engine.ImageEngine
	log logrus.FieldLogger
	// finish bounds the load once the archive is sent (finishBound).
	finish time.Duration
}

// NewImages returns the image service over eng.
func NewImages(eng engine.ImageEngine, log logrus.FieldLogger) *Images {
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Images{eng: eng, log: log, finish: finishBound}
}

// Load streams archive (a plain tar) into the engine and returns every
// reference tagged, with the image's ID and size. When the engine refuses
// the archive, or the caller's ctx ends before Load returns (the client
// went away), every reference this load tagged is untagged again (one it
// moved from another image is moved back), so nothing half-loaded stays
// tagged; an image that existed before the load is never removed.
//
// The engine's request is not bound to ctx once the archive is complete:
// cancelling it then would lose the stream that says what was tagged. Up
// to that point, ctx ending aborts the upload, which the engine sees as a
// truncated archive.
func (im *Images) Load(ctx context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	before, err := im.eng.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("image load: %w", err)
	}

	body := &archiveBody{r: archive}
	loadCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if !body.complete() {
			cancel()
		}
	})
	defer stop()
	body.onEOF = func() {
		t := time.AfterFunc(im.finish, cancel)
		go func() {
			<-loadCtx.Done()
			t.Stop()
		}()
	}

	res, loadErr := im.eng.LoadImages(loadCtx, body)
	if err := body.failure(); loadErr == nil && err != nil {
		// The engine may stop reading at the archive's end marker and
		// answer before a bad rest (over a limit, say) was read: the
		// archive did not arrive as sent, so nothing is kept.
		loadErr = fmt.Errorf("reading the archive: %w", err)
	}
	var out []runtime.LoadedImage
	if loadErr == nil {
		out, loadErr = im.describe(loadCtx, res)
	}
	if loadErr == nil && ctx.Err() != nil {
		loadErr = fmt.Errorf("the upload was abandoned: %w", context.Cause(ctx))
	}
	if loadErr == nil {
		return out, nil
	}
	undoCtx, undoCancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer undoCancel()
	im.undo(undoCtx, res, before)
	var le *engine.LoadError
	if errors.As(loadErr, &le) {
		return nil, fmt.Errorf("%w: %s", runtime.ErrBadArchive, le.Message)
	}
	return nil, fmt.Errorf("image load: %w", loadErr)
}

// describe looks up the ID and size of every image a successful load
// reported.
func (im *Images) describe(ctx context.Context, res engine.LoadResult) ([]runtime.LoadedImage, error) {
	out := make([]runtime.LoadedImage, 0, len(res.Loaded))
	for _, l := range res.Loaded {
		name := l.Ref
		if name == "" {
			name = l.ID
		}
		img, err := im.eng.InspectImage(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("image %s after its load: %w", name, err)
		}
		out = append(out, runtime.LoadedImage{Ref: l.Ref, ID: img.ID, Size: img.Size})
	}
	return out, nil
}

// undo takes back the references a failed load tagged: a reference it
// moved from another image goes back to that image; a new one is removed,
// unless its image existed before untagged (removing its only reference
// would remove that image), which is then left tagged and logged.
// References that pointed at the same image before are untouched.
func (im *Images) undo(ctx context.Context, res engine.LoadResult, before []engine.Image) {
	had := map[string]string{}      // reference → image ID, before the load
	tagsOf := map[string][]string{} // image ID → its references, before the load
	for _, img := range before {
		tagsOf[img.ID] = img.RepoTags
		for _, t := range img.RepoTags {
			had[t] = img.ID
		}
	}
	done := map[string]bool{}
	for _, l := range res.Loaded {
		ref := l.Ref
		if ref == "" || done[ref] {
			continue
		}
		done[ref] = true
		log := im.log.WithField("ref", ref)
		if old, ok := res.Moved[ref]; ok {
			if err := im.eng.TagImage(ctx, old, ref); err != nil {
				log.WithError(err).Error("failed image load: cannot point the reference back at its previous image")
				continue
			}
			log.WithField("image", old).Info("failed image load: reference points at its previous image again")
			continue
		}
		if _, ok := had[ref]; ok {
			continue // the same image as before: the load changed nothing
		}
		cur, err := im.eng.InspectImage(ctx, ref)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		if err != nil {
			log.WithError(err).Error("failed image load: cannot untag the reference it tagged")
			continue
		}
		if tags, existed := tagsOf[cur.ID]; existed && len(tags) == 0 {
			log.WithField("image", cur.ID).Warn("failed image load: reference left tagged, because removing it would remove an image that existed before")
			continue
		}
		if err := im.eng.RemoveImage(ctx, ref); err != nil && !errors.Is(err, engine.ErrNotFound) {
			log.WithError(err).Error("failed image load: cannot untag the reference it tagged")
			continue
		}
		log.Info("failed image load: reference it tagged removed")
	}
}

// Inspect implements runtime.ImageInspector.
func (im *Images) Inspect(ctx context.Context, ref string) (runtime.ImageInfo, bool, error) {
	img, err := im.eng.InspectImage(ctx, ref)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return runtime.ImageInfo{}, false, nil
	case err != nil:
		return runtime.ImageInfo{}, false, err
	}
	return runtime.ImageInfo{ID: img.ID, Size: img.Size}, true, nil
}

// archiveBody is the archive on its way to the engine; it notes when the
// whole of it has been read, or why reading it failed.
type archiveBody struct {
	r     io.Reader
	onEOF func()

	mu   sync.Mutex
	done bool
	err  error
}

func (b *archiveBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	if errors.Is(err, io.EOF) {
		b.mu.Lock()
		first := !b.done
		b.done = true
		b.mu.Unlock()
		if first && b.onEOF != nil {
			b.onEOF()
		}
	}
	return n, err
}

func (b *archiveBody) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *archiveBody) complete() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}
