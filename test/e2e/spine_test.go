package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/go-sdk/stack"
)

// stackTemplate is a faas-cli stack file with one function of each test
// image. Placeholders: gateway URL, hostname image, echo image.
const stackTemplate = `version: 1.0
provider:
  name: openfaas
  gateway: %s
functions:
  hostname:
    lang: dockerfile
    image: %s
    labels:
      team: e2e
    annotations:
      owner: dockerfaasd-e2e
  echo:
    lang: dockerfile
    image: %s
    fprocess: /fn --serve
    environment:
      MY_VAR: my-value
      WITH_EQUALS: a=b=c
      HEALTH_DELAY: 1s
      write_timeout: 15s
    labels:
      team: blue
      com.openfaas.scale.min: "1"
    annotations:
      topic: e2e-topic
      description: '{"json": "value", "n": 1}'
    constraints:
      - node.platform.os == linux
    limits:
      memory: 128Mi
      cpu: 500m
    requests:
      memory: 64Mi
      cpu: 100m
    readonly_root_filesystem: true
`

// TestDeployFromStackInvokeDescribeDelete walks one stack through the whole
// life cycle: faas-cli style deploy, invocation semantics, list/describe
// echoing the spec, what lands in Docker (containers on one host; services,
// tasks and overlay networks on a swarm), and delete. It runs on both
// runtimes.
func TestDeployFromStackInvokeDescribeDelete(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testDeployFromStack)
}

