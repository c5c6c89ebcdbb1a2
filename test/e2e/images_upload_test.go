package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// Image upload (POST /system/images, GET /system/images) against the real
// daemon and the real engine: images built here under a unique tag, saved
// with the Docker API, removed from the engine, then uploaded.

// uploadRepoPrefix names every image these tests tag; each test removes
// the tags it made, and only those.
const uploadRepoPrefix = "dockerfaasd-e2e-upload/"

// uploadedImage is one image a test built and saved, then removed from the
// engine so that only an upload can bring it back.
type uploadedImage struct {
	ref     string
	id      string
	archive []byte // `docker save` of ref, plain tar
}

// uniqueUploadRef returns a reference no other test or run uses, and
// removes it from the engine when the test ends. Call it before
// startDaemon: cleanups run last-registered first, so the daemon's
// containers are gone by the time the image is removed.
func uniqueUploadRef(t *testing.T, cli *client.Client, name string) string {
	t.Helper()
	ref := uploadRepoPrefix + name + ":t-" + randomSuffix(10)
	t.Cleanup(func() { removeImages(t, cli, localEngine, ref) })
	return ref
}

// saveImages is `docker save refs...` through the Docker API.
func saveImages(t *testing.T, cli *client.Client, refs ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := cli.ImageSave(ctx, refs)
	if err != nil {
		t.Fatalf("saving %v: %v", refs, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("saving %v: %v", refs, err)
	}
	return b
}

// prepareUpload builds an fn-echo image whose replicas report
// UPLOAD_MARK=mark under a unique tag, saves it and removes it from the
// engine, so that the engine has it only once it is uploaded.
func prepareUpload(t *testing.T, cli *client.Client, name string) uploadedImage {
	t.Helper()
	ref := uniqueUploadRef(t, cli, name)
	base := fnImage(t, fnEcho)
	id := buildImage(t, cli, ref, fmt.Sprintf("FROM %s\nENV UPLOAD_MARK=%s\n", base, ref), nil)
	archive := saveImages(t, cli, ref)
	removeImages(t, cli, localEngine, ref)
	requireAbsent(t, cli, ref, id)
	return uploadedImage{ref: ref, id: id, archive: archive}
}

// requireAbsent fails the test when the engine has ref, or (id != "") the
// image id under any name.
func requireAbsent(t *testing.T, cli *client.Client, ref, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{ref, id} {
		if name == "" {
			continue
		}
		if img, err := cli.ImageInspect(ctx, name); err == nil {
			t.Errorf("the engine has %s (image %s, tags %v), want it absent", name, short(strings.TrimPrefix(img.ID, "sha256:")), img.RepoTags)
		} else if !cerrdefs.IsNotFound(err) {
			t.Errorf("inspecting %s: %v", name, err)
		}
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadClient sends uploads: no overall timeout (the throttled ones are
// slow on purpose), and Expect: 100-continue answered within 5 s.
var uploadClient = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}

// postImages uploads body to the daemon with its credentials. length -1
// sends it chunked; expect adds Expect: 100-continue.
func (d *daemon) postImages(ctx context.Context, body io.Reader, length int64, expect bool) (httpResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.baseURL+"/system/images", body)
	if err != nil {
		return httpResult{}, err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/x-tar")
	if expect {
		req.Header.Set("Expect", "100-continue")
	}
	req.SetBasicAuth(d.user, d.password)
	res, err := uploadClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// upload sends archive whole (with its length) and fails the test on a
// transport error.
func (d *daemon) upload(archive []byte) httpResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := d.postImages(ctx, bytes.NewReader(archive), int64(len(archive)), false)
	if err != nil {
		d.t.Fatalf("POST /system/images: %v", err)
	}
	return res
}

// loadedImages decodes a 200 answer of POST /system/images.
func loadedImages(t *testing.T, res httpResult) []struct {
	Ref  string `json:"ref"`
	ID   string `json:"id"`
	Size int64  `json:"size"`
} {
	t.Helper()
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /system/images: %s, want 200 JSON", res)
	}
	var out struct {
		Images []struct {
			Ref  string `json:"ref"`
			ID   string `json:"id"`
			Size int64  `json:"size"`
		} `json:"images"`
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatalf("POST /system/images answer %s: %v", res, err)
	}
	return out.Images
}

// imageListEntry is one entry of GET /system/images.
type imageListEntry struct {
	Ref        string    `json:"ref"`
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	Present    bool      `json:"present"`
	UsedBy     []string  `json:"usedBy"`
	Uploaded   bool      `json:"uploaded"`
	UploadedAt time.Time `json:"uploadedAt"`
}

func (d *daemon) listImages() []imageListEntry {
	d.t.Helper()
	res := d.invoke(http.MethodGet, "/system/images", nil, nil)
	if res.Status != http.StatusOK {
		d.t.Fatalf("GET /system/images: %s", res)
	}
	var list []imageListEntry
	if err := json.Unmarshal(res.Body, &list); err != nil {
		d.t.Fatalf("GET /system/images %s: %v", res, err)
	}
	return list
}

func findImage(list []imageListEntry, ref string) (imageListEntry, bool) {
	for _, e := range list {
		if e.Ref == ref {
			return e, true
		}
	}
	return imageListEntry{}, false
}

// invokeUploadMark invokes fn and returns the UPLOAD_MARK its replica reports.
func (d *daemon) invokeUploadMark(fn string) string {
	d.t.Helper()
	res := d.invoke(http.MethodPost, "/function/"+fn, []byte("hi"), nil)
	if res.Status != http.StatusOK {
		d.t.Fatalf("invoke %s: %s", fn, res)
	}
	echo, err := decodeEcho(res)
	if err != nil {
		d.t.Fatal(err)
	}
	return echo.Env["UPLOAD_MARK"]
}

// TestImageUploadDeploy uploads an image the engine does not have, as a
// plain and as a gzipped `docker save` archive, deploys a function from
// each and invokes it; GET /system/images then lists both uploads and the
// image a third function uses, each with the functions using it.
func TestImageUploadDeploy(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	plain := prepareUpload(t, cli, "plain")
	gz := prepareUpload(t, cli, "gzip")
	d := startDaemon(t)

	check := func(res httpResult, img uploadedImage) {
		t.Helper()
		got := loadedImages(t, res)
		if len(got) != 1 || got[0].Ref != img.ref || got[0].ID != img.id || got[0].Size <= 0 {
			t.Fatalf("loaded %+v, want %s = %s with its size", got, img.ref, img.id)
		}
		inspect, err := cli.ImageInspect(t.Context(), img.ref)
		if err != nil || inspect.ID != img.id {
			t.Fatalf("the engine's %s after the upload: %s %v, want %s", img.ref, inspect.ID, err, img.id)
		}
	}

	// Plain tar, sent with its length.
	check(d.upload(plain.archive), plain)
	d.deploy(simpleSpec("up-plain", plain.ref, nil, nil))

	// gzip, sent chunked, told by its bytes alone: no gzip Content-Type.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := d.postImages(ctx, bytes.NewReader(gzipBytes(t, gz.archive)), -1, false)
	if err != nil {
		t.Fatal(err)
	}
	check(res, gz)
	list := d.listImages()
	if e, ok := findImage(list, gz.ref); !ok || !e.Uploaded || !e.Present || e.ID != gz.id || len(e.UsedBy) != 0 ||
		time.Since(e.UploadedAt) > 5*time.Minute {
		t.Errorf("GET /system/images before the deploy: %s is %+v, want uploaded, present, used by nobody", gz.ref, e)
	}
	d.deploy(simpleSpec("up-gzip", gz.ref, nil, nil))
	base := fnImage(t, fnEcho)
	d.deploy(simpleSpec("not-uploaded", base, nil, nil))

	for fn, img := range map[string]uploadedImage{"up-plain": plain, "up-gzip": gz} {
		d.waitReady(fn, defaultNamespace, 1)
		if mark := d.invokeUploadMark(fn); mark != img.ref {
			t.Errorf("%s runs an image with UPLOAD_MARK %q, want %q", fn, mark, img.ref)
		}
	}
	d.waitReady("not-uploaded", defaultNamespace, 1)

	list = d.listImages()
	baseInfo, err := cli.ImageInspect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]imageListEntry{
		plain.ref: {Ref: plain.ref, ID: plain.id, Present: true, UsedBy: []string{"up-plain." + defaultNamespace}, Uploaded: true},
		gz.ref:    {Ref: gz.ref, ID: gz.id, Present: true, UsedBy: []string{"up-gzip." + defaultNamespace}, Uploaded: true},
		base:      {Ref: base, ID: baseInfo.ID, Present: true, UsedBy: []string{"not-uploaded." + defaultNamespace}},
	}
	if len(list) != len(want) {
		t.Errorf("GET /system/images lists %d images, want %d: %+v", len(list), len(want), list)
	}
	for i, e := range list {
		if i > 0 && list[i-1].Ref >= e.Ref {
			t.Errorf("GET /system/images is not sorted by ref: %s before %s", list[i-1].Ref, e.Ref)
		}
		w, ok := want[e.Ref]
		switch {
		case !ok:
			t.Errorf("GET /system/images lists %s, which no function uses and nobody uploaded", e.Ref)
		case e.ID != w.ID || e.Present != w.Present || e.Uploaded != w.Uploaded || !slicesEqual(e.UsedBy, w.UsedBy) ||
			e.Size <= 0 || e.Uploaded == e.UploadedAt.IsZero():
			t.Errorf("GET /system/images: %+v, want %+v (with a size, and uploadedAt when uploaded)", e, w)
		}
	}
}

// corruptMultiImage builds two FROM scratch images with layers of their
// own, saves both in one archive and drops the second one's layer from
// it; both are then removed from the engine. The engine loads (and tags)
// the first image of such an archive before it fails on the second. first
// is a good archive of the first image alone.
func corruptMultiImage(t *testing.T, cli *client.Client) (archive, first []byte, refs, ids []string) {
	t.Helper()
	for _, name := range []string{"first", "second"} {
		ref := uniqueUploadRef(t, cli, name)
		ids = append(ids, buildImage(t, cli, ref, "FROM scratch\nCOPY blob /blob\n", map[string][]byte{"blob": randomBytes(64 << 10)}))
		refs = append(refs, ref)
	}
	saved := saveImages(t, cli, refs...)
	first = saveImages(t, cli, refs[0])
	removeImages(t, cli, localEngine, refs...)
	for i := range refs {
		requireAbsent(t, cli, refs[i], ids[i])
	}

	// manifest.json lists each image's layers by their path in the archive.
	var manifest []struct {
		RepoTags []string
		Layers   []string
	}
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(saved))
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], order, hdrs = b, append(order, h.Name), append(hdrs, h)
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json of the saved archive: %v", err)
	}
	drop := ""
	for _, m := range manifest {
		if len(m.RepoTags) == 1 && m.RepoTags[0] == refs[1] && len(m.Layers) == 1 {
			drop = path.Clean(m.Layers[0])
		}
	}
	if drop == "" {
		t.Fatalf("no single layer of %s in manifest.json: %s", refs[1], files["manifest.json"])
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, name := range order {
		if path.Clean(name) == drop {
			continue
		}
		if err := tw.WriteHeader(hdrs[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), first, refs, ids
}

// TestImageUploadRefused: archives the engine cannot load are a 400 with
// the engine's reason and leave nothing tagged (random bytes, a truncated
// archive, an archive whose second image is broken, which the engine
// half-loads); archives over IMAGE_UPLOAD_MAX are a 413 (refused before
// reading when the length is known, while reading when sent chunked, and
// when a gzip archive decompresses beyond it). Nothing is recorded as
// uploaded.
func TestImageUploadRefused(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	img := prepareUpload(t, cli, "refused")
	multi, first, multiRefs, multiIDs := corruptMultiImage(t, cli)
	gz := gzipBytes(t, img.archive)
	// Between the gzip archive's size and the archive's: the gzip one is
	// received whole and fails only as it decompresses.
	limit := (len(gz) + len(img.archive)) / 2
	d := startDaemon(t, withEnv("IMAGE_UPLOAD_MAX", fmt.Sprint(limit)))
	t.Logf("archive %d bytes, gzipped %d, IMAGE_UPLOAD_MAX %d", len(img.archive), len(gz), limit)

	random := randomBytes(256 << 10)
	cases := []struct {
		name    string
		body    []byte
		chunked bool
		want    int
		wantMsg string
	}{
		{"random bytes", random, false, 400, "the engine could not load the archive"},
		{"truncated archive", img.archive[:len(img.archive)/2], false, 400, "unexpected EOF"},
		{"truncated archive, gzipped", gzipBytes(t, img.archive[:len(img.archive)/2]), true, 400, "unexpected EOF"},
		{"truncated gzip", gz[:len(gz)/2], false, 400, "the gzip stream is corrupt: unexpected EOF"},
		{"second image broken", multi, false, 400, "the engine could not load the archive"},
		{"over the limit, with its length", img.archive, false, 413, "larger than the upload limit IMAGE_UPLOAD_MAX"},
		{"over the limit, chunked", img.archive, true, 413, "larger than the upload limit IMAGE_UPLOAD_MAX"},
		{"decompresses over the limit", gz, true, 413, "decompresses to more than the upload limit"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		length := int64(len(c.body))
		if c.chunked {
			length = -1
		}
		// With Expect: 100-continue an early refusal reaches the client
		// before it sent the body.
		res, err := d.postImages(ctx, bytes.NewReader(c.body), length, true)
		cancel()
		switch {
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case res.Status != c.want || !strings.Contains(string(res.Body), c.wantMsg):
			t.Errorf("%s: %s, want %d with %q", c.name, res, c.want, c.wantMsg)
		default:
			t.Logf("%-35s %d %s", c.name, res.Status, strings.TrimSpace(string(res.Body)))
		}
		requireAbsent(t, cli, img.ref, img.id)
		for i := range multiRefs {
			requireAbsent(t, cli, multiRefs[i], multiIDs[i])
		}
	}
	for _, e := range d.listImages() {
		t.Errorf("GET /system/images lists %+v after refused uploads only", e)
	}
	// A good upload under the limit still works on the same daemon.
	if got := loadedImages(t, d.upload(first)); len(got) != 1 || got[0].Ref != multiRefs[0] || got[0].ID != multiIDs[0] {
		t.Errorf("upload of %s alone: %+v, want it loaded", multiRefs[0], got)
	}
}

// throttledReader hands out data in small pieces with a pause between
// them, like a slow link, and counts what it handed out.
type throttledReader struct {
	data  []byte
	chunk int
	pause time.Duration
	sent  atomic.Int64
}

func (r *throttledReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.sent.Load() > 0 {
		time.Sleep(r.pause)
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	r.sent.Add(int64(n))
	return n, nil
}

// startSlowUpload uploads archive at about 1 MiB/s in the background and
// returns once a quarter of it was sent, with the reader (to see how much
// went) and a channel that receives the upload's outcome.
func startSlowUpload(t *testing.T, ctx context.Context, d *daemon, archive []byte) (*throttledReader, <-chan error) {
	t.Helper()
	body := &throttledReader{data: archive, chunk: 32 << 10, pause: 30 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		res, err := d.postImages(ctx, body, -1, false)
		if err == nil {
			err = fmt.Errorf("the upload was answered: %s", res)
		}
		done <- err
	}()
	if err := poll(time.Minute, 20*time.Millisecond, func() error {
		if n := body.sent.Load(); n < int64(len(archive)/4) {
			return fmt.Errorf("%d bytes sent", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return body, done
}

// TestImageUploadAbandoned: a client that goes away mid-upload aborts the
// load, and nothing is tagged; the daemon goes on serving uploads.
func TestImageUploadAbandoned(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	img := prepareUpload(t, cli, "abandoned")
	d := startDaemon(t)

	ctx, cancel := context.WithCancel(t.Context())
	body, done := startSlowUpload(t, ctx, d, img.archive)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the abandoned upload ended with %v, want context.Canceled", err)
	}
	t.Logf("abandoned after %d of %d bytes", body.sent.Load(), len(img.archive))
	// The engine notices the broken upload at once; give it a moment to
	// do anything it would do.
	time.Sleep(time.Second)
	requireAbsent(t, cli, img.ref, img.id)
	if list := d.listImages(); len(list) != 0 {
		t.Errorf("GET /system/images after an abandoned upload: %+v", list)
	}
	if got := loadedImages(t, d.upload(img.archive)); len(got) != 1 || got[0].ID != img.id {
		t.Errorf("upload after the abandoned one: %+v", got)
	}
}

// TestImageUploadKilledDaemon kills the daemon (SIGKILL) during a slow
// upload: after a restart no part of the image is tagged, the daemon is
// healthy, and the same upload then succeeds.
func TestImageUploadKilledDaemon(t *testing.T) {
	t.Parallel()
	cli := requireDocker(t)
	img := prepareUpload(t, cli, "killed")
	d := startDaemon(t)

	body, done := startSlowUpload(t, t.Context(), d, img.archive)
	d.Kill()
	if err := <-done; err == nil {
		t.Error("the upload to a killed daemon succeeded")
	}
	t.Logf("killed after %d of %d bytes", body.sent.Load(), len(img.archive))
	time.Sleep(time.Second)
	requireAbsent(t, cli, img.ref, img.id)

	d.Restart()
	requireAbsent(t, cli, img.ref, img.id)
	if list := d.listImages(); len(list) != 0 {
		t.Errorf("GET /system/images after the restart: %+v", list)
	}
	if got := loadedImages(t, d.upload(img.archive)); len(got) != 1 || got[0].ID != img.id {
		t.Errorf("upload after the restart: %+v", got)
	}
	// The record of that upload survives a kill -9 too.
	d.Kill()
	d.Restart()
	if e, ok := findImage(d.listImages(), img.ref); !ok || !e.Uploaded || !e.Present || e.ID != img.id {
		t.Errorf("GET /system/images after another kill -9: %s is %+v %v, want uploaded and present", img.ref, e, ok)
	}
}

// imageBadInputCases are the refusals of POST /system/images for the
// bad-input catalogue. The catalogue's daemon runs with IMAGE_UPLOAD_MAX=1Mi.
// None may store anything or tag any image.
func imageBadInputCases() []badRequest {
	tarHeaderOnly := func() string {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: 1000, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("[{"))
		return buf.String() // no Close: the file and the archive end early
	}
	tarCT := map[string]string{"Content-Type": "application/x-tar"}
	return []badRequest{
		{badCase{"images: not an archive", "POST", "/system/images", strings.Repeat("not a tar archive ", 64), 400}, tarCT},
		{badCase{"images: JSON body", "POST", "/system/images", `{"image":"x"}`, 400}, nil},
		{badCase{"images: empty body", "POST", "/system/images", ``, 400}, tarCT},
		{badCase{"images: truncated tar", "POST", "/system/images", tarHeaderOnly(), 400}, tarCT},
		{badCase{"images: corrupt gzip", "POST", "/system/images", "\x1f\x8b\x08\x00garbage that is no deflate stream", 400},
			map[string]string{"Content-Type": "application/gzip"}},
		{badCase{"images: xz archive", "POST", "/system/images", "\xfd7zXZ\x00\x00\x04", 415}, tarCT},
		{badCase{"images: over IMAGE_UPLOAD_MAX", "POST", "/system/images", strings.Repeat("x", 1<<20+1), 413}, tarCT},
		{badCase{"images: PUT", "PUT", "/system/images", `x`, 405}, nil},
		{badCase{"images: DELETE", "DELETE", "/system/images", ``, 405}, nil},
	}
}

// TestImageUploadSwarmNotSupported: on the swarm runtime an image would
// have to reach every node, so both routes answer 501 with what to do.
func TestImageUploadSwarmNotSupported(t *testing.T) {
	t.Parallel()
	requireSwarm(t)
	d := startDaemon(t, onRuntime(runtimeSwarm))
	for _, c := range []struct {
		method, msg string
		body        []byte
	}{
		{http.MethodPost, "docker save IMAGE | docker -H NODE load", []byte("an archive")},
		{http.MethodGet, "docker -H NODE image ls", nil},
	} {
		res := d.invoke(c.method, "/system/images", c.body, nil)
		if res.Status != http.StatusNotImplemented || !strings.Contains(string(res.Body), c.msg) {
			t.Errorf("%s /system/images on swarm: %s, want 501 with %q", c.method, res, c.msg)
		}
	}
}
