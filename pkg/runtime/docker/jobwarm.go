package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/jobinit"
	rt "github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// Pre-started job containers. Nearly all of a job's time is Docker's
// container start (network, cgroups, the runtime); the call's Http_*
// environment, fixed at create, is what keeps it on the call's path. So
// the runtime keeps, per job function, a pool of containers created and
// started ahead of calls, each running `dockerfaasd job-init -- COMMAND`
// (pkg/jobinit) with its stdio attached: a call hands its environment to
// one of them, which execs the function's command. Every container still
// serves one call and is removed after it; the pool refills behind it.
//
// A call that finds the pool empty waits for a fill under way (it is
// ready sooner than a container started for the call would be) or, when
// none is, runs the classic way (create, attach, start). A pool whose
// fills fail (or whose containers die while they wait) pauses with a
// backoff; calls run the classic way meanwhile.

// Bounds of the pool.
const (
	// jobAckTimeout bounds the wait for job-init's ack: a container that
	// does not take the call by then is removed and the call runs the
	// classic way (its body is untouched until the ack).
	jobAckTimeout = 5 * time.Second
	// jobWarmPrepare bounds what a fill asks Docker before its container
	// exists (the image's config, the job-init volume).
	jobWarmPrepare = 2 * time.Minute
	// jobWarmBackoff and jobWarmBackoffMax space out fills after failures.
	jobWarmBackoff    = time.Second
	jobWarmBackoffMax = 5 * time.Minute
)

// jobPool is one job function's pool, under jobState.mu.
type jobPool struct {
	hash    string // the spec hash the containers are made from
	gen     int    // counts hash changes: a fill of an older one is discarded
	size    int
	ready   []*warmJob
	filling int
	// waiters are calls waiting for a fill under way, oldest first.
	waiters []chan *warmJob
	// pause delays fills after failures; off (by hash) holds why this
	// spec cannot be pre-started at all ("" when it can).
	pause fillPause
	off   string
}

// warmJob is a pre-started container waiting for its call.
type warmJob struct {
	run     *jobRun
	runCtx  context.Context
	id      string
	short   string
	created time.Time
	att     engine.Attachment
	out     *warmStdout
	errOut  *switchWriter
	lines   *lineWriter
	outDone chan error
	// taken and retired are under jobState.mu: handed to a call; being
	// removed by the daemon (its death is no failure).
	taken, retired bool
}

// warmSize is how many containers d's pool holds: its annotation, else
// the daemon's setting; 0 when this daemon cannot pre-start containers.
func (r *Runtime) warmSize(d rt.Desired) int {
	if r.cfg.JobInitBinary == "" || r.jobs.eng == nil {
		return 0
	}
	if _, ok := r.eng.(engine.WarmEngine); !ok {
		return 0
	}
	if d.Spec.Annotations != nil {
		if n, ok, _ := faas.JobWarmOf(*d.Spec.Annotations); ok {
			return n
		}
	}
	return r.cfg.JobWarm
}

// syncPool sizes key's pool for d: containers of another spec, or beyond
// the size, are removed; fills start for what is missing.
func (r *Runtime) syncPool(d rt.Desired) {
	size := r.warmSize(d)
	var stale []*warmJob
	r.jobs.mu.Lock()
	p := r.jobs.pools[d.Key]
	if p == nil {
		p = &jobPool{pause: fillPause{base: jobWarmBackoff, max: jobWarmBackoffMax}}
		r.jobs.pools[d.Key] = p
	}
	var woken []chan *warmJob
	if p.hash != d.Hash {
		// Fills under way are of the old spec: fill discards them, and the
		// calls waiting for them run the classic way.
		stale, p.ready = p.ready, nil
		woken, p.waiters = p.waiters, nil
		p.hash, p.filling, p.off = d.Hash, 0, ""
		p.pause.reset()
		p.gen++
	}
	if len(p.ready) > size {
		stale = append(stale, p.ready[size:]...)
		p.ready = p.ready[:size]
	}
	p.size = size
	r.jobs.mu.Unlock()
	for _, ch := range woken {
		ch <- nil
	}
	r.retireWarm(stale...)
	r.kickFills(d.Key)
}

