package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Settings of the async section.
const (
	asyncFn = "asyncbench"
	// asyncConns is the concurrency of every load in the section, and the
	// function's io.dockerfaas.async.max-inflight: the queue runs as many
	// calls at once as the synchronous baseline sends.
	asyncConns = 32
	// asyncCellMax bounds the requests of one cell (warm-up included)
	// besides BENCH_DURATION: the calls an accept cell queues must all run
	// before the next cell starts.
	asyncCellMax = 100000
	// asyncDrainCalls calls are accepted, with a callback, in the drain run.
	asyncDrainCalls = 2000
	// asyncDrainLimit bounds the drain run: accepts and callbacks.
	asyncDrainLimit = 2 * time.Minute
	// asyncSettleLimit bounds the wait for the queue an accept cell left.
	asyncSettleLimit = 5 * time.Minute
	// Annotation of the function's async concurrency (docs/async.md).
	annotationAsyncInflight = "io.dockerfaas.async.max-inflight"
	defaultNamespace        = "openfaas-fn"
)

// asyncBody is the request body of every call in the section, sync or async.
var asyncBody = []byte(`{"bench":"async","payload":"0123456789abcdef0123456789abcdef"}`)

// asyncRound is one round of the section: the synchronous baseline, the
// accept cell and the drain run, back to back.
type asyncRound struct {
	sync, accept loadResult
	// Daemon CPU per call: a synchronous invocation; an async call from
	// its accept until the queue has run it (accept + run); a drain call
	// (accept + run + callback).
	syncCPU, acceptCPU, drainCPU time.Duration
	backlog                      float64 // accept cell's calls not yet finished when it ended
	// fsync50, fsync99: one 4 KiB write + fdatasync in the run's temporary
	// directory (the state file's disk), just before the accept cell.
	fsync50, fsync99 time.Duration
	// runCPU is the daemon's CPU per call while it ran that backlog with
	// no accepts coming in: what running a queued call costs alone.
	runCPU  time.Duration
	counted float64 // calls the daemon counted as submitted during the accept cell
	drain   drainResult
}

// drainResult is one drain run: asyncDrainCalls accepted as fast as
// asyncConns callers can, each with a callback to the driver.
type drainResult struct {
	calls      int           // accepted (202)
	acceptedIn time.Duration // first accept sent → last 202
	doneIn     time.Duration // first accept sent → last first callback
	retried    int           // callbacks with X-Retry other than 0
	non200     int           // callbacks with X-Function-Status other than 200
}

func (d drainResult) rate() float64 { return ratio(float64(d.calls), d.doneIn.Seconds()) }

// async measures async invocations (docs/async.md) against synchronous
// invocations of the same function on the same daemon: accepts/s and
// their latency at c=32 against sync invocations/s, and the end-to-end
// rate of a burst of calls run by the queue (max-inflight 32) against sync
// invocations/s at c=32. The three run back to back in BENCH_WARM_ROUNDS
// rounds, each starting with another, and the ratios are taken per round.
func (r *runner) async(ctx context.Context) error {
	annotations := map[string]string{annotationAsyncInflight: strconv.Itoa(asyncConns)}
	if _, err := r.d.expect(ctx, http.StatusAccepted, http.MethodPost, "/system/functions",
		types.FunctionDeployment{Service: asyncFn, Image: r.image, Annotations: &annotations}); err != nil {
		return err
	}
	if _, err := firstOK(ctx, r.d.base+"/function/"+asyncFn, r.d.authHeader(), nil, 10*time.Millisecond, 60*time.Second); err != nil {
		return err
	}
	sink := newCallbackSink()
	defer sink.Close()

	rounds := make([]asyncRound, r.s.WarmRounds)
	for round := range rounds {
		ar := &rounds[round]
		steps := []func() error{
			func() (err error) { ar.sync, ar.syncCPU, err = r.asyncSyncCell(ctx); return err },
			func() error { return r.asyncAcceptCell(ctx, ar) },
			func() (err error) { ar.drain, ar.drainCPU, err = r.asyncDrainRun(ctx, sink, round); return err },
		}
		for i := range steps {
			if err := steps[(i+round)%len(steps)](); err != nil {
				return fmt.Errorf("round %d: %w", round+1, err)
			}
		}
		logf("async round %d: sync %.0f/s p99 %s cpu/call %s; accept %.0f/s p50 %s p99 %s (fsync p50 %s p99 %s) cpu/call %s (backlog %.0f, run-only cpu/call %s); drain %d calls in %s (%.0f/s, retried %d) cpu/call %s",
			round+1, ar.sync.rps(), ar.sync.p99(), ar.syncCPU, ar.accept.rps(), ar.accept.p50(), ar.accept.p99(), ar.fsync50, ar.fsync99, ar.acceptCPU,
			ar.backlog, ar.runCPU, ar.drain.calls, ar.drain.doneIn, ar.drain.rate(), ar.drain.retried, ar.drainCPU)
	}
	if err := r.removeFunction(ctx, asyncFn); err != nil {
		return err
	}
	r.rep.add("async", renderAsync(rounds, r.s.Duration))
	return nil
}

