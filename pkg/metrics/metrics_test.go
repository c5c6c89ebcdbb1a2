package metrics

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveFeedsAllNamesAndCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := New(reg, func() map[string]uint64 { return map[string]uint64{"openfaas-fn/hello": 3} })

	g.Started("openfaas-fn/hello")
	g.Observe("openfaas-fn/hello", 200, 10*time.Millisecond)
	g.Observe("openfaas-fn/hello", 502, time.Millisecond)
	g.Observe("", 404, time.Millisecond) // unknown function: not recorded per function

	tests := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"started", g.gwStarted.WithLabelValues("hello.openfaas-fn"), 1},
		{"invocations 200", g.invocations.WithLabelValues("hello.openfaas-fn", "200"), 1},
		{"invocations 502", g.invocations.WithLabelValues("hello.openfaas-fn", "502"), 1},
		{"gateway invocations 200", g.gwInvocations.WithLabelValues("hello.openfaas-fn", "200"), 1},
		{"errors 502", g.errors.WithLabelValues("hello.openfaas-fn", "502"), 1},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := testutil.CollectAndCount(g.errors); got != 1 {
		t.Errorf("function_errors_total series = %d, want only the 5xx one", got)
	}
	if got := g.Count("openfaas-fn/hello"); got != 2 {
		t.Errorf("Count = %v, want 2", got)
	}
	if got := g.Count("openfaas-fn/other"); got != 0 {
		t.Errorf("Count(unknown) = %v", got)
	}
	exp := `
# HELP gateway_service_count Desired replicas per function (OpenFaaS gateway name).
# TYPE gateway_service_count gauge
gateway_service_count{function_name="hello.openfaas-fn"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "gateway_service_count"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"function_duration_seconds", "gateway_functions_seconds"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s not exported: %d %v", name, n, err)
		}
	}
}

func TestInstrumentUsesRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := New(reg, nil)
	h := g.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/system/functions" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	for _, p := range []string{"/function/a", "/function/b.dev/x", "/system/functions", "/random/thing"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	tests := []struct {
		code, path string
		want       float64
	}{
		{"200", "/function/{name}", 2},
		{"401", "/system/functions", 1},
		{"200", "other", 1},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(g.httpRequests.WithLabelValues(tt.code, "GET", tt.path)); got != tt.want {
			t.Errorf("requests{%s,%s} = %v, want %v", tt.code, tt.path, got, tt.want)
		}
	}
}

func TestFunctionName(t *testing.T) {
	for key, want := range map[string]string{"openfaas-fn/hello": "hello.openfaas-fn", "dev/a": "a.dev", "odd": "odd"} {
		if got := FunctionName(key); got != want {
			t.Errorf("FunctionName(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestObserveConcurrentCodes: the per-function children are made once
// per code however many calls race to make them, and no count is lost.
func TestObserveConcurrentCodes(t *testing.T) {
	g := New(prometheus.NewRegistry(), nil)
	codes := []int{200, 404, 500, 502, 200, 200}
	const per = 200
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				g.Observe("openfaas-fn/busy", codes[(i+j)%len(codes)], time.Millisecond)
			}
		}()
	}
	wg.Wait()
	want := map[string]float64{}
	for i := range 8 {
		for j := range per {
			want[strconv.Itoa(codes[(i+j)%len(codes)])]++
		}
	}
	for code, n := range want {
		if got := testutil.ToFloat64(g.invocations.WithLabelValues("busy.openfaas-fn", code)); got != n {
			t.Errorf("invocations{%s} = %v, want %v", code, got, n)
		}
	}
	if got := testutil.CollectAndCount(g.invocations); got != len(want) {
		t.Errorf("%d invocation series, want %d", got, len(want))
	}
	if got := testutil.CollectAndCount(g.errors); got != 2 {
		t.Errorf("%d error series, want 2 (500 and 502)", got)
	}
	if got := g.Count("openfaas-fn/busy"); got != 8*per {
		t.Errorf("Count = %v, want %d", got, 8*per)
	}
}
