package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/handoff"
	rt "github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Per-request isolation (faas.IsPerRequest): every call runs in a
// container that has served no other call and is removed right after it.
// A container start costs Docker hundreds of milliseconds, so each such
// function keeps a pool of containers started ahead of its calls and made
// ready: for the HTTP protocol, answering the readiness probe on the
// function's network; for the socket protocol, connected to the control
// socket the daemon mounted at /control.sock (no network at all; see
// pkg/handoff). A call takes one (waiting for the next one when none is
// ready, up to the proxy's READY_WAIT: then 429), and the pool starts
// another behind it.
//
// Pooled containers are job runs to the rest of the runtime (jobState:
// registered before they are created, the job labels, removed off the
// caller's path): so a delete, a graceful stop and the sweep after a
// daemon died (which leaves containers nobody can vouch for) remove them
// like job containers.

// Bounds of the pools.
const (
	// poolReadyTimeout bounds how long a pooled container may take to get
	// ready; one that does not is removed and counts as a failure.
	poolReadyTimeout = time.Minute
	// poolProbeEvery spaces the readiness probes of a starting container:
	// a call may be waiting for it.
	poolProbeEvery = 5 * time.Millisecond
	// poolBackoff and poolBackoffMax space out fills after failures.
	poolBackoff    = time.Second
	poolBackoffMax = time.Minute
	// poolMaxStarting bounds the containers one pool starts at once: each
	// start slows the others down, and a burst is answered faster by a few
	// starts in a row than by many side by side.
	poolMaxStarting = 4
	// poolRateWindow is the window of RefillsPerSecond.
	poolRateWindow = time.Minute
	// boxLogsWait bounds how long a released container's removal waits
	// for its last log lines.
	boxLogsWait = 2 * time.Second
)

// LabelPool marks a pooled container (besides the job labels), with its
// protocol as the value.
const LabelPool = "io.dockerfaas.pool"

// controlSocket is where a socket-protocol container finds its control
// socket.
const controlSocket = "/control.sock"

// isoState holds the pools.
type isoState struct {
	mu       sync.Mutex
	pools    map[string]*isoPool
	stopping bool
}

// isoPool is one function's pool, under isoState.mu.
type isoPool struct {
	d        rt.Desired
	iso      faas.Isolation
	size     int
	gen      int // counts spec changes: a fill of an older one is discarded
	ready    []*isoBox
	starting int
	waiters  []chan *isoBox
	// all holds every container of the pool not yet retired, handed out
	// ones included, so a delete removes them all.
	all map[*isoBox]struct{}

	// pause spaces fills out after failures; lastErr is the last one.
	pause   fillPause
	lastErr string

	served, waited, busy, refills uint64
	recent                        []time.Time   // when fills got ready, within poolRateWindow
	startAvg                      time.Duration // moving average of create → ready
}

// isoBox is one pooled container.
type isoBox struct {
	run   *jobRun
	key   string
	proto string
	short string
	addr  string            // HTTP: where it serves
	ln    *handoff.Listener // socket: its control socket
	ctl   *handoff.Control  // socket: its accepted control connection
	// taken and retired are under isoState.mu: handed to a call; being
	// removed (its death is then no failure).
	taken, retired bool
	dialed         atomic.Bool
	// logsDone is closed once its log lines are copied (keepBoxLogs):
	// the container is removed after that, so its last lines are kept.
	logsDone chan struct{}
}

func newIsoState() *isoState { return &isoState{pools: map[string]*isoPool{}} }

var _ rt.Pools = (*Runtime)(nil)

// isPerRequest reports whether spec asks for per-request isolation.
func isPerRequest(spec types.FunctionDeployment) bool {
	return spec.Annotations != nil && faas.IsPerRequest(*spec.Annotations)
}

// isolationOf reads spec's isolation (validated by the API).
func isolationOf(spec types.FunctionDeployment) faas.Isolation {
	if spec.Annotations == nil {
		return faas.Isolation{Protocol: faas.ProtocolHTTP}
	}
	iso, _ := faas.IsolationOf(*spec.Annotations)
	return iso
}

// poolsAvailable tells whether this runtime can run pools at all: it needs
// to kill and wait for containers (the job engine).
func (r *Runtime) poolsAvailable() bool { return r.jobs.eng != nil }

