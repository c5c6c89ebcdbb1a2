package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Async invocations (docs/async.md): POST /async-function/NAME answers 202
// once the call is committed, the daemon runs it later with retries, posts
// the result to X-Callback-Url, and keeps a record under /system/async.
//
// The tests use fn-async (testdata/fn-async), which echoes the request and
// keeps in memory every X-Call-Id it saw, and callback receivers that are
// httptest servers on 127.0.0.1 in the test process (the daemon runs on the
// host, so it reaches them). Every function is pinned to one replica
// (scale.min = scale.max = 1), so what fn-async counts is what the daemon did.

// fnAsync is the test function of the async tests.
const fnAsync = "fn-async"

// Async annotations, as docs/async.md spells them.
const (
	annMaxInflight   = "io.dockerfaas.async.max-inflight"
	annRetryAttempts = "com.openfaas.retry.attempts"
	annRetryCodes    = "com.openfaas.retry.codes"
	annRetryMinWait  = "com.openfaas.retry.min_wait"
	annRetryMaxWait  = "com.openfaas.retry.max_wait"
)

// Bounds of the waits of the async tests (never timing assertions).
const (
	asyncWait     = 60 * time.Second
	asyncPoll     = 100 * time.Millisecond
	callbackAgent = "dockerfaasd-queue-worker/"
)

// asyncSpec is fn-async pinned to one replica with the given annotations.
func asyncSpec(name, img string, annotations map[string]string) types.FunctionDeployment {
	labels := map[string]string{lblMin: "1", lblMax: "1"}
	if annotations == nil {
		annotations = map[string]string{}
	}
	return types.FunctionDeployment{Service: name, Image: img, Labels: &labels, Annotations: &annotations}
}

// fnAsyncReply is fn-async's answer to an invocation.
type fnAsyncReply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query"`
	Body     string            `json:"body"`
	Headers  map[string]string `json:"headers"`
	CallID   string            `json:"callId"`
	Attempt  int               `json:"attempt"`
	Hostname string            `json:"hostname"`
}

// fnAsyncStats is fn-async's GET /_stats: per X-Call-Id the start times
// (Unix ns) of its attempts, the ids of aborted attempts, and the requests
// in flight now and at most.
type fnAsyncStats struct {
	Calls       map[string][]int64 `json:"calls"`
	Aborted     []string           `json:"aborted"`
	Inflight    int                `json:"inflight"`
	MaxInflight int                `json:"maxInflight"`
	Total       int                `json:"total"`
}

// fnStats reads fn-async's counters through a synchronous invocation (which
// fn-async does not count).
func (d *daemon) fnStats(name string) (fnAsyncStats, error) {
	var s fnAsyncStats
	res, err := d.request(http.MethodGet, "/function/"+name+"/_stats", nil, nil, authBasic)
	if err != nil {
		return s, err
	}
	if res.Status != http.StatusOK {
		return s, fmt.Errorf("GET /function/%s/_stats: %s", name, res)
	}
	if err := json.Unmarshal(res.Body, &s); err != nil {
		return s, fmt.Errorf("GET /function/%s/_stats: %s: %w", name, res, err)
	}
	return s, nil
}

// mustFnStats is fnStats failing the test on error.
func (d *daemon) mustFnStats(name string) fnAsyncStats {
	d.t.Helper()
	s, err := d.fnStats(name)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// asyncRecord is GET /system/async/{id} as docs/async.md shows it.
type asyncRecord struct {
	CallID          string     `json:"callId"`
	Function        string     `json:"function"`
	Namespace       string     `json:"namespace"`
	Method          string     `json:"method"`
	Path            string     `json:"path"`
	Query           string     `json:"query"`
	State           string     `json:"state"`
	Attempts        int        `json:"attempts"`
	MaxAttempts     int        `json:"maxAttempts"`
	NextAttemptAt   *time.Time `json:"nextAttemptAt"`
	LastStatus      int        `json:"lastStatus"`
	LastError       string     `json:"lastError"`
	AcceptedAt      time.Time  `json:"acceptedAt"`
	StartedAt       *time.Time `json:"startedAt"`
	FinishedAt      *time.Time `json:"finishedAt"`
	DurationSeconds float64    `json:"durationSeconds"`
	CallbackURL     string     `json:"callbackUrl"`
	Callback        *struct {
		State         string     `json:"state"`
		Attempts      int        `json:"attempts"`
		LastStatus    int        `json:"lastStatus"`
		LastError     string     `json:"lastError"`
		NextAttemptAt *time.Time `json:"nextAttemptAt"`
	} `json:"callback"`
}

// String summarises a record for failure messages.
func (r asyncRecord) String() string {
	cb := "none"
	if r.Callback != nil {
		cb = fmt.Sprintf("%s/%d attempts/last %d %q", r.Callback.State, r.Callback.Attempts, r.Callback.LastStatus, r.Callback.LastError)
	}
	return fmt.Sprintf("%s %s.%s %s %s?%s state=%s attempts=%d/%d last=%d %q callback=%s",
		r.CallID, r.Function, r.Namespace, r.Method, r.Path, r.Query, r.State, r.Attempts, r.MaxAttempts,
		r.LastStatus, r.LastError, cb)
}

// callbackState is the record's callback state, "" without one.
func (r asyncRecord) callbackState() string {
	if r.Callback == nil {
		return ""
	}
	return r.Callback.State
}

// asyncRecordOf reads GET /system/async/{id}. It returns the HTTP answer
// too, so that a test can tell a 404 from other errors.
func (d *daemon) asyncRecordOf(id string) (asyncRecord, httpResult, error) {
	var rec asyncRecord
	res, err := d.request(http.MethodGet, "/system/async/"+url.PathEscape(id), nil, nil, authBasic)
	if err != nil {
		return rec, res, err
	}
	if res.Status != http.StatusOK {
		return rec, res, fmt.Errorf("GET /system/async/%s: %s", id, res)
	}
	if err := json.Unmarshal(res.Body, &rec); err != nil {
		return rec, res, fmt.Errorf("GET /system/async/%s: %s: %w", id, res, err)
	}
	return rec, res, nil
}

// waitRecord polls the record of id until check accepts it and returns it.
func (d *daemon) waitRecord(id string, check func(asyncRecord) error) asyncRecord {
	d.t.Helper()
	var rec asyncRecord
	eventually(d.t, asyncWait, asyncPoll, func() error {
		r, _, err := d.asyncRecordOf(id)
		if err != nil {
			return err
		}
		rec = r
		if err := check(r); err != nil {
			return fmt.Errorf("record %s: %w", r, err)
		}
		return nil
	})
	return rec
}

// finalWith is a waitRecord check: the call is in state and its callback
// (when it has one) was delivered.
func finalWith(state string, withCallback bool) func(asyncRecord) error {
	return func(r asyncRecord) error {
		if r.State != state {
			return fmt.Errorf("state %q, want %q", r.State, state)
		}
		if withCallback && r.callbackState() != "delivered" {
			return fmt.Errorf("callback %q, want delivered", r.callbackState())
		}
		return nil
	}
}

// asyncList reads GET /system/async?query. The shape of the list is not
// spelled out by docs/async.md beyond "newest first": a JSON array of
// records, or an object holding one.
func (d *daemon) asyncList(query string) ([]asyncRecord, error) {
	res, err := d.request(http.MethodGet, "/system/async?"+query, nil, nil, authBasic)
	if err != nil {
		return nil, err
	}
	if res.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /system/async?%s: %s", query, res)
	}
	var list []asyncRecord
	if err := json.Unmarshal(res.Body, &list); err == nil {
		return list, nil
	}
	var wrapped map[string]json.RawMessage
	if err := json.Unmarshal(res.Body, &wrapped); err == nil {
		for _, raw := range wrapped {
			if json.Unmarshal(raw, &list) == nil && len(raw) > 0 && raw[0] == '[' {
				return list, nil
			}
		}
	}
	return nil, fmt.Errorf("GET /system/async?%s: not a list of records: %s", query, res)
}

