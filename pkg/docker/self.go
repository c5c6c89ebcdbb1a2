package docker

import (
	"context"
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
