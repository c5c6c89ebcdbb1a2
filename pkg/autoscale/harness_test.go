package autoscale

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/load"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeLoad is a load.Reader the tests feed.
type fakeLoad struct {
	mu sync.Mutex
	m  map[string]load.Snapshot
}

func (f *fakeLoad) InFlight(string) int64 { return 0 }

func (f *fakeLoad) Function(key string) load.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key]
}

func (f *fakeLoad) Functions() map[string]load.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]load.Snapshot, len(f.m))
	for k, v := range f.m {
		out[k] = v
	}
	return out
}

// calls adds n requests started to key.
func (f *fakeLoad) calls(key string, n uint64) {
	f.mu.Lock()
	s := f.m[key]
	s.Requests += n
	f.m[key] = s
	f.mu.Unlock()
}

func (f *fakeLoad) inFlight(key string, n int64) {
	f.mu.Lock()
	s := f.m[key]
	s.InFlight = n
	f.m[key] = s
	f.mu.Unlock()
}

// fakeUsage is a runtime.UsageReader with a settable CPU figure.
type fakeUsage struct {
	mu  sync.Mutex
	cpu float64
	err error
}

func (u *fakeUsage) Usage(context.Context, string) (types.FunctionUsage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return types.FunctionUsage{CPU: u.cpu}, u.err
}

func (u *fakeUsage) set(cpu float64) {
	u.mu.Lock()
	u.cpu = cpu
	u.mu.Unlock()
}

// scaleCall is one ScaleBy the store saw.
type scaleCall struct {
	key      string
	replicas uint64
	by       string
}

// countingStore is an in-memory store that records ScaleBy calls and can
// hold Get until gate is closed.
type countingStore struct {
	*store.Memory
	mu     sync.Mutex
	scales []scaleCall
	gate   chan struct{}
}

func (s *countingStore) Get(ctx context.Context, key string) (store.Function, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.Memory.Get(ctx, key)
}

func (s *countingStore) ScaleBy(ctx context.Context, key string, replicas uint64, by string) (store.Function, error) {
	s.mu.Lock()
	s.scales = append(s.scales, scaleCall{key, replicas, by})
	s.mu.Unlock()
	return s.Memory.ScaleBy(ctx, key, replicas, by)
}

func (s *countingStore) writes() []scaleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scaleCall(nil), s.scales...)
}

// harness is an autoscaler over fakes, driven pass by pass.
type harness struct {
	t       *testing.T
	a       *Autoscaler
	st      *countingStore
	load    *fakeLoad
	usage   *fakeUsage
	clk     *clock
	board   *status.ScalingBoard
	reg     *prometheus.Registry
	logs    *logtest.Hook
	readyMu sync.Mutex
	ready   map[string]uint64 // ready replicas by key; absent means 1
}

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// newHarness builds an autoscaler; withUsage false gives it no usage
// reader, as a runtime without one.
func newHarness(t *testing.T, withUsage bool, cfg Config) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		st:    &countingStore{Memory: store.NewMemory()},
		load:  &fakeLoad{m: map[string]load.Snapshot{}},
		usage: &fakeUsage{},
		clk:   &clock{t: t0},
		board: status.NewScalingBoard(),
		reg:   prometheus.NewRegistry(),
		ready: map[string]uint64{},
	}
	logger, hook := logtest.NewNullLogger()
	logger.SetOutput(io.Discard)
	logger.SetLevel(logrus.DebugLevel)
	h.logs = hook
	cfg.Now, cfg.Log, cfg.Registerer = h.clk.Now, logger, h.reg
	var usage runtime.UsageReader
	if withUsage {
		usage = h.usage
	}
	a, err := New(cfg, h.st, h.load, ReadyFunc(h.readyOf), usage, h.board)
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	t.Cleanup(func() { h.a.shutdown() })
	return h
}

// deploy stores a function with labels and replicas and returns its key.
func (h *harness) deploy(name string, labels map[string]string, replicas uint64) string {
	h.t.Helper()
	spec := types.FunctionDeployment{Service: name, Image: "functions/alpine:latest"}
	if labels != nil {
		spec.Labels = &labels
	}
	f, err := h.st.Create(context.Background(), spec, replicas)
	if err != nil {
		h.t.Fatal(err)
	}
	return f.Key()
}

func (h *harness) replicas(key string) uint64 {
	h.t.Helper()
	f, err := h.st.Memory.Get(context.Background(), key)
	if err != nil {
		h.t.Fatal(err)
	}
	return f.Replicas
}

func (h *harness) scaledBy(key string) string {
	h.t.Helper()
	f, err := h.st.Memory.Get(context.Background(), key)
	if err != nil {
		h.t.Fatal(err)
	}
	return f.ScaledBy
}

func (h *harness) tick() { h.a.tick(context.Background()) }

// second moves the clock one second, lets each run (to feed load), and
// makes one pass.
func (h *harness) second(each func()) {
	h.clk.Add(time.Second)
	if each != nil {
		each()
	}
	h.tick()
}

// waitWakes waits until no wake is running.
func (h *harness) waitWakes() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.a.mu.Lock()
		n := len(h.a.waking)
		h.a.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatal("wakes still running after 5s")
}

func (h *harness) entry(key string) status.Scaling {
	h.t.Helper()
	e, ok := h.board.Get(key)
	if !ok {
		h.t.Fatalf("%s not on the scaling board", key)
	}
	return e
}

var errUsage = errors.New("stats unavailable")

func (h *harness) readyOf(key string) uint64 {
	h.readyMu.Lock()
	defer h.readyMu.Unlock()
	if n, ok := h.ready[key]; ok {
		return n
	}
	return 1
}

func (h *harness) setReady(key string, n uint64) {
	h.readyMu.Lock()
	h.ready[key] = n
	h.readyMu.Unlock()
}