// dropPool removes key's pool: its containers are removed, its waiting
// calls run the classic way.
func (r *Runtime) dropPool(key string) {
	r.jobs.mu.Lock()
	p := r.jobs.pools[key]
	delete(r.jobs.pools, key)
	if p == nil {
		r.jobs.mu.Unlock()
		return
	}
	stale, waiters := p.ready, p.waiters
	p.ready, p.waiters = nil, nil
	p.pause.stop()
	r.jobs.mu.Unlock()
	for _, w := range waiters {
		w <- nil
	}
	r.retireWarm(stale...)
}

// retireWarm removes pooled containers the daemon no longer wants (once
// each, however often it is called for one).
func (r *Runtime) retireWarm(ws ...*warmJob) {
	var now []*warmJob
	r.jobs.mu.Lock()
	for _, w := range ws {
		if !w.retired {
			w.retired = true
			now = append(now, w)
		}
	}
	r.jobs.mu.Unlock()
	for _, w := range now {
		if w.att != nil {
			_ = w.att.Close()
		}
		r.finishRun(w.run)
	}
}

// kickFills starts the fills key's pool is missing: its size, or as many
// as calls wait when more do, plus one while calls wait (the next call
// then finds one sooner), less what is ready or being filled. A fill for
// each waiting call on top of the size would double the starts Docker
// runs at once when calls come back to back, slowing every one of them;
// one more than the calls need keeps two starts going for one call at a
// time, which two cores run nearly as fast as one.
func (r *Runtime) kickFills(key string) {
	r.jobs.mu.Lock()
	p, d := r.jobs.pools[key], r.jobs.specs[key]
	if p == nil || r.jobs.stopping || p.off != "" || d.Key == "" {
		r.jobs.mu.Unlock()
		return
	}
	if p.pause.holdLocked(&r.jobs.mu, func() { r.kickFills(key) }) {
		r.jobs.mu.Unlock()
		return
	}
	target := max(p.size, len(p.waiters))
	if len(p.waiters) > 0 {
		target++
	}
	need := target - len(p.ready) - p.filling
	if need <= 0 {
		r.jobs.mu.Unlock()
		return
	}
	p.filling += need
	gen := p.gen
	r.jobs.mu.Unlock()
	for range need {
		go r.fill(p, d, gen)
	}
}

// fill starts one container for d's pool and hands it to the oldest
// waiting call, or keeps it.
func (r *Runtime) fill(p *jobPool, d rt.Desired, gen int) {
	w, err := r.startWarm(d)
	r.jobs.mu.Lock()
	current := r.jobs.pools[d.Key] == p && p.gen == gen
	if current {
		p.filling--
	}
	if !current || r.jobs.stopping {
		r.jobs.mu.Unlock()
		if w != nil {
			r.retireWarm(w)
		}
		return
	}
	if err != nil {
		r.warmFailedLocked(p, d, err)
		r.jobs.mu.Unlock()
		// The volume may have been removed behind the daemon's back: the
		// next fill checks it again. (Not under jobs.mu: provisioning holds
		// its own lock while it registers a run.)
		r.forgetJobInitVolume()
		r.kickFills(d.Key)
		return
	}
	p.pause.reset()
	switch {
	case w.retired: // it died as it started (warmDied)
		releaseWaitersLocked(p)
		r.jobs.mu.Unlock()
	case len(p.waiters) > 0:
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.taken = true
		r.jobs.mu.Unlock()
		ch <- w
	case len(p.ready) < p.size:
		p.ready = append(p.ready, w)
		r.jobs.mu.Unlock()
	default:
		r.jobs.mu.Unlock()
		r.retireWarm(w)
	}
}

// warmFailedLocked pauses p's fills after a failure and lets the calls
// waiting beyond the fills still under way run the classic way.
func (r *Runtime) warmFailedLocked(p *jobPool, d rt.Desired, err error) {
	log := r.cfg.Log.WithError(err).WithFields(logrus.Fields{"function": d.Name, "namespace": d.Namespace})
	var off *warmOff
	if errors.As(err, &off) {
		p.off = off.why
		log.Info("job: calls of this function start their own container (it cannot be started ahead of them)")
	} else {
		wait := p.pause.fail()
		log.WithField("retry_in", wait).Warn("job: starting a container ahead of calls failed; calls start their own meanwhile")
	}
	releaseWaitersLocked(p)
}

