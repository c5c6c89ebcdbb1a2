package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	sdk "github.com/openfaas/go-sdk"
)

// Short server timeouts for TestLogs: WriteTimeout is max(write, exec)+5s
// (cmd/dockerfaasd), so a follow stream open for longer than that proves
// the handler lifted the server's deadlines.
const (
	logsTimeouts     = "read=3s,write=3s,exec=3s"
	logsWriteTimeout = 8 * time.Second
)

// TestLogs deploys fn-echo, makes it log unique markers and reads them
// back through GET /system/logs with the go-sdk and plain HTTP: history
// (merged, tail, since), a follow stream that outlives the server's
// timeouts and picks up a replica started after it, and errors.
func TestLogs(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("DEFAULT_TIMEOUTS", logsTimeouts))
	img := fnImage(t, fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()

	const hist, fol = "logs-history", "logs-follow"
	d.deploy(simpleSpec(hist, img, nil, nil))
	d.deploy(simpleSpec(fol, img, nil, nil))
	if err := c.ScaleFunction(ctx, hist, defaultNamespace, 2); err != nil {
		t.Fatalf("scale %s to 2: %v", hist, err)
	}
	d.waitReady(hist, defaultNamespace, 2)
	d.waitReady(fol, defaultNamespace, 1)

	replicas := d.shortIDs(hist)
	if len(replicas) != 2 {
		t.Fatalf("%s: running replicas %v, want 2", hist, replicas)
	}

	// Markers: marker 0 first, then, once the clock passed the next whole
	// second after Docker's timestamp of marker 0 (so that a since with
	// the go-sdk's whole seconds can fall between), markers 1..5, spread
	// round-robin over both replicas.
	run := randomSuffix(6)
	marker := func(i int) string { return fmt.Sprintf("unique-marker-%s-%d", run, i) }
	const markers = 6
	logLine(t, d, hist, marker(0))
	var ts0 time.Time
	eventually(t, 30*time.Second, pollInterval, func() error {
		for _, m := range d.sdkLogs(t, c, hist, 0, nil) {
			if m.Text == marker(0) {
				ts0 = m.Timestamp
				return nil
			}
		}
		return fmt.Errorf("marker 0 not in the history yet")
	})
	time.Sleep(time.Until(ts0.Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	for i := 1; i < markers; i++ {
		logLine(t, d, hist, marker(i))
	}
	written := time.Now()

	// Docker stamps and stores a line when it reads it from the
	// container's stdout or stderr pipe, a moment after the function wrote
	// it, so an answered invocation does not mean its line is readable yet.
	// Wait until every marker and its "request GET /log" line (stderr) are
	// there; nothing writes to the function's log after that.
	var all []logs.Message
	eventually(t, 30*time.Second, pollInterval, func() error {
		all = d.sdkLogs(t, c, hist, 0, nil)
		have, requests := map[string]bool{}, 0
		for _, m := range all {
			have[m.Text] = true
			if m.Text != "" && strings.HasSuffix(m.Text, "request GET /log") {
				requests++
			}
		}
		for i := 0; i < markers; i++ {
			if !have[marker(i)] {
				return fmt.Errorf("marker %d not in the history yet (%d lines)", i, len(all))
			}
		}
		if requests != markers {
			return fmt.Errorf("%d request lines in the history, want %d", requests, markers)
		}
		return nil
	})
	t.Logf("history of %s: %d lines, complete %s after the last marker was answered", hist, len(all), time.Since(written).Round(time.Millisecond))
	t.Run("history: markers, fields, order", func(t *testing.T) {
		checkNonDecreasing(t, all)
		instances := map[string]bool{}
		lastOf := map[string]int{} // instance → last marker number seen
		found := map[int]logs.Message{}
		for _, m := range all {
			if m.Name != hist || m.Namespace != defaultNamespace || !slices.Contains(replicas, m.Instance) {
				t.Errorf("message %+v: want name %s, namespace %s and an instance among %v", m, hist, defaultNamespace, replicas)
			}
			instances[m.Instance] = true
			for i := 0; i < markers; i++ {
				if m.Text == marker(i) {
					if _, dup := found[i]; dup {
						t.Errorf("marker %d sent twice", i)
					}
					found[i] = m
					// One replica's lines keep their order.
					if last, ok := lastOf[m.Instance]; ok && last > i {
						t.Errorf("replica %s: marker %d after marker %d", m.Instance, i, last)
					}
					lastOf[m.Instance] = i
				}
			}
			if strings.HasSuffix(m.Text, "\n") {
				t.Errorf("text %q ends with a newline", m.Text)
			}
		}
		for i := 0; i < markers; i++ {
			if _, ok := found[i]; !ok {
				t.Errorf("marker %d (%s) missing from the history", i, marker(i))
			}
		}
		if len(instances) != 2 {
			t.Errorf("lines came from instances %v, want both replicas %v", instances, replicas)
		}
		if len(lastOf) != 2 {
			t.Logf("markers landed on %d replica(s): %v", len(lastOf), lastOf)
		}
		if !found[0].Timestamp.Equal(ts0) {
			t.Errorf("marker 0 stamped %s, earlier read as %s", found[0].Timestamp, ts0)
		}
	})

	t.Run("tail=2 is the last two lines of the function", func(t *testing.T) {
		got := d.sdkLogs(t, c, hist, 2, nil)
		if len(got) != 2 || len(all) < 2 || !sameMessages(got, all[len(all)-2:]) {
			t.Errorf("tail=2: got %v, want the last two of the history %v", texts(got), texts(all[max(0, len(all)-2):]))
		}
	})

	t.Run("since excludes earlier lines", func(t *testing.T) {
		// Plain HTTP with nanoseconds: everything after marker 0.
		since := ts0.Add(time.Nanosecond)
		res := d.invoke(http.MethodGet, "/system/logs?follow=false&name="+hist+"&since="+url.QueryEscape(since.Format(time.RFC3339Nano)), nil, nil)
		if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("got %s (Content-Type %q), want 200 NDJSON", res, res.Header.Get("Content-Type"))
		}
		got := decodeNDJSON(t, res.Body)
		checkSince(t, got, since, marker, markers)

		// The go-sdk sends whole seconds with the local offset: the second
		// after marker 0 excludes it, and markers 1..5 were written later.
		sinceSec := ts0.Truncate(time.Second).Add(time.Second).Local()
		checkSince(t, d.sdkLogs(t, c, hist, 0, &sinceSec), sinceSec, marker, markers)
	})

	t.Run("errors", func(t *testing.T) {
		if res := d.invoke(http.MethodGet, "/system/logs?follow=false&name=no-such-fn&tail=-1", nil, nil); res.Status != http.StatusNotFound ||
			!strings.Contains(string(res.Body), "function no-such-fn.openfaas-fn not found") {
			t.Errorf("unknown function: got %s, want 404 naming it", res)
		}
		if _, err := c.GetLogs(ctx, "no-such-fn", "", false, 0, nil); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("go-sdk, unknown function: got %v, want a not-found error", err)
		}
		if res := d.invoke(http.MethodGet, "/system/logs?name="+hist+"&tail=lots", nil, nil); res.Status != http.StatusUnprocessableEntity {
			t.Errorf("bad tail: got %s, want 422", res)
		}
		if res := d.invoke(http.MethodGet, "/system/logs?tail=-1", nil, nil); res.Status != http.StatusBadRequest {
			t.Errorf("missing name: got %s, want 400", res)
		}
	})

	t.Run("follow", func(t *testing.T) {
		testLogsFollow(t, d, fol, run)
	})

	// Last, as it stops the daemon: a graceful stop ends open follow
	// streams instead of waiting for the clients to leave.
	t.Run("daemon stop ends follow streams", func(t *testing.T) {
		u, _ := url.Parse(d.baseURL)
		c := sdk.NewClient(u, &sdk.BasicAuth{Username: d.user, Password: d.password}, &http.Client{})
		ch, err := c.GetLogs(ctx, hist, "", true, 1, nil)
		if err != nil {
			t.Fatalf("GetLogs follow: %v", err)
		}
		w := &logWatch{ch: ch}
		if _, err := w.waitFor(30*time.Second, func(logs.Message) bool { return true }); err != nil {
			t.Fatalf("tail=1 with follow: %v", err)
		}
		start := time.Now()
		d.Stop()
		t.Logf("daemon stopped %s after SIGTERM with a follow stream open", time.Since(start).Round(time.Millisecond))
		if err := w.drain(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		var ended bool
		for _, l := range strings.Split(d.logTail(logTailLines), "\n") {
			ended = ended || strings.Contains(l, "log stream ended") && strings.Contains(l, "function="+hist) && strings.Contains(l, "follow=true")
		}
		if !ended {
			t.Error("the follow stream did not end before the daemon exited")
		}
	})
}

// testLogsFollow follows fn's logs: a new line arrives, the stream outlives
// the server's write timeout, a replica started after the stream began is
// picked up, and cancelling the client ends the stream on both sides.
func testLogsFollow(t *testing.T, d *daemon, fn, run string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	first := d.shortIDs(fn)
	if len(first) != 1 {
		t.Fatalf("%s: running replicas %v, want 1", fn, first)
	}

	// The client's own timeout would cut the stream: only ctx bounds it.
	u, _ := url.Parse(d.baseURL)
	c := sdk.NewClient(u, &sdk.BasicAuth{Username: d.user, Password: d.password}, &http.Client{})
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	opened := time.Now()
	ch, err := c.GetLogs(streamCtx, fn, defaultNamespace, true, -1, nil)
	if err != nil {
		t.Fatalf("GetLogs follow: %v", err)
	}
	w := &logWatch{ch: ch}

	arrives := func(text string, want func(logs.Message) bool) logs.Message {
		t.Helper()
		start := time.Now()
		m, err := w.waitFor(30*time.Second, func(m logs.Message) bool { return m.Text == text })
		if err != nil {
			t.Fatalf("line %q: %v", text, err)
		}
		if want != nil && !want(m) {
			t.Errorf("line %q: got %+v", text, m)
		}
		t.Logf("line %q arrived %s after it was asked for", text, time.Since(start).Round(time.Millisecond))
		return m
	}
	onFirst := func(m logs.Message) bool {
		return m.Instance == first[0] && m.Name == fn && m.Namespace == defaultNamespace
	}

	text := "follow-marker-" + run + "-1"
	logLine(t, d, fn, text)
	arrives(text, onFirst)

	// Outlive the server's write (and read) timeout, then see a line.
	if wait := logsWriteTimeout + time.Second - time.Since(opened); wait > 0 {
		time.Sleep(wait)
	}
	text = "follow-marker-" + run + "-2"
	logLine(t, d, fn, text)
	arrives(text, onFirst)
	t.Logf("stream open for %s, past the server's %s write timeout", time.Since(opened).Round(time.Millisecond), logsWriteTimeout)

	// Scale 1→2: the new replica's lines come on the same stream.
	if err := d.client().ScaleFunction(ctx, fn, defaultNamespace, 2); err != nil {
		t.Fatalf("scale %s to 2: %v", fn, err)
	}
	d.waitReady(fn, defaultNamespace, 2)
	var fresh string
	for _, id := range d.shortIDs(fn) {
		if id != first[0] {
			fresh = id
		}
	}
	if fresh == "" {
		t.Fatalf("no new replica of %s after scaling to 2", fn)
	}
	scaled := time.Now()
	// Its start-up line: it started after the stream began, so all of its
	// log is new.
	if _, err := w.waitFor(30*time.Second, func(m logs.Message) bool {
		return m.Instance == fresh && strings.Contains(m.Text, "listening on :8080")
	}); err != nil {
		t.Errorf("start-up line of the new replica %s: %v", fresh, err)
	}
	landed := false
	for i := 0; i < 20 && !landed; i++ {
		text = fmt.Sprintf("follow-marker-%s-scaled-%d", run, i)
		logLine(t, d, fn, text)
		m := arrives(text, func(m logs.Message) bool { return m.Instance == first[0] || m.Instance == fresh })
		landed = m.Instance == fresh
	}
	if !landed {
		t.Fatalf("no invocation's line came from the new replica %s", fresh)
	}
	t.Logf("new replica %s seen on the stream %s after it was ready", fresh, time.Since(scaled).Round(time.Millisecond))

	// Nothing came twice: neither the history's last lines when the live
	// part took over, nor anything of the new replica.
	counts := map[string]int{}
	for _, m := range w.seen {
		counts[m.Timestamp.Format(time.RFC3339Nano)+" "+m.Instance+" "+m.Text]++
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("line %q came %d times", k, n)
		}
	}

	// The client goes away: the stream ends on both sides.
	stopStream()
	ended := time.Now()
	if err := w.drain(30 * time.Second); err != nil {
		t.Fatalf("after cancelling the client: %v", err)
	}
	t.Logf("client side ended %s after cancel", time.Since(ended).Round(time.Millisecond))
	eventually(t, 30*time.Second, pollInterval, func() error {
		for _, l := range strings.Split(d.logTail(logTailLines), "\n") {
			if strings.Contains(l, "log stream ended") && strings.Contains(l, "function="+fn) && strings.Contains(l, "follow=true") {
				return nil
			}
		}
		return fmt.Errorf("the daemon did not log the end of the follow stream of %s", fn)
	})
}

