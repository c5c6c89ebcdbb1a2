package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// SecretsDir is where a function finds its secrets, one file per secret
// named after it: the path OpenFaaS uses on Kubernetes and in faasd.
const SecretsDir = "/var/openfaas/secrets"

// secretFileMode lets any user read a secret file (many function images run
// as uid 1000) and no one but root change it.
const secretFileMode = 0o444

// secretsArchive is the tar that CopyToContainer unpacks into SecretsDir:
// one regular file per secret, mode 0444, owned by root. SecretsDir itself
// is an anonymous volume (see containerSpec), so this works on a read-only
// root filesystem too, and its directory is Docker's 0755 root-owned one.
func secretsArchive(secrets []runtime.Secret) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, s := range secrets {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     s.Name,
			Mode:     secretFileMode,
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
	if err := r.eng.CopyToContainer(ctx, id, SecretsDir, bytes.NewReader(archive)); err != nil {
		r.metrics.dockerError("copy")
		return err
	}
	return nil
}
