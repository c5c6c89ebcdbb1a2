package load

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// The replica counters are touched twice on every invocation. These
// benchmarks compare Signals with the two obvious alternatives:
//
//   - neverRemoved is what the proxy did before this package: a sync.Map of
//     atomic counters that are never removed (it needed ForgetReplica);
//   - eagerMutex removes a counter the moment it drops to zero, under a
//     mutex, which is the simplest leak-free design.
//
// Run: go test -run '^$' -bench . -cpu 1,2 ./pkg/load/

// replicaCounter is the part of each design the benchmarks exercise.
type replicaCounter interface {
	acquire(id string) any
	release(id string, held any)
}

type neverRemoved struct{ m sync.Map }

func (o *neverRemoved) acquire(id string) any {
	v, ok := o.m.Load(id)
	if !ok {
		v, _ = o.m.LoadOrStore(id, new(atomic.Int64))
	}
	c := v.(*atomic.Int64)
	c.Add(1)
	return c
}

func (o *neverRemoved) release(_ string, held any) { held.(*atomic.Int64).Add(-1) }

type eagerMutex struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *eagerMutex) acquire(id string) any {
	e.mu.Lock()
	e.m[id]++
	e.mu.Unlock()
	return nil
}

func (e *eagerMutex) release(id string, _ any) {
	e.mu.Lock()
	if n := e.m[id] - 1; n > 0 {
		e.m[id] = n
	} else {
		delete(e.m, id)
	}
	e.mu.Unlock()
}

// signalsCounter is Signals behind the same interface.
type signalsCounter struct{ s Signals }

func (c *signalsCounter) acquire(id string) any { return c.s.acquire(id) }

func (c *signalsCounter) release(_ string, held any) { held.(*replicaCount).n.Add(-1) }

var designs = []struct {
	name string
	new  func() replicaCounter
}{
	{"neverRemoved", func() replicaCounter { return &neverRemoved{} }},
	{"eagerMutex", func() replicaCounter { return &eagerMutex{m: map[string]int64{}} }},
	{"signals", func() replicaCounter { return &signalsCounter{} }},
}

// replicaIDs returns n IDs shaped like Docker container IDs.
func replicaIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", 7919*i+1)
	}
	return ids
}

// BenchmarkReplicaCounter is one call's acquire and release of a replica
// counter, from parallel goroutines (4 per P, like a busy proxy) spread
// over one replica (every call contends) or eight.
func BenchmarkReplicaCounter(b *testing.B) {
	for _, replicas := range []int{1, 8} {
		for _, d := range designs {
			b.Run(fmt.Sprintf("replicas=%d/%s", replicas, d.name), func(b *testing.B) {
				c := d.new()
				ids := replicaIDs(replicas)
				var next atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					id := ids[int(next.Add(1))%len(ids)]
					for pb.Next() {
						c.release(id, c.acquire(id))
					}
				})
			})
		}
	}
}

// BenchmarkCall is everything the proxy publishes for one call through
// Signals (Begin, On, End: the function's counts as well as the replica's),
// against neverRemoved's replica counter alone, which was all it did before.
func BenchmarkCall(b *testing.B) {
	id := replicaIDs(1)[0]
	b.Run("neverRemoved", func(b *testing.B) {
		var c neverRemoved
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.release(id, c.acquire(id))
			}
		})
	})
	b.Run("signals", func(b *testing.B) {
		var s Signals
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c := s.Begin("openfaas-fn/bench")
				c.On(id)
				c.End()
			}
		})
	})
}
