package runtime

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// CommonConfig points at the settings every runtime's Config has, so that
// SetDefaults gives them the same defaults in each.
type CommonConfig struct {
	// Instance defaults to DefaultInstance, NetworkPrefix to the instance.
	Instance, NetworkPrefix *string
	// DrainTimeout defaults to faas.DefaultTimeout (the exec timeout),
	// ProbeTimeout to 1s, ProbeInterval to 250ms, MaxRequeue to 30s,
	// LogPoll to 1s.
	DrainTimeout, ProbeTimeout, ProbeInterval, MaxRequeue, LogPoll *time.Duration
	// Prober defaults to an HTTPProber bounded by ProbeTimeout.
	Prober *Prober
	// Log defaults to logrus' standard logger.
	Log *logrus.FieldLogger
}

// SetDefaults replaces every zero (or negative) setting with its default.
func (c CommonConfig) SetDefaults() {
	if *c.Instance == "" {
		*c.Instance = DefaultInstance
	}
	if *c.NetworkPrefix == "" {
		*c.NetworkPrefix = *c.Instance
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{c.DrainTimeout, faas.DefaultTimeout},
		{c.ProbeTimeout, time.Second},
		{c.ProbeInterval, 250 * time.Millisecond},
		{c.MaxRequeue, 30 * time.Second},
		{c.LogPoll, time.Second},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if *c.Prober == nil {
		*c.Prober = NewHTTPProber(*c.ProbeTimeout)
	}
	if *c.Log == nil {
		*c.Log = logrus.StandardLogger()
	}
}