// syncIsolated sizes d's pool for replicas wanted (0 drains it) and
// returns the function's endpoints: the pool's pseudo endpoint while it
// has one.
func (r *Runtime) syncIsolated(d rt.Desired, replicas int) ([]faas.Endpoint, error) {
	if !r.poolsAvailable() {
		return nil, rt.Fail(rt.ReasonInvalidSpec, fmt.Errorf("function %s: %w: per-request isolation needs a Docker client that can attach to containers", d.Key, rt.ErrInvalidSpec))
	}
	iso := isolationOf(d.Spec)
	if iso.Protocol == faas.ProtocolSocket && (r.cfg.HandoffDir == "" || r.cfg.Self != "" && r.cfg.HandoffHostDir == "") {
		return nil, rt.Fail(rt.ReasonInvalidSpec, fmt.Errorf("function %s: %w: the socket protocol needs a HANDOFF_DIR the engine can mount (running in a container: on a volume or bind mount; see the daemon's startup log)", d.Key, rt.ErrInvalidSpec))
	}
	size := 0
	if replicas > 0 {
		size = iso.PoolSize
		if size == 0 {
			size = r.cfg.PoolSize
		}
	}
	if size == 0 {
		r.dropIsolated(d.Key)
		return nil, nil
	}
	var stale []*isoBox
	r.iso.mu.Lock()
	p := r.iso.pools[d.Key]
	if p == nil {
		p = &isoPool{all: map[*isoBox]struct{}{}, pause: fillPause{base: poolBackoff, max: poolBackoffMax}}
		r.iso.pools[d.Key] = p
	}
	if p.d.Hash != d.Hash {
		// Containers of the old spec go; calls waiting for one wait for
		// the new spec's instead (they are kept: the fills below serve
		// them).
		stale, p.ready = p.ready, nil
		p.starting, p.lastErr = 0, ""
		p.pause.reset()
		p.gen++
	}
	p.d, p.iso, p.size = d, iso, size
	if len(p.ready) > size {
		stale = append(stale, p.ready[size:]...)
		p.ready = p.ready[:size]
	}
	r.iso.mu.Unlock()
	r.retireBoxes(stale...)
	r.kickIsoFills(d.Key)
	return faas.IsolatedEndpoints(d.Key), nil
}

// dropIsolated removes key's pool and every container of it, handed out
// ones included (their calls fail); calls waiting get none.
func (r *Runtime) dropIsolated(key string) {
	r.iso.mu.Lock()
	p := r.iso.pools[key]
	delete(r.iso.pools, key)
	if p == nil {
		r.iso.mu.Unlock()
		return
	}
	boxes := make([]*isoBox, 0, len(p.all))
	for b := range p.all {
		boxes = append(boxes, b)
	}
	waiters := p.waiters
	p.ready, p.waiters = nil, nil
	p.pause.stop()
	r.iso.mu.Unlock()
	for _, ch := range waiters {
		ch <- nil
	}
	r.retireBoxes(boxes...)
}

// stopIsolated drops every pool: the daemon is stopping.
func (r *Runtime) stopIsolated() {
	r.iso.mu.Lock()
	r.iso.stopping = true
	keys := make([]string, 0, len(r.iso.pools))
	for k := range r.iso.pools {
		keys = append(keys, k)
	}
	r.iso.mu.Unlock()
	for _, k := range keys {
		r.dropIsolated(k)
	}
}

// kickIsoFills starts the fills key's pool is missing: its size plus one
// per waiting call, less what is ready or starting, at most
// poolMaxStarting at once.
func (r *Runtime) kickIsoFills(key string) {
	r.iso.mu.Lock()
	p := r.iso.pools[key]
	if p == nil || r.iso.stopping {
		r.iso.mu.Unlock()
		return
	}
	if p.pause.holdLocked(&r.iso.mu, func() { r.kickIsoFills(key) }) {
		r.iso.mu.Unlock()
		return
	}
	need := p.size + len(p.waiters) - len(p.ready) - p.starting
	need = min(need, poolMaxStarting-p.starting)
	if need <= 0 {
		r.iso.mu.Unlock()
		return
	}
	p.starting += need
	d, gen := p.d, p.gen
	r.iso.mu.Unlock()
	for range need {
		go r.fillIso(p, d, gen)
	}
}

