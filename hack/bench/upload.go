package main

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// uploadLayer is the size of the random-data layer of the uploaded image:
// an application image of a realistic size, which no compression shrinks.
const uploadLayer = 64 << 20

// upload measures POST /system/images against a plain `docker load` of the
// same archive through the Docker API, for the plain and the gzipped
// archive: throughput in MiB/s of archive bytes, from the first byte sent
// to the answer. The image is removed from the engine before every load, so
// each one writes its layer; daemon and docker loads alternate, so
// background load hits both alike.
func (r *runner) upload(ctx context.Context) error {
	ref := "dockerfaasd-bench/upload:" + r.id
	defer func() {
		if err := removeImage(context.WithoutCancel(ctx), r.docker, ref); err != nil {
			logf("upload: cleanup of %s: %v", ref, err)
		}
	}()
	plain, gz, err := r.uploadArchives(ctx, ref)
	if err != nil {
		return err
	}
	type cell struct {
		viaDaemon, viaDocker, ratios []float64
		ticks                        int64 // the daemon's CPU over the recorded runs
	}
	cells := map[string]*cell{"plain": {}, "gzip": {}}
	files := map[string]string{"plain": plain, "gzip": gz}
	// Round 0 is a warm-up, not recorded: the archives reach the page
	// cache and both paths their first connection.
	for i := range r.s.HealRuns + 1 {
		for _, kind := range []string{"plain", "gzip"} {
			dockerRate, err := r.timedLoad(ctx, ref, files[kind], r.dockerLoad)
			if err != nil {
				return fmt.Errorf("docker load (%s): %w", kind, err)
			}
			t0, err := cpuTicks(r.d.cmd.Process.Pid)
			if err != nil {
				return err
			}
			daemonRate, err := r.timedLoad(ctx, ref, files[kind], r.daemonLoad)
			if err != nil {
				return fmt.Errorf("POST /system/images (%s): %w", kind, err)
			}
			t1, err := cpuTicks(r.d.cmd.Process.Pid)
			if err != nil {
				return err
			}
			logf("upload %d %s: docker load %.1f MiB/s, dockerfaasd %.1f MiB/s", i, kind, dockerRate, daemonRate)
			if i == 0 {
				continue
			}
			c := cells[kind]
			c.viaDocker, c.viaDaemon = append(c.viaDocker, dockerRate), append(c.viaDaemon, daemonRate)
			c.ratios = append(c.ratios, ratio(daemonRate, dockerRate))
			c.ticks += t1 - t0
		}
	}

	sizes := map[string]int64{}
	for k, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return err
		}
		sizes[k] = st.Size()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "An image `FROM scratch` with one %d MiB layer of random data (the archive: %.1f MiB plain, %.1f MiB gzipped; "+
		"random data does not compress, so gzip costs CPU and saves nothing here). %d runs each after a warm-up, alternating; "+
		"the image is removed before every load. MiB/s of archive bytes, first byte sent → answer; medians, and the ratio "+
		"is the median of each run's ratio (dockerfaasd ÷ `docker load` of the same run), with its range.\n\n",
		uploadLayer>>20, mib(sizes["plain"]), mib(sizes["gzip"]), r.s.HealRuns)
	b.WriteString("| archive | `docker load` (Docker API) | dockerfaasd `POST /system/images` | ratio (range) | daemon CPU per MiB | runs MiB/s (docker / dockerfaasd) |\n|---|---:|---:|---:|---:|---|\n")
	for _, kind := range []string{"plain", "gzip"} {
		c := cells[kind]
		// USER_HZ is 100 on Linux: a tick is 10 ms.
		cpuPerMiB := float64(c.ticks*10) / (mib(sizes[kind]) * float64(len(c.ratios)))
		fmt.Fprintf(&b, "| %s | %.1f MiB/s | %.1f MiB/s | %s (%s–%s) | %.1f ms | %s / %s |\n", kind, medianF(c.viaDocker), medianF(c.viaDaemon),
			fmtRatio(medianF(c.ratios)), fmtRatio(slices.Min(c.ratios)), fmtRatio(slices.Max(c.ratios)), cpuPerMiB, fmtRates(c.viaDocker), fmtRates(c.viaDaemon))
	}
	b.WriteString("\nThe daemon streams the archive into the same load (gzip is decompressed by the daemon and bounded by " +
		"`IMAGE_UPLOAD_MAX`, where `docker load` decompresses it inside the engine), so a ratio near 1 means the " +
		"upload path adds little to the engine's own work. The daemon's CPU (utime + stime, all its threads) per MiB " +
		"uploaded is a property of the process and barely moves with background load.\n")
	r.rep.add("upload", b.String())
	return nil
}

