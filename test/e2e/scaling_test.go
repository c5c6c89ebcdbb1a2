package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Scaling and scale to zero (issue 10). Two kinds of tests live here:
//
//   - Reproductions of the OpenFaaS certifier's scaling tests
//     (openfaas/certifier tests/scaling_test.go @2e39d058, summarised in
//     CONTRACT-2.md §2.6), named after them: Test_ScaleMinimum,
//     Test_ScaleFromZeroDuringInvoke, Test_ScaleUpAndDownFromThroughPut,
//     Test_ScalingDisabledViaLabels. They run against a daemon with its
//     default settings, as the certifier would meet it, and assert what the
//     certifier asserts (plus, marked as such, a little more). The
//     certifier deploys functions/alpine with fprocess sha512sum; fn-echo
//     stands in for it. The certifier skips all of them for a provider that
//     calls itself faasd; dockerfaasd calls itself dockerfaasd.
//   - Tests of dockerfaasd's own behaviour (Pro-style types, the two tiers
//     of scale to zero, wake-ups, no request lost) on short settings, so
//     the file runs in about a minute and a half with its tests in parallel.
//
// Every load loop is bounded in time and in requests and goes to 127.0.0.1.

// Short settings of the daemons of the non-certifier tests (the daemon's
// defaults in parentheses).
const (
	scaleEvery    = 250 * time.Millisecond // AUTOSCALE_INTERVAL (1s)
	scaleDownEnv  = 3 * time.Second        // SCALE_DOWN_WINDOW (30s)
	parkRetention = 4 * time.Second        // PARK_RETENTION (10m)
	holdCalls     = 30 * time.Second       // READY_WAIT (10s): a bound, generous for a loaded 2-core CI box

	zeroDuration = 3 * time.Second // com.openfaas.scale.zero-duration of the functions that idle
	downWindow   = 5 * time.Second // com.openfaas.scale.down.window of the Pro-mode function
)

// Scale labels, as OpenFaaS spells them (pkg/scaling has the same names;
// the suite keeps its own copy, like it does for the io.dockerfaas labels).
const (
	lblMin          = "com.openfaas.scale.min"
	lblMax          = "com.openfaas.scale.max"
	lblZero         = "com.openfaas.scale.zero"
	lblZeroDuration = "com.openfaas.scale.zero-duration"
	lblType         = "com.openfaas.scale.type"
	lblTarget       = "com.openfaas.scale.target"
	lblDownWindow   = "com.openfaas.scale.down.window"
)

// shortScaling are the daemon settings of the non-certifier tests; options
// given after them win.
func shortScaling(extra ...daemonOption) []daemonOption {
	return append([]daemonOption{
		withEnv("AUTOSCALE_INTERVAL", scaleEvery.String()),
		withEnv("SCALE_DOWN_WINDOW", scaleDownEnv.String()),
		withEnv("PARK_RETENTION", parkRetention.String()),
		withEnv("READY_WAIT", holdCalls.String()),
	}, extra...)
}

// scaleLabels builds a label map from key, value pairs.
func scaleLabels(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// certifierLoad is the certifier's throughput load (2 workers × 5 requests
// per second, 1000 requests at most), bounded here to maxDuration. Each
// request is a POST with a body, like the certifier's invocations of
// sha512sum.
func certifierLoad(t *testing.T, d *daemon, maxDuration time.Duration, pathOf func(w int) string) *loadLoop {
	t.Helper()
	return startLoad(t, d, loadOptions{
		workers: 2, every: 200 * time.Millisecond, maxDuration: maxDuration, maxRequests: 1000,
		request: func(w, i int) (string, string, []byte) {
			return http.MethodPost, pathOf(w), []byte(fmt.Sprintf("certifier w%d-%d", w, i))
		},
	})
}

// replicas reads GET /system/function/NAME: replicas (desired, what the
// certifier reads) and availableReplicas.
func (d *daemon) replicas(name string) (replicas, available uint64, err error) {
	fs, _, err := d.getFunction(name, defaultNamespace)
	return fs.Replicas, fs.AvailableReplicas, err
}

// waitScale polls the function until ok(replicas, available) holds and
// returns when it did.
func (d *daemon) waitScale(name string, timeout time.Duration, what string, ok func(replicas, available uint64) bool) time.Time {
	d.t.Helper()
	eventually(d.t, timeout, pollInterval, func() error {
		r, a, err := d.replicas(name)
		if err != nil {
			return err
		}
		if !ok(r, a) {
			return fmt.Errorf("%s: replicas=%d availableReplicas=%d, want %s", name, r, a, what)
		}
		return nil
	})
	return time.Now()
}

// waitPaused waits until the function has exactly n containers (any
// state), each paused in Docker (list state "paused" and State.Paused on
// inspection), and returns their IDs, sorted.
func (d *daemon) waitPaused(name string, n int, timeout time.Duration) []string {
	d.t.Helper()
	var ids []string
	eventually(d.t, timeout, 100*time.Millisecond, func() error {
		cs, err := d.fnContainers(name, defaultNamespace, true)
		if err != nil {
			return err
		}
		if len(cs) != n {
			return fmt.Errorf("%s: %d containers %s, want %d paused", name, len(cs), describeContainers(cs), n)
		}
		ids = ids[:0]
		for _, c := range cs {
			if c.State != "paused" {
				return fmt.Errorf("%s: container %s is %s, want paused", name, short(c.ID), c.State)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ins, err := d.docker.ContainerInspect(ctx, c.ID)
			cancel()
			if err != nil {
				return err
			}
			if ins.State == nil || !ins.State.Paused {
				return fmt.Errorf("%s: container %s lists as paused but inspects as %+v", name, short(c.ID), ins.State)
			}
			ids = append(ids, c.ID)
		}
		return nil
	})
	sort.Strings(ids)
	return ids
}

// waitNoContainers waits until the function has no container in any state.
func (d *daemon) waitNoContainers(name string, timeout time.Duration) {
	d.t.Helper()
	eventually(d.t, timeout, 100*time.Millisecond, func() error {
		cs, err := d.fnContainers(name, defaultNamespace, true)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			return fmt.Errorf("%s: %d containers left %s, want none", name, len(cs), describeContainers(cs))
		}
		return nil
	})
}

// replicaPoint is one reading of GET /system/function.
type replicaPoint struct {
	at                  time.Time
	replicas, available uint64
	err                 error
}

// replicaTrace polls GET /system/function in the background.
type replicaTrace struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	points []replicaPoint
}

