package fake

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// File is a file or directory CopyToContainer placed into a container.
type File struct {
	// Mode holds the permission bits, plus fs.ModeDir for a directory.
	Mode     fs.FileMode
	UID, GID int
	Content  []byte
}

// CopyToContainer implements docker.Engine: it unpacks the archive into the
// container's in-memory file tree and records "copy NAME DIR". Like Docker,
// it refuses a dir on a read-only root filesystem outside the container's
// volumes, and entries that would land outside dir.
func (e *Engine) CopyToContainer(ctx context.Context, id, dir string, archive io.Reader) error {
	data, err := io.ReadAll(archive)
	if err != nil {
		return fmt.Errorf("copy into %s: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.fail("copy", id); err != nil {
		return err
	}
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("copy into %s: %w", id, docker.ErrNotFound)
	}
	spec := e.specs[id]
	if spec.ReadOnlyRootfs && !inVolume(dir, spec.Volumes) && !e.writableVolumeAtLocked(id, dir) {
		return fmt.Errorf("copy into %s:%s: container rootfs is marked read-only", c.Name, dir)
	}
	files := map[string]File{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("copy into %s: bad archive: %w", c.Name, err)
		}
		p := path.Join(dir, h.Name)
		if p != dir && !strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
			return fmt.Errorf("copy into %s: entry %q escapes %s", c.Name, h.Name, dir)
		}
		f := File{Mode: fs.FileMode(h.Mode).Perm(), UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Mode |= fs.ModeDir
		case tar.TypeReg:
			if f.Content, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("copy into %s: bad archive: %w", c.Name, err)
			}
		default:
			return fmt.Errorf("copy into %s: entry %q: unsupported type %q", c.Name, h.Name, h.Typeflag)
		}
		files[p] = f
	}
	if e.files == nil {
		e.files = map[string]map[string]File{}
	}
	if e.files[id] == nil {
		e.files[id] = map[string]File{}
	}
	for p, f := range files {
		if v, rel := e.volumeAtLocked(id, p); v != nil {
			v.files[rel] = f // in the volume, seen by every container that mounts it
			continue
		}
		e.files[id][p] = f
	}
	e.record("copy %s %s", c.Name, dir)
	return nil
}

// Files returns what CopyToContainer placed into container id, by path.
func (e *Engine) Files(id string) map[string]File {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]File, len(e.files[id]))
	for p, f := range e.files[id] {
		f.Content = bytes.Clone(f.Content)
		out[p] = f
	}
	return out
}

func inVolume(dir string, volumes []string) bool {
	for _, v := range volumes {
		if dir == v || strings.HasPrefix(dir, strings.TrimSuffix(v, "/")+"/") {
			return true
		}
	}
	return false
}
