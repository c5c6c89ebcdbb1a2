package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/go-sdk/builder"
)

// buildRepo names the images the build tests have the daemon build; each
// test removes its own tags.
const buildRepo = "dockerfaasd-e2e-build/"

// buildRecord is what GET /system/builds returns per build.
type buildRecord struct {
	ID     string   `json:"id"`
	Image  string   `json:"image"`
	Status string   `json:"status"`
	Error  string   `json:"error"`
	Log    []string `json:"log"`
	Test   *struct {
		Passed bool   `json:"passed"`
		Status int    `json:"status"`
		Body   string `json:"body"`
	} `json:"test"`
	Deployed string `json:"deployed"`
}

// builderOf is the go-sdk's builder client, as faas-cli makes it, for d.
func builderOf(t *testing.T, d *daemon) *builder.FunctionBuilder {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(d.stateDir, "payload-secret"))
	if err != nil {
		t.Fatalf("payload secret: %v", err)
	}
	return builderWith(t, d, strings.TrimSpace(string(secret)))
}

func builderWith(t *testing.T, d *daemon, secret string) *builder.FunctionBuilder {
	t.Helper()
	u, err := url.Parse(d.baseURL)
	if err != nil {
		t.Fatal(err)
	}
	return builder.NewFunctionBuilder(u, &http.Client{Timeout: 5 * time.Minute}, builder.WithHmacAuth(secret))
}

// contextDir writes files (name → content) into a new directory.
func contextDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, body)
	}
	return dir
}

