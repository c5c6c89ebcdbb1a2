// Package load carries the proxy's live view of the load on functions and
// their replicas (calls in flight, requests started) to the parts of the
// daemon that act on it: draining, which stops a replica only once its calls
// have finished, and an autoscaler, which sizes a function by its demand.
//
// The proxy is the only writer and everyone else only reads, so readers need
// no back-channel into the proxy. Nothing has to be told when a replica or a
// function goes away either: a replica's counter disappears on its own once
// no call holds it (see Signals).
package load

import (
	"math"
	"sync"
	"sync/atomic"
)

// Snapshot is the load on one function at one moment. Its two fields are
// read one after the other, not as one atomic pair.
type Snapshot struct {
	// InFlight is how many calls to the function are being served now,
	// counting calls that still wait for a ready replica: those are demand
	// an autoscaler must see, above all when the function is scaled to zero.
	InFlight int64
	// Requests is how many calls to the function have started since the
	// daemon did, each counted once however many replicas it tried. It only
	// grows, so a poller derives a rate from the difference of two reads.
	Requests uint64
}

// Reader is the read side of Signals. Consumers take a Reader rather than
// *Signals so that they cannot publish by mistake, and so that tests can
// feed them made-up load.
type Reader interface {
	// InFlight is how many calls the replica is serving now; 0 for a
	// replica that is unknown or gone.
	InFlight(replica string) int64
	// Function is the load on the function key ("namespace/name"); the
	// zero Snapshot for a function never called.
	Function(key string) Snapshot
	// Functions is the load on every function called since the daemon
	// started, by key, for a poller that looks at all of them at once.
	Functions() map[string]Snapshot
}

var _ Reader = (*Signals)(nil)

// Signals is where the proxy publishes load and readers find it. The zero
// value is ready to use. A nil *Signals is valid too: it counts nothing and
// reads as zero, so a proxy nobody reads from pays for no counting.
//
// A call holds its counters through a Call, so finishing it touches no map.
// Replica counters are removed without anybody asking: a counter back at zero
// stays in place (the next call to that replica reuses it, which keeps the
// hot path free of allocations and locks) until a later insertion finds the
// map has doubled since the last sweep and removes every counter at zero.
// The map therefore holds at most about max(64, twice the number of replicas
// busy at the last sweep) entries, however many replicas come and go.
//
// Function entries are kept for the life of the process: functions are few,
// the proxy only counts functions its resolver knows (so random names cannot
// grow the map), and dropping an entry would restart its Requests count,
// which a rate computed by a poller would read as a counter reset.
type Signals struct {
	functions sync.Map // function key → *fnCounts
	replicas  sync.Map // replica ID → *replicaCount

	live     atomic.Int64 // entries in replicas
	limit    atomic.Int64 // size of replicas beyond which an insertion sweeps
	sweeping sync.Mutex   // held by the one insertion that sweeps
}

// minSweep is the size of the replica map below which it is never swept:
// a sweep walks the whole map, which is not worth it for a few entries.
const minSweep = 64

// retired marks a replica counter that a sweep took out of the map. It is
// so far below zero that increments on a stale pointer can never bring it
// back to a valid count; see acquire.
const retired = math.MinInt64 / 2

// fnCounts holds the counters of one function. Padded to a cache line so
// that calls to different functions don't contend through false sharing.
type fnCounts struct {
	inFlight atomic.Int64
	requests atomic.Uint64
	_        [48]byte
}

// replicaCount holds the in-flight count of one replica, or retired. Padded
// to a cache line for the same reason as fnCounts.
type replicaCount struct {
	n atomic.Int64
	_ [56]byte
}

// Call is one invocation's hold on the counters, from Begin to End. It
// belongs to the goroutine serving the call and is not safe for concurrent
// use. The zero Call counts nowhere.
type Call struct {
	s   *Signals
	fn  *fnCounts
	rep *replicaCount
}