// traceReplicas reads the function's replicas every interval until stopped
// or until limit passed.
func (d *daemon) traceReplicas(name string, every, limit time.Duration) *replicaTrace {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	tr := &replicaTrace{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			r, a, err := d.replicas(name)
			tr.mu.Lock()
			tr.points = append(tr.points, replicaPoint{at: time.Now(), replicas: r, available: a, err: err})
			tr.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	d.t.Cleanup(func() { tr.stop() })
	return tr
}

// stop ends the trace and returns its points in order.
func (tr *replicaTrace) stop() []replicaPoint {
	tr.cancel()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.points)
}

// changes formats the points where replicas or availableReplicas changed,
// relative to t0, for logs and failure messages.
func changes(points []replicaPoint, t0 time.Time) string {
	var b strings.Builder
	last := ""
	for _, p := range points {
		cur := fmt.Sprintf("%d/%d", p.replicas, p.available)
		if p.err != nil {
			cur = "error"
		}
		if cur != last {
			fmt.Fprintf(&b, " %+.1fs:%s", p.at.Sub(t0).Seconds(), cur)
			last = cur
		}
	}
	return "[replicas/available" + b.String() + "]"
}

// eventWatch records Docker's container events of one function.
type eventWatch struct {
	mu   sync.Mutex
	msgs []events.Message
	err  error
}

// watchEvents follows the container events of function name of this
// daemon's instance until ctx ends (replaying from a second before the
// call, so nothing is missed while the stream opens).
func (d *daemon) watchEvents(ctx context.Context, name string) *eventWatch {
	w := &eventWatch{}
	msgs, errs := d.docker.Events(ctx, events.ListOptions{
		Since: fmt.Sprint(time.Now().Add(-time.Second).Unix()),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", labelInstance+"="+d.instance),
			filters.Arg("label", labelFunction+"="+name),
		),
	})
	go func() {
		for {
			select {
			case m := <-msgs:
				w.mu.Lock()
				w.msgs = append(w.msgs, m)
				w.mu.Unlock()
			case err := <-errs:
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
		}
	}()
	return w
}

// times returns when Docker reported action (create, pause, unpause,
// destroy, …) at or after since.
func (w *eventWatch) times(action events.Action, since time.Time) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Time
	for _, m := range w.msgs {
		at := time.Unix(0, m.TimeNano)
		if m.Action == action && !at.Before(since) {
			out = append(out, at)
		}
	}
	return out
}

// count is len(times(action, since)).
func (w *eventWatch) count(action events.Action, since time.Time) int {
	return len(w.times(action, since))
}

// summary counts the lifecycle events at or after since, by action.
func (w *eventWatch) summary(since time.Time) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]int{}
	for _, e := range w.msgs {
		switch e.Action {
		case events.ActionCreate, events.ActionStart, events.ActionPause, events.ActionUnPause,
			events.ActionDie, events.ActionKill, events.ActionStop, events.ActionDestroy:
			if !time.Unix(0, e.TimeNano).Before(since) {
				m[string(e.Action)]++
			}
		}
	}
	if w.err != nil && !strings.Contains(w.err.Error(), "context canceled") {
		m["stream error: "+w.err.Error()]++
	}
	return m
}

// callsAtOnce sends n POSTs to the function at the same moment (released
// together once every goroutine is ready), each with the body tag-i, and
// returns their samples in order.
func callsAtOnce(d *daemon, name string, n int, tag string) []loadSample {
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: n, Proxy: nil},
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := make([]loadSample, n)
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			s := send(ctx, client, d, http.MethodPost, "/function/"+name, []byte(fmt.Sprintf("%s-%d", tag, i)))
			s.worker = i
			out[i] = s
		}()
	}
	ready.Wait()
	close(release)
	done.Wait()
	return out
}

// callFailed reports whether a call failed: a transport error, a status
// other than 200, or (except for /sleep, which answers plain text) a 200
// that fn-echo did not write.
func callFailed(s loadSample) bool {
	if s.err != nil || s.status != http.StatusOK {
		return true
	}
	return !strings.Contains(s.path, "/sleep") && s.decodeErr != nil
}