// makeTarWith is the go-sdk's MakeTar with our config extensions (lang,
// test, deploy) in com.openfaas.docker.config: the same layout, context/…
// then the config.
func makeTarWith(t *testing.T, contextPath string, config map[string]any) string {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "req.tar")
	// MakeTar writes the context exactly as faas-cli does; its config
	// entry is then replaced by ours.
	if err := builder.MakeTar(tarPath, contextPath, &builder.BuildConfig{Image: "x"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == builder.BuilderConfigFileName {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(config)
	if err := tw.WriteHeader(&tar.Header{Name: builder.BuilderConfigFileName, Mode: 0o664, Size: int64(len(cfg))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(cfg)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarPath, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return tarPath
}

// streamBuild builds with the NDJSON stream, as faas-cli does, and returns
// the statuses seen and the final result.
func streamBuild(t *testing.T, b *builder.FunctionBuilder, tarPath string) ([]string, builder.BuildResult) {
	t.Helper()
	stream, err := b.BuildWithStream(tarPath)
	if err != nil {
		t.Fatalf("BuildWithStream: %v", err)
	}
	defer stream.Close()
	var statuses []string
	var last builder.BuildResult
	for res, err := range stream.Results() {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		statuses = append(statuses, res.Status)
		last = res
	}
	return statuses, last
}

func (d *daemon) imageExists(ref string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.docker.ImageInspect(ctx, ref)
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.t.Fatalf("inspect %s: %v", ref, err)
	}
	return err == nil
}

// echoVersion invokes fn-echo behind fn and returns its BUILD_VERSION.
func (d *daemon) echoVersion(fn string) (string, error) {
	res, err := d.request(http.MethodGet, "/function/"+fn, nil, nil, authBasic)
	if err != nil {
		return "", err
	}
	if res.Status != http.StatusOK {
		return "", fmt.Errorf("invoke %s: %s", fn, res)
	}
	rep, err := decodeEcho(res)
	if err != nil {
		return "", err
	}
	return rep.Env["BUILD_VERSION"], nil
}

// TestBuild drives POST /build with the go-sdk builder, faas-cli's own
// client: a streamed build that succeeds and deploys, a bad signature, a
// broken Dockerfile, a handler-only build from an uploaded template run
// with a plain docker run, a failing test that keeps the old version
// serving, and the build records.
func TestBuild(t *testing.T) {
	t.Parallel()
	tag := buildRepo + randomSuffix(8)
	v1, v2, tpl, broken, unsigned := tag+":v1", tag+":v2", tag+":tpl", tag+":broken", tag+":unsigned"
	// Registered before the daemon, so it runs after the daemon's cleanup
	// removed the containers that use these images.
	cli := requireDocker(t)
	t.Cleanup(func() { removeImages(t, cli, "engine", v1, v2, tpl, broken, unsigned) })
	d := startDaemon(t)
	echo := fnImage(t, fnEcho)
	b := builderOf(t, d)
	dockerfile := "FROM " + echo + "\nARG VERSION\nENV BUILD_VERSION=$VERSION\n"
	fn := "built-" + randomSuffix(5)

	t.Run("stream success and deploy", func(t *testing.T) {
		tarPath := filepath.Join(t.TempDir(), "req.tar")
		if err := builder.MakeTar(tarPath, contextDir(t, map[string]string{"Dockerfile": dockerfile}), &builder.BuildConfig{
			Image: v1, BuildArgs: map[string]string{"VERSION": "v1"}, Platforms: []string{"linux/" + hostArch(t, d)},
		}); err != nil {
			t.Fatal(err)
		}
		statuses, last := streamBuild(t, b, tarPath)
		if len(statuses) < 2 || statuses[0] != builder.BuildInProgress || last.Status != builder.BuildSuccess || last.Image != v1 {
			t.Fatalf("statuses %v, last %+v", statuses, last)
		}
		if !d.imageExists(v1) {
			t.Fatalf("image %s missing after success", v1)
		}
		d.deploy(simpleSpec(fn, v1, nil, nil))
		d.waitReady(fn, defaultNamespace, 1)
		eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
			v, err := d.echoVersion(fn)
			if err == nil && v != "v1" {
				err = fmt.Errorf("BUILD_VERSION %q, want v1", v)
			}
			return err
		})
	})

	t.Run("bad signature", func(t *testing.T) {
		tarPath := filepath.Join(t.TempDir(), "req.tar")
		if err := builder.MakeTar(tarPath, contextDir(t, map[string]string{"Dockerfile": dockerfile}), &builder.BuildConfig{Image: unsigned}); err != nil {
			t.Fatal(err)
		}
		_, err := builderWith(t, d, "not-the-secret").Build(tarPath)
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("Build with a bad secret = %v, want status 401", err)
		}
		if d.imageExists(unsigned) {
			t.Fatalf("image %s built for an unsigned request", unsigned)
		}
	})

	t.Run("broken Dockerfile", func(t *testing.T) {
		tarPath := filepath.Join(t.TempDir(), "req.tar")
		if err := builder.MakeTar(tarPath, contextDir(t, map[string]string{"Dockerfile": "FROM " + echo + "\nCOPY missing.txt /missing.txt\n"}), &builder.BuildConfig{Image: broken}); err != nil {
			t.Fatal(err)
		}
		res, err := b.Build(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != builder.BuildFailed || !strings.Contains(res.Error, "missing.txt") {
			t.Fatalf("result %+v, want failed with the engine's error about missing.txt", res)
		}
	})

	t.Run("template handler only, plain docker run", func(t *testing.T) {
		lang := "e2e-echo-" + randomSuffix(4)
		var archive bytes.Buffer
		tw := tar.NewWriter(&archive)
		for name, body := range map[string]string{
			"Dockerfile":            "FROM " + echo + "\nCOPY handler/ /handler/\nENV BUILD_VERSION=tpl\n",
			"template.yml":          "language: " + lang + "\nhandler_folder: handler\n",
			"handler/version.txt":   "skeleton",
			"handler/from-template": "kept",
		} {
			_ = tw.WriteHeader(&tar.Header{Name: "template/" + lang + "/" + name, Mode: 0o644, Size: int64(len(body))})
			_, _ = tw.Write([]byte(body))
		}
		_ = tw.Close()
		if res := d.invokeAuth(http.MethodPut, "/system/templates/"+lang, archive.Bytes()); res.Status != http.StatusNoContent {
			t.Fatalf("upload template: %s", res)
		}
		if res := d.invokeAuth(http.MethodGet, "/system/templates", nil); !strings.Contains(string(res.Body), lang) {
			t.Fatalf("templates list: %s", res)
		}
		handler := contextDir(t, map[string]string{"version.txt": "handler-v1", "build/x": "skipped", "template/y": "skipped"})
		tarPath := makeTarWith(t, handler, map[string]any{"image": tpl, "lang": lang})
		statuses, last := streamBuild(t, b, tarPath)
		if last.Status != builder.BuildSuccess {
			t.Fatalf("statuses %v, last %+v", statuses, last)
		}
		ip := d.plainRun(t, tpl)
		for path, want := range map[string]string{"/handler/version.txt": "handler-v1", "/handler/from-template": "kept"} {
			got := getFrom(t, ip, "/file?path="+path)
			if got.Status != http.StatusOK || string(got.Body) != want {
				t.Errorf("file %s: %s, want %q", path, got, want)
			}
		}
		if got := getFrom(t, ip, "/file?path=/handler/build/x"); got.Status != http.StatusNotFound {
			t.Errorf("the handler's build/ was copied: %s", got)
		}
	})

	t.Run("failing test keeps the old version", func(t *testing.T) {
		ctxDir := contextDir(t, map[string]string{"Dockerfile": dockerfile})
		tarPath := makeTarWith(t, ctxDir, map[string]any{
			"image":     v2,
			"buildArgs": map[string]string{"VERSION": "v2"},
			"test":      map[string]any{"path": "/status/500", "status": 200},
			"deploy":    map[string]any{"name": fn},
		})
		_, last := streamBuild(t, b, tarPath)
		if last.Status != builder.BuildFailed || !strings.Contains(last.Error, "test failed") {
			t.Fatalf("last %+v, want failed by the test", last)
		}
		// Deploy is desired state only: give the controller a moment it
		// would need to roll, then check v1 still serves.
		time.Sleep(2 * time.Second)
		if v, err := d.echoVersion(fn); err != nil || v != "v1" {
			t.Fatalf("after a failed test: %q %v, want v1 serving", v, err)
		}
		st, _, err := d.getFunction(fn, defaultNamespace)
		if err != nil || st.Image != v1 {
			t.Fatalf("function image %q %v, want %s", st.Image, err, v1)
		}
		// The same build with a test that passes deploys v2.
		tarPath = makeTarWith(t, ctxDir, map[string]any{
			"image":     v2,
			"buildArgs": map[string]string{"VERSION": "v2"},
			"test":      map[string]any{"path": "/", "contains": `"BUILD_VERSION":"v2"`},
			"deploy":    map[string]any{"name": fn},
		})
		if _, last := streamBuild(t, b, tarPath); last.Status != builder.BuildSuccess {
			t.Fatalf("last %+v, want success", last)
		}
		eventually(t, 60*time.Second, 250*time.Millisecond, func() error {
			v, err := d.echoVersion(fn)
			if err == nil && v != "v2" {
				err = fmt.Errorf("BUILD_VERSION %q, want v2", v)
			}
			return err
		})
	})

	t.Run("records", func(t *testing.T) {
		res := d.invokeAuth(http.MethodGet, "/system/builds", nil)
		var list []buildRecord
		if err := json.Unmarshal(res.Body, &list); err != nil || res.Status != http.StatusOK {
			t.Fatalf("GET /system/builds: %s %v", res, err)
		}
		byStatus := map[string]int{}
		var failedTest *buildRecord
		for i, r := range list {
			byStatus[r.Status]++
			if len(r.Log) == 0 {
				t.Errorf("build %s has no log", r.ID)
			}
			if r.Test != nil && !r.Test.Passed && failedTest == nil {
				failedTest = &list[i]
			}
		}
		if byStatus["success"] != 3 || byStatus["failed"] != 2 {
			t.Errorf("statuses %v, want 3 success and 2 failed (unsigned request: no record)", byStatus)
		}
		if failedTest == nil || failedTest.Test.Status != http.StatusInternalServerError || !strings.Contains(strings.Join(failedTest.Log, "\n"), "response status 500") {
			t.Errorf("failed test record %+v, want the 500 answer in the log", failedTest)
		}
		if len(list) > 0 {
			if one := d.invokeAuth(http.MethodGet, "/system/builds/"+list[0].ID, nil); one.Status != http.StatusOK {
				t.Errorf("GET one: %s", one)
			}
		}
		if res := d.invokeAuth(http.MethodGet, "/system/builds/nope", nil); res.Status != http.StatusNotFound {
			t.Errorf("GET unknown: %s", res)
		}
		// The test's throwaway containers and networks are gone.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cs, err := d.docker.ContainerList(ctx, containerListAll("io.dockerfaas.instance="+d.instance, "io.dockerfaas.role=build-test"))
		if err != nil || len(cs) != 0 {
			t.Errorf("build test containers left: %d %v", len(cs), err)
		}
		// Networks by label, and by name (FUNCTIONS_NETWORK-build-…) in
		// case one lost its labels.
		nws, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", "io.dockerfaas.instance="+d.instance),
			filters.Arg("label", "io.dockerfaas.role=build-test"))})
		if err != nil || len(nws) != 0 {
			t.Errorf("build test networks left by label: %d %v", len(nws), err)
		}
		prefix := d.network + "-build-"
		nws, err = d.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", prefix))})
		if err != nil {
			t.Errorf("list networks named %s…: %v", prefix, err)
		}
		for _, n := range nws {
			if strings.HasPrefix(n.Name, prefix) {
				t.Errorf("build test network left: %s", n.Name)
			}
		}
	})
}

