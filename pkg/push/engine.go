package push

import (
	"context"
	"errors"
	"fmt"
	"io"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Engine is what push needs of the local Docker Engine.
type Engine interface {
	// Inspect returns the local image ref; ErrImageNotFound when absent.
	Inspect(ctx context.Context, ref string) (Image, error)
	// Save streams `docker save` of ref (a tar archive).
	Save(ctx context.Context, ref string) (io.ReadCloser, error)
}

// Image is what push reads of a local image.
type Image struct {
	ID       string
	RepoTags []string
	// Size is the image's size as the engine reports it: an estimate of
	// the archive's size (the tar adds headers and metadata).
	Size int64
}

// ErrImageNotFound means the local engine has no such image.
var ErrImageNotFound = errors.New("image not found in the local Docker Engine")

// ImageAPI is the subset of the Docker client DockerEngine uses.
type ImageAPI interface {
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageSave(ctx context.Context, refs []string, opts ...client.ImageSaveOption) (io.ReadCloser, error)
}

var _ ImageAPI = (*client.Client)(nil)

// DockerEngine is Engine over the Docker client.
type DockerEngine struct {
	API ImageAPI
}

var _ Engine = DockerEngine{}

// Inspect implements Engine.
func (e DockerEngine) Inspect(ctx context.Context, ref string) (Image, error) {
	in, err := e.API.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("%s: %w", ref, ErrImageNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("inspecting %s: %w", ref, err)
	}
	return Image{ID: in.ID, RepoTags: in.RepoTags, Size: in.Size}, nil
}

// Save implements Engine.
func (e DockerEngine) Save(ctx context.Context, ref string) (io.ReadCloser, error) {
	rc, err := e.API.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, fmt.Errorf("saving %s: %w", ref, err)
	}
	return rc, nil
}