// checkCalls fails the test for every failed call of samples (showing up
// to ten) and for a POST whose echoed body is not the one sent, and returns
// the number of calls.
func checkCalls(t *testing.T, what string, samples []loadSample) int {
	t.Helper()
	var bad []string
	for _, s := range samples {
		if callFailed(s) {
			bad = append(bad, s.String())
		}
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], "…")
		}
		t.Errorf("%s: %d of %d calls failed:\n  %s", what, countIf(samples, callFailed), len(samples), strings.Join(bad, "\n  "))
	}
	return len(samples)
}

// checkEchoed fails the test for a burst answer that does not echo its own
// request body (tag-i): an answer meant for another call.
func checkEchoed(t *testing.T, what, tag string, samples []loadSample) {
	t.Helper()
	for i, s := range samples {
		if callFailed(s) {
			continue // reported by checkCalls
		}
		if want := fmt.Sprintf("%s-%d", tag, i); s.reply.Body != want {
			t.Errorf("%s: call %d was answered with body %q, want %q", what, i, s.reply.Body, want)
		}
	}
}

func countIf(samples []loadSample, f func(loadSample) bool) int {
	n := 0
	for _, s := range samples {
		if f(s) {
			n++
		}
	}
	return n
}

// hostnames returns the fn-echo hostnames that answered, with counts.
func hostnames(samples []loadSample) map[string]int {
	m := map[string]int{}
	for _, s := range samples {
		if !callFailed(s) && s.decodeErr == nil {
			m[s.reply.Hostname]++
		}
	}
	return m
}

// shortSet is the set of 12-character container IDs (fn-echo's hostname).
func shortSet(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[short(id)] = true
	}
	return m
}

// ---------------------------------------------------------------------------
// Certifier reproductions (daemon defaults).

// Test_ScaleMinimum reproduces the certifier's Test_ScaleMinimum: a
// function deployed with com.openfaas.scale.min=2 reports replicas 2 on the
// very next GET after the deploy's 202. Beyond the certifier: both
// replicas come up and the function answers.
func Test_ScaleMinimum(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "cert-scale-minimum"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "2")))
	r, _, err := d.replicas(name)
	if err != nil {
		t.Fatalf("GET right after the deploy: %v", err)
	}
	if r != 2 {
		t.Errorf("GET right after the deploy: replicas=%d, want 2 (com.openfaas.scale.min=2)", r)
	}
	d.waitReady(name, defaultNamespace, 2)
	if res := d.invoke(http.MethodPost, "/function/"+name, []byte("min"), nil); res.Status != http.StatusOK {
		t.Errorf("invoke: %s", res)
	}
}

// Test_ScaleFromZeroDuringInvoke reproduces the certifier's
// Test_ScaleFromZeroDuringInvoke: once availableReplicas ≥ 1 (waited for up
// to a minute), POST /system/scale-function with replicas 0 succeeds (go-sdk,
// any 2xx), the next GET reports replicas 0, and POST /function/NAME then
// answers 200 (the daemon holds the call and wakes the function, the job
// OpenFaaS's gateway does with scale_from_zero). Beyond the certifier: the
// answer is fn-echo's, for this call, and the function is back at min (1).
func Test_ScaleFromZeroDuringInvoke(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "cert-scale-from-zero"
	d.deploy(simpleSpec(name, img, nil, nil))
	d.waitScale(name, time.Minute, "availableReplicas ≥ 1", func(_, a uint64) bool { return a >= 1 })

	ctx, cancel := sdkCtx()
	defer cancel()
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 0); err != nil {
		t.Fatalf("scale-function replicas 0: %v", err)
	}
	r, _, err := d.replicas(name)
	if err != nil {
		t.Fatal(err)
	}
	if r != 0 {
		t.Fatalf("GET after scale-function 0: replicas=%d, want 0", r)
	}
	start := time.Now()
	res := d.invoke(http.MethodPost, "/function/"+name, []byte("from zero"), nil)
	t.Logf("first call after scale-function 0 answered %d in %s", res.Status, time.Since(start).Round(time.Millisecond))
	if res.Status != http.StatusOK {
		t.Fatalf("POST /function/%s after scale to 0: %s, want 200", name, res)
	}
	if rep, err := decodeEcho(res); err != nil || rep.Body != "from zero" {
		t.Errorf("answer after scale to 0: %s (%v)", res, err)
	}
	// That call may have been served by the replica before it left the
	// routing (it races the scale to zero by a few milliseconds), which
	// leaves the function at zero. Once nothing is routable, a call must
	// be held, wake the function to min and get 200.
	d.waitScale(name, readyTimeout, "0/0", func(r, a uint64) bool { return r == 1 && a == 1 || r == 0 && a == 0 })
	if res := d.invoke(http.MethodPost, "/function/"+name, []byte("again"), nil); res.Status != http.StatusOK {
		t.Fatalf("POST /function/%s at zero: %s, want 200", name, res)
	}
	d.waitScale(name, readyTimeout, "1/1 (woken to min)", func(r, a uint64) bool { return r == 1 && a == 1 })
}

