package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// RegisterInFlight registers gateway_function_invocation_inflight on reg:
// the calls to each function being served now (those still waiting for a
// ready replica included), as the OpenFaaS gateway reports them and as
// OpenFaaS Pro's capacity scaling reads them. The values are read from the
// proxy's load signals at scrape time, so the proxy's hot path pays for no
// gauge and the metric cannot disagree with what the autoscaler sees.
//
// Every function called since the daemon started is reported (load keeps
// their counters for the life of the process; the proxy only counts known
// functions, so the set cannot grow without bound); one deleted since
// reports 0.
func RegisterInFlight(reg prometheus.Registerer, loads load.Reader) error {
	return reg.Register(inFlight{loads})
}

// inFlight is the collector behind RegisterInFlight.
type inFlight struct{ loads load.Reader }

var inFlightDesc = prometheus.NewDesc("gateway_function_invocation_inflight",
	"Function invocations in flight (OpenFaaS gateway name).", []string{"function_name"}, nil)

func (c inFlight) Describe(ch chan<- *prometheus.Desc) { ch <- inFlightDesc }

func (c inFlight) Collect(ch chan<- prometheus.Metric) {
	for key, s := range c.loads.Functions() {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(max(s.InFlight, 0)), FunctionName(key))
	}
}
