// Package push is the client side of deploying without a registry
// (`dockerfaasd push`): it saves an image from the local Docker Engine,
// streams the archive to a gateway's POST /system/images, and optionally
// deploys it as a function the way faas-cli deploy does.
package push

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/openfaas/faas-provider/types"
)

// AnnotationImageID carries the ID of the image pushed for a deploy. A push
// of a new build under the same tag then changes the function's spec, so
// the gateway rolls it onto the new image; with the tag alone an unchanged
// PUT would replace nothing.
const AnnotationImageID = "io.dockerfaas.image-id"

// Options is one push.
type Options struct {
	// Image is the local image to send (name[:tag], name@digest or ID).
	Image string
	// Deploy, when set, deploys the image as this function afterwards.
	Deploy string
	// Namespace of the function (the gateway's default when empty).
	Namespace string
	// Env and Labels of the function.
	Env, Labels map[string]string
	// Gzip compresses the archive on the fly.
	Gzip bool
}

// Pusher runs pushes.
type Pusher struct {
	Engine  Engine
	Gateway Gateway
	// GatewayURL is shown in the function's URL.
	GatewayURL *url.URL
	// Out receives the results (loaded images, deploy status, URL).
	Out io.Writer
	// NewProgress returns the progress report for an upload; nil reports
	// nothing.
	NewProgress func(label string, expected int64, gzipped bool) *Progress
}

// Run sends opts.Image and deploys it when asked.
func (p *Pusher) Run(ctx context.Context, opts Options) error {
	img, err := p.Engine.Inspect(ctx, opts.Image)
	if err != nil {
		return err
	}
	ref := saveRef(opts.Image, img)
	loaded, err := p.send(ctx, ref, img.Size, opts.Gzip)
	if err != nil {
		return err
	}
	if len(loaded) == 0 {
		return fmt.Errorf("the gateway loaded no image from the archive of %s", ref)
	}
	for _, l := range loaded {
		name := l.Ref
		if name == "" {
			name = "an untagged image" // the archive named it by ID
		}
		fmt.Fprintf(p.Out, "Loaded %s (%s, %s)\n", name, shortID(l.ID), humanBytes(l.Size))
	}
	if opts.Deploy == "" {
		return nil
	}
	spec := types.FunctionDeployment{
		Service:     opts.Deploy,
		Image:       ref,
		Namespace:   opts.Namespace,
		Annotations: &map[string]string{AnnotationImageID: img.ID},
	}
	if len(opts.Env) > 0 {
		spec.EnvVars = opts.Env
	}
	if len(opts.Labels) > 0 {
		labels := opts.Labels
		spec.Labels = &labels
	}
	status, err := p.Gateway.Deploy(ctx, spec)
	if err != nil {
		return err
	}
	fn := opts.Deploy
	if opts.Namespace != "" {
		fn += "." + opts.Namespace
	}
	fmt.Fprintf(p.Out, "Deployed. %s.\nURL: %s/function/%s\n", status, strings.TrimRight(p.GatewayURL.String(), "/"), fn)
	return nil
}

// errArchive marks a failure to read the archive from the local engine, so
// it is reported as such and not as a gateway error.
type errArchive struct{ err error }

func (e errArchive) Error() string {
	return "reading the archive from the local engine: " + e.err.Error()
}
func (e errArchive) Unwrap() error { return e.err }

type archiveReader struct{ r io.Reader }

func (a archiveReader) Read(b []byte) (int, error) {
	n, err := a.r.Read(b)
	if err != nil && err != io.EOF {
		err = errArchive{err}
	}
	return n, err
}

// send streams `docker save ref` to the gateway: engine → (gzip) → request
// body, through pipes, never a temporary file or a whole-archive buffer.
func (p *Pusher) send(ctx context.Context, ref string, expected int64, gz bool) ([]LoadedImage, error) {
	// Cancelling stops the engine's save when the upload fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := p.Engine.Save(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()

	var prog *Progress
	if p.NewProgress != nil {
		prog = p.NewProgress(ref, expected, gz)
	}
	var src io.Reader = archiveReader{rc}
	if prog != nil {
		src = prog.CountArchive(src)
	}
	body := src
	if gz {
		pr, pw := io.Pipe()
		go func() {
			zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed) // the level is valid
			_, err := io.Copy(zw, src)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			pw.CloseWithError(err) // nil: EOF for the reader
		}()
		// Unblocks the compressor when the request ends early.
		defer pr.Close()
		body = pr
	}
	if prog != nil {
		body = prog.CountWire(body)
		prog.Start()
	}
	loaded, err := p.Gateway.LoadImages(ctx, body, gz)
	if prog != nil {
		prog.Finish(err == nil)
	}
	if err != nil {
		// A broken engine stream surfaces as a request error; say so.
		if ae := (errArchive{}); errors.As(err, &ae) {
			return nil, ae
		}
		return nil, err
	}
	return loaded, nil
}

// saveRef is what to ask the engine to save. A bare repository name
// (my-fn) would make docker save every tag of the repository; like docker
// run, it means :latest when the image has that tag. Anything else (tags,
// digests, IDs) is used as given.
func saveRef(given string, img Image) string {
	named, err := reference.ParseNormalizedNamed(given)
	if err != nil || !reference.IsNameOnly(named) {
		return given
	}
	tagged := reference.FamiliarString(reference.TagNameOnly(named))
	for _, t := range img.RepoTags {
		if t == tagged || t == reference.TagNameOnly(named).String() {
			return tagged
		}
	}
	// An ID given in short form parses as a name too.
	return given
}

func shortID(id string) string {
	hex := strings.TrimPrefix(id, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	if hex == "" {
		return "no id"
	}
	return "sha256:" + hex
}

// ParseKeyValues reads repeated k=v flags into a map (nil when empty).
func ParseKeyValues(what string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", what, kv)
		}
		m[k] = v
	}
	return m, nil
}