// uploadArchives builds the image, saves it plain and gzipped into the
// run's temporary directory and returns both paths.
func (r *runner) uploadArchives(ctx context.Context, ref string) (plain, gz string, err error) {
	blob := make([]byte, uploadLayer)
	if _, err := rand.Read(blob); err != nil {
		return "", "", err
	}
	if err := buildImage(ctx, r.docker, ref, "FROM scratch\nCOPY blob /blob\n",
		map[string]string{labelBench: r.id}, contextFile{name: "blob", mode: 0o644, data: blob}); err != nil {
		return "", "", err
	}
	plain, gz = filepath.Join(r.tmp, "upload.tar"), filepath.Join(r.tmp, "upload.tar.gz")
	rc, err := r.docker.ImageSave(ctx, []string{ref})
	if err != nil {
		return "", "", fmt.Errorf("save %s: %w", ref, err)
	}
	defer rc.Close()
	pf, err := os.Create(plain)
	if err != nil {
		return "", "", err
	}
	defer pf.Close()
	gf, err := os.Create(gz)
	if err != nil {
		return "", "", err
	}
	defer gf.Close()
	zw := gzip.NewWriter(gf)
	if _, err := io.Copy(io.MultiWriter(pf, zw), rc); err != nil {
		return "", "", fmt.Errorf("save %s: %w", ref, err)
	}
	if err := zw.Close(); err != nil {
		return "", "", err
	}
	return plain, gz, errors.Join(pf.Close(), gf.Close())
}

// timedLoad removes ref from the engine, loads file with load and returns
// the rate in MiB/s; it checks that the load brought ref back.
func (r *runner) timedLoad(ctx context.Context, ref, file string, load func(context.Context, io.Reader) error) (float64, error) {
	if err := removeImage(ctx, r.docker, ref); err != nil {
		return 0, err
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := load(lctx, f); err != nil {
		return 0, err
	}
	took := time.Since(t0)
	if _, err := r.docker.ImageInspect(ctx, ref); err != nil {
		return 0, fmt.Errorf("%s after the load: %w", ref, err)
	}
	return mib(st.Size()) / took.Seconds(), nil
}

// dockerLoad is `docker load` through the API, its answer read to the end
// (the load is complete only then).
func (r *runner) dockerLoad(ctx context.Context, archive io.Reader) error {
	res, err := r.docker.ImageLoad(ctx, archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	lr, err := docker.ParseLoadStream(res.Body)
	if err != nil {
		return err
	}
	if len(lr.Loaded) == 0 {
		return errors.New("the engine loaded nothing")
	}
	return nil
}

// uploadClient sends the uploads: no timeout but the context's, no proxy
// from the environment.
var uploadClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// daemonLoad streams the archive to the daemon's POST /system/images.
func (r *runner) daemonLoad(ctx context.Context, archive io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.d.base+"/system/images", io.NopCloser(archive))
	if err != nil {
		return err
	}
	req.ContentLength = -1 // streamed, as `dockerfaasd push` sends it
	req.Header.Set("Authorization", r.d.authHeader())
	req.Header.Set("Content-Type", "application/x-tar")
	res, err := uploadClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// removeImage removes ref (a tag this run made) with the untagged images
// of its build steps; absent is fine.
func removeImage(ctx context.Context, cli *client.Client, ref string) error {
	_, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fmtRates(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.1f", v)
	}
	return strings.Join(parts, ", ")
}
