package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// isoWait bounds every wait of the per-request isolation tests.
const isoWait = 5 * time.Second

// perRequest asks for per-request isolation with a pool of size over proto.
func perRequest(size, proto string) func(*types.FunctionDeployment) {
	return func(d *types.FunctionDeployment) {
		(*d.Annotations)[faas.AnnotationIsolation] = faas.IsolationPerRequest
		(*d.Annotations)[faas.AnnotationPoolSize] = size
		if proto != "" {
			(*d.Annotations)[faas.AnnotationProtocol] = proto
		}
	}
}

// isoFixture deploys fn with per-request isolation (pool of 2, HTTP) at one
// replica on a runtime configured by cfgMut, and stops the pools at the
// end of the test so no fill outlives it.
func isoFixture(t *testing.T, cfgMut func(*Config), mutate ...func(*types.FunctionDeployment)) (*fixture, string) {
	t.Helper()
	f := newFixture(t)
	cfg := testConfig(f.prober)
	if cfgMut != nil {
		cfgMut(&cfg)
	}
	f.wire(cfg, f.eng, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), isoWait)
		defer cancel()
		f.rt.StopJobs(ctx)
	})
	key := f.deploy(deployment("fn", append([]func(*types.FunctionDeployment){perRequest("2", "")}, mutate...)...), 1)
	if !f.work(key, 10) {
		t.Fatal("isolated function did not converge")
	}
	return f, key
}

// poolOf returns key's pool stats; ok is false when it has no pool.
func (f *fixture) poolOf(key string) (runtime.PoolStats, bool) {
	for _, s := range f.rt.PoolStats() {
		if s.Key == key {
			return s, true
		}
	}
	return runtime.PoolStats{}, false
}

