package swarm

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/openfaas/faas-provider/types"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/quantity"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

var testSpecConfig = specConfig{Instance: "dfd", NetworkPrefix: "fn", PidsLimit: 100, StopGracePeriod: 62 * time.Second, RestartDelay: 5 * time.Second}

func desired(spec types.FunctionDeployment) runtime.Desired {
	return runtime.Desired{Key: "openfaas-fn/echo", Namespace: "openfaas-fn", Name: "echo", Spec: spec, Replicas: 2, Generation: 7, Hash: "0123456789abcdef"}
}

func TestServiceSpecMapping(t *testing.T) {
	labels := map[string]string{"team": "a"}
	ann := map[string]string{"topic": "x"}
	spec := types.FunctionDeployment{
		Service: "echo", Image: "example/echo:1", EnvProcess: "cat",
		EnvVars: map[string]string{"B": "2", "A": "1"}, Labels: &labels, Annotations: &ann,
		ReadOnlyRootFilesystem: true,
		Limits:                 &types.FunctionResources{Memory: "128Mi", CPU: "500m"},
		Requests:               &types.FunctionResources{Memory: "1Mi", CPU: "100m"},
		Constraints:            []string{"node.labels.zone==a", "node.role==worker", "node.hostname!=n1"},
	}
	got, err := serviceSpec(testSpecConfig, desired(spec), []secretRef{{File: "token", ID: "sid", Swarm: "dfd.openfaas-fn.token.x"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := got.TaskTemplate.ContainerSpec
	lim, res := got.TaskTemplate.Resources.Limits, got.TaskTemplate.Resources.Reservations
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", got.Name, "dfd-echo_openfaas-fn"},
		{"image", cs.Image, "example/echo:1"},
		{"env", strings.Join(cs.Env, " "), "A=1 B=2 fprocess=cat"},
		{"user label", cs.Labels["team"], "a"},
		{"annotation", cs.Labels["com.openfaas.annotations.topic"], "x"},
		{"hash on container", cs.Labels[engine.LabelSpecHash], "0123456789abcdef"},
		{"hash on service", got.Labels[engine.LabelSpecHash], "0123456789abcdef"},
		{"function label", got.Labels[engine.LabelFunction], "echo"},
		{"namespace label", cs.Labels[engine.LabelNamespace], "openfaas-fn"},
		{"instance label", got.Labels[engine.LabelInstance], "dfd"},
		{"managed label", got.Labels[engine.LabelManaged], "true"},
		{"generation on service", got.Labels[engine.LabelGeneration], "7"},
		{"no generation on container", cs.Labels[engine.LabelGeneration], ""},
		{"memory limit", lim.MemoryBytes, int64(128 << 20)},
		{"cpu limit 500m", lim.NanoCPUs, int64(500_000_000)},
		{"pids", lim.Pids, int64(100)},
		{"memory request raised to 6MB", res.MemoryBytes, int64(6 << 20)},
		{"cpu request 100m", res.NanoCPUs, int64(100_000_000)},
		{"read-only", cs.ReadOnly, true},
		{"tmpfs", cs.Mounts, []mount.Mount{{Type: mount.TypeTmpfs, Target: "/tmp"}}},
		{"constraints verbatim", got.TaskTemplate.Placement.Constraints, spec.Constraints},
		{"restart any", got.TaskTemplate.RestartPolicy.Condition, swarm.RestartPolicyConditionAny},
		{"no max attempts", got.TaskTemplate.RestartPolicy.MaxAttempts, (*uint64)(nil)},
		{"restart delay", *got.TaskTemplate.RestartPolicy.Delay, 5 * time.Second},
		{"dnsrr", got.EndpointSpec.Mode, swarm.ResolutionModeDNSRR},
		{"no ports", len(got.EndpointSpec.Ports), 0},
		{"network", got.TaskTemplate.Networks, []swarm.NetworkAttachmentConfig{{Target: "fn-echo_openfaas-fn"}}},
		{"replicas", *got.Mode.Replicated.Replicas, uint64(2)},
		{"parallelism", got.UpdateConfig.Parallelism, uint64(1)},
		{"start-first", got.UpdateConfig.Order, swarm.UpdateOrderStartFirst},
		{"failure continue", got.UpdateConfig.FailureAction, swarm.UpdateFailureActionContinue},
		{"no rollback config", got.RollbackConfig, (*swarm.UpdateConfig)(nil)},
		{"healthcheck none", cs.Healthcheck.Test, []string{"NONE"}},
		{"no new privileges", cs.Privileges.NoNewPrivileges, true},
		{"stop grace", *cs.StopGracePeriod, 62 * time.Second},
		{"secret id", cs.Secrets[0].SecretID, "sid"},
		{"secret swarm name", cs.Secrets[0].SecretName, "dfd.openfaas-fn.token.x"},
		{"secret file", cs.Secrets[0].File.Name, "/var/openfaas/secrets/token"},
		{"secret mode", cs.Secrets[0].File.Mode, os.FileMode(0o444)},
		{"secret owner", cs.Secrets[0].File.UID + ":" + cs.Secrets[0].File.GID, "0:0"},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	return strings.TrimSpace(sprint(a)) == strings.TrimSpace(sprint(b))
}

func TestServiceSpecDefaults(t *testing.T) {
	got, err := serviceSpec(testSpecConfig, desired(types.FunctionDeployment{Image: "x", EnvProcess: "cat", EnvVars: map[string]string{"fprocess": "env"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := got.TaskTemplate.ContainerSpec
	if strings.Join(cs.Env, " ") != "fprocess=env" {
		t.Errorf("an fprocess in envVars wins over envProcess: %v", cs.Env)
	}
	if cs.ReadOnly || len(cs.Mounts) != 0 || got.TaskTemplate.Placement != nil || len(cs.Secrets) != 0 {
		t.Errorf("unexpected read-only, mounts, placement or secrets: %+v", got)
	}
	if l := got.TaskTemplate.Resources.Limits; l.MemoryBytes != 0 || l.NanoCPUs != 0 {
		t.Errorf("limits without limits asked: %+v", l)
	}
}

func TestServiceSpecResources(t *testing.T) {
	tests := []struct {
		limits, requests       *types.FunctionResources
		memLim, cpuLim, memReq int64
		cpuReq                 int64
		bad                    string
	}{
		{limits: &types.FunctionResources{CPU: "100m"}, cpuLim: 100_000_000},
		{limits: &types.FunctionResources{CPU: "0.5"}, cpuLim: 500_000_000},
		{limits: &types.FunctionResources{CPU: "2"}, cpuLim: 2_000_000_000},
		{limits: &types.FunctionResources{Memory: "1Gi"}, memLim: 1 << 30},
		{limits: &types.FunctionResources{Memory: "64M"}, memLim: 64e6},
		{limits: &types.FunctionResources{Memory: "1Mi"}, memLim: 6 << 20},
		{limits: &types.FunctionResources{Memory: "20Mi"}, requests: &types.FunctionResources{Memory: "50Mi"}, memLim: 20 << 20, memReq: 20 << 20},
		{requests: &types.FunctionResources{CPU: "250m", Memory: "32Mi"}, cpuReq: 250_000_000, memReq: 32 << 20},
		{limits: &types.FunctionResources{CPU: "lots"}, bad: "limits.cpu"},
		{limits: &types.FunctionResources{Memory: "-1Mi"}, bad: "limits.memory"},
		{requests: &types.FunctionResources{Memory: "12Xi"}, bad: "requests.memory"},
		{requests: &types.FunctionResources{CPU: "100 m"}, bad: "requests.cpu"},
	}
	for _, tt := range tests {
		got, err := serviceSpec(testSpecConfig, desired(types.FunctionDeployment{Image: "x", Limits: tt.limits, Requests: tt.requests}), nil)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) || !errors.Is(err, quantity.ErrInvalid) {
				t.Errorf("%+v %+v: err %v, want a quantity error on %s", tt.limits, tt.requests, err, tt.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v %+v: %v", tt.limits, tt.requests, err)
			continue
		}
		l, r := got.TaskTemplate.Resources.Limits, got.TaskTemplate.Resources.Reservations
		if l.MemoryBytes != tt.memLim || l.NanoCPUs != tt.cpuLim || r.MemoryBytes != tt.memReq || r.NanoCPUs != tt.cpuReq {
			t.Errorf("%+v %+v: limits %+v reservations %+v", tt.limits, tt.requests, l, r)
		}
	}
}

func TestValidateConstraint(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"node.labels.zone==a", true},
		{"node.labels.zone == a", true},
		{"node.role==worker", true},
		{"node.role==manager", true},
		{"node.role!=manager", true},
		{"node.hostname!=a", true},
		{"node.id==abc123", true},
		{"node.platform.os==linux", true},
		{"engine.labels.gpu==true", true},
		{"node.role==boss", false},
		{"node.labels.zone=a", false},
		{"node.labels.zone", false},
		{"node.labels.==a", false},
		{"node.labels.zone==", false},
		{"==a", false},
		{"zone==a", false},
		{"node.labels.zone==a==b", false},
		{"node.labels.zone==a;rm", false},
		{"", false},
	}
	for _, tt := range tests {
		err := validateConstraint(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("validateConstraint(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestServiceSpecBadConstraint(t *testing.T) {
	_, err := serviceSpec(testSpecConfig, desired(types.FunctionDeployment{Image: "x", Constraints: []string{"node.role==worker", "zone=a"}}), nil)
	if err == nil || !strings.Contains(err.Error(), "constraints[1]") {
		t.Fatalf("err = %v, want constraints[1]", err)
	}
}

func TestObjectNames(t *testing.T) {
	tests := []struct{ prefix, ns, name, want string }{
		{"dfd", "openfaas-fn", "echo", "dfd-echo_openfaas-fn"},
		{"dfd", "a-b", "c", "dfd-c_a-b"},
		{"dfd", "a", "b-c", "dfd-b-c_a"},
	}
	for _, tt := range tests {
		if got := objectName(tt.prefix, tt.ns, tt.name); got != tt.want {
			t.Errorf("objectName(%q, %q, %q) = %q, want %q", tt.prefix, tt.ns, tt.name, got, tt.want)
		}
	}
	long1 := objectName("dockerfaasd", "openfaas-fn", strings.Repeat("x", 60))
	long2 := objectName("dockerfaasd", "openfaas-fn", strings.Repeat("x", 59)+"y")
	if len(long1) != 63 || long1 == long2 {
		t.Errorf("long names: %q (%d) and %q", long1, len(long1), long2)
	}
	dns := regexpMust(`^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`)
	for _, n := range []string{long1, long2, objectName("dfd", "openfaas-fn", "echo")} {
		if !dns.MatchString(n) {
			t.Errorf("%q is not a valid swarm service name", n)
		}
	}
	at := time.Unix(1700000000, 5)
	s1 := secretName("dfd", "openfaas-fn", runtime.Secret{Name: "token", UpdatedAt: at})
	s2 := secretName("dfd", "openfaas-fn", runtime.Secret{Name: "token", UpdatedAt: at.Add(time.Nanosecond)})
	if s1 == s2 || !strings.HasPrefix(s1, "dfd.openfaas-fn.token.") {
		t.Errorf("secret names %q and %q", s1, s2)
	}
	long := secretName("dfd", "openfaas-fn", runtime.Secret{Name: strings.Repeat("s", 80), UpdatedAt: at})
	if len(long) != 64 || !regexpMust(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`).MatchString(long) {
		t.Errorf("long secret name %q (%d)", long, len(long))
	}
}