// accept sends one async call and requires 202 with an X-Call-Id (the
// caller's when it sent one) and an X-Start-Time.
func (d *daemon) accept(method, path string, body []byte, headers map[string]string) string {
	d.t.Helper()
	res := d.invoke(method, path, body, headers)
	id := checkAccepted(d.t, method+" "+path, res.Status, res.Header, res.Body, headers["X-Call-Id"])
	return id
}

// checkAccepted checks an accept's answer and returns its call id.
func checkAccepted(t *testing.T, what string, status int, h http.Header, body []byte, callerID string) string {
	t.Helper()
	if status != http.StatusAccepted {
		t.Fatalf("%s: %d %q, want 202", what, status, body)
	}
	if len(body) != 0 {
		t.Errorf("%s: 202 with body %q, want none", what, body)
	}
	id := h.Get("X-Call-Id")
	switch {
	case id == "":
		t.Fatalf("%s: 202 without X-Call-Id", what)
	case callerID != "" && id != callerID:
		t.Errorf("%s: X-Call-Id %q, want the caller's %q", what, id, callerID)
	case callerID == "" && !uuidRE.MatchString(id):
		t.Errorf("%s: generated X-Call-Id %q is not a UUID", what, id)
	}
	if st := h.Get("X-Start-Time"); st == "" {
		t.Errorf("%s: 202 without X-Start-Time", what)
	} else if ns, err := strconv.ParseInt(st, 10, 64); err != nil || ns <= 0 {
		t.Errorf("%s: X-Start-Time %q is not Unix nanoseconds", what, st)
	} else if at := time.Unix(0, ns); at.Before(time.Now().Add(-10*time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("%s: X-Start-Time %q is %s, not around now", what, st, at)
	}
	return id
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// cbHit is one request a callback receiver got.
type cbHit struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	At                  time.Time
	Refused             bool // answered 503 on purpose
}

// cbReceiver is a callback target: an httptest server on 127.0.0.1 that
// records every request by its X-Call-Id. refuse makes the next deliveries
// to a path fail with 503.
type cbReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   map[string][]cbHit
	refuse map[string]int
}

func newCallbackReceiver(t *testing.T) *cbReceiver {
	t.Helper()
	r := &cbReceiver{hits: map[string][]cbHit{}, refuse: map[string]int{}}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *cbReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	h := cbHit{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: body, At: time.Now()}
	r.mu.Lock()
	if r.refuse[req.URL.Path] > 0 {
		r.refuse[req.URL.Path]--
		h.Refused = true
	}
	id := req.Header.Get("X-Call-Id")
	r.hits[id] = append(r.hits[id], h)
	r.mu.Unlock()
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	case h.Refused:
		http.Error(w, "refused on purpose", http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// url is the receiver's address with pathAndQuery appended.
func (r *cbReceiver) url(pathAndQuery string) string { return r.srv.URL + pathAndQuery }

// refuseNext makes the next n deliveries to path fail with 503.
func (r *cbReceiver) refuseNext(path string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse[path] = n
}

// of returns the deliveries for call id so far.
func (r *cbReceiver) of(id string) []cbHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits[id])
}

// snapshot returns every delivery so far by call id.
func (r *cbReceiver) snapshot() map[string][]cbHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]cbHit, len(r.hits))
	for id, hs := range r.hits {
		out[id] = slices.Clone(hs)
	}
	return out
}

// wait waits until call id had n deliveries and returns them.
func (r *cbReceiver) wait(t *testing.T, id string, n int) []cbHit {
	t.Helper()
	var hits []cbHit
	eventually(t, asyncWait, asyncPoll, func() error {
		hits = r.of(id)
		if len(hits) < n {
			return fmt.Errorf("call %s: %d callbacks, want %d", id, len(hits), n)
		}
		return nil
	})
	return hits
}

// checkCallback checks the headers docs/async.md promises on a callback:
// the want values exactly, a POST, X-Duration-Seconds a non-negative float
// and the User-Agent of the queue worker.
func checkCallback(t *testing.T, what string, h cbHit, want map[string]string) {
	t.Helper()
	if h.Method != http.MethodPost {
		t.Errorf("%s: callback method %s, want POST", what, h.Method)
	}
	for k, v := range want {
		if got := h.Header.Get(k); got != v {
			t.Errorf("%s: callback header %s %q, want %q", what, k, got, v)
		}
	}
	if v := h.Header.Get("X-Duration-Seconds"); v == "" {
		t.Errorf("%s: callback without X-Duration-Seconds", what)
	} else if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
		t.Errorf("%s: X-Duration-Seconds %q is not a non-negative number of seconds", what, v)
	}
	if ua := h.Header.Get("User-Agent"); !strings.HasPrefix(ua, callbackAgent) {
		t.Errorf("%s: callback User-Agent %q, want %s<version>", what, ua, callbackAgent)
	}
}

// replyOf decodes fn-async's answer carried by a callback.
func replyOf(t *testing.T, what string, h cbHit) fnAsyncReply {
	t.Helper()
	var r fnAsyncReply
	if err := json.Unmarshal(h.Body, &r); err != nil {
		t.Fatalf("%s: callback body is not fn-async's answer (%q): %v", what, h.Body, err)
	}
	return r
}