// asyncLoad POSTs asyncBody to the daemon at path with extra headers hdr
// from asyncConns callers, for at most d and count requests, wanting
// status want from each.
func (r *runner) asyncLoad(ctx context.Context, path string, want int, hdr http.Header, count int, d time.Duration) (loadResult, error) {
	h := http.Header{"Authorization": {r.d.authHeader()}, "Content-Type": {"application/json"}}
	for k, v := range hdr {
		h[k] = v
	}
	res := r.load(ctx, loadSpec{method: http.MethodPost, url: r.d.base + path, header: h, body: asyncBody,
		want: want, conns: asyncConns, max: count, limit: d})
	if res.ok == 0 {
		return res, fmt.Errorf("POST %s: no %d answer in %d requests: %v", path, want, res.sent, res.firstErr)
	}
	return res, nil
}

// asyncSyncCell is the synchronous baseline: POST /function/ at c=32,
// after a warm-up, with the daemon's CPU per call.
func (r *runner) asyncSyncCell(ctx context.Context) (loadResult, time.Duration, error) {
	path := "/function/" + asyncFn
	if _, err := r.asyncLoad(ctx, path, http.StatusOK, nil, asyncCellMax, r.s.Warmup); err != nil {
		return loadResult{}, 0, err
	}
	t0, err := cpuTicks(r.d.pid())
	if err != nil {
		return loadResult{}, 0, err
	}
	res, err := r.asyncLoad(ctx, path, http.StatusOK, nil, asyncCellMax, r.s.Duration)
	if err != nil {
		return res, 0, err
	}
	t1, err := cpuTicks(r.d.pid())
	return res, perCall(t1-t0, res.ok), err
}

// asyncAcceptCell measures accepts at c=32 (no callback) after a
// warm-up. The queue runs the calls meanwhile, as it would in use; the
// cell starts with an empty queue and the next step only once the queue
// has run every call, so that no cell is measured while another's calls
// still run. The daemon's CPU per call covers the accept and the run.
func (r *runner) asyncAcceptCell(ctx context.Context, ar *asyncRound) error {
	path := "/async-function/" + asyncFn
	if _, err := r.asyncLoad(ctx, path, http.StatusAccepted, nil, asyncCellMax, r.s.Warmup); err != nil {
		return err
	}
	submitted0, err := r.waitQueueEmpty(ctx)
	if err != nil {
		return err
	}
	if ar.fsync50, ar.fsync99, err = fsyncFloor(filepath.Join(r.tmp, "fsync-probe")); err != nil {
		return err
	}
	t0, err := cpuTicks(r.d.pid())
	if err != nil {
		return err
	}
	if ar.accept, err = r.asyncLoad(ctx, path, http.StatusAccepted, nil, asyncCellMax, r.s.Duration); err != nil {
		return err
	}
	tEnd, err := cpuTicks(r.d.pid())
	if err != nil {
		return err
	}
	submitted, processed, err := r.asyncCounts(ctx)
	if err != nil {
		return err
	}
	ar.backlog, ar.counted = submitted-processed, submitted-submitted0
	if _, err := r.waitQueueEmpty(ctx); err != nil {
		return err
	}
	t1, err := cpuTicks(r.d.pid())
	ar.acceptCPU = perCall(t1-t0, ar.accept.ok)
	ar.runCPU = perCall(t1-tEnd, int(ar.backlog))
	return err
}

