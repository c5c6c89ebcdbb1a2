package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// templateVersion is part of every spec hash. Bump it when the way containers
// are built changes, so running functions roll onto the new template.
const templateVersion = 1

// minMemory is the smallest memory limit Docker accepts (it refuses < 6 MB).
const minMemory = 6 << 20

// annotationPrefix namespaces annotations among container labels, as faasd does.
const annotationPrefix = "com.openfaas.annotations."

// FunctionPort is the port every OpenFaaS watchdog listens on.
const FunctionPort = 8080

// hashInput is everything in a spec that shapes a container. Constraints are
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

// SpecHash returns a short stable hash of the container-shaping parts of spec
// and of the revisions of the secrets it lists (pass them all; the values are
// not used). encoding/json sorts map keys, so equal specs hash equally.
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

// keyLabels selects everything that belongs to one function of this instance.
func (c *Controller) keyLabels(ns, name string) map[string]string {
	return functionLabels(c.cfg.Instance, ns, name)
}

// functionLabels selects everything that belongs to one function of the
// daemon instance; the log service uses it too.
func functionLabels(instance, ns, name string) map[string]string {
	return map[string]string{
		docker.LabelManaged:   "true",
		docker.LabelInstance:  instance,
		docker.LabelNamespace: ns,
		docker.LabelFunction:  name,
	}
}

// instanceLabels selects everything this instance owns.
func (c *Controller) instanceLabels() map[string]string {
	return map[string]string{docker.LabelManaged: "true", docker.LabelInstance: c.cfg.Instance}
}

// networkName is the per-function bridge network, PREFIX-NAME.NAMESPACE.
// The dot keeps keys apart: names and namespaces are DNS labels without
// dots, whereas joined with '-' namespace a-b's function c and namespace
// a's function b-c would both be PREFIX-a-b-c, and Docker then refuses to
// attach to the ambiguous name.
func (c *Controller) networkName(ns, name string) string {
	return fmt.Sprintf("%s-%s.%s", c.cfg.NetworkPrefix, name, ns)
}

// containerName is deterministic so that a create retried after a crash hits
// a Conflict instead of making a duplicate.
func (c *Controller) containerName(ns, name, hash string, slot int) string {
	return fmt.Sprintf("%s-%s.%s-%s-%d", c.cfg.Instance, name, ns, hash[:8], slot)
}

// containerSpec builds the Docker container for one replica of fn. It fails
// only on a spec the API should have rejected (bad quantities).
func (c *Controller) containerSpec(fn store.Function, hash string, slot int) (docker.ContainerSpec, error) {
	spec := fn.Spec
	env := make([]string, 0, len(spec.EnvVars)+1)
	for k, v := range spec.EnvVars {
		env = append(env, k+"="+v)
	}
	// Like faasd: an fprocess in envVars wins over envProcess.
	if _, ok := spec.EnvVars["fprocess"]; !ok && spec.EnvProcess != "" {
		env = append(env, "fprocess="+spec.EnvProcess)
	}
	sort.Strings(env)

	labels := map[string]string{}
	for k, v := range deref(spec.Labels) {
		labels[k] = v
	}
	for k, v := range deref(spec.Annotations) {
		labels[annotationPrefix+k] = v
	}
	for k, v := range c.keyLabels(fn.Namespace, spec.Service) {
		labels[k] = v
	}
	labels[docker.LabelSpecHash] = hash
	labels[docker.LabelSlot] = strconv.Itoa(slot)

	cs := docker.ContainerSpec{
		Name:           c.containerName(fn.Namespace, spec.Service, hash, slot),
		Image:          spec.Image,
		Env:            env,
		Labels:         labels,
		Network:        c.networkName(fn.Namespace, spec.Service),
		PidsLimit:      c.cfg.PidsLimit,
		ReadOnlyRootfs: spec.ReadOnlyRootFilesystem,
	}
	if spec.ReadOnlyRootFilesystem {
		cs.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev"}
	}
	if len(spec.Secrets) > 0 {
		// An anonymous volume: Docker copies files into a volume of a
		// created container even when its root filesystem is read-only
		// (copySecrets), and removes it with the container.
		cs.Volumes = []string{SecretsDir}
	}
	if err := applyResources(&cs, spec.Limits, spec.Requests); err != nil {
		return docker.ContainerSpec{}, err
	}
	return cs, nil
}

// applyResources maps Kubernetes-style limits and requests onto Docker:
// memory limit → hard limit, memory request → reservation, CPU limit →
// NanoCPUs, CPU request → relative shares.
func applyResources(cs *docker.ContainerSpec, limits, requests *types.FunctionResources) error {
	if limits != nil && limits.Memory != "" {
		b, err := quantity.ParseBytes(limits.Memory)
		if err != nil {
			return fmt.Errorf("limits.memory: %w", err)
		}
		cs.Memory = max(b, minMemory)
	}
	if limits != nil && limits.CPU != "" {
		m, err := quantity.ParseMilliCPU(limits.CPU)
		if err != nil {
			return fmt.Errorf("limits.cpu: %w", err)
		}
		cs.NanoCPUs = m * 1_000_000
	}
	if requests != nil && requests.Memory != "" {
		b, err := quantity.ParseBytes(requests.Memory)
		if err != nil {
			return fmt.Errorf("requests.memory: %w", err)
		}
		cs.MemoryReservation = max(b, minMemory) // Docker's minimum applies here too
		if cs.Memory > 0 && cs.MemoryReservation > cs.Memory {
			cs.MemoryReservation = cs.Memory // Docker refuses a reservation above the limit
		}
	}
	if requests != nil && requests.CPU != "" {
		m, err := quantity.ParseMilliCPU(requests.CPU)
		if err != nil {
			return fmt.Errorf("requests.cpu: %w", err)
		}
		cs.CPUShares = max(m*1024/1000, 2) // Docker's minimum share is 2
	}
	return nil
}

// raisedToDockerMinimum names the memory settings of spec that Docker would
// refuse as too small and that containerSpec raises to its minimum.
func raisedToDockerMinimum(spec types.FunctionDeployment) string {
	var raised []string
	for _, r := range []struct {
		field string
		res   *types.FunctionResources
	}{{"limits.memory", spec.Limits}, {"requests.memory", spec.Requests}} {
		if r.res == nil || r.res.Memory == "" {
			continue
		}
		if b, err := quantity.ParseBytes(r.res.Memory); err == nil && b < minMemory {
			raised = append(raised, r.field+" "+r.res.Memory)
		}
	}
	return strings.Join(raised, " and ")
}
