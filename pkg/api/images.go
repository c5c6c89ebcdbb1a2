package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// ImageLoader loads `docker save` archives into the engine (POST
// /system/images); a runtime with the image load feature implements it.
// Like the logs, this is Docker work done on request, the one other thing
// a handler hands to the runtime instead of writing desired state.
type ImageLoader interface {
	// LoadImages reads a plain tar archive and returns every reference it
	// tagged; all or nothing (see runtime.ImageLoader).
	LoadImages(ctx context.Context, archive io.Reader) ([]runtime.LoadedImage, error)
}

// ImageInspector tells whether the engine has an image (GET /system/images).
type ImageInspector interface {
	InspectImage(ctx context.Context, ref string) (runtime.ImageInfo, bool, error)
}

// DefaultImageUploadMax bounds an image upload when Config.ImageUploadMax
// is 0: 2 GiB, received and decompressed.
const DefaultImageUploadMax = 2 << 30

// defaultUploadIdle is how long an upload may send nothing before it is
// cut off, when Config.UploadIdleTimeout is 0.
const defaultUploadIdle = 60 * time.Second

// loadedImage is one reference in the answer to POST /system/images.
type loadedImage struct {
	Ref  string `json:"ref"`
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// imageStatus is one image in the answer to GET /system/images.
type imageStatus struct {
	Ref string `json:"ref"`
	// ID and Size are the engine's, when it has the image.
	ID         string    `json:"id,omitempty"`
	Size       int64     `json:"size,omitempty"`
	Present    bool      `json:"present"`
	UsedBy     []string  `json:"usedBy"`
	Uploaded   bool      `json:"uploaded"`
	UploadedAt time.Time `json:"uploadedAt,omitzero"`
}

// The first bytes of the compressed archives `docker load` would take
// itself; only gzip is decompressed here, where its size can be bounded.
var otherCompressions = []struct {
	name  string
	magic []byte
}{
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{"bzip2", []byte("BZh")},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

var gzipMagic = []byte{0x1f, 0x8b}

// The 501 answers of a runtime without image load or inspection (the
// swarm, where each node has its own images), with what to do instead.
const (
	noImageLoad = "this runtime cannot load images (on a swarm the image must be on every node that may run the function): " +
		"load it into each node yourself, e.g. docker save IMAGE | docker -H NODE load"
	noImageList = "this runtime cannot tell which images it has (on a swarm each node has its own): " +
		"list them on each node, e.g. docker -H NODE image ls"
)

// uploadImages answers POST /system/images: the body is a `docker save`
// archive, plain tar or gzip (told by its first bytes, whatever the
// Content-Type), streamed into the engine's image load as it arrives, never
// held whole in memory or on disk. Received and decompressed bytes are each
// bounded by the upload limit (413 beyond it; a Content-Length over it is
// refused before anything is read). The upload is exempt from the server's
// timeouts, which would cut big archives off; instead it is cut off when
// nothing arrives for the idle timeout. A refused archive is a 400 with the
// engine's reason, and leaves nothing tagged.
func (a *api) uploadImages(w http.ResponseWriter, r *http.Request) {
	if a.images == nil {
		writeError(w, a.log, http.StatusNotImplemented, noImageLoad, nil)
		return
	}
	limit := a.imageUploadMax
	if r.ContentLength > limit {
		writeError(w, a.log, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"image archive of %d bytes is larger than the upload limit IMAGE_UPLOAD_MAX (%d bytes)", r.ContentLength, limit), nil)
		return
	}
	start := time.Now()
	log := a.log.WithField("remote", r.RemoteAddr)
	rc := http.NewResponseController(w)
	// A big archive over a slow link takes longer than any write timeout:
	// the answer is written only once the engine loaded it.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		log.WithError(err).Debug("image upload: cannot clear the write deadline")
	}
	up := &upload{limit: limit}
	raw := &rawUpload{up: up, body: r.Body, rc: rc, idle: a.uploadIdle}
	raw.extend(time.Now())
	br := bufio.NewReaderSize(raw, 64<<10)
	// Fewer bytes than asked for is a short archive, the engine's to judge.
	head, _ := br.Peek(len(otherCompressions[0].magic))
	if len(head) == 0 {
		if f := up.failure(); f != nil {
			a.uploadFailed(w, log, f)
			return
		}
		writeError(w, a.log, http.StatusBadRequest, "the body is empty: send a docker save archive (tar, or tar.gz)", nil)
		return
	}
	var src io.Reader = br
	gzipped := bytes.HasPrefix(head, gzipMagic)
	if gzipped {
		zr, err := gzip.NewReader(br)
		if err != nil {
			if f := up.failure(); f != nil {
				a.uploadFailed(w, log, f)
				return
			}
			writeError(w, a.log, http.StatusBadRequest, "the gzip stream is corrupt: "+err.Error(), nil)
			return
		}
		defer zr.Close()
		src = zr
	} else {
		for _, c := range otherCompressions {
			if bytes.HasPrefix(head, c.magic) {
				writeError(w, a.log, http.StatusUnsupportedMediaType,
					"the archive is compressed with "+c.name+": send it as a plain tar or gzip-compressed", nil)
				return
			}
		}
	}
	plain := &plainUpload{up: up, src: src, gzipped: gzipped}

	loaded, err := a.images.LoadImages(r.Context(), plain)
	up.seal() // the transport may still hold the reader; nothing more reaches it
	log = log.WithFields(logrus.Fields{
		"bytes": up.bytesReceived(), "gzip": gzipped, "duration": time.Since(start).Round(time.Millisecond),
	})
	if f := up.failure(); f != nil {
		// The runtime treats a broken archive stream as a failed load.
		a.uploadFailed(w, log, f)
		return
	}
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		log.WithError(err).Info("image upload abandoned by the client: nothing kept")
		writeError(w, nil, http.StatusBadRequest, "the upload was abandoned: nothing kept", nil)
		return
	case errors.Is(err, runtime.ErrBadArchive):
		log.WithError(err).Warn("image upload refused by the engine")
		writeError(w, a.log, http.StatusBadRequest, err.Error(), nil)
		return
	case errors.Is(err, runtime.ErrNotSupported):
		writeError(w, a.log, http.StatusNotImplemented, "this runtime cannot load images: "+err.Error(), nil)
		return
	default:
		writeError(w, log, http.StatusInternalServerError, "internal error: the image load failed", err)
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))

	now := time.Now().UTC()
	out := make([]loadedImage, 0, len(loaded))
	var recs []store.ImageUpload
	refs := make([]string, 0, len(loaded))
	for _, l := range loaded {
		out = append(out, loadedImage{Ref: l.Ref, ID: l.ID, Size: l.Size})
		if l.Ref != "" {
			recs = append(recs, store.ImageUpload{Ref: l.Ref, ID: l.ID, Size: l.Size, UploadedAt: now})
			refs = append(refs, l.Ref)
		}
	}
	// The images are tagged now: keep their record whether or not the
	// client is still there to read the answer.
	if err := a.store.PutImageUploads(context.WithoutCancel(r.Context()), recs); err != nil {
		writeError(w, log, http.StatusInternalServerError, "internal error: the images were loaded, but their record was not stored", err)
		return
	}
	log.WithFields(logrus.Fields{"refs": refs, "images": len(loaded)}).Info("images uploaded")
	writeJSON(w, a.log, http.StatusOK, struct {
		Images []loadedImage `json:"images"`
	}{out})
}

