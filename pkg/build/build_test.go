package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// entry is one tar entry of a test archive.
type entry struct {
	name, body, link string
	typ              byte
}

func makeTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ, Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree lists dir as "path" (dirs with a trailing /) and "path=content".
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+"->"+l)
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestSignature(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte("tar bytes")
	sp, err := Spool(bytes.NewReader(body), t.TempDir(), secret, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	good := Sign(body, secret)
	tests := []struct {
		header string
		ok     bool
	}{
		{good, true},
		{" " + good + " ", true},
		{"", false},
		{strings.TrimPrefix(good, "sha256="), false},
		{"sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{Sign(body, []byte("other")), false},
		{Sign([]byte("tar bytez"), secret), false},
		{"sha256=zz", false},
	}
	for _, tc := range tests {
		if got := VerifySignature(tc.header, sp.Sum); got != tc.ok {
			t.Errorf("VerifySignature(%q) = %v, want %v", tc.header, got, tc.ok)
		}
	}
}

func TestSpoolTooLarge(t *testing.T) {
	dir := t.TempDir()
	if _, err := Spool(strings.NewReader("12345"), dir, nil, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Spool = %v, want ErrTooLarge", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind %v", ents)
	}
	if sp, err := Spool(strings.NewReader("1234"), dir, nil, 4); err != nil || sp.Size != 4 {
		t.Fatalf("Spool at the bound = %+v, %v", sp, err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "payload-secret")
	s1, created, err := LoadOrCreateSecret(p)
	if err != nil || !created || len(s1) < 32 {
		t.Fatalf("first = %q %v %v", s1, created, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
	s2, created, err := LoadOrCreateSecret(p)
	if err != nil || created || !bytes.Equal(s1, s2) {
		t.Fatalf("second = %q %v %v, want %q", s2, created, err, s1)
	}
}

func TestReadRequest(t *testing.T) {
	cfg := entry{name: configName, body: `{"image":"fn:1"}`}
	tests := []struct {
		name    string
		entries []entry
		want    []string
		bad     string
	}{
		{"faas-cli layout", []entry{
			{name: "context", typ: tar.TypeDir},
			{name: "context/Dockerfile", body: "FROM scratch"},
			{name: "context/function", typ: tar.TypeDir},
			{name: "context/function/handler.go", body: "package f"},
			{name: "context/link", typ: tar.TypeSymlink, link: "function/handler.go"},
			cfg,
		}, []string{"Dockerfile=FROM scratch", "function/", "function/handler.go=package f", "link->function/handler.go"}, ""},
		{"no config", []entry{{name: "context/Dockerfile", body: "x"}}, nil, "has no"},
		{"dot dot", []entry{{name: "context/../evil", body: "x"}, cfg}, nil, ".."},
		{"absolute", []entry{{name: "/etc/evil", body: "x"}, cfg}, nil, "unexpected"},
		{"absolute in context", []entry{{name: "context//etc/evil", body: "x"}, cfg}, nil, "absolute"},
		{"symlink out", []entry{{name: "context/l", typ: tar.TypeSymlink, link: "../../etc"}, cfg}, nil, "outside"},
		{"absolute symlink", []entry{{name: "context/l", typ: tar.TypeSymlink, link: "/etc"}, cfg}, nil, "outside"},
		{"write through symlink", []entry{
			{name: "context/a", typ: tar.TypeSymlink, link: "."},
			{name: "context/a/../x", body: "x"}, cfg}, nil, ".."},
		{"hard link", []entry{{name: "context/h", typ: tar.TypeLink, link: "Dockerfile"}, cfg}, nil, "only files"},
		{"sealed secrets", []entry{cfg, {name: secretsName, body: "x"}}, nil, "not supported"},
		{"other root entry", []entry{{name: "Dockerfile", body: "x"}, cfg}, nil, "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw, err := readRequest(bytes.NewReader(makeTar(t, tc.entries...)), dir)
			if tc.bad != "" {
				var re *RequestError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("readRequest = %v, want a RequestError with %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != cfg.body {
				t.Errorf("config = %q", raw)
			}
			if got := tree(t, dir); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("tree = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTemplatesPutAssemble(t *testing.T) {
	tpl := &Templates{Dir: t.TempDir()}
	archive := makeTar(t,
		entry{name: "template/go/", typ: tar.TypeDir},
		entry{name: "template/go/Dockerfile", body: "FROM scratch"},
		entry{name: "template/go/template.yml", body: "language: go\nhandler_folder: handler\n"},
		entry{name: "template/go/handler/handler.go", body: "skeleton"},
		entry{name: "template/go/main.go", body: "main"},
	)
	if err := tpl.Put("go", bytes.NewReader(archive)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	list, err := tpl.List()
	if err != nil || len(list) != 1 || list[0].Name != "go" || list[0].HandlerFolder != "handler" || list[0].Language != "go" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	handler := t.TempDir()
	for name, body := range map[string]string{"handler.go": "mine", "go.mod": "module f", "build/x": "skipped", "template/y": "skipped"} {
		p := filepath.Join(handler, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "ctx")
	if err := tpl.Assemble("go", handler, dst); err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	want := []string{"Dockerfile=FROM scratch", "handler/", "handler/go.mod=module f", "handler/handler.go=mine", "main.go=main", "template.yml=language: go\nhandler_folder: handler\n"}
	if got := tree(t, dst); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("assembled %v\nwant %v", got, want)
	}
	// dockerfile: the handler is the context.
	dst2 := filepath.Join(t.TempDir(), "ctx")
	if err := tpl.Assemble(LangDockerfile, handler, dst2); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dst2); strings.Join(got, "|") != "go.mod=module f|handler.go=mine" {
		t.Errorf("dockerfile context = %v", got)
	}
	if err := tpl.Assemble("nope", handler, t.TempDir()); !errors.Is(err, ErrTemplateNotFound) {
		t.Errorf("Assemble(unknown) = %v", err)
	}
	if err := tpl.Delete("go"); err != nil {
		t.Fatal(err)
	}
	if err := tpl.Delete("go"); !errors.Is(err, ErrTemplateNotFound) {
		t.Errorf("second Delete = %v", err)
	}
}

func TestTemplatesPutInvalid(t *testing.T) {
	tpl := &Templates{Dir: t.TempDir()}
	tests := []struct {
		name, lang string
		entries    []entry
	}{
		{"traversal name", "..", []entry{{name: "Dockerfile", body: "x"}}},
		{"slash name", "a/b", []entry{{name: "Dockerfile", body: "x"}}},
		{"dockerfile", LangDockerfile, []entry{{name: "Dockerfile", body: "x"}}},
		{"no Dockerfile", "x", []entry{{name: "template.yml", body: "language: x"}}},
		{"escaping entry", "x", []entry{{name: "Dockerfile", body: "x"}, {name: "../y", body: "x"}}},
		{"bad handler_folder", "x", []entry{{name: "Dockerfile", body: "x"}, {name: "template.yml", body: "handler_folder: ../../etc"}}},
	}
	for _, tc := range tests {
		err := tpl.Put(tc.lang, bytes.NewReader(makeTar(t, tc.entries...)))
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("%s: Put = %v, want a RequestError", tc.name, err)
		}
	}
	if list, _ := tpl.List(); len(list) != 0 {
		t.Errorf("List = %+v, want none", list)
	}
}

// fakeBuilder is a runtime.Builder that builds nothing.
type fakeBuilder struct {
	platform string
	buildErr error
	answer   runtime.ImageTestResult
	testErr  error
	// delay is how long a build takes; hang makes the build ("build") or
	// the test ("test") run until its context ends.
	delay time.Duration
	hang  string
	// got is the context tar of the last build; images the images built.
	got    []string
	images []string
	tests  []runtime.ImageTest
}

// waitCtx blocks until ctx ends, bounded so a build nobody stops fails
// the test instead of hanging it.
func waitCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("fake builder: never stopped")
	}
}

func (f *fakeBuilder) Build(ctx context.Context, req runtime.BuildRequest, emit func(string)) error {
	f.images = append(f.images, req.Image)
	tr := tar.NewReader(req.Context)
	f.got = nil
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		f.got = append(f.got, h.Name)
	}
	_, _ = io.Copy(io.Discard, req.Context)
	emit("Step 1/1 : FROM scratch")
	if f.hang == "build" {
		return waitCtx(ctx)
	}
	time.Sleep(f.delay)
	return f.buildErr
}

func (f *fakeBuilder) Platform(context.Context) (string, error) { return f.platform, nil }

func (f *fakeBuilder) TestImage(ctx context.Context, req runtime.ImageTest) (runtime.ImageTestResult, error) {
	f.tests = append(f.tests, req)
	if f.hang == "test" {
		return runtime.ImageTestResult{}, waitCtx(ctx)
	}
	return f.answer, f.testErr
}

type fakeDeployer struct{ deployed []string }

func (d *fakeDeployer) DeployImage(_ context.Context, name, ns, image string) (string, error) {
	d.deployed = append(d.deployed, ns+"/"+name+"="+image)
	return ns + "/" + name, nil
}

func newTestService(t *testing.T, b *fakeBuilder) (*Service, store.Store, *fakeDeployer) {
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	d := &fakeDeployer{}
	return New(Config{Builder: b, Records: st, Deploy: d, WorkDir: t.TempDir(), Secret: []byte("s"), LogMax: 1 << 10}), st, d
}

func spoolOf(t *testing.T, s *Service, config string, entries ...entry) *Spooled {
	t.Helper()
	entries = append(entries, entry{name: configName, body: config})
	sp, err := s.Spool(bytes.NewReader(makeTar(t, entries...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sp.Remove)
	return sp
}

func TestServiceRun(t *testing.T) {
	ok := runtime.ImageTestResult{Status: 200, Body: []byte("hello v2")}
	// sent is the test request the image must get: method, path, body.
	sent := func(image, method, path, body string) []string {
		return []string{image + " " + method + " " + path + " " + body}
	}
	tests := []struct {
		name       string
		config     string
		builder    fakeBuilder
		wantStatus string
		wantErr    string
		deployed   int
		wantTests  []string
	}{
		{"plain", `{"image":"fn:1"}`, fakeBuilder{}, store.BuildSuccess, "", 0, nil},
		{"skipPush accepted", `{"image":"fn:1","skipPush":true}`, fakeBuilder{}, store.BuildSuccess, "", 0, nil},
		{"engine error", `{"image":"fn:1","test":{}}`, fakeBuilder{buildErr: errors.Join(runtime.ErrBuildFailed)}, store.BuildFailed, "the build failed", 0, nil},
		{"test passes, deploys", `{"image":"fn:2","test":{"method":"POST","path":"/sum?x=1","body":"1 2","contains":"v2"},"deploy":{"name":"fn"}}`, fakeBuilder{answer: ok}, store.BuildSuccess, "", 1, sent("fn:2", "POST", "/sum?x=1", "1 2")},
		{"test wrong body", `{"image":"fn:2","test":{"contains":"v3"},"deploy":{"name":"fn"}}`, fakeBuilder{answer: ok}, store.BuildFailed, `body does not contain "v3"`, 0, sent("fn:2", "GET", "", "")},
		{"test wrong status", `{"image":"fn:2","test":{"method":"PUT","path":"/","body":"{\"a\":1}","status":201}}`, fakeBuilder{answer: ok}, store.BuildFailed, "status 200, want 201", 0, sent("fn:2", "PUT", "/", `{"a":1}`)},
		{"test no answer", `{"image":"fn:2","test":{},"deploy":{"name":"fn"}}`, fakeBuilder{testErr: errors.New("nothing answered")}, store.BuildFailed, "nothing answered", 0, sent("fn:2", "GET", "", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.builder
			s, st, d := newTestService(t, &b)
			job, err := s.Prepare(t.Context(), spoolOf(t, s, tc.config, entry{name: "context/Dockerfile", body: "FROM scratch"}))
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			defer job.Close()
			if skip := strings.Contains(tc.config, `"skipPush":true`); job.Req.SkipPush != skip {
				t.Errorf("SkipPush = %v, want %v", job.Req.SkipPush, skip)
			}
			var lines []string
			rec := s.Run(t.Context(), job, func(l string) { lines = append(lines, l) })
			if rec.Status != tc.wantStatus || !strings.Contains(rec.Error, tc.wantErr) {
				t.Errorf("Run = %s %q, want %s %q", rec.Status, rec.Error, tc.wantStatus, tc.wantErr)
			}
			if len(d.deployed) != tc.deployed {
				t.Errorf("deployed %v, want %d", d.deployed, tc.deployed)
			}
			if len(lines) == 0 || lines[0] != "Step 1/1 : FROM scratch" {
				t.Errorf("lines = %q", lines)
			}
			got, err := st.GetBuild(t.Context(), rec.ID)
			if err != nil || got.Status != rec.Status || len(got.Log) != len(lines) || got.FinishedAt.IsZero() {
				t.Errorf("record = %+v, %v", got, err)
			}
			if tc.wantStatus == store.BuildFailed && strings.Contains(tc.name, "test wrong") {
				if !strings.Contains(strings.Join(lines, "\n"), "response status 200, body: hello v2") {
					t.Errorf("the response is not in the log: %q", lines)
				}
			}
			if len(b.images) != 1 || b.images[0] != job.Req.Image {
				t.Errorf("built %v, want %s once", b.images, job.Req.Image)
			}
			var gotTests []string
			for _, r := range b.tests {
				gotTests = append(gotTests, r.Image+" "+r.Method+" "+r.Path+" "+string(r.Body))
			}
			if strings.Join(gotTests, "|") != strings.Join(tc.wantTests, "|") {
				t.Errorf("test requests %q, want %q", gotTests, tc.wantTests)
			}
		})
	}
}

// BUILD_TIMEOUT bounds the build and its test: a builder or a test that
// does not end is stopped, the build fails saying why, and nothing is
// deployed.
func TestServiceTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name, config, hang string
		tested             bool
	}{
		{"build hangs", `{"image":"fn:1","test":{},"deploy":{"name":"fn"}}`, "build", false},
		{"test hangs", `{"image":"fn:1","test":{},"deploy":{"name":"fn"}}`, "test", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBuilder{hang: tc.hang, answer: runtime.ImageTestResult{Status: 200}}
			st := store.NewMemory()
			t.Cleanup(func() { st.Close() })
			d := &fakeDeployer{}
			s := New(Config{Builder: b, Records: st, Deploy: d, WorkDir: t.TempDir(), Secret: []byte("s"), Timeout: timeout})
			job, err := s.Prepare(t.Context(), spoolOf(t, s, tc.config, entry{name: "context/Dockerfile", body: "FROM scratch"}))
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			defer job.Close()
			start := time.Now()
			rec := s.Run(t.Context(), job, nil)
			took := time.Since(start)
			want := "the build took longer than " + timeout.String()
			if rec.Status != store.BuildFailed || !strings.Contains(rec.Error, want) {
				t.Fatalf("Run = %s %q, want failed with %q", rec.Status, rec.Error, want)
			}
			if took < timeout || took > 5*time.Second {
				t.Errorf("Run took %s, want about %s", took, timeout)
			}
			if len(d.deployed) != 0 {
				t.Errorf("deployed %v after a timeout", d.deployed)
			}
			if tested := len(b.tests) > 0; tested != tc.tested {
				t.Errorf("tested = %v, want %v", tested, tc.tested)
			}
			got, err := st.GetBuild(t.Context(), rec.ID)
			if err != nil || got.Status != store.BuildFailed || !strings.Contains(got.Error, want) || got.FinishedAt.IsZero() || got.Duration < timeout.Seconds() {
				t.Errorf("record = %+v, %v; want failed with %q after at least %s", got, err, want, timeout)
			}
			if tc.tested && (got.Test == nil || got.Test.Passed) {
				t.Errorf("record test = %+v, want a failed test", got.Test)
			}
		})
	}
}

// A finished build's record has its duration: finish minus start, in
// seconds, covering the build.
func TestServiceRunDuration(t *testing.T) {
	const delay = 50 * time.Millisecond
	s, st, _ := newTestService(t, &fakeBuilder{delay: delay})
	job, err := s.Prepare(t.Context(), spoolOf(t, s, `{"image":"fn:1"}`, entry{name: "context/Dockerfile", body: "FROM scratch"}))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	defer job.Close()
	rec := s.Run(t.Context(), job, nil)
	got, err := st.GetBuild(t.Context(), rec.ID)
	if err != nil || got.Status != store.BuildSuccess {
		t.Fatalf("record = %+v, %v", got, err)
	}
	span := got.FinishedAt.Sub(got.StartedAt).Seconds()
	if got.Duration < delay.Seconds() || got.Duration > 5 || got.Duration-span > 0.005 || span-got.Duration > 0.005 {
		t.Errorf("duration %.4f s (finish - start %.4f s), want at least %s", got.Duration, span, delay)
	}
	if rec.Duration != got.Duration {
		t.Errorf("returned duration %v, recorded %v", rec.Duration, got.Duration)
	}
}

// BUILD_RETENTION: the service keeps only the newest Retention records.
func TestServiceRetention(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	s := New(Config{Builder: &fakeBuilder{}, Records: st, WorkDir: t.TempDir(), Secret: []byte("s"), Retention: 2})
	var ids []string
	for i := range 4 {
		job, err := s.Prepare(t.Context(), spoolOf(t, s, fmt.Sprintf(`{"image":"fn:%d"}`, i), entry{name: "context/Dockerfile", body: "FROM scratch"}))
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		ids = append(ids, s.Run(t.Context(), job, nil).ID)
		job.Close()
	}
	list, err := st.ListBuilds(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range list {
		got = append(got, b.Image)
	}
	if strings.Join(got, ",") != "fn:3,fn:2" {
		t.Errorf("kept %v, want fn:3,fn:2", got)
	}
	if _, err := st.GetBuild(t.Context(), ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oldest record: %v, want ErrNotFound", err)
	}
}

func TestServicePrepareRefuses(t *testing.T) {
	df := entry{name: "context/Dockerfile", body: "FROM scratch"}
	tests := []struct {
		name, config, want string
		entries            []entry
	}{
		{"no image", `{}`, "image is required", []entry{df}},
		{"bad image", `{"image":"UPPER:x"}`, "image", []entry{df}},
		{"not json", `{`, configName, []entry{df}},
		{"other platform", `{"image":"fn","platforms":["linux/arm64"]}`, "builds for linux/amd64 only", []entry{df}},
		{"no Dockerfile", `{"image":"fn"}`, "no Dockerfile", nil},
		{"unknown template", `{"image":"fn","lang":"go"}`, "no template", []entry{{name: "context/handler.go", body: "x"}}},
		{"bad deploy name", `{"image":"fn","deploy":{"name":"Bad_Name"}}`, "invalid function name", []entry{df}},
		{"bad test status", `{"image":"fn","test":{"status":7}}`, "no HTTP status", []entry{df}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newTestService(t, &fakeBuilder{platform: "linux/amd64"})
			_, err := s.Prepare(t.Context(), spoolOf(t, s, tc.config, tc.entries...))
			var re *RequestError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare = %v, want a RequestError with %q", err, tc.want)
			}
		})
	}
	s, _, _ := newTestService(t, &fakeBuilder{platform: "linux/amd64"})
	job, err := s.Prepare(t.Context(), spoolOf(t, s, `{"image":"fn","platforms":["linux/amd64"]}`, df))
	if err != nil {
		t.Fatalf("own platform: %v", err)
	}
	job.Close()
}

func TestServiceTemplateBuild(t *testing.T) {
	b := &fakeBuilder{}
	s, _, _ := newTestService(t, b)
	if err := s.Templates().Put("go", bytes.NewReader(makeTar(t,
		entry{name: "Dockerfile", body: "FROM scratch"},
		entry{name: "function/handler.go", body: "skeleton"},
	))); err != nil {
		t.Fatal(err)
	}
	job, err := s.Prepare(t.Context(), spoolOf(t, s, `{"image":"fn","lang":"go"}`, entry{name: "context/handler.go", body: "mine"}))
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	if rec := s.Run(t.Context(), job, nil); rec.Status != store.BuildSuccess || rec.Lang != "go" {
		t.Fatalf("Run = %+v", rec)
	}
	sort.Strings(b.got)
	if got := strings.Join(b.got, " "); got != "Dockerfile function/ function/handler.go" {
		t.Errorf("context sent = %s", got)
	}
}

func TestServiceAcquire(t *testing.T) {
	s := New(Config{Concurrency: 1, WorkDir: t.TempDir()})
	release, ok := s.Acquire()
	if !ok {
		t.Fatal("first Acquire failed")
	}
	if _, ok := s.Acquire(); ok {
		t.Fatal("second Acquire succeeded beyond the limit")
	}
	release()
	release() // idempotent
	if r, ok := s.Acquire(); !ok {
		t.Fatal("Acquire after release failed")
	} else {
		r()
	}
}

func TestLogBufferBound(t *testing.T) {
	b := &logBuffer{max: 10}
	for _, l := range []string{"aaaa", "bbbb", "cccc", "dddd"} {
		b.add(l)
	}
	if got := strings.Join(b.snapshot(), ","); got != "cccc,dddd" {
		t.Errorf("kept %s", got)
	}
}

func TestMarkInterrupted(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, b := range []store.Build{
		{ID: store.NewBuildID(t0), Image: "a:1", Status: store.BuildInProgress, StartedAt: t0},
		{ID: store.NewBuildID(t0.Add(time.Second)), Image: "b:1", Status: store.BuildSuccess, StartedAt: t0, FinishedAt: t0.Add(time.Second)},
		{ID: store.NewBuildID(t0.Add(2 * time.Second)), Image: "c:1", Status: store.BuildFailed, StartedAt: t0, Error: "boom"},
	} {
		if err := st.PutBuild(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{Records: st})
	n, err := s.MarkInterrupted(ctx, t0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("MarkInterrupted = %d, %v; want 1", n, err)
	}
	recs, err := st.ListBuilds(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Build{}
	for _, r := range recs {
		got[r.Image] = r
	}
	if a := got["a:1"]; a.Status != store.BuildFailed || !strings.Contains(a.Error, "interrupted") || a.Duration != 60 || !a.FinishedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("left in progress: %+v, want failed as interrupted after 60 s", a)
	}
	if got["b:1"].Status != store.BuildSuccess || got["c:1"].Error != "boom" {
		t.Errorf("finished records changed: %+v %+v", got["b:1"], got["c:1"])
	}
	if n, _ := s.MarkInterrupted(ctx, t0.Add(2*time.Minute)); n != 0 {
		t.Errorf("a second pass closed %d more", n)
	}
}
