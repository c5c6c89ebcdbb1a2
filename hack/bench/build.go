package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dbuild "github.com/docker/docker/api/types/build"

	"github.com/dockerfaasd/dockerfaasd/pkg/build"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// The build section's function: fn-hostname, compiled by the section into
// a context whose Dockerfile copies a file holding the run's number before
// the binary, so that no layer of one run is in the engine's build cache
// for the next (as after a code change), on both sides alike.
const (
	buildRepo       = "dockerfaasd-bench/build"
	buildDockerfile = "FROM scratch\nCOPY run.txt /run.txt\nCOPY fn /fn\nEXPOSE 8080\nENTRYPOINT [\"/fn\"]\n"
	buildPoll       = 10 * time.Millisecond
	buildFirstOK    = 2 * time.Minute // bound of the polls for the first 200
	buildTimeout    = 5 * time.Minute // bound of one build request
)

// buildSide is one of the two ways of getting from a context to a serving
// function: its whole times and their two parts.
type buildSide struct {
	name          string
	total, deploy []time.Duration // send → first 200; send → deploy accepted
	once          func(ctx context.Context, tag, fn string, body []byte) (deployed, served time.Time, err error)
	letter        string // in tags and function names: d or h
	body          func(run, tag, fn string) ([]byte, error)
}