func testDeployFromStack(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	hostImg, echoImg := d.fnImage(fnHostname), d.fnImage(fnEcho)

	stackPath := filepath.Join(t.TempDir(), "stack.yml")
	writeFile(t, stackPath, fmt.Sprintf(stackTemplate, d.baseURL, hostImg, echoImg))
	services, err := stack.ParseYAMLFile(stackPath, "", "", false)
	if err != nil {
		t.Fatalf("parse %s: %v", stackPath, err)
	}
	specs := map[string]types.FunctionDeployment{}
	for name, f := range services.Functions {
		if specs[name], err = deploymentFromStack(filepath.Dir(stackPath), name, f); err != nil {
			t.Fatal(err)
		}
	}
	if len(specs) != 2 || specs["echo"].EnvProcess != "/fn --serve" || specs["echo"].Limits == nil {
		t.Fatalf("stack conversion looks wrong: %+v", specs)
	}
	names := slices.Sorted(maps.Keys(specs))

	// faas-cli deploys with PUT and falls back to POST only on 404.
	for _, name := range names {
		put, post := d.deployLikeFaasCLI(specs[name])
		if put != http.StatusNotFound || post != http.StatusAccepted {
			t.Errorf("deploy %s like faas-cli: PUT %d then POST %d, want PUT 404 then POST 202", name, put, post)
		}
	}

	t.Run("availableReplicas implies invokable", func(t *testing.T) {
		// fn-echo's /_/health answers 503 for HEALTH_DELAY after start, so
		// there is a window where the replica runs but is not ready.
		sawNotReady := false
		eventually(t, readyTimeout, 25*time.Millisecond, func() error {
			fs, _, err := d.getFunction("echo", defaultNamespace)
			if err != nil {
				return err
			}
			if fs.Replicas != 1 {
				t.Fatalf("replicas=%d right after deploy, want 1", fs.Replicas)
			}
			switch fs.AvailableReplicas {
			case 0:
				sawNotReady = true
				return fmt.Errorf("availableReplicas=0")
			case 1:
				res := d.invoke(http.MethodGet, "/function/echo", nil, nil)
				if res.Status != http.StatusOK {
					t.Fatalf("availableReplicas=1 but the first invoke answered %s", res)
				}
				return nil
			default:
				t.Fatalf("availableReplicas=%d, want 0 or 1", fs.AvailableReplicas)
				return nil
			}
		})
		t.Logf("saw availableReplicas=0 before 1: %v", sawNotReady)
	})
	for _, name := range names {
		d.waitReady(name, defaultNamespace, 1)
	}

	t.Run("invoke", func(t *testing.T) {
		spec := specs["echo"]
		for _, path := range []string{"/function/echo", "/function/echo.openfaas-fn", "/function/echo/", "/function/echo.openfaas-fn/"} {
			res := d.invoke(http.MethodPost, path, []byte("hello"), map[string]string{"Content-Type": "text/plain"})
			if res.Status != http.StatusOK {
				t.Errorf("POST %s: %s, want 200", path, res)
				continue
			}
			r, err := decodeEcho(res)
			if err != nil {
				t.Error(err)
				continue
			}
			if r.Method != http.MethodPost || r.Path != "/" || r.Body != "hello" {
				t.Errorf("POST %s reached the function as %s %s body %q, want POST / body \"hello\"", path, r.Method, r.Path, r.Body)
			}
			for k, v := range spec.EnvVars {
				if r.Env[k] != v {
					t.Errorf("function env %s=%q, want %q", k, r.Env[k], v)
				}
			}
			if r.Env["fprocess"] != spec.EnvProcess {
				t.Errorf("function env fprocess=%q, want %q", r.Env["fprocess"], spec.EnvProcess)
			}
		}

		res := d.invoke(http.MethodGet, "/function/hostname", nil, nil)
		if res.Status != http.StatusOK || len(res.Body) == 0 {
			t.Errorf("GET /function/hostname: %s, want 200 with a hostname", res)
		}
	})

	t.Run("methods", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			body := "payload-" + m
			res := d.invoke(m, "/function/echo.openfaas-fn", []byte(body), nil)
			r, err := decodeEcho(res)
			if res.Status != http.StatusOK || err != nil {
				t.Errorf("%s: %s (%v), want 200", m, res, err)
				continue
			}
			if r.Method != m || r.Body != body {
				t.Errorf("%s reached the function as %s with body %q, want body %q", m, r.Method, r.Body, body)
			}
		}
	})

	t.Run("path and query passthrough", func(t *testing.T) {
		cases := []struct{ in, path, query string }{
			{"/function/echo/sub/path?x=1&y=2", "/sub/path", "x=1&y=2"},
			{"/function/echo.openfaas-fn/sub/path?x=1&y=2", "/sub/path", "x=1&y=2"},
			{"/function/echo?testing=1", "/", "testing=1"},
			{"/function/echo/a/b/c/?q=a%20b&q=c", "/a/b/c/", "q=a%20b&q=c"},
		}
		for _, c := range cases {
			res := d.invoke(http.MethodGet, c.in, nil, nil)
			r, err := decodeEcho(res)
			if res.Status != http.StatusOK || err != nil {
				t.Errorf("GET %s: %s (%v), want 200", c.in, res, err)
				continue
			}
			if r.Path != c.path || r.Query != c.query {
				t.Errorf("GET %s reached the function as path %q query %q, want %q %q", c.in, r.Path, r.Query, c.path, c.query)
			}
		}
	})

	t.Run("headers", func(t *testing.T) {
		res := d.invoke(http.MethodGet, "/function/echo", nil, map[string]string{"X-Custom": "abc"})
		if res.Status != http.StatusOK {
			t.Fatalf("GET /function/echo: %s", res)
		}
		for _, h := range []string{"X-Call-Id", "X-Start-Time", "X-Duration-Seconds"} {
			if res.Header.Get(h) == "" {
				t.Errorf("response header %s missing (headers %v)", h, res.Header)
			}
		}
		r, err := decodeEcho(res)
		if err != nil {
			t.Fatal(err)
		}
		if r.Headers["X-Custom"] != "abc" {
			t.Errorf("request header X-Custom not forwarded: function saw %v", r.Headers)
		}
		for _, h := range []string{"X-Call-Id", "X-Start-Time", "X-Forwarded-For", "X-Forwarded-Host"} {
			if r.Headers[h] == "" {
				t.Errorf("the function did not receive request header %s (it saw %v)", h, r.Headers)
			}
		}
		if got, want := res.Header.Get("X-Call-Id"), r.Headers["X-Call-Id"]; got != want {
			t.Errorf("X-Call-Id on the response %q differs from the one the function received %q", got, want)
		}

		res = d.invoke(http.MethodGet, "/function/echo", nil, map[string]string{"X-Call-Id": "e2e-call-id"})
		if got := res.Header.Get("X-Call-Id"); got != "e2e-call-id" {
			t.Errorf("client X-Call-Id not echoed: got %q", got)
		}

		// Through an outer proxy: its chain is extended, its host and
		// scheme kept.
		res = d.invoke(http.MethodGet, "/function/echo", nil, map[string]string{
			"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "faas.example", "X-Forwarded-Proto": "https"})
		if r, err = decodeEcho(res); err != nil {
			t.Fatal(err)
		}
		if peer, ok := strings.CutPrefix(r.Headers["X-Forwarded-For"], "203.0.113.7, "); !ok || peer == "" || strings.Contains(peer, ",") {
			t.Errorf("behind an outer proxy the function saw X-Forwarded-For %q, want 203.0.113.7 and the proxy's address", r.Headers["X-Forwarded-For"])
		}
		for h, want := range map[string]string{"X-Forwarded-Host": "faas.example", "X-Forwarded-Proto": "https"} {
			if r.Headers[h] != want {
				t.Errorf("behind an outer proxy the function saw %s %q, want %q", h, r.Headers[h], want)
			}
		}
	})

	t.Run("redirect passed through", func(t *testing.T) {
		res := d.invoke(http.MethodGet, "/function/echo/redirect", nil, nil)
		if res.Status != http.StatusFound || res.Header.Get("Location") != "/target" {
			t.Errorf("GET /function/echo/redirect: %s Location %q, want 302 /target", res, res.Header.Get("Location"))
		}
	})

	t.Run("function status codes passed through", func(t *testing.T) {
		for _, code := range []int{201, 404, 418, 500} {
			path := fmt.Sprintf("/function/echo/status/%d", code)
			res := d.invoke(http.MethodGet, path, nil, nil)
			if res.Status != code {
				t.Errorf("GET %s: %s, want %d", path, res, code)
				continue
			}
			if _, err := decodeEcho(res); err != nil {
				t.Errorf("GET %s: the function's body was not passed through: %v", path, err)
			}
		}
	})

	t.Run("list and describe echo the spec", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := d.client()
		for _, ns := range []string{"", defaultNamespace} {
			list, err := c.GetFunctions(ctx, ns)
			if err != nil {
				t.Fatalf("GetFunctions(%q): %v", ns, err)
			}
			if len(list) != len(specs) {
				t.Errorf("GetFunctions(%q) returned %d functions, want %d: %+v", ns, len(list), len(specs), list)
			}
			for _, name := range names {
				fs, ok := findStatus(list, name)
				if !ok {
					t.Errorf("GetFunctions(%q): %s missing", ns, name)
					continue
				}
				checkStatus(t, "list(ns="+ns+")", fs, specs[name])
			}
		}
		for _, name := range names {
			for _, ns := range []string{"", defaultNamespace} {
				fs, err := c.GetFunction(ctx, name, ns)
				if err != nil {
					t.Errorf("GetFunction(%s, %q): %v", name, ns, err)
					continue
				}
				checkStatus(t, "get(ns="+ns+")", fs, specs[name])
			}
		}
	})

	t.Run(rt+" objects", func(t *testing.T) {
		for _, name := range names {
			spec := specs[name]
			if rt == runtimeSwarm {
				d.checkSwarmObjects(t, name, spec)
				continue
			}
			cs, err := d.fnContainers(name, defaultNamespace, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 {
				t.Errorf("%s: %d containers, want 1", name, len(cs))
				continue
			}
			c := d.inspect(cs[0].ID)
			wantLabels := map[string]string{labelManaged: "true", labelInstance: d.instance, labelFunction: name, labelNamespace: defaultNamespace}
			for k, v := range wantLabels {
				if c.Config.Labels[k] != v {
					t.Errorf("%s: container label %s=%q, want %q", name, k, c.Config.Labels[k], v)
				}
			}
			if !strings.HasPrefix(strings.TrimPrefix(c.Name, "/"), d.instance) {
				t.Errorf("%s: container name %q does not start with the instance %q", name, c.Name, d.instance)
			}
			if c.State == nil || !c.State.Running {
				t.Errorf("%s: container not running: %+v", name, c.State)
			}

			wantNet := d.networkName(defaultNamespace, name)
			gotNets := slices.Sorted(maps.Keys(c.NetworkSettings.Networks))
			if !reflect.DeepEqual(gotNets, []string{wantNet}) {
				t.Errorf("%s: container networks %v, want only %q", name, gotNets, wantNet)
			}
			nws, err := d.fnNetworks(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(nws) != 1 || nws[0].Name != wantNet {
				t.Errorf("%s: networks labelled for the function: %+v, want one named %q", name, nws, wantNet)
			} else {
				for k, v := range wantLabels {
					if nws[0].Labels[k] != v {
						t.Errorf("%s: network label %s=%q, want %q", name, k, nws[0].Labels[k], v)
					}
				}
			}

			env := envList(c.Config.Env)
			for k, v := range spec.EnvVars {
				if env[k] != v {
					t.Errorf("%s: container env %s=%q, want %q", name, k, env[k], v)
				}
			}
			if spec.EnvProcess != "" && env["fprocess"] != spec.EnvProcess {
				t.Errorf("%s: container env fprocess=%q, want %q", name, env["fprocess"], spec.EnvProcess)
			}
			if c.HostConfig.ReadonlyRootfs != spec.ReadOnlyRootFilesystem {
				t.Errorf("%s: ReadonlyRootfs=%v, want %v", name, c.HostConfig.ReadonlyRootfs, spec.ReadOnlyRootFilesystem)
			}
			if spec.Limits != nil && spec.Limits.Memory == "128Mi" && c.HostConfig.Memory != 128<<20 {
				t.Errorf("%s: memory limit %d, want %d (128Mi)", name, c.HostConfig.Memory, 128<<20)
			}
			if !slices.ContainsFunc(c.HostConfig.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") }) {
				t.Errorf("%s: SecurityOpt %v lacks no-new-privileges", name, c.HostConfig.SecurityOpt)
			}
			t.Logf("%s: container %s hostname=%s NanoCPUs=%d CpuQuota=%d CpuPeriod=%d MemoryReservation=%d",
				name, short(c.ID), c.Config.Hostname, c.HostConfig.NanoCPUs, c.HostConfig.CPUQuota, c.HostConfig.CPUPeriod, c.HostConfig.MemoryReservation)
		}
	})

	t.Run("delete", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := d.client()
		if err := c.DeleteFunction(ctx, "echo", defaultNamespace); err != nil {
			t.Errorf("DeleteFunction(echo, %s): %v", defaultNamespace, err)
		}
		if err := c.DeleteFunction(ctx, "hostname", ""); err != nil {
			t.Errorf("DeleteFunction(hostname, \"\"): %v", err)
		}
		for _, name := range names {
			if _, code, _ := d.getFunction(name, defaultNamespace); code != http.StatusNotFound {
				t.Errorf("GET /system/function/%s right after delete: %d, want 404", name, code)
			}
		}
		for _, name := range names {
			eventually(t, 60*time.Second, pollInterval, func() error {
				left, err := d.fnLeftovers(name, defaultNamespace)
				if err != nil {
					return err
				}
				if left != "" {
					return errors.New(left)
				}
				return nil
			})
		}
		for _, path := range []string{"/function/echo", "/function/echo.openfaas-fn", "/function/hostname.openfaas-fn/x"} {
			if res := d.invoke(http.MethodGet, path, nil, nil); res.Status != http.StatusNotFound {
				t.Errorf("GET %s after delete: %s, want 404", path, res)
			}
		}
		list, err := d.listFunctions("")
		if err != nil || len(list) != 0 {
			t.Errorf("list after delete: %+v %v, want []", list, err)
		}
		if err := c.DeleteFunction(ctx, "echo", defaultNamespace); err == nil {
			t.Errorf("deleting echo twice succeeded, want 404")
		}
	})
}

// checkStatus compares one reported FunctionStatus with the deployed spec and
// the expected steady state (1 replica, ready).
func checkStatus(t *testing.T, where string, fs types.FunctionStatus, spec types.FunctionDeployment) {
	t.Helper()
	for _, diff := range specDiff(fs, spec) {
		t.Errorf("%s %s: %s", where, spec.Service, diff)
	}
	if fs.Replicas != 1 || fs.AvailableReplicas != 1 {
		t.Errorf("%s %s: replicas=%d availableReplicas=%d, want 1 and 1", where, spec.Service, fs.Replicas, fs.AvailableReplicas)
	}
	if fs.CreatedAt.IsZero() {
		t.Errorf("%s %s: createdAt is zero", where, spec.Service)
	}
}

// simpleSpec is a minimal FunctionDeployment as faas-cli would send it.
func simpleSpec(name, image string, env map[string]string, labels map[string]string) types.FunctionDeployment {
	if labels == nil {
		labels = map[string]string{}
	}
	return types.FunctionDeployment{
		Service:     name,
		Image:       image,
		EnvVars:     env,
		Labels:      &labels,
		Annotations: &map[string]string{},
	}
}

// TestScaleUpAndDown scales a function up, checks that traffic spreads over
// all replicas, scales it down, and checks the com.openfaas.scale.max cap.
// It runs on both runtimes.
func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testScaleUpAndDown)
}

