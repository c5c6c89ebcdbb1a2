package docker

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// keyLabels selects everything that belongs to one function of this instance.
func (r *Runtime) keyLabels(ns, name string) map[string]string {
	return functionLabels(r.cfg.Instance, ns, name)
}

// functionLabels selects everything that belongs to one function of the
// daemon instance; the log service uses it too. Unlike
// function.OwnerLabels, an empty ns or name selects nothing rather than
// more (a log request without a name must find no replicas).
func functionLabels(instance, ns, name string) map[string]string {
	l := function.OwnerLabels(instance, "", "")
	l[engine.LabelNamespace], l[engine.LabelFunction] = ns, name
	return l
}

// instanceLabels selects everything this instance owns.
func (r *Runtime) instanceLabels() map[string]string {
	return function.OwnerLabels(r.cfg.Instance, "", "")
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
	labels := function.UserLabels(spec)
	for k, v := range r.keyLabels(d.Namespace, d.Name) {
		labels[k] = v
	}
	labels[engine.LabelSpecHash] = hash
	labels[engine.LabelSlot] = strconv.Itoa(slot)

	cs := engine.ContainerSpec{
		Name:           r.containerName(d.Namespace, d.Name, hash, slot),
		Image:          spec.Image,
		Env:            function.Env(spec),
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
		cs.Volumes = []string{runtime.SecretsDir}
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
	res, err := function.ParseResources(limits, requests)
	if err != nil {
		return err
	}
	cs.Memory, cs.MemoryReservation = res.MemoryLimit, res.MemoryRequest
	cs.NanoCPUs = res.CPULimit * 1_000_000
	if requests != nil && requests.CPU != "" {
		cs.CPUShares = max(res.CPURequest*1024/1000, 2) // Docker's minimum share is 2, also for a request of 0
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
		if b, err := quantity.ParseBytes(r.res.Memory); err == nil && b < function.MinMemory {
			raised = append(raised, r.field+" "+r.res.Memory)
		}
	}
	return strings.Join(raised, " and ")
}
