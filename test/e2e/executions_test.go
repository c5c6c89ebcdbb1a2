package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Execution records (README "Execution records"): every attempt of an
// async call leaves a record "<call id>.<n>" under /system/executions,
// kept within EXECUTIONS_MAX and EXECUTIONS_MAX_AGE; a record left
// running by a killed daemon reads interrupted after the restart.

// executionsOf reads GET /system/executions?query; the records are decoded
// into the store's type, and each must be one the store could have
// written (known kind and state, ID, function and start set).
func (d *daemon) executionsOf(query string) ([]store.Execution, error) {
	res, err := d.request(http.MethodGet, "/system/executions?"+query, nil, nil, authBasic)
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /system/executions?%s: %s", query, res)
	}
	var list []store.Execution
	if err := json.Unmarshal(res.Body, &list); err != nil {
		return nil, fmt.Errorf("GET /system/executions?%s: %s: %w", query, res, err)
	}
	for _, e := range list {
		if err := wellFormed(e); err != nil {
			return nil, fmt.Errorf("GET /system/executions?%s: record %s: %w", query, e.ID, err)
		}
	}
	return list, nil
}

// executionOf reads GET /system/executions/{id}.
func (d *daemon) executionOf(id string) (store.Execution, httpResult, error) {
	var e store.Execution
	res, err := d.request(http.MethodGet, "/system/executions/"+url.PathEscape(id), nil, nil, authBasic)
	if err != nil {
		return e, res, err
	}
	if res.Status != http.StatusOK {
		return e, res, fmt.Errorf("GET /system/executions/%s: %s", id, res)
	}
	if err := json.Unmarshal(res.Body, &e); err != nil {
		return e, res, fmt.Errorf("GET /system/executions/%s: %s: %w", id, res, err)
	}
	return e, res, wellFormed(e)
}

// waitExecution polls record id until it is in state and returns it.
func (d *daemon) waitExecution(id, state string) store.Execution {
	d.t.Helper()
	var e store.Execution
	eventually(d.t, asyncWait, asyncPoll, func() error {
		var err error
		if e, _, err = d.executionOf(id); err != nil {
			return err
		}
		if e.State != state {
			return fmt.Errorf("execution %s is %s, want %s", id, e.State, state)
		}
		return nil
	})
	return e
}

// waitExecutions polls GET /system/executions?query until it lists n
// records, all final, and returns them.
func (d *daemon) waitExecutions(query string, n int) []store.Execution {
	d.t.Helper()
	var list []store.Execution
	eventually(d.t, asyncWait, asyncPoll, func() error {
		var err error
		if list, err = d.executionsOf(query); err != nil {
			return err
		}
		if len(list) != n {
			return fmt.Errorf("GET /system/executions?%s: %d records %q, want %d", query, len(list), idsOf(list), n)
		}
		for _, e := range list {
			if !e.Final() {
				return fmt.Errorf("record %s is %s", e.ID, e.State)
			}
		}
		return nil
	})
	return list
}

// debugExecutions returns the summary of function key's ("namespace/name")
// execution records on /debug/reconcile's JSON.
func (d *daemon) debugExecutions(key string) (store.ExecutionSummary, error) {
	res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
	if err != nil {
		return store.ExecutionSummary{}, err
	}
	var page struct {
		Executions []store.ExecutionSummary `json:"executions"`
	}
	if err := json.Unmarshal(res.Body, &page); err != nil {
		return store.ExecutionSummary{}, fmt.Errorf("debug JSON: %s: %w", res, err)
	}
	i := slices.IndexFunc(page.Executions, func(s store.ExecutionSummary) bool { return s.Function == key })
	if i < 0 {
		return store.ExecutionSummary{}, fmt.Errorf("debug page: no executions of %s in %+v", key, page.Executions)
	}
	return page.Executions[i], nil
}

// wellFormed checks what every record must hold, whole or not at all.
func wellFormed(e store.Execution) error {
	switch {
	case e.ID == "" || e.Function == "" || e.StartedAt.IsZero():
		return fmt.Errorf("missing id, function or start: %+v", e)
	case !slices.Contains(store.ExecutionKinds, e.Kind):
		return fmt.Errorf("kind %q", e.Kind)
	case !slices.Contains(store.ExecutionStates, e.State):
		return fmt.Errorf("state %q", e.State)
	case e.Final() && (e.FinishedAt.Before(e.StartedAt) || e.DurationSeconds < 0):
		return fmt.Errorf("final with start %s, end %s, duration %v", e.StartedAt, e.FinishedAt, e.DurationSeconds)
	case !e.Final() && !e.FinishedAt.IsZero():
		return fmt.Errorf("running with an end %s", e.FinishedAt)
	}
	return nil
}