// metricsText reads GET /metrics.
func (d *daemon) metricsText() string {
	d.t.Helper()
	res, err := d.request(http.MethodGet, "/metrics", nil, nil, authNone)
	if err != nil || res.Status != http.StatusOK {
		d.t.Fatalf("GET /metrics: %v %v", res, err)
	}
	return string(res.Body)
}

// seriesValue finds one exact series (labels in Prometheus' sorted order)
// in a /metrics text.
func seriesValue(text, series string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+|NaN|\+Inf)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// metricCheck is one expected series: exactly want, or at least want.
// absentOK accepts a missing series too (a gauge of a function whose queue
// the daemon dropped once idle: docs/async.md does not say it stays).
type metricCheck struct {
	series   string
	want     float64
	atLeast  bool
	absentOK bool
}

// checkMetrics reads /metrics once and checks every series.
func (d *daemon) checkMetrics(checks []metricCheck) {
	d.t.Helper()
	text := d.metricsText()
	for _, c := range checks {
		v, ok := seriesValue(text, c.series)
		switch {
		case !ok && c.absentOK:
			d.t.Logf("/metrics: no %s (allowed: read as %g)", c.series, c.want)
		case !ok:
			d.t.Errorf("/metrics has no %s", c.series)
		case c.atLeast && v < c.want:
			d.t.Errorf("/metrics: %s = %g, want at least %g", c.series, v, c.want)
		case !c.atLeast && v != c.want:
			d.t.Errorf("/metrics: %s = %g, want %g", c.series, v, c.want)
		default:
			d.t.Logf("/metrics: %s %g", c.series, v)
		}
	}
}

