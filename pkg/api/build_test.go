package api

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

const buildSecret = "payload"

// stubBuilder builds nothing and answers tests with 200 "ok".
type stubBuilder struct{ err error }

func (s stubBuilder) Build(_ context.Context, req runtime.BuildRequest, emit func(string)) error {
	buf := new(bytes.Buffer)
	_, _ = buf.ReadFrom(req.Context)
	emit("Step 1/1 : FROM scratch")
	emit("Successfully tagged " + req.Image)
	return s.err
}

func (stubBuilder) Platform(context.Context) (string, error) { return "linux/amd64", nil }

func (stubBuilder) TestImage(context.Context, runtime.ImageTest) (runtime.ImageTestResult, error) {
	return runtime.ImageTestResult{Status: 200, Body: []byte("ok")}, nil
}

func buildTar(t *testing.T, config string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{{"context/Dockerfile", "FROM scratch"}, {"com.openfaas.docker.config", config}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(e.body))
	}
	_ = tw.Close()
	return buf.Bytes()
}

func buildFixture(t *testing.T, b runtime.Builder, edit func(*build.Config)) *fixture {
	return newFixture(t, func(c *Config) {
		bc := build.Config{Records: c.Store, WorkDir: t.TempDir(), Secret: []byte(buildSecret), Deploy: NewImageDeployer(c.Store, scaling.Defaults{}, 0, nil)}
		if b != nil {
			bc.Builder = b
		}
		if edit != nil {
			edit(&bc)
		}
		c.Build = build.New(bc)
	})
}

func postBuild(t *testing.T, f *fixture, body []byte, sig string, stream bool) (int, string) {
	t.Helper()
	w := f.send(t, http.MethodPost, "/build", string(body), func(r *http.Request) {
		r.Header.Set("Content-Type", "application/octet-stream")
		if sig != "" {
			r.Header.Set(build.SignatureHeader, sig)
		}
		if stream {
			r.Header.Set("Accept", "application/x-ndjson")
		}
	})
	return w.Code, w.Body.String()
}

func TestBuildAPI(t *testing.T) {
	f := buildFixture(t, stubBuilder{}, nil)
	body := buildTar(t, `{"image":"fn:1"}`)
	sig := build.Sign(body, []byte(buildSecret))

	for _, bad := range []string{"", "sha256=00", build.Sign(body, []byte("wrong"))} {
		if code, _ := postBuild(t, f, body, bad, false); code != http.StatusUnauthorized {
			t.Errorf("signature %q: %d, want 401", bad, code)
		}
	}
	if list, _ := f.store.ListBuilds(t.Context(), 0); len(list) != 0 {
		t.Fatalf("unauthorized requests built: %+v", list)
	}

	code, out := postBuild(t, f, body, sig, false)
	var res buildResult
	if err := json.Unmarshal([]byte(out), &res); code != http.StatusOK || err != nil {
		t.Fatalf("POST /build = %d %s", code, out)
	}
	if res.Status != "success" || res.Image != "fn:1" || len(res.Log) != 2 || res.ID == "" {
		t.Errorf("result = %+v", res)
	}

	code, out = postBuild(t, f, body, sig, true)
	if code != http.StatusOK {
		t.Fatalf("stream: %d %s", code, out)
	}
	var statuses []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r buildResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		statuses = append(statuses, r.Status)
	}
	if got := strings.Join(statuses, ","); got != "in_progress,in_progress,success" {
		t.Errorf("stream statuses = %s", got)
	}

	w := f.do(t, http.MethodGet, "/system/builds", "")
	var list []store.Build
	decodeJSON(t, w, &list)
	if len(list) != 2 || list[0].ID <= list[1].ID || len(list[0].Log) != 2 {
		t.Errorf("GET /system/builds = %+v", list)
	}
	if w := f.do(t, http.MethodGet, "/system/builds/"+list[1].ID, ""); w.Code != http.StatusOK {
		t.Errorf("GET one = %d", w.Code)
	}
	if w := f.do(t, http.MethodGet, "/system/builds/nope", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET unknown = %d", w.Code)
	}
	if w := f.send(t, http.MethodGet, "/system/builds", "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("GET without auth = %d", w.Code)
	}
}

