package docker

import (
	"context"
	"fmt"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// benchFunctions is how many functions the reconcile benchmarks keep.
const benchFunctions = 1000

// newBenchController returns a controller over an in-memory store holding
// benchFunctions functions of one replica each and the Docker runtime over
// eng (a fake Docker with nothing in it, or a wrapper of one) with a prober
// that finds every replica ready.
func newBenchController(b *testing.B, eng engine.Engine) (*controller.Controller, []string) {
	b.Helper()
	log := discardLog()
	st := store.NewMemory()
	rt := New(Config{Instance: "b", Prober: &fakeProber{notReady: map[string]bool{}}, Log: log}, eng)
	c := controller.New(controller.Config{Log: log}, st, rt, proxy.NewCache(), status.NewBoard(), nil)
	keys := make([]string, benchFunctions)
	for i := range keys {
		fn, err := st.Create(context.Background(), deployment(fmt.Sprintf("fn-%04d", i)), 1)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = fn.Key()
	}
	return c, keys
}

// convergeAll reconciles every key until it stops asking to be looked at
// again, as the workers would, and fails when a key needs more than four
// rounds: creating, then probing, is two.
func convergeAll(b *testing.B, c *controller.Controller, keys []string) {
	b.Helper()
	ctx := context.Background()
	for _, k := range keys {
		for round := 0; ; round++ {
			if round == 4 {
				b.Fatalf("%s did not converge in 4 rounds", k)
			}
			res, err := c.Reconcile(ctx, k)
			if err != nil {
				b.Fatalf("reconcile %s: %v", k, err)
			}
			if res.RequeueAfter == 0 {
				break
			}
		}
	}
}

// BenchmarkReconcile1000Converged is the cost of one resync pass over
// benchFunctions functions that are all converged already: what the
// controller spends every RESYNC_INTERVAL when nothing changed. The fake's
// container list is linear in all containers, like Docker's own, so the
// pass is quadratic in the number of functions there as well.
func BenchmarkReconcile1000Converged(b *testing.B) {
	c, keys := newBenchController(b, fake.New(testImage))
	convergeAll(b, c, keys)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, k := range keys {
			res, err := c.Reconcile(ctx, k)
			if err != nil {
				b.Fatal(err)
			}
			if res.RequeueAfter != 0 {
				b.Fatalf("%s is not steady: %+v", k, res)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
}

// BenchmarkReconcile1000Create is benchFunctions functions reconciled from
// nothing to converged: network, container, start, probe, publish.
func BenchmarkReconcile1000Create(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		c, keys := newBenchController(b, fake.New(testImage))
		b.StartTimer()
		convergeAll(b, c, keys)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchFunctions), "ns/key")
}

// BenchmarkResync1000Converged is one periodic resync pass over
// benchFunctions converged functions as the controller runs it: one list of
// containers and networks, a comparison with what the last reconciles left,
// and a probe of every published replica. Compare it with
// BenchmarkReconcile1000Converged, which reconciles every key as resyncs
// used to.
func BenchmarkResync1000Converged(b *testing.B) {
	lc := &listCounter{Engine: fake.New(testImage)}
	c, keys := newBenchController(b, lc)
	convergeAll(b, c, keys) // the runtime remembers that they converged
	ctx := context.Background()
	lc.lists.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.ResyncAll(ctx); err != nil {
			b.Fatal(err)
		}
		if n := c.QueueLen(); n != 0 {
			b.Fatalf("resync of converged functions queued %d keys", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
	b.ReportMetric(float64(lc.lists.Load())/float64(b.N), "lists/op")
}
