package docker

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// The shared fixture of the tests that drive the Docker runtime the way the
// daemon does: a controller over an in-memory store, the runtime over the
// fake engine, the proxy's endpoint cache and a status board.

const testImage = "example/fn:1"

// fakeProber answers from a set of addresses that are not ready; all others are.
type fakeProber struct {
	mu       sync.Mutex
	notReady map[string]bool
	allDown  bool
}

func (p *fakeProber) Ready(ctx context.Context, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.allDown && !p.notReady[addr]
}

func (p *fakeProber) setAllDown(down bool) {
	p.mu.Lock()
	p.allDown = down
	p.mu.Unlock()
}

// tap is the runtime as the controller sees it: the Docker runtime, with
// every key the controller hands it recorded, so a test can tell which keys
// the controller's queue held (see queued). It also sets the parking
// retention (ParkFor) of functions scaled to zero, as the daemon's
// controller is configured to, so these tests do not depend on how.
type tap struct {
	runtime.Runtime
	mu      sync.Mutex
	keys    []string
	parkFor time.Duration
}

// setParkFor sets the retention of parked replicas from the next Sync on.
func (t *tap) setParkFor(d time.Duration) {
	t.mu.Lock()
	t.parkFor = d
	t.mu.Unlock()
}

func (t *tap) record(key string) {
	t.mu.Lock()
	t.keys = append(t.keys, key)
	t.mu.Unlock()
}

func (t *tap) Sync(ctx context.Context, d runtime.Desired) (runtime.Observed, error) {
	t.record(d.Key)
	t.mu.Lock()
	if d.Replicas == 0 {
		d.ParkFor = t.parkFor
	}
	t.mu.Unlock()
	return t.Runtime.Sync(ctx, d)
}

func (t *tap) Remove(ctx context.Context, key string) (bool, error) {
	t.record(key)
	return t.Runtime.Remove(ctx, key)
}

// since returns the keys recorded after the first n.
func (t *tap) since(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.keys[n:])
}

func (t *tap) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

type fixture struct {
	t      *testing.T
	st     *store.Memory
	eng    *fake.Engine
	cache  *proxy.Cache
	board  *status.Board
	prober *fakeProber
	rt     *Runtime
	tap    *tap
	c      *controller.Controller
}

func discardLog() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// testConfig is the runtime configuration of the fixture.
func testConfig(p runtime.Prober) Config {
	return Config{
		Instance:     "t",
		DrainGrace:   time.Millisecond,
		CrashBackoff: time.Hour, // a second exit always waits in these tests
		Prober:       p,
		Log:          discardLog(),
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		t:      t,
		st:     store.NewMemory(),
		eng:    fake.New(testImage),
		cache:  proxy.NewCache(),
		board:  status.NewBoard(),
		prober: &fakeProber{notReady: map[string]bool{}},
	}
	f.wire(testConfig(f.prober), f.eng, nil)
	return f
}

// wire makes f's runtime a new one with cfg over eng (a wrapper of f.eng,
// or f.eng itself), and f's controller a new one over it, with f's store,
// cache and board, keeping the parking retention. m nil means unregistered
// controller metrics.
func (f *fixture) wire(cfg Config, eng engine.Engine, m *controller.Metrics) {
	f.rt = New(cfg, eng)
	var parkFor time.Duration
	if f.tap != nil {
		f.tap.mu.Lock()
		parkFor = f.tap.parkFor
		f.tap.mu.Unlock()
	}
	f.tap = &tap{Runtime: f.rt, parkFor: parkFor}
	f.c = controller.New(controller.Config{Log: f.rt.cfg.Log}, f.st, f.tap, f.cache, f.board, m)
}

// restarted is f's daemon restarted over the same store and Docker (seen
// through eng): a runtime and a controller that remember nothing, with a
// cache and a board of their own, probing with f's prober.
func (f *fixture) restarted(eng engine.Engine) *fixture {
	f2 := *f
	f2.cache, f2.board = proxy.NewCache(), status.NewBoard()
	f2.wire(f.rt.cfg, eng, nil)
	return &f2
}

func deployment(name string, mutate ...func(*types.FunctionDeployment)) types.FunctionDeployment {
	labels, ann := map[string]string{}, map[string]string{}
	d := types.FunctionDeployment{Service: name, Image: testImage, Labels: &labels, Annotations: &ann}
	for _, m := range mutate {
		m(&d)
	}
	return d
}

func (f *fixture) deploy(d types.FunctionDeployment, replicas uint64) string {
	f.t.Helper()
	fn, err := f.st.Create(context.Background(), d, replicas)
	if err != nil {
		f.t.Fatal(err)
	}
	return fn.Key()
}

// reconcile runs Reconcile until the result stops asking for a requeue (or
// n rounds), as the worker would, waiting out drain grace periods.
func (f *fixture) reconcile(key string, n int) controller.Result {
	f.t.Helper()
	var res controller.Result
	for i := 0; i < n; i++ {
		var err error
		res, err = f.c.Reconcile(context.Background(), key)
		if err != nil {
			f.t.Fatalf("reconcile %s round %d: %v", key, i, err)
		}
		if res.RequeueAfter == 0 {
			return res
		}
		if res.RequeueAfter < 50*time.Millisecond {
			time.Sleep(res.RequeueAfter)
		}
	}
	return res
}

// work runs Reconcile as a worker does until the key converges or n rounds
// have run. It returns whether the key converged (the round that ended it
// asked for no requeue, which the worker records as "converged").
func (f *fixture) work(key string, n int) bool {
	f.t.Helper()
	for i := 0; i < n; i++ {
		res, err := f.c.Reconcile(context.Background(), key)
		if err != nil {
			f.t.Fatalf("reconcile %s round %d: %v", key, i, err)
		}
		if res.RequeueAfter == 0 {
			return true
		}
		if res.RequeueAfter < 50*time.Millisecond {
			time.Sleep(res.RequeueAfter)
		}
	}
	return false
}

// queued takes every key waiting in the controller's queue now, as a worker
// would (Step), and returns them sorted.
func (f *fixture) queued() []string {
	f.t.Helper()
	from := f.tap.len()
	for i := 0; f.c.QueueLen() > 0; i++ {
		if i == 100 {
			f.t.Fatal("the queue does not empty")
		}
		f.c.Step(context.Background())
	}
	keys := f.tap.since(from)
	slices.Sort(keys)
	return slices.Compact(keys)
}

func (f *fixture) running(prefix string) []string {
	var out []string
	for _, n := range f.eng.Names(engine.StateRunning) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// replicaIDs returns the IDs of the running containers, sorted by name.
func (f *fixture) replicaIDs() []string {
	list, _ := f.eng.ListContainers(context.Background(), nil)
	var ids []string
	for _, c := range list {
		if c.State == engine.StateRunning {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// setReady makes the replica with id answer its probe or not.
func (f *fixture) setReady(id string, ready bool) {
	list, _ := f.eng.ListContainers(context.Background(), nil)
	f.prober.mu.Lock()
	defer f.prober.mu.Unlock()
	for _, c := range list {
		if c.ID == id {
			for _, ip := range c.Networks {
				f.prober.notReady[ip+":8080"] = !ready
			}
		}
	}
}

// listCounter counts the list calls made through it.
type listCounter struct {
	*fake.Engine
	lists atomic.Int64
}

func (l *listCounter) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	l.lists.Add(1)
	return l.Engine.ListContainers(ctx, labels)
}

func (l *listCounter) ListNetworks(ctx context.Context, labels map[string]string) ([]engine.Network, error) {
	l.lists.Add(1)
	return l.Engine.ListNetworks(ctx, labels)
}