// asyncDrainRun accepts asyncDrainCalls calls with a callback to the
// driver, as fast as asyncConns callers can, and waits for every
// callback: the calls' end-to-end rate through the queue.
func (r *runner) asyncDrainRun(ctx context.Context, sink *callbackSink, round int) (drainResult, time.Duration, error) {
	var dr drainResult
	cbPath := fmt.Sprintf("/round%d", round+1)
	sink.reset(cbPath)
	ctx, cancel := context.WithTimeout(ctx, asyncDrainLimit)
	defer cancel()
	c0, err := cpuTicks(r.d.pid())
	if err != nil {
		return dr, 0, err
	}
	t0 := time.Now()
	res, err := r.asyncLoad(ctx, "/async-function/"+asyncFn, http.StatusAccepted,
		http.Header{"X-Callback-Url": {sink.URL + cbPath}}, asyncDrainCalls, asyncDrainLimit)
	if err != nil {
		return dr, 0, err
	}
	dr.calls, dr.acceptedIn = res.ok, res.elapsed
	if res.ok != asyncDrainCalls {
		return dr, 0, fmt.Errorf("drain run: %d of %d calls accepted within %s: %v", res.ok, asyncDrainCalls, asyncDrainLimit, res.firstErr)
	}
	got, err := sink.wait(ctx, res.ids)
	if err != nil {
		return dr, 0, fmt.Errorf("drain run: %w", err)
	}
	c1, err := cpuTicks(r.d.pid())
	if err != nil {
		return dr, 0, err
	}
	for _, cb := range got {
		dr.doneIn = max(dr.doneIn, cb.at.Sub(t0))
		if cb.retry != "0" {
			dr.retried++
		}
		if cb.status != "200" {
			dr.non200++
		}
	}
	return dr, perCall(c1-c0, dr.calls), nil
}

