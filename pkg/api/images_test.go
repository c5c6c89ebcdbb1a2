package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fakeLoader stands for the runtime's image load: it reads the whole
// archive as the engine would and answers what it was told to.
type fakeLoader struct {
	mu     sync.Mutex
	calls  int
	got    []byte
	result []runtime.LoadedImage
	err    error
}

func (l *fakeLoader) LoadImages(_ context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	data, err := io.ReadAll(archive)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.got = data
	if err != nil {
		// What the engine client's transport does with a body that fails.
		return nil, fmt.Errorf("load images: error during connect: %w", err)
	}
	return l.result, l.err
}

// fakeInspector knows the images in have.
type fakeInspector struct {
	have map[string]runtime.ImageInfo
	err  error
}

func (i *fakeInspector) InspectImage(_ context.Context, ref string) (runtime.ImageInfo, bool, error) {
	if i.err != nil {
		return runtime.ImageInfo{}, false, i.err
	}
	info, ok := i.have[ref]
	return info, ok, nil
}

// brokenBody delivers data, then fails as a connection reset would.
type brokenBody struct{ data []byte }

func (b *brokenBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, errors.New("connection reset by peer")
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// postImages sends body to POST /system/images with valid credentials;
// length -1 sends it chunked (no Content-Length).
func postImages(t *testing.T, f *fixture, body io.Reader, length int64, ctype string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/system/images", body)
	r.ContentLength = length
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	r.SetBasicAuth(testUser, testPass)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func uploads(t *testing.T, f *fixture) []store.ImageUpload {
	t.Helper()
	list, err := f.store.ListImageUploads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestUploadImages(t *testing.T) {
	const limit = 64 << 10
	archive := []byte("a docker save archive, as far as this test is concerned\n")
	loaded := []runtime.LoadedImage{
		{Ref: "my-fn:latest", ID: "sha256:aaa", Size: 12345},
		{Ref: "my-fn:1.0", ID: "sha256:aaa", Size: 12345},
		{ID: "sha256:bbb", Size: 5}, // saved by ID: answered, not recorded
	}
	bomb := gzipped(t, make([]byte, limit+1)) // a few hundred bytes
	truncatedGzip := gzipped(t, randomData(t, 4096))
	truncatedGzip = truncatedGzip[:len(truncatedGzip)/2]

	tests := []struct {
		name     string
		body     io.Reader
		length   int64 // -1: chunked; 0: len(body) for a []byte body
		ctype    string
		loadErr  error
		noLoader bool
		want     int
		wantMsg  string
		// wantGot is what the loader must have read; nil when it must not
		// have been called.
		wantGot []byte
	}{
		{name: "plain tar", body: bytes.NewReader(archive), ctype: "application/x-tar", want: 200, wantGot: archive},
		{name: "plain tar, chunked", body: bytes.NewReader(archive), length: -1, want: 200, wantGot: archive},
		{name: "gzip", body: bytes.NewReader(gzipped(t, archive)), ctype: "application/gzip", want: 200, wantGot: archive},
		{name: "gzip told by its bytes, not its Content-Type", body: bytes.NewReader(gzipped(t, archive)), ctype: "application/x-tar", want: 200, wantGot: archive},
		{name: "plain tar called gzip", body: bytes.NewReader(archive), ctype: "application/gzip", want: 200, wantGot: archive},
		{name: "Content-Length over the limit", body: bytes.NewReader(make([]byte, limit+1)), want: 413,
			wantMsg: "larger than the upload limit IMAGE_UPLOAD_MAX (65536 bytes)"},
		{name: "chunked body over the limit", body: bytes.NewReader(make([]byte, 3*limit)), length: -1, want: 413,
			wantMsg: "image archive larger than the upload limit IMAGE_UPLOAD_MAX (65536 bytes)", wantGot: []byte{}},
		{name: "gzip bomb", body: bytes.NewReader(bomb), length: -1, want: 413,
			wantMsg: "decompresses to more than the upload limit IMAGE_UPLOAD_MAX (65536 bytes)", wantGot: []byte{}},
		{name: "corrupt gzip", body: bytes.NewReader(append([]byte{0x1f, 0x8b}, randomData(t, 200)...)), want: 400,
			wantMsg: "the gzip stream is corrupt"},
		{name: "truncated gzip", body: bytes.NewReader(truncatedGzip), want: 400,
			wantMsg: "the gzip stream is corrupt: unexpected EOF", wantGot: []byte{}},
		{name: "archive the engine refuses", body: bytes.NewReader(archive), want: 400,
			loadErr: fmt.Errorf("%w: Error processing tar file(exit status 1): unexpected EOF", runtime.ErrBadArchive),
			wantMsg: "the engine could not load the archive: Error processing tar file(exit status 1): unexpected EOF", wantGot: archive},
		{name: "empty body", body: bytes.NewReader(nil), want: 400, wantMsg: "the body is empty"},
		{name: "xz", body: bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}), want: 415, wantMsg: "compressed with xz"},
		{name: "bzip2", body: strings.NewReader("BZh91AY&SY"), want: 415, wantMsg: "compressed with bzip2"},
		{name: "client breaks off", body: &brokenBody{data: archive}, length: -1, want: 400,
			wantMsg: "reading the upload: connection reset by peer", wantGot: archive},
		{name: "runtime without the feature", body: bytes.NewReader(archive), noLoader: true, want: 501,
			wantMsg: "docker save IMAGE | docker -H NODE load"},
		{name: "runtime says not supported", body: bytes.NewReader(archive), want: 501,
			loadErr: runtime.NotSupported("image load"), wantMsg: "cannot load images", wantGot: archive},
		{name: "engine unreachable", body: bytes.NewReader(archive), want: 500,
			loadErr: errors.New("connect to docker: no such file"), wantMsg: "internal error", wantGot: archive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loader := &fakeLoader{result: loaded, err: tt.loadErr}
			f := newFixture(t, func(c *Config) {
				if !tt.noLoader {
					c.Images = loader
				}
				c.ImageUploadMax = limit
			})
			length := tt.length
			if length == 0 {
				if br, ok := tt.body.(interface{ Len() int }); ok {
					length = int64(br.Len())
				}
			}
			w := postImages(t, f, tt.body, length, tt.ctype)
			if w.Code != tt.want {
				t.Fatalf("status %d %q, want %d", w.Code, w.Body.String(), tt.want)
			}
			if tt.wantMsg != "" && !strings.Contains(w.Body.String(), tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", w.Body.String(), tt.wantMsg)
			}
			switch {
			case tt.wantGot == nil && loader.calls != 0:
				t.Errorf("the loader was called (read %d bytes)", len(loader.got))
			case tt.wantGot != nil && len(tt.wantGot) > 0 && !bytes.Equal(loader.got, tt.wantGot):
				t.Errorf("the loader read %q, want %q", loader.got, tt.wantGot)
			}
			if tt.want != 200 {
				if list := uploads(t, f); len(list) != 0 {
					t.Errorf("a failed upload was recorded: %+v", list)
				}
				return
			}
			var got struct {
				Images []map[string]any `json:"images"`
			}
			decodeJSON(t, w, &got)
			want := `[{"id":"sha256:aaa","ref":"my-fn:latest","size":12345},{"id":"sha256:aaa","ref":"my-fn:1.0","size":12345},{"id":"sha256:bbb","ref":"","size":5}]`
			if b, _ := json.Marshal(got.Images); string(b) != want {
				t.Errorf("answer %s, want %s", b, want)
			}
			list := uploads(t, f)
			if len(list) != 2 || list[0].Ref != "my-fn:1.0" || list[1].Ref != "my-fn:latest" ||
				list[1].ID != "sha256:aaa" || list[1].Size != 12345 || time.Since(list[1].UploadedAt) > time.Minute {
				t.Errorf("recorded %+v, want both references of the upload", list)
			}
		})
	}
}

