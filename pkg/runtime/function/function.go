// Package function maps a function deployment onto what the Docker-based
// runtimes create for it (containers, swarm services, networks, secrets):
// the labels that mark their ownership, the environment and the resource
// numbers. Both the one-host Docker runtime and the swarm runtime use it,
// so a function is labelled and limited the same way on either.
package function

import (
	"fmt"
	"sort"

	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
)

// MinMemory is the smallest memory limit Docker accepts (it refuses < 6
// MB); swarm tasks are Docker containers, so it applies to them too.
const MinMemory = 6 << 20

// AnnotationPrefix namespaces annotations among labels, as faasd does.
const AnnotationPrefix = "com.openfaas.annotations."

// OwnerLabels select everything that belongs to one function of a daemon
// instance; with ns and name empty, everything of the instance (with name
// empty, everything of the namespace).
func OwnerLabels(instance, ns, name string) map[string]string {
	l := map[string]string{engine.LabelManaged: "true", engine.LabelInstance: instance}
	if ns != "" {
		l[engine.LabelNamespace] = ns
	}
	if name != "" {
		l[engine.LabelFunction] = name
	}
	return l
}

// KeyOf is the function key an object is labelled with ("" for none).
func KeyOf(labels map[string]string) string {
	ns, name := labels[engine.LabelNamespace], labels[engine.LabelFunction]
	if ns == "" || name == "" {
		return ""
	}
	return faas.Key(ns, name)
}

// Env is the function's environment: its envVars, and fprocess from
// envProcess unless envVars sets it (like faasd: an fprocess in envVars
// wins), sorted.
func Env(spec types.FunctionDeployment) []string {
	env := make([]string, 0, len(spec.EnvVars)+1)
	for k, v := range spec.EnvVars {
		env = append(env, k+"="+v)
	}
	if _, ok := spec.EnvVars["fprocess"]; !ok && spec.EnvProcess != "" {
		env = append(env, "fprocess="+spec.EnvProcess)
	}
	sort.Strings(env)
	return env
}

// UserLabels are the function's labels and its annotations (under
// AnnotationPrefix), a new map to which a runtime adds its own labels.
func UserLabels(spec types.FunctionDeployment) map[string]string {
	labels := map[string]string{}
	if spec.Labels != nil {
		for k, v := range *spec.Labels {
			labels[k] = v
		}
	}
	if spec.Annotations != nil {
		for k, v := range *spec.Annotations {
			labels[AnnotationPrefix+k] = v
		}
	}
	return labels
}

// Resources are a function's limits and requests as numbers.
type Resources struct {
	// MemoryLimit and MemoryRequest are bytes (0 = none); one given is
	// raised to MinMemory, and the request is capped at the limit (Docker
	// refuses a reservation above the limit).
	MemoryLimit, MemoryRequest int64
	// CPULimit and CPURequest are thousandths of a CPU (0 = none or 0).
	CPULimit, CPURequest int64
}

// ParseResources reads Kubernetes quantities ("128Mi", "500m", "0.5"). An
// error names the field (limits.memory, limits.cpu, requests.memory,
// requests.cpu: the first bad one in that order).
func ParseResources(limits, requests *types.FunctionResources) (Resources, error) {
	var r Resources
	parse := func(field, s string, f func(string) (int64, error), into *int64) error {
		if s == "" {
			return nil
		}
		v, err := f(s)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		*into = v
		return nil
	}
	if limits != nil {
		if err := parse("limits.memory", limits.Memory, quantity.ParseBytes, &r.MemoryLimit); err != nil {
			return r, err
		}
		if limits.Memory != "" {
			r.MemoryLimit = max(r.MemoryLimit, MinMemory)
		}
		if err := parse("limits.cpu", limits.CPU, quantity.ParseMilliCPU, &r.CPULimit); err != nil {
			return r, err
		}
	}
	if requests != nil {
		if err := parse("requests.memory", requests.Memory, quantity.ParseBytes, &r.MemoryRequest); err != nil {
			return r, err
		}
		if requests.Memory != "" {
			r.MemoryRequest = max(r.MemoryRequest, MinMemory) // Docker's minimum applies here too
			if r.MemoryLimit > 0 && r.MemoryRequest > r.MemoryLimit {
				r.MemoryRequest = r.MemoryLimit
			}
		}
		if err := parse("requests.cpu", requests.CPU, quantity.ParseMilliCPU, &r.CPURequest); err != nil {
			return r, err
		}
	}
	return r, nil
}
