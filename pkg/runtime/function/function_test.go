package function

import (
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"
)

func TestParseResources(t *testing.T) {
	for _, tt := range []struct {
		limits, requests *types.FunctionResources
		want             Resources
		bad              string
	}{
		{},
		{limits: &types.FunctionResources{Memory: "128Mi", CPU: "500m"}, requests: &types.FunctionResources{Memory: "64Mi", CPU: "0.1"},
			want: Resources{MemoryLimit: 128 << 20, CPULimit: 500, MemoryRequest: 64 << 20, CPURequest: 100}},
		// A memory given is raised to Docker's minimum, even 0.
		{limits: &types.FunctionResources{Memory: "1Mi"}, want: Resources{MemoryLimit: MinMemory}},
		{requests: &types.FunctionResources{Memory: "0"}, want: Resources{MemoryRequest: MinMemory}},
		// The request is capped at the limit.
		{limits: &types.FunctionResources{Memory: "20Mi"}, requests: &types.FunctionResources{Memory: "50Mi"},
			want: Resources{MemoryLimit: 20 << 20, MemoryRequest: 20 << 20}},
		{limits: &types.FunctionResources{Memory: "x", CPU: "y"}, bad: "limits.memory"},
		{limits: &types.FunctionResources{CPU: "lots"}, requests: &types.FunctionResources{Memory: "x"}, bad: "limits.cpu"},
		{requests: &types.FunctionResources{Memory: "12Xi"}, bad: "requests.memory"},
		{requests: &types.FunctionResources{CPU: "100 m"}, bad: "requests.cpu"},
	} {
		got, err := ParseResources(tt.limits, tt.requests)
		switch {
		case tt.bad != "":
			if err == nil || !strings.HasPrefix(err.Error(), tt.bad+":") {
				t.Errorf("%+v %+v: err %v, want one about %s", tt.limits, tt.requests, err, tt.bad)
			}
		case err != nil || got != tt.want:
			t.Errorf("%+v %+v: %+v, %v; want %+v", tt.limits, tt.requests, got, err, tt.want)
		}
	}
}

func TestEnvAndLabels(t *testing.T) {
	spec := types.FunctionDeployment{
		EnvVars: map[string]string{"b": "2", "a": "1"}, EnvProcess: "cat",
		Labels: &map[string]string{"l": "v"}, Annotations: &map[string]string{"topic": "x"},
	}
	if got := strings.Join(Env(spec), " "); got != "a=1 b=2 fprocess=cat" {
		t.Errorf("env %q", got)
	}
	spec.EnvVars["fprocess"] = "env"
	if got := strings.Join(Env(spec), " "); got != "a=1 b=2 fprocess=env" {
		t.Errorf("env with fprocess in envVars %q", got)
	}
	l := UserLabels(spec)
	if len(l) != 2 || l["l"] != "v" || l[AnnotationPrefix+"topic"] != "x" {
		t.Errorf("labels %v", l)
	}
	if k := KeyOf(OwnerLabels("i", "ns", "fn")); k != "ns/fn" {
		t.Errorf("key %q", k)
	}
	if k := KeyOf(OwnerLabels("i", "ns", "")); k != "" {
		t.Errorf("key of a namespace's labels %q", k)
	}
}