func TestBuildAPIRefusals(t *testing.T) {
	body := buildTar(t, `{"image":"fn:1","platforms":["linux/arm64"]}`)
	sig := build.Sign(body, []byte(buildSecret))
	tests := []struct {
		name    string
		builder runtime.Builder
		edit    func(*build.Config)
		want    int
		msg     string
	}{
		{"no builder", nil, nil, http.StatusNotImplemented, "not supported"},
		{"too large", stubBuilder{}, func(c *build.Config) { c.MaxBytes = 100 }, http.StatusRequestEntityTooLarge, "BUILD_MAX_BYTES"},
		{"other platform", stubBuilder{}, nil, http.StatusBadRequest, "one platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := buildFixture(t, tc.builder, tc.edit)
			code, out := postBuild(t, f, body, sig, false)
			if code != tc.want || !strings.Contains(out, tc.msg) {
				t.Errorf("POST /build = %d %q, want %d %q", code, out, tc.want, tc.msg)
			}
		})
	}
	t.Run("busy", func(t *testing.T) {
		var svc *build.Service
		f := newFixture(t, func(c *Config) {
			svc = build.New(build.Config{Builder: stubBuilder{}, Records: c.Store, WorkDir: t.TempDir(), Secret: []byte(buildSecret), Concurrency: 1})
			c.Build = svc
		})
		release, _ := svc.Acquire()
		defer release()
		code, out := postBuild(t, f, body, sig, false)
		if code != http.StatusTooManyRequests || !strings.Contains(out, "Concurrent request limit exceeded") {
			t.Errorf("POST /build = %d %q, want 429", code, out)
		}
	})
}

// countingBuilder is stubBuilder counting the images it builds.
type countingBuilder struct {
	stubBuilder
	mu     sync.Mutex
	images []string
}

func (c *countingBuilder) Build(ctx context.Context, req runtime.BuildRequest, emit func(string)) error {
	c.mu.Lock()
	c.images = append(c.images, req.Image)
	c.mu.Unlock()
	return c.stubBuilder.Build(ctx, req, emit)
}

func (c *countingBuilder) built() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.images...)
}

// stalledBody is a request body whose first Read is signalled on started
// and which delivers what is written to w.
type stalledBody struct {
	r       *io.PipeReader
	w       *io.PipeWriter
	once    sync.Once
	started chan struct{}
}

func newStalledBody() *stalledBody {
	r, w := io.Pipe()
	return &stalledBody{r: r, w: w, started: make(chan struct{})}
}

func (b *stalledBody) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	return b.r.Read(p)
}