// Test_ScaleUpAndDownFromThroughPut reproduces the certifier's
// Test_ScaleUpAndDownFromThroughPut: min 1, max 2 and no type or target
// label (OpenFaaS CE's alert-driven scaling: above LEGACY_SCALE_RPS, 5 by
// default). 2 workers × 5 requests/s; within a minute replicas ≥ 2; the load
// stops; within a minute replicas ≤ 1, and then exactly 1. The certifier
// sends its whole 1000 requests (100 s); here the load stops as soon as
// replicas ≥ 2 is seen (at most 100 s), which is all the certifier observes.
// Beyond the certifier: no call of the load fails, and one container is left.
func Test_ScaleUpAndDownFromThroughPut(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "cert-throughput"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "1", lblMax, "2")))
	d.waitReady(name, defaultNamespace, 1)

	tr := d.traceReplicas(name, 500*time.Millisecond, 4*time.Minute)
	loadAt := time.Now()
	load := certifierLoad(t, d, 100*time.Second, func(int) string { return "/function/" + name })
	upAt := d.waitScale(name, time.Minute, "replicas ≥ 2 within a minute of load", func(r, _ uint64) bool { return r >= 2 })
	samples := load.stop()
	stopAt := time.Now()
	downAt := d.waitScale(name, time.Minute, "replicas ≤ 1 within a minute of cool-down", func(r, _ uint64) bool { return r <= 1 })
	if r, _, err := d.replicas(name); err != nil || r != 1 {
		t.Errorf("final replicas=%d (%v), want 1", r, err)
	}
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 1, func(string) error { return nil }) })
	t.Logf("replicas ≥ 2 after %s of load; ≤ 1 after %s of cool-down; %d calls %v; %s",
		upAt.Sub(loadAt).Round(time.Millisecond), downAt.Sub(stopAt).Round(time.Millisecond),
		len(samples), loadSummary(samples), changes(tr.stop(), loadAt))
	checkCalls(t, "certifier load", samples)
}

// Test_ScalingDisabledViaLabels reproduces the certifier's
// Test_ScalingDisabledViaLabels: min = max = 2 and the certifier's load;
// replicas are still 2 afterwards. Beyond the certifier: replicas are 2 at
// every reading during the load and a cool-down, and the load lasts until
// a control function (min 1, max 2) under the same load in the same
// daemon has scaled up plus 5 s — so the static function stayed put while
// the autoscaler demonstrably acted on that load. The certifier's load
// lasts 100 s; this one at most 60 s.
func Test_ScalingDisabledViaLabels(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const static, control = "cert-disabled", "cert-control"
	d.deploy(simpleSpec(static, img, nil, scaleLabels(lblMin, "2", lblMax, "2")))
	d.deploy(simpleSpec(control, img, nil, scaleLabels(lblMin, "1", lblMax, "2")))
	d.waitReady(static, defaultNamespace, 2)
	d.waitReady(control, defaultNamespace, 1)

	tr := d.traceReplicas(static, 250*time.Millisecond, 3*time.Minute)
	loadAt := time.Now()
	staticLoad := certifierLoad(t, d, 60*time.Second, func(int) string { return "/function/" + static })
	controlLoad := certifierLoad(t, d, 60*time.Second, func(int) string { return "/function/" + control })
	controlUp := false
	if err := poll(time.Minute, pollInterval, func() error {
		r, _, err := d.replicas(control)
		if err == nil && r < 2 {
			err = fmt.Errorf("control %s: replicas=%d", control, r)
		}
		return err
	}); err != nil {
		t.Errorf("the control function never scaled up under the certifier's load, so the static function's "+
			"steadiness shows nothing: %v", err)
	} else {
		controlUp = true
		t.Logf("control function scaled up %s after the load started", time.Since(loadAt).Round(time.Millisecond))
		time.Sleep(5 * time.Second)
	}
	samples := append(staticLoad.stop(), controlLoad.stop()...)
	time.Sleep(5 * time.Second) // a cool-down: legacy scaling would move back to min here
	points := tr.stop()
	t.Logf("static function %s; %d calls %v (control scaled up: %t)", changes(points, loadAt), len(samples), loadSummary(samples), controlUp)
	for _, p := range points {
		if p.err == nil && p.replicas != 2 {
			t.Errorf("min = max = 2: replicas=%d at %+.1fs", p.replicas, p.at.Sub(loadAt).Seconds())
			break
		}
	}
	if r, _, err := d.replicas(static); err != nil || r != 2 {
		t.Errorf("after the load: replicas=%d (%v), want 2", r, err)
	}
	checkCalls(t, "certifier load", samples)
}

// ---------------------------------------------------------------------------
// dockerfaasd's own scaling behaviour (short settings).