// The upload is not bound by the 1 MiB limit of other management bodies,
// and bigger archives stream through whole.
func TestUploadImagesBypassesTheBodyLimit(t *testing.T) {
	loader := &fakeLoader{result: []runtime.LoadedImage{{Ref: "big:1", ID: "sha256:b", Size: 1}}}
	f := newFixture(t, func(c *Config) { c.Images = loader })
	archive := randomData(t, 3*maxBodyBytes)
	if w := postImages(t, f, bytes.NewReader(archive), -1, ""); w.Code != 200 {
		t.Fatalf("status %d %q, want 200", w.Code, w.Body.String())
	}
	if !bytes.Equal(loader.got, archive) {
		t.Errorf("the loader read %d bytes, want the %d sent", len(loader.got), len(archive))
	}
}

func TestImagesRoutes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Images, c.Inspect = &fakeLoader{}, &fakeInspector{} })
	w := f.send(t, http.MethodPost, "/system/images", "x", nil)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("POST without credentials: %d, want 401", w.Code)
	}
	if w := f.send(t, http.MethodGet, "/system/images", "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("GET without credentials: %d, want 401", w.Code)
	}
	w = f.do(t, http.MethodPut, "/system/images", "x")
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("PUT: %d Allow %q, want 405 with GET, HEAD, POST", w.Code, w.Header().Get("Allow"))
	}
}

