package swarm

import "github.com/prometheus/client_golang/prometheus"

// metrics are the swarm runtime's Prometheus collectors.
type metrics struct {
	errs *prometheus.CounterVec
}

// swarmOps are the operations whose failures are counted, created at zero.
var swarmOps = []string{
	"connect", "create-network", "create-secret", "create-service", "disconnect", "inspect-service",
	"list-networks", "list-nodes", "list-secrets", "list-services", "list-tasks", "remove-network",
	"remove-secret", "remove-service", "service-logs", "update-service",
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{errs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dockerfaasd_swarm_errors_total", Help: "Failed Docker swarm API calls by operation.",
	}, []string{"op"})}
	for _, op := range swarmOps {
		m.errs.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.errs)
	}
	return m
}

// count records a failed call (nil does nothing) and returns err.
func (m *metrics) count(op string, err error) error {
	if err != nil {
		m.errs.WithLabelValues(op).Inc()
	}
	return err
}