// uploadFailed answers an upload that stopped on our side of the engine.
func (a *api) uploadFailed(w http.ResponseWriter, log logrus.FieldLogger, f *uploadError) {
	log.WithField("status", f.code).Info("image upload refused: " + f.msg)
	writeError(w, nil, f.code, f.msg, nil)
}

// uploadError is why an upload stopped before the engine judged it, with
// the status to answer.
type uploadError struct {
	code int
	msg  string
}

func (e *uploadError) Error() string { return e.msg }

// upload is the state of one upload, shared by its readers (which the
// engine client's transport calls, possibly after the load returned) and
// the handler.
type upload struct {
	limit int64

	mu       sync.Mutex
	received int64 // bytes of the body
	passed   int64 // bytes of tar handed on (decompressed)
	failed   *uploadError
	sealed   bool
}

var errSealed = errors.New("the upload is over")

// fail records why the upload stopped (the first reason wins) and returns
// it as the error the reader reports.
func (u *upload) fail(code int, msg string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failed == nil {
		u.failed = &uploadError{code: code, msg: msg}
	}
	return u.failed
}

func (u *upload) failure() *uploadError {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed
}

func (u *upload) seal() {
	u.mu.Lock()
	u.sealed = true
	u.mu.Unlock()
}

func (u *upload) bytesReceived() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.received
}

// count adds n bytes to *field and reports whether the upload may go on.
func (u *upload) count(field *int64, n int) (over, sealed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	*field += int64(n)
	return *field > u.limit, u.sealed
}

