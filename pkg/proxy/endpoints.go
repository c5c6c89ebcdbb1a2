package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// route is what the proxy knows about one function.
type route struct {
	eps      []faas.Endpoint
	timeouts faas.Timeouts
}

// snapshot is an immutable view of all routes. A key that is present with
// no endpoints means "known function, nothing ready".
type snapshot struct {
	eps     map[string]route
	changed chan struct{} // closed when this snapshot is replaced
}

// Cache is the observed endpoint cache: written by the controller only, read
// lock-free by the proxy on every request. Writes copy the map and swap it.
type Cache struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[snapshot]
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	c := &Cache{}
	c.cur.Store(&snapshot{eps: map[string]route{}, changed: make(chan struct{})})
	return c
}

// Lookup returns the endpoints of key and whether the function is known.
// The returned slice must not be modified.
func (c *Cache) Lookup(key string) ([]faas.Endpoint, bool) {
	r, ok := c.cur.Load().eps[key]
	return r.eps, ok
}

// Timeouts returns the call timeouts of key.
func (c *Cache) Timeouts(key string) faas.Timeouts {
	return c.cur.Load().eps[key].timeouts
}

// lookupOrWait is Lookup plus a channel that is closed on the next change,
// for callers that wait for an endpoint to appear.
func (c *Cache) lookupOrWait(key string) ([]faas.Endpoint, bool, <-chan struct{}) {
	s := c.cur.Load()
	r, ok := s.eps[key]
	return r.eps, ok, s.changed
}

// Set publishes the ready endpoints of key (possibly none: a known function
// with nothing ready). eps is copied.
//
// Setting the endpoints a key already has changes nothing and wakes no
// waiter. That case is checked before copying the map because the
// controller republishes every function on each resync: copying first would
// make a resync quadratic in the number of functions.
func (c *Cache) Set(key string, eps []faas.Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.cur.Load().eps[key]
	if ok && equal(old.eps, eps) {
		return
	}
	cp := append([]faas.Endpoint(nil), eps...)
	c.publish(func(m map[string]route) { m[key] = route{eps: cp, timeouts: old.timeouts} })
}

// SetTimeouts publishes the call timeouts of key, making it known if it
// was not. Like Set, an unchanged value changes nothing.
func (c *Cache) SetTimeouts(key string, t faas.Timeouts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.cur.Load().eps[key]
	if ok && old.timeouts == t {
		return
	}
	c.publish(func(m map[string]route) { m[key] = route{eps: old.eps, timeouts: t} })
}

// Delete forgets key: requests to it get 404. Deleting an absent key
// changes nothing.
func (c *Cache) Delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur.Load().eps[key]; !ok {
		return
	}
	c.publish(func(m map[string]route) { delete(m, key) })
}

// Keys returns the known keys (for diagnostics).
func (c *Cache) Keys() []string {
	m := c.cur.Load().eps
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// publish applies mutate to a copy of the current map, swaps the copy in and
// wakes the waiters of the old snapshot. The caller holds c.mu.
func (c *Cache) publish(mutate func(map[string]route)) {
	old := c.cur.Load()
	next := make(map[string]route, len(old.eps)+1)
	for k, v := range old.eps {
		next[k] = v
	}
	mutate(next)
	c.cur.Store(&snapshot{eps: next, changed: make(chan struct{})})
	close(old.changed)
}

func equal(a, b []faas.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