func testScaleUpAndDown(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnHostname)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()

	d.deploy(simpleSpec("hostname", img, nil, nil))
	d.waitReady("hostname", defaultNamespace, 1)

	if err := c.ScaleFunction(ctx, "hostname", defaultNamespace, 3); err != nil {
		t.Fatalf("scale to 3: %v", err)
	}
	if fs, _, err := d.getFunction("hostname", defaultNamespace); err != nil || fs.Replicas != 3 {
		t.Errorf("right after scaling to 3: replicas=%d (%v), want 3", fs.Replicas, err)
	}
	d.waitReady("hostname", defaultNamespace, 3)

	var hostnames map[string]bool
	eventually(t, 30*time.Second, pollInterval, func() error {
		hosts, n, err := d.replicaHostnames("hostname", defaultNamespace)
		if err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("%d running replicas, want 3", n)
		}
		hostnames = hosts
		return nil
	})

	seen := map[string]int{}
	for i := 0; i < 60 && (i < 30 || len(seen) < 3); i++ {
		res := d.invoke(http.MethodGet, "/function/hostname", nil, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("invoke %d: %s", i, res)
		}
		h := string(res.Body)
		if !hostnames[h] {
			t.Errorf("invoke %d answered by %q, not one of the function's containers %v", i, h, hostnames)
		}
		seen[h]++
	}
	if len(seen) < 3 {
		t.Errorf("invocations reached %d distinct replicas (%v), want 3", len(seen), seen)
	}
	t.Logf("spread over replicas: %v", seen)

	if err := c.ScaleFunction(ctx, "hostname", defaultNamespace, 1); err != nil {
		t.Fatalf("scale to 1: %v", err)
	}
	eventually(t, 60*time.Second, pollInterval, func() error {
		ids, err := d.liveReplicas("hostname", defaultNamespace)
		if err != nil {
			return err
		}
		fs, _, err := d.getFunction("hostname", defaultNamespace)
		if err != nil {
			return err
		}
		if len(ids) != 1 || fs.Replicas != 1 || fs.AvailableReplicas != 1 {
			return fmt.Errorf("%d replicas left (%s), replicas=%d availableReplicas=%d; want 1, 1, 1",
				len(ids), replicaKind(rt), fs.Replicas, fs.AvailableReplicas)
		}
		return nil
	})
	for i := 0; i < 5; i++ {
		if res := d.invoke(http.MethodGet, "/function/hostname", nil, nil); res.Status != http.StatusOK || !hostnames[string(res.Body)] {
			t.Errorf("after scaling down, invoke %d: %s (known replicas %v)", i, res, hostnames)
		}
	}

	t.Run("scale.max caps replicas", func(t *testing.T) {
		d.deploy(simpleSpec("capped", img, nil, map[string]string{"com.openfaas.scale.max": "2"}))
		d.waitReady("capped", defaultNamespace, 1)
		if err := c.ScaleFunction(ctx, "capped", defaultNamespace, 5); err != nil {
			t.Fatalf("scale to 5: %v", err)
		}
		eventually(t, 30*time.Second, pollInterval, func() error {
			fs, _, err := d.getFunction("capped", defaultNamespace)
			if err != nil {
				return err
			}
			if fs.Replicas != 2 {
				return fmt.Errorf("replicas=%d after asking for 5 with com.openfaas.scale.max=2, want 2", fs.Replicas)
			}
			return nil
		})
		d.waitReady("capped", defaultNamespace, 2)
		eventually(t, 30*time.Second, pollInterval, func() error {
			ids, err := d.liveReplicas("capped", defaultNamespace)
			if err != nil {
				return err
			}
			if len(ids) != 2 {
				return fmt.Errorf("%d %s, want 2", len(ids), replicaKind(rt))
			}
			return nil
		})
	})
}

