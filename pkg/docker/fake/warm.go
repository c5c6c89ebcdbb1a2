package fake

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"runtime"
	"slices"
	"strings"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/jobinit"
)

var _ docker.WarmEngine = (*Engine)(nil)

// fakeVolume is a named volume: its labels and the files copied into it.
type fakeVolume struct {
	labels map[string]string
	files  map[string]File // by path inside the volume
}

// SetImageConfig sets what ImageConfig answers for ref (default: command
// /fn, this machine's platform).
func (e *Engine) SetImageConfig(ref string, c docker.ImageConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.imageConfigs == nil {
		e.imageConfigs = map[string]docker.ImageConfig{}
	}
	e.imageConfigs[ref] = c
}

// ImageConfig implements docker.WarmEngine.
func (e *Engine) ImageConfig(ctx context.Context, ref string) (docker.ImageConfig, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("inspect-image", ref); err != nil {
		return docker.ImageConfig{}, err
	}
	if !e.images[ref] {
		return docker.ImageConfig{}, fmt.Errorf("inspect image %s: %w", ref, docker.ErrNotFound)
	}
	if c, ok := e.imageConfigs[ref]; ok {
		return c, nil
	}
	return docker.ImageConfig{Entrypoint: []string{"/fn"}, OS: "linux", Architecture: runtime.GOARCH}, nil
}

// CreateVolume implements docker.WarmEngine.
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("create-volume", name); err != nil {
		return err
	}
	if e.volumes == nil {
		e.volumes = map[string]*fakeVolume{}
	}
	if _, ok := e.volumes[name]; !ok {
		e.volumes[name] = &fakeVolume{labels: maps.Clone(labels), files: map[string]File{}}
		e.record("create-volume %s", name)
	}
	return nil
}

// ListVolumes implements docker.WarmEngine.
func (e *Engine) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("list-volumes", ""); err != nil {
		return nil, err
	}
	var out []string
	for name, v := range e.volumes {
		if matches(v.labels, labels) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RemoveVolume implements docker.WarmEngine: a volume a container mounts
// is ErrConflict, as in Docker.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("remove-volume", name); err != nil {
		return err
	}
	if _, ok := e.volumes[name]; !ok {
		return fmt.Errorf("remove volume %s: %w", name, docker.ErrNotFound)
	}
	for id := range e.containers {
		for _, m := range e.specs[id].VolumeMounts {
			if m.Volume == name {
				return fmt.Errorf("remove volume %s: volume is in use: %w", name, docker.ErrConflict)
			}
		}
	}
	delete(e.volumes, name)
	e.record("remove-volume %s", name)
	return nil
}

// VolumeNames lists the volumes.
func (e *Engine) VolumeNames() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.volumes))
}

// PathExists implements docker.WarmEngine.
func (e *Engine) PathExists(ctx context.Context, id, p string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("stat", id); err != nil {
		return false, err
	}
	if _, ok := e.containers[id]; !ok {
		return false, fmt.Errorf("stat %s: %w", id, docker.ErrNotFound)
	}
	if _, ok := e.files[id][p]; ok {
		return true, nil
	}
	if v, rel := e.volumeAtLocked(id, p); v != nil {
		_, ok := v.files[rel]
		return ok, nil
	}
	return false, nil
}

// volumeAtLocked is the named volume container id mounts at p or above
// it, and p's path inside it; e.mu is held.
func (e *Engine) volumeAtLocked(id, p string) (*fakeVolume, string) {
	for _, m := range e.specs[id].VolumeMounts {
		if p == m.Target || strings.HasPrefix(p, strings.TrimSuffix(m.Target, "/")+"/") {
			if v := e.volumes[m.Volume]; v != nil {
				return v, path.Join("/", strings.TrimPrefix(p, m.Target))
			}
		}
	}
	return nil, ""
}

// writableVolumeAtLocked reports whether dir is in a named volume the
// container mounts read-write; e.mu is held.
func (e *Engine) writableVolumeAtLocked(id, dir string) bool {
	for _, m := range e.specs[id].VolumeMounts {
		if !m.ReadOnly && (dir == m.Target || strings.HasPrefix(dir, strings.TrimSuffix(m.Target, "/")+"/")) {
			return true
		}
	}
	return false
}

// jobInitProgram is `dockerfaasd job-init` (see pkg/jobinit): it waits
// for the frame on stdin, acks on stdout, and runs the job program set at
// that time, with the frame's environment added and the command after
// "--".
func (e *Engine) jobInitProgram() JobProgram {
	return func(ctx context.Context, spec docker.ContainerSpec, stdin io.Reader, stdout, stderr io.Writer) docker.Exit {
		if c, ok := stdin.(io.Closer); ok { // a kill ends the wait for the frame
			defer context.AfterFunc(ctx, func() { _ = c.Close() })()
		}
		f, err := jobinit.Decode(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "dockerfaasd job-init:", err)
			return docker.Exit{Code: 1}
		}
		if _, err := stdout.Write([]byte{jobinit.Ack}); err != nil {
			return docker.Exit{Code: 1}
		}
		e.mu.Lock()
		prog := e.program
		e.mu.Unlock()
		if prog == nil {
			prog = echoProgram
		}
		run := spec
		run.Env = append(slices.Clone(spec.Env), f.Env...)
		if i := slices.Index(spec.Entrypoint, "--"); i >= 0 {
			run.Entrypoint = spec.Entrypoint[i+1:]
		}
		return prog(ctx, run, stdin, stdout, stderr)
	}
}

// isJobInit reports whether spec runs job-init first.
func isJobInit(spec docker.ContainerSpec) bool {
	return len(spec.Entrypoint) > 0 && spec.Entrypoint[0] == docker.JobInitBinary
}