// fillIso makes one container of d ready and hands it to the oldest
// waiting call, or keeps it.
func (r *Runtime) fillIso(p *isoPool, d rt.Desired, gen int) {
	began := time.Now()
	b, err := r.startBox(p, d)
	r.iso.mu.Lock()
	current := r.iso.pools[d.Key] == p && p.gen == gen && !r.iso.stopping
	if current {
		p.starting--
	}
	if !current {
		r.iso.mu.Unlock()
		if b != nil {
			r.retireBoxes(b)
		}
		return
	}
	if err != nil {
		wait := p.pause.fail()
		p.lastErr = err.Error()
		r.iso.mu.Unlock()
		r.cfg.Log.WithError(err).WithFields(logrus.Fields{"function": d.Name, "namespace": d.Namespace, "retry_in": wait}).
			Warn("per-request isolation: a pooled container did not get ready")
		r.kickIsoFills(d.Key)
		return
	}
	if b.retired { // it died as it got ready
		r.iso.mu.Unlock()
		r.kickIsoFills(d.Key)
		return
	}
	p.lastErr = ""
	p.pause.reset()
	p.refills++
	now := time.Now()
	p.recent = append(trimBefore(p.recent, now.Add(-poolRateWindow)), now)
	took := now.Sub(began)
	if p.startAvg == 0 {
		p.startAvg = took
	} else {
		p.startAvg = (p.startAvg*3 + took) / 4
	}
	switch {
	case len(p.waiters) > 0:
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		b.taken = true
		p.served++
		r.iso.mu.Unlock()
		ch <- b
	case len(p.ready) < p.size:
		p.ready = append(p.ready, b)
		r.iso.mu.Unlock()
	default:
		r.iso.mu.Unlock()
		r.retireBoxes(b)
	}
	r.kickIsoFills(d.Key)
}

// trimBefore drops the times before t from ts (sorted).
func trimBefore(ts []time.Time, t time.Time) []time.Time {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t) })
	return ts[i:]
}