// logLine makes fn-echo function fn write text as one line on stdout.
func logLine(t *testing.T, d *daemon, fn, text string) {
	t.Helper()
	res := d.invoke(http.MethodGet, "/function/"+fn+"/log?text="+url.QueryEscape(text), nil, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("invoke %s/log: %s", fn, res)
	}
}

// shortIDs returns the short IDs of fn's running containers, the instance
// names log messages carry.
func (d *daemon) shortIDs(fn string) []string {
	d.t.Helper()
	ids, err := d.runningIDs(fn, defaultNamespace)
	if err != nil {
		d.t.Fatal(err)
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, short(id))
	}
	return out
}

// sdkLogs reads fn's logs without follow through the go-sdk and requires
// the stream to end by itself.
func (d *daemon) sdkLogs(t *testing.T, c *sdk.Client, fn string, tail int, since *time.Time) []logs.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := c.GetLogs(ctx, fn, "", false, tail, since)
	if err != nil {
		t.Fatalf("GetLogs %s: %v", fn, err)
	}
	var out []logs.Message
	for m := range ch {
		out = append(out, m)
	}
	if ctx.Err() != nil {
		t.Fatalf("GetLogs %s without follow did not end by itself", fn)
	}
	return out
}

// logWatch reads a follow stream, keeping everything it saw.
type logWatch struct {
	ch   <-chan logs.Message
	seen []logs.Message
}

