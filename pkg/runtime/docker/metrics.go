package docker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Docker runtime's Prometheus collectors.
type metrics struct {
	dockerErrs *prometheus.CounterVec
}

// dockerOps are the operations whose failures are counted, created at zero
// so every series is visible on the first scrape. TestMetricOpsAreKnown
// checks that every op used in this package is listed.
var dockerOps = []string{
	"attach", "connect", "copy", "create", "create-network", "disconnect", "image-inspect", "kill", "list",
	"list-networks", "pause", "pull", "remove", "remove-network", "start", "stop", "unpause", "volume",
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{dockerErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dockerfaasd_docker_errors_total", Help: "Failed Docker API calls by operation.",
	}, []string{"op"})}
	for _, op := range dockerOps {
		m.dockerErrs.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.dockerErrs)
	}
	return m
}

func (m *metrics) dockerError(op string) { m.dockerErrs.WithLabelValues(op).Inc() }
