package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// secretLabels select the swarm secrets of a namespace of this instance
// (secret "" for all of them).
func (r *Runtime) secretLabels(ns, secret string) map[string]string {
	l := function.OwnerLabels(r.cfg.Instance, ns, "")
	if secret != "" {
		l[engine.LabelSecret] = secret
	}
	return l
}

// ensureSecrets makes sure a swarm secret holds the current version of
// each secret d lists, and returns the references to mount. Versions are
// shared by the functions of a namespace, as the secrets are.
func (r *Runtime) ensureSecrets(ctx context.Context, d runtime.Desired, log logrus.FieldLogger) ([]secretRef, error) {
	if len(d.Secrets) == 0 {
		return nil, nil
	}
	have, err := r.eng.ListSecrets(ctx, r.secretLabels(d.Namespace, ""))
	if err != nil {
		return nil, r.metrics.count("list-secrets", err)
	}
	byName := map[string]string{}
	for _, s := range have {
		byName[s.Name] = s.ID
	}
	refs := make([]secretRef, 0, len(d.Secrets))
	for _, s := range d.Secrets {
		name := secretName(r.cfg.Instance, d.Namespace, s)
		id, ok := byName[name]
		if !ok {
			id, err = r.eng.CreateSecret(ctx, name, r.secretLabels(d.Namespace, s.Name), s.Value)
			if errors.Is(err, engine.ErrConflict) {
				// Another function of the namespace made it meanwhile,
				// or a secret not ours holds the name.
				id, err = r.findSecret(ctx, d.Namespace, name)
			}
			if err != nil {
				return nil, r.metrics.count("create-secret", fmt.Errorf("secret %s: %w", s.Name, err))
			}
			log.WithFields(logrus.Fields{"secret": s.Name, "swarm_secret": name}).Info("swarm secret version created")
		}
		refs = append(refs, secretRef{File: s.Name, ID: id, Swarm: name})
	}
	return refs, nil
}

func (r *Runtime) findSecret(ctx context.Context, ns, name string) (string, error) {
	list, err := r.eng.ListSecrets(ctx, r.secretLabels(ns, ""))
	if err != nil {
		return "", err
	}
	for _, s := range list {
		if s.Name == name {
			return s.ID, nil
		}
	}
	return "", fmt.Errorf("swarm secret %s exists but is not managed by this dockerfaasd instance: %w", name, engine.ErrConflict)
}

// pruneSecrets removes the swarm secrets of namespace ns that no service
// of this instance uses any more, limited to versions of the function
// secrets named in only (all of the namespace when only is nil). Swarm
// refuses to remove a secret a service uses (ErrConflict), which is no
// failure here: another function still mounts that version.
func (r *Runtime) pruneSecrets(ctx context.Context, ns string, only map[string]bool, log logrus.FieldLogger) error {
	list, err := r.eng.ListSecrets(ctx, r.secretLabels(ns, ""))
	if err != nil || len(list) == 0 {
		return r.metrics.count("list-secrets", err)
	}
	svcs, err := r.eng.ListServices(ctx, function.OwnerLabels(r.cfg.Instance, ns, ""))
	if err != nil {
		return r.metrics.count("list-services", err)
	}
	used := map[string]bool{}
	for _, svc := range svcs {
		if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, ref := range cs.Secrets {
				used[ref.SecretID] = true
			}
		}
	}
	var errs []error
	for _, s := range list {
		if used[s.ID] || (only != nil && !only[s.Labels[engine.LabelSecret]]) {
			continue
		}
		err := ignoreGone(r.eng.RemoveSecret(ctx, s.ID))
		switch {
		case errors.Is(err, engine.ErrConflict):
		case err != nil:
			errs = append(errs, r.metrics.count("remove-secret", err))
		default:
			log.WithField("swarm_secret", s.Name).Info("removed a swarm secret version no function uses")
		}
	}
	return errors.Join(errs...)
}

// unmountedSecrets names the function secrets whose versions a converged
// Sync of d must prune besides those d lists: the ones the service mounted
// before its last update (swarm keeps that spec as PreviousSpec, across
// daemon restarts) and no longer does, plus pending, those found so
// earlier and not pruned yet (a later update, a scale, replaces
// PreviousSpec). Without this the version of a secret a function stopped
// listing would keep its value in the swarm, even once the secret is
// deleted, until a function of the namespace is removed.
func unmountedSecrets(pending map[string]bool, svc swarm.Service, d runtime.Desired) map[string]bool {
	out := map[string]bool{}
	for name := range pending {
		out[name] = true
	}
	if prev := svc.PreviousSpec; prev != nil && prev.TaskTemplate.ContainerSpec != nil {
		for _, ref := range prev.TaskTemplate.ContainerSpec.Secrets {
			if ref.File != nil {
				out[strings.TrimPrefix(ref.File.Name, strings.TrimSuffix(runtime.SecretsDir, "/")+"/")] = true
			}
		}
	}
	for _, s := range d.Secrets {
		delete(out, s.Name)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