// startBox creates, starts and waits for one container of d to be ready.
func (r *Runtime) startBox(p *isoPool, d rt.Desired) (*isoBox, error) {
	iso := isolationOf(d.Spec)
	run, runCtx, err := r.jobs.begin(context.Background(), d.Key)
	if err != nil {
		return nil, err
	}
	b := &isoBox{run: run, key: d.Key, proto: iso.Protocol}
	r.iso.mu.Lock()
	p.all[b] = struct{}{}
	r.iso.mu.Unlock()
	r.jobs.mu.Lock()
	run.iso = b
	r.jobs.mu.Unlock()
	fail := func(err error) (*isoBox, error) {
		r.retireBoxes(b)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(runCtx, poolReadyTimeout)
	defer cancel()

	spec, err := r.boxSpec(d, run.id, iso.Protocol)
	if err != nil {
		return fail(err)
	}
	if iso.Protocol == faas.ProtocolSocket {
		ln, err := handoff.Listen(filepath.Join(r.cfg.HandoffDir, run.id+".sock"))
		if err != nil {
			return fail(fmt.Errorf("control socket: %w", err))
		}
		b.ln = ln
		host := filepath.Join(r.cfg.HandoffHostDir, run.id+".sock")
		if r.cfg.HandoffHostDir == "" {
			host = ln.Path()
		}
		spec.Mounts = map[string]string{controlSocket: host}
	}
	id, err := r.eng.CreateContainer(ctx, spec)
	if err != nil {
		r.metrics.dockerError("create")
		return fail(fmt.Errorf("create a pooled container: %w", err))
	}
	r.jobs.setContainer(run, id)
	b.short = engine.ShortID(id)
	r.jobs.mu.Lock()
	orphan := run.finished
	r.jobs.mu.Unlock()
	if orphan {
		// Retired while Docker created it: finishRun found no container
		// to remove and forgot the run, so this one is ours to remove.
		go r.removeJobContainer(id, d.Key)
		return nil, fmt.Errorf("pooled container %s: retired while it was created", b.short)
	}
	if err := r.copySecrets(ctx, id, d.Secrets); err != nil {
		return fail(fmt.Errorf("copy secrets into a pooled container: %w", err))
	}
	if err := r.eng.StartContainer(ctx, id); err != nil {
		r.metrics.dockerError("start")
		return fail(fmt.Errorf("start a pooled container: %w", err))
	}
	b.logsDone = make(chan struct{})
	go func() {
		defer close(b.logsDone)
		r.keepBoxLogs(run, d, id, b.short)
	}()
	if iso.Protocol == faas.ProtocolSocket {
		ctl, err := b.ln.Accept(ctx)
		if err != nil {
			return fail(fmt.Errorf("pooled container %s did not connect to %s: %w", b.short, controlSocket, err))
		}
		b.ctl = ctl
		go r.watchControl(b)
		return b, nil
	}
	if err := r.awaitBoxReady(ctx, b, d, id); err != nil {
		return fail(err)
	}
	return b, nil
}

// awaitBoxReady finds an HTTP container's address and probes it until it
// answers.
func (r *Runtime) awaitBoxReady(ctx context.Context, b *isoBox, d rt.Desired, id string) error {
	netName := r.networkName(d.Namespace, d.Name)
	list, err := r.eng.ListContainers(ctx, map[string]string{engine.LabelRun: b.run.id})
	if err != nil {
		r.metrics.dockerError("list")
		return fmt.Errorf("find the address of pooled container %s: %w", b.short, err)
	}
	for _, c := range list {
		if c.ID == id && c.Networks[netName] != "" {
			b.addr = rt.ReplicaAddr(c.Networks[netName])
		}
	}
	if b.addr == "" {
		return fmt.Errorf("pooled container %s has no address on %s", b.short, netName)
	}
	t := time.NewTicker(poolProbeEvery)
	defer t.Stop()
	for {
		if r.cfg.Prober.Ready(ctx, b.addr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pooled container %s not ready: %w", b.short, ctx.Err())
		case code := <-b.run.died:
			return fmt.Errorf("pooled container %s exited with code %d before it was ready", b.short, code)
		case <-t.C:
		}
	}
}

// keepBoxLogs copies a pooled container's log lines (stdout and stderr)
// into the function's log history (the job runs' one, joblogs.go) as
// Docker records them, until the container stops or is removed (not when
// its call ends: the call's last lines may still be on their way): the
// container is removed right after its call, and its log with it, so this
// is how `faas-cli logs` shows an isolated function's lines.
func (r *Runtime) keepBoxLogs(run *jobRun, d rt.Desired, id, short string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-run.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc, err := r.eng.ContainerLogs(ctx, id, engine.LogOptions{Follow: true})
	if err != nil {
		return
	}
	defer rc.Close()
	_ = engine.ReadLogs(rc, engine.LogFormat{}, func(l engine.LogLine) error {
		r.jobs.logs.add(d.Key, logs.Message{Name: d.Name, Namespace: d.Namespace, Instance: short, Timestamp: l.Time, Text: l.Text})
		return nil
	})
}

// watchControl retires a socket-protocol container whose control
// connection closed while it waited for a call: it died.
func (r *Runtime) watchControl(b *isoBox) {
	<-b.ctl.Closed()
	r.boxDied(b)
}

// boxSpec is a pooled container of d: a replica's (containerSpec) with the
// job labels instead of the replica ones (see the top of this file), and
// for the socket protocol no network.
func (r *Runtime) boxSpec(d rt.Desired, runID, proto string) (engine.ContainerSpec, error) {
	cs, err := r.containerSpec(d, 0)
	if err != nil {
		return cs, err
	}
	relabelAsJob(&cs, d.Key, runID)
	cs.Labels[LabelPool] = proto
	cs.Name = fmt.Sprintf("%s-%s.%s-pool-%s", r.cfg.Instance, d.Name, d.Namespace, runID)
	if proto == faas.ProtocolSocket {
		cs.Network = "none"
	}
	return cs, nil
}

// boxDied handles the death of a pooled container no call holds: it
// leaves the pool, which counts a failure (so an image that cannot wait
// for its call is not restarted in a tight loop).
func (r *Runtime) boxDied(b *isoBox) {
	r.iso.mu.Lock()
	if b.taken || b.retired {
		r.iso.mu.Unlock()
		return
	}
	p := r.iso.pools[b.key]
	if p != nil {
		if i := slices.Index(p.ready, b); i >= 0 {
			p.ready = slices.Delete(p.ready, i, i+1)
			p.pause.fail()
			p.lastErr = fmt.Sprintf("pooled container %s exited while it waited for a call", b.short)
		}
	}
	r.iso.mu.Unlock()
	r.retireBoxes(b)
	r.kickIsoFills(b.key)
}

// retireBoxes removes pooled containers (once each): killed at once, then
// removed off the caller's path like a job's container.
func (r *Runtime) retireBoxes(bs ...*isoBox) {
	var now []*isoBox
	r.iso.mu.Lock()
	for _, b := range bs {
		if b.retired {
			continue
		}
		b.retired = true
		if p := r.iso.pools[b.key]; p != nil {
			delete(p.all, b)
			if i := slices.Index(p.ready, b); i >= 0 {
				p.ready = slices.Delete(p.ready, i, i+1)
			}
		}
		now = append(now, b)
	}
	r.iso.mu.Unlock()
	for _, b := range now {
		if b.ctl != nil {
			_ = b.ctl.Close()
		}
		if b.ln != nil {
			_ = b.ln.Close()
		}
		b.run.cancel()
		r.jobs.mu.Lock()
		id := b.run.container
		r.jobs.mu.Unlock()
		if id != "" {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), jobKillTimeout)
				defer cancel()
				if err := r.jobs.eng.KillContainer(ctx, id); err != nil && !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
					r.cfg.Log.WithError(err).WithField("container", b.short).Debug("per-request isolation: kill failed; removing anyway")
				}
				if b.logsDone != nil {
					// The log stream ends once the container stopped and
					// its lines are read; removing it sooner could lose
					// the call's last lines.
					select {
					case <-b.logsDone:
					case <-time.After(boxLogsWait):
					}
				}
				r.finishRun(b.run)
			}()
		} else {
			r.finishRun(b.run)
		}
	}
}