// releaseWaitersLocked lets the calls waiting beyond the fills under way
// run the classic way.
func releaseWaitersLocked(p *jobPool) {
	for len(p.waiters) > p.filling {
		ch := p.waiters[len(p.waiters)-1]
		p.waiters = p.waiters[:len(p.waiters)-1]
		ch <- nil // buffered
	}
}

// warmOff is a reason a spec cannot be pre-started at all.
type warmOff struct{ why string }

func (e *warmOff) Error() string { return e.why }

// takeWarm hands a call a pooled container of key: a ready one, else one
// being filled (waiting for it), else nil (the call runs the classic way).
func (r *Runtime) takeWarm(ctx context.Context, key string) *warmJob {
	var dead []*warmJob
	defer func() { r.retireWarm(dead...) }()
	r.jobs.mu.Lock()
	p := r.jobs.pools[key]
	if p == nil || p.size == 0 || p.off != "" {
		r.jobs.mu.Unlock()
		return nil
	}
	for len(p.ready) > 0 {
		w := p.ready[0]
		p.ready = p.ready[1:]
		select {
		case <-w.outDone: // its process ended while it waited
			dead = append(dead, w)
			continue
		default:
		}
		w.taken = true
		r.jobs.mu.Unlock()
		r.kickFills(key)
		return w
	}
	if p.filling <= len(p.waiters) || p.pause.paused() {
		r.jobs.mu.Unlock()
		r.kickFills(key)
		return nil
	}
	ch := make(chan *warmJob, 1)
	p.waiters = append(p.waiters, ch)
	r.jobs.mu.Unlock()
	r.kickFills(key)
	select {
	case w := <-ch:
		return w
	case <-ctx.Done():
	}
	r.jobs.mu.Lock()
	if i := slices.Index(p.waiters, ch); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		r.jobs.mu.Unlock()
		return nil
	}
	r.jobs.mu.Unlock()
	if w := <-ch; w != nil { // handed over as the call left
		dead = append(dead, w)
	}
	return nil
}

// warmDied handles the death of a pooled container that had no call: it
// leaves the pool, which counts a failure (a function that cannot wait,
// e.g. one whose memory limit job-init does not fit, stops being
// pre-started for a while).
func (r *Runtime) warmDied(w *warmJob, code int) {
	r.jobs.mu.Lock()
	if w.taken || w.retired {
		r.jobs.mu.Unlock()
		return
	}
	p := r.jobs.pools[w.run.key]
	d := r.jobs.specs[w.run.key]
	if p != nil {
		if i := slices.Index(p.ready, w); i >= 0 {
			p.ready = slices.Delete(p.ready, i, i+1)
		}
		r.warmFailedLocked(p, d, fmt.Errorf("a container started ahead of calls exited with code %d before its call", code))
	}
	r.jobs.mu.Unlock()
	r.retireWarm(w)
	r.kickFills(w.run.key)
}

