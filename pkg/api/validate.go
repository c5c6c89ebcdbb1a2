package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
)

// maxNameLen is the DNS-1123 label limit; the name ends up in Docker
// container and network names and in hostnames, which all accept it.
const maxNameLen = 63

// validName reports whether s is a DNS-1123 label: lowercase letters, digits
// and '-', starting and ending with a letter or digit, at most 63 bytes. This
// also keeps '.', the namespace separator on invoke, and '/' out of names.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// validSecretName reports whether s is a DNS-1123 subdomain, the rule
// faas-cli applies when creating secrets. Secret names become file names
// under /var/openfaas/secrets, so this also rules out "..", "/" and "".
func validSecretName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !validName(part) {
			return false
		}
	}
	return true
}

// validEnvName reports whether s can be a process environment key: the
// kernel's "KEY=VALUE\0" encoding makes '=' and NUL impossible.
func validEnvName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "=\x00")
}

// validateDeployment checks everything the store and the controller rely on
// and returns the effective namespace and the function's scaling policy.
// Errors are meant for the client: each names the offending field or label.
// Whether the namespace exists is the store's to say (see
// api.resolveNamespace).
func validateDeployment(spec *types.FunctionDeployment, d scaling.Defaults) (string, scaling.Policy, error) {
	var b scaling.Policy
	switch {
	case spec.Service == "":
		return "", b, errors.New("service is required")
	case !validName(spec.Service):
		return "", b, fmt.Errorf("service %s is not a valid name: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit",
			short(spec.Service), maxNameLen)
	case spec.Image == "":
		return "", b, errors.New("image is required")
	case strings.IndexFunc(spec.Image, unicode.IsSpace) >= 0:
		return "", b, fmt.Errorf("image %s must not contain whitespace", short(spec.Image))
	}
	ns, err := effectiveNamespace(spec.Namespace)
	if err != nil {
		return "", b, err
	}
	for k, v := range spec.EnvVars {
		if !validEnvName(k) {
			return "", b, fmt.Errorf("envVars: invalid name %s: must be non-empty without '=' or NUL", short(k))
		}
		// Docker refuses NUL in values; better a 400 now than a reconcile
		// that can never succeed.
		if strings.ContainsRune(v, 0) {
			return "", b, fmt.Errorf("envVars: value of %s contains NUL", short(k))
		}
	}
	// The proxy enforces these per function; a value it cannot read would
	// silently fall back to the default.
	if _, err := faas.TimeoutsFromEnv(spec.EnvVars); err != nil {
		return "", b, err
	}
	for _, s := range spec.Secrets {
		if !validSecretName(s) {
			return "", b, fmt.Errorf("secrets: invalid name %s: must be a DNS-1123 subdomain", short(s))
		}
	}
	if err := nonEmptyKeys("labels", spec.Labels); err != nil {
		return "", b, err
	}
	if err := nonEmptyKeys("annotations", spec.Annotations); err != nil {
		return "", b, err
	}
	if err := reservedKeys(spec.Labels); err != nil {
		return "", b, err
	}
	if err := validResources("limits", spec.Limits); err != nil {
		return "", b, err
	}
	if err := validResources("requests", spec.Requests); err != nil {
		return "", b, err
	}
	if err := validAsync(spec.Annotations); err != nil {
		return "", b, err
	}
	if err := validMode(spec.Annotations); err != nil {
		return "", b, err
	}
	// Whether another function has the route is readDeployment's to say.
	if spec.Annotations != nil {
		if _, err := faas.RouteOf(*spec.Annotations); err != nil {
			return "", b, err
		}
	}
	// Every scale label is read here, with the meaning the autoscaler, the
	// idler and scale-from-zero give it, so that a label they could not
	// read is a 400 now rather than a function that silently never scales.
	b, err = policyOf(spec.Labels, d)
	if err != nil {
		return "", b, err
	}
	return ns, b, nil
}

// validAsync reads the async annotations (max in flight, retries) as the
// queue will, so that one it could not read is refused now.
func validAsync(annotations *map[string]string) error {
	if annotations == nil {
		return nil
	}
	_, err := async.ParsePolicy(*annotations, async.DefaultPolicy)
	return err
}

// validMode reads the execution mode and the job annotations as the
// runtime and the job executor will.
func validMode(annotations *map[string]string) error {
	if annotations == nil {
		return nil
	}
	if _, err := faas.ModeOf(*annotations); err != nil {
		return err
	}
	if _, err := faas.JobConcurrencyOf(*annotations); err != nil {
		return err
	}
	if _, _, err := faas.JobWarmOf(*annotations); err != nil {
		return err
	}
	if _, err := faas.JobStreamOf(*annotations); err != nil {
		return err
	}
	_, err := faas.IsolationOf(*annotations)
	return err
}

// isJobMode reports whether a validated spec asks for job mode.
func isJobMode(spec types.FunctionDeployment) bool {
	return spec.Annotations != nil && faas.IsJob(*spec.Annotations)
}

// policyOf reads the scaling policy from the optional label map.
func policyOf(labels *map[string]string, d scaling.Defaults) (scaling.Policy, error) {
	var m map[string]string
	if labels != nil {
		m = *labels
	}
	return scaling.Parse(m, d)
}

// reservedPrefix marks the labels dockerfaasd uses to decide what it owns;
// a user label there could make a container look like someone else's.
const reservedPrefix = "io.dockerfaas."

func reservedKeys(m *map[string]string) error {
	if m == nil {
		return nil
	}
	for k := range *m {
		if strings.HasPrefix(k, reservedPrefix) {
			return fmt.Errorf("labels: %s is reserved (prefix %s)", short(k), reservedPrefix)
		}
	}
	return nil
}

// validResources checks Kubernetes quantities now, so a typo is a 400 and
// not a function that can never start.
func validResources(field string, r *types.FunctionResources) error {
	if r == nil {
		return nil
	}
	if r.Memory != "" {
		if _, err := quantity.ParseBytes(r.Memory); err != nil {
			return fmt.Errorf("%s.memory: %s is not a quantity such as 128Mi or 1Gi", field, short(r.Memory))
		}
	}
	if r.CPU != "" {
		if _, err := quantity.ParseMilliCPU(r.CPU); err != nil {
			return fmt.Errorf("%s.cpu: %s is not a quantity such as 500m or 0.5", field, short(r.CPU))
		}
	}
	return nil
}

func nonEmptyKeys(field string, m *map[string]string) error {
	if m == nil {
		return nil
	}
	if _, ok := (*m)[""]; ok {
		return fmt.Errorf("%s: keys must not be empty", field)
	}
	return nil
}

// short renders user input for an error message: bare when it is plain
// printable text, quoted otherwise so control characters stay visible, and
// cut so that a huge bogus value cannot blow up the response or the log.
func short(s string) string {
	const limit = 80
	cut := ""
	if len(s) > limit {
		s, cut = s[:limit], "..."
	}
	if q := strconv.Quote(s); s == "" || q[1:len(q)-1] != s || strings.ContainsAny(s, " \t") {
		return q + cut
	}
	return s + cut
}