// Take implements runtime.Pools.
func (r *Runtime) Take(ctx context.Context, key string) (rt.Lease, error) {
	r.iso.mu.Lock()
	p := r.iso.pools[key]
	if p == nil || p.size == 0 {
		r.iso.mu.Unlock()
		return nil, fmt.Errorf("function %s: %w", key, rt.ErrNoPool)
	}
	var dead []*isoBox
	for len(p.ready) > 0 {
		b := p.ready[0]
		p.ready = p.ready[1:]
		if b.ctl != nil && isClosed(b.ctl.Closed()) {
			dead = append(dead, b)
			continue
		}
		b.taken = true
		p.served++
		r.iso.mu.Unlock()
		r.retireBoxes(dead...)
		r.kickIsoFills(key)
		return &lease{r: r, b: b}, nil
	}
	if p.pause.fails > 0 && p.starting == 0 && p.pause.paused() {
		// The pool is backing off after failures: nothing is coming, and
		// the call is told why rather than left to wait for a 429.
		why := p.lastErr
		r.iso.mu.Unlock()
		r.retireBoxes(dead...)
		return nil, fmt.Errorf("function %s: its pooled containers fail to get ready (retrying with a backoff): %s", key, why)
	}
	ch := make(chan *isoBox, 1)
	p.waiters = append(p.waiters, ch)
	p.waited++
	r.iso.mu.Unlock()
	r.retireBoxes(dead...)
	r.kickIsoFills(key)
	select {
	case b := <-ch:
		if b != nil {
			return &lease{r: r, b: b}, nil
		}
		return nil, fmt.Errorf("function %s: %w (its pool was removed)", key, rt.ErrNoPool)
	case <-ctx.Done():
	}
	r.iso.mu.Lock()
	if i := slices.Index(p.waiters, ch); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		p.busy++
		retry := max(p.startAvg, time.Second)
		r.iso.mu.Unlock()
		return nil, &rt.PoolBusyError{Key: key, RetryAfter: retry}
	}
	r.iso.mu.Unlock()
	b := <-ch // handed over (or the pool removed) as the call left
	r.iso.mu.Lock()
	if b != nil {
		p.served-- // counted as it was handed over, but nobody used it
	}
	p.busy++ // the call is answered 429 all the same
	r.iso.mu.Unlock()
	if b != nil {
		r.retireBoxes(b)
	}
	return nil, &rt.PoolBusyError{Key: key, RetryAfter: time.Second}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lease is one container handed out (runtime.Lease).
type lease struct {
	r    *Runtime
	b    *isoBox
	once sync.Once
}

func (l *lease) Replica() string { return l.b.short }

func (l *lease) Dial(ctx context.Context) (net.Conn, error) {
	if !l.b.dialed.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("pooled container %s was dialed already: it serves one connection", l.b.short)
	}
	if l.b.proto == faas.ProtocolSocket {
		return l.b.ctl.HandOff()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", l.b.addr)
}

func (l *lease) Release() { l.once.Do(func() { l.r.retireBoxes(l.b) }) }

// PoolStats implements runtime.Pools.
func (r *Runtime) PoolStats() []rt.PoolStats {
	now := time.Now()
	r.iso.mu.Lock()
	out := make([]rt.PoolStats, 0, len(r.iso.pools))
	for key, p := range r.iso.pools {
		p.recent = trimBefore(p.recent, now.Add(-poolRateWindow))
		out = append(out, rt.PoolStats{
			Key: key, Protocol: p.iso.Protocol, Size: p.size,
			Ready: len(p.ready), Starting: p.starting, Waiting: len(p.waiters),
			Served: p.served, Waited: p.waited, Busy: p.busy, Refills: p.refills,
			RefillsPerSecond: float64(len(p.recent)) / poolRateWindow.Seconds(),
			StartSeconds:     p.startAvg.Seconds(),
			LastError:        p.lastErr,
		})
	}
	r.iso.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// clearHandoffDir removes control sockets an earlier daemon left: their
// containers are swept as job containers nobody runs.
func clearHandoffDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("handoff dir: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.sock"))
	if err != nil {
		return err
	}
	for _, f := range old {
		_ = os.Remove(f)
	}
	return nil
}
