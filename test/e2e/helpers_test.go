package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/go-sdk/stack"
	yaml "gopkg.in/yaml.v3"
)

// Default bounds for polling.
const (
	readyTimeout = 90 * time.Second
	pollInterval = 200 * time.Millisecond
)

// eventually calls fn every interval until it returns nil, and fails the
// test with fn's last error when timeout passes first. Both the time and the
// number of attempts are bounded.
func eventually(t *testing.T, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	if err := poll(timeout, interval, fn); err != nil {
		t.Fatal(err)
	}
}

// poll is eventually without the test: it returns nil once fn succeeds, or an
// error wrapping fn's last error after timeout.
func poll(timeout, interval time.Duration, fn func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	maxAttempts := int(timeout/interval) + 2
	var last error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if last = fn(); last == nil {
			return nil
		}
		if !time.Now().Add(interval).Before(deadline) {
			break
		}
		time.Sleep(interval)
	}
	return fmt.Errorf("condition not met after %s: last error: %w", time.Since(start).Round(time.Millisecond), last)
}

// httpResult is a fully read HTTP response.
type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// String summarises the result for failure messages.
func (r httpResult) String() string {
	body := string(r.Body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%d %q", r.Status, body)
}

// authMode says which Authorization header a request carries.
type authMode int

const (
	authBasic authMode = iota // the daemon's credentials
	authNone                  // no Authorization header
)

// request sends one HTTP request to the daemon (redirects are not followed)
// and returns the whole response. headers may set Authorization itself,
// which then wins over mode.
func (d *daemon) request(method, path string, body []byte, headers map[string]string, mode authMode) (httpResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.baseURL+path, rd)
	if err != nil {
		return httpResult{}, err
	}
	if mode == authBasic {
		req.SetBasicAuth(d.user, d.password)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := d.http.Do(req)
	if err != nil {
		return httpResult{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return httpResult{}, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// invoke sends an authenticated request to the daemon (typically under
// /function/) and fails the test on a transport error.
func (d *daemon) invoke(method, path string, body []byte, headers map[string]string) httpResult {
	d.t.Helper()
	res, err := d.request(method, path, body, headers, authBasic)
	if err != nil {
		d.t.Fatal(err)
	}
	return res
}

// echoReply is fn-echo's answer.
type echoReply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query"`
	Body     string            `json:"body"`
	Env      map[string]string `json:"env"`
	Headers  map[string]string `json:"headers"`
	Hostname string            `json:"hostname"`
}

// decodeEcho parses fn-echo's JSON answer.
func decodeEcho(res httpResult) (echoReply, error) {
	var r echoReply
	if err := json.Unmarshal(res.Body, &r); err != nil {
		return r, fmt.Errorf("not an fn-echo reply (%s): %w", res, err)
	}
	return r, nil
}

// getFunction reads GET /system/function/NAME?namespace=NS with plain HTTP so
// that a 404 is told apart from other errors. It returns the status code and,
// on 200, the decoded body.
func (d *daemon) getFunction(name, ns string) (types.FunctionStatus, int, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	res, err := d.request(http.MethodGet, "/system/function/"+name+"?"+q.Encode(), nil, nil, authBasic)
	if err != nil {
		return types.FunctionStatus{}, 0, err
	}
	if res.Status != http.StatusOK {
		return types.FunctionStatus{}, res.Status, fmt.Errorf("GET /system/function/%s: %s", name, res)
	}
	var fs types.FunctionStatus
	if err := json.Unmarshal(res.Body, &fs); err != nil {
		return fs, res.Status, fmt.Errorf("GET /system/function/%s: decoding %s: %w", name, res, err)
	}
	return fs, res.Status, nil
}

// listFunctions reads GET /system/functions[?namespace=NS] with plain HTTP.
func (d *daemon) listFunctions(ns string) ([]types.FunctionStatus, error) {
	path := "/system/functions"
	if ns != "" {
		path += "?namespace=" + url.QueryEscape(ns)
	}
	res, err := d.request(http.MethodGet, path, nil, nil, authBasic)
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, res)
	}
	var out []types.FunctionStatus
	if err := json.Unmarshal(res.Body, &out); err != nil {
		return nil, fmt.Errorf("GET %s: decoding %s: %w", path, res, err)
	}
	return out, nil
}

// waitReady polls GET /system/function/NAME until availableReplicas == n and
// returns the last status read.
func (d *daemon) waitReady(name, ns string, n uint64) types.FunctionStatus {
	d.t.Helper()
	var fs types.FunctionStatus
	eventually(d.t, readyTimeout, pollInterval, func() error {
		got, _, err := d.getFunction(name, ns)
		if err != nil {
			return err
		}
		fs = got
		if got.AvailableReplicas != n {
			return fmt.Errorf("%s: availableReplicas=%d replicas=%d, want availableReplicas=%d",
				name, got.AvailableReplicas, got.Replicas, n)
		}
		return nil
	})
	return fs
}

// deployLikeFaasCLI deploys spec the way `faas-cli deploy` does: PUT first,
// and POST with the same body only when the PUT answers 404. It returns the
// status codes of the PUT and, when sent, the POST (0 otherwise).
func (d *daemon) deployLikeFaasCLI(spec types.FunctionDeployment) (putCode, postCode int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := d.client()
	putCode, err := c.Update(ctx, spec)
	if putCode != http.StatusNotFound {
		if err != nil {
			d.t.Fatalf("PUT /system/functions %s: %d %v", spec.Service, putCode, err)
		}
		return putCode, 0
	}
	postCode, err = c.Deploy(ctx, spec)
	if err != nil {
		d.t.Fatalf("POST /system/functions %s after PUT 404: %d %v", spec.Service, postCode, err)
	}
	return putCode, postCode
}

// deploy POSTs spec with the SDK and requires 202.
func (d *daemon) deploy(spec types.FunctionDeployment) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := d.client().Deploy(ctx, spec)
	if err != nil || code != http.StatusAccepted {
		d.t.Fatalf("deploy %s: got %d %v, want 202", spec.Service, code, err)
	}
}

