package docker

import "context"

// HostNamer is an engine that can say the name of the host it runs on.
type HostNamer interface {
	// HostName is the engine host's name (docker info's Name).
	HostName(ctx context.Context) (string, error)
}

var _ HostNamer = (*Client)(nil)

// HostName implements HostNamer: one engine round trip, so callers cache it.
func (d *Client) HostName(ctx context.Context) (string, error) {
	if err := d.ready(ctx); err != nil {
		return "", err
	}
	info, err := d.c.Info(ctx)
	if err != nil {
		return "", wrap("info", err)
	}
	return info.Name, nil
}