func idsOf(list []store.Execution) []string {
	ids := make([]string, 0, len(list))
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	return ids
}

// TestExecutionRecords: async calls leave one record per attempt, listed
// newest first with the filters and limit, read one by one, summed up on
// /debug/reconcile; bad queries are 400 with a message and unknown IDs 404.
func TestExecutionRecords(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	d.deploy(asyncSpec("exe", img, map[string]string{annRetryMinWait: "100ms", annRetryMaxWait: "200ms", annRetryAttempts: "3"}))
	d.deploy(asyncSpec("exe2", img, nil))
	d.waitReady("exe", defaultNamespace, 1)
	d.waitReady("exe2", defaultNamespace, 1)
	suffix := randomSuffix(6)
	body := []byte(`{"n":1}`)
	started := time.Now().Add(-time.Second)

	ok := d.accept(http.MethodPost, "/async-function/exe", body, map[string]string{"X-Call-Id": "ok-" + suffix})
	d.waitRecord(ok, finalWith("succeeded", false))
	flaky := d.accept(http.MethodPost, "/async-function/exe?fail=1", body, map[string]string{"X-Call-Id": "flaky-" + suffix})
	d.waitRecord(flaky, finalWith("succeeded", false))
	bad := d.accept(http.MethodPost, "/async-function/exe?status=400", body, map[string]string{"X-Call-Id": "bad-" + suffix})
	d.waitRecord(bad, finalWith("failed", false))
	other := d.accept(http.MethodPost, "/async-function/exe2", nil, nil)
	d.waitRecord(other, finalWith("succeeded", false))

	list, err := d.executionsOf("function=exe")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bad + ".1", flaky + ".2", flaky + ".1", ok + ".1"}
	if got := idsOf(list); !slices.Equal(got, want) {
		t.Fatalf("GET /system/executions?function=exe = %q, want %q (newest first)", got, want)
	}
	for i, c := range []struct {
		state   string
		code    int
		attempt int
	}{{"failed", 400, 1}, {"succeeded", 200, 2}, {"failed", 503, 1}, {"succeeded", 200, 1}} {
		e := list[i]
		if e.Kind != store.ExecutionAsync || e.Function != "openfaas-fn/exe" || e.State != c.state || e.StatusCode != c.code ||
			e.Attempt != c.attempt || e.BytesIn != int64(len(body)) || e.BytesOut <= 0 || e.ExitCode != nil {
			t.Errorf("record %s: %+v, want async, state %s, status %d, attempt %d, %d bytes in, some out", e.ID, e, c.state, c.code, c.attempt, len(body))
		}
		if e.StartedAt.Before(started) || e.StartedAt.After(time.Now()) || e.DurationSeconds <= 0 ||
			e.DurationSeconds > e.FinishedAt.Sub(e.StartedAt).Seconds()+0.001 {
			t.Errorf("record %s: times %s → %s, duration %vs", e.ID, e.StartedAt, e.FinishedAt, e.DurationSeconds)
		}
		if i > 0 && e.StartedAt.After(list[i-1].StartedAt) {
			t.Errorf("record %s listed after a record that started before it", e.ID)
		}
	}
	t.Logf("records of exe: %q; durations %v, %v, %v, %v s", want, list[0].DurationSeconds, list[1].DurationSeconds, list[2].DurationSeconds, list[3].DurationSeconds)

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"function=exe.openfaas-fn", want},
		{"function=exe&namespace=openfaas-fn", want},
		{"function=exe&limit=2", want[:2]},
		{"function=exe&state=failed", []string{bad + ".1", flaky + ".1"}},
		{"function=exe&state=succeeded&limit=1", []string{flaky + ".2"}},
		{"function=exe&kind=async&state=running", []string{}},
		{"function=exe&kind=job", []string{}},
		{"function=exe2", []string{other + ".1"}},
		{"limit=1", []string{other + ".1"}},
		{"namespace=openfaas-fn&state=failed", []string{bad + ".1", flaky + ".1"}},
		{"function=nope", []string{}},
	} {
		got, err := d.executionsOf(c.query)
		if err != nil {
			t.Error(err)
			continue
		}
		if ids := idsOf(got); !slices.Equal(ids, c.want) {
			t.Errorf("GET /system/executions?%s = %q, want %q", c.query, ids, c.want)
		}
	}

	e, _, err := d.executionOf(flaky + ".1")
	if err != nil || e.State != "failed" || e.StatusCode != 503 || e.Attempt != 1 {
		t.Errorf("GET /system/executions/%s.1: %+v %v", flaky, e, err)
	}
	// The async record stays as it was: the call, not its attempts.
	if rec, _, err := d.asyncRecordOf(flaky); err != nil || rec.Attempts != 2 || rec.State != "succeeded" {
		t.Errorf("GET /system/async/%s: %s %v", flaky, rec, err)
	}

	for _, c := range []struct {
		method, path string
		want         int
		msg          string
	}{
		{"GET", "/system/executions/no-such-id", 404, "no execution no-such-id"},
		{"GET", "/system/executions/" + ok, 404, "no execution " + ok}, // the call's id, not an attempt's
		{"GET", "/system/executions?state=done", 400, "state done: want one of"},
		{"GET", "/system/executions?kind=cron", 400, "kind cron: want one of job, async"},
		{"GET", "/system/executions?limit=0", 400, "limit 0: want a number from 1 to 1000"},
		{"GET", "/system/executions?limit=1001", 400, "limit 1001"},
		{"GET", "/system/executions?limit=x", 400, "limit x"},
		{"GET", "/system/executions?function=a%2Fb", 400, "not a valid name or name.namespace"},
		{"GET", "/system/executions?namespace=NS_bad", 400, "namespace NS_bad is not valid"},
		{"GET", "/system/executions?function=exe.dev&namespace=openfaas-fn", 400, "is not in namespace"},
		{"POST", "/system/executions", 405, "method POST not allowed"},
		{"DELETE", "/system/executions/" + ok + ".1", 405, "method DELETE not allowed"},
	} {
		res, err := d.request(c.method, c.path, nil, nil, authBasic)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != c.want || !strings.Contains(string(res.Body), c.msg) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s %s: %s, want %d with %q in plain text", c.method, c.path, res, c.want, c.msg)
		}
	}
	if list, err := d.executionsOf(""); err != nil || len(list) != 5 {
		t.Errorf("records after the bad requests: %q %v, want the 5", idsOf(list), err)
	}

	// /debug/reconcile sums them up per function.
	s, err := d.debugExecutions("openfaas-fn/exe")
	if err != nil {
		t.Fatal(err)
	}
	if s.Retained != 4 || s.Failures != 2 || s.Running != 0 || len(s.Last) != 4 || s.Last[0].ID != bad+".1" {
		t.Errorf("debug page, exe: retained %d, failures %d, running %d, last %q", s.Retained, s.Failures, s.Running, idsOf(s.Last))
	}
	res, err := d.request(http.MethodGet, "/debug/reconcile", nil, nil, authBasic)
	if err != nil || !strings.Contains(string(res.Body), `<li data-execution="`+flaky+`.1"><code>`+flaky+`.1</code> async <span class="x-failed">failed</span>`) {
		t.Errorf("debug page HTML lacks the record of %s.1: %v", flaky, err)
	}
}

