package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
)

// sdkCtx bounds one SDK call.
func sdkCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// nsNetworks lists the networks of this daemon labelled with the function
// and namespace.
func (d *daemon) nsNetworks(name, ns string) ([]network.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance),
		filters.Arg("label", labelFunction+"="+name),
		filters.Arg("label", labelNamespace+"="+ns),
	)})
}

// checkNamespaceObjects checks that the one container and the network of
// name in ns carry the namespace and are connected to each other only, and
// returns the container's ID.
func (d *daemon) checkNamespaceObjects(name, ns string) string {
	d.t.Helper()
	cs, err := d.fnContainers(name, ns, true)
	if err != nil {
		d.t.Fatal(err)
	}
	if len(cs) != 1 {
		d.t.Fatalf("%s.%s: %d containers, want 1", name, ns, len(cs))
	}
	c := d.inspect(cs[0].ID)
	if got := c.Config.Labels[labelNamespace]; got != ns {
		d.t.Errorf("%s.%s: container namespace label %q", name, ns, got)
	}
	wantNet := d.networkName(ns, name)
	if got := slices.Sorted(maps.Keys(c.NetworkSettings.Networks)); !reflect.DeepEqual(got, []string{wantNet}) {
		d.t.Errorf("%s.%s: container networks %v, want only %q", name, ns, got, wantNet)
	}
	nws, err := d.nsNetworks(name, ns)
	if err != nil {
		d.t.Fatal(err)
	}
	if len(nws) != 1 || nws[0].Name != wantNet {
		d.t.Errorf("%s.%s: networks %+v, want one named %q", name, ns, nws, wantNet)
	}
	return c.ID
}

// invokeHost calls /function/PATH and returns the replica's hostname.
func (d *daemon) invokeHost(path string) string {
	d.t.Helper()
	res := d.invoke(http.MethodGet, "/function/"+path, nil, nil)
	if res.Status != http.StatusOK {
		d.t.Fatalf("GET /function/%s: %s, want 200", path, res)
	}
	return string(res.Body)
}

