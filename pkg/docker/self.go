package docker

import (
	"context"
	"path/filepath"
	"strings"
)

// ContainerID resolves a container name, short ID or hostname-like
// reference to the full ID of a running container (ErrNotFound otherwise).
func (d *Client) ContainerID(ctx context.Context, ref string) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	c, err := d.c.ContainerInspect(ctx, ref)
	if err != nil {
		return "", wrap("inspect container "+ref, err)
	}
	return c.ID, nil
}

// DisconnectNetwork detaches a container from a network (forcibly, so a
// stopped container does not block removing the network).
func (d *Client) DisconnectNetwork(ctx context.Context, nw, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("disconnect "+ShortID(id)+" from "+nw, d.c.NetworkDisconnect(ctx, nw, id, true))
}

// Mount is one mount of a container: Source as the engine's host sees it,
// Destination inside the container.
type Mount struct {
	Source, Destination string
}

// ContainerMounts lists the mounts of container ref.
func (d *Client) ContainerMounts(ctx context.Context, ref string) ([]Mount, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	c, err := d.c.ContainerInspect(ctx, ref)
	if err != nil {
		return nil, wrap("inspect container "+ref, err)
	}
	out := make([]Mount, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		out = append(out, Mount{Source: m.Source, Destination: m.Destination})
	}
	return out, nil
}

// HostPath translates path, inside a container with mounts, into the path
// the engine's host knows it by: under the mount that holds it, the
// deepest one. ok is false when no mount holds it (it is in the
// container's own filesystem, which the host cannot bind-mount).
func HostPath(mounts []Mount, path string) (host string, ok bool) {
	best := -1
	for i, m := range mounts {
		rel, err := filepath.Rel(m.Destination, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if best < 0 || len(m.Destination) > len(mounts[best].Destination) {
			best = i
			host = filepath.Join(m.Source, rel)
		}
	}
	return host, best >= 0
}
