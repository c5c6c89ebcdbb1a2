package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Test function images. Each is a tiny stdlib-only Go program under
// testdata/<name>/ (no go.mod there: `./...` ignores testdata, but an explicit
// path builds), compiled statically and copied into a FROM scratch image.
const (
	fnHostname = "fn-hostname"
	fnEcho     = "fn-echo"

	// imageRepoPrefix names every image the suite builds. They are left in
	// the engine on purpose so the next run reuses them.
	imageRepoPrefix = "dockerfaasd-e2e/"
	// labelE2E marks images built by this suite.
	labelE2E = "io.dockerfaas.e2e"
	// labelE2EContent carries the content hash an image was built from.
	labelE2EContent = "io.dockerfaas.e2e.content"
)

// fnDockerfile is the whole Dockerfile of every test function image.
const fnDockerfile = "FROM scratch\nCOPY fn /fn\nEXPOSE 8080\nENTRYPOINT [\"/fn\"]\n"

// fnBuildFlags are the go build flags for test function binaries.
var fnBuildFlags = []string{"-trimpath", "-ldflags=-s -w"}

// images remembers, per test function, the outcome of its one build.
var images struct {
	mu    sync.Mutex
	once  map[string]*sync.Once
	tag   map[string]string
	err   map[string]error
	built map[string]bool // true when built in this run, false when reused
}

// fnImage returns the tag of the image for the test function fn (fnEcho or
// fnHostname), building it at most once per run, and reusing an image left
// by an earlier run when its content hash matches.
func fnImage(t *testing.T, fn string) string {
	t.Helper()
	cli := requireDocker(t)

	images.mu.Lock()
	if images.once == nil {
		images.once = map[string]*sync.Once{}
		images.tag = map[string]string{}
		images.err = map[string]error{}
		images.built = map[string]bool{}
	}
	once, ok := images.once[fn]
	if !ok {
		once = new(sync.Once)
		images.once[fn] = once
	}
	images.mu.Unlock()

	once.Do(func() {
		start := time.Now()
		tag, built, err := ensureFnImage(cli, fn)
		images.mu.Lock()
		images.tag[fn], images.built[fn], images.err[fn] = tag, built, err
		images.mu.Unlock()
		if err == nil {
			verb := "reused"
			if built {
				verb = "built"
			}
			t.Logf("%s image %s in %s", verb, tag, time.Since(start).Round(time.Millisecond))
		}
	})

	images.mu.Lock()
	defer images.mu.Unlock()
	if err := images.err[fn]; err != nil {
		t.Fatalf("e2e harness: image for %s: %v", fn, err)
	}
	return images.tag[fn]
}

// ensureFnImage makes sure the image for fn exists and returns its tag and
// whether it had to be built.
func ensureFnImage(cli *client.Client, fn string) (tag string, built bool, err error) {
	srcDir := filepath.Join(suite.moduleRoot, "test", "e2e", "testdata", fn)
	hash, err := fnContentHash(srcDir)
	if err != nil {
		return "", false, err
	}
	tag = imageRepoPrefix + fn + ":" + hash[:16]

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if img, err := cli.ImageInspect(ctx, tag); err == nil && img.Config != nil &&
		img.Config.Labels[labelE2EContent] == hash {
		return tag, false, nil
	}

	binDir, err := os.MkdirTemp(suite.workDir, fn+"-")
	if err != nil {
		return "", false, err
	}
	bin := filepath.Join(binDir, "fn")
	args := append([]string{"build"}, fnBuildFlags...)
	args = append(args, "-o", bin, "./test/e2e/testdata/"+fn)
	if err := goCommand(suite.moduleRoot, []string{"CGO_ENABLED=0", "GOOS=linux"}, args...); err != nil {
		return "", false, fmt.Errorf("compiling %s: %w", fn, err)
	}

	buildCtx, err := tarContext(bin)
	if err != nil {
		return "", false, err
	}
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Version:     build.BuilderV1,
		Labels:      map[string]string{labelE2E: "true", labelE2EContent: hash},
	})
	if err != nil {
		return "", false, fmt.Errorf("image build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		return "", false, fmt.Errorf("image build %s: %w\n%s", tag, err, strings.TrimSpace(out.String()))
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return "", false, fmt.Errorf("image %s missing after a build that reported success: %w\n%s", tag, err, out.String())
	}
	return tag, true, nil
}

// fnContentHash hashes everything an image's content depends on: the
// program's sources, the Dockerfile, the Go toolchain and the build flags.
func fnContentHash(srcDir string) (string, error) {
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		return "", fmt.Errorf("test function sources: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "dockerfile\x00%s\x00go\x00%s\x00%s\x00flags\x00%s\x00",
		fnDockerfile, runtime.Version(), runtime.GOARCH, strings.Join(fnBuildFlags, " "))
	n := 0
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(srcDir, e.Name()))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file\x00%s\x00%d\x00", e.Name(), len(b))
		h.Write(b)
		n++
	}
	if n == 0 {
		return "", errors.New("no .go files in " + srcDir)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tarContext returns an in-memory build context holding the Dockerfile and
// the binary at bin, named fn.
func tarContext(bin string) (io.Reader, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(fnDockerfile)},
		{"fn", 0o755, data},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
