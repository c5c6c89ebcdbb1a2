package push

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/openfaas/faas-provider/types"
)

// fakeEngine serves one image from memory.
type fakeEngine struct {
	ref     string
	img     Image
	archive []byte
	// failAfter, when > 0, breaks the archive stream after that many bytes.
	failAfter int
	// gate, when set, is awaited after the first half of the archive, so a
	// test can prove the gateway got bytes before the engine finished.
	gate <-chan struct{}

	mu    sync.Mutex
	saved []string
}

func (e *fakeEngine) Inspect(_ context.Context, ref string) (Image, error) {
	if ref != e.ref && ref != e.img.ID {
		return Image{}, fmt.Errorf("%s: %w", ref, ErrImageNotFound)
	}
	return e.img, nil
}

func (e *fakeEngine) Save(_ context.Context, ref string) (io.ReadCloser, error) {
	e.mu.Lock()
	e.saved = append(e.saved, ref)
	e.mu.Unlock()
	var r io.Reader = bytes.NewReader(e.archive)
	if e.failAfter > 0 {
		r = io.MultiReader(io.LimitReader(r, int64(e.failAfter)), errReader{errors.New("engine stream broke")})
	}
	if e.gate != nil {
		half := len(e.archive) / 2
		r = io.MultiReader(bytes.NewReader(e.archive[:half]), gateReader{e.gate}, bytes.NewReader(e.archive[half:]))
	}
	return io.NopCloser(r), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// gateReader waits for the gate, then ends.
type gateReader struct{ gate <-chan struct{} }

func (g gateReader) Read([]byte) (int, error) {
	<-g.gate
	return 0, io.EOF
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

// fakeGateway is an httptest gateway speaking the /system/images and
// /system/functions contract.
type fakeGateway struct {
	t        *testing.T
	user, pw string // required basic auth ("" = open)

	// loadStatus/loadBody replace the success answer of /system/images.
	loadStatus int
	loadBody   string
	// readBeforeError is how much of the archive is read before an error
	// answer (a size limit hit in the middle of the stream).
	readBeforeError int64
	// exists makes PUT /system/functions succeed (else 404).
	exists bool
	// deployStatus/deployBody replace the success answer of deploys.
	deployStatus int
	deployBody   string
	// firstBytes is closed when the first archive bytes arrived.
	firstBytes chan struct{}
	firstOnce  sync.Once

	mu          sync.Mutex
	archive     []byte // decompressed
	gzipped     bool
	contentType string
	chunked     bool
	expect      string
	methods     []string
	deployed    []types.FunctionDeployment
	authSeen    []string
}

func newFakeGateway(t *testing.T) *fakeGateway {
	return &fakeGateway{t: t, firstBytes: make(chan struct{})}
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.authSeen = append(g.authSeen, r.Header.Get("Authorization"))
	g.mu.Unlock()
	if g.pw != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != g.user || p != g.pw {
			w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
			http.Error(w, "invalid credentials", http.StatusUnauthorized)
			return
		}
	}
	switch r.URL.Path {
	case "/system/images":
		g.images(w, r)
	case "/system/functions":
		g.functions(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) images(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if g.loadStatus != 0 && g.loadStatus != http.StatusOK {
		_, _ = io.CopyN(io.Discard, r.Body, g.readBeforeError)
		http.Error(w, g.loadBody, g.loadStatus)
		return
	}
	br := bufio.NewReader(r.Body)
	first, err := br.Peek(2)
	if err != nil {
		http.Error(w, "empty archive", http.StatusBadRequest)
		return
	}
	g.firstOnce.Do(func() { close(g.firstBytes) })
	var body io.Reader = br
	gz := first[0] == 0x1f && first[1] == 0x8b
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, "reading archive: "+err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.archive, g.gzipped = data, gz
	g.contentType = r.Header.Get("Content-Type")
	g.chunked = r.ContentLength == -1
	g.expect = r.Header.Get("Expect")
	g.mu.Unlock()
	if g.loadBody != "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, g.loadBody)
		return
	}
	sum := sha256.Sum256(data)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"images": []LoadedImage{
		{Ref: "my-fn:latest", ID: fmt.Sprintf("sha256:%x", sum), Size: int64(len(data))},
	}})
}

func (g *fakeGateway) functions(w http.ResponseWriter, r *http.Request) {
	var spec types.FunctionDeployment
	if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.methods = append(g.methods, r.Method)
	g.deployed = append(g.deployed, spec)
	g.mu.Unlock()
	switch {
	case g.deployStatus != 0:
		http.Error(w, g.deployBody, g.deployStatus)
	case r.Method == http.MethodPut && !g.exists:
		http.Error(w, "function "+spec.Service+" not found", http.StatusNotFound)
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (g *fakeGateway) start() *httptest.Server {
	srv := httptest.NewServer(g)
	g.t.Cleanup(srv.Close)
	return srv
}
