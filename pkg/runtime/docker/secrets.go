package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// secretsArchive is the tar that CopyToContainer unpacks into runtime.SecretsDir:
// one regular file per secret, mode 0444, owned by root. The directory itself
// is an anonymous volume (see containerSpec), so this works on a read-only
// root filesystem too, and its directory is Docker's 0755 root-owned one.
func secretsArchive(secrets []runtime.Secret) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, s := range secrets {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     s.Name,
			Mode:     runtime.SecretFileMode,
			Size:     int64(len(s.Value)),
			ModTime:  s.UpdatedAt,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		if _, err := tw.Write(s.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copySecrets puts the secrets into a created container before it starts,
// so a function never runs without them. Docker's archive API does the
// writing, so no host path is shared: it works when dockerfaasd itself runs
// in a container.
func (r *Runtime) copySecrets(ctx context.Context, id string, secrets []runtime.Secret) error {
	if len(secrets) == 0 {
		return nil
	}
	archive, err := secretsArchive(secrets)
	if err != nil {
		return fmt.Errorf("secrets archive: %w", err)
	}
	if err := r.eng.CopyToContainer(ctx, id, runtime.SecretsDir, bytes.NewReader(archive)); err != nil {
		r.metrics.dockerError("copy")
		return err
	}
	return nil
}