// rawUpload reads the request body: it counts it against the limit and
// keeps the connection's read deadline moving while bytes arrive.
type rawUpload struct {
	up   *upload
	body io.Reader
	rc   *http.ResponseController
	idle time.Duration
	// lastExtend is when the read deadline was last pushed (only the
	// reading goroutine touches it).
	lastExtend time.Time
}

// extend pushes the read deadline idle past now; at most once a second
// (more often for an idle timeout under 4 s), as it costs a timer update.
func (b *rawUpload) extend(now time.Time) {
	if now.Sub(b.lastExtend) < min(time.Second, b.idle/4) {
		return
	}
	b.lastExtend = now
	_ = b.rc.SetReadDeadline(now.Add(b.idle))
}

func (b *rawUpload) Read(p []byte) (int, error) {
	if _, sealed := b.up.count(&b.up.received, 0); sealed {
		return 0, errSealed
	}
	n, err := b.body.Read(p)
	b.extend(time.Now())
	if over, _ := b.up.count(&b.up.received, n); over {
		return 0, b.up.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"image archive larger than the upload limit IMAGE_UPLOAD_MAX (%d bytes)", b.up.limit))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		code := http.StatusBadRequest
		if errors.Is(err, os.ErrDeadlineExceeded) {
			code = http.StatusRequestTimeout
			err = fmt.Errorf("nothing arrived for %s", b.idle)
		}
		return n, b.up.fail(code, "reading the upload: "+err.Error())
	}
	return n, err
}

// plainUpload is the tar stream handed to the engine: the body, or what it
// decompresses to, bounded by the limit too (a gzip bomb stops there).
type plainUpload struct {
	up      *upload
	src     io.Reader
	gzipped bool
}

func (p *plainUpload) Read(b []byte) (int, error) {
	n, err := p.src.Read(b)
	if over, sealed := p.up.count(&p.up.passed, n); sealed {
		return 0, errSealed
	} else if over {
		return 0, p.up.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"image archive decompresses to more than the upload limit IMAGE_UPLOAD_MAX (%d bytes)", p.up.limit))
	}
	if err != nil && !errors.Is(err, io.EOF) && p.gzipped && p.up.failure() == nil {
		// Not the body's own error (that one is recorded): the gzip
		// stream itself is bad, or ends early.
		return n, p.up.fail(http.StatusBadRequest, "the gzip stream is corrupt: "+err.Error())
	}
	return n, err
}

// listImages answers GET /system/images: every image a function uses (in
// any namespace, from desired state) and every image uploaded, sorted by
// reference, with whether the engine has it (and then its ID and size).
// References are compared in Docker's short form with a tag, so a
// function's "my-fn" is the upload "my-fn:latest".
func (a *api) listImages(w http.ResponseWriter, r *http.Request) {
	if a.inspect == nil {
		writeError(w, a.log, http.StatusNotImplemented, noImageList, nil)
		return
	}
	ctx := r.Context()
	fns, err := a.store.List(ctx, "")
	if err != nil {
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	uploads, err := a.store.ListImageUploads(ctx)
	if err != nil {
		writeError(w, a.log, http.StatusInternalServerError, "internal error", err)
		return
	}
	byRef := map[string]*imageStatus{}
	entry := func(ref string) *imageStatus {
		ref = normalizeRef(ref)
		e, ok := byRef[ref]
		if !ok {
			e = &imageStatus{Ref: ref, UsedBy: []string{}}
			byRef[ref] = e
		}
		return e
	}
	for _, fn := range fns {
		e := entry(fn.Spec.Image)
		e.UsedBy = append(e.UsedBy, fn.Name()+"."+fn.Namespace)
	}
	for _, u := range uploads {
		e := entry(u.Ref)
		e.Uploaded = true
		if u.UploadedAt.After(e.UploadedAt) {
			e.UploadedAt = u.UploadedAt
		}
	}
	out := make([]imageStatus, 0, len(byRef))
	for _, e := range byRef {
		info, found, err := a.inspect.InspectImage(ctx, e.Ref)
		if err != nil {
			writeError(w, a.log.WithField("ref", e.Ref), http.StatusInternalServerError, "internal error: cannot inspect image "+short(e.Ref), err)
			return
		}
		if found {
			e.Present, e.ID, e.Size = true, info.ID, info.Size
		}
		slices.Sort(e.UsedBy)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(x, y imageStatus) int { return strings.Compare(x.Ref, y.Ref) })
	writeJSON(w, a.log, http.StatusOK, out)
}

// normalizeRef is ref in Docker's short form with a tag ("my-fn" →
// "my-fn:latest"), as the engine reports loaded and listed images; a
// reference it cannot parse is kept as it is.
func normalizeRef(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}
