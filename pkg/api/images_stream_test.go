package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// streamLoader reads the archive as the engine does, a chunk at a time,
// and closes reached once it holds the first `first` bytes: proof that
// they were handed on while the rest had not been sent yet.
type streamLoader struct {
	first   int
	reached chan struct{}
	got     []byte
}

func (l *streamLoader) LoadImages(_ context.Context, archive io.Reader) ([]runtime.LoadedImage, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := archive.Read(buf)
		before := len(l.got)
		l.got = append(l.got, buf[:n]...)
		if before < l.first && len(l.got) >= l.first {
			close(l.reached)
		}
		if errors.Is(err, io.EOF) {
			return []runtime.LoadedImage{{Ref: "streamed:1", ID: "sha256:s", Size: 1}}, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// The body reaches the engine's image load as it arrives: the loader
// holds the first part of the archive (past the 64 KiB read buffer) while
// the client has not sent the rest, plain and gzipped. A handler that read
// the whole body before loading would never get there.
func TestUploadImagesStreams(t *testing.T) {
	const half = 256 << 10
	archive := randomData(t, 2*half)

	// The gzip stream is flushed after the first half, so that what was
	// sent of it decompresses to the whole first half.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(archive[:half]); err != nil {
		t.Fatal(err)
	}
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	zFirst := bytes.Clone(z.Bytes())
	z.Reset()
	if _, err := zw.Write(archive[half:]); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zRest := bytes.Clone(z.Bytes())

	tests := []struct {
		name        string
		first, rest []byte // as sent
	}{
		{name: "plain", first: archive[:half], rest: archive[half:]},
		{name: "gzip", first: zFirst, rest: zRest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loader := &streamLoader{first: half, reached: make(chan struct{})}
			f := newFixture(t, func(c *Config) { c.Images = loader })
			pr, pw := io.Pipe()
			defer pw.Close()
			r := httptest.NewRequest(http.MethodPost, "/system/images", pr)
			r.ContentLength = -1
			r.SetBasicAuth(testUser, testPass)
			w := httptest.NewRecorder()
			served := make(chan struct{})
			go func() {
				defer close(served)
				f.h.ServeHTTP(w, r)
			}()

			sent := make(chan error, 1)
			go func() {
				_, err := pw.Write(tt.first)
				sent <- err
			}()
			select {
			case <-loader.reached:
			case <-served:
				t.Fatalf("answered %d %q before the rest was sent", w.Code, w.Body.String())
			case <-time.After(10 * time.Second):
				pw.CloseWithError(errors.New("test gave up"))
				<-served
				t.Fatalf("the loader did not get the first %d bytes of the archive while the rest was unsent: the body is not streamed", half)
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			go func() {
				_, err := pw.Write(tt.rest)
				pw.CloseWithError(err) // nil: EOF
			}()
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				pw.CloseWithError(errors.New("test gave up"))
				<-served
				t.Fatal("no answer 10 s after the whole archive was sent")
			}
			if w.Code != http.StatusOK {
				t.Fatalf("status %d %q, want 200", w.Code, w.Body.String())
			}
			if !bytes.Equal(loader.got, archive) {
				t.Errorf("the loader read %d bytes, not the %d-byte archive sent", len(loader.got), len(archive))
			}
		})
	}
}