// TestUpdateEnvIsServed updates a function's environment with PUT and checks
// that the new spec is served and the old replicas go away. It runs on both
// runtimes.
func TestUpdateEnvIsServed(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testUpdateEnvIsServed)
}

func testUpdateEnvIsServed(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()

	v1 := simpleSpec("echo", img, map[string]string{"A": "1"}, nil)
	d.deploy(v1)
	d.waitReady("echo", defaultNamespace, 1)
	oldIDs, err := d.replicaIDs("echo", defaultNamespace)
	if err != nil || len(oldIDs) != 1 {
		t.Fatalf("running replicas before the update: %v %v, want 1", oldIDs, err)
	}

	t.Run("unchanged PUT keeps replicas", func(t *testing.T) {
		code, err := c.Update(ctx, v1)
		if err != nil || (code != http.StatusAccepted && code != http.StatusOK) {
			t.Fatalf("PUT unchanged spec: %d %v, want 202 (or 200)", code, err)
		}
		// Watch for a few reconcile rounds: nothing should be replaced.
		for i := 0; i < 15; i++ {
			ids, err := d.replicaIDs("echo", defaultNamespace)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids, oldIDs) {
				t.Fatalf("an unchanged PUT replaced the replicas: %v -> %v", oldIDs, ids)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// Invoke continuously during the rollout; measure, don't assert, downtime.
	load := startLoad(t, d, loadOptions{
		workers: 1, maxDuration: 4 * time.Minute, maxRequests: 6000, pause: 20 * time.Millisecond,
		request: func(_, _ int) (string, string, []byte) { return http.MethodGet, "/function/echo", nil },
	})

	v2 := simpleSpec("echo", img, map[string]string{"A": "2"}, nil)
	code, err := c.Update(ctx, v2)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("PUT with A=2: %d %v, want 202", code, err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		res, err := d.request(http.MethodGet, "/function/echo", nil, nil, authBasic)
		if err != nil {
			return err
		}
		r, err := decodeEcho(res)
		if err != nil {
			return err
		}
		if r.Env["A"] != "2" {
			return fmt.Errorf("function still sees A=%q", r.Env["A"])
		}
		return nil
	})
	eventually(t, readyTimeout, pollInterval, func() error {
		ids, err := d.liveReplicas("echo", defaultNamespace)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("%d %s, want 1", len(ids), replicaKind(rt))
		}
		if slices.Contains(oldIDs, ids[0]) {
			return fmt.Errorf("the old replica %s is still the one there", short(ids[0]))
		}
		if env := d.replicaEnv(ids[0]); env["A"] != "2" {
			return fmt.Errorf("replica %s has A=%q", short(ids[0]), env["A"])
		}
		return nil
	})
	codes := map[string]int{}
	for _, s := range load.stop() {
		key := fmt.Sprint(s.status)
		switch {
		case s.err != nil:
			key = "error"
		case s.decodeErr == nil:
			key += " A=" + s.reply.Env["A"]
		}
		codes[key]++
	}
	t.Logf("responses during the rollout: %v", codes)

	fs := d.waitReady("echo", defaultNamespace, 1)
	if diffs := specDiff(fs, v2); len(diffs) > 0 {
		t.Errorf("describe after the update: %v", diffs)
	}
	for i := 0; i < 10; i++ {
		res := d.invoke(http.MethodGet, "/function/echo", nil, nil)
		if r, err := decodeEcho(res); err != nil || r.Env["A"] != "2" {
			t.Errorf("invoke %d after convergence: %s", i, res)
		}
	}
}

// TestAuth checks basic auth on the API and on invocation, and INVOKE_AUTH=false.
func TestAuth(t *testing.T) {
	t.Parallel()
	img := fnImage(t, fnHostname)
	basic := func(user, pass string) string {
		r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}

	t.Run("invoke auth on (default)", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t)
		d.deploy(simpleSpec("hostname", img, nil, nil))
		d.waitReady("hostname", defaultNamespace, 1)

		cases := []struct {
			name       string
			method     string
			path       string
			body       string
			mode       authMode
			authHeader string
			want       int
		}{
			{"list without credentials", "GET", "/system/functions", "", authNone, "", 401},
			{"list with a wrong password", "GET", "/system/functions", "", authNone, basic(d.user, "wrong"), 401},
			{"list with a wrong user", "GET", "/system/functions", "", authNone, basic("nobody", d.password), 401},
			{"list with a bare Bearer", "GET", "/system/functions", "", authNone, "Bearer", 401},
			{"list with a Bearer token", "GET", "/system/functions", "", authNone, "Bearer " + d.password, 401},
			{"list with credentials", "GET", "/system/functions", "", authBasic, "", 200},
			{"get function without credentials", "GET", "/system/function/hostname", "", authNone, "", 401},
			{"info without credentials", "GET", "/system/info", "", authNone, "", 401},
			{"deploy without credentials", "POST", "/system/functions", `{"service":"sneaky","image":"` + img + `"}`, authNone, "", 401},
			{"scale without credentials", "POST", "/system/scale-function/hostname", `{"serviceName":"hostname","replicas":0}`, authNone, "", 401},
			{"delete without credentials", "DELETE", "/system/functions", `{"functionName":"hostname"}`, authNone, "", 401},
			{"invoke without credentials", "GET", "/function/hostname", "", authNone, "", 401},
			{"invoke with a wrong password", "POST", "/function/hostname.openfaas-fn", "x", authNone, basic(d.user, "wrong"), 401},
			{"invoke with a bare Bearer", "GET", "/function/hostname", "", authNone, "Bearer", 401},
			{"invoke with credentials", "GET", "/function/hostname", "", authBasic, "", 200},
			{"healthz without credentials", "GET", "/healthz", "", authNone, "", 200},
		}
		for _, c := range cases {
			var hdr map[string]string
			if c.authHeader != "" {
				hdr = map[string]string{"Authorization": c.authHeader}
			}
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			res, err := d.request(c.method, c.path, body, hdr, c.mode)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Status != c.want {
				t.Errorf("%s: %s %s answered %s, want %d", c.name, c.method, c.path, res, c.want)
			}
			if c.want == http.StatusUnauthorized && strings.HasPrefix(c.path, "/system/") {
				if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="Restricted"` {
					t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, got, `Basic realm="Restricted"`)
				}
			}
		}

		// The rejected writes must have changed nothing.
		list, err := d.listFunctions("")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Name != "hostname" || list[0].Replicas != 1 {
			t.Errorf("after unauthenticated writes the list is %+v, want just hostname with 1 replica", list)
		}
	})

	t.Run("INVOKE_AUTH=false", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, withInvokeAuth(false))
		d.deploy(simpleSpec("hostname", img, nil, nil))
		d.waitReady("hostname", defaultNamespace, 1)

		for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer"}} {
			res, err := d.request(http.MethodGet, "/function/hostname.openfaas-fn", nil, hdr, authNone)
			if err != nil || res.Status != http.StatusOK {
				t.Errorf("invoke without credentials (headers %v): %s %v, want 200", hdr, res, err)
			}
		}
		res, err := d.request(http.MethodGet, "/system/functions", nil, nil, authNone)
		if err != nil || res.Status != http.StatusUnauthorized {
			t.Errorf("list without credentials: %s %v, want 401", res, err)
		}
	})
}

// TestDeployToFirstInvokeTiming measures (never asserts) how long a new
// function takes from the deploy's 202 to its first successful invocation,
// and to being reported ready.
func TestDeployToFirstInvokeTiming(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnHostname)

	measure := func(name string, done func() (bool, string)) (time.Duration, map[string]int) {
		t.Helper()
		d.deploy(simpleSpec(name, img, nil, nil))
		start := time.Now()
		before := map[string]int{}
		for i := 0; i < 20000 && time.Since(start) < readyTimeout; i++ {
			ok, what := done()
			if ok {
				return time.Since(start), before
			}
			before[what]++
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s never succeeded within %s; saw %v", name, readyTimeout, before)
		return 0, nil
	}

	took, before := measure("timed", func() (bool, string) {
		res, err := d.request(http.MethodGet, "/function/timed", nil, nil, authBasic)
		if err != nil {
			return false, "error"
		}
		return res.Status == http.StatusOK, fmt.Sprint(res.Status)
	})
	t.Logf("deploy→first-invoke: %s (answers before the first 200: %v)", took.Round(time.Millisecond), before)

	took, before = measure("timed-ready", func() (bool, string) {
		fs, code, err := d.getFunction("timed-ready", defaultNamespace)
		if err != nil {
			return false, fmt.Sprint(code)
		}
		return fs.AvailableReplicas >= 1, fmt.Sprintf("available=%d", fs.AvailableReplicas)
	})
	t.Logf("deploy→availableReplicas≥1: %s (polls before: %v)", took.Round(time.Millisecond), before)
}

// TestBadInputKeepsState sends invalid requests and checks that each gets a
// 400 and leaves desired state and the running replica untouched. It runs on
// both runtimes.
func TestBadInputKeepsState(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testBadInputKeepsState)
}

func testBadInputKeepsState(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnHostname)
	spec := simpleSpec("keep", img, map[string]string{"K": "v"}, nil)
	d.deploy(spec)
	d.waitReady("keep", defaultNamespace, 1)
	before, err := d.listFunctions("")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := d.replicaIDs("keep", defaultNamespace)
	if err != nil || len(ids) != 1 {
		t.Fatalf("running replicas: %v %v", ids, err)
	}

	cases := []struct {
		name, method, path, body string
	}{
		{"deploy without image", "POST", "/system/functions", `{"service":"noimage","labels":{},"annotations":{}}`},
		{"deploy with an uppercase name", "POST", "/system/functions", `{"service":"BadName","image":"` + img + `"}`},
		{"deploy with a dot in the name", "POST", "/system/functions", `{"service":"a.b","image":"` + img + `"}`},
		{"deploy without a name", "POST", "/system/functions", `{"service":"","image":"` + img + `"}`},
		{"deploy with bad JSON", "POST", "/system/functions", `{"service":`},
		{"deploy to an unknown namespace", "POST", "/system/functions", `{"service":"otherns","image":"` + img + `","namespace":"no-such-ns"}`},
		{"update without image", "PUT", "/system/functions", `{"service":"keep"}`},
		{"update with bad JSON", "PUT", "/system/functions", `{"service":"keep","image":`},
		{"list an unknown namespace", "GET", "/system/functions?namespace=no-such-ns", ""},
		{"scale with bad JSON", "POST", "/system/scale-function/keep", `{"serviceName":`},
		{"delete with bad JSON", "DELETE", "/system/functions", `{"functionName":`},
	}
	for _, c := range cases {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		res, err := d.request(c.method, c.path, body, map[string]string{"Content-Type": "application/json"}, authBasic)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if res.Status != http.StatusBadRequest {
			t.Errorf("%s: %s %s answered %s, want 400", c.name, c.method, c.path, res)
		}
		after, err := d.listFunctions("")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalizeList(after), normalizeList(before)) {
			t.Errorf("%s changed the function list:\nbefore %s\nafter  %s", c.name, jsonString(before), jsonString(after))
			before = after
		}
	}

	// Nothing was created or replaced in Docker (or the swarm) either.
	time.Sleep(time.Second) // let a reconcile round pass
	refs, err := d.instanceReplicas()
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].ID != ids[0] {
		t.Errorf("%s of the instance after bad input: %v, want only %s", replicaKind(rt), refs, short(ids[0]))
	}
	if fs, _, err := d.getFunction("keep", defaultNamespace); err != nil {
		t.Error(err)
	} else if diffs := specDiff(fs, spec); len(diffs) > 0 {
		t.Errorf("keep's spec changed: %v", diffs)
	}
}

// normalizeList drops the fields of a list that legitimately change over
// time and sorts it by name.
func normalizeList(in []types.FunctionStatus) []types.FunctionStatus {
	out := make([]types.FunctionStatus, len(in))
	for i, f := range in {
		f.AvailableReplicas = 0
		f.InvocationCount = 0
		f.Usage = nil
		out[i] = f
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

// jsonString renders v as compact JSON for messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// TestKillAndRestartKeepsDesiredState SIGKILLs the daemon right after a
// deploy's 202 and checks that the restarted daemon still knows the function
// and converges to exactly one ready replica; then a graceful restart adopts
// the running replica instead of replacing it. It runs on both runtimes (on
// a swarm the daemon's container is killed and started again).
func TestKillAndRestartKeepsDesiredState(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testKillAndRestartKeepsDesiredState)
}

func testKillAndRestartKeepsDesiredState(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	spec := simpleSpec("survivor", img, map[string]string{"KEPT": "yes"}, map[string]string{"team": "e2e"})

	d.deploy(spec)
	d.Kill()
	d.Restart()

	list, err := d.listFunctions("")
	if err != nil {
		t.Fatal(err)
	}
	fs, ok := findStatus(list, "survivor")
	if !ok {
		t.Fatalf("after SIGKILL and restart the list is %s, want survivor in it", jsonString(list))
	}
	if diffs := specDiff(fs, spec); len(diffs) > 0 {
		t.Errorf("spec after SIGKILL and restart: %v", diffs)
	}
	d.waitReady("survivor", defaultNamespace, 1)
	res := d.invoke(http.MethodGet, "/function/survivor", nil, nil)
	if r, err := decodeEcho(res); err != nil || r.Env["KEPT"] != "yes" {
		t.Errorf("invoke after restart: %s (%v)", res, err)
	}
	eventually(t, 60*time.Second, pollInterval, func() error {
		ids, err := d.liveReplicas("survivor", defaultNamespace)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("%d %s, want exactly 1", len(ids), replicaKind(rt))
		}
		return nil
	})

	t.Run("graceful restart adopts the running replica", func(t *testing.T) {
		ids, err := d.replicaIDs("survivor", defaultNamespace)
		if err != nil || len(ids) != 1 {
			t.Fatalf("running replicas: %v %v", ids, err)
		}
		startedAt, err := d.replicaStartedAt(ids[0])
		if err != nil {
			t.Fatal(err)
		}
		d.Restart()
		// The restarted daemon knows the function from its state before it
		// has looked at Docker: an invoke right away may wait, never 404.
		if res := d.invoke(http.MethodGet, "/function/survivor", nil, nil); res.Status == http.StatusNotFound {
			t.Errorf("invoke right after the restart: %s, want 200 (or 503 after waiting), never 404", res)
		}
		d.waitReady("survivor", defaultNamespace, 1)
		if res := d.invoke(http.MethodGet, "/function/survivor.openfaas-fn", nil, nil); res.Status != http.StatusOK {
			t.Errorf("invoke after graceful restart: %s", res)
		}
		after, err := d.replicaIDs("survivor", defaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, ids) {
			t.Errorf("running replicas changed across a daemon restart: %v -> %v", ids, after)
		} else if got, err := d.replicaStartedAt(ids[0]); err != nil {
			t.Error(err)
		} else if got != startedAt {
			t.Errorf("replica %s was restarted across a daemon restart (StartedAt %s -> %s)", short(ids[0]), startedAt, got)
		}
	})
}

// TestInvokeRightAfterDeployIsNotNotFound invokes functions the moment their
// deploy was acknowledged. After a 202 the function exists: a call may wait
// for its first replica (or get 503 after the daemon's bound), but must never
// get 404, which faas-cli and the gateway's scale-from-zero read as "no such
// function". One reconcile worker and a burst of deploys make sure some calls
// arrive before the controller has looked at their function. It runs on both
// runtimes.
func TestInvokeRightAfterDeployIsNotNotFound(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testInvokeRightAfterDeploy)
}

func testInvokeRightAfterDeploy(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt), withEnv("WORKERS", "1"))
	img := d.fnImage(fnHostname)
	names := []string{"burst-a", "burst-b", "burst-c", "burst-d"}
	for _, name := range names {
		d.deploy(simpleSpec(name, img, nil, nil))
	}
	var wg sync.WaitGroup
	results := make([]httpResult, len(names))
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.request(http.MethodGet, "/function/"+name, nil, nil, authBasic)
		}()
	}
	wg.Wait()
	for i, name := range names {
		switch {
		case errs[i] != nil:
			t.Errorf("%s: %v", name, errs[i])
		case results[i].Status == http.StatusNotFound:
			t.Errorf("%s: invoked right after its deploy's 202: %s, want 200 (or 503 after waiting), never 404", name, results[i])
		case results[i].Status != http.StatusOK:
			t.Logf("%s: %s (allowed: no replica became ready within the daemon's wait)", name, results[i])
		}
	}
}
