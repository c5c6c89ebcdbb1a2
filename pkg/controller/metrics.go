package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Metrics are the controller's Prometheus collectors.
type Metrics struct {
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	drift      *prometheus.CounterVec
	panics     prometheus.Counter
	resyncKeys *prometheus.CounterVec
	reg        prometheus.Registerer
}

// NewMetrics creates the collectors and registers them on reg (nil = not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfaasd_reconcile_total", Help: "Reconciles by result (success, requeue, error, terminal).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dockerfaasd_reconcile_duration_seconds", Help: "Time spent in one reconcile.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfaasd_drift_corrections_total", Help: "Corrections of Docker state that drifted from desired state, by kind.",
		}, []string{"kind"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfaasd_reconcile_panics_total", Help: "Reconciles that panicked (a bug).",
		}),
		resyncKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfaasd_resync_keys_total",
			Help: "Function keys looked at by periodic resyncs: queued for a reconcile, or found unchanged in Docker and only probed.",
		}, []string{"outcome"}),
		reg: reg,
	}
	// A labelled series is exported only once it exists. Creating the known
	// ones at zero makes every family visible on the first scrape and lets
	// rate() and alerts see the step from 0 to 1, not a series appearing.
	for _, r := range reconcileResults {
		m.reconciles.WithLabelValues(r)
	}
	for _, k := range driftKinds {
		m.drift.WithLabelValues(k)
	}
	for _, o := range resyncOutcomes {
		m.resyncKeys.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.reconciles, m.duration, m.drift, m.panics, m.resyncKeys)
	}
	return m
}

// Label values created at zero by NewMetrics. TestMetricLabelsAreKnown
// checks that every value used in this package is listed here.
var (
	reconcileResults = []string{"success", "requeue", "error", "terminal"}
	resyncOutcomes   = []string{"queued", "unchanged"}
	driftKinds       = runtime.DriftKinds
)

func (m *Metrics) observe(result string, d time.Duration) {
	m.reconciles.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *Metrics) resync(queued, unchanged int) {
	m.resyncKeys.WithLabelValues("queued").Add(float64(queued))
	m.resyncKeys.WithLabelValues("unchanged").Add(float64(unchanged))
}

// queueDepth registers a gauge reading the queue length on scrape.
func (m *Metrics) queueDepth(f func() int) {
	if m.reg == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dockerfaasd_queue_depth", Help: "Function keys waiting to be reconciled.",
	}, func() float64 { return float64(f()) })
	_ = m.reg.Register(g) // a second Run on the same registry keeps the first gauge
}