// TestExecutionRecordsDebugJobs: a job function's runs, one that exits 0
// and one that exits 3, are summed up on /debug/reconcile as the async
// attempts are: two kept, one failure, none running, the last runs newest
// first with their kind, state and exit code (JSON and HTML).
func TestExecutionRecordsDebugJobs(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.deployJob("dbgjob", nil)
	suffix := randomSuffix(6)
	ok, bad := "dbgjob-ok-"+suffix, "dbgjob-bad-"+suffix
	if res := d.mustCallJob("POST", "/function/dbgjob?mode=upper", []byte("fine"), map[string]string{"X-Call-Id": ok}); res.Status != 200 {
		t.Fatalf("call %s: %s", ok, res)
	}
	if res := d.mustCallJob("POST", "/function/dbgjob?exit=3&stderr=boom", nil, map[string]string{"X-Call-Id": bad}); res.Status != 500 {
		t.Fatalf("call %s: %s", bad, res)
	}
	d.waitExecution(ok, store.ExecutionSucceeded)
	d.waitExecution(bad, store.ExecutionFailed)

	s, err := d.debugExecutions("openfaas-fn/dbgjob")
	if err != nil {
		t.Fatal(err)
	}
	if s.Retained != 2 || s.Failures != 1 || s.Running != 0 || !slices.Equal(idsOf(s.Last), []string{bad, ok}) {
		t.Fatalf("debug page, dbgjob: retained %d, failures %d, running %d, last %q; want 2, 1, 0, [%s %s]",
			s.Retained, s.Failures, s.Running, idsOf(s.Last), bad, ok)
	}
	for i, want := range []struct {
		state string
		exit  int
		out   string
	}{{store.ExecutionFailed, 3, ""}, {store.ExecutionSucceeded, 0, "FINE"}} {
		e := s.Last[i]
		if e.Kind != store.ExecutionJob || e.State != want.state || e.ExitCode == nil || *e.ExitCode != want.exit ||
			e.StdoutHead != want.out || e.FinishedAt.IsZero() {
			t.Errorf("debug page, run %s: %+v; want a job run, %s, exit %d", e.ID, e, want.state, want.exit)
		}
	}

	res, err := d.request(http.MethodGet, "/debug/reconcile", nil, nil, authBasic)
	if err != nil {
		t.Fatal(err)
	}
	html := string(res.Body)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<tr data-executions-key="openfaas-fn/dbgjob"><td class="key"><code>openfaas-fn/dbgjob</code></td>` +
			`<td class="retained num">2</td><td class="running num">0</td><td class="failures num">1</td>`),
		regexp.MustCompile(`<li data-execution="` + bad + `"><code>` + bad + `</code> job <span class="x-failed">failed</span> [^<]* exit 3 <span class="muted">`),
		regexp.MustCompile(`<li data-execution="` + ok + `"><code>` + ok + `</code> job <span class="x-succeeded">succeeded</span> [^<]* exit 0 <span class="muted">`),
	} {
		if !want.MatchString(html) {
			t.Errorf("debug page HTML lacks %s", want)
		}
	}
	d.waitJobsSettled(1, 30*time.Second)
}

// TestExecutionRecordsRetention: with EXECUTIONS_MAX=3 only the newest 3
// records remain; with EXECUTIONS_MAX_AGE=3s those that ended earlier go.
// The pruner runs at start and then every minute: the tests restart the
// daemon rather than wait a minute.
func TestExecutionRecordsRetention(t *testing.T) {
	t.Parallel()
	img := fnImage(t, fnAsync)
	t.Run("count", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, withEnv("EXECUTIONS_MAX", "3"))
		d.deploy(asyncSpec("cnt", img, nil))
		d.waitReady("cnt", defaultNamespace, 1)
		var ids []string
		for range 6 {
			id := d.accept(http.MethodPost, "/async-function/cnt", nil, nil)
			d.waitRecord(id, finalWith("succeeded", false))
			ids = append(ids, id+".1")
		}
		if list, err := d.executionsOf("function=cnt"); err != nil || len(list) != 6 {
			t.Fatalf("before the prune: %q %v, want all 6", idsOf(list), err)
		}
		d.Restart()
		list, err := d.executionsOf("function=cnt")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{ids[5], ids[4], ids[3]}; !slices.Equal(idsOf(list), want) {
			t.Errorf("after the prune: %q, want the newest 3 %q", idsOf(list), want)
		}
		for _, id := range ids[:3] {
			if _, res, _ := d.executionOf(id); res.Status != http.StatusNotFound {
				t.Errorf("GET /system/executions/%s: %s, want 404 (pruned)", id, res)
			}
		}
	})
	t.Run("age", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, withEnv("EXECUTIONS_MAX_AGE", "3s"))
		d.deploy(asyncSpec("age", img, nil))
		d.waitReady("age", defaultNamespace, 1)
		old := d.accept(http.MethodPost, "/async-function/age", nil, nil)
		d.waitRecord(old, finalWith("succeeded", false))
		e := d.waitExecution(old+".1", "succeeded")
		time.Sleep(time.Until(e.FinishedAt.Add(3*time.Second + 500*time.Millisecond)))
		d.Restart()
		fresh := d.accept(http.MethodPost, "/async-function/age", nil, nil)
		d.waitExecution(fresh+".1", "succeeded")
		if _, res, _ := d.executionOf(old + ".1"); res.Status != http.StatusNotFound {
			t.Errorf("GET /system/executions/%s.1 (ended over 3s before the restart): %s, want 404 (pruned)", old, res)
		}
		if list, err := d.executionsOf("function=age"); err != nil || !slices.Equal(idsOf(list), []string{fresh + ".1"}) {
			t.Errorf("after the prune: %q %v, want only %s.1", idsOf(list), err, fresh)
		}
	})
}

// TestExecutionRecordsKillDuringAttempts: the daemon is SIGKILLed while
// three attempts of a slow function run and other calls finish. The state
// file passes both checks (records and index agree: nothing half
// written); after the restart each interrupted attempt's record reads
// interrupted, its call runs again as attempt 2 and succeeds, and every
// record decodes whole.
func TestExecutionRecordsKillDuringAttempts(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	d.deploy(asyncSpec("slow", img, map[string]string{annMaxInflight: "3"}))
	d.deploy(asyncSpec("fast", img, map[string]string{annMaxInflight: "8"}))
	d.waitReady("slow", defaultNamespace, 1)
	d.waitReady("fast", defaultNamespace, 1)
	suffix := randomSuffix(6)
	var slow []string
	for i := range 3 {
		slow = append(slow, d.accept(http.MethodPost, "/async-function/slow?sleep=6s", nil, map[string]string{"X-Call-Id": fmt.Sprintf("slow-%d-%s", i, suffix)}))
	}
	for _, id := range slow {
		d.waitExecution(id+".1", "running")
	}
	// Calls accepted and run while the daemon is killed: their records
	// are being written as the kill lands. Four callers, until the daemon
	// is gone (bounded: fastMax calls at most).
	const fastMax = 5000
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		fast     []string
		enough   = make(chan struct{})
		enoughOn sync.Once
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				n := len(fast)
				mu.Unlock()
				if n >= fastMax {
					return
				}
				res, err := d.request(http.MethodPost, "/async-function/fast", nil, nil, authBasic)
				if err != nil || res.Status != http.StatusAccepted {
					return // the daemon is gone
				}
				mu.Lock()
				fast = append(fast, res.Header.Get("X-Call-Id"))
				if len(fast) >= 100 {
					enoughOn.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(asyncWait):
		t.Fatal("100 fast calls not accepted in time")
	}
	d.Kill()
	wg.Wait()
	checkStateFile(t, "after SIGKILL during attempts", filepath.Join(d.stateDir, "state.db"))

	d.Restart()
	for _, id := range slow {
		e, _, err := d.executionOf(id + ".1")
		if err != nil {
			t.Errorf("record %s.1 after the restart: %v", id, err)
			continue
		}
		if e.State != store.ExecutionInterrupted || !strings.Contains(e.Error, "daemon stopped") || e.FinishedAt.IsZero() {
			t.Errorf("record %s.1 after the restart: %+v, want interrupted", id, e)
		}
	}
	for _, id := range slow {
		d.waitRecord(id, finalWith("succeeded", false))
		if e := d.waitExecution(id+".2", "succeeded"); e.Attempt != 2 {
			t.Errorf("rerun of %s: %+v, want attempt 2", id, e)
		}
		if e, _, err := d.executionOf(id + ".1"); err != nil || e.State != store.ExecutionInterrupted {
			t.Errorf("record %s.1 after the rerun: %+v %v, want still interrupted", id, e, err)
		}
	}
	for _, id := range fast {
		d.waitRecord(id, finalWith("succeeded", false))
	}
	all, err := d.executionsOf("limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, e := range all {
		states[e.State]++
	}
	t.Logf("%d fast calls accepted before the kill; %d records after the restart, by state %v", len(fast), len(all), states)
	if len(fast) >= fastMax {
		t.Errorf("the kill did not land while calls were accepted (%d, the bound)", len(fast))
	}
	if states[store.ExecutionRunning] != 0 {
		t.Errorf("%d records still running once every call finished", states[store.ExecutionRunning])
	}
	if states[store.ExecutionInterrupted] < len(slow) {
		t.Errorf("%d interrupted records, want at least %d", states[store.ExecutionInterrupted], len(slow))
	}
	d.Stop()
	checkStateFile(t, "after a graceful stop", filepath.Join(d.stateDir, "state.db"))
}
