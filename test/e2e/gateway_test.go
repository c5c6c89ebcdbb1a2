package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// metricValue reads one sample from the daemon's /metrics, e.g.
// metricValue(t, d, `gateway_function_invocation_total{code="200",function_name="m.openfaas-fn"}`).
func metricValue(t *testing.T, d *daemon, series string) float64 {
	t.Helper()
	res, err := d.request(http.MethodGet, "/metrics", nil, nil, authNone)
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", res, err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindSubmatch(res.Body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("metric %s: %v", series, err)
	}
	return v
}

func TestMetricsInvocationCountAndUsage(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	image := fnImage(t, "fn-echo")
	labels, ann := map[string]string{}, map[string]string{}
	d.deploy(types.FunctionDeployment{Service: "m", Image: image, Labels: &labels, Annotations: &ann})
	d.waitReady("m", "openfaas-fn", 1)

	const calls = 7
	for i := 0; i < calls; i++ {
		if res := d.invoke(http.MethodPost, "/function/m", []byte("x"), nil); res.Status != http.StatusOK {
			t.Fatalf("invoke: %v", res)
		}
	}
	if res := d.invoke(http.MethodGet, "/function/m/status/503", nil, nil); res.Status != http.StatusServiceUnavailable {
		t.Fatalf("status passthrough: %v", res)
	}

	checks := []struct {
		series string
		want   float64
	}{
		{`gateway_function_invocation_total{code="200",function_name="m.openfaas-fn"}`, calls},
		{`gateway_function_invocation_total{code="503",function_name="m.openfaas-fn"}`, 1},
		{`function_invocations_total{code="200",function_name="m.openfaas-fn"}`, calls},
		{`function_errors_total{code="503",function_name="m.openfaas-fn"}`, 1},
		{`gateway_function_invocation_started{function_name="m.openfaas-fn"}`, calls + 1},
		{`gateway_functions_seconds_count{code="200",function_name="m.openfaas-fn"}`, calls},
		{`function_duration_seconds_count{function_name="m.openfaas-fn"}`, calls + 1},
		{`gateway_service_count{function_name="m.openfaas-fn"}`, 1},
	}
	for _, c := range checks {
		if got := metricValue(t, d, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
	if got := metricValue(t, d, `gateway_http_requests_total{code="200",method="POST",path="/function/{name}"}`); got < calls {
		t.Errorf("gateway_http_requests_total for invocations = %v, want ≥ %d", got, calls)
	}

	// invocationCount in the list comes from the same counters.
	list, err := d.listFunctions("")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if list[0].InvocationCount != calls+1 {
		t.Errorf("invocationCount = %v, want %d", list[0].InvocationCount, calls+1)
	}
	if got := (*list[0].Labels)["faas_function"]; got != "m" {
		t.Errorf("labels lack faas_function=m: %v", *list[0].Labels)
	}

	// describe asks for usage: memory of the running replica is reported.
	res := d.invoke(http.MethodGet, "/system/function/m?usage=1", nil, nil)
	if !bytes.Contains(res.Body, []byte(`"usage":{`)) || !bytes.Contains(res.Body, []byte(`"totalMemoryBytes":`)) {
		t.Fatalf("usage missing from describe: %s", res.Body)
	}
	res = d.invoke(http.MethodGet, "/system/function/m", nil, nil)
	if bytes.Contains(res.Body, []byte(`"usage"`)) {
		t.Errorf("usage reported without ?usage=1: %s", res.Body)
	}

	// /system/metrics is the same data behind auth.
	if res, _ := d.request(http.MethodGet, "/system/metrics", nil, nil, authNone); res.Status != http.StatusUnauthorized {
		t.Errorf("/system/metrics without credentials: %d", res.Status)
	}
	if res := d.invoke(http.MethodGet, "/system/metrics", nil, nil); res.Status != http.StatusOK || !bytes.Contains(res.Body, []byte("gateway_service_count")) {
		t.Errorf("/system/metrics: %d", res.Status)
	}
}

func TestExecTimeoutAndBodyLimit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("MAX_BODY_BYTES", "4096"))
	image := fnImage(t, "fn-echo")
	labels, ann := map[string]string{}, map[string]string{}
	d.deploy(types.FunctionDeployment{
		Service: "slow", Image: image, Labels: &labels, Annotations: &ann,
		EnvVars: map[string]string{"exec_timeout": "1s"},
	})
	d.waitReady("slow", "openfaas-fn", 1)

	start := time.Now()
	res := d.invoke(http.MethodGet, "/function/slow/sleep?d=5s", nil, nil)
	if res.Status != http.StatusGatewayTimeout {
		t.Fatalf("call beyond exec_timeout: %v, want 504", res)
	}
	t.Logf("exec_timeout=1s answered 504 after %s", time.Since(start).Round(time.Millisecond))
	if res := d.invoke(http.MethodGet, "/function/slow/sleep?d=100ms", nil, nil); res.Status != http.StatusOK {
		t.Fatalf("call within exec_timeout: %v", res)
	}

	if res := d.invoke(http.MethodPost, "/function/slow", bytes.Repeat([]byte("a"), 4096), nil); res.Status != http.StatusOK {
		t.Fatalf("body at the limit: %v", res)
	}
	if res := d.invoke(http.MethodPost, "/function/slow", bytes.Repeat([]byte("a"), 4097), nil); res.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the limit: %v, want 413", res)
	}
}

