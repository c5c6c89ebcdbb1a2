package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// loadOptions bound a concurrent invocation loop: it runs until stopped, or
// until maxDuration passed or maxRequests were sent, whichever comes first.
type loadOptions struct {
	workers     int
	maxDuration time.Duration
	maxRequests int
	// pause between two requests of one worker, so a loop running against a
	// daemon that is down does not burn its request budget in a second.
	pause time.Duration
	// every, when set, paces each worker instead of pause: request i+1
	// starts every after request i started (at once when it took longer),
	// like a client sending a fixed rate per worker.
	every time.Duration
	// request builds request i of worker w: method, path under the daemon
	// and body (nil for none).
	request func(w, i int) (method, path string, body []byte)
}

// loadSample is the outcome of one request of a load loop.
type loadSample struct {
	worker     int
	method     string
	path       string
	start, end time.Time
	status     int   // 0 on a transport error
	err        error // transport error
	reply      echoReply
	decodeErr  error  // a 200 that is not an fn-echo reply
	body       string // the answer, cut to 200 bytes
}

// failed reports whether the request failed: a transport error, a status
// other than 200, or a 200 that fn-echo did not write.
func (s loadSample) failed() bool {
	return s.err != nil || s.status != http.StatusOK || s.decodeErr != nil
}

// refused reports whether nothing was listening: the daemon process is down.
func (s loadSample) refused() bool { return errors.Is(s.err, syscall.ECONNREFUSED) }

// String describes the sample for failure messages.
func (s loadSample) String() string {
	what := fmt.Sprint(s.status)
	switch {
	case s.err != nil:
		what = s.err.Error()
	case s.decodeErr != nil:
		what += " " + s.decodeErr.Error()
	}
	return fmt.Sprintf("worker %d %s %s at %s (took %s): %s", s.worker, s.method, s.path,
		s.start.Format("15:04:05.000"), s.end.Sub(s.start).Round(time.Millisecond), what)
}

// loadLoop is a running invocation loop; stop ends it and returns its samples.
type loadLoop struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []loadSample
	once    sync.Once
}

// startLoad starts opts.workers goroutines invoking the daemon with its
// credentials over one shared keep-alive client, like a real caller would.
func startLoad(t *testing.T, d *daemon, opts loadOptions) *loadLoop {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opts.maxDuration)
	l := &loadLoop{cancel: cancel}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: opts.workers, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	var budget sync.Mutex
	sent := 0
	take := func() bool {
		budget.Lock()
		defer budget.Unlock()
		if sent >= opts.maxRequests {
			return false
		}
		sent++
		return true
	}
	for w := 0; w < opts.workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil && take(); i++ {
				method, path, body := opts.request(w, i)
				s := send(ctx, client, d, method, path, body)
				s.worker = w
				if ctx.Err() != nil && s.err != nil {
					return // stopped mid-request: not a failure of the daemon
				}
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
				wait := opts.pause
				if opts.every > 0 {
					wait = time.Until(s.start.Add(opts.every))
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// send sends one request and reads the whole response.
func send(ctx context.Context, client *http.Client, d *daemon, method, path string, body []byte) loadSample {
	s := loadSample{method: method, path: path, start: time.Now()}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.baseURL+path, rd)
	if err != nil {
		s.err, s.end = err, time.Now()
		return s
	}
	req.SetBasicAuth(d.user, d.password)
	res, err := client.Do(req)
	if err != nil {
		s.err = err
		s.end = time.Now()
		return s
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	s.end = time.Now()
	s.status = res.StatusCode
	if err != nil {
		s.err = fmt.Errorf("reading body: %w", err)
		return s
	}
	s.body = truncate(string(b), 200)
	if s.status == http.StatusOK {
		s.reply, s.decodeErr = decodeEcho(httpResult{Status: s.status, Body: b})
	} else {
		s.decodeErr = fmt.Errorf("body %q", truncate(string(b), 200))
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// stop ends the loop, waits for its workers and returns the samples in the
// order they started.
func (l *loadLoop) stop() []loadSample {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]loadSample(nil), l.samples...)
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// checkLoadLasted fails the test unless some request of the load started
// after until (the end of the event it was meant to span): a load bound by
// its request count can run out first when calls get faster, and then
// proves nothing about the event.
func checkLoadLasted(t *testing.T, what string, samples []loadSample, until time.Time) {
	t.Helper()
	for _, s := range samples {
		if s.start.After(until) {
			return
		}
	}
	t.Errorf("%s: the load ended (%d requests) before the event did; raise its maxRequests", what, len(samples))
}

// loadSummary counts samples by outcome ("200", "503", "refused", "error: …").
func loadSummary(samples []loadSample) map[string]int {
	m := map[string]int{}
	for _, s := range samples {
		switch {
		case s.refused():
			m["connection refused"]++
		case s.err != nil:
			msg := s.err.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
			m["transport error: "+msg]++
		case s.decodeErr != nil && s.status == http.StatusOK:
			m["200 not from fn-echo"]++
		default:
			m[fmt.Sprint(s.status)]++
		}
	}
	return m
}

// firstFailures formats up to n failed samples for a failure message.
func firstFailures(samples []loadSample, n int) string {
	var b strings.Builder
	for _, s := range samples {
		if !s.failed() {
			continue
		}
		if n == 0 {
			b.WriteString("\n  …")
			break
		}
		n--
		b.WriteString("\n  " + s.String())
	}
	return b.String()
}

// reconcileView is the JSON of /debug/reconcile, decoded loosely so the test
// reads what a script would.
type reconcileView struct {
	Now    time.Time `json:"now"`
	Global struct {
		EventStream      string           `json:"eventStream"`
		DriftCorrections map[string]int64 `json:"driftCorrections"`
		QueueDepth       int              `json:"queueDepth"`
	} `json:"global"`
	Functions []reconcileFunction `json:"functions"`
	// Nodes is there on a swarm only.
	Nodes []struct {
		Hostname string `json:"hostname"`
		State    string `json:"state"`
		Replicas int    `json:"replicas"`
	} `json:"nodes"`
}

// reconcileFunction is one function of reconcileView.
type reconcileFunction struct {
	Key             string    `json:"key"`
	DesiredReplicas uint64    `json:"desiredReplicas"`
	ReadyReplicas   uint64    `json:"readyReplicas"`
	LastResult      string    `json:"lastResult"`
	LastError       string    `json:"lastError"`
	Restarts        int       `json:"restarts"`
	NextRetry       time.Time `json:"nextRetry"`
	Reason          string    `json:"reason"`
	Replicas        []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		State string `json:"state"`
		Node  string `json:"node"`
	} `json:"replicas"`
}

// reconcileStatus reads /debug/reconcile?format=json.
func (d *daemon) reconcileStatus() (reconcileView, error) {
	var v reconcileView
	res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
	if err != nil {
		return v, err
	}
	if res.Status != http.StatusOK {
		return v, fmt.Errorf("GET /debug/reconcile: %s", res)
	}
	if err := json.Unmarshal(res.Body, &v); err != nil {
		return v, fmt.Errorf("GET /debug/reconcile: %w", err)
	}
	return v, nil
}

// function returns the status of name in the default namespace.
func (v reconcileView) function(name string) (reconcileFunction, bool) {
	for _, f := range v.Functions {
		if f.Key == defaultNamespace+"/"+name {
			return f, true
		}
	}
	return reconcileFunction{}, false
}