// TestScaleCapacityMinToMaxAndBackAfterWindow drives a Pro-style function
// (type capacity, target 2 calls in flight per replica, min 1, max 3,
// down.window 5s) with twelve concurrent callers of fn-echo's /sleep (500 ms):
// it goes from min to max (every replica ready), never outside [min, max];
// once the load stops it stays at max for at least down.window (1 s of slack
// for timers), then goes back to min with one container left. No call fails.
func TestScaleCapacityMinToMaxAndBackAfterWindow(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortScaling()...)
	img := fnImage(t, fnEcho)
	const name = "capacity"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "1", lblMax, "3",
		lblType, "capacity", lblTarget, "2", lblDownWindow, downWindow.String())))
	d.waitReady(name, defaultNamespace, 1)
	if r, _, err := d.replicas(name); err != nil || r != 1 {
		t.Fatalf("before the load: replicas=%d (%v), want min 1", r, err)
	}

	tr := d.traceReplicas(name, 200*time.Millisecond, 4*time.Minute)
	loadAt := time.Now()
	load := startLoad(t, d, loadOptions{
		workers: 12, maxDuration: 90 * time.Second, maxRequests: 4000, pause: 5 * time.Millisecond,
		request: func(int, int) (string, string, []byte) {
			return http.MethodGet, "/function/" + name + "/sleep?d=500ms", nil
		},
	})
	maxAt := d.waitScale(name, time.Minute, "3/3 (max, all ready)", func(r, a uint64) bool { return r == 3 && a == 3 })
	time.Sleep(2 * time.Second) // serve at max for a while
	samples := load.stop()
	stopAt := time.Now()
	minAt := d.waitScale(name, time.Minute+downWindow, "1 (min)", func(r, _ uint64) bool { return r == 1 })
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 1, func(string) error { return nil }) })
	points := tr.stop()
	t.Logf("min→max %s after the load started; back to min %s after it stopped; %d calls %v; %s",
		maxAt.Sub(loadAt).Round(time.Millisecond), minAt.Sub(stopAt).Round(time.Millisecond),
		len(samples), slowSummary(samples), changes(points, loadAt))

	for _, p := range points {
		if p.err == nil && (p.replicas < 1 || p.replicas > 3) {
			t.Errorf("replicas=%d at %+.1fs, outside [1, 3]", p.replicas, p.at.Sub(loadAt).Seconds())
		}
		if p.err == nil && p.at.After(stopAt) && p.replicas < 3 {
			if early := p.at.Sub(stopAt); early < downWindow-time.Second {
				t.Errorf("scaled down %s after the load stopped, before its down.window of %s", early.Round(time.Millisecond), downWindow)
			}
			break
		}
	}
	checkCalls(t, "capacity load", samples)
}

// TestScaleMinEqualsMaxNeverMoves: min = max = 2 pins a function even with
// a type, a target it exceeds eightfold and scale.zero: under eight
// concurrent callers for 10 s and then idle for more than twice its
// zero-duration, replicas read 2 at every reading, both containers keep
// running (not paused), and Docker saw no container created, paused or
// destroyed.
func TestScaleMinEqualsMaxNeverMoves(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortScaling()...)
	img := fnImage(t, fnEcho)
	const name = "pinned"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "2", lblMax, "2", lblType, "capacity",
		lblTarget, "1", lblZero, "true", lblZeroDuration, zeroDuration.String())))
	d.waitReady(name, defaultNamespace, 2)
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 2, func(string) error { return nil }) })
	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := d.watchEvents(ctx, name)
	time.Sleep(time.Second) // let the replay of the deploy's events pass
	from := time.Now()

	tr := d.traceReplicas(name, 250*time.Millisecond, 2*time.Minute)
	load := startLoad(t, d, loadOptions{
		workers: 8, maxDuration: 10 * time.Second, maxRequests: 3000, pause: 10 * time.Millisecond,
		request: func(int, int) (string, string, []byte) {
			return http.MethodGet, "/function/" + name + "/sleep?d=300ms", nil
		},
	})
	time.Sleep(10 * time.Second)
	samples := load.stop()
	time.Sleep(2*zeroDuration + time.Second) // idle: a function that idles would be paused by now
	points := tr.stop()
	t.Logf("%d calls %v; %s; Docker events since the load: %v", len(samples), slowSummary(samples), changes(points, from), ev.summary(from))

	for _, p := range points {
		if p.err == nil && (p.replicas != 2 || p.available != 2) {
			t.Errorf("min = max = 2 moved: replicas=%d available=%d at %+.1fs", p.replicas, p.available, p.at.Sub(from).Seconds())
			break
		}
	}
	if err := d.replicasAre(name, 2, func(string) error { return nil }); err != nil {
		t.Errorf("after load and idle: %v", err)
	}
	if now, err := d.runningIDs(name, defaultNamespace); err != nil || !slices.Equal(now, ids) {
		t.Errorf("running containers %v (%v), want the same two %v", shortIDs(now), err, shortIDs(ids))
	}
	for _, a := range []events.Action{events.ActionCreate, events.ActionPause, events.ActionDestroy} {
		if n := ev.count(a, from); n > 0 {
			t.Errorf("Docker saw %d %s event(s) of a function pinned at min = max", n, a)
		}
	}
	checkCalls(t, "load on a pinned function", samples)
}