// TestNamespaces walks faas-cli's namespace commands through the go-sdk
// and checks that a function in a namespace is its own function: its own
// containers and network, its own invocation address, and a namespace that
// holds it cannot be deleted.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnHostname)
	c := d.client()
	ctx, cancel := sdkCtx()
	defer cancel()

	names, err := c.GetNamespaces(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{defaultNamespace}) {
		t.Fatalf("namespaces of a new daemon = %v, %v; want exactly [%s]", names, err, defaultNamespace)
	}

	// Create: the SDK adds openfaas=1 to labels and annotations, as faas-cli
	// namespace create does [cap 43].
	code, err := c.CreateNamespace(ctx, types.FunctionNamespace{
		Name:        "dev",
		Labels:      map[string]string{"team": "x"},
		Annotations: map[string]string{"a": "b"},
	})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("CreateNamespace(dev) = %d, %v; want 201", code, err)
	}
	if code, err := c.CreateNamespace(ctx, types.FunctionNamespace{Name: "dev"}); code != http.StatusConflict || err == nil {
		t.Errorf("second CreateNamespace(dev) = %d, %v; want 409", code, err)
	}
	names, err = c.GetNamespaces(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{defaultNamespace, "dev"}) {
		t.Errorf("namespaces = %v, %v; want [%s dev]", names, err, defaultNamespace)
	}
	ns, err := c.GetNamespace(ctx, "dev")
	want := types.FunctionNamespace{
		Name:        "dev",
		Labels:      map[string]string{"team": "x", "openfaas": "1"},
		Annotations: map[string]string{"a": "b", "openfaas": "1"},
	}
	if err != nil || !reflect.DeepEqual(ns, want) {
		t.Errorf("GetNamespace(dev) = %+v, %v; want %+v", ns, err, want)
	}

	// Update replaces labels and annotations [cap 44].
	code, err = c.UpdateNamespace(ctx, types.FunctionNamespace{Name: "dev", Labels: map[string]string{"team": "y"}})
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("UpdateNamespace(dev) = %d, %v; want 202", code, err)
	}
	ns, err = c.GetNamespace(ctx, "dev")
	want = types.FunctionNamespace{
		Name:        "dev",
		Labels:      map[string]string{"team": "y", "openfaas": "1"},
		Annotations: map[string]string{"openfaas": "1"},
	}
	if err != nil || !reflect.DeepEqual(ns, want) {
		t.Errorf("GetNamespace(dev) after update = %+v, %v; want %+v", ns, err, want)
	}
	if code, err := c.UpdateNamespace(ctx, types.FunctionNamespace{Name: "qa"}); code != http.StatusNotFound || err == nil {
		t.Errorf("UpdateNamespace(qa) = %d, %v; want 404", code, err)
	}
	if _, err := c.GetNamespace(ctx, "qa"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("GetNamespace(qa) = %v, want not found", err)
	}

	// A function in dev, deployed the way faas-cli deploys.
	spec := types.FunctionDeployment{Service: "hello", Image: img, Namespace: "dev"}
	if put, post := d.deployLikeFaasCLI(spec); put != http.StatusNotFound || post != http.StatusAccepted {
		t.Fatalf("deploy hello into dev: PUT %d POST %d, want 404 then 202", put, post)
	}
	st := d.waitReady("hello", "dev", 1)
	if st.Namespace != "dev" {
		t.Errorf("hello in dev reports namespace %q", st.Namespace)
	}
	devHost := d.invokeHost("hello.dev")
	for _, p := range []string{"hello", "hello.openfaas-fn"} {
		if res := d.invoke(http.MethodGet, "/function/"+p, nil, nil); res.Status != http.StatusNotFound {
			t.Errorf("GET /function/%s with hello only in dev: %s, want 404", p, res)
		}
	}
	devID := d.checkNamespaceObjects("hello", "dev")
	if !strings.HasPrefix(devID, devHost) {
		t.Errorf("hello.dev answered from %q, want its container %s", devHost, devID[:12])
	}
	if list, err := c.GetFunctions(ctx, defaultNamespace); err != nil || len(list) != 0 {
		t.Errorf("functions in %s = %+v, %v; want none", defaultNamespace, list, err)
	}

	// The same name in openfaas-fn is another function.
	d.deploy(types.FunctionDeployment{Service: "hello", Image: img})
	d.waitReady("hello", defaultNamespace, 1)
	defID := d.checkNamespaceObjects("hello", defaultNamespace)
	if defID == devID {
		t.Fatal("hello in openfaas-fn and in dev share a container")
	}
	for _, p := range []string{"hello", "hello.openfaas-fn"} {
		if got := d.invokeHost(p); !strings.HasPrefix(defID, got) {
			t.Errorf("/function/%s answered from %q, want openfaas-fn's container %s", p, got, defID[:12])
		}
	}
	if got := d.invokeHost("hello.dev"); got != devHost {
		t.Errorf("hello.dev answered from %q after deploying hello in openfaas-fn, want %q", got, devHost)
	}

	// Deleting dev while hello lives in it is refused and changes nothing.
	err = c.DeleteNamespace(ctx, "dev")
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("DeleteNamespace(dev) with a function in it = %v, want 409 not empty", err)
	}
	if _, err := c.GetNamespace(ctx, "dev"); err != nil {
		t.Errorf("GetNamespace(dev) after the refused delete: %v", err)
	}
	if got := d.invokeHost("hello.dev"); got != devHost {
		t.Errorf("hello.dev after the refused delete answered from %q, want %q", got, devHost)
	}
	if ids, err := d.runningIDs("hello", "dev"); err != nil || !reflect.DeepEqual(ids, []string{devID}) {
		t.Errorf("hello.dev containers after the refused delete = %v, %v; want [%s]", ids, err, devID)
	}
	if err := c.DeleteNamespace(ctx, defaultNamespace); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("DeleteNamespace(%s) = %v, want 400", defaultNamespace, err)
	}

	// Namespaces are desired state: they survive a restart.
	d.Restart()
	if ns, err := c.GetNamespace(ctx, "dev"); err != nil || ns.Labels["team"] != "y" {
		t.Errorf("GetNamespace(dev) after a restart = %+v, %v", ns, err)
	}
	d.waitReady("hello", "dev", 1)

	// An unknown namespace is a 400 on deploy and list.
	if code, err := c.Deploy(ctx, types.FunctionDeployment{Service: "hello", Image: img, Namespace: "qa"}); code != http.StatusBadRequest {
		t.Errorf("deploy into qa = %d, %v; want 400", code, err)
	}
	if res, err := d.request(http.MethodGet, "/system/functions?namespace=qa", nil, nil, authBasic); err != nil ||
		res.Status != http.StatusBadRequest || string(res.Body) != "namespace qa is not valid\n" {
		t.Errorf("list qa = %v, %v; want 400 namespace qa is not valid", res, err)
	}

	// Remove the function, then the namespace.
	if err := c.DeleteFunction(ctx, "hello", "dev"); err != nil {
		t.Fatalf("DeleteFunction(hello, dev): %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		cs, err := d.fnContainers("hello", "dev", true)
		if err != nil {
			return err
		}
		nws, err := d.nsNetworks("hello", "dev")
		if err != nil {
			return err
		}
		if len(cs)+len(nws) > 0 {
			return fmt.Errorf("hello.dev: %d containers and %d networks left", len(cs), len(nws))
		}
		return nil
	})
	if err := c.DeleteNamespace(ctx, "dev"); err != nil {
		t.Fatalf("DeleteNamespace(dev) once empty: %v", err)
	}
	if _, err := c.GetNamespace(ctx, "dev"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("GetNamespace(dev) after delete = %v, want not found", err)
	}
	if err := c.DeleteNamespace(ctx, "dev"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("second DeleteNamespace(dev) = %v, want not found", err)
	}
	names, err = c.GetNamespaces(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{defaultNamespace}) {
		t.Errorf("namespaces after delete = %v, %v; want [%s]", names, err, defaultNamespace)
	}
	if code, _ := c.Deploy(ctx, spec); code != http.StatusBadRequest {
		t.Errorf("deploy into the deleted dev = %d, want 400", code)
	}
	// openfaas-fn's hello never noticed.
	if got := d.invokeHost("hello"); !strings.HasPrefix(defID, got) {
		t.Errorf("/function/hello answered from %q, want %s", got, defID[:12])
	}
}