// fnContainers lists the containers (all states when all is true) carrying
// this daemon's instance label and the function/namespace labels.
func (d *daemon) fnContainers(name, ns string, all bool) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.docker.ContainerList(ctx, container.ListOptions{All: all, Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance),
		filters.Arg("label", labelFunction+"="+name),
		filters.Arg("label", labelNamespace+"="+ns),
	)})
}

// fnNetworks lists the networks carrying this daemon's instance label and the
// function label.
func (d *daemon) fnNetworks(name string) ([]network.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance),
		filters.Arg("label", labelFunction+"="+name),
	)})
}

// inspect returns the full inspection of a container.
func (d *daemon) inspect(id string) container.InspectResponse {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.docker.ContainerInspect(ctx, id)
	if err != nil {
		d.t.Fatalf("inspect %s: %v", id, err)
	}
	return c
}

// runningIDs returns the sorted IDs of the function's running containers.
func (d *daemon) runningIDs(name, ns string) ([]string, error) {
	cs, err := d.fnContainers(name, ns, false)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// writeFile writes content to path, failing the test on error.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deploymentFromStack converts one stack.yml function into the
// FunctionDeployment faas-cli would send for it (CONTRACT.md §1.3): labels
// and annotations always non-nil, envProcess from fprocess, envVars from
// environment overridden by the environment_file files (read relative to
// stackDir, later ones winning), constraints/secrets/limits/requests only when
// given, and empty collections left out.
func deploymentFromStack(stackDir, name string, f stack.Function) (types.FunctionDeployment, error) {
	labels := map[string]string{}
	if f.Labels != nil {
		maps.Copy(labels, *f.Labels)
	}
	annotations := map[string]string{}
	if f.Annotations != nil {
		maps.Copy(annotations, *f.Annotations)
	}
	spec := types.FunctionDeployment{
		Service:                name,
		Image:                  f.Image,
		Namespace:              f.Namespace,
		EnvProcess:             f.FProcess,
		Labels:                 &labels,
		Annotations:            &annotations,
		ReadOnlyRootFilesystem: f.ReadOnlyRootFilesystem,
	}
	env := maps.Clone(f.Environment)
	for _, file := range f.EnvironmentFile {
		b, err := os.ReadFile(filepath.Join(stackDir, file))
		if err != nil {
			return spec, fmt.Errorf("environment_file of %s: %w", name, err)
		}
		var ef stack.EnvironmentFile
		if err := yaml.Unmarshal(b, &ef); err != nil {
			return spec, fmt.Errorf("environment_file %s of %s: %w", file, name, err)
		}
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, ef.Environment)
	}
	if len(env) > 0 {
		spec.EnvVars = env
	}
	if len(f.Secrets) > 0 {
		spec.Secrets = slices.Clone(f.Secrets)
	}
	if f.Constraints != nil && len(*f.Constraints) > 0 {
		spec.Constraints = slices.Clone(*f.Constraints)
	}
	spec.Limits = resources(f.Limits)
	spec.Requests = resources(f.Requests)
	return spec, nil
}

// resources converts stack resources, nil when nothing is set.
func resources(r *stack.FunctionResources) *types.FunctionResources {
	if r == nil || (r.Memory == "" && r.CPU == "") {
		return nil
	}
	return &types.FunctionResources{Memory: r.Memory, CPU: r.CPU}
}

// allowedExtraLabels are labels a provider may add to what was deployed
// (CONTRACT.md §9: faas_function for the certifier), with a function of the
// function name giving the required value.
var allowedExtraLabels = map[string]func(name string) string{
	"faas_function": func(name string) string { return name },
}

