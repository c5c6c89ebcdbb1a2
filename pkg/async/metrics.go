package async

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// meters are the queue worker's metrics, with OpenFaaS Pro's names.
type meters struct {
	submitted *prometheus.CounterVec
	processed *prometheus.CounterVec
	retries   *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	callbacks *prometheus.CounterVec
}

var pendingDesc = prometheus.NewDesc("queue_worker_pending_messages",
	"Async calls queued or waiting to retry, by function.", []string{"function_name", "queue_name"}, nil)

// pending reports queue_worker_pending_messages from the queues at scrape
// time, so it can never drift from them.
type pending struct{ s *Service }

func (p pending) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (p pending) Collect(ch chan<- prometheus.Metric) {
	for _, d := range p.s.Depths() {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue,
			float64(d.Queued+d.Retrying), functionName(d.Function), "async")
	}
}

func newMetrics(reg prometheus.Registerer, s *Service) (*meters, error) {
	fn := []string{"function_name"}
	fnCode := []string{"function_name", "code"}
	m := &meters{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_worker_messages_submitted_total", Help: "Async calls accepted, by function.",
		}, fn),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_worker_messages_processed_total", Help: "Async calls finished, by function and last status (error: no response).",
		}, fnCode),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_worker_retries_total", Help: "Async call attempts that are retried, by function and status.",
		}, fnCode),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "queue_worker_function_invocation_inflight", Help: "Async call attempts running, by function.",
		}, fn),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_worker_callbacks_total", Help: "Callback deliveries, by result: delivered, retried, failed.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.submitted, m.processed, m.retries, m.inflight, m.callbacks, pending{s}} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
