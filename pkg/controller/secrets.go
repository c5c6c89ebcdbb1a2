package controller

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// SecretsDir is where a function finds its secrets, one file per secret
// named after it: the path OpenFaaS uses on Kubernetes and in faasd.
const SecretsDir = "/var/openfaas/secrets"

// secretFileMode lets any user read a secret file (many function images run
// as uid 1000) and no one but root change it.
const secretFileMode = 0o444

// missingSecretError is a secret a function lists but its namespace does
// not hold (deleted after the deploy). It is retried with backoff, not
// terminal: creating the secret wakes the function (enqueueSecretUsers).
type missingSecretError struct{ namespace, name string }

func (e *missingSecretError) Error() string {
	return fmt.Sprintf("unable to find secret: %s (namespace %s); running replicas are kept until it exists again", e.name, e.namespace)
}

// functionSecrets reads the secrets fn lists, with their values, each once
// and in name order.
func (c *Controller) functionSecrets(ctx context.Context, fn store.Function) ([]store.Secret, error) {
	names := slices.Clone(fn.Spec.Secrets)
	sort.Strings(names)
	names = slices.Compact(names)
	out := make([]store.Secret, 0, len(names))
	for _, name := range names {
		s, err := c.store.GetSecret(ctx, fn.Namespace, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &missingSecretError{namespace: fn.Namespace, name: name}
		}
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// secretReason is the status reason for an error of functionSecrets.
func secretReason(err error) string {
	var missing *missingSecretError
	if errors.As(err, &missing) {
		return "SecretNotFound"
	}
	return "SecretError"
}

// secretInfos strips the values, for SpecHash.
func secretInfos(secrets []store.Secret) []store.SecretInfo {
	out := make([]store.SecretInfo, len(secrets))
	for i, s := range secrets {
		out[i] = s.SecretInfo
	}
	return out
}

// secretsArchive is the tar that CopyToContainer unpacks into SecretsDir:
// one regular file per secret, mode 0444, owned by root. SecretsDir itself
// is an anonymous volume (see containerSpec), so this works on a read-only
// root filesystem too, and its directory is Docker's 0755 root-owned one.
func secretsArchive(secrets []store.Secret) ([]byte, error) {
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
func (c *Controller) copySecrets(ctx context.Context, id string, secrets []store.Secret) error {
	if len(secrets) == 0 {
		return nil
	}
	archive, err := secretsArchive(secrets)
	if err != nil {
		return fmt.Errorf("secrets archive: %w", err)
	}
	if err := c.engine.CopyToContainer(ctx, id, SecretsDir, bytes.NewReader(archive)); err != nil {
		c.metrics.dockerError("copy")
		return err
	}
	return nil
}

// enqueueSecretUsers enqueues the functions of namespace that list the
// secret, so a changed secret rolls them (their spec hash includes its
// revision) and a re-created one lets them converge again.
func (c *Controller) enqueueSecretUsers(ctx context.Context, namespace, name string) {
	fns, err := c.store.List(ctx, namespace)
	if err != nil {
		if ctx.Err() == nil {
			c.cfg.Log.WithError(err).WithFields(logrus.Fields{"secret": name, "namespace": namespace}).
				Warn("cannot find the functions using a changed secret; the next resync will")
		}
		return
	}
	for _, f := range fns {
		if slices.Contains(f.Spec.Secrets, name) {
			c.queue.Add(f.Key())
		}
	}
}
