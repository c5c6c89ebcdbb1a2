package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Image is what image upload needs to know about an image.
type Image struct {
	ID       string
	RepoTags []string
	Size     int64
}

// LoadResult is what a `docker load` reported, as far as it got: the
// references it tagged and the references it moved away from another
// image. A load that failed half-way reports what it did before failing.
type LoadResult struct {
	// Loaded lists, in order, every reference the load tagged ("Loaded
	// image: REF"), and every image the archive names by ID only (Ref "").
	Loaded []LoadedRef
	// Moved maps a reference the load took from another image to the ID
	// of that image ("The image REF already exists, renaming the old one
	// with ID X to empty string").
	Moved map[string]string
}

// LoadedRef is one reference (or ID-only image) a load reported.
type LoadedRef struct {
	Ref string
	ID  string // set for an ID-only image; look a Ref up for its ID
}

// LoadError is the engine's reason for refusing an archive: the
// errorDetail of the load stream.
type LoadError struct{ Message string }

func (e *LoadError) Error() string { return e.Message }

// ImageEngine is the part of the Docker Engine API that image upload
// uses. *Client implements it; it is separate from Engine so that the
// runtime's fakes need not.
type ImageEngine interface {
	// ListImages lists every image, intermediate ones included.
	ListImages(ctx context.Context) ([]Image, error)
	// InspectImage returns the image ref names (ErrNotFound when absent).
	InspectImage(ctx context.Context, ref string) (Image, error)
	// LoadImages streams a plain tar archive of `docker save` into the
	// engine. It returns what the load reported also when it failed; a
	// refused archive is a *LoadError.
	LoadImages(ctx context.Context, archive io.Reader) (LoadResult, error)
	// TagImage points ref at the image id (moving it from another image).
	TagImage(ctx context.Context, id, ref string) error
	// RemoveImage removes the reference ref, and the image with it when
	// ref was its last reference. Never forced, never pruning parents: an
	// image a container uses stays (ErrConflict).
	RemoveImage(ctx context.Context, ref string) error
}

var _ ImageEngine = (*Client)(nil)

// ListImages implements ImageEngine.
func (d *Client) ListImages(ctx context.Context) ([]Image, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	list, err := d.c.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return nil, wrap("list images", err)
	}
	out := make([]Image, 0, len(list))
	for _, s := range list {
		out = append(out, Image{ID: s.ID, RepoTags: realTags(s.RepoTags), Size: s.Size})
	}
	return out, nil
}

// realTags drops the "<none>:<none>" Docker 20.10 lists for untagged images.
func realTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "<none>:<none>" {
			out = append(out, t)
		}
	}
	return out
}

// InspectImage implements ImageEngine.
func (d *Client) InspectImage(ctx context.Context, ref string) (Image, error) {
	if err := d.ready(ctx); err != nil {
		return Image{}, err
	}
	img, err := d.c.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, wrap("inspect image "+ref, err)
	}
	return Image{ID: img.ID, RepoTags: img.RepoTags, Size: img.Size}, nil
}

// LoadImages implements ImageEngine. The archive is streamed as the body
// of one request (chunked), never buffered. The engine answers 200 and
// reports success and failure in the body (a JSON message stream), so the
// stream is read to its end: the load is complete only then.
func (d *Client) LoadImages(ctx context.Context, archive io.Reader) (LoadResult, error) {
	if err := d.ready(ctx); err != nil {
		return LoadResult{}, err
	}
	// Quiet leaves out the progress bars, not the messages that matter.
	resp, err := d.c.ImageLoad(ctx, archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return LoadResult{}, wrap("load images", err)
	}
	defer resp.Body.Close()
	res, err := ParseLoadStream(resp.Body)
	var le *LoadError
	if err != nil && !errors.As(err, &le) {
		err = wrap("load images", err)
	}
	return res, err
}

// TagImage implements ImageEngine.
func (d *Client) TagImage(ctx context.Context, id, ref string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	return wrap("tag image "+ShortID(strings.TrimPrefix(id, "sha256:"))+" as "+ref, d.c.ImageTag(ctx, id, ref))
}

// RemoveImage implements ImageEngine.
func (d *Client) RemoveImage(ctx context.Context, ref string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	_, err := d.c.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: false})
	return wrap("remove image "+ref, err)
}

// loadMessage is one message of the load stream (a jsonmessage).
type loadMessage struct {
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// The stream lines of a load that matter, as Docker writes them (the
// same from 20.10 to today's engines).
const (
	loadedRefPrefix = "Loaded image: "
	loadedIDPrefix  = "Loaded image ID: "
	movedPrefix     = "The image "
	movedMiddle     = " already exists, renaming the old one with ID "
	movedSuffix     = " to empty string"
)

// ParseLoadStream reads a load's message stream to its end and returns
// what it reports: the references tagged and moved, and the engine's
// error as a *LoadError. A stream that breaks off is an error too (what
// was read before is still returned).
func ParseLoadStream(r io.Reader) (LoadResult, error) {
	res := LoadResult{Moved: map[string]string{}}
	dec := json.NewDecoder(r)
	for {
		var m loadMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return res, nil
			}
			return res, fmt.Errorf("reading the load's answer: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return res, &LoadError{Message: m.ErrorDetail.Message}
		case m.Error != "":
			return res, &LoadError{Message: m.Error}
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, loadedIDPrefix):
				res.Loaded = append(res.Loaded, LoadedRef{ID: strings.TrimPrefix(line, loadedIDPrefix)})
			case strings.HasPrefix(line, loadedRefPrefix):
				res.Loaded = append(res.Loaded, LoadedRef{Ref: strings.TrimPrefix(line, loadedRefPrefix)})
			case strings.HasPrefix(line, movedPrefix) && strings.HasSuffix(line, movedSuffix):
				mid := strings.TrimSuffix(strings.TrimPrefix(line, movedPrefix), movedSuffix)
				if ref, id, ok := strings.Cut(mid, movedMiddle); ok {
					res.Moved[ref] = id
				}
			}
		}
	}
}