func TestContainerSettingsInDocker(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	image := fnImage(t, "fn-echo")
	labels, ann := map[string]string{}, map[string]string{}
	d.deploy(types.FunctionDeployment{
		Service: "limited", Image: image, Labels: &labels, Annotations: &ann,
		Limits:                 &types.FunctionResources{Memory: "5Mi", CPU: "250m"}, // below Docker's 6 MB minimum
		Requests:               &types.FunctionResources{Memory: "4Mi", CPU: "100m"},
		ReadOnlyRootFilesystem: true,
	})
	d.waitReady("limited", "openfaas-fn", 1)

	cs, err := d.fnContainers("limited", "openfaas-fn", false)
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers: %v %v", cs, err)
	}
	hc := d.inspect(cs[0].ID).HostConfig
	checks := []struct {
		name      string
		got, want any
	}{
		{"memory (Docker's minimum applied)", hc.Memory, int64(6 << 20)},
		{"memory reservation (minimum applied)", hc.MemoryReservation, int64(6 << 20)},
		{"nano cpus", hc.NanoCPUs, int64(250_000_000)},
		{"cpu shares", hc.CPUShares, int64(102)},
		{"read-only rootfs", hc.ReadonlyRootfs, true},
		{"tmpfs /tmp", hc.Tmpfs["/tmp"] != "", true},
		{"no-new-privileges", strings.Join(hc.SecurityOpt, ","), "no-new-privileges"},
		{"pids limit", hc.PidsLimit != nil && *hc.PidsLimit > 0, true},
		{"restart policy", string(hc.RestartPolicy.Name), "no"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The function still runs and can write /tmp on its read-only root.
	if res := d.invoke(http.MethodGet, "/function/limited", nil, nil); res.Status != http.StatusOK {
		t.Fatalf("invoke: %v", res)
	}
	// What was sent is echoed back, not what Docker applied.
	fs, _, err := d.getFunction("limited", "openfaas-fn")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Limits == nil || fs.Limits.Memory != "5Mi" || fs.Limits.CPU != "250m" {
		t.Errorf("limits echoed = %+v, want 5Mi/250m as sent", fs.Limits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := d.client().GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s/%s", info.Provider.Provider, info.Provider.Orchestration); got != "dockerfaasd/docker" {
		t.Errorf("provider = %s, want dockerfaasd/docker", got)
	}
}
