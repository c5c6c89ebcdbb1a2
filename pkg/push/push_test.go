package push

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testImageID = "sha256:4f1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef"

func newTestPusher(t *testing.T, eng *fakeEngine, fg *fakeGateway) (*Pusher, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	srv := fg.start()
	u, _ := url.Parse(srv.URL)
	var out, progress bytes.Buffer
	p := &Pusher{
		Engine:     eng,
		Gateway:    &HTTPGateway{URL: u, Client: NewHTTPClient(false, 5*time.Second), Timeout: 10 * time.Second},
		GatewayURL: u,
		Out:        &out,
		NewProgress: func(label string, expected int64, gz bool) *Progress {
			return &Progress{W: &progress, Label: label, Expected: expected, Gzip: gz, Interval: time.Hour}
		},
	}
	return p, &out, &progress
}

func TestRunPushesAndDeploys(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "tar", true: "gzip"}[gz], func(t *testing.T) {
			archive := randomBytes(2 << 20)
			eng := &fakeEngine{ref: "my-fn", img: Image{ID: testImageID, RepoTags: []string{"my-fn:latest"}, Size: int64(len(archive))}, archive: archive}
			fg := newFakeGateway(t)
			p, out, progress := newTestPusher(t, eng, fg)

			err := p.Run(context.Background(), Options{
				Image: "my-fn", Deploy: "hello", Namespace: "dev", Gzip: gz,
				Env: map[string]string{"A": "1"}, Labels: map[string]string{"team": "x"},
			})
			if err != nil {
				t.Fatal(err)
			}
			fg.mu.Lock()
			defer fg.mu.Unlock()
			if !bytes.Equal(fg.archive, archive) || fg.gzipped != gz {
				t.Fatalf("gateway got %d bytes (gzip %v), want %d (gzip %v)", len(fg.archive), fg.gzipped, len(archive), gz)
			}
			if want := map[bool]string{false: "application/x-tar", true: "application/gzip"}[gz]; fg.contentType != want {
				t.Errorf("Content-Type %q, want %q", fg.contentType, want)
			}
			// A bare name is saved as :latest, not every tag of the repository.
			if strings.Join(eng.saved, ",") != "my-fn:latest" {
				t.Errorf("saved %v", eng.saved)
			}
			if len(fg.deployed) != 2 { // PUT 404, then POST
				t.Fatalf("deploys %+v", fg.deployed)
			}
			d := fg.deployed[1]
			if d.Service != "hello" || d.Image != "my-fn:latest" || d.Namespace != "dev" ||
				d.EnvVars["A"] != "1" || d.Labels == nil || (*d.Labels)["team"] != "x" ||
				d.Annotations == nil || (*d.Annotations)[AnnotationImageID] != testImageID {
				t.Fatalf("deployed %+v", d)
			}
			o := out.String()
			for _, s := range []string{"Loaded my-fn:latest (sha256:", "Deployed. 202 Accepted.", "URL: " + p.GatewayURL.String() + "/function/hello.dev\n"} {
				if !strings.Contains(o, s) {
					t.Errorf("output lacks %q:\n%s", s, o)
				}
			}
			if !strings.Contains(progress.String(), "sent my-fn:latest: 2.0 MiB in") {
				t.Errorf("progress: %q", progress.String())
			}
			if gz && !strings.Contains(progress.String(), "gzip on the wire") {
				t.Errorf("progress does not show the compressed size: %q", progress.String())
			}
		})
	}
}

// TestRunStreams proves the archive is never buffered whole: the gateway
// must receive bytes while the engine still holds back the second half.
func TestRunStreams(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "tar", true: "gzip"}[gz], func(t *testing.T) {
			archive := randomBytes(4 << 20)
			fg := newFakeGateway(t)
			eng := &fakeEngine{ref: "my-fn:1", img: Image{ID: testImageID, Size: int64(len(archive))}, archive: archive, gate: fg.firstBytes}
			p, _, _ := newTestPusher(t, eng, fg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.Run(ctx, Options{Image: "my-fn:1", Gzip: gz}); err != nil {
				t.Fatalf("the push waited for the whole archive before sending: %v", err)
			}
			fg.mu.Lock()
			defer fg.mu.Unlock()
			if !bytes.Equal(fg.archive, archive) {
				t.Fatalf("gateway got %d bytes, want %d", len(fg.archive), len(archive))
			}
		})
	}
}

