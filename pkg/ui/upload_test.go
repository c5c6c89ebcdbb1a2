package ui_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/api"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fakeLoader stands in for the engine's image load behind POST
// /system/images: it reads the archive to its end, keeps what it read, and
// answers with images or err.
type fakeLoader struct {
	images []runtime.LoadedImage
	err    error
	// started, when set, is closed once startAfter bytes were read: the
	// load began before the upload ended.
	started    chan struct{}
	startAfter int

	mu    sync.Mutex
	calls int
	got   []byte
}

var _ api.ImageLoader = (*fakeLoader)(nil)

func (l *fakeLoader) LoadImages(_ context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	var got bytes.Buffer
	buf := make([]byte, 4096)
	var readErr error
	for {
		n, err := archive.Read(buf)
		got.Write(buf[:n])
		if l.started != nil && got.Len() >= l.startAfter {
			close(l.started)
			l.started = nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	l.mu.Lock()
	l.calls++
	l.got = got.Bytes()
	l.mu.Unlock()
	switch {
	case readErr != nil:
		return nil, fmt.Errorf("%w: %v", runtime.ErrBadArchive, readErr)
	case l.err != nil:
		return nil, l.err
	}
	return l.images, nil
}

func (l *fakeLoader) result() (calls int, got []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, l.got
}

// uploadBody is the upload form as a browser sends it: the fields in page
// order, the archive last.
func uploadBody(t *testing.T, fields url.Values, archive []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, k := range []string{"csrf", "namespace", "name", "env", "labels", "annotations", "secrets"} {
		for _, v := range fields[k] {
			if err := mw.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	fw, err := mw.CreateFormFile("archive", "image.tar")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(archive)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomArchive(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	// Not a compression's magic: the API passes it on as a plain tar.
	b[0] = 'x'
	return b
}

var errorRE = regexp.MustCompile(`(?s)class="error"[^>]*>([^<]*)`)

// TestUploadDeploys uploads a docker save archive through the console's
// upload form to a router with an image loader: the loader gets the
// archive's bytes (decompressed when gzipped), and the function is
// deployed with the reference it loaded; the loader's and the deploy's
// failures are shown on the form.
func TestUploadDeploys(t *testing.T) {
	const ref = "example/uploaded:1"
	tagged := []runtime.LoadedImage{{Ref: ref, ID: "sha256:0123abcd", Size: 4096}}
	archive := randomArchive(t, 200<<10)
	tests := []struct {
		name     string
		fields   url.Values // besides csrf and namespace
		send     []byte     // the uploaded file; archive when nil
		images   []runtime.LoadedImage
		loadErr  error
		status   int
		location string // prefix of the redirect, for a 303
		flash    string // on the page redirected to
		errMsg   string // on the form, for anything else
		deployed bool   // function "up" exists afterwards with image ref
	}{
		{
			name:   "plain tar deployed",
			fields: url.Values{"name": {"up"}, "env": {"GREETING=hi"}, "labels": {"team=blue"}},
			images: tagged, status: http.StatusSeeOther, location: "/ui/function?",
			flash: "Loaded " + ref + " and deployed up.", deployed: true,
		},
		{
			name:   "gzip decompressed for the loader",
			fields: url.Values{"name": {"up"}, "env": {"GREETING=hi"}, "labels": {"team=blue"}},
			send:   gzipped(t, archive), images: tagged, status: http.StatusSeeOther, location: "/ui/function?",
			flash: "Loaded " + ref + " and deployed up.", deployed: true,
		},
		{
			name:   "load only without a name",
			fields: url.Values{}, images: tagged, status: http.StatusSeeOther, location: "/ui/deploy?",
			flash: "Loaded " + ref + " (no function name given, so nothing was deployed).",
		},
		{
			name:    "engine refuses the archive",
			fields:  url.Values{"name": {"up"}},
			loadErr: fmt.Errorf("%w: unexpected EOF in layer 3", runtime.ErrBadArchive),
			status:  http.StatusBadRequest, errMsg: "unexpected EOF in layer 3",
		},
		{
			name:   "engine fails",
			fields: url.Values{"name": {"up"}}, loadErr: errors.New("engine on fire"),
			status: http.StatusInternalServerError, errMsg: "the image load failed",
		},
		{
			name:   "archive of an untagged image",
			fields: url.Values{"name": {"up"}}, images: []runtime.LoadedImage{{ID: "sha256:0123abcd"}},
			status: http.StatusBadRequest, errMsg: "the archive holds no tagged image",
		},
		{
			name:   "deploy refused after the load",
			fields: url.Values{"name": {"Not_Valid"}}, images: tagged,
			status: http.StatusBadRequest, errMsg: "loaded " + ref + ", but the deploy failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loader := &fakeLoader{images: tt.images, err: tt.loadErr}
			c := newConsole(t, func(cfg *api.Config) { cfg.Images = loader })
			fields := url.Values{"csrf": {c.token("/ui/deploy", "/ui/upload")}, "namespace": {"openfaas-fn"}}
			for k, v := range tt.fields {
				fields[k] = v
			}
			send := tt.send
			if send == nil {
				send = archive
			}
			body, ct := uploadBody(t, fields, send)
			w := c.do(http.MethodPost, "/ui/upload", body, ct)
			if w.Code != tt.status {
				t.Fatalf("upload: %d, want %d:\n%s", w.Code, tt.status, w.Body)
			}

			calls, got := loader.result()
			if calls != 1 || !bytes.Equal(got, archive) {
				t.Errorf("the loader was called %d times with %d bytes, want once with the %d bytes of the archive", calls, len(got), len(archive))
			}

			if tt.status == http.StatusSeeOther {
				loc := w.Header().Get("Location")
				if !strings.HasPrefix(loc, tt.location) {
					t.Fatalf("redirected to %q, want %s...", loc, tt.location)
				}
				if page := c.do(http.MethodGet, loc, nil, "").Body.String(); !strings.Contains(page, tt.flash) {
					t.Errorf("the page after the upload does not say %q:\n%s", tt.flash, page)
				}
			} else {
				m := errorRE.FindStringSubmatch(w.Body.String())
				if m == nil || !strings.Contains(m[1], tt.errMsg) {
					t.Errorf("the form does not show an error with %q:\n%s", tt.errMsg, w.Body)
				}
				// The form is shown again, as it was filled in.
				if name := tt.fields.Get("name"); !strings.Contains(w.Body.String(), `id="upload-name" name="name" value="`+name+`"`) {
					t.Errorf("the upload form is not re-shown with the name %q", name)
				}
			}

			fn, err := c.store.Get(t.Context(), "openfaas-fn/up")
			switch {
			case !tt.deployed && !errors.Is(err, store.ErrNotFound):
				t.Errorf("function up after the upload: %+v %v, want none", fn.Spec, err)
			case tt.deployed && err != nil:
				t.Fatalf("function up after the upload: %v", err)
			case tt.deployed:
				if fn.Spec.Image != ref || fn.Spec.EnvVars["GREETING"] != "hi" || fn.Spec.Labels == nil || (*fn.Spec.Labels)["team"] != "blue" {
					t.Errorf("deployed %+v, want image %s with the form's env and labels", fn.Spec, ref)
				}
			}
		})
	}
}

// TestUploadStreamsArchive checks that the console hands the archive to
// the loader as it arrives, not once the whole form was received: a big
// image must not be held in the daemon's memory or on disk.
func TestUploadStreamsArchive(t *testing.T) {
	archive := randomArchive(t, 1<<20)
	const first = 256 << 10 // sent before the loader must have started
	loader := &fakeLoader{
		images:  []runtime.LoadedImage{{Ref: "example/streamed:1"}},
		started: make(chan struct{}), startAfter: 64 << 10,
	}
	started := loader.started
	c := newConsole(t, func(cfg *api.Config) { cfg.Images = loader })
	body, ct := uploadBody(t, url.Values{"csrf": {c.token("/ui/deploy", "/ui/upload")}, "name": {"streamed"}}, archive)
	whole := body.Bytes()
	cut := len(whole) - len(archive) + first

	pr, pw := io.Pipe()
	r := httptest.NewRequest(http.MethodPost, "/ui/upload", pr)
	r.SetBasicAuth(user, pass)
	r.Header.Set("Content-Type", ct)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.h.ServeHTTP(w, r)
		_ = pr.Close()
	}()
	if _, err := pw.Write(whole[:cut]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-done:
		t.Fatalf("the upload ended before its end was sent: %d\n%s", w.Code, w.Body)
	case <-time.After(10 * time.Second):
		_ = pw.CloseWithError(errors.New("test gave up"))
		<-done
		t.Fatal("the loader had not read 64 KiB of the archive while the rest was still to come: the console does not stream it")
	}
	if _, err := pw.Write(whole[cut:]); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload did not end after the whole form was sent")
	}
	if w.Code != http.StatusSeeOther {
		t.Fatalf("upload: %d, want 303:\n%s", w.Code, w.Body)
	}
	if _, got := loader.result(); !bytes.Equal(got, archive) {
		t.Errorf("the loader read %d bytes, want the archive's %d", len(got), len(archive))
	}
	if fn, err := c.store.Get(t.Context(), "openfaas-fn/streamed"); err != nil || fn.Spec.Image != "example/streamed:1" {
		t.Errorf("function streamed: %+v %v, want image example/streamed:1", fn.Spec, err)
	}
}
