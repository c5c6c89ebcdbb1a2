package docker

import (
	"context"
	"io"

	"github.com/docker/docker/api/types/container"
)

// CopyToContainer implements Engine over Docker's archive API
// (PUT /containers/{id}/archive). The daemon extracts the archive itself,
// so it works when dockerfaasd runs in a container and shares no host path
// with the functions. Owners come from the archive (CopyUIDGID off: not the
// container's user).
func (d *Client) CopyToContainer(ctx context.Context, id, dir string, archive io.Reader) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("copy into container "+ShortID(id)+":"+dir,
		d.c.CopyToContainer(ctx, id, dir, archive, container.CopyToContainerOptions{}))
}
