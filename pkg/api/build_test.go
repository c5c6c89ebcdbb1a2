package api

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
