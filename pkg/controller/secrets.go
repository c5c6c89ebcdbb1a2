package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

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
func secretReason(err error) runtime.Reason {
	var missing *missingSecretError
	if errors.As(err, &missing) {
		return "SecretNotFound"
	}
	return "SecretError"
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