// waitPoolState waits until key's pool satisfies ok and returns its stats.
func (f *fixture) waitPoolState(key, what string, ok func(s runtime.PoolStats, found bool) bool) runtime.PoolStats {
	f.t.Helper()
	deadline := time.Now().Add(isoWait)
	for {
		s, found := f.poolOf(key)
		if ok(s, found) {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("pool of %s: %+v (exists: %v); want %s", key, s, found, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitReady waits until key's pool has n ready containers and none starting.
func (f *fixture) waitReady(key string, n int) runtime.PoolStats {
	f.t.Helper()
	return f.waitPoolState(key, fmt.Sprintf("%d ready, none starting", n), func(s runtime.PoolStats, found bool) bool {
		return found && s.Ready == n && s.Starting == 0
	})
}

// pooled lists the pooled containers in the fake engine, any state.
func (f *fixture) pooled() []engine.Container {
	f.t.Helper()
	var out []engine.Container
	for _, c := range f.jobContainers() {
		if c.Labels[LabelPool] != "" {
			out = append(out, c)
		}
	}
	return out
}

// waitPooledCount waits until the fake engine holds n pooled containers.
func (f *fixture) waitPooledCount(n int) []engine.Container {
	f.t.Helper()
	deadline := time.Now().Add(isoWait)
	for {
		cs := f.pooled()
		if len(cs) == n {
			return cs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("pooled containers %v, want %d", cs, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitContainerGone waits until the fake engine no longer has container id.
func (f *fixture) waitContainerGone(id string) {
	f.t.Helper()
	deadline := time.Now().Add(isoWait)
	for slices.ContainsFunc(f.jobContainers(), func(c engine.Container) bool { return c.ID == id }) {
		if time.Now().After(deadline) {
			f.t.Fatalf("container %s was not removed", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readyIDs are the container IDs of key's ready containers, oldest first.
func (f *fixture) readyIDs(key string) []string {
	f.rt.iso.mu.Lock()
	defer f.rt.iso.mu.Unlock()
	p := f.rt.iso.pools[key]
	if p == nil {
		return nil
	}
	f.rt.jobs.mu.Lock()
	defer f.rt.jobs.mu.Unlock()
	var ids []string
	for _, b := range p.ready {
		ids = append(ids, b.run.container)
	}
	return ids
}

// leaseID is the full container ID of l: the fake engine's IDs share their
// first 12 digits, so Replica (the short ID) does not tell its containers
// apart.
func (f *fixture) leaseID(l runtime.Lease) string {
	f.rt.jobs.mu.Lock()
	defer f.rt.jobs.mu.Unlock()
	return l.(*lease).b.run.container
}

func take(t *testing.T, r *Runtime, key string, within time.Duration) (runtime.Lease, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return r.Take(ctx, key)
}

func TestIsolatedSyncPublishesThePoolAndFillsIt(t *testing.T) {
	f, key := isoFixture(t, nil)
	eps, ok := f.cache.Lookup(key)
	if !ok || !faas.IsIsolatedRoute(eps) || !slices.Equal(eps, faas.IsolatedEndpoints(key)) {
		t.Fatalf("endpoints %+v, want the pool's pseudo endpoint", eps)
	}
	s := f.waitReady(key, 2)
	if s.Size != 2 || s.Protocol != faas.ProtocolHTTP || s.Refills != 2 || s.Served != 0 || s.LastError != "" {
		t.Errorf("stats %+v, want size 2 over http, 2 refills, nothing served", s)
	}
	cs := f.pooled()
	if len(cs) != 2 {
		t.Fatalf("pooled containers %v, want 2", cs)
	}
	for _, c := range cs {
		if c.State != engine.StateRunning || c.Labels[engine.LabelRole] != engine.RoleJob || c.Labels[engine.LabelJob] != key ||
			c.Labels[LabelPool] != faas.ProtocolHTTP || c.Labels[engine.LabelFunction] != "" {
			t.Errorf("pooled container %s: state %s labels %v; want running, with the job labels, not a replica's", c.Name, c.State, c.Labels)
		}
	}
	// No replica of the function runs besides the pool.
	if n := len(f.running("t-fn")) - len(cs); n != 0 {
		t.Errorf("%d containers run besides the pool: %v", n, f.running("t-fn"))
	}
}

func TestIsolatedTakeHandsOutEachContainerOnce(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	seen := map[string]bool{}
	for i := range 6 {
		l, err := take(t, f.rt, key, isoWait)
		if err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		id := f.leaseID(l)
		if l.Replica() != engine.ShortID(id) {
			t.Errorf("Replica %q, want the short ID of %s", l.Replica(), id)
		}
		if seen[id] {
			t.Fatalf("container %s handed out twice", id)
		}
		seen[id] = true
		if !slices.ContainsFunc(f.pooled(), func(c engine.Container) bool {
			return c.ID == id && c.State == engine.StateRunning
		}) {
			t.Errorf("lease of %s, which is no running pooled container", id)
		}
		l.Release()
		l.Release() // a second Release is a no-op
		f.waitContainerGone(id)
	}
	s := f.waitReady(key, 2)
	if s.Served != 6 || s.Busy != 0 {
		t.Errorf("stats %+v, want 6 served, none busy", s)
	}
	if n := len(f.waitPooledCount(2)); n != 2 {
		t.Errorf("%d pooled containers after the calls, want the pool's 2", n)
	}
}

func TestIsolatedTakeOnAnEmptyPool(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	f.prober.setAllDown(true) // refills never get ready
	for range 2 {
		l, err := take(t, f.rt, key, isoWait)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
	}

	// Busy: nothing gets ready within the call's wait.
	start := time.Now()
	_, err := take(t, f.rt, key, 50*time.Millisecond)
	var busy *runtime.PoolBusyError
	if !errors.As(err, &busy) || busy.Key != key || busy.RetryAfter < time.Second {
		t.Fatalf("Take on an empty pool: %v; want a PoolBusyError of %s with a RetryAfter of at least 1s", err, key)
	}
	if took := time.Since(start); took > isoWait {
		t.Errorf("Take took %v past its ctx", took)
	}
	s, _ := f.poolOf(key)
	if s.Busy != 1 || s.Waited != 1 || s.Waiting != 0 {
		t.Errorf("stats %+v, want 1 busy, 1 waited, nobody waiting", s)
	}

	// A waiting call gets the next container made ready.
	type result struct {
		l   runtime.Lease
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := take(t, f.rt, key, isoWait)
		got <- result{l, err}
	}()
	f.waitPoolState(key, "one call waiting", func(s runtime.PoolStats, _ bool) bool { return s.Waiting == 1 })
	f.prober.setAllDown(false)
	var res result
	select {
	case res = <-got:
	case <-time.After(2 * isoWait):
		t.Fatal("the waiting Take did not return")
	}
	if res.err != nil {
		t.Fatalf("waiting Take: %v", res.err)
	}
	defer res.l.Release()
	if id := f.leaseID(res.l); !slices.ContainsFunc(f.pooled(), func(c engine.Container) bool { return c.ID == id }) {
		t.Errorf("the waiting call got %s, no pooled container", id)
	}
	s = f.waitReady(key, 2)
	if s.Served != 3 || s.Waited != 2 || s.Busy != 1 || s.Waiting != 0 {
		t.Errorf("stats %+v, want 3 served, 2 waited, 1 busy", s)
	}
}

func TestIsolatedTakeWithoutAPool(t *testing.T) {
	f := newFixture(t)
	key := f.deploy(deployment("plain"), 1)
	f.work(key, 10)
	if _, err := take(t, f.rt, key, time.Second); !errors.Is(err, runtime.ErrNoPool) {
		t.Errorf("Take of a function without a pool: %v, want ErrNoPool", err)
	}
}

func TestIsolatedScaleToZeroDrainsThePool(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	if _, err := f.st.Scale(context.Background(), key, 0); err != nil {
		t.Fatal(err)
	}
	f.work(key, 10)
	if eps, _ := f.cache.Lookup(key); len(eps) != 0 {
		t.Errorf("endpoints %+v at zero replicas, want none", eps)
	}
	f.waitPoolState(key, "no pool", func(_ runtime.PoolStats, found bool) bool { return !found })
	f.waitPooledCount(0)
	if _, err := take(t, f.rt, key, 50*time.Millisecond); !errors.Is(err, runtime.ErrNoPool) {
		t.Errorf("Take at zero replicas: %v, want ErrNoPool", err)
	}

	// Back to one: the pool fills again.
	if _, err := f.st.Scale(context.Background(), key, 1); err != nil {
		t.Fatal(err)
	}
	f.work(key, 10)
	if eps, _ := f.cache.Lookup(key); !faas.IsIsolatedRoute(eps) {
		t.Errorf("endpoints %+v after scaling up, want the pseudo endpoint", eps)
	}
	f.waitReady(key, 2)
}

func TestIsolatedNewSpecReplacesReadyContainers(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	old := f.readyIDs(key)
	held, err := take(t, f.rt, key, isoWait)
	if err != nil {
		t.Fatal(err)
	}
	heldID := f.leaseID(held)
	f.waitReady(key, 2)
	old = append(old, f.readyIDs(key)...)
	if _, err := f.st.Update(context.Background(), deployment("fn", perRequest("2", ""), func(d *types.FunctionDeployment) {
		d.EnvVars = map[string]string{"V": "2"}
	}), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	f.work(key, 10)
	f.waitReady(key, 2)
	for _, id := range f.readyIDs(key) {
		if slices.Contains(old, id) {
			t.Errorf("container %s of the old spec still ready", id)
		}
		spec, _ := f.eng.Spec(id)
		if !slices.Contains(spec.Env, "V=2") {
			t.Errorf("ready container's env %q, want the new spec's", spec.Env)
		}
	}
	// The old ready ones are removed; the one handed out stays with its call.
	for _, id := range old {
		if id != heldID {
			f.waitContainerGone(id)
		}
	}
	if !slices.ContainsFunc(f.pooled(), func(c engine.Container) bool { return c.ID == heldID }) {
		t.Error("a new spec removed the container of a call under way")
	}
	held.Release()
	f.waitContainerGone(heldID)
}

func TestIsolatedRemoveRemovesEveryPooledContainer(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	held, err := take(t, f.rt, key, isoWait)
	if err != nil {
		t.Fatal(err)
	}
	f.waitReady(key, 2)
	if n := len(f.pooled()); n != 3 {
		t.Fatalf("%d pooled containers, want 3 (2 ready, 1 handed out)", n)
	}
	if err := f.st.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if !f.work(key, 10) {
		t.Fatal("teardown did not finish")
	}
	if cs := f.pooled(); len(cs) != 0 {
		t.Errorf("pooled containers left after Remove: %v", cs)
	}
	if nets := f.eng.NetworkNames(); len(nets) != 0 {
		t.Errorf("networks left: %v", nets)
	}
	if _, found := f.poolOf(key); found {
		t.Error("the pool outlived its function")
	}
	held.Release() // the call ends after its container went: no harm
	if _, err := take(t, f.rt, key, 50*time.Millisecond); !errors.Is(err, runtime.ErrNoPool) {
		t.Errorf("Take after Remove: %v, want ErrNoPool", err)
	}
}

func TestIsolatedIdleContainerDyingIsReplacedAfterABackoff(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	dead := f.readyIDs(key)[0]
	f.rt.jobDied(dead, "1")
	f.waitContainerGone(dead)
	s, _ := f.poolOf(key)
	if s.Ready != 1 || !strings.Contains(s.LastError, "exited while it waited") {
		t.Errorf("stats right after the death %+v, want 1 ready and the death as last error", s)
	}
	time.Sleep(poolBackoff / 4)
	if s, _ := f.poolOf(key); s.Ready+s.Starting != 1 {
		t.Errorf("stats %+v within the backoff, want no refill yet", s)
	}
	deadline := time.Now().Add(poolBackoff + isoWait)
	for {
		s, _ = f.poolOf(key)
		if s.Ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the pool was not refilled after its backoff", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s.LastError != "" || s.Refills != 3 {
		t.Errorf("stats %+v, want the error cleared by the refill, 3 refills", s)
	}
	if slices.Contains(f.readyIDs(key), dead) {
		t.Error("the dead container is back in the pool")
	}
	// A death of a container handed out is its call's business.
	l, err := take(t, f.rt, key, isoWait)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	f.rt.jobDied(f.leaseID(l), "0")
	if s, _ := f.poolOf(key); s.LastError != "" {
		t.Errorf("a handed-out container's exit counted as a failure: %q", s.LastError)
	}
}

// The pool's size is the function's annotation, else the POOL_SIZE
// setting (Config.PoolSize).
func TestIsolatedPoolSizeFromTheSetting(t *testing.T) {
	tests := []struct {
		name       string
		annotation string // "": absent
		setting    int
		want       int
	}{
		{"the setting without an annotation", "", 3, 3},
		{"the annotation over the setting", "1", 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, key := isoFixture(t, func(c *Config) { c.PoolSize = tt.setting }, func(d *types.FunctionDeployment) {
				if tt.annotation == "" {
					delete(*d.Annotations, faas.AnnotationPoolSize)
				} else {
					(*d.Annotations)[faas.AnnotationPoolSize] = tt.annotation
				}
			})
			s := f.waitReady(key, tt.want)
			if s.Size != tt.want || s.Refills != uint64(tt.want) {
				t.Errorf("stats %+v, want size %d, %[2]d refills", s, tt.want)
			}
			if n := len(f.waitPooledCount(tt.want)); n != tt.want {
				t.Errorf("%d pooled containers, want %d", n, tt.want)
			}
			// A call is refilled behind to the same size.
			l, err := take(t, f.rt, key, isoWait)
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
			f.waitContainerGone(f.leaseID(l))
			if s := f.waitReady(key, tt.want); s.Size != tt.want || s.Refills != uint64(tt.want+1) {
				t.Errorf("stats after a call %+v, want size %d, %d refills", s, tt.want, tt.want+1)
			}
		})
	}
}

// The pool's series carry its stats' values: a call served from the pool,
// a call refused (busy) and a call that waited for the next container,
// then the pool full again.
func TestIsolatedPoolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, key := isoFixture(t, func(c *Config) { c.Registerer = reg })
	f.waitReady(key, 2)
	l, err := take(t, f.rt, key, isoWait)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	f.waitReady(key, 2)

	// Refills stop getting ready: two calls empty the pool, a third is
	// refused, a fourth waits until refills get ready again.
	f.prober.setAllDown(true)
	for range 2 {
		l, err := take(t, f.rt, key, isoWait)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	}
	var busy *runtime.PoolBusyError
	if _, err := take(t, f.rt, key, 50*time.Millisecond); !errors.As(err, &busy) {
		t.Fatalf("take from an empty pool: %v, want busy", err)
	}
	got := make(chan error, 1)
	go func() {
		l, err := take(t, f.rt, key, isoWait)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	f.waitPoolState(key, "one call waiting", func(s runtime.PoolStats, _ bool) bool { return s.Waiting == 1 })
	f.prober.setAllDown(false)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting take: %v", err)
		}
	case <-time.After(2 * isoWait):
		t.Fatal("the waiting take did not return")
	}
	// Made ready: 2 at first, 1 behind the first call, 3 behind the others
	// (the two taken, and one more for the call that waited); the one the
	// waiting call got is served, the two others fill the pool.
	s := f.waitReady(key, 2)
	if s.Served != 4 || s.Waited != 2 || s.Busy != 1 || s.Refills != 6 {
		t.Fatalf("stats %+v, want 4 served, 2 waited, 1 busy, 6 refills", s)
	}

	ns, name, _ := faas.SplitKey(key)
	fn := name + "." + ns
	want := fmt.Sprintf(`
# HELP dockerfaasd_pool_size Ready containers the pool of a function with per-request isolation keeps.
# TYPE dockerfaasd_pool_size gauge
dockerfaasd_pool_size{function_name=%[1]q} 2
# HELP dockerfaasd_pool_ready Containers ready in the pool now.
# TYPE dockerfaasd_pool_ready gauge
dockerfaasd_pool_ready{function_name=%[1]q} 2
# HELP dockerfaasd_pool_starting Containers of the pool being started now.
# TYPE dockerfaasd_pool_starting gauge
dockerfaasd_pool_starting{function_name=%[1]q} 0
# HELP dockerfaasd_pool_waiting Calls waiting for a fresh container now.
# TYPE dockerfaasd_pool_waiting gauge
dockerfaasd_pool_waiting{function_name=%[1]q} 0
# HELP dockerfaasd_pool_served_total Calls handed a fresh container.
# TYPE dockerfaasd_pool_served_total counter
dockerfaasd_pool_served_total{function_name=%[1]q} 4
# HELP dockerfaasd_pool_waited_total Calls that had to wait for a fresh container.
# TYPE dockerfaasd_pool_waited_total counter
dockerfaasd_pool_waited_total{function_name=%[1]q} 2
# HELP dockerfaasd_pool_busy_total Calls that got no fresh container within READY_WAIT (answered 429).
# TYPE dockerfaasd_pool_busy_total counter
dockerfaasd_pool_busy_total{function_name=%[1]q} 1
# HELP dockerfaasd_pool_refills_total Containers the pool made ready.
# TYPE dockerfaasd_pool_refills_total counter
dockerfaasd_pool_refills_total{function_name=%[1]q} 6
# HELP dockerfaasd_pool_refills_per_second Containers made ready per second over the last minute.
# TYPE dockerfaasd_pool_refills_per_second gauge
dockerfaasd_pool_refills_per_second{function_name=%[1]q} %[2]g
`, fn, 6/poolRateWindow.Seconds())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"dockerfaasd_pool_size", "dockerfaasd_pool_ready", "dockerfaasd_pool_starting", "dockerfaasd_pool_waiting",
		"dockerfaasd_pool_served_total", "dockerfaasd_pool_waited_total", "dockerfaasd_pool_busy_total",
		"dockerfaasd_pool_refills_total", "dockerfaasd_pool_refills_per_second"); err != nil {
		t.Error(err)
	}
	// The start time is measured: more than nothing, less than the waits
	// above (the refills that waited for the prober took about as long).
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var start []float64
	for _, mf := range mfs {
		if mf.GetName() == "dockerfaasd_pool_start_seconds" {
			for _, m := range mf.GetMetric() {
				start = append(start, m.GetGauge().GetValue())
			}
		}
	}
	if len(start) != 1 || start[0] <= 0 || start[0] > 2*isoWait.Seconds() {
		t.Errorf("dockerfaasd_pool_start_seconds %v, want one value in (0, %v]", start, 2*isoWait.Seconds())
	}
}

// playContainer is a socket-protocol container as the fake engine cannot
// be one: connected to its control socket, it serves the one HTTP request
// handed over it with "served by <container>".
type playContainer struct {
	id   string
	ctrl *net.UnixConn
}

// connectPooled connects to the control socket of every pooled container
// not connected yet, until ctx ends, sending each new one on out.
func connectPooled(ctx context.Context, f *fixture, out chan<- *playContainer) {
	done := map[string]bool{}
	for ctx.Err() == nil {
		list, _ := f.eng.ListContainers(ctx, map[string]string{LabelPool: faas.ProtocolSocket})
		for _, c := range list {
			if done[c.ID] || c.State != engine.StateRunning {
				continue
			}
			spec, _ := f.eng.Spec(c.ID)
			path := spec.Mounts[controlSocket]
			conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				continue
			}
			done[c.ID] = true
			select {
			case out <- &playContainer{id: c.ID, ctrl: conn}:
			case <-ctx.Done():
				_ = conn.Close()
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serveOne receives the hand-off and answers the request on it.
func (p *playContainer) serveOne() error {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4))
	_ = p.ctrl.SetReadDeadline(time.Now().Add(isoWait))
	n, oobn, _, _, err := p.ctrl.ReadMsgUnix(buf, oob)
	if err != nil {
		return err
	}
	if n != 1 || buf[0] != 'H' {
		return fmt.Errorf("payload %q", buf[:n])
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("control messages %v: %w", msgs, err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("rights %v: %w", fds, err)
	}
	f := os.NewFile(uintptr(fds[0]), "call")
	conn, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(isoWait))
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return err
	}
	body := "served by " + engine.ShortID(p.id) + " " + req.URL.Path
	_, err = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	return err
}

func TestIsolatedSocketProtocol(t *testing.T) {
	dir, err := os.MkdirTemp("", "ho")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f, key := isoFixture(t, func(c *Config) { c.HandoffDir = dir }, perRequest("2", faas.ProtocolSocket))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	boxes := make(chan *playContainer, 16)
	wg.Add(1)
	go func() { defer wg.Done(); connectPooled(ctx, f, boxes) }()

	s := f.waitReady(key, 2)
	if s.Protocol != faas.ProtocolSocket {
		t.Errorf("protocol %q", s.Protocol)
	}
	byID := map[string]*playContainer{}
	for range 2 {
		select {
		case b := <-boxes:
			byID[b.id] = b
			t.Cleanup(func() { _ = b.ctrl.Close() })
		case <-time.After(isoWait):
			t.Fatal("no container connected")
		}
	}
	for id := range byID {
		spec, _ := f.eng.Spec(id)
		if spec.Network != "none" || !strings.HasPrefix(spec.Mounts[controlSocket], dir+"/") {
			t.Errorf("container %s: network %q, mounts %v; want no network and its control socket in %s", id, spec.Network, spec.Mounts, dir)
		}
	}

	// A call: handed over the control socket, served, the container removed.
	l, err := take(t, f.rt, key, isoWait)
	if err != nil {
		t.Fatal(err)
	}
	b := byID[f.leaseID(l)]
	if b == nil {
		t.Fatalf("lease of %s, not a connected container", f.leaseID(l))
	}
	served := make(chan error, 1)
	go func() { served <- b.serveOne() }()
	conn, err := l.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(isoWait))
	if _, err := io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: fn\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = conn.Close()
	if err := <-served; err != nil {
		t.Fatalf("the container's side: %v", err)
	}
	if want := "served by " + l.Replica() + " /hello"; string(got) != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	if _, err := l.Dial(ctx); err == nil {
		t.Error("a second Dial of a lease worked")
	}
	l.Release()
	f.waitContainerGone(f.leaseID(l))

	// An idle container whose control connection closes died: it leaves
	// the pool.
	f.waitReady(key, 2) // the refill behind the call first: its success clears LastError
	for id, pc := range byID {
		if id == f.leaseID(l) {
			continue
		}
		_ = pc.ctrl.Close()
		f.waitContainerGone(id)
		s, _ := f.poolOf(key)
		if !strings.Contains(s.LastError, "exited while it waited") {
			t.Errorf("stats %+v after an idle container's control connection closed, want its death as last error", s)
		}
	}
}

// A pool dropped while one of its fills waits for Docker's create: the
// container created then must be removed all the same.
//
// retireBoxes finds no
// container on the run yet, so finishRun forgets the run; startBox then
// finds its run finished once the create returns and removes the
// container itself (without that, it was left until a List swept it).
func TestIsolatedDropDuringCreateLeavesNoContainer(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	blocked, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.eng.SetFail(func(op, _ string) error {
		if op == "create" {
			once.Do(func() { close(blocked); <-unblock })
		}
		return nil
	})
	l, err := take(t, f.rt, key, isoWait) // its refill creates a container
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	select {
	case <-blocked:
	case <-time.After(isoWait):
		t.Fatal("no refill reached create")
	}
	f.rt.dropIsolated(key) // as a scale to zero does
	close(unblock)
	deadline := time.Now().Add(isoWait)
	for len(f.pooled()) > 0 {
		if time.Now().After(deadline) {
			left := f.pooled()
			_, _ = f.rt.List(context.Background()) // the resync's orphan sweep
			time.Sleep(100 * time.Millisecond)
			t.Fatalf("pooled containers left after the pool was dropped: %v (after a List: %d)", left, len(f.pooled()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A pool whose fills fail backs off, and a call then fails at once with
// the reason instead of waiting for a container that is not coming.
func TestIsolatedFailingPoolFailsCallsAtOnce(t *testing.T) {
	f, key := isoFixture(t, nil)
	f.waitReady(key, 2)
	f.eng.SetFail(func(op, _ string) error {
		if op == "create" {
			return errors.New("no space left on device")
		}
		return nil
	})
	for range 2 { // the ready ones are still served
		l, err := take(t, f.rt, key, isoWait)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	}
	f.waitPoolState(key, "a fill failure recorded", func(s runtime.PoolStats, found bool) bool {
		return found && s.LastError != "" && s.Starting == 0
	})
	start := time.Now()
	_, err := take(t, f.rt, key, isoWait)
	var busy *runtime.PoolBusyError
	if err == nil || errors.As(err, &busy) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("take from a failing pool: %v; want the fills' error", err)
	}
	if waited := time.Since(start); waited > isoWait/2 {
		t.Errorf("take waited %s", waited)
	}
}