// fsyncFloor times 200 (at most 5 s of) overwrites of one 4 KiB block of
// file, each followed by fdatasync(2) as bbolt commits, and returns the
// median and 99th percentile: the disk's floor under a durable accept.
func fsyncFloor(file string) (p50, p99 time.Duration, err error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(file)
	defer f.Close()
	block := bytes.Repeat([]byte{'x'}, 4096)
	var ds []time.Duration
	stop := time.Now().Add(5 * time.Second)
	for len(ds) < 200 && time.Now().Before(stop) {
		t := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return 0, 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return percentile(ds, 50), percentile(ds, 99), nil
}

// perCall divides CPU clock ticks by calls.
func perCall(ticks int64, calls int) time.Duration {
	if calls == 0 {
		return 0
	}
	return time.Duration(ticks) * (time.Second / clockTicks) / time.Duration(calls)
}

// asyncCounts reads the function's calls accepted and calls finished so
// far from the daemon's metrics (queue_worker_messages_submitted_total and
// the sum of queue_worker_messages_processed_total over its codes).
func (r *runner) asyncCounts(ctx context.Context) (submitted, processed float64, err error) {
	b, err := r.d.expect(ctx, http.StatusOK, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	label := `function_name="` + asyncFn + "." + defaultNamespace + `"`
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.Contains(rest, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		switch name {
		case "queue_worker_messages_submitted_total":
			submitted, found = v, true
		case "queue_worker_messages_processed_total":
			processed += v
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("/metrics has no queue_worker_messages_submitted_total{%s}", label)
	}
	return submitted, processed, nil
}

// waitQueueEmpty polls the metrics every 100 ms until every call the
// function accepted is finished, and returns the calls accepted so far.
func (r *runner) waitQueueEmpty(ctx context.Context) (float64, error) {
	deadline := time.Now().Add(asyncSettleLimit)
	for {
		submitted, processed, err := r.asyncCounts(ctx)
		if err != nil {
			return 0, err
		}
		if processed >= submitted {
			return submitted, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%.0f of %.0f accepted calls still not finished after %s", submitted-processed, submitted, asyncSettleLimit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadSpec is one run of the Go load loop: conns callers send the same
// request back to back until max requests were sent or limit has passed.
// The section uses it rather than wrk because it needs every answer's
// X-Call-Id and a count bound, which wrk cannot give.
type loadSpec struct {
	method, url string
	header      http.Header
	body        []byte
	want        int // the status every answer should have
	conns, max  int
	limit       time.Duration // no request starts after it
}

// loadResult is one load run.
type loadResult struct {
	sent, ok int             // requests answered; with the wanted status
	firstErr error           // of the others
	elapsed  time.Duration   // first request sent → last answer
	lat      []time.Duration // of the ok answers, sorted
	ids      []string        // X-Call-Id of the ok answers
}

func (l loadResult) rps() float64       { return ratio(float64(l.ok), l.elapsed.Seconds()) }
func (l loadResult) errors() int        { return l.sent - l.ok }
func (l loadResult) p50() time.Duration { return percentile(l.lat, 50) }
func (l loadResult) p99() time.Duration { return percentile(l.lat, 99) }
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

// load runs sp with the daemon's HTTP client. Answers still on their way
// when limit passes are awaited for at most 30 s more.
func (r *runner) load(ctx context.Context, sp loadSpec) loadResult {
	ctx, cancel := context.WithTimeout(ctx, sp.limit+30*time.Second)
	defer cancel()
	type part struct {
		lat   []time.Duration
		ids   []string
		sent  int
		first error
	}
	parts := make([]part, sp.conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	stopAt := t0.Add(sp.limit)
	for w := range parts {
		p := &parts[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(sp.max) && time.Now().Before(stopAt) && ctx.Err() == nil {
				id, lat, err := r.send(ctx, sp)
				p.sent++
				switch {
				case err != nil && p.first == nil:
					p.first = err
				case err == nil:
					p.lat, p.ids = append(p.lat, lat), append(p.ids, id)
				}
			}
		}()
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(t0)}
	for _, p := range parts {
		res.sent += p.sent
		res.lat, res.ids = append(res.lat, p.lat...), append(res.ids, p.ids...)
		if res.firstErr == nil {
			res.firstErr = p.first
		}
	}
	res.ok = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// send makes one request of sp and returns the answer's X-Call-Id and
// latency (to the whole body).
func (r *runner) send(ctx context.Context, sp loadSpec) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, sp.method, sp.url, bytes.NewReader(sp.body))
	if err != nil {
		return "", 0, err
	}
	req.Header = sp.header.Clone()
	t := time.Now()
	res, err := r.d.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	lat := time.Since(t)
	if err != nil {
		return "", 0, err
	}
	if res.StatusCode != sp.want {
		return "", 0, fmt.Errorf("%s %s: %d %.200s", sp.method, req.URL.Path, res.StatusCode, strings.TrimSpace(string(b)))
	}
	return res.Header.Get("X-Call-Id"), lat, nil
}

// callbackSink receives the daemon's callbacks on 127.0.0.1 and keeps
// the first of each call (delivery is at least once) at the current path.
type callbackSink struct {
	*httptest.Server
	mu     sync.Mutex
	path   string
	got    map[string]callbackSeen
	notify chan struct{}
}

type callbackSeen struct {
	at            time.Time
	status, retry string // X-Function-Status, X-Retry
}

func newCallbackSink() *callbackSink {
	s := &callbackSink{got: map[string]callbackSeen{}, notify: make(chan struct{}, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		drain(req.Body)
		at := time.Now()
		id := req.Header.Get("X-Call-Id")
		s.mu.Lock()
		if _, seen := s.got[id]; !seen && req.URL.Path == s.path && id != "" {
			s.got[id] = callbackSeen{at: at, status: req.Header.Get("X-Function-Status"), retry: req.Header.Get("X-Retry")}
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}))
	return s
}

// reset forgets what was received and keeps only callbacks to path.
func (s *callbackSink) reset(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.path, s.got = path, map[string]callbackSeen{}
}

// wait returns once a callback came for each of ids.
func (s *callbackSink) wait(ctx context.Context, ids []string) ([]callbackSeen, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.got)
		s.mu.Unlock()
		if n >= len(ids) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("callbacks for %d of %d calls: %w", n, len(ids), ctx.Err())
		case <-s.notify:
		case <-tick.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]callbackSeen, 0, len(ids))
	var missing []string
	for _, id := range ids {
		cb, ok := s.got[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out = append(out, cb)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%d callbacks for unknown call ids; no callback for %d accepted calls, e.g. %s", len(s.got)-len(out), len(missing), missing[0])
	}
	return out, nil
}

func renderAsync(rounds []asyncRound, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "One function (fn-hostname, `%s=%d`), %d callers, every request a POST of a %d-byte body; %d rounds, "+
		"each running the three rows of the first table back to back, each round starting with another. "+
		"The load comes from a Go loop in the driver, not wrk (it needs each answer's `X-Call-Id` and a count bound), "+
		"so requests/s are not comparable with section 1's.\n\n",
		annotationAsyncInflight, asyncConns, asyncConns, len(asyncBody), len(rounds))
	fmt.Fprintf(&b, "- **sync**: `POST /function/%s`, %s (at most %d requests) after a warm-up.\n", asyncFn, d, asyncCellMax)
	fmt.Fprintf(&b, "- **accept**: `POST /async-function/%s` without callback, the same bounds, after a warm-up whose "+
		"calls are run first: each 202 comes after the call was fsynced to the state file. The queue runs the calls "+
		"meanwhile (%d at a time), as it does in use; the next step waits until it has run them all. Its daemon CPU is "+
		"counted until then, so CPU/call is accept + run.\n", asyncFn, asyncConns)
	fmt.Fprintf(&b, "- **drain**: %d calls accepted as fast as the callers can, each with `X-Callback-Url` to a server in "+
		"the driver on 127.0.0.1; the rate is the calls divided by the time from the first accept sent to the last "+
		"first callback received; CPU/call is accept + run + callback.\n\n", asyncDrainCalls)
	b.WriteString("CPU/call is the daemon's CPU time divided by the calls. The first table gives the median of the rounds " +
		"for each cell; the ratios are taken within each round and given as their median (lowest – highest).\n\n")

	col := func(f func(a asyncRound) float64) []float64 {
		out := make([]float64, len(rounds))
		for i, a := range rounds {
			out[i] = f(a)
		}
		return out
	}
	dur := func(f func(a asyncRound) time.Duration) string {
		return fmtDur(time.Duration(medianF(col(func(a asyncRound) float64 { return float64(f(a)) }))))
	}
	sum := func(f func(a asyncRound) int) (n int) {
		for _, a := range rounds {
			n += f(a)
		}
		return n
	}
	b.WriteString("| what | calls/s | p50 | p99 | daemon CPU/call | errors |\n|---|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| sync `POST /function/` | %.0f | %s | %s | %s | %d |\n", medianF(col(func(a asyncRound) float64 { return a.sync.rps() })),
		dur(func(a asyncRound) time.Duration { return a.sync.p50() }), dur(func(a asyncRound) time.Duration { return a.sync.p99() }),
		dur(func(a asyncRound) time.Duration { return a.syncCPU }), sum(func(a asyncRound) int { return a.sync.errors() }))
	fmt.Fprintf(&b, "| accept `POST /async-function/` | %.0f | %s | %s | %s | %d |\n", medianF(col(func(a asyncRound) float64 { return a.accept.rps() })),
		dur(func(a asyncRound) time.Duration { return a.accept.p50() }), dur(func(a asyncRound) time.Duration { return a.accept.p99() }),
		dur(func(a asyncRound) time.Duration { return a.acceptCPU }), sum(func(a asyncRound) int { return a.accept.errors() }))
	fmt.Fprintf(&b, "| drain: %d accepted → all callbacks | %.0f | | | %s | %d not 200 |\n", asyncDrainCalls,
		medianF(col(func(a asyncRound) float64 { return a.drain.rate() })), dur(func(a asyncRound) time.Duration { return a.drainCPU }),
		sum(func(a asyncRound) int { return a.drain.non200 }))

	per := func(f func(a asyncRound) float64, format func(float64) string) string { return spread(col(f), format) }
	acceptSync := col(func(a asyncRound) float64 { return ratio(a.accept.rps(), a.sync.rps()) })
	b.WriteString("\n| ratio | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| accept / sync calls/s | %s | ≥ 0.50%s |\n", spread(acceptSync, fmtRatio), verdict(medianF(acceptSync) >= 0.5))
	fmt.Fprintf(&b, "| drain / sync calls/s | %s | — |\n", per(func(a asyncRound) float64 { return ratio(a.drain.rate(), a.sync.rps()) }, fmtRatio))
	fmt.Fprintf(&b, "| accept p99 / sync p99 | %s | — |\n", per(func(a asyncRound) float64 { return ratio(a.accept.p99().Seconds(), a.sync.p99().Seconds()) }, fmtRatio))
	fmt.Fprintf(&b, "| accept + run CPU/call / sync CPU/call | %s | — |\n", per(func(a asyncRound) float64 { return ratio(a.acceptCPU.Seconds(), a.syncCPU.Seconds()) }, fmtRatio))
	fmt.Fprintf(&b, "| drain CPU/call / sync CPU/call | %s | — |\n", per(func(a asyncRound) float64 { return ratio(a.drainCPU.Seconds(), a.syncCPU.Seconds()) }, fmtRatio))

	b.WriteString("\nEach round: the accept cell's 202s, the calls the daemon counted as accepted in it " +
		"(`queue_worker_messages_submitted_total`) and those it had not finished when the cell ended; the drain run's " +
		"accept phase (first accept sent → last 202) and end (→ last callback), and its calls that were retried. " +
		"Run-only CPU/call is the daemon's CPU from the end of the accept cell until the queue was empty, divided by " +
		"the calls not finished at the end (ticks of 10 ms, and the polls of `/metrics` every 100 ms are counted in): " +
		"what running a queued call costs with no accepts coming in. fsync is the disk's floor under a durable " +
		"accept, measured just before the accept cell: one 4 KiB overwrite + fdatasync(2) in the run's temporary " +
		"directory (the state file's file system), 200 in a row, p50 / p99.\n\n")
	b.WriteString("| round | fsync p50 / p99 | accept: 202s | counted | not finished at the end | run-only CPU/call | drain: accepted after | all callbacks after | retried |\n" +
		"|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, a := range rounds {
		differs := ""
		if int(a.counted) != a.accept.ok {
			differs = " (**differs**)"
		}
		fmt.Fprintf(&b, "| %d | %s / %s | %d | %.0f%s | %.0f (%s) | %s | %s | %s | %d |\n", i+1, fmtDur(a.fsync50), fmtDur(a.fsync99), a.accept.ok, a.counted, differs, a.backlog,
			fmtPct(ratio(a.backlog, float64(a.accept.ok))), fmtDur(a.runCPU), fmtDur(a.drain.acceptedIn), fmtDur(a.drain.doneIn), a.drain.retried)
	}
	return b.String()
}
