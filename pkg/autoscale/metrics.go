package autoscale

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockerfaasd/dockerfaasd/pkg/metrics"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
)

// metricsSet holds the autoscaler's collectors.
type metricsSet struct {
	decisions *prometheus.CounterVec
}

// knownDecisions are the direction/reason pairs the autoscaler can
// produce; each series exists at zero from the start, so a rate() over it
// is defined before the first decision.
var knownDecisions = [][2]string{
	{DirUp, string(scaling.RPS)}, {DirUp, string(scaling.Capacity)}, {DirUp, string(scaling.CPU)}, {DirUp, string(scaling.Legacy)},
	{DirDown, string(scaling.RPS)}, {DirDown, string(scaling.Capacity)}, {DirDown, string(scaling.CPU)}, {DirDown, string(scaling.Legacy)},
	{DirZero, causeIdle},
	{DirWake, causeCall},
}

// newMetrics creates the collectors and registers them on reg (none when
// reg is nil).
func newMetrics(reg prometheus.Registerer, a *Autoscaler) (*metricsSet, error) {
	m := &metricsSet{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfaasd_autoscaler_decisions_total",
			Help: "Replica changes the autoscaler wrote, by direction (up, down, zero, wake) and reason (the scaling type, idle, call).",
		}, []string{"direction", "reason"}),
	}
	for _, d := range knownDecisions {
		m.decisions.WithLabelValues(d[0], d[1])
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, targetLoad{a}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// targetLoad reports gateway_service_target_load, OpenFaaS Pro's gauge of
// the load one replica of a function should carry (its target label; for
// legacy functions the CE alert's threshold), read from the autoscaler's
// state at scrape time so a deleted function or a changed type leaves no
// stale series. Static functions and functions whose labels do not parse
// are not scaled by load and are not reported.
type targetLoad struct{ a *Autoscaler }

var targetLoadDesc = prometheus.NewDesc("gateway_service_target_load",
	"Target load per replica of a function, by scaling type (OpenFaaS gateway name).",
	[]string{"function_name", "scaling_type"}, nil)

func (t targetLoad) Describe(ch chan<- *prometheus.Desc) { ch <- targetLoadDesc }

func (t targetLoad) Collect(ch chan<- prometheus.Metric) {
	type row struct {
		key, typ string
		v        float64
	}
	t.a.mu.Lock()
	rows := make([]row, 0, len(t.a.fns))
	for key, st := range t.a.fns {
		if !st.parsed || st.policy.Static() {
			continue
		}
		v := st.policy.Target
		if st.policy.Type == scaling.Legacy {
			v = t.a.cfg.LegacyRPS
		}
		rows = append(rows, row{key, string(st.policy.Type), v})
	}
	t.a.mu.Unlock()
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(targetLoadDesc, prometheus.GaugeValue, r.v, metrics.FunctionName(r.key), r.typ)
	}
}