// TestScaleToZeroByAPIThenInvoke (PARK_RETENTION at its default, so the
// paused tier is what a call finds): a function with min 2 scaled to 0 by
// the API reads replicas 0 at once, both replicas get paused in Docker and
// availableReplicas drops to 0; one call then answers 200, the function
// reads replicas 2 (min) again with the same two containers resumed, and
// Docker saw two unpauses and no create. Scaled to 0 again, sixteen
// concurrent calls all answer 200 with their own bodies, from those two
// containers, and the function woke once: two unpauses, no create.
func TestScaleToZeroByAPIThenInvoke(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("AUTOSCALE_INTERVAL", scaleEvery.String()), withEnv("READY_WAIT", holdCalls.String()))
	img := fnImage(t, fnEcho)
	const name = "api-zero"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "2")))
	d.waitReady(name, defaultNamespace, 2)
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 2, func(string) error { return nil }) })
	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := d.watchEvents(ctx, name)

	toZero := func(round string) {
		t.Helper()
		sctx, scancel := sdkCtx()
		defer scancel()
		if err := d.client().ScaleFunction(sctx, name, defaultNamespace, 0); err != nil {
			t.Fatalf("%s: scale-function 0: %v", round, err)
		}
		if r, _, err := d.replicas(name); err != nil || r != 0 {
			t.Fatalf("%s: GET right after scale-function 0: replicas=%d (%v), want 0", round, r, err)
		}
		if paused := d.waitPaused(name, 2, readyTimeout); !slices.Equal(paused, ids) {
			t.Fatalf("%s: paused containers %v, want the running ones %v", round, shortIDs(paused), shortIDs(ids))
		}
		d.waitScale(name, readyTimeout, "0/0", func(r, a uint64) bool { return r == 0 && a == 0 })
	}
	woke := func(round string, since time.Time) {
		t.Helper()
		d.waitScale(name, readyTimeout, "2/2 (woken to min)", func(r, a uint64) bool { return r == 2 && a == 2 })
		if now, err := d.runningIDs(name, defaultNamespace); err != nil || !slices.Equal(now, ids) {
			t.Errorf("%s: running containers %v (%v), want the two paused ones resumed %v", round, shortIDs(now), err, shortIDs(ids))
		}
		time.Sleep(time.Second) // Docker's events arrive asynchronously
		if n := ev.count(events.ActionUnPause, since); n != 2 {
			t.Errorf("%s: %d unpause events, want 2 (one wake of min=2 paused replicas); events %v", round, n, ev.summary(since))
		}
		if n := ev.count(events.ActionCreate, since); n != 0 {
			t.Errorf("%s: %d containers created, want none (the paused tier resumes); events %v", round, n, ev.summary(since))
		}
	}

	toZero("single call")
	at := time.Now()
	res := d.invoke(http.MethodPost, "/function/"+name, []byte("wake"), nil)
	t.Logf("single call at zero (paused tier): %d in %s", res.Status, time.Since(at).Round(time.Millisecond))
	if res.Status != http.StatusOK {
		t.Fatalf("call at zero: %s, want 200", res)
	}
	if rep, err := decodeEcho(res); err != nil || rep.Body != "wake" || !shortSet(ids)[rep.Hostname] {
		t.Errorf("call at zero: %s (%v), want fn-echo's echo from one of %v", res, err, shortIDs(ids))
	}
	woke("single call", at)

	toZero("burst")
	at = time.Now()
	burst := callsAtOnce(d, name, 16, "burst")
	t.Logf("16 concurrent calls at zero (paused tier): %v in %s, by replica %v", loadSummary(burst), time.Since(at).Round(time.Millisecond), hostnames(burst))
	checkCalls(t, "burst at zero", burst)
	checkEchoed(t, "burst at zero", "burst", burst)
	for h := range hostnames(burst) {
		if !shortSet(ids)[h] {
			t.Errorf("burst at zero: answered by %s, not one of the resumed replicas %v", h, shortIDs(ids))
		}
	}
	woke("burst", at)
}

// TestConcurrentCallsWakeRemovedFunctionOnce (PARK_RETENTION 1s): a
// function with min 2 scaled to 0 by the API is paused, then removed (no
// container left); sixteen concurrent calls all answer 200 with their own
// bodies, Docker created exactly two containers (one wake to min, not one
// per call), and the function ends at replicas 2 with two running
// containers, which are the ones that answered.
func TestConcurrentCallsWakeRemovedFunctionOnce(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortScaling(withEnv("PARK_RETENTION", "1s"))...)
	img := fnImage(t, fnEcho)
	const name = "wake-once"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "2")))
	d.waitReady(name, defaultNamespace, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := d.watchEvents(ctx, name)

	sctx, scancel := sdkCtx()
	defer scancel()
	if err := d.client().ScaleFunction(sctx, name, defaultNamespace, 0); err != nil {
		t.Fatalf("scale-function 0: %v", err)
	}
	if r, _, err := d.replicas(name); err != nil || r != 0 {
		t.Fatalf("GET right after scale-function 0: replicas=%d (%v), want 0", r, err)
	}
	d.waitNoContainers(name, readyTimeout)
	d.waitScale(name, readyTimeout, "0/0", func(r, a uint64) bool { return r == 0 && a == 0 })

	at := time.Now()
	burst := callsAtOnce(d, name, 16, "cold")
	t.Logf("16 concurrent calls at zero (removed tier): %v in %s, by replica %v", loadSummary(burst), time.Since(at).Round(time.Millisecond), hostnames(burst))
	checkCalls(t, "burst at zero", burst)
	checkEchoed(t, "burst at zero", "cold", burst)

	d.waitScale(name, readyTimeout, "2/2 (woken to min)", func(r, a uint64) bool { return r == 2 && a == 2 })
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 2, func(string) error { return nil }) })
	time.Sleep(time.Second) // Docker's events arrive asynchronously
	if n := ev.count(events.ActionCreate, at); n != 2 {
		t.Errorf("%d containers created for 16 concurrent calls, want 2 (one wake to min=2); events %v", n, ev.summary(at))
	}
	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	for h := range hostnames(burst) {
		if !shortSet(ids)[h] {
			t.Errorf("answered by %s, not one of the running replicas %v", h, shortIDs(ids))
		}
	}
}