// waitFor reads until a message matches, the stream ends or timeout passes.
func (w *logWatch) waitFor(timeout time.Duration, match func(logs.Message) bool) (logs.Message, error) {
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-w.ch:
			if !ok {
				return m, fmt.Errorf("the stream ended after %d lines", len(w.seen))
			}
			w.seen = append(w.seen, m)
			if match(m) {
				return m, nil
			}
		case <-deadline:
			return logs.Message{}, fmt.Errorf("not seen within %s (%d lines read)", timeout, len(w.seen))
		}
	}
}

// drain reads until the stream ends.
func (w *logWatch) drain(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-w.ch:
			if !ok {
				return nil
			}
			w.seen = append(w.seen, m)
		case <-deadline:
			return fmt.Errorf("the stream did not end within %s", timeout)
		}
	}
}

// decodeNDJSON decodes a body of JSON log messages, one per line.
func decodeNDJSON(t *testing.T, body []byte) []logs.Message {
	t.Helper()
	var out []logs.Message
	for i, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m logs.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		out = append(out, m)
	}
	return out
}

// checkNonDecreasing requires a history's timestamps to be merged in order.
func checkNonDecreasing(t *testing.T, msgs []logs.Message) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Timestamp.Before(msgs[i-1].Timestamp) {
			t.Errorf("line %d at %s comes after line %d at %s", i, msgs[i].Timestamp, i-1, msgs[i-1].Timestamp)
		}
	}
}

// checkSince requires every line to be at or after since, marker 0 to be
// absent and markers 1..n-1 present.
func checkSince(t *testing.T, got []logs.Message, since time.Time, marker func(int) string, n int) {
	t.Helper()
	checkNonDecreasing(t, got)
	have := map[string]bool{}
	for _, m := range got {
		if m.Timestamp.Before(since) {
			t.Errorf("since %s: line %+v is earlier", since, m)
		}
		have[m.Text] = true
	}
	if have[marker(0)] {
		t.Errorf("since %s: marker 0 included", since)
	}
	for i := 1; i < n; i++ {
		if !have[marker(i)] {
			t.Errorf("since %s: marker %d missing (%d lines)", since, i, len(got))
		}
	}
}

// texts renders messages for failure output.
func texts(msgs []logs.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Timestamp.Format(time.RFC3339Nano)+" "+m.Instance+" "+m.Text)
	}
	return out
}

// sameMessages compares messages, timestamps as instants.
func sameMessages(a, b []logs.Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Namespace != b[i].Namespace || a[i].Instance != b[i].Instance ||
			a[i].Text != b[i].Text || !a[i].Timestamp.Equal(b[i].Timestamp) {
			return false
		}
	}
	return true
}