func TestListImages(t *testing.T) {
	ctx := context.Background()
	inspector := &fakeInspector{have: map[string]runtime.ImageInfo{
		"my-fn:latest":          {ID: "sha256:aaa", Size: 100},
		"example/hello:0.1.0":   {ID: "sha256:hhh", Size: 200},
		"uploaded-only:2":       {ID: "sha256:uuu", Size: 300},
		"never-used-or-sent:1":  {ID: "sha256:nnn", Size: 400},
		"example/missing:1.0.0": {}, // not consulted: absent below
	}}
	delete(inspector.have, "example/missing:1.0.0")
	f := newFixture(t, func(c *Config) { c.Images, c.Inspect = &fakeLoader{}, inspector })
	if _, err := f.store.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev", Labels: map[string]string{"openfaas": "1"}}); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []types.FunctionDeployment{
		{Service: "b", Image: "my-fn"}, // the short form of my-fn:latest
		{Service: "a", Image: "my-fn:latest", Namespace: "dev"},
		{Service: "hello", Image: "example/hello:0.1.0"},
		{Service: "gone", Image: "example/missing:1.0.0"},
	} {
		if _, err := f.store.Create(ctx, fn, 1); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if err := f.store.PutImageUploads(ctx, []store.ImageUpload{
		{Ref: "my-fn:latest", ID: "sha256:aaa", Size: 100, UploadedAt: at},
		{Ref: "uploaded-only:2", ID: "sha256:uuu", Size: 300, UploadedAt: at},
		{Ref: "removed-since:1", ID: "sha256:rrr", Size: 9, UploadedAt: at},
	}); err != nil {
		t.Fatal(err)
	}

	w := f.do(t, http.MethodGet, "/system/images", "")
	if w.Code != 200 {
		t.Fatalf("status %d %q", w.Code, w.Body.String())
	}
	var got []json.RawMessage
	decodeJSON(t, w, &got)
	want := []string{
		`{"ref":"example/hello:0.1.0","id":"sha256:hhh","size":200,"present":true,"usedBy":["hello.openfaas-fn"],"uploaded":false}`,
		`{"ref":"example/missing:1.0.0","present":false,"usedBy":["gone.openfaas-fn"],"uploaded":false}`,
		`{"ref":"my-fn:latest","id":"sha256:aaa","size":100,"present":true,"usedBy":["a.dev","b.openfaas-fn"],"uploaded":true,"uploadedAt":"2026-05-01T10:00:00Z"}`,
		`{"ref":"removed-since:1","present":false,"usedBy":[],"uploaded":true,"uploadedAt":"2026-05-01T10:00:00Z"}`,
		`{"ref":"uploaded-only:2","id":"sha256:uuu","size":300,"present":true,"usedBy":[],"uploaded":true,"uploadedAt":"2026-05-01T10:00:00Z"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d images, want %d:\n%s", len(got), len(want), w.Body.String())
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("image %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}

	inspector.err = errors.New("connect to docker: refused")
	if w := f.do(t, http.MethodGet, "/system/images", ""); w.Code != http.StatusInternalServerError {
		t.Errorf("engine unreachable: %d %q, want 500", w.Code, w.Body.String())
	}
}

func TestListImagesWithoutTheFeature(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, http.MethodGet, "/system/images", "")
	if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "docker -H NODE image ls") {
		t.Errorf("GET: %d %q, want 501 saying what to do", w.Code, w.Body.String())
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"my-fn":                  "my-fn:latest",
		"my-fn:1":                "my-fn:1",
		"example/hello":          "example/hello:latest",
		"Not A Reference":        "Not A Reference",
		"a@sha256:" + hex64('0'): "a@sha256:" + hex64('0'),
		"library/alpine:3":       "alpine:3",
		"my-fn:latest":           "my-fn:latest",
		"UPPER/case:1":           "UPPER/case:1",
		"":                       "",
		"x:y:z":                  "x:y:z",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func hex64(c byte) string { return strings.Repeat(string(c), 64) }

// slowLoader reads the archive, then takes a while, as the engine
// registering big layers does.
type slowLoader struct {
	fakeLoader
	delay time.Duration
}

func (l *slowLoader) LoadImages(ctx context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	res, err := l.fakeLoader.LoadImages(ctx, archive)
	time.Sleep(l.delay)
	return res, err
}

// An upload that takes longer than the server's read and write timeouts
// is not cut off by them; one that stalls is, after the idle timeout.
func TestUploadImagesOutlivesServerTimeouts(t *testing.T) {
	loader := &slowLoader{fakeLoader: fakeLoader{result: []runtime.LoadedImage{{Ref: "slow:1", ID: "sha256:s", Size: 1}}}, delay: 1500 * time.Millisecond}
	// serve runs the router of a fixture with 1 s server timeouts.
	serve := func(edit func(*Config)) *httptest.Server {
		srv := httptest.NewUnstartedServer(newFixture(t, edit).h)
		srv.Config.ReadTimeout, srv.Config.WriteTimeout = time.Second, time.Second
		srv.Start()
		t.Cleanup(srv.Close)
		return srv
	}
	post := func(srv *httptest.Server, body io.Reader) (*http.Response, string, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/system/images", body)
		if err != nil {
			return nil, "", err
		}
		req.SetBasicAuth(testUser, testPass)
		res, err := srv.Client().Do(req)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, string(b), err
	}

	// 2.4 s of sending, then 1.5 s of loading: both beyond the server's 1 s.
	pr, pw := io.Pipe()
	go func() {
		for range 12 {
			time.Sleep(200 * time.Millisecond)
			if _, err := pw.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	srv := serve(func(c *Config) { c.Images, c.UploadIdleTimeout = loader, 3*time.Second })
	res, body, err := post(srv, pr)
	if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(body, `"ref":"slow:1"`) {
		t.Fatalf("slow upload: %v %v %q, want 200", res, err, body)
	}
	if len(loader.got) != 12000 {
		t.Errorf("the loader read %d bytes, want 12000", len(loader.got))
	}

	// A client that sends a little and then nothing is cut off once the
	// idle timeout passed.
	srv = serve(func(c *Config) { c.Images, c.UploadIdleTimeout = &fakeLoader{}, 500*time.Millisecond })
	pr, pw = io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("the start of an archive")) }()
	res, body, err = post(srv, pr)
	if err != nil || res.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "nothing arrived for 500ms") {
		t.Fatalf("stalled upload: %v %v %q, want 408", res, err, body)
	}
}