func TestRunFailures(t *testing.T) {
	archive := randomBytes(1 << 20)
	tests := []struct {
		name    string
		image   string
		eng     func(*fakeEngine)
		gw      func(*fakeGateway)
		deploy  string
		wantErr string
		is      error
	}{
		{name: "image absent", image: "nope:1", wantErr: "nope:1: image not found", is: ErrImageNotFound},
		{name: "engine stream breaks", image: "my-fn:1", eng: func(e *fakeEngine) { e.failAfter = 100 << 10 },
			wantErr: "reading the archive from the local engine: engine stream broke"},
		{name: "gateway refuses", image: "my-fn:1", gw: func(g *fakeGateway) { g.loadStatus, g.loadBody = 501, "not on swarm" },
			wantErr: "loading the image: the gateway answered 501 Not Implemented: not on swarm"},
		{name: "nothing loaded", image: "my-fn:1", gw: func(g *fakeGateway) { g.loadBody = `{"images":[]}` },
			wantErr: "loaded no image"},
		{name: "deploy refused", image: "my-fn:1", deploy: "hello", gw: func(g *fakeGateway) { g.deployStatus, g.deployBody = 400, "labels: io.dockerfaas.x is reserved" },
			wantErr: "deploying hello: the gateway answered 400 Bad Request: labels: io.dockerfaas.x is reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &fakeEngine{ref: "my-fn:1", img: Image{ID: testImageID, Size: int64(len(archive))}, archive: archive}
			if tc.eng != nil {
				tc.eng(eng)
			}
			fg := newFakeGateway(t)
			if tc.gw != nil {
				tc.gw(fg)
			}
			p, _, _ := newTestPusher(t, eng, fg)
			err := p.Run(context.Background(), Options{Image: tc.image, Deploy: tc.deploy})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestSaveRef(t *testing.T) {
	tests := []struct {
		given string
		tags  []string
		want  string
	}{
		{"my-fn", []string{"my-fn:latest", "my-fn:1"}, "my-fn:latest"},
		{"my-fn", []string{"my-fn:1"}, "my-fn"}, // no :latest: as given
		{"my-fn:1", []string{"my-fn:1"}, "my-fn:1"},
		{"docker.io/library/my-fn", []string{"my-fn:latest"}, "my-fn:latest"},
		{"localhost:5000/team/fn", []string{"localhost:5000/team/fn:latest"}, "localhost:5000/team/fn:latest"},
		{"my-fn@sha256:" + strings.Repeat("a", 64), nil, "my-fn@sha256:" + strings.Repeat("a", 64)},
		{"4f1b2c3d4e5f", []string{"my-fn:latest"}, "4f1b2c3d4e5f"}, // a short ID
		{"sha256:" + strings.Repeat("b", 64), nil, "sha256:" + strings.Repeat("b", 64)},
	}
	for _, tc := range tests {
		if got := saveRef(tc.given, Image{RepoTags: tc.tags}); got != tc.want {
			t.Errorf("saveRef(%q, %v) = %q, want %q", tc.given, tc.tags, got, tc.want)
		}
	}
}

func TestProgressLines(t *testing.T) {
	clock := time.Unix(1000, 0)
	now := func() time.Time { return clock }
	tests := []struct {
		name     string
		terminal bool
		gzip     bool
		expected int64
		read     int64
		want     string
	}{
		{name: "line form", read: 5 << 20, expected: 10 << 20,
			want: "pushing fn:1: 5.0 MiB / ~10.0 MiB (50%), 2.5 MiB/s\n"},
		{name: "estimate exceeded stays below 100%", read: 12 << 20, expected: 10 << 20,
			want: "pushing fn:1: 12.0 MiB / ~10.0 MiB (99%), 6.0 MiB/s\n"},
		{name: "unknown size", read: 1500,
			want: "pushing fn:1: 1.5 KiB, 750 B/s\n"},
		{name: "bar on a terminal", terminal: true, read: 5 << 20, expected: 10 << 20,
			want: "\r[============>           ] 5.0 MiB / ~10.0 MiB (50%), 2.5 MiB/s\x1b[K"},
		{name: "gzip", gzip: true, read: 4 << 20, expected: 8 << 20,
			want: "pushing fn:1: 4.0 MiB / ~8.0 MiB (50%), 2.0 MiB/s, 1.0 MiB gzip sent\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &Progress{W: &buf, Label: "fn:1", Expected: tc.expected, Terminal: tc.terminal, Gzip: tc.gzip, Now: now, Interval: time.Hour}
			p.Start()
			defer p.Finish(false)
			p.archive.Store(tc.read)
			p.wire.Store(tc.read / 4)
			clock = clock.Add(2 * time.Second)
			p.report(false)
			if buf.String() != tc.want {
				t.Fatalf("got  %q\nwant %q", buf.String(), tc.want)
			}
		})
	}
}

func TestProgressFinish(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(1000, 0)
	p := &Progress{W: &buf, Label: "fn:1", Expected: 1 << 20, Terminal: true, Now: func() time.Time { return clock }, Interval: time.Hour}
	p.Start()
	p.archive.Store(3 << 20)
	clock = clock.Add(1500 * time.Millisecond)
	p.Finish(true)
	p.Finish(true) // idempotent
	if want := "\rsent fn:1: 3.0 MiB in 1.5s, 2.0 MiB/s\x1b[K\n"; buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
}

// TestProgressRateShowsAStall: the rate is that of the last few seconds, so
// a stalled upload reads 0 B/s instead of a slowly decaying average.
func TestProgressRateShowsAStall(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(1000, 0)
	p := &Progress{W: &buf, Label: "fn:1", Now: func() time.Time { return clock }, Interval: time.Hour}
	p.Start()
	defer p.Finish(false)
	steps := []struct {
		after time.Duration
		total int64
		want  string
	}{
		{time.Second, 3 << 20, "pushing fn:1: 3.0 MiB, 3.0 MiB/s\n"},
		{time.Second, 6 << 20, "pushing fn:1: 6.0 MiB, 3.0 MiB/s\n"},
		{3 * time.Second, 6 << 20, "pushing fn:1: 6.0 MiB, 0 B/s\n"},
		{time.Second, 8 << 20, "pushing fn:1: 8.0 MiB, 512.0 KiB/s\n"},
	}
	for i, s := range steps {
		buf.Reset()
		clock = clock.Add(s.after)
		p.archive.Store(s.total)
		p.report(false)
		if buf.String() != s.want {
			t.Fatalf("step %d: got %q, want %q", i, buf.String(), s.want)
		}
	}
}
