package docker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Docker runtime's Prometheus collectors.
type metrics struct {
	dockerErrs *prometheus.CounterVec
	// leakedNets counts the networks of deleted functions that Docker
	// keeps for a miscounted endpoint (engine.ErrNetworkLeaked).
	leakedNets prometheus.Gauge
}

// dockerOps are the operations whose failures are counted, created at zero
// so every series is visible on the first scrape. TestMetricOpsAreKnown
// checks that every op used in this package is listed.
var dockerOps = []string{
	"attach", "connect", "copy", "create", "create-network", "disconnect", "image-inspect", "kill", "list",
	"list-networks", "pause", "pull", "remove", "remove-network", "start", "stop", "unpause", "volume",
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		dockerErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfaasd_docker_errors_total", Help: "Failed Docker API calls by operation.",
		}, []string{"op"}),
		leakedNets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockerfaasd_docker_leaked_networks",
			Help: "Networks of deleted functions Docker will not remove until it restarts: it counts an endpoint on them that no container holds.",
		}),
	}
	for _, op := range dockerOps {
		m.dockerErrs.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.dockerErrs, m.leakedNets)
	}
	return m
}

func (m *metrics) dockerError(op string) { m.dockerErrs.WithLabelValues(op).Inc() }