// startWarm creates and starts one container of d running job-init, with
// its stdio attached.
func (r *Runtime) startWarm(d rt.Desired) (*warmJob, error) {
	we, _ := r.eng.(engine.WarmEngine)
	prep, cancel := context.WithTimeout(context.Background(), jobWarmPrepare)
	defer cancel()
	ic, err := we.ImageConfig(prep, d.Spec.Image)
	if err != nil {
		return nil, err
	}
	if ic.OS != "" && ic.OS != "linux" || ic.Architecture != "" && ic.Architecture != runtime.GOARCH {
		return nil, &warmOff{fmt.Sprintf("image %s is for %s/%s; the daemon is for linux/%s", d.Spec.Image, ic.OS, ic.Architecture, runtime.GOARCH)}
	}
	argv := JobCommand(d.Spec)
	if len(argv) == 0 {
		argv = append(slices.Clone(ic.Entrypoint), ic.Cmd...)
	}
	if len(argv) == 0 {
		return nil, &warmOff{fmt.Sprintf("image %s has no command and the function no fprocess", d.Spec.Image)}
	}
	vol, err := r.jobInitVolume(prep, we, d.Spec.Image)
	if err != nil {
		return nil, err
	}
	run, runCtx, err := r.jobs.begin(context.Background(), d.Key)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*warmJob, error) {
		r.jobs.mu.Lock()
		if run.warm != nil {
			run.warm.retired = true // its die event is no pool failure
		}
		r.jobs.mu.Unlock()
		r.finishRun(run)
		return nil, err
	}
	spec, err := r.jobContainerSpec(d, run.id, rt.RunRequest{})
	if err != nil {
		return fail(err)
	}
	spec.Entrypoint = append([]string{engine.JobInitBinary, "job-init", "--"}, argv...)
	spec.VolumeMounts = append(spec.VolumeMounts, engine.VolumeMount{Volume: vol, Target: engine.JobInitDir, ReadOnly: true})
	id, err := r.eng.CreateContainer(runCtx, spec)
	if err != nil {
		r.metrics.dockerError("create")
		return fail(fmt.Errorf("create a job container ahead of its call: %w", err))
	}
	r.jobs.setContainer(run, id)
	w := &warmJob{run: run, runCtx: runCtx, id: id, short: engine.ShortID(id), created: time.Now(),
		out: &warmStdout{acked: make(chan struct{})}, outDone: make(chan error, 1)}
	w.lines = &lineWriter{logs: r.jobs.logs, key: d.Key, name: d.Name, ns: d.Namespace, instance: w.short}
	w.errOut = &switchWriter{w: w.lines}
	r.jobs.mu.Lock()
	run.warm = w
	r.jobs.mu.Unlock()
	if err := r.copySecrets(runCtx, id, d.Secrets); err != nil {
		return fail(fmt.Errorf("copy secrets into a job container: %w", err))
	}
	att, err := r.jobs.eng.AttachContainer(runCtx, id)
	if err != nil {
		r.metrics.dockerError("attach")
		return fail(fmt.Errorf("attach to a job container: %w", err))
	}
	w.att = att
	go func() { w.outDone <- att.Demux(w.out, w.errOut) }()
	if err := r.eng.StartContainer(runCtx, id); err != nil {
		r.metrics.dockerError("start")
		_ = att.Close()
		return fail(fmt.Errorf("start a job container ahead of its call: %w", err))
	}
	return w, nil
}

// handOff gives a call's environment to w and waits for job-init to take
// it. false: w never took it (it is removed; the call's body is
// untouched, so the call can run the classic way).
func (r *Runtime) handOff(ctx context.Context, w *warmJob, req rt.RunRequest) (bool, error) {
	w.out.setDst(req.Stdout)
	w.errOut.set(teeWriter{w: req.Stderr, side: w.lines})
	frame, err := jobinit.Encode(jobinit.Frame{Env: req.Env})
	if err != nil {
		r.retireWarm(w)
		return false, err
	}
	if _, err := w.att.Write(frame); err != nil {
		r.retireWarm(w)
		return false, nil
	}
	t := time.NewTimer(jobAckTimeout)
	defer t.Stop()
	select {
	case <-w.out.acked:
		return true, nil
	case <-w.outDone:
	case <-t.C:
	case <-ctx.Done():
		r.retireWarm(w)
		return false, ctx.Err()
	}
	r.retireWarm(w)
	return false, nil
}

// warmStdout is a pooled container's stdout: its first byte is job-init's
// ack; the rest is the call's output, for dst (set before the hand-off).
type warmStdout struct {
	mu    sync.Mutex
	dst   io.Writer
	seen  bool
	acked chan struct{}
}

func (w *warmStdout) setDst(dst io.Writer) {
	w.mu.Lock()
	w.dst = dst
	w.mu.Unlock()
}

func (w *warmStdout) Write(p []byte) (int, error) {
	n := len(p)
	w.mu.Lock()
	first, dst := !w.seen, w.dst
	w.seen = true
	w.mu.Unlock()
	if first && n > 0 {
		if p[0] == jobinit.Ack {
			close(w.acked)
		}
		p = p[1:]
	}
	if dst == nil || len(p) == 0 {
		return n, nil
	}
	if _, err := dst.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// switchWriter writes to a writer that can be switched.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	return w.Write(p)
}
