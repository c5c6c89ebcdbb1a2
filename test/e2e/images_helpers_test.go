package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Images the tests build on an engine through the Docker API, and remove.

// localEngine names, in logs, the engine the suite's daemons run on.
const localEngine = "the local engine"

// buildImage builds, through the Docker API, an image tagged ref from
// dockerfile and the other files of the context, and returns its ID.
func buildImage(t *testing.T, cli *client.Client, ref, dockerfile string, files map[string][]byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	buildTagged(ctx, t, cli, ref, dockerfile, files)
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("%s after its build: %v", ref, err)
	}
	return img.ID
}

// buildTagged builds ref from dockerfile and files with the legacy builder
// (no BuildKit needed on the engine), labelled as the suite's, and fails
// the test when the build does.
func buildTagged(ctx context.Context, t *testing.T, cli *client.Client, ref, dockerfile string, files map[string][]byte) {
	t.Helper()
	resp, err := cli.ImageBuild(ctx, buildContext(t, dockerfile, files), build.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Version: build.BuilderV1, Labels: map[string]string{labelE2E: "true"},
	})
	if err != nil {
		t.Fatalf("building %s: %v", ref, err)
	}
	defer resp.Body.Close()
	// The build's errors arrive in its output stream, not as the call's.
	var out bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		t.Fatalf("building %s: %v\n%s", ref, err, out.String())
	}
}

// buildContext is the tar archive of a build context: dockerfile as
// Dockerfile, and files.
func buildContext(t *testing.T, dockerfile string, files map[string][]byte) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("Dockerfile", []byte(dockerfile))
	for name, data := range files {
		add(name, data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// removeImages removes refs (tags or IDs a test created) from cli's engine,
// which where names in the log, with the untagged images of their build
// steps (the legacy builder keeps one per instruction as a parent, and with
// it the layers); one already gone is fine.
func removeImages(t *testing.T, cli *client.Client, where string, refs ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ref := range refs {
		if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Logf("cleanup: removing %s from %s: %v", ref, where, err)
		}
	}
}

// randomBytes returns n random bytes: content no image or archive shares.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24: it crashes instead
	return b
}
