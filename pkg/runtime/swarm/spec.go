package swarm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/function"
)

// The pure mapping of a function onto swarm objects: names, the service
// spec, the secret names.

// maxName is swarm's limit for service and network names (a DNS label).
const maxName = 63

// maxSecretName is swarm's limit for secret names.
const maxSecretName = 64

// objectName names a function's service or network PREFIX-NAME_NAMESPACE.
// Swarm wants a DNS label component ([A-Za-z0-9] joined by - or _, at most
// 63 characters), so the Docker runtime's dot cannot separate name and
// namespace; '_' does the same job (names and namespaces are DNS labels,
// which have none), so a-b/c and a/b-c stay apart. A longer name keeps its
// first 54 characters and ends with a digest of the whole.
func objectName(prefix, ns, name string) string {
	return shorten(prefix+"-"+name+"_"+ns, maxName)
}

// shorten cuts s to limit characters, ending it with a digest of s so
// distinct long names stay distinct.
func shorten(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return s[:limit-9] + "-" + hex.EncodeToString(sum[:])[:8]
}

// secretName names one version of a function secret in the swarm:
// INSTANCE.NAMESPACE.SECRET.REVISION. Swarm secrets cannot change, so a
// new value is a new swarm secret, and the service update that points to
// it is an ordinary roll. The revision is the secret's update time, not a
// digest of its value: a name is readable by anyone who can list secrets.
func secretName(instance, ns string, s runtime.Secret) string {
	rev := "0"
	if !s.UpdatedAt.IsZero() {
		rev = strconv.FormatInt(s.UpdatedAt.UnixNano(), 36)
	}
	return shorten(instance+"."+ns+"."+s.Name+"."+rev, maxSecretName)
}

// secretRef is a swarm secret version a function mounts as File.
type secretRef struct {
	File      string // the function secret's name, the file under runtime.SecretsDir
	ID, Swarm string // the swarm secret
}

// specConfig is what of the runtime's Config shapes a service.
type specConfig struct {
	Instance, NetworkPrefix string
	PidsLimit               int64
	StopGracePeriod         time.Duration
	RestartDelay            time.Duration
}

// serviceSpec builds the one replicated service of d. It fails only on a
// spec the runtime cannot run (bad quantities, a malformed constraint):
// the caller reports runtime.ErrInvalidSpec.
func serviceSpec(c specConfig, d runtime.Desired, secrets []secretRef) (swarm.ServiceSpec, error) {
	spec := d.Spec
	res, err := function.ParseResources(spec.Limits, spec.Requests)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	for i, con := range spec.Constraints {
		if err := validateConstraint(con); err != nil {
			return swarm.ServiceSpec{}, fmt.Errorf("constraints[%d]: %w", i, err)
		}
	}

	labels := function.UserLabels(spec)
	for k, v := range function.OwnerLabels(c.Instance, d.Namespace, d.Name) {
		labels[k] = v
	}
	labels[engine.LabelSpecHash] = d.Hash
	svcLabels := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		svcLabels[k] = v
	}
	svcLabels[engine.LabelGeneration] = strconv.FormatInt(d.Generation, 10)

	grace := c.StopGracePeriod
	cs := &swarm.ContainerSpec{
		Image:           spec.Image,
		Env:             function.Env(spec),
		Labels:          labels,
		ReadOnly:        spec.ReadOnlyRootFilesystem,
		Privileges:      &swarm.Privileges{NoNewPrivileges: true},
		StopGracePeriod: &grace,
		// Readiness is the daemon's probe; an image's own HEALTHCHECK
		// would make swarm hold tasks back on a command the image may
		// not even have.
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
	}
	if spec.ReadOnlyRootFilesystem {
		cs.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: "/tmp"}}
	}
	for _, s := range secrets {
		cs.Secrets = append(cs.Secrets, &swarm.SecretReference{
			SecretID: s.ID, SecretName: s.Swarm,
			File: &swarm.SecretReferenceFileTarget{
				Name: strings.TrimSuffix(runtime.SecretsDir, "/") + "/" + s.File,
				UID:  "0", GID: "0", Mode: runtime.SecretFileMode,
			},
		})
	}

	restartDelay := c.RestartDelay
	replicas := uint64(max(d.Replicas, 0))
	out := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: objectName(c.Instance, d.Namespace, d.Name), Labels: svcLabels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs,
			Resources: &swarm.ResourceRequirements{
				Limits: &swarm.Limit{
					NanoCPUs: res.CPULimit * 1_000_000, MemoryBytes: res.MemoryLimit, Pids: c.PidsLimit,
				},
				Reservations: &swarm.Resources{NanoCPUs: res.CPURequest * 1_000_000, MemoryBytes: res.MemoryRequest},
			},
			// No MaxAttempts: faas-swarm's 5 left functions down for good
			// after a few host reboots (faas-swarm#69).
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &restartDelay},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: objectName(c.NetworkPrefix, d.Namespace, d.Name)}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		// One task at a time, the new one started before the old one
		// stops; a failed update goes on, because the controller (not
		// swarm) decides what a failure means.
		UpdateConfig: &swarm.UpdateConfig{
			Parallelism: 1, Order: swarm.UpdateOrderStartFirst, FailureAction: swarm.UpdateFailureActionContinue,
		},
		// No VIP: the kernel may have no IPVS, and the proxy routes to
		// task addresses that passed the readiness probe.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	if len(spec.Constraints) > 0 {
		out.TaskTemplate.Placement = &swarm.Placement{Constraints: append([]string(nil), spec.Constraints...)}
	}
	return out, nil
}

// Swarm's grammar of constraints (swarmkit manager/constraint): a key,
// == or !=, a value.
var (
	constraintKey   = regexp.MustCompile(`^(?i)[a-z_][a-z0-9\-_.]+$`)
	constraintValue = regexp.MustCompile(`^(?i)[a-z0-9:\-_\s\.\*\(\)\?\+\[\]\\\^\$\|\/]+$`)
)

// validateConstraint checks one faas-cli constraint as swarm will read it
// (node.labels.zone==a, node.role==worker, node.hostname!=n1, ...), so a
// malformed one is an invalid spec at deploy time rather than a service
// swarm refuses on every attempt.
func validateConstraint(c string) error {
	op := "=="
	i := strings.Index(c, "==")
	if j := strings.Index(c, "!="); j >= 0 && (i < 0 || j < i) {
		i, op = j, "!="
	}
	if i < 0 {
		return fmt.Errorf("%q: want KEY==VALUE or KEY!=VALUE", c)
	}
	key, val := strings.TrimSpace(c[:i]), strings.TrimSpace(c[i+len(op):])
	if !constraintKey.MatchString(key) {
		return fmt.Errorf("%q: malformed key %q", c, key)
	}
	if val == "" || !constraintValue.MatchString(val) || strings.Contains(val, "==") || strings.Contains(val, "!=") {
		return fmt.Errorf("%q: malformed value %q", c, val)
	}
	lk := strings.ToLower(key)
	switch {
	case lk == "node.id", lk == "node.hostname", lk == "node.platform.os", lk == "node.platform.arch":
	case lk == "node.role":
		if v := strings.ToLower(val); v != "manager" && v != "worker" {
			return fmt.Errorf("%q: node.role is manager or worker", c)
		}
	case strings.HasPrefix(lk, "node.labels.") && len(lk) > len("node.labels."),
		strings.HasPrefix(lk, "engine.labels.") && len(lk) > len("engine.labels."):
	default:
		return fmt.Errorf("%q: unknown attribute %q (node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.*, engine.labels.*)", c, key)
	}
	return nil
}