// specDiff compares what the API reports for a function with what was
// deployed and returns the differences (empty when it echoes back exactly).
// nil and empty collections are treated as equal, as JSON omitempty makes
// them indistinguishable on the wire.
func specDiff(got types.FunctionStatus, want types.FunctionDeployment) []string {
	var diffs []string
	add := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s: got %#v, want %#v", field, g, w))
	}
	wantNS := want.Namespace
	if wantNS == "" {
		wantNS = defaultNamespace
	}
	if got.Name != want.Service {
		add("name", got.Name, want.Service)
	}
	if got.Image != want.Image {
		add("image", got.Image, want.Image)
	}
	if got.Namespace != wantNS {
		add("namespace", got.Namespace, wantNS)
	}
	if got.EnvProcess != want.EnvProcess {
		add("envProcess", got.EnvProcess, want.EnvProcess)
	}
	if !mapsEqual(got.EnvVars, want.EnvVars) {
		add("envVars", got.EnvVars, want.EnvVars)
	}
	if !slicesEqual(got.Constraints, want.Constraints) {
		add("constraints", got.Constraints, want.Constraints)
	}
	if !slicesEqual(got.Secrets, want.Secrets) {
		add("secrets", got.Secrets, want.Secrets)
	}
	gotLabels, wantLabels := deref(got.Labels), deref(want.Labels)
	for k, v := range gotLabels {
		if w, ok := wantLabels[k]; ok {
			if v != w {
				add("labels["+k+"]", v, w)
			}
			continue
		}
		if valueFor, ok := allowedExtraLabels[k]; ok && v == valueFor(want.Service) {
			continue
		}
		add("labels["+k+"] (not deployed)", v, nil)
	}
	for k, w := range wantLabels {
		if _, ok := gotLabels[k]; !ok {
			add("labels["+k+"]", nil, w)
		}
	}
	if !mapsEqual(deref(got.Annotations), deref(want.Annotations)) {
		add("annotations", deref(got.Annotations), deref(want.Annotations))
	}
	if !reflect.DeepEqual(got.Limits, want.Limits) {
		add("limits", got.Limits, want.Limits)
	}
	if !reflect.DeepEqual(got.Requests, want.Requests) {
		add("requests", got.Requests, want.Requests)
	}
	if got.ReadOnlyRootFilesystem != want.ReadOnlyRootFilesystem {
		add("readOnlyRootFilesystem", got.ReadOnlyRootFilesystem, want.ReadOnlyRootFilesystem)
	}
	return diffs
}

// deref returns the map behind p, or nil.
func deref(p *map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	return *p
}

// mapsEqual is maps.Equal with nil and empty equal.
func mapsEqual(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// slicesEqual is slices.Equal with nil and empty equal.
func slicesEqual(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// findStatus returns the list item called name.
func findStatus(list []types.FunctionStatus, name string) (types.FunctionStatus, bool) {
	for _, f := range list {
		if f.Name == name {
			return f, true
		}
	}
	return types.FunctionStatus{}, false
}

// envList turns a container's KEY=VALUE list into a map.
func envList(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// short returns the 12-character short form of a container ID.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// containerListAll returns list options for containers in any state carrying
// all of the given label filters ("key=value").
func containerListAll(labels ...string) container.ListOptions {
	f := filters.NewArgs()
	for _, l := range labels {
		f.Add("label", l)
	}
	return container.ListOptions{All: true, Filters: f}
}

// networksLeft lists the networks of function name still there, leaving
// out each that Docker will not remove for an endpoint it miscounted
// (Engine 20.10; docs/operations.md, "A deleted function's network that
// Docker will not remove"): one with no container attached that the
// daemon warned about by name and counts in
// dockerfaasd_docker_leaked_networks. Those are logged, not hidden.
func (d *daemon) networksLeft(t *testing.T, name string) ([]network.Summary, error) {
	t.Helper()
	nets, err := d.fnNetworks(name)
	if err != nil {
		return nil, err
	}
	var left, leaked []network.Summary
	for _, n := range nets {
		if d.leakedByEngine(n) {
			leaked = append(leaked, n)
		} else {
			left = append(left, n)
		}
	}
	if len(leaked) == 0 {
		return left, nil
	}
	if got := metricValue(t, d, "dockerfaasd_docker_leaked_networks"); got < float64(len(leaked)) {
		return nets, fmt.Errorf("%d networks warned about as leaked by Docker, but dockerfaasd_docker_leaked_networks is %v", len(leaked), got)
	}
	// The delete is done with all the same: no reconcile keeps failing.
	v, err := d.reconcileStatus()
	if err != nil {
		return nets, err
	}
	if f, ok := v.function(name); ok {
		return nets, fmt.Errorf("deleted %s is still in /debug/reconcile: %s %s", name, f.LastResult, f.LastError)
	}
	for _, n := range leaked {
		t.Logf("network %s is left: Docker counts an endpoint on it that no container holds (Engine 20.10), and the daemon reported it", n.Name)
	}
	return left, nil
}

// leakedByEngine tells whether network n has no container attached and the
// daemon's log warns that Docker will not remove it.
func (d *daemon) leakedByEngine(n network.Summary) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, err := d.docker.NetworkInspect(ctx, n.ID, network.InspectOptions{})
	if err != nil || len(in.Containers) > 0 {
		return false
	}
	log, err := os.ReadFile(d.logPath)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(log), "\n") {
		// network= is the last of logrus's sorted fields: the name ends the line.
		if strings.Contains(line, "Docker will not remove the network of a deleted function") && strings.HasSuffix(line, " network="+n.Name) {
			return true
		}
	}
	return false
}
