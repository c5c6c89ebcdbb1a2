package docker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// minMemory is the smallest memory limit Docker accepts (it refuses < 6 MB).
const minMemory = 6 << 20

// annotationPrefix namespaces annotations among container labels, as faasd does.
const annotationPrefix = "com.openfaas.annotations."

// FunctionPort is the port every OpenFaaS watchdog listens on.
const FunctionPort = 8080

// keyLabels selects everything that belongs to one function of this instance.
func (r *Runtime) keyLabels(ns, name string) map[string]string {
	return functionLabels(r.cfg.Instance, ns, name)
}

// functionLabels selects everything that belongs to one function of the
// daemon instance; the log service uses it too.
func functionLabels(instance, ns, name string) map[string]string {
	return map[string]string{
		engine.LabelManaged:   "true",
		engine.LabelInstance:  instance,
		engine.LabelNamespace: ns,
		engine.LabelFunction:  name,
	}
}

// instanceLabels selects everything this instance owns.
func (r *Runtime) instanceLabels() map[string]string {
	return map[string]string{engine.LabelManaged: "true", engine.LabelInstance: r.cfg.Instance}
}

// networkName is the per-function bridge network, PREFIX-NAME.NAMESPACE.
// The dot keeps keys apart: names and namespaces are DNS labels without
// dots, whereas joined with '-' namespace a-b's function c and namespace
// a's function b-c would both be PREFIX-a-b-c, and Docker then refuses to
// attach to the ambiguous name.
func (r *Runtime) networkName(ns, name string) string {
	return fmt.Sprintf("%s-%s.%s", r.cfg.NetworkPrefix, name, ns)
}

// containerName is deterministic so that a create retried after a crash hits
// a Conflict instead of making a duplicate.
func (r *Runtime) containerName(ns, name, hash string, slot int) string {
	return fmt.Sprintf("%s-%s.%s-%s-%d", r.cfg.Instance, name, ns, hash[:8], slot)
}

// containerSpec builds the Docker container for one replica of d. It fails
// only on a spec the API should have rejected (bad quantities).
func (r *Runtime) containerSpec(d runtime.Desired, slot int) (engine.ContainerSpec, error) {
	spec, hash := d.Spec, d.Hash
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
	for k, v := range r.keyLabels(d.Namespace, d.Name) {
		labels[k] = v
	}
	labels[engine.LabelSpecHash] = hash
	labels[engine.LabelSlot] = strconv.Itoa(slot)

	cs := engine.ContainerSpec{
		Name:           r.containerName(d.Namespace, d.Name, hash, slot),
		Image:          spec.Image,
		Env:            env,
		Labels:         labels,
		Network:        r.networkName(d.Namespace, d.Name),
		PidsLimit:      r.cfg.PidsLimit,
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
		return engine.ContainerSpec{}, err
	}
	return cs, nil
}

// applyResources maps Kubernetes-style limits and requests onto Docker:
// memory limit → hard limit, memory request → reservation, CPU limit →
// NanoCPUs, CPU request → relative shares.
func applyResources(cs *engine.ContainerSpec, limits, requests *types.FunctionResources) error {
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

func deref(m *map[string]string) map[string]string {
	if m == nil || len(*m) == 0 {
		return nil
	}
	return *m
}
