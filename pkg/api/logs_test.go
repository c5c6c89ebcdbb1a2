package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/sirupsen/logrus"
)

func TestParseLogRequest(t *testing.T) {
	ist := time.FixedZone("", 5*3600+1800)
	ts := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	for _, tc := range []struct {
		name  string
		query string
		want  logs.Request
		code  int // 0: valid
	}{
		{name: "faas-cli default [cap 23]", query: "follow=true&name=hello&tail=-1",
			want: logs.Request{Name: "hello", Follow: true}},
		{name: "faas-cli no follow, local offset, lines [cap 24, 27]",
			query: "follow=false&name=hello&namespace=dev&since=2026-11-23T12%3A03%3A22%2B05%3A30&tail=5",
			want:  logs.Request{Name: "hello", Namespace: "dev", Tail: 5, Since: ptr(time.Date(2026, 11, 23, 12, 3, 22, 0, ist))}},
		{name: "UTC since [cap 25]", query: "follow=false&name=hello&since=2024-01-02T03%3A04%3A05Z&tail=-1",
			want: logs.Request{Name: "hello", Since: ts("2024-01-02T03:04:05Z")}},
		{name: "go-sdk follow=1", query: "name=hello&follow=1", want: logs.Request{Name: "hello", Follow: true}},
		{name: "go-sdk follow=0", query: "name=hello&follow=0&tail=3", want: logs.Request{Name: "hello", Tail: 3}},
		{name: "unparsable follow is false", query: "name=hello&follow=yes", want: logs.Request{Name: "hello"}},
		{name: "nanosecond since", query: "name=hello&since=2026-11-23T07%3A00%3A00.123456789Z",
			want: logs.Request{Name: "hello", Since: ts("2026-11-23T07:00:00.123456789Z")}},
		{name: "unencoded + offset arrives as a space", query: "name=hello&since=2026-11-23T12:03:22+05:30",
			want: logs.Request{Name: "hello", Since: ptr(time.Date(2026, 11, 23, 12, 3, 22, 0, ist))}},
		{name: "instance", query: "name=hello&instance=abcdef012345", want: logs.Request{Name: "hello", Instance: "abcdef012345"}},
		{name: "zero tail is all", query: "name=hello&tail=0", want: logs.Request{Name: "hello"}},
		{name: "repeated keys: last wins", query: "name=a&name=hello&tail=x&tail=2&follow=true&follow=false&namespace=x&namespace=openfaas-fn",
			want: logs.Request{Name: "hello", Namespace: "openfaas-fn", Tail: 2}},
		{name: "bad tail", query: "name=hello&tail=ten", code: http.StatusUnprocessableEntity},
		{name: "float tail", query: "name=hello&tail=1.5", code: http.StatusUnprocessableEntity},
		{name: "bad since", query: "name=hello&since=yesterday", code: http.StatusUnprocessableEntity},
		{name: "since without offset", query: "name=hello&since=2026-11-23T07%3A00%3A00", code: http.StatusUnprocessableEntity},
		{name: "missing name", query: "follow=true&tail=-1", code: http.StatusBadRequest},
		{name: "empty name", query: "name=", code: http.StatusBadRequest},
		{name: "last name empty", query: "name=hello&name=", code: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseLogRequest(q)
			if tc.code != 0 {
				var bad *logRequestError
				if !errors.As(err, &bad) || bad.code != tc.code {
					t.Fatalf("got %+v, %v; want a %d error", got, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !sameRequest(got, tc.want) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// sameRequest compares requests, with Since compared as instants.
func sameRequest(a, b logs.Request) bool {
	as, bs := a.Since, b.Since
	a.Since, b.Since = nil, nil
	if a != b || (as == nil) != (bs == nil) {
		return false
	}
	return as == nil || as.Equal(*bs)
}

// fakeStreamer records requests and sends its messages.
type fakeStreamer struct {
	msgs []logs.Message
	err  error // returned after the messages
	// wait, when set, makes Stream block until ctx is done after sending.
	wait bool
	got  []logs.Request
}

func (f *fakeStreamer) Stream(ctx context.Context, req logs.Request, emit func(logs.Message) error) error {
	f.got = append(f.got, req)
	for _, m := range f.msgs {
		if err := emit(m); err != nil {
			return err
		}
	}
	if f.wait {
		<-ctx.Done()
		return nil
	}
	return f.err
}

// flushRecorder records the body length at every flush.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes []int
}

func (f *flushRecorder) Flush() {
	f.flushes = append(f.flushes, f.Body.Len())
	f.ResponseRecorder.Flush()
}

var logMsgs = []logs.Message{
	{Name: "hello", Namespace: "openfaas-fn", Instance: "0123456789ab", Timestamp: time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.UTC), Text: "2026/11/23 07:00:00 Forking fprocess."},
	{Name: "hello", Namespace: "openfaas-fn", Instance: "ba9876543210", Timestamp: time.Date(2026, 11, 23, 7, 0, 1, 0, time.UTC), Text: ""},
	{Name: "hello", Namespace: "openfaas-fn", Instance: "0123456789ab", Timestamp: time.Date(2026, 11, 23, 7, 0, 2, 0, time.UTC), Text: `quotes " and <html> and 	tab`},
}

const minimalFn = `{"service":"hello","image":"example/hello:1"}`

func TestGetLogsStreamsNDJSON(t *testing.T) {
	fs := &fakeStreamer{msgs: logMsgs}
	f := newFixture(t, func(c *Config) { c.Logs = fs })
	f.deploy(t, minimalFn)

	r := httptest.NewRequest(http.MethodGet, "/system/logs?follow=false&name=hello&tail=-1", nil)
	r.SetBasicAuth(testUser, testPass)
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	f.h.ServeHTTP(w, r)

	if w.Code != http.StatusOK {
		t.Fatalf("got %d %q, want 200", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	want := logs.Request{Name: "hello", Namespace: "openfaas-fn"}
	if len(fs.got) != 1 || !sameRequest(fs.got[0], want) {
		t.Errorf("streamer got %v, want [%s]", fs.got, want)
	}

	body := w.Body.Bytes()
	lines := bytes.SplitAfter(body, []byte("\n"))
	if last := lines[len(lines)-1]; len(last) != 0 {
		t.Fatalf("body does not end with a newline: %q", body)
	}
	lines = lines[:len(lines)-1]
	if len(lines) != len(logMsgs) {
		t.Fatalf("got %d lines, want %d: %q", len(lines), len(logMsgs), body)
	}
	wantFlushes := []int{0} // the headers, before any line
	n := 0
	for i, line := range lines {
		n += len(line)
		wantFlushes = append(wantFlushes, n)
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(line, &keys); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		for _, k := range []string{"name", "namespace", "instance", "timestamp", "text"} {
			if _, ok := keys[k]; !ok || len(keys) != 5 {
				t.Errorf("line %d %q: want exactly name, namespace, instance, timestamp and text", i, line)
			}
		}
		var m logs.Message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if !m.Timestamp.Equal(logMsgs[i].Timestamp) || m.Text != logMsgs[i].Text || m.Instance != logMsgs[i].Instance || m.Name != "hello" || m.Namespace != "openfaas-fn" {
			t.Errorf("line %d: got %+v, want %+v", i, m, logMsgs[i])
		}
	}
	if !strings.Contains(string(lines[0]), `"timestamp":"2026-11-23T07:00:00.123456789Z"`) {
		t.Errorf("timestamp not RFC 3339 with nanoseconds: %s", lines[0])
	}
	// Every line is flushed as soon as it is written, so a follow client
	// sees it at once (the last flush may repeat when the handler ends).
	got := w.flushes
	if len(got) > len(wantFlushes) && got[len(got)-1] == got[len(wantFlushes)-1] {
		got = got[:len(wantFlushes)]
	}
	if !equalInts(got, wantFlushes) {
		t.Errorf("flushed at body lengths %v, want %v", w.flushes, wantFlushes)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGetLogsFollowEndsWithClient(t *testing.T) {
	fs := &fakeStreamer{msgs: logMsgs[:1], wait: true}
	f := newFixture(t, func(c *Config) { c.Logs = fs })
	f.deploy(t, minimalFn)

	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest(http.MethodGet, "/system/logs?name=hello&follow=1", nil).WithContext(ctx)
	r.SetBasicAuth(testUser, testPass)
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.h.ServeHTTP(w, r)
	}()
	select {
	case <-done:
		t.Fatal("a follow stream ended before the client went away")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the follow stream did not end when the client went away")
	}
	if w.Code != http.StatusOK || strings.Count(w.Body.String(), "\n") != 1 {
		t.Errorf("got %d %q", w.Code, w.Body.String())
	}
	if len(fs.got) != 1 || !fs.got[0].Follow {
		t.Errorf("streamer got %v, want one follow request", fs.got)
	}
}

func TestGetLogsStreamErrorIsLogged(t *testing.T) {
	fs := &fakeStreamer{msgs: logMsgs[:1], err: errors.New("docker went away")}
	f := newFixture(t, func(c *Config) { c.Logs = fs })
	f.deploy(t, minimalFn)
	w := f.do(t, http.MethodGet, "/system/logs?name=hello", "")
	if w.Code != http.StatusOK || strings.Count(w.Body.String(), "\n") != 1 {
		t.Fatalf("got %d %q, want 200 and the one line sent", w.Code, w.Body.String())
	}
	var warned bool
	for _, e := range f.logs.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["function"] == "hello" && strings.Contains(e.Data[logrus.ErrorKey].(error).Error(), "docker went away") {
			warned = true
		}
	}
	if !warned {
		t.Error("the stream error was not logged as a warning")
	}
}

func TestGetLogsErrors(t *testing.T) {
	fs := &fakeStreamer{msgs: logMsgs}
	f := newFixture(t, func(c *Config) { c.Logs = fs })
	f.deploy(t, minimalFn)
	for _, tc := range []struct {
		name, method, target string
		noAuth               bool
		code                 int
		body                 string
	}{
		{"unknown function", http.MethodGet, "/system/logs?name=nope&follow=true&tail=-1", false, http.StatusNotFound, "function nope.openfaas-fn not found"},
		{"invalid name", http.MethodGet, "/system/logs?name=No_Such", false, http.StatusNotFound, "not found"},
		{"missing name", http.MethodGet, "/system/logs?follow=true&tail=-1", false, http.StatusBadRequest, "name is required"},
		{"unknown namespace", http.MethodGet, "/system/logs?name=hello&namespace=dev", false, http.StatusBadRequest, "namespace dev"},
		{"bad tail", http.MethodGet, "/system/logs?name=hello&tail=many", false, http.StatusUnprocessableEntity, "tail"},
		{"bad since", http.MethodGet, "/system/logs?name=hello&since=10m", false, http.StatusUnprocessableEntity, "since"},
		{"no credentials", http.MethodGet, "/system/logs?name=hello", true, http.StatusUnauthorized, "invalid credentials"},
		{"wrong method", http.MethodPost, "/system/logs?name=hello", false, http.StatusMethodNotAllowed, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w *httptest.ResponseRecorder
			if tc.noAuth {
				w = f.send(t, tc.method, tc.target, "", nil)
			} else {
				w = f.do(t, tc.method, tc.target, "")
			}
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("got %d %q, want %d containing %q", w.Code, w.Body.String(), tc.code, tc.body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want plain text", ct)
			}
		})
	}
	if len(fs.got) != 0 {
		t.Errorf("the streamer was asked %v for requests that were refused", fs.got)
	}

	t.Run("no log service", func(t *testing.T) {
		f := newFixture(t, nil)
		f.deploy(t, minimalFn)
		if w := f.do(t, http.MethodGet, "/system/logs?name=hello", ""); w.Code != http.StatusNotImplemented {
			t.Errorf("got %d %q, want 501", w.Code, w.Body.String())
		}
	})
}