// Begin counts a call to the function key: one more request, and one more
// call in flight until End. Call it once per call, however many replicas
// the call goes on to try.
func (s *Signals) Begin(key string) Call {
	if s == nil {
		return Call{}
	}
	v, ok := s.functions.Load(key)
	if !ok {
		v, _ = s.functions.LoadOrStore(key, new(fnCounts))
	}
	f := v.(*fnCounts)
	f.requests.Add(1)
	f.inFlight.Add(1)
	return Call{s: s, fn: f}
}

// On counts the call on replica from now on, instead of on the replica it
// was counted on before, if any. The proxy calls it when it picks a replica
// and again when a retry moves the call to another one, so that draining
// waits for the replica actually serving the call.
func (c *Call) On(replica string) {
	if c.s == nil {
		return
	}
	c.releaseReplica()
	c.rep = c.s.acquire(replica)
}

// End releases everything the call holds. Calling it again does nothing.
func (c *Call) End() {
	c.releaseReplica()
	if c.fn != nil {
		c.fn.inFlight.Add(-1)
		c.fn = nil
	}
}

func (c *Call) releaseReplica() {
	if c.rep != nil {
		c.rep.n.Add(-1)
		c.rep = nil
	}
}

// acquire adds one to the count of replica id and returns its counter. The
// common case is a lock-free lookup and one atomic add, as cheap as the
// never-removed counters this package replaced.
//
// A sweep retires a counter only while its count is zero, by swapping in
// retired, so a counter that a call holds is never retired. A call that
// looked the counter up before the sweep and adds to it afterwards sees a
// negative count: the counter is dead, so it makes sure the dead one is out
// of the map and starts over with a fresh one.
func (s *Signals) acquire(id string) *replicaCount {
	inserted := false
	for {
		v, ok := s.replicas.Load(id)
		if !ok {
			if v, ok = s.replicas.LoadOrStore(id, new(replicaCount)); !ok {
				s.live.Add(1)
				inserted = true
			}
		}
		r := v.(*replicaCount)
		if r.n.Add(1) > 0 {
			if inserted {
				s.maybeSweep()
			}
			return r
		}
		if s.replicas.CompareAndDelete(id, r) {
			s.live.Add(-1)
		}
	}
}

// maybeSweep sweeps the replica map when it has doubled since the last
// sweep. It runs after an insertion, so its cost (a walk of the map) is
// spread over at least as many insertions as the map holds entries.
// Concurrent insertions leave it to whichever got there first.
func (s *Signals) maybeSweep() {
	if s.live.Load() <= max(s.limit.Load(), minSweep) || !s.sweeping.TryLock() {
		return
	}
	defer s.sweeping.Unlock()
	s.sweep()
}

// sweep removes every replica counter at zero.
func (s *Signals) sweep() {
	s.replicas.Range(func(k, v any) bool {
		r := v.(*replicaCount)
		if r.n.CompareAndSwap(0, retired) && s.replicas.CompareAndDelete(k, r) {
			s.live.Add(-1)
		}
		return true
	})
	s.limit.Store(2 * s.live.Load())
}

// InFlight implements Reader: the calls the replica is serving now, from
// the moment the proxy picked it until the response was written completely
// or failed.
func (s *Signals) InFlight(replica string) int64 {
	if s == nil {
		return 0
	}
	if v, ok := s.replicas.Load(replica); ok {
		return max(v.(*replicaCount).n.Load(), 0) // a retired counter means 0
	}
	return 0
}

// Function implements Reader.
func (s *Signals) Function(key string) Snapshot {
	if s == nil {
		return Snapshot{}
	}
	if v, ok := s.functions.Load(key); ok {
		return v.(*fnCounts).snapshot()
	}
	return Snapshot{}
}

// Functions implements Reader. The map is the caller's.
func (s *Signals) Functions() map[string]Snapshot {
	out := map[string]Snapshot{}
	if s == nil {
		return out
	}
	s.functions.Range(func(k, v any) bool {
		out[k.(string)] = v.(*fnCounts).snapshot()
		return true
	})
	return out
}

func (f *fnCounts) snapshot() Snapshot {
	return Snapshot{InFlight: f.inFlight.Load(), Requests: f.requests.Load()}
}
