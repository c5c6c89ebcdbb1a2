package proxy

import (
	"sync"
	"sync/atomic"
)

// inflight counts the calls each replica (by container ID) is serving, so
// the controller can stop a drained replica once its last call has finished
// rather than after a fixed grace period that cuts long calls off.
type inflight struct {
	m sync.Map // container ID → *atomic.Int64
}

func (f *inflight) counter(container string) *atomic.Int64 {
	if v, ok := f.m.Load(container); ok {
		return v.(*atomic.Int64)
	}
	v, _ := f.m.LoadOrStore(container, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// InFlight reports how many calls the replica running in container is
// serving now: from the moment the proxy picked it until the response was
// written completely (or failed).
func (p *Proxy) InFlight(container string) int64 {
	if v, ok := p.inflight.m.Load(container); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// ForgetReplica drops the counter of a container that is gone. Without it
// the counters would grow by one per replica ever called; a call that still
// ends afterwards only recreates a harmless counter.
func (p *Proxy) ForgetReplica(container string) { p.inflight.m.Delete(container) }

// countOn moves the call's in-flight count to replica i of its endpoints:
// on the first pick, and when a retry switches replicas. A call made
// without a Proxy (a transport test) counts nowhere.
func (c *call) countOn(i int) {
	c.uncount()
	if c.inflight == nil {
		return
	}
	c.counted = c.inflight.counter(c.eps[i].Container)
	c.counted.Add(1)
}

// uncount releases the call's in-flight count, if it holds one.
func (c *call) uncount() {
	if c.counted != nil {
		c.counted.Add(-1)
		c.counted = nil
	}
}
