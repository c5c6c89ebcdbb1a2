package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/go-sdk/stack"
)

// These tests check the harness's own pure pieces. They need neither Docker
// nor the daemon, so they run (and catch harness bugs) even when those are
// missing.

// captureStack reproduces the stack behind CONTRACT.md capture 04
// (`faas-cli deploy -f stack.yml`).
const captureStack = `version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:18080
functions:
  hello:
    lang: python3
    image: docker.io/example/hello:0.1.0
    fprocess: python3 index.py
    environment:
      MY_VAR: my-value
      read_timeout: 15s
      write_timeout: 15s
      exec_timeout: 15s
      FROM_FILE: overridden-by-the-file
    environment_file:
      - env.yml
    secrets:
      - api-key
    labels:
      com.openfaas.scale.min: "1"
      team: blue
    annotations:
      topic: cron-function
      schedule: "*/5 * * * *"
    constraints:
      - node.platform.os == linux
    limits:
      memory: 128Mi
      cpu: 500m
    requests:
      memory: 64Mi
      cpu: 100m
    readonly_root_filesystem: true
  plain:
    lang: dockerfile
    image: docker.io/example/plain:latest
    namespace: dev
`

// captureBodies are the request bodies faas-cli sent in capture 04.
var captureBodies = map[string]string{
	"hello": `{"service":"hello","image":"docker.io/example/hello:0.1.0","envProcess":"python3 index.py","envVars":{"FROM_FILE":"yes-from-file","MY_VAR":"my-value","exec_timeout":"15s","read_timeout":"15s","write_timeout":"15s"},"constraints":["node.platform.os == linux"],"secrets":["api-key"],"labels":{"com.openfaas.scale.min":"1","team":"blue"},"annotations":{"schedule":"*/5 * * * *","topic":"cron-function"},"limits":{"memory":"128Mi","cpu":"500m"},"requests":{"memory":"64Mi","cpu":"100m"},"readOnlyRootFilesystem":true}`,
	"plain": `{"service":"plain","image":"docker.io/example/plain:latest","namespace":"dev","labels":{},"annotations":{}}`,
}

func TestHarnessStackConversionMatchesFaasCLI(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "stack.yml"), captureStack)
	writeFile(t, filepath.Join(dir, "env.yml"), "environment:\n  FROM_FILE: yes-from-file\n")
	services, err := stack.ParseYAMLFile(filepath.Join(dir, "stack.yml"), "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range captureBodies {
		spec, err := deploymentFromStack(dir, name, services.Functions[name])
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func TestHarnessSpecDiff(t *testing.T) {
	spec := simpleSpec("fn", "img:1", map[string]string{"A": "1"}, map[string]string{"team": "x"})
	spec.Limits = &types.FunctionResources{Memory: "128Mi"}
	status := func(mod func(*types.FunctionStatus)) types.FunctionStatus {
		labels := map[string]string{"team": "x"}
		fs := types.FunctionStatus{
			Name: "fn", Image: "img:1", Namespace: defaultNamespace,
			EnvVars: map[string]string{"A": "1"}, Labels: &labels,
			Limits: &types.FunctionResources{Memory: "128Mi"},
		}
		if mod != nil {
			mod(&fs)
		}
		return fs
	}
	cases := []struct {
		name  string
		mod   func(*types.FunctionStatus)
		diffs int
	}{
		{"identical", nil, 0},
		{"faas_function label allowed", func(fs *types.FunctionStatus) { (*fs.Labels)["faas_function"] = "fn" }, 0},
		{"faas_function with another value", func(fs *types.FunctionStatus) { (*fs.Labels)["faas_function"] = "other" }, 1},
		{"extra label", func(fs *types.FunctionStatus) { (*fs.Labels)["extra"] = "1" }, 1},
		{"missing label", func(fs *types.FunctionStatus) { fs.Labels = nil }, 1},
		{"empty annotations equal nil", func(fs *types.FunctionStatus) { fs.Annotations = &map[string]string{} }, 0},
		{"image normalised", func(fs *types.FunctionStatus) { fs.Image = "docker.io/library/img:1" }, 1},
		{"image env leaked", func(fs *types.FunctionStatus) { fs.EnvVars["PATH"] = "/bin" }, 1},
		{"limits missing", func(fs *types.FunctionStatus) { fs.Limits = nil }, 1},
		{"requests invented", func(fs *types.FunctionStatus) { fs.Requests = &types.FunctionResources{} }, 1},
		{"wrong namespace", func(fs *types.FunctionStatus) { fs.Namespace = "" }, 1},
		{"envProcess invented", func(fs *types.FunctionStatus) { fs.EnvProcess = "cat" }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := specDiff(status(c.mod), spec); len(got) != c.diffs {
				t.Errorf("specDiff found %d differences %v, want %d", len(got), got, c.diffs)
			}
		})
	}
}

func TestHarnessPollIsBounded(t *testing.T) {
	calls := 0
	start := time.Now()
	err := poll(300*time.Millisecond, 50*time.Millisecond, func() error {
		calls++
		return errors.New("still not")
	})
	if err == nil || !strings.Contains(err.Error(), "still not") {
		t.Errorf("poll error %v does not carry the last error", err)
	}
	if took := time.Since(start); took > 2*time.Second || calls > 8 {
		t.Errorf("poll ran %d times over %s for a 300ms/50ms bound", calls, took)
	}
	calls = 0
	if err := poll(time.Second, 10*time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Errorf("poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestHarnessFnContentHashIsStable(t *testing.T) {
	src := filepath.Join(suite.moduleRoot, "test", "e2e", "testdata", fnEcho)
	a, err := fnContentHash(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fnContentHash(src)
	if err != nil || a != b {
		t.Fatalf("hash not stable: %s %s %v", a, b, err)
	}
	other, err := fnContentHash(filepath.Join(suite.moduleRoot, "test", "e2e", "testdata", fnHostname))
	if err != nil || other == a {
		t.Fatalf("different programs hash alike: %s %s %v", a, other, err)
	}
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err == nil {
		t.Errorf("%s must not have a go.mod: the harness builds it inside this module", src)
	}
}