// TestNamespaceNamesDoNotCollide deploys c into namespace a-b and b-c into
// namespace a: joined with '-' both would be "a-b-c", so the Docker names
// built from namespace and name must keep them apart.
func TestNamespaceNamesDoNotCollide(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnHostname)
	c := d.client()
	ctx, cancel := sdkCtx()
	defer cancel()
	for _, ns := range []string{"a-b", "a"} {
		if code, err := c.CreateNamespace(ctx, types.FunctionNamespace{Name: ns}); err != nil || code != http.StatusCreated {
			t.Fatalf("CreateNamespace(%s) = %d, %v", ns, code, err)
		}
	}
	fns := []struct{ name, ns string }{{"c", "a-b"}, {"b-c", "a"}}
	for _, f := range fns {
		d.deploy(types.FunctionDeployment{Service: f.name, Image: img, Namespace: f.ns})
	}
	ids := map[string]bool{}
	for _, f := range fns {
		d.waitReady(f.name, f.ns, 1)
		id := d.checkNamespaceObjects(f.name, f.ns)
		ids[id] = true
		if got := d.invokeHost(f.name + "." + f.ns); !strings.HasPrefix(id, got) {
			t.Errorf("%s.%s answered from %q, want its container %s", f.name, f.ns, got, id[:12])
		}
	}
	if len(ids) != len(fns) {
		t.Errorf("%d distinct containers for %d functions", len(ids), len(fns))
	}
}
