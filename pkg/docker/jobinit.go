package docker

import (
	"context"
	"errors"

	"github.com/docker/docker/api/types/volume"
)

// Pre-started job containers (see pkg/jobinit): the daemon's own binary
// is put in a volume once, mounted read-only at JobInitDir in every job
// container the daemon starts ahead of its call.
const (
	// JobInitDir is where a pre-started job container finds the binary.
	JobInitDir = "/.dockerfaasd"
	// JobInitBinary is the binary's path in the container.
	JobInitBinary = JobInitDir + "/dockerfaasd"
	// JobInitDone is a file written after the binary (archives extract in
	// order): a volume without it holds a copy cut short.
	JobInitDone = JobInitDir + "/complete"
	// LabelJobInit marks a volume holding the binary; the value is the
	// binary's content hash, also in the volume's name.
	LabelJobInit = "io.dockerfaas.job-init"
)

// VolumeMount mounts a named volume into a container.
type VolumeMount struct {
	Volume, Target string
	ReadOnly       bool
}

// ImageConfig is what pre-starting a job needs to know of its image: the
// command Docker would run, and the platform.
type ImageConfig struct {
	Entrypoint, Cmd  []string
	OS, Architecture string
}

// WarmEngine is what pre-started job containers need beyond JobEngine.
// *Client and the fake implement it.
type WarmEngine interface {
	// ImageConfig reads an image's command and platform.
	ImageConfig(ctx context.Context, ref string) (ImageConfig, error)
	// CreateVolume creates a named local volume; one of that name already
	// there is no error (Docker answers with it).
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	// ListVolumes names the volumes carrying all of labels.
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)
	// RemoveVolume removes a volume; one in use is ErrConflict.
	RemoveVolume(ctx context.Context, name string) error
	// PathExists reports whether path exists in a container, created or
	// running (its volumes included).
	PathExists(ctx context.Context, id, path string) (bool, error)
}

var _ WarmEngine = (*Client)(nil)

// ImageConfig implements WarmEngine.
func (d *Client) ImageConfig(ctx context.Context, ref string) (ImageConfig, error) {
	if err := d.ready(ctx); err != nil {
		return ImageConfig{}, err
	}
	img, err := d.c.ImageInspect(ctx, ref)
	if err != nil {
		return ImageConfig{}, wrap("inspect image "+ref, err)
	}
	out := ImageConfig{OS: img.Os, Architecture: img.Architecture}
	if img.Config != nil {
		out.Entrypoint, out.Cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	return out, nil
}

// CreateVolume implements WarmEngine.
func (d *Client) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	_, err := d.c.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: labels})
	return wrap("create volume "+name, err)
}

// ListVolumes implements WarmEngine.
func (d *Client) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.VolumeList(ctx, volume.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap("list volumes", err)
	}
	out := make([]string, 0, len(list.Volumes))
	for _, v := range list.Volumes {
		out = append(out, v.Name)
	}
	return out, nil
}

// RemoveVolume implements WarmEngine.
func (d *Client) RemoveVolume(ctx context.Context, name string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("remove volume "+name, d.c.VolumeRemove(ctx, name, false))
}

// PathExists implements WarmEngine.
func (d *Client) PathExists(ctx context.Context, id, path string) (bool, error) {
	if err := d.ready(ctx); err != nil {
		return false, err
	}
	_, err := d.c.ContainerStatPath(ctx, id, path)
	if err == nil {
		return true, nil
	}
	err = wrap("stat "+ShortID(id)+":"+path, err)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, err
}
