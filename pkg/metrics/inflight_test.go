package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

func TestInFlightReadsLoadSignals(t *testing.T) {
	var sig load.Signals
	a1 := sig.Begin("openfaas-fn/a")
	sig.Begin("openfaas-fn/a")
	done := sig.Begin("dev/b")
	done.End()
	defer a1.End()

	reg := prometheus.NewRegistry()
	if err := RegisterInFlight(reg, &sig); err != nil {
		t.Fatal(err)
	}
	exp := `
# HELP gateway_function_invocation_inflight Function invocations in flight (OpenFaaS gateway name).
# TYPE gateway_function_invocation_inflight gauge
gateway_function_invocation_inflight{function_name="a.openfaas-fn"} 2
gateway_function_invocation_inflight{function_name="b.dev"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "gateway_function_invocation_inflight"); err != nil {
		t.Error(err)
	}
	if err := RegisterInFlight(reg, &sig); err == nil {
		t.Error("registering twice: want an error")
	}
}
