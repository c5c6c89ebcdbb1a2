package docker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	rt "github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// poolCollector exports the pools of per-request isolation, read at each
// scrape, labelled like the gateway's metrics (function_name
// "name.namespace").
type poolCollector struct {
	stats func() []rt.PoolStats
}

var (
	poolSizeDesc     = poolDesc("dockerfaasd_pool_size", "Ready containers the pool of a function with per-request isolation keeps.")
	poolReadyDesc    = poolDesc("dockerfaasd_pool_ready", "Containers ready in the pool now.")
	poolStartingDesc = poolDesc("dockerfaasd_pool_starting", "Containers of the pool being started now.")
	poolWaitingDesc  = poolDesc("dockerfaasd_pool_waiting", "Calls waiting for a fresh container now.")
	poolServedDesc   = poolDesc("dockerfaasd_pool_served_total", "Calls handed a fresh container.")
	poolWaitedDesc   = poolDesc("dockerfaasd_pool_waited_total", "Calls that had to wait for a fresh container.")
	poolBusyDesc     = poolDesc("dockerfaasd_pool_busy_total", "Calls that got no fresh container within READY_WAIT (answered 429).")
	poolRefillsDesc  = poolDesc("dockerfaasd_pool_refills_total", "Containers the pool made ready.")
	poolRateDesc     = poolDesc("dockerfaasd_pool_refills_per_second", "Containers made ready per second over the last minute.")
	poolStartDesc    = poolDesc("dockerfaasd_pool_start_seconds", "Mean time from create to ready of the pool's recent containers.")
)

func poolDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"function_name"}, nil)
}

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolSizeDesc, poolReadyDesc, poolStartingDesc, poolWaitingDesc,
		poolServedDesc, poolWaitedDesc, poolBusyDesc, poolRefillsDesc, poolRateDesc, poolStartDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		ns, name, err := faas.SplitKey(s.Key)
		if err != nil {
			continue
		}
		fn := name + "." + ns
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, fn)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), fn)
		}
		gauge(poolSizeDesc, float64(s.Size))
		gauge(poolReadyDesc, float64(s.Ready))
		gauge(poolStartingDesc, float64(s.Starting))
		gauge(poolWaitingDesc, float64(s.Waiting))
		counter(poolServedDesc, s.Served)
		counter(poolWaitedDesc, s.Waited)
		counter(poolBusyDesc, s.Busy)
		counter(poolRefillsDesc, s.Refills)
		gauge(poolRateDesc, s.RefillsPerSecond)
		gauge(poolStartDesc, s.StartSeconds)
	}
}
