package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Shape of the async fault tests: ASYNC_FAULT_CALLS calls (default 1000)
// accepted by ASYNC_FAULT_WORKERS goroutines at once (default 32) for a
// function taking ASYNC_FAULT_SLEEP_MS per call (default 20) with
// max-inflight 8, each with a callback to the test. While they drain, the
// daemon is SIGKILLed ASYNC_FAULT_KILLS times (default 2), or the Docker
// Engine is restarted (E2E_DOCKER_RESTART=1).
const (
	asyncFaultCalls    = 1000
	asyncFaultWorkers  = 32
	asyncFaultSleepMS  = 20
	asyncFaultKills    = 2
	asyncFaultInflight = "8"
	// asyncFaultDrain bounds the wait for every call to be called back
	// after the last disruption (generous: never a timing assertion).
	asyncFaultDrain = 4 * time.Minute
)

// asyncFault is one run: the accepted call ids and where their callbacks go.
type asyncFault struct {
	t    *testing.T
	d    *daemon
	recv *cbReceiver
	fn   string
	ids  []string
}

// newAsyncFault deploys fn-async as fn with the fault run's settings and
// waits until it is ready. attempts bounds the retries of a call, which
// must outlast the disruption.
func newAsyncFault(t *testing.T, d *daemon, fn, attempts, maxWait string) *asyncFault {
	t.Helper()
	img := fnImage(t, fnAsync)
	d.deploy(asyncSpec(fn, img, map[string]string{
		annMaxInflight:   asyncFaultInflight,
		annRetryAttempts: attempts,
		annRetryMinWait:  "100ms",
		annRetryMaxWait:  maxWait,
	}))
	d.waitReady(fn, defaultNamespace, 1)
	return &asyncFault{t: t, d: d, recv: newCallbackReceiver(t), fn: fn}
}

// accept sends n calls from workers goroutines; every one must be accepted
// with its own X-Call-Id echoed.
func (f *asyncFault) accept(n, workers, sleepMS int) {
	t := f.t
	suffix := randomSuffix(6)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("fault-%s-%05d", suffix, i)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	path := fmt.Sprintf("%s/async-function/%s?sleep=%dms", f.d.baseURL, f.fn, sleepMS)
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []string
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				err := f.acceptOne(client, path, ids[i])
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("accepted %d calls from %d goroutines in %s; %d callbacks had arrived by then",
		n-int(failed.Load()), workers, time.Since(start).Round(time.Millisecond), f.completed())
	if failed.Load() > 0 {
		t.Fatalf("%d of %d accepts failed with no fault injected, e.g. %v", failed.Load(), n, errs)
	}
	f.ids = ids
}

// acceptOne sends one call with plain HTTP.
func (f *asyncFault) acceptOne(c *http.Client, path, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader([]byte(id)))
	if err != nil {
		return err
	}
	req.SetBasicAuth(f.d.user, f.d.password)
	req.Header.Set("X-Call-Id", id)
	req.Header.Set("X-Callback-Url", f.recv.url("/fault"))
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || res.Header.Get("X-Call-Id") != id {
		return fmt.Errorf("accept %s: %d %q X-Call-Id %q", id, res.StatusCode, body, res.Header.Get("X-Call-Id"))
	}
	return nil
}

// completed counts the accepted calls with a callback carrying status 200.
func (f *asyncFault) completed() int {
	hits := f.recv.snapshot()
	n := 0
	for _, id := range f.ids {
		if slices.ContainsFunc(hits[id], func(h cbHit) bool { return h.Header.Get("X-Function-Status") == "200" }) {
			n++
		}
	}
	return n
}

// waitCompleted waits until at least n calls completed; it returns false
// (without failing) when that took longer than timeout.
func (f *asyncFault) waitCompleted(n int, timeout time.Duration) bool {
	return poll(timeout, 50*time.Millisecond, func() error {
		if c := f.completed(); c < n {
			return fmt.Errorf("%d of %d calls completed, waiting for %d", c, len(f.ids), n)
		}
		return nil
	}) == nil
}