// buildOnServer measures issue 15's comparison: POST /build with deploy
// (the daemon builds the image in the engine and deploys it) → the first
// 200 through /function/NAME, against the same done by hand in the same
// run: the same context built through the Docker API's ImageBuild (the
// classic builder, with the options the daemon uses), then POST
// /system/functions (what faas-cli deploy sends) → the first 200. The two
// alternate, and which goes first alternates by run.
func (r *runner) buildOnServer(ctx context.Context) error {
	runs, err := strconv.Atoi(envOr("BENCH_BUILD_RUNS", "5"))
	if err != nil || runs < 1 || runs > 50 {
		return errors.New("BENCH_BUILD_RUNS: want a number from 1 to 50")
	}
	secret, err := os.ReadFile(filepath.Join(r.d.stateDir, "payload-secret"))
	if err != nil {
		return fmt.Errorf("payload secret: %w", err)
	}
	secret = bytes.TrimSpace(secret)
	bin := filepath.Join(r.tmp, "build-fn")
	args := append(append([]string{}, fnBuildFlags...), "-o", bin, "./"+fnSource)
	if err := r.goBuild(ctx, []string{"CGO_ENABLED=0", "GOOS=linux"}, args...); err != nil {
		return err
	}
	fnFile, err := imageFile("fn", bin)
	if err != nil {
		return err
	}

	// What the section made and has not removed yet; removed at the end,
	// also after a failure.
	fns, tags := map[string]bool{}, map[string]bool{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		r.buildCleanup(cctx, fns, tags)
	}()

	files := func(run string) []contextFile {
		return []contextFile{
			{"Dockerfile", 0o644, []byte(buildDockerfile)},
			{"run.txt", 0o644, []byte(run + "\n")},
			fnFile,
		}
	}
	client := &http.Client{Timeout: buildTimeout, Transport: &http.Transport{Proxy: nil}}
	daemonSide := &buildSide{
		name: "dockerfaasd: `POST /build` with deploy", letter: "d",
		// The go-sdk builder's layout, as faas-cli sends it.
		body: func(run, tag, fn string) ([]byte, error) {
			cfg, err := json.Marshal(build.Request{Image: tag, Deploy: &build.Deploy{Name: fn}})
			if err != nil {
				return nil, err
			}
			return tarOf("context/", files(run), map[string][]byte{"com.openfaas.docker.config": cfg})
		},
		once: func(ctx context.Context, tag, fn string, body []byte) (time.Time, time.Time, error) {
			return r.buildViaDaemon(ctx, client, secret, fn, body)
		},
	}
	handSide := &buildSide{
		name: "by hand: `ImageBuild` + `POST /system/functions`", letter: "h",
		body: func(run, _, _ string) ([]byte, error) { return tarOf("", files(run), nil) },
		once: func(ctx context.Context, tag, fn string, body []byte) (time.Time, time.Time, error) {
			return r.buildByHand(ctx, tag, fn, body)
		},
	}
	// one makes one run of side: a fresh tag and function name, the
	// context with its own run.txt, the timed run, then the removal of
	// the function and the image (not timed).
	one := func(sd *buildSide, run string, record bool) error {
		tag := fmt.Sprintf("%s:%s-%s%s", buildRepo, r.id, sd.letter, run)
		fn := "benchbuild-" + sd.letter + run
		body, err := sd.body(sd.letter+run, tag, fn)
		if err != nil {
			return err
		}
		tags[tag], fns[fn] = true, true
		t0 := time.Now()
		deployed, served, err := sd.once(ctx, tag, fn, body)
		if err != nil {
			return fmt.Errorf("%s, run %s: %w", sd.name, run, err)
		}
		logf("build %s run %s: deploy accepted after %s, first 200 after %s", sd.letter, run, deployed.Sub(t0), served.Sub(t0))
		if record {
			sd.total, sd.deploy = append(sd.total, served.Sub(t0)), append(sd.deploy, deployed.Sub(t0))
		}
		if err := r.removeFunction(ctx, fn); err != nil {
			return err
		}
		delete(fns, fn)
		if err := removeImage(ctx, r.docker, tag); err != nil {
			return err
		}
		delete(tags, tag)
		return nil
	}
	// Warm-up, not recorded: the first build of each side pays for caches
	// (the page cache, the engine's first build, the daemon's first
	// deploy of a build).
	for _, sd := range []*buildSide{daemonSide, handSide} {
		if err := one(sd, "w", false); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for i := range runs {
		order := []*buildSide{daemonSide, handSide}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, sd := range order {
			if err := one(sd, strconv.Itoa(i), true); err != nil {
				return err
			}
		}
	}

	dTotal, hTotal := median(daemonSide.total), median(handSide.total)
	dDeploy, hDeploy := median(daemonSide.deploy), median(handSide.deploy)
	afterDeploy := func(sd *buildSide) []time.Duration {
		out := make([]time.Duration, len(sd.total))
		for i := range sd.total {
			out[i] = sd.total[i] - sd.deploy[i]
		}
		return out
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fn-hostname compiled by the driver (static, %s) into a context of three files: a `FROM scratch` "+
		"Dockerfile, `run.txt` with the run's number (copied before the binary, so that no layer of an earlier run is "+
		"in the engine's build cache, as after a code change, on both sides alike) and the binary. %d runs per side "+
		"after one warm-up run each, alternating (which side goes first alternates by run); a fresh image tag and "+
		"function name per run, both removed after it (not timed). **dockerfaasd**: `POST /build` (the go-sdk layout: "+
		"`context/…` and `com.openfaas.docker.config` with `deploy: {name}`, signed with the payload secret), answered "+
		"once the image is built in the engine and the function deployed. **By hand**: the same context through the "+
		"Docker API's `ImageBuild` (the classic builder with the daemon's options, the stream read to its end), then "+
		"`POST /system/functions` (what `faas-cli deploy` sends). Both then poll `GET /function/NAME` every 10 ms "+
		"until the first 200.\n\n", fmtKB(int64(len(fnFile.data))/1024), runs)
	b.WriteString("| what | p50 | runs |\n|---|---:|---|\n")
	for _, sd := range []*buildSide{daemonSide, handSide} {
		fmt.Fprintf(&b, "| %s → first 200 | %s | %s |\n", sd.name, fmtDur(median(sd.total)), fmtDurs(sd.total))
	}
	for _, sd := range []*buildSide{daemonSide, handSide} {
		fmt.Fprintf(&b, "| %s: of which built and deploy accepted | %s | %s |\n", sd.name, fmtDur(median(sd.deploy)), fmtDurs(sd.deploy))
	}
	for _, sd := range []*buildSide{daemonSide, handSide} {
		after := afterDeploy(sd)
		fmt.Fprintf(&b, "| %s: of which deploy accepted → first 200 | %s | %s |\n", sd.name, fmtDur(median(after)), fmtDurs(after))
	}
	total := ratio(dTotal.Seconds(), hTotal.Seconds())
	fmt.Fprintf(&b, "\n| ratio (p50) | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| dockerfaasd / by hand, build → first 200 | %s |\n", fmtRatio(total))
	fmt.Fprintf(&b, "| dockerfaasd / by hand, built and deploy accepted | %s |\n", fmtRatio(ratio(dDeploy.Seconds(), hDeploy.Seconds())))
	logf("build: dockerfaasd p50 %s, by hand p50 %s (%.2f×)", dTotal, hTotal, total)
	r.rep.add("build", b.String())
	return nil
}

// buildViaDaemon sends the signed build request body with deploy to fn and
// waits for the first 200 of fn through the daemon. deployed is when the
// build's answer (built and deployed) arrived.
func (r *runner) buildViaDaemon(ctx context.Context, client *http.Client, secret []byte, fn string, body []byte) (deployed, served time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.d.base+"/build", bytes.NewReader(body))
	if err != nil {
		return deployed, served, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(build.SignatureHeader, build.Sign(body, secret))
	res, err := client.Do(req)
	if err != nil {
		return deployed, served, fmt.Errorf("POST /build: %w", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	deployed = time.Now()
	if err != nil {
		return deployed, served, fmt.Errorf("POST /build: %w", err)
	}
	var ans struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Log    []string `json:"log"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &ans) != nil || ans.Status != "success" {
		return deployed, served, fmt.Errorf("POST /build: %d %s", res.StatusCode, strings.TrimSpace(string(b)))
	}
	served, err = firstOK(ctx, r.d.base+"/function/"+fn, r.d.authHeader(), nil, buildPoll, buildFirstOK)
	return deployed, served, err
}

// buildByHand builds the context tar ctxTar as tag through the Docker API
// with the options the daemon's builder uses, deploys it as fn through
// the API and waits for the first 200 of fn.
func (r *runner) buildByHand(ctx context.Context, tag, fn string, ctxTar []byte) (deployed, served time.Time, err error) {
	bctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	resp, err := r.docker.ImageBuild(bctx, bytes.NewReader(ctxTar), dbuild.ImageBuildOptions{
		Tags: []string{tag}, Labels: map[string]string{labelBench: r.id},
		Remove: true, ForceRemove: true, Version: dbuild.BuilderV1,
	})
	if err != nil {
		return deployed, served, fmt.Errorf("image build %s: %w", tag, err)
	}
	err = docker.ParseBuildStream(resp.Body, nil)
	resp.Body.Close()
	if err != nil {
		return deployed, served, fmt.Errorf("image build %s: %w", tag, err)
	}
	if err := r.d.deploy(ctx, fn, tag); err != nil {
		return deployed, served, err
	}
	deployed = time.Now()
	served, err = firstOK(ctx, r.d.base+"/function/"+fn, r.d.authHeader(), nil, buildPoll, buildFirstOK)
	return deployed, served, err
}

// buildCleanup removes the functions, then the images (with their
// untagged build steps), that a failed run left.
func (r *runner) buildCleanup(ctx context.Context, fns, tags map[string]bool) {
	for fn := range fns {
		if err := r.removeFunction(ctx, fn); err != nil {
			logf("build: cleanup of function %s: %v", fn, err)
		}
	}
	for tag := range tags {
		if err := removeImage(ctx, r.docker, tag); err != nil {
			logf("build: cleanup of %s: %v", tag, err)
		}
	}
}

// tarOf writes files as a tar, each name after prefix, then the extra
// entries (name → content) as they are.
func tarOf(prefix string, files []contextFile, extra map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: prefix + f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	for name, data := range extra {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