// invokeAuth is request with the daemon's credentials, failing on a
// transport error.
func (d *daemon) invokeAuth(method, path string, body []byte) httpResult {
	d.t.Helper()
	res, err := d.request(method, path, body, nil, authBasic)
	if err != nil {
		d.t.Fatal(err)
	}
	return res
}

// hostArch is the engine's architecture, as platforms name it.
func hostArch(t *testing.T, d *daemon) string {
	t.Helper()
	v, err := d.docker.ServerVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.Arch
}

// plainRun runs image with a plain container create and start on a network
// of its own (both removed when t ends) and returns its address once it
// answers /_/health.
func (d *daemon) plainRun(t *testing.T, image string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "e2e-build-run-" + randomSuffix(6)
	nw, err := d.docker.NetworkCreate(ctx, name, network.CreateOptions{Labels: map[string]string{labelE2E: "build"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.docker.NetworkRemove(context.Background(), nw.ID) })
	created, err := d.docker.ContainerCreate(ctx, &container.Config{Image: image, Labels: map[string]string{labelE2E: "build"}},
		&container.HostConfig{NetworkMode: container.NetworkMode(name)}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.docker.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := d.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	ins, err := d.docker.ContainerInspect(ctx, created.ID)
	if err != nil || ins.NetworkSettings == nil || ins.NetworkSettings.Networks[name] == nil {
		t.Fatalf("inspect: %v", err)
	}
	ip := ins.NetworkSettings.Networks[name].IPAddress
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if res := getFrom(t, ip, "/_/health"); res.Status != http.StatusOK {
			return fmt.Errorf("health: %s", res)
		}
		return nil
	})
	return ip
}

// getFrom GETs path from fn-echo at ip:8080 (a status 0 result when it
// does not answer).
func getFrom(t *testing.T, ip, path string) httpResult {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	res, err := c.Get("http://" + net.JoinHostPort(ip, "8080") + path)
	if err != nil {
		return httpResult{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: b}
}