// TestAsyncCallback accepts calls with the go-sdk and with plain HTTP and
// checks the callbacks, the records, the idempotent accept, the 409 for a
// call id of another function, a retried callback delivery and the
// queue-worker metrics.
func TestAsyncCallback(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	d.deploy(asyncSpec("cb", img, map[string]string{annRetryAttempts: "4"}))
	d.deploy(asyncSpec("other", img, nil))
	d.waitReady("cb", defaultNamespace, 1)
	d.waitReady("other", defaultNamespace, 1)
	const fnName = "cb." + defaultNamespace
	accepted := 0

	// 1. The go-sdk's async invoke, as faas-cli invoke --async sends it.
	sdkBody := "hello async " + randomSuffix(8)
	req, err := http.NewRequest(http.MethodPost, d.baseURL+"/?from=sdk", strings.NewReader(sdkBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("X-Callback-Url", recv.url("/sdk"))
	req.Header.Set("X-Test-Header", "from-sdk")
	req.SetBasicAuth(d.user, d.password) // the SDK adds only function tokens
	res, err := d.client().InvokeFunction("cb", "", true, false, req)
	if err != nil {
		t.Fatalf("go-sdk async invoke: %v", err)
	}
	resBody, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Request.URL.Path != "/async-function/"+fnName {
		t.Errorf("the go-sdk sent %s, want /async-function/%s", res.Request.URL.Path, fnName)
	}
	sdkID := checkAccepted(t, "go-sdk async invoke", res.StatusCode, res.Header, resBody, "")
	accepted++
	t.Logf("go-sdk async invoke: %s, X-Call-Id %s", res.Status, sdkID)

	h := recv.wait(t, sdkID, 1)[0]
	checkCallback(t, "go-sdk call", h, map[string]string{
		"X-Function-Status": "200",
		"X-Function-Name":   fnName,
		"X-Call-Id":         sdkID,
		"X-Retry":           "0",
		"X-Retry-Max":       "3",
		// the function's own response headers come along
		"Content-Type": "application/json",
		"X-Fn-Attempt": "1",
	})
	if h.Path != "/sdk" || h.Query != "" {
		t.Errorf("callback went to %s?%s, want /sdk", h.Path, h.Query)
	}
	r := replyOf(t, "go-sdk call", h)
	if r.Method != http.MethodPost || r.Path != "/" || r.Query != "from=sdk" || r.Body != sdkBody {
		t.Errorf("the function saw %s %s?%s body %q, want POST /?from=sdk body %q", r.Method, r.Path, r.Query, r.Body, sdkBody)
	}
	if r.Headers["X-Test-Header"] != "from-sdk" || r.Headers["Content-Type"] != "text/plain" {
		t.Errorf("caller headers not forwarded to the function: %v", r.Headers)
	}
	if r.CallID != sdkID {
		t.Errorf("the function saw X-Call-Id %q, want %q", r.CallID, sdkID)
	}
	for _, k := range []string{"Authorization", "X-Callback-Url"} {
		if v, ok := r.Headers[k]; ok {
			t.Errorf("the function was sent %s: %q; it must not be forwarded", k, v)
		}
	}

	// 2. Plain HTTP: the caller's X-Call-Id is kept and echoed, PUT is
	// preserved, and so are the path and the query; the callback URL keeps
	// its own path and query.
	myID := "my-id-42." + randomSuffix(6)
	first := d.invoke(http.MethodPut, "/async-function/cb/some/path?x=1&y=two%20words", []byte("put body"), map[string]string{
		"X-Call-Id":      myID,
		"X-Callback-Url": recv.url("/plain?k=v"),
		"X-Custom":       "custom value",
	})
	putID := checkAccepted(t, "PUT with X-Call-Id", first.Status, first.Header, first.Body, myID)
	accepted++
	h = recv.wait(t, putID, 1)[0]
	checkCallback(t, "PUT call", h, map[string]string{
		"X-Function-Status": "200", "X-Function-Name": fnName, "X-Call-Id": myID, "X-Retry": "0", "X-Retry-Max": "3",
	})
	if h.Path != "/plain" || h.Query != "k=v" {
		t.Errorf("callback went to %s?%s, want /plain?k=v", h.Path, h.Query)
	}
	r = replyOf(t, "PUT call", h)
	if r.Method != http.MethodPut || r.Path != "/some/path" || r.Query != "x=1&y=two%20words" || r.Body != "put body" {
		t.Errorf("the function saw %s %s?%s body %q, want PUT /some/path?x=1&y=two%%20words body %q", r.Method, r.Path, r.Query, r.Body, "put body")
	}
	if r.Headers["X-Custom"] != "custom value" || r.CallID != myID {
		t.Errorf("the function saw X-Custom %q and X-Call-Id %q, want %q and %q", r.Headers["X-Custom"], r.CallID, "custom value", myID)
	}

	// 3. PATCH on name.namespace.
	patchID := d.accept(http.MethodPatch, "/async-function/"+fnName, []byte(`{"op":"patch"}`), map[string]string{
		"X-Callback-Url": recv.url("/patch"),
	})
	accepted++
	h = recv.wait(t, patchID, 1)[0]
	checkCallback(t, "PATCH call", h, map[string]string{"X-Function-Status": "200", "X-Call-Id": patchID, "X-Function-Name": fnName})
	if r = replyOf(t, "PATCH call", h); r.Method != http.MethodPatch || r.Path != "/" || r.Body != `{"op":"patch"}` {
		t.Errorf("the function saw %s %s body %q, want PATCH / body %q", r.Method, r.Path, r.Body, `{"op":"patch"}`)
	}

	// 4. A client retrying its accept: the same X-Call-Id for the same
	// function is a 202 again and is not queued twice; for another
	// function it is a 409.
	again := d.invoke(http.MethodPut, "/async-function/cb/some/path?x=1&y=two%20words", []byte("put body"), map[string]string{
		"X-Call-Id": myID, "X-Callback-Url": recv.url("/plain?k=v"),
	})
	checkAccepted(t, "the same accept again", again.Status, again.Header, again.Body, myID)
	if a, b := first.Header.Get("X-Start-Time"), again.Header.Get("X-Start-Time"); a != b {
		t.Errorf("the same accept again: X-Start-Time %s, want the first accept's %s (\"202 with the same headers\")", b, a)
	}
	if res := d.invoke(http.MethodPost, "/async-function/other", []byte("x"), map[string]string{"X-Call-Id": myID}); res.Status != http.StatusConflict {
		t.Errorf("X-Call-Id %s of cb sent to other: %s, want 409", myID, res)
	}

	// 5. A callback receiver that fails once: the delivery is retried.
	recv.refuseNext("/flaky", 1)
	flakyID := d.accept(http.MethodPost, "/async-function/cb", []byte("flaky receiver"), map[string]string{
		"X-Callback-Url": recv.url("/flaky"),
	})
	accepted++
	hs := recv.wait(t, flakyID, 2)
	if !hs[0].Refused || hs[1].Refused {
		t.Errorf("deliveries of %s: refused %v, %v; want the first refused and the second taken", flakyID, hs[0].Refused, hs[1].Refused)
	}
	for i, h := range hs {
		checkCallback(t, fmt.Sprintf("flaky receiver, delivery %d", i+1), h, map[string]string{
			"X-Function-Status": "200", "X-Call-Id": flakyID, "X-Function-Name": fnName, "X-Retry": "0",
		})
	}
	rec := d.waitRecord(flakyID, finalWith("succeeded", true))
	if rec.Callback.Attempts != 2 || rec.Callback.LastStatus != http.StatusOK {
		t.Errorf("record of %s: callback attempts %d, last status %d; want 2 and 200", flakyID, rec.Callback.Attempts, rec.Callback.LastStatus)
	}

	// The duplicate accept ran nothing: every later call has completed, and
	// the call still ran once and called back once.
	if n := len(d.mustFnStats("cb").Calls[myID]); n != 1 {
		t.Errorf("call %s ran %d times, want once (accepted twice with the same X-Call-Id)", myID, n)
	}
	if n := len(recv.of(myID)); n != 1 {
		t.Errorf("call %s called back %d times, want once", myID, n)
	}

	// 6. Records.
	rec = d.waitRecord(sdkID, finalWith("succeeded", true))
	t.Logf("record: %s", rec)
	switch {
	case rec.CallID != sdkID || rec.Function != "cb" || rec.Namespace != defaultNamespace:
		t.Errorf("record names %s %s.%s, want %s cb.%s", rec.CallID, rec.Function, rec.Namespace, sdkID, defaultNamespace)
	case rec.Method != http.MethodPost || rec.Path != "/" || rec.Query != "from=sdk":
		t.Errorf("record request %s %s?%s, want POST /?from=sdk", rec.Method, rec.Path, rec.Query)
	case rec.Attempts != 1 || rec.MaxAttempts != 4 || rec.LastStatus != http.StatusOK || rec.LastError != "":
		t.Errorf("record attempts %d/%d, last %d %q; want 1/4, 200, no error", rec.Attempts, rec.MaxAttempts, rec.LastStatus, rec.LastError)
	case rec.CallbackURL != recv.url("/sdk"):
		t.Errorf("record callbackUrl %q, want %q", rec.CallbackURL, recv.url("/sdk"))
	case rec.Callback.Attempts != 1 || rec.Callback.LastStatus != http.StatusOK:
		t.Errorf("record callback attempts %d, last status %d; want 1 and 200", rec.Callback.Attempts, rec.Callback.LastStatus)
	case rec.AcceptedAt.IsZero() || rec.StartedAt == nil || rec.FinishedAt == nil:
		t.Errorf("record times accepted %v started %v finished %v, want all set", rec.AcceptedAt, rec.StartedAt, rec.FinishedAt)
	case rec.StartedAt.Before(rec.AcceptedAt) || rec.FinishedAt.Before(*rec.StartedAt):
		t.Errorf("record times out of order: accepted %v started %v finished %v", rec.AcceptedAt, *rec.StartedAt, *rec.FinishedAt)
	case rec.NextAttemptAt != nil:
		t.Errorf("final record with nextAttemptAt %v", *rec.NextAttemptAt)
	}
	rec = d.waitRecord(myID, finalWith("succeeded", true))
	if rec.Method != http.MethodPut || rec.Path != "/some/path" || rec.Query != "x=1&y=two%20words" || rec.Attempts != 1 {
		t.Errorf("record of %s: %s, want PUT /some/path?x=1&y=two%%20words, 1 attempt", myID, rec)
	}
	if rec = d.waitRecord(patchID, finalWith("succeeded", true)); rec.Method != http.MethodPatch {
		t.Errorf("record of %s: method %s, want PATCH", patchID, rec.Method)
	}
	if _, res, _ := d.asyncRecordOf("never-" + randomSuffix(8)); res.Status != http.StatusNotFound {
		t.Errorf("GET /system/async/ of an unknown id: %s, want 404", res)
	}

	// The list: newest first, filtered by function and state.
	list, err := d.asyncList("function=cb&state=succeeded&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, r := range list {
		got = append(got, r.CallID)
		if r.Function != "cb" || r.State != "succeeded" {
			t.Errorf("GET /system/async?function=cb&state=succeeded lists %s", r)
		}
		if i > 0 && r.AcceptedAt.After(list[i-1].AcceptedAt) {
			t.Errorf("list not newest first: %s accepted %v after %s accepted %v", r.CallID, r.AcceptedAt, list[i-1].CallID, list[i-1].AcceptedAt)
		}
	}
	if want := []string{flakyID, patchID, myID, sdkID}; !slices.Equal(got, want) {
		t.Errorf("GET /system/async?function=cb&state=succeeded: %v, want %v (newest first)", got, want)
	}
	if list, err := d.asyncList("function=cb." + defaultNamespace + "&limit=1"); err != nil || len(list) != 1 || list[0].CallID != flakyID {
		t.Errorf("GET /system/async?function=cb.openfaas-fn&limit=1: %v %v, want only %s", list, err, flakyID)
	}
	if list, err := d.asyncList("function=other"); err != nil || len(list) != 0 {
		t.Errorf("GET /system/async?function=other: %v %v, want none (the 409 stored nothing)", list, err)
	}

	// 7. Metrics.
	d.checkMetrics([]metricCheck{
		{series: `queue_worker_messages_submitted_total{function_name="` + fnName + `"}`, want: float64(accepted)},
		{series: `queue_worker_messages_processed_total{code="200",function_name="` + fnName + `"}`, want: float64(accepted)},
		{series: `queue_worker_pending_messages{function_name="` + fnName + `",queue_name="async"}`, want: 0, absentOK: true},
		{series: `queue_worker_function_invocation_inflight{function_name="` + fnName + `"}`, want: 0},
		{series: `queue_worker_callbacks_total{result="delivered"}`, want: float64(accepted)},
		{series: `queue_worker_callbacks_total{result="retried"}`, want: 1},
	})
}

// TestAsyncRetries checks retries: a function failing the first attempts
// of a call with 503 is retried with at least min_wait between attempts
// until it answers 200; a Retry-After longer than max_wait is honoured; a
// status that is not retried fails the call at once; and
// com.openfaas.retry.codes narrows what is retried.
func TestAsyncRetries(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	ann := map[string]string{annRetryMinWait: "100ms", annRetryMaxWait: "500ms", annRetryAttempts: "5"}
	d.deploy(asyncSpec("flaky", img, ann))
	picky := map[string]string{annRetryMinWait: "100ms", annRetryMaxWait: "500ms", annRetryAttempts: "5", annRetryCodes: "429"}
	d.deploy(asyncSpec("picky", img, picky))
	d.waitReady("flaky", defaultNamespace, 1)
	d.waitReady("picky", defaultNamespace, 1)
	const fnName = "flaky." + defaultNamespace
	const failures = 3
	minWait := 100 * time.Millisecond

	// 503 for the first three attempts, then 200.
	id := d.accept(http.MethodPost, "/async-function/flaky?fail="+strconv.Itoa(failures), []byte("retry me"),
		map[string]string{"X-Callback-Url": recv.url("/retry")})
	h := recv.wait(t, id, 1)[0]
	checkCallback(t, "503×3 then 200", h, map[string]string{
		"X-Function-Status": "200", "X-Function-Name": fnName, "X-Call-Id": id,
		"X-Retry": strconv.Itoa(failures), "X-Retry-Max": "4", "X-Fn-Attempt": strconv.Itoa(failures + 1),
	})
	if r := replyOf(t, "503×3 then 200", h); r.Attempt != failures+1 || r.Body != "retry me" {
		t.Errorf("the answer that was called back is attempt %d with body %q, want attempt %d with %q", r.Attempt, r.Body, failures+1, "retry me")
	}
	rec := d.waitRecord(id, finalWith("succeeded", true))
	if rec.Attempts != failures+1 || rec.MaxAttempts != 5 || rec.LastStatus != http.StatusOK {
		t.Errorf("record %s: want %d attempts of 5, last status 200", rec, failures+1)
	}
	starts := d.mustFnStats("flaky").Calls[id]
	if len(starts) != failures+1 {
		t.Fatalf("the function saw %d attempts of %s, want %d", len(starts), id, failures+1)
	}
	var gaps []string
	for i := 1; i < len(starts); i++ {
		gap := time.Duration(starts[i] - starts[i-1])
		gaps = append(gaps, gap.Round(time.Millisecond).String())
		if gap < minWait {
			t.Errorf("attempt %d began %s after attempt %d, sooner than min_wait %s", i+1, gap, i, minWait)
		}
	}
	t.Logf("503×%d then 200: gaps between attempts %v (min_wait 100ms, max_wait 500ms)", failures, gaps)

	// 429 with Retry-After: 2 (longer than max_wait) once, then 200.
	id2 := d.accept(http.MethodPost, "/async-function/flaky?fail=1&code=429&retryafter=2", nil,
		map[string]string{"X-Callback-Url": recv.url("/retry-after")})
	h = recv.wait(t, id2, 1)[0]
	checkCallback(t, "429 Retry-After: 2", h, map[string]string{"X-Function-Status": "200", "X-Retry": "1", "X-Retry-Max": "4"})
	starts = d.mustFnStats("flaky").Calls[id2]
	if len(starts) != 2 {
		t.Fatalf("the function saw %d attempts of %s, want 2", len(starts), id2)
	}
	if gap := time.Duration(starts[1] - starts[0]); gap < 2*time.Second {
		t.Errorf("the retry after a 429 with Retry-After: 2 came %s later, sooner than the 2s asked", gap)
	} else {
		t.Logf("429 with Retry-After: 2 retried %s later", gap.Round(time.Millisecond))
	}

	// 400 is not a retry code: failed at once, called back with it.
	id3 := d.accept(http.MethodPost, "/async-function/flaky?status=400", nil, map[string]string{"X-Callback-Url": recv.url("/bad")})
	h = recv.wait(t, id3, 1)[0]
	checkCallback(t, "400", h, map[string]string{"X-Function-Status": "400", "X-Retry": "0", "X-Retry-Max": "4", "X-Call-Id": id3})
	if rec := d.waitRecord(id3, finalWith("failed", true)); rec.Attempts != 1 || rec.LastStatus != http.StatusBadRequest {
		t.Errorf("record %s: want failed after 1 attempt with 400", rec)
	}

	// retry.codes "429": a 503 is not retried for picky, a 429 is.
	id4 := d.accept(http.MethodPost, "/async-function/picky?fail=1", nil, map[string]string{"X-Callback-Url": recv.url("/picky")})
	h = recv.wait(t, id4, 1)[0]
	checkCallback(t, "picky 503", h, map[string]string{"X-Function-Status": "503", "X-Retry": "0", "X-Function-Name": "picky." + defaultNamespace})
	if rec := d.waitRecord(id4, finalWith("failed", true)); rec.Attempts != 1 || rec.LastStatus != http.StatusServiceUnavailable {
		t.Errorf("record %s: want failed after 1 attempt with 503 (retry.codes is 429)", rec)
	}
	id5 := d.accept(http.MethodPost, "/async-function/picky?fail=2&code=429", nil, map[string]string{"X-Callback-Url": recv.url("/picky")})
	h = recv.wait(t, id5, 1)[0]
	checkCallback(t, "picky 429×2", h, map[string]string{"X-Function-Status": "200", "X-Retry": "2"})
	if rec := d.waitRecord(id5, finalWith("succeeded", true)); rec.Attempts != 3 {
		t.Errorf("record %s: want succeeded after 3 attempts", rec)
	}

	d.checkMetrics([]metricCheck{
		{series: `queue_worker_messages_submitted_total{function_name="` + fnName + `"}`, want: 3},
		{series: `queue_worker_messages_processed_total{code="200",function_name="` + fnName + `"}`, want: 2},
		{series: `queue_worker_messages_processed_total{code="400",function_name="` + fnName + `"}`, want: 1},
		{series: `queue_worker_retries_total{code="503",function_name="` + fnName + `"}`, want: failures},
		{series: `queue_worker_retries_total{code="429",function_name="` + fnName + `"}`, want: 1},
		{series: `queue_worker_retries_total{code="429",function_name="picky.` + defaultNamespace + `"}`, want: 2},
		{series: `queue_worker_messages_processed_total{code="503",function_name="picky.` + defaultNamespace + `"}`, want: 1},
	})
}

// TestAsyncDeadLetter checks that a call whose every attempt fails ends
// failed after com.openfaas.retry.attempts attempts, is kept as a record,
// and is called back exactly once with the last answer.
func TestAsyncDeadLetter(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	d.deploy(asyncSpec("dead", img, map[string]string{annRetryMinWait: "100ms", annRetryMaxWait: "500ms", annRetryAttempts: "3"}))
	d.waitReady("dead", defaultNamespace, 1)
	const fnName = "dead." + defaultNamespace

	id := d.accept(http.MethodPost, "/async-function/dead?status=500", []byte("doomed"), map[string]string{"X-Callback-Url": recv.url("/dead")})
	rec := d.waitRecord(id, finalWith("failed", true))
	if rec.Attempts != 3 || rec.MaxAttempts != 3 || rec.LastStatus != http.StatusInternalServerError {
		t.Errorf("dead letter %s: want 3 attempts of 3, last status 500", rec)
	}
	t.Logf("dead letter: %s", rec)
	hits := recv.wait(t, id, 1)
	checkCallback(t, "dead letter", hits[0], map[string]string{
		"X-Function-Status": "500", "X-Function-Name": fnName, "X-Call-Id": id,
		"X-Retry": "2", "X-Retry-Max": "2", "X-Fn-Attempt": "3",
	})
	if r := replyOf(t, "dead letter", hits[0]); r.Attempt != 3 || r.Body != "doomed" {
		t.Errorf("the dead letter's callback carries attempt %d body %q, want the last attempt (3) of %q", r.Attempt, r.Body, "doomed")
	}

	// A later call of the same function completes; by then the dead letter
	// must still have run three times and called back once.
	next := d.accept(http.MethodPost, "/async-function/dead", nil, map[string]string{"X-Callback-Url": recv.url("/next")})
	checkCallback(t, "the call after the dead letter", recv.wait(t, next, 1)[0], map[string]string{"X-Function-Status": "200", "X-Retry": "0"})
	d.waitRecord(next, finalWith("succeeded", true))
	if n := len(recv.of(id)); n != 1 {
		t.Errorf("the dead letter %s was called back %d times, want once", id, n)
	}
	if n := len(d.mustFnStats("dead").Calls[id]); n != 3 {
		t.Errorf("the function saw %d attempts of the dead letter, want 3", n)
	}
	if rec, _, err := d.asyncRecordOf(id); err != nil || rec.State != "failed" || rec.Attempts != 3 {
		t.Errorf("the dead letter's record later: %s %v, want still failed after 3 attempts", rec, err)
	}
	list, err := d.asyncList("function=dead&state=failed")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].CallID != id {
		t.Errorf("GET /system/async?function=dead&state=failed: %v, want only %s", list, id)
	}
	d.checkMetrics([]metricCheck{
		{series: `queue_worker_messages_processed_total{code="500",function_name="` + fnName + `"}`, want: 1},
		{series: `queue_worker_retries_total{code="500",function_name="` + fnName + `"}`, want: 2},
		{series: `queue_worker_messages_submitted_total{function_name="` + fnName + `"}`, want: 2},
	})
}

// TestAsyncCancel checks DELETE /async-function/{id}: a queued call is
// cancelled and never reaches the function, a running one is aborted,
// neither is called back; again is a 409, an unknown id a 404, a finished
// call a 409; and deleting the function cancels what it had pending.
func TestAsyncCancel(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	d.deploy(asyncSpec("slow", img, map[string]string{annMaxInflight: "1"}))
	d.waitReady("slow", defaultNamespace, 1)

	ids := make([]string, 3)
	for i := range ids {
		ids[i] = d.accept(http.MethodPost, "/async-function/slow?sleep=5s", []byte(strconv.Itoa(i)), map[string]string{
			"X-Call-Id":      fmt.Sprintf("cancel-%d-%s", i+1, randomSuffix(6)),
			"X-Callback-Url": recv.url("/cancel"),
		})
	}
	// The first is running (the function has it), the others wait.
	eventually(t, asyncWait, asyncPoll, func() error {
		s, err := d.fnStats("slow")
		if err != nil {
			return err
		}
		if len(s.Calls[ids[0]]) == 0 {
			return fmt.Errorf("the function has not seen %s yet", ids[0])
		}
		return nil
	})
	d.waitRecord(ids[0], func(r asyncRecord) error {
		if r.State != "running" {
			return fmt.Errorf("state %q, want running", r.State)
		}
		return nil
	})
	for _, id := range ids[1:] {
		if rec, _, err := d.asyncRecordOf(id); err != nil || rec.State != "queued" {
			t.Errorf("record of %s behind a running call with max-inflight 1: %s %v, want queued", id, rec, err)
		}
	}
	// A client retrying the accept of a queued call: 202, not queued twice.
	again := d.invoke(http.MethodPost, "/async-function/slow?sleep=5s", []byte("1"), map[string]string{
		"X-Call-Id": ids[1], "X-Callback-Url": recv.url("/cancel"),
	})
	checkAccepted(t, "the accept of a queued call again", again.Status, again.Header, again.Body, ids[1])

	// Cancel the third (queued).
	res := d.invoke(http.MethodDelete, "/async-function/"+ids[2], nil, nil)
	if res.Status != http.StatusAccepted {
		t.Fatalf("DELETE /async-function/%s (queued): %s, want 202", ids[2], res)
	}
	var body asyncRecord
	if err := json.Unmarshal(res.Body, &body); err != nil || body.CallID != ids[2] || body.State != "cancelled" {
		t.Errorf("DELETE /async-function/%s answered %s, want the record, cancelled (%v)", ids[2], res, err)
	}
	if rec, _, err := d.asyncRecordOf(ids[2]); err != nil || rec.State != "cancelled" {
		t.Errorf("record of %s after the cancel: %s %v, want cancelled", ids[2], rec, err)
	}
	if res := d.invoke(http.MethodDelete, "/async-function/"+ids[2], nil, nil); res.Status != http.StatusConflict {
		t.Errorf("DELETE /async-function/%s again: %s, want 409", ids[2], res)
	}
	if res := d.invoke(http.MethodDelete, "/async-function/no-such-call-"+randomSuffix(6), nil, nil); res.Status != http.StatusNotFound {
		t.Errorf("DELETE /async-function/ of an unknown id: %s, want 404", res)
	}

	// Cancel the first (running): the attempt is aborted.
	if res := d.invoke(http.MethodDelete, "/async-function/"+ids[0], nil, nil); res.Status != http.StatusAccepted {
		t.Fatalf("DELETE /async-function/%s (running): %s, want 202", ids[0], res)
	}
	d.waitRecord(ids[0], finalWith("cancelled", false))
	eventually(t, asyncWait, asyncPoll, func() error {
		s, err := d.fnStats("slow")
		if err != nil {
			return err
		}
		if !slices.Contains(s.Aborted, ids[0]) {
			return fmt.Errorf("the function's attempt of %s was not aborted (aborted: %v)", ids[0], s.Aborted)
		}
		return nil
	})

	// The second runs and completes; then nothing of the others happened.
	checkCallback(t, "the call between the cancelled ones", recv.wait(t, ids[1], 1)[0], map[string]string{"X-Function-Status": "200", "X-Call-Id": ids[1]})
	d.waitRecord(ids[1], finalWith("succeeded", true))
	s := d.mustFnStats("slow")
	if n := len(s.Calls[ids[2]]); n != 0 {
		t.Errorf("the function saw the cancelled queued call %s %d times, want never", ids[2], n)
	}
	if n := len(s.Calls[ids[0]]); n != 1 {
		t.Errorf("the function saw the cancelled running call %s %d times, want once (aborted)", ids[0], n)
	}
	for _, id := range []string{ids[0], ids[2]} {
		if n := len(recv.of(id)); n != 0 {
			t.Errorf("cancelled call %s was called back %d times, want never", id, n)
		}
		if rec, _, err := d.asyncRecordOf(id); err != nil || rec.State != "cancelled" {
			t.Errorf("record of %s later: %s %v, want still cancelled", id, rec, err)
		}
	}
	if res := d.invoke(http.MethodDelete, "/async-function/"+ids[1], nil, nil); res.Status != http.StatusConflict {
		t.Errorf("DELETE /async-function/%s (succeeded): %s, want 409", ids[1], res)
	}

	// Deleting the function cancels its running and queued calls.
	running := d.accept(http.MethodPost, "/async-function/slow?sleep=5s", nil, map[string]string{"X-Callback-Url": recv.url("/deleted")})
	queued := d.accept(http.MethodPost, "/async-function/slow?sleep=5s", nil, map[string]string{"X-Callback-Url": recv.url("/deleted")})
	d.waitRecord(running, func(r asyncRecord) error {
		if r.State != "running" {
			return fmt.Errorf("state %q, want running", r.State)
		}
		return nil
	})
	// Anything queued before it has run by now.
	s = d.mustFnStats("slow")
	if n := len(s.Calls[ids[1]]); n != 1 {
		t.Errorf("the function ran %s %d times, want once (accepted twice with the same X-Call-Id)", ids[1], n)
	}
	if n := len(recv.of(ids[1])); n != 1 {
		t.Errorf("%s was called back %d times, want once", ids[1], n)
	}
	if err := d.client().DeleteFunction(t.Context(), "slow", defaultNamespace); err != nil {
		t.Fatalf("delete slow: %v", err)
	}
	for _, id := range []string{running, queued} {
		rec := d.waitRecord(id, finalWith("cancelled", false))
		if rec.LastError != "function deleted" {
			t.Errorf("record of %s after its function was deleted: lastError %q, want %q", id, rec.LastError, "function deleted")
		}
	}
	d.waitGone("slow")
	for _, id := range []string{running, queued} {
		if n := len(recv.of(id)); n != 0 {
			t.Errorf("call %s cancelled by the delete was called back %d times, want never", id, n)
		}
	}
}

// TestAsyncConcurrencyPerFunction checks io.dockerfaas.async.max-inflight
// (at most 2 calls of the slow function at once, and 2 reached, started
// oldest first) and that functions do not share slots: a fast function's
// calls accepted after the slow backlog complete while the slow function
// still has calls queued.
func TestAsyncConcurrencyPerFunction(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	d.deploy(asyncSpec("slow", img, map[string]string{annMaxInflight: "2"}))
	d.deploy(asyncSpec("fast", img, nil))
	d.waitReady("slow", defaultNamespace, 1)
	d.waitReady("fast", defaultNamespace, 1)
	const slowName = "slow." + defaultNamespace

	slow := make([]string, 6)
	for i := range slow {
		slow[i] = d.accept(http.MethodPost, "/async-function/slow?sleep=5s", nil, map[string]string{
			"X-Call-Id":      fmt.Sprintf("slow-%d-%s", i+1, randomSuffix(6)),
			"X-Callback-Url": recv.url("/slow"),
		})
	}
	fast := make([]string, 3)
	for i := range fast {
		fast[i] = d.accept(http.MethodPost, "/async-function/fast", nil, map[string]string{"X-Callback-Url": recv.url("/fast")})
	}
	for _, id := range fast {
		checkCallback(t, "fast call", recv.wait(t, id, 1)[0], map[string]string{"X-Function-Status": "200", "X-Function-Name": "fast." + defaultNamespace})
	}
	states := map[string]int{}
	for _, id := range slow {
		rec, _, err := d.asyncRecordOf(id)
		if err != nil {
			t.Fatal(err)
		}
		states[rec.State]++
	}
	text := d.metricsText()
	t.Logf("when the fast calls had called back, the slow calls were %v", states)
	if states["queued"] == 0 {
		t.Errorf("the slow function had no call queued when the fast function's calls had completed (%v): the test proves nothing, or the fast calls waited for the slow ones", states)
	}
	if states["running"] > 2 {
		t.Errorf("%d slow calls running, more than max-inflight 2", states["running"])
	}
	if v, ok := seriesValue(text, `queue_worker_pending_messages{function_name="`+slowName+`",queue_name="async"}`); !ok || v < 1 {
		t.Errorf("queue_worker_pending_messages of slow %g (present %v) while %d calls were queued, want at least 1", v, ok, states["queued"])
	}
	if v, ok := seriesValue(text, `queue_worker_function_invocation_inflight{function_name="`+slowName+`"}`); !ok || v > 2 {
		t.Errorf("queue_worker_function_invocation_inflight of slow %g (present %v), want at most 2", v, ok)
	}

	for _, id := range slow {
		checkCallback(t, "slow call", recv.wait(t, id, 1)[0], map[string]string{"X-Function-Status": "200", "X-Call-Id": id})
	}
	s := d.mustFnStats("slow")
	if s.MaxInflight != 2 {
		t.Errorf("the slow function had at most %d calls at once, want exactly max-inflight 2", s.MaxInflight)
	}
	// Oldest first: the calls started in pairs of acceptance order.
	type start struct {
		id string
		at int64
	}
	var order []start
	for _, id := range slow {
		if len(s.Calls[id]) != 1 {
			t.Fatalf("the slow function saw %s %d times, want once", id, len(s.Calls[id]))
		}
		order = append(order, start{id, s.Calls[id][0]})
	}
	sort.Slice(order, func(i, j int) bool { return order[i].at < order[j].at })
	for i := 0; i < len(order); i += 2 {
		got := []string{order[i].id, order[i+1].id}
		want := slow[i : i+2]
		if !slices.Contains(got, want[0]) || !slices.Contains(got, want[1]) {
			t.Errorf("calls %d and %d to start were %v, want %v (oldest first)", i+1, i+2, got, want)
		}
	}
}

// TestAsyncCallbackHostsGuard checks ASYNC_CALLBACK_HOSTS with an IP rule
// only: a callback to an address outside it is refused with 400 when the
// call is accepted; a callback to a name is accepted (its address can only
// be checked when dialled) but, since localhost resolves to loopback,
// outside the rule, nothing ever reaches the receiver and the delivery ends
// failed after ASYNC_CALLBACK_ATTEMPTS tries, while the call itself
// succeeded.
func TestAsyncCallbackHostsGuard(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("ASYNC_CALLBACK_HOSTS", "10.99.0.0/16"), withEnv("ASYNC_CALLBACK_ATTEMPTS", "2"))
	img := fnImage(t, fnAsync)
	recv := newCallbackReceiver(t)
	d.deploy(asyncSpec("guarded", img, nil))
	d.waitReady("guarded", defaultNamespace, 1)
	port := recv.srv.Listener.Addr().(*net.TCPAddr).Port

	if res := d.invoke(http.MethodPost, "/async-function/guarded", []byte("x"), map[string]string{"X-Callback-Url": recv.url("/direct")}); res.Status != http.StatusBadRequest {
		t.Errorf("callback to %s with ASYNC_CALLBACK_HOSTS=10.99.0.0/16: %s, want 400", recv.url("/direct"), res)
	}
	sneaky := fmt.Sprintf("http://localhost:%d/sneaky", port)
	id := d.accept(http.MethodPost, "/async-function/guarded", []byte("x"), map[string]string{"X-Callback-Url": sneaky})
	rec := d.waitRecord(id, func(r asyncRecord) error {
		if r.State != "succeeded" || r.callbackState() != "failed" {
			return fmt.Errorf("state %q callback %q, want succeeded with the callback failed", r.State, r.callbackState())
		}
		return nil
	})
	t.Logf("callback to %s: %s", sneaky, rec)
	if rec.Callback.Attempts != 2 || rec.Callback.LastError == "" {
		t.Errorf("callback to %s: %d attempts, last error %q; want 2 attempts (ASYNC_CALLBACK_ATTEMPTS) and the refusal", sneaky, rec.Callback.Attempts, rec.Callback.LastError)
	}
	if hits := recv.snapshot(); len(hits) != 0 {
		t.Errorf("the receiver on loopback was reached despite ASYNC_CALLBACK_HOSTS=10.99.0.0/16: %d call ids", len(hits))
	}
	d.checkMetrics([]metricCheck{
		{series: `queue_worker_callbacks_total{result="failed"}`, want: 1},
		{series: `queue_worker_messages_processed_total{code="200",function_name="guarded.` + defaultNamespace + `"}`, want: 1},
	})
}

