package controller

import (
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
)

// InFlight tells how many calls the proxy is serving on a replica;
// *proxy.Proxy implements it.
type InFlight interface {
	InFlight(container string) int64
	// ForgetReplica drops what is known about a removed container.
	ForgetReplica(container string)
}

var _ InFlight = (*proxy.Proxy)(nil)

// SetInFlight makes drained replicas wait for the calls they are still
// serving, up to Config.DrainTimeout, before they are stopped. Without it
// only the fixed DrainGrace protects in-flight calls, and a call longer than
// that is cut off by a rolling update or a scale down (502). Call it before
// Run.
func (c *Controller) SetInFlight(f InFlight) { c.inflight = f }

// drainBusy reports whether the drained container ct, whose grace period
// is over, must keep running because the proxy still serves calls on it.
func (c *Controller) drainBusy(ct docker.Container, since time.Time, log logrus.FieldLogger) bool {
	if c.inflight == nil || ct.State != docker.StateRunning {
		return false
	}
	n := c.inflight.InFlight(ct.ID)
	if n <= 0 {
		return false
	}
	clog := log.WithField("container", ct.Name).WithField("calls", n)
	if time.Since(since) < c.cfg.DrainGrace+c.cfg.DrainTimeout {
		clog.Debug("drained replica still serving calls; waiting for them before stopping it")
		return true
	}
	clog.Warn("drained replica still serving calls after the drain timeout; stopping it anyway")
	return false
}