// TestScaleToZeroPausedThenRemoved (PARK_RETENTION 4s): a function with
// scale.zero=true and zero-duration 3s goes, after its last call, to
// replicas 0 with its container paused in Docker (not before its
// zero-duration passed, by Docker's pause event, with 0.5 s of slack for the
// autoscaler's tick); a call then answers 200 from that same container,
// resumed. Idle again, it is paused again, and removed once PARK_RETENTION
// passed (by Docker's destroy event, 0.25 s of slack): no container left,
// replicas 0. A call then answers 200 from a new container, and the
// function is back at replicas 1.
func TestScaleToZeroPausedThenRemoved(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortScaling()...)
	img := fnImage(t, fnEcho)
	const name = "two-tiers"
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblZero, "true", lblZeroDuration, zeroDuration.String())))
	d.waitReady(name, defaultNamespace, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := d.watchEvents(ctx, name)

	call := func(tier string) echoReply {
		t.Helper()
		at := time.Now()
		res := d.invoke(http.MethodPost, "/function/"+name, []byte(tier), nil)
		t.Logf("call (%s): %d in %s", tier, res.Status, time.Since(at).Round(time.Millisecond))
		if res.Status != http.StatusOK {
			t.Fatalf("call (%s): %s, want 200", tier, res)
		}
		rep, err := decodeEcho(res)
		if err != nil || rep.Body != tier {
			t.Fatalf("call (%s): %s (%v)", tier, res, err)
		}
		return rep
	}
	// idles waits for the pause that follows the call sent at lastCall and
	// checks it came no sooner than zero-duration after it.
	idles := func(round string, lastCall time.Time, want string) {
		t.Helper()
		paused := d.waitPaused(name, 1, zeroDuration+readyTimeout)
		if paused[0] != want {
			t.Fatalf("%s: paused container %s, want %s", round, short(paused[0]), short(want))
		}
		d.waitScale(name, readyTimeout, "0/0", func(r, a uint64) bool { return r == 0 && a == 0 })
		time.Sleep(500 * time.Millisecond) // Docker's events arrive asynchronously
		ps := ev.times(events.ActionPause, lastCall)
		if len(ps) != 1 {
			t.Fatalf("%s: %d pause events since the last call, want 1; events %v", round, len(ps), ev.summary(lastCall))
		}
		idle := ps[0].Sub(lastCall)
		t.Logf("%s: paused %s after the last call was sent (zero-duration %s)", round, idle.Round(time.Millisecond), zeroDuration)
		if idle < zeroDuration-500*time.Millisecond {
			t.Errorf("%s: paused %s after the last call, before its zero-duration of %s", round, idle.Round(time.Millisecond), zeroDuration)
		}
	}

	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil || len(ids) != 1 {
		t.Fatalf("running containers %v (%v), want 1", ids, err)
	}
	first := ids[0]
	lastCall := time.Now()
	call("warm")
	idles("idle 1", lastCall, first)

	lastCall = time.Now()
	rep := call("paused-tier")
	if rep.Hostname != short(first) {
		t.Errorf("the call at the paused tier was served by %s, not the paused replica %s", rep.Hostname, short(first))
	}
	d.waitScale(name, readyTimeout, "1/1 (woken)", func(r, a uint64) bool { return r == 1 && a == 1 })
	if now, err := d.runningIDs(name, defaultNamespace); err != nil || !slices.Equal(now, []string{first}) {
		t.Errorf("after the wake from the paused tier: running %v (%v), want %s resumed", shortIDs(now), err, short(first))
	}

	idles("idle 2", lastCall, first)
	d.waitNoContainers(name, parkRetention+readyTimeout)
	d.waitScale(name, readyTimeout, "0/0", func(r, a uint64) bool { return r == 0 && a == 0 })
	time.Sleep(500 * time.Millisecond)
	pauses, destroys := ev.times(events.ActionPause, lastCall), ev.times(events.ActionDestroy, lastCall)
	if len(pauses) != 1 || len(destroys) != 1 {
		t.Fatalf("since the paused-tier call: %d pause and %d destroy events, want 1 and 1; events %v",
			len(pauses), len(destroys), ev.summary(lastCall))
	}
	kept := destroys[0].Sub(pauses[0])
	t.Logf("removed %s after it was paused (PARK_RETENTION %s)", kept.Round(time.Millisecond), parkRetention)
	if kept < parkRetention-250*time.Millisecond {
		t.Errorf("removed %s after it was paused, before PARK_RETENTION %s", kept.Round(time.Millisecond), parkRetention)
	}

	rep = call("removed-tier")
	if rep.Hostname == short(first) {
		t.Errorf("the call at the removed tier was served by the removed replica %s", short(first))
	}
	d.waitScale(name, readyTimeout, "1/1 (woken)", func(r, a uint64) bool { return r == 1 && a == 1 })
	now, err := d.runningIDs(name, defaultNamespace)
	if err != nil || len(now) != 1 || now[0] == first || short(now[0]) != rep.Hostname {
		t.Errorf("after the wake from the removed tier: running %v (%v), want one new container that answered (%s)", shortIDs(now), err, rep.Hostname)
	}
}