// Uploads still under way, unsigned or badly signed, hold no build slot:
// a signed build beside them is served, and they end 401 having built
// nothing.
func TestBuildAPISlotAfterSignature(t *testing.T) {
	b := &countingBuilder{}
	f := buildFixture(t, b, func(c *build.Config) { c.Concurrency = 2 })
	stalledTar := buildTar(t, `{"image":"stalled:1"}`)
	stalled := []struct {
		name, sig string
	}{
		{"no signature", ""},
		{"bad signature", build.Sign(stalledTar, []byte("wrong"))},
	}
	type answer struct {
		name string
		w    *httptest.ResponseRecorder
	}
	answers := make(chan answer, len(stalled))
	bodies := make([]*stalledBody, len(stalled))
	// As many stalled uploads as there are slots.
	for i, s := range stalled {
		bodies[i] = newStalledBody()
		r := httptest.NewRequest(http.MethodPost, "/build", bodies[i])
		if s.sig != "" {
			r.Header.Set(build.SignatureHeader, s.sig)
		}
		go func() {
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			answers <- answer{s.name, w}
		}()
		select {
		case <-bodies[i].started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the handler never read the body", s.name)
		}
	}

	body := buildTar(t, `{"image":"fn:1"}`)
	code, out := postBuild(t, f, body, build.Sign(body, []byte(buildSecret)), false)
	if code != http.StatusOK || !strings.Contains(out, `"success"`) {
		t.Errorf("signed build beside %d stalled uploads = %d %s, want 200 success", len(stalled), code, out)
	}

	for _, sb := range bodies {
		go func() {
			_, _ = sb.w.Write(stalledTar)
			_ = sb.w.Close()
		}()
	}
	for range stalled {
		select {
		case a := <-answers:
			if a.w.Code != http.StatusUnauthorized {
				t.Errorf("%s: %d %s, want 401", a.name, a.w.Code, a.w.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stalled upload got no answer once its body was in")
		}
	}
	if got := b.built(); len(got) != 1 || got[0] != "fn:1" {
		t.Errorf("built %v, want only fn:1", got)
	}
	if list, _ := f.store.ListBuilds(t.Context(), 0); len(list) != 1 || list[0].Image != "fn:1" {
		t.Errorf("records %+v, want only the signed build's", list)
	}
}

// The bodies read at once are bounded (they are spooled to disk before the
// signature is checked): one more is a 429, and a slot frees once a body
// is in.
func TestBuildAPIReceivingBounded(t *testing.T) {
	f := buildFixture(t, &countingBuilder{}, func(c *build.Config) { c.Concurrency = 1 })
	n := uploadsPerSlot // × 1 slot
	var bodies []*stalledBody
	answers := make(chan int, n)
	for range n {
		sb := newStalledBody()
		bodies = append(bodies, sb)
		r := httptest.NewRequest(http.MethodPost, "/build", sb)
		go func() {
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			answers <- w.Code
		}()
		select {
		case <-sb.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler never read a body")
		}
	}
	body := buildTar(t, `{"image":"fn:1"}`)
	code, out := postBuild(t, f, body, build.Sign(body, []byte(buildSecret)), false)
	if code != http.StatusTooManyRequests || !strings.Contains(out, fmt.Sprintf("at most %d", n)) {
		t.Errorf("build beside %d bodies being received = %d %s, want 429 naming the bound", n, code, out)
	}
	_ = bodies[0].w.CloseWithError(io.ErrUnexpectedEOF) // one upload breaks off
	if code := <-answers; code != http.StatusBadRequest {
		t.Errorf("broken upload = %d, want 400", code)
	}
	if code, out := postBuild(t, f, body, build.Sign(body, []byte(buildSecret)), false); code != http.StatusOK {
		t.Errorf("build once a receiving slot freed = %d %s, want 200", code, out)
	}
	for _, sb := range bodies[1:] {
		_ = sb.w.CloseWithError(io.ErrUnexpectedEOF)
	}
	for range n - 1 {
		<-answers
	}
}

func TestBuildAPIDeploy(t *testing.T) {
	f := buildFixture(t, stubBuilder{}, nil)
	for _, img := range []string{"fn:1", "fn:2"} {
		body := buildTar(t, `{"image":"`+img+`","test":{"contains":"ok"},"deploy":{"name":"fn"}}`)
		if code, out := postBuild(t, f, body, build.Sign(body, []byte(buildSecret)), false); code != http.StatusOK || !strings.Contains(out, `"success"`) {
			t.Fatalf("POST /build = %d %s", code, out)
		}
		if got := f.get(t, "openfaas-fn/fn"); got.Spec.Image != img || got.Replicas != 1 {
			t.Fatalf("after build of %s: %+v", img, got)
		}
	}
}

func TestTemplatesAPI(t *testing.T) {
	f := buildFixture(t, stubBuilder{}, nil)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: 12})
	_, _ = tw.Write([]byte("FROM scratch"))
	_ = tw.Close()
	if w := f.do(t, http.MethodPut, "/system/templates/go", buf.String()); w.Code != http.StatusNoContent {
		t.Fatalf("PUT = %d %s", w.Code, w.Body)
	}
	if w := f.do(t, http.MethodPut, "/system/templates/..", buf.String()); w.Code == http.StatusNoContent {
		t.Errorf("PUT .. = %d", w.Code)
	}
	var list []build.Template
	decodeJSON(t, f.do(t, http.MethodGet, "/system/templates", ""), &list)
	if len(list) != 1 || list[0].Name != "go" || list[0].HandlerFolder != "function" {
		t.Errorf("list = %+v", list)
	}
	if w := f.do(t, http.MethodDelete, "/system/templates/go", ""); w.Code != http.StatusNoContent {
		t.Errorf("DELETE = %d", w.Code)
	}
	if w := f.do(t, http.MethodGet, "/system/templates/go", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET after delete = %d", w.Code)
	}
	if w := f.send(t, http.MethodPut, "/system/templates/go", buf.String(), nil); w.Code != http.StatusUnauthorized {
		t.Errorf("PUT without auth = %d", w.Code)
	}
}