// TestAsyncRecordsPruned checks ASYNC_RECORDS_MAX=3: of five finished calls
// only the newest three records are kept (pruned at the latest when the
// daemon starts), while an older call still waiting to retry is kept.
func TestAsyncRecordsPruned(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("ASYNC_RECORDS_MAX", "3"))
	img := fnImage(t, fnAsync)
	d.deploy(asyncSpec("rec", img, map[string]string{annRetryMinWait: "10m", annRetryMaxWait: "10m", annRetryAttempts: "3"}))
	d.waitReady("rec", defaultNamespace, 1)

	// The oldest call: failed once, waiting 10 minutes to retry.
	waiting := d.accept(http.MethodPost, "/async-function/rec?fail=100", nil, nil)
	d.waitRecord(waiting, func(r asyncRecord) error {
		if r.State != "retrying" || r.Attempts != 1 || r.NextAttemptAt == nil {
			return fmt.Errorf("state %q after %d attempts, next at %v; want retrying after 1 with a next attempt time", r.State, r.Attempts, r.NextAttemptAt)
		}
		return nil
	})
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = d.accept(http.MethodPost, "/async-function/rec", nil, map[string]string{"X-Call-Id": fmt.Sprintf("rec-%d-%s", i, randomSuffix(6))})
		d.waitRecord(ids[i], finalWith("succeeded", false))
	}
	d.Restart()
	eventually(t, 90*time.Second, 500*time.Millisecond, func() error {
		for i, id := range ids {
			_, res, err := d.asyncRecordOf(id)
			switch {
			case i < 2 && res.Status != http.StatusNotFound:
				return fmt.Errorf("record %d of 5 (%s): %s %v, want pruned (404)", i+1, id, res, err)
			case i >= 2 && err != nil:
				return fmt.Errorf("record %d of 5 (%s): %v, want kept", i+1, id, err)
			}
		}
		return nil
	})
	rec, _, err := d.asyncRecordOf(waiting)
	if err != nil || (rec.State != "retrying" && rec.State != "queued") {
		t.Errorf("the oldest call, not final: %s %v, want kept and still waiting to retry", rec, err)
	}
	list, err := d.asyncList("function=rec")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.CallID)
	}
	if want := []string{ids[4], ids[3], ids[2], waiting}; !slices.Equal(got, want) {
		t.Errorf("GET /system/async?function=rec after pruning: %v, want %v", got, want)
	}
}