// TestScalingTransitionsLoseNoRequest sends calls through every transition
// of one function (capacity, target 5, min 1, max 3, down.window 3s,
// scale.zero with zero-duration 2s; PARK_RETENTION 2s) and requires every
// single answer to be 200 from fn-echo:
//
//  1. scale-up 1 → 3 under six callers of /sleep (300 ms) and one of /;
//  2. scale-down 3 → 1 with draining, while two callers send 20 calls/s each;
//  3. idle → paused: bursts of 3 calls after silences around zero-duration
//     (1.6 s … 3 s), so some land just before, at, or just after the pause;
//  4. wake from paused: silence until paused, then a burst of 4;
//  5. paused → removed: bursts of 3 after silences around zero-duration +
//     PARK_RETENTION (3.8 s … 5 s);
//  6. wake from removed: silence until removed, then a burst of 4.
//
// Each phase's transition must have happened (waited for), so none is
// vacuous; a call landing exactly on a transition's instant is likely but
// not guaranteed by the silences of phases 3 and 5.
func TestScalingTransitionsLoseNoRequest(t *testing.T) {
	t.Parallel()
	const (
		zd     = 2 * time.Second
		retain = 2 * time.Second
		name   = "transitions"
	)
	d := startDaemon(t, shortScaling(withEnv("PARK_RETENTION", retain.String()))...)
	img := fnImage(t, fnEcho)
	// Target 5 (4.5 per replica with the default proportion): the heavy
	// load's 11 sleeping callers ask for 3 replicas, while the bursts of 3
	// and 4 calls around the transitions ask for 1, so each tier holds
	// exactly one replica.
	d.deploy(simpleSpec(name, img, nil, scaleLabels(lblMin, "1", lblMax, "3", lblType, "capacity", lblTarget, "5",
		lblDownWindow, "3s", lblZero, "true", lblZeroDuration, zd.String())))
	d.waitReady(name, defaultNamespace, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := d.watchEvents(ctx, name)
	start := time.Now()

	total := 0
	phase := func(what string, samples []loadSample, since time.Time) {
		t.Helper()
		total += checkCalls(t, what, samples)
		t.Logf("%s: %d calls %v in %s", what, len(samples), slowSummary(samples), time.Since(since).Round(time.Millisecond))
	}

	// 1. scale-up
	at := time.Now()
	heavy := startLoad(t, d, loadOptions{
		workers: 12, maxDuration: 90 * time.Second, maxRequests: 5000, pause: 20 * time.Millisecond,
		request: func(w, i int) (string, string, []byte) {
			if w == 0 {
				return http.MethodGet, "/function/" + name + "/up", nil
			}
			return http.MethodGet, "/function/" + name + "/sleep?d=300ms", nil
		},
	})
	d.waitScale(name, time.Minute, "3/3", func(r, a uint64) bool { return r == 3 && a == 3 })
	time.Sleep(2 * time.Second)

	// 2. scale-down with drain: the light load starts before the heavy one stops
	light := startLoad(t, d, loadOptions{
		// One caller: with two, both are sometimes in flight at a sample,
		// and a lower target would rightly ask for 2 replicas.
		workers: 1, every: 25 * time.Millisecond, maxDuration: 90 * time.Second, maxRequests: 4000,
		request: func(w, i int) (string, string, []byte) {
			return http.MethodPost, "/function/" + name + "/down", []byte(fmt.Sprintf("down w%d-%d", w, i))
		},
	})
	phase("1 scale-up", heavy.stop(), at)
	at = time.Now()
	d.waitScale(name, time.Minute+3*time.Second, "1 replica", func(r, _ uint64) bool { return r == 1 })
	eventually(t, readyTimeout, pollInterval, func() error { return d.replicasAre(name, 1, func(string) error { return nil }) })
	time.Sleep(time.Second)
	phase("2 scale-down with drain", light.stop(), at)

	// 3. idle → paused, calls around the moment it pauses
	at = time.Now()
	var edge []loadSample
	for i, gap := range []time.Duration{1600, 1900, 2100, 2300, 2600, 3000} {
		time.Sleep(gap * time.Millisecond)
		tag := fmt.Sprintf("pause-edge%d", i)
		b := callsAtOnce(d, name, 3, tag)
		checkEchoed(t, "3 idle → paused", tag, b)
		edge = append(edge, b...)
	}
	phase("3 idle → paused (edges)", edge, at)

	// 4. wake from paused
	d.waitPaused(name, 1, zd+readyTimeout)
	at = time.Now()
	b := callsAtOnce(d, name, 4, "wake-paused")
	checkEchoed(t, "4 wake from paused", "wake-paused", b)
	phase("4 wake from paused", b, at)

	// 5. paused → removed, calls around the moment it is removed
	at = time.Now()
	edge = nil
	for i, gap := range []time.Duration{3800, 4200, 4600, 5000} {
		time.Sleep(gap * time.Millisecond)
		tag := fmt.Sprintf("remove-edge%d", i)
		b := callsAtOnce(d, name, 3, tag)
		checkEchoed(t, "5 paused → removed", tag, b)
		edge = append(edge, b...)
	}
	phase("5 paused → removed (edges)", edge, at)

	// 6. wake from removed
	d.waitPaused(name, 1, zd+readyTimeout)
	d.waitNoContainers(name, retain+readyTimeout)
	at = time.Now()
	b = callsAtOnce(d, name, 4, "wake-removed")
	checkEchoed(t, "6 wake from removed", "wake-removed", b)
	phase("6 wake from removed", b, at)
	// No settled count to wait for here: the burst of 4 is capacity load
	// (it may ask for more replicas) and zero-duration 2s idles it again
	// soon after; the 200s above and the Docker events below are the proof.

	time.Sleep(500 * time.Millisecond)
	seen := ev.summary(start)
	t.Logf("%d calls in all; Docker events: %v", total, seen)
	// The transitions Docker must have seen: three containers created by the
	// scale-up and the last wake, three destroyed (two drained, one removed
	// at zero), pauses and unpauses.
	for action, least := range map[string]int{"create": 3, "destroy": 3, "pause": 2, "unpause": 1} {
		if seen[action] < least {
			t.Errorf("Docker saw %d %s events, want at least %d: a transition did not happen", seen[action], action, least)
		}
	}
}
