package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// The daemon's binary reaches pre-started job containers through a named
// volume (no host path is assumed, so it works when the daemon runs in a
// container too). The volume is named by the binary's content hash and
// shared by every daemon instance on the engine running the same binary;
// it is filled once through a created (never started) container of the
// function's image, since Docker copies into a stopped container's
// volumes.

// jobInitVolumePrefix starts the name of every job-init volume.
const jobInitVolumePrefix = "dockerfaasd-job-init-"

// jobInitVolume provisions, once, the volume holding the binary. A
// failure is not remembered: the fill that asked fails, and its pool's
// backoff spaces out the next attempts. Lock order: mu before jobState.mu
// (provisioning registers a run), so mu is never taken under jobState.mu.
type jobInitVolume struct {
	mu     sync.Mutex
	name   string // set once the volume holds the whole binary
	hashed string // the binary's hash, once read
}

// volume returns the name of the volume holding the daemon's binary,
// provisioning it with a container of image when needed.
func (r *Runtime) jobInitVolume(ctx context.Context, we engine.WarmEngine, image string) (string, error) {
	v := &r.jobs.init
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.name != "" {
		return v.name, nil
	}
	name, err := r.provisionJobInit(ctx, we, image)
	if err != nil {
		return "", err
	}
	v.name = name
	return name, nil
}

// forgetJobInitVolume makes the next fill check the volume again (a fill
// failed: the volume may have been removed behind the daemon's back).
func (r *Runtime) forgetJobInitVolume() {
	r.jobs.init.mu.Lock()
	r.jobs.init.name = ""
	r.jobs.init.mu.Unlock()
}

func (r *Runtime) provisionJobInit(ctx context.Context, we engine.WarmEngine, image string) (string, error) {
	v := &r.jobs.init
	if v.hashed == "" {
		h, err := fileHash(r.cfg.JobInitBinary)
		if err != nil {
			return "", fmt.Errorf("read the daemon's binary for job-init: %w", err)
		}
		v.hashed = h
	}
	name := jobInitVolumePrefix + v.hashed
	labels := map[string]string{engine.LabelManaged: "true", engine.LabelJobInit: v.hashed}
	if err := we.CreateVolume(ctx, name, labels); err != nil {
		r.metrics.dockerError("volume")
		return "", err
	}
	// The helper container is registered as a run, so List does not take
	// it for an orphan while it is used.
	run, runCtx, err := r.jobs.begin(ctx, "")
	if err != nil {
		return "", err
	}
	defer r.finishRun(run)
	spec := engine.ContainerSpec{
		Name:         fmt.Sprintf("%s-job-init-%s", r.cfg.Instance, run.id),
		Image:        image,
		Labels:       r.jobLabels(""),
		Network:      "none",
		Entrypoint:   []string{engine.JobInitBinary},
		VolumeMounts: []engine.VolumeMount{{Volume: name, Target: engine.JobInitDir}},
	}
	spec.Labels[engine.LabelRun] = run.id
	id, err := r.eng.CreateContainer(runCtx, spec)
	if err != nil {
		r.metrics.dockerError("create")
		return "", fmt.Errorf("create the container that fills the job-init volume: %w", err)
	}
	r.jobs.setContainer(run, id)
	done, err := we.PathExists(runCtx, id, engine.JobInitDone)
	if err != nil {
		return "", err
	}
	if !done {
		start := time.Now()
		if err := r.eng.CopyToContainer(runCtx, id, engine.JobInitDir, binaryArchive(r.cfg.JobInitBinary)); err != nil {
			r.metrics.dockerError("copy")
			return "", fmt.Errorf("copy the daemon's binary into volume %s: %w", name, err)
		}
		r.cfg.Log.WithFields(logrus.Fields{"volume": name, "took": time.Since(start).Round(time.Millisecond)}).
			Info("job-init: the daemon's binary is in its volume; job containers can be started ahead of calls")
	}
	r.removeOldJobInitVolumes(ctx, we, name)
	return name, nil
}

// removeOldJobInitVolumes removes job-init volumes of other binaries that
// no container uses (Docker refuses those in use: kept for next time).
func (r *Runtime) removeOldJobInitVolumes(ctx context.Context, we engine.WarmEngine, keep string) {
	names, err := we.ListVolumes(ctx, map[string]string{engine.LabelManaged: "true"})
	if err != nil {
		return
	}
	for _, n := range names {
		if n == keep || !strings.HasPrefix(n, jobInitVolumePrefix) {
			continue
		}
		if err := we.RemoveVolume(ctx, n); err == nil {
			r.cfg.Log.WithField("volume", n).Info("job-init: removed the volume of an older binary")
		}
	}
}

// fileHash is the first 12 hex digits of the SHA-256 of a file.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// binaryArchive streams a tar of the binary (executable by every user)
// followed by the completion marker.
func binaryArchive(path string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeBinaryArchive(pw, path))
	}()
	return pr
}

func writeBinaryArchive(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	base := strings.TrimPrefix(engine.JobInitBinary, engine.JobInitDir+"/")
	if err := tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: st.Size(), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if n, err := io.Copy(tw, f); err != nil || n != st.Size() {
		return errors.Join(err, fmt.Errorf("copied %d of %d bytes", n, st.Size()))
	}
	done := strings.TrimPrefix(engine.JobInitDone, engine.JobInitDir+"/")
	if err := tw.WriteHeader(&tar.Header{Name: done, Mode: 0o644, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	return tw.Close()
}