// finish waits until every accepted call was called back with status 200
// and its record is succeeded with the callback delivered, and logs the
// summary. before are fn-async's counters read before a disruption that
// restarted the function (nil when its process lived through the run).
func (f *asyncFault) finish(what string, before *fnAsyncStats) {
	t, d := f.t, f.d
	start := time.Now()
	if err := poll(asyncFaultDrain, 250*time.Millisecond, func() error {
		if c := f.completed(); c < len(f.ids) {
			return fmt.Errorf("%d of %d accepted calls called back with status 200", c, len(f.ids))
		}
		return nil
	}); err != nil {
		var missing []string
		hits := f.recv.snapshot()
		for _, id := range f.ids {
			if len(hits[id]) == 0 && len(missing) < 10 {
				missing = append(missing, id)
			}
		}
		for _, id := range missing[:min(3, len(missing))] {
			rec, res, err := d.asyncRecordOf(id)
			t.Logf("no callback for %s: record %s (%s %v)", id, rec, res, err)
		}
		t.Fatalf("%s: calls lost: %v (e.g. %v)", what, err, missing)
	}
	t.Logf("%s: every call called back %s after the last disruption", what, time.Since(start).Round(time.Millisecond))

	// Every callback is for an accepted call, carries its own answer and a
	// 200; count the duplicates.
	hits := f.recv.snapshot()
	accepted := map[string]bool{}
	for _, id := range f.ids {
		accepted[id] = true
	}
	dupCallbacks, bad := 0, 0
	for id, hs := range hits {
		if !accepted[id] {
			t.Errorf("callback for call %q, which was never accepted (%d times)", id, len(hs))
			continue
		}
		dupCallbacks += len(hs) - 1
		for _, h := range hs {
			var r fnAsyncReply
			err := json.Unmarshal(h.Body, &r)
			if st := h.Header.Get("X-Function-Status"); st != "200" || err != nil || r.Body != id || h.Header.Get("X-Function-Name") != f.fn+"."+defaultNamespace {
				bad++
				if bad <= 5 {
					t.Errorf("callback for %s: status %q name %q body %q (%v), want 200 and its own answer", id, st, h.Header.Get("X-Function-Name"), h.Body, err)
				}
			}
		}
	}

	// Every record: succeeded, callback delivered (the delivery is
	// committed a moment after the receiver answered).
	left := f.ids
	err := poll(60*time.Second, time.Second, func() error {
		bad := f.recordsNotDone(left)
		left = left[:0:0]
		var eg []string
		for _, id := range f.ids {
			if why, ok := bad[id]; ok {
				left = append(left, id)
				if len(eg) < 3 {
					eg = append(eg, why)
				}
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d records not succeeded with the callback delivered, e.g. %v", len(left), eg)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}

	// Invocations the function saw more than once.
	dupInvocations, seen := 0, 0
	s, serr := d.fnStats(f.fn)
	if serr != nil {
		t.Errorf("fn-async counters: %v", serr)
	}
	starts := map[string][]int64{}
	if before != nil {
		for id, st := range before.Calls {
			starts[id] = append(starts[id], st...)
		}
	}
	for id, st := range s.Calls {
		starts[id] = append(starts[id], st...)
	}
	rerunAfterCallback := 0
	for _, id := range f.ids {
		if n := len(starts[id]); n > 0 {
			seen++
			dupInvocations += n - 1
		}
		// A call is called back once its final state is committed, and a
		// committed call is never run again: no attempt may begin after
		// the first callback arrived (the function and the test read the
		// same host clock).
		if len(hits[id]) == 0 || len(starts[id]) < 2 {
			continue
		}
		first := hits[id][0].At
		for _, h := range hits[id][1:] {
			if h.At.Before(first) {
				first = h.At
			}
		}
		for _, st := range starts[id] {
			if at := time.Unix(0, st); at.After(first) {
				rerunAfterCallback++
				if rerunAfterCallback <= 5 {
					t.Errorf("call %s ran again %s after its callback had been received: its committed final state was not kept", id, at.Sub(first))
				}
			}
		}
	}
	invocations := fmt.Sprintf("%d duplicate invocations", dupInvocations)
	if before != nil {
		// The function restarted: what it ran between the last reading and
		// its stop is counted nowhere.
		invocations = fmt.Sprintf("at least %d duplicate invocations (%d calls seen by the function; the engine restart replaced its process)", dupInvocations, seen)
	} else if seen != len(f.ids) {
		t.Errorf("the function saw %d of the %d completed calls; its process lived through the run, so it must have seen all", seen, len(f.ids))
	}
	t.Logf("async fault (%s): %d accepted, %d completed, %d duplicate callbacks, %s",
		what, len(f.ids), f.completed(), dupCallbacks, invocations)
}

// TestAsyncFaultKillDaemon accepts 1000 calls and SIGKILLs the daemon twice
// while they drain: every accepted call must still be run and called back
// with 200, and every record must end succeeded with its callback
// delivered; duplicates (at-least-once) are counted and logged. The state
// file passes both checks after a final graceful stop.
func TestAsyncFaultKillDaemon(t *testing.T) {
	t.Parallel()
	n := envInt(t, "ASYNC_FAULT_CALLS", asyncFaultCalls)
	workers := envInt(t, "ASYNC_FAULT_WORKERS", asyncFaultWorkers)
	sleepMS := envInt(t, "ASYNC_FAULT_SLEEP_MS", asyncFaultSleepMS)
	kills := envInt(t, "ASYNC_FAULT_KILLS", asyncFaultKills)
	d := startDaemon(t)
	f := newAsyncFault(t, d, "drain", "20", "1s")
	idsBefore, err := d.runningIDs("drain", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	f.accept(n, workers, sleepMS)

	for k := 1; k <= kills; k++ {
		// Kill k lands once k/(kills+2) of the calls completed (at once
		// when that many already did), so that every kill finds calls
		// queued and running.
		target := n * k / (kills + 2)
		if !f.waitCompleted(target, asyncFaultDrain) {
			t.Fatalf("kill %d: fewer than %d of %d calls completed within %s", k, target, n, asyncFaultDrain)
		}
		done := f.completed()
		d.Kill()
		t.Logf("kill %d: SIGKILL with %d of %d calls called back", k, done, n)
		if done == n {
			t.Logf("kill %d: every call had completed already; the kill found nothing in flight (slower calls: ASYNC_FAULT_SLEEP_MS)", k)
		}
		killed := time.Now()
		d.Restart()
		t.Logf("kill %d: the daemon answered /healthz again %s after the SIGKILL", k, time.Since(killed).Round(time.Millisecond))
	}
	idsAfter, err := d.runningIDs("drain", defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	var before *fnAsyncStats
	if !slices.Equal(idsBefore, idsAfter) {
		// Not expected (the restarted daemon adopts the replica), but then
		// the function's counters started over.
		t.Logf("the function's container changed across the kills: %v → %v", shortIDs(idsBefore), shortIDs(idsAfter))
		before = &fnAsyncStats{}
	}
	f.finish(fmt.Sprintf("%d × SIGKILL", kills), before)

	d.Stop()
	checkStateFile(t, "after the async fault run and a graceful stop", filepath.Join(d.stateDir, "state.db"))
}

// TestAsyncFaultDockerEngineRestart accepts 1000 calls and restarts the
// Docker Engine under the daemon while they drain (every container on the
// host stops): every accepted call must still be run and called back with
// 200. Like TestDriftDockerEngineRestart it only runs with
// E2E_DOCKER_RESTART=1 and is not parallel: go test runs it before the
// parallel tests start their containers.
func TestAsyncFaultDockerEngineRestart(t *testing.T) {
	if os.Getenv("E2E_DOCKER_RESTART") != "1" {
		t.Skip("restarts the Docker Engine, stopping every container on the host; set E2E_DOCKER_RESTART=1 to run it where nothing else uses Docker")
	}
	n := envInt(t, "ASYNC_FAULT_CALLS", asyncFaultCalls)
	workers := envInt(t, "ASYNC_FAULT_WORKERS", asyncFaultWorkers)
	sleepMS := envInt(t, "ASYNC_FAULT_SLEEP_MS", asyncFaultSleepMS)
	d := startDaemon(t)
	// The function is unreachable for as long as the engine is down and
	// its replica comes back: up to 100 attempts, 2 s apart at most.
	f := newAsyncFault(t, d, "survive", "100", "2s")
	f.accept(n, workers, sleepMS)

	target := n / 4
	if !f.waitCompleted(target, asyncFaultDrain) {
		t.Fatalf("fewer than %d of %d calls completed within %s", target, n, asyncFaultDrain)
	}
	before, err := d.fnStats("survive")
	if err != nil {
		t.Fatalf("fn-async counters before the engine restart: %v", err)
	}
	startedBefore := f.replicaStarts()
	done := f.completed()
	since := time.Now()
	restartDocker(t)
	t.Logf("engine restarted in %dms with %d of %d calls called back at its start", time.Since(since).Milliseconds(), done, n)
	if done == n {
		t.Logf("every call had completed before the engine restart; it found nothing in flight (slower calls: ASYNC_FAULT_SLEEP_MS)")
	}
	// The replica comes back (a new process: its counters start over).
	d.waitReady("survive", defaultNamespace, 1)
	startedAfter := f.replicaStarts()
	t.Logf("the function's replica: %v before the engine restart, %v after", startedBefore, startedAfter)
	if slices.Equal(startedBefore, startedAfter) {
		t.Errorf("the function's replica was not restarted by the engine restart (%v): the test disrupted nothing", startedAfter)
	}
	f.finish("Docker Engine restart", &before)
	text := d.metricsText()
	retried := 0.0
	for _, code := range []string{"502", "503", "504"} {
		v, _ := seriesValue(text, `queue_worker_retries_total{code="`+code+`",function_name="survive.`+defaultNamespace+`"}`)
		retried += v
	}
	t.Logf("attempts retried because the function was unreachable (502/503/504): %g", retried)
}

// replicaStarts returns "id@StartedAt" of the function's containers.
func (f *asyncFault) replicaStarts() []string {
	f.t.Helper()
	cs, err := f.d.fnContainers(f.fn, defaultNamespace, true)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, short(c.ID)+"@"+f.d.inspect(c.ID).State.StartedAt)
	}
	slices.Sort(out)
	return out
}

// recordsNotDone reads the records of ids with a few goroutines and returns,
// by id, why each one that is not succeeded with its callback delivered is not.
func (f *asyncFault) recordsNotDone(ids []string) map[string]string {
	var (
		mu  sync.Mutex
		bad = map[string]string{}
		wg  sync.WaitGroup
		ch  = make(chan string)
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				rec, _, err := f.d.asyncRecordOf(id)
				why := ""
				switch {
				case err != nil:
					why = err.Error()
				case rec.State != "succeeded" || rec.callbackState() != "delivered" || rec.Attempts < 1 || rec.LastStatus != http.StatusOK:
					why = rec.String()
				default:
					continue
				}
				mu.Lock()
				bad[id] = why
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		ch <- id
	}
	close(ch)
	wg.Wait()
	return bad
}
