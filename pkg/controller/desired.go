package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// templateVersion is part of every spec hash. Bump it when the way replicas
// are built changes, so running functions roll onto the new template.
const templateVersion = 1

// hashInput is everything in a spec that shapes a replica. Constraints are
// left out: they are placement hints that change nothing on one host.
type hashInput struct {
	Version     int                      `json:"v"`
	Image       string                   `json:"image"`
	EnvProcess  string                   `json:"envProcess,omitempty"`
	EnvVars     map[string]string        `json:"envVars,omitempty"`
	Secrets     []string                 `json:"secrets,omitempty"`
	Labels      map[string]string        `json:"labels,omitempty"`
	Annotations map[string]string        `json:"annotations,omitempty"`
	Limits      *types.FunctionResources `json:"limits,omitempty"`
	Requests    *types.FunctionResources `json:"requests,omitempty"`
	ReadOnly    bool                     `json:"readOnly,omitempty"`
	// SecretRevisions maps each listed secret to its store revision, so a
	// changed secret rolls the function. The revision, not a digest of the
	// value: the hash is a container label, and a short digest of a
	// low-entropy secret could be guessed offline.
	SecretRevisions map[string]uint64 `json:"secretRevisions,omitempty"`
}

// SpecHash returns a short stable hash of the replica-shaping parts of spec
// and of the revisions of the secrets it lists (pass them all; the values are
// not used). encoding/json sorts map keys, so equal specs hash equally. It
// is unchanged from the first release: replicas made by an older daemon
// carry it as a label and are adopted, not rolled, after an upgrade.
func SpecHash(spec types.FunctionDeployment, secrets ...store.SecretInfo) string {
	in := hashInput{
		Version:     templateVersion,
		Image:       spec.Image,
		EnvProcess:  spec.EnvProcess,
		EnvVars:     spec.EnvVars,
		Secrets:     spec.Secrets,
		Limits:      spec.Limits,
		Requests:    spec.Requests,
		ReadOnly:    spec.ReadOnlyRootFilesystem,
		Labels:      deref(spec.Labels),
		Annotations: deref(spec.Annotations),
	}
	for _, s := range secrets {
		if in.SecretRevisions == nil {
			in.SecretRevisions = make(map[string]uint64, len(secrets))
		}
		in.SecretRevisions[s.Name] = s.Revision
	}
	b, _ := json.Marshal(in) // cannot fail: only strings, maps and slices
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

func deref(m *map[string]string) map[string]string {
	if m == nil || len(*m) == 0 {
		return nil
	}
	return *m
}

// desired resolves a stored function and its secrets into what a runtime runs.
func desired(fn store.Function, secrets []store.Secret) runtime.Desired {
	infos := make([]store.SecretInfo, len(secrets))
	rs := make([]runtime.Secret, len(secrets))
	for i, s := range secrets {
		infos[i] = s.SecretInfo
		rs[i] = runtime.Secret{Name: s.Name, Value: s.Value, UpdatedAt: s.UpdatedAt}
	}
	return runtime.Desired{
		Key:        fn.Key(),
		Namespace:  fn.Namespace,
		Name:       fn.Name(),
		Spec:       fn.Spec,
		Replicas:   int(fn.Replicas),
		Generation: fn.Generation,
		Hash:       SpecHash(fn.Spec, infos...),
		Secrets:    rs,
	}
}
