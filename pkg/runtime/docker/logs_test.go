package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
)

var _ LogEngine = (*fake.Engine)(nil)

const logsInstance = "test-inst"

// t0 is the base time of every log line in these tests.
var t0 = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// logFixture is a fake engine with replica containers and a log service.
type logFixture struct {
	eng  *fake.Engine
	logs *Logs
}

func newLogFixture(t *testing.T) *logFixture {
	t.Helper()
	log, _ := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	eng := fake.New()
	return &logFixture{eng: eng, logs: NewLogs(eng, LogsConfig{Instance: logsInstance, Poll: 10 * time.Millisecond, Log: log})}
}

// replica adds a container of function fn (namespace openfaas-fn) whose
// ID starts with idPrefix repeated, so its short ID is predictable.
func (f *logFixture) replica(fn, idChar, state string) engine.Container {
	c := engine.Container{
		ID:     strings.Repeat(idChar, 64),
		Name:   "test-inst-" + fn + ".openfaas-fn-" + idChar,
		Labels: functionLabels(logsInstance, "openfaas-fn", fn),
		State:  state,
	}
	f.eng.AddContainer(c)
	return c
}

// write appends lines to a container's log.
func (f *logFixture) write(t *testing.T, id string, stderr bool, ms int, text string) {
	t.Helper()
	if err := f.eng.WriteLog(id, stderr, at(ms), text); err != nil {
		t.Fatal(err)
	}
}

// collect runs a non-follow stream and returns its messages.
func (f *logFixture) collect(t *testing.T, req logs.Request) []logs.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []logs.Message
	if err := f.logs.Stream(ctx, req, func(m logs.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("a stream without follow did not end by itself")
	}
	return out
}

// texts renders messages as "instance@ms text" for comparison.
func texts(msgs []logs.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s@%d %s", m.Instance[:1], m.Timestamp.Sub(t0).Milliseconds(), m.Text))
	}
	return out
}

func TestLogsHistory(t *testing.T) {
	f := newLogFixture(t)
	a := f.replica("hello", "a", engine.StateRunning)
	b := f.replica("hello", "b", engine.StateExited)
	other := f.replica("other", "c", engine.StateRunning)
	foreign := engine.Container{ID: strings.Repeat("d", 64), Name: "x", State: engine.StateRunning,
		Labels: functionLabels("someone-else", "openfaas-fn", "hello")}
	f.eng.AddContainer(foreign)

	f.write(t, a.ID, false, 10, "a first\n")
	f.write(t, b.ID, true, 5, "b stderr first\n")
	f.write(t, a.ID, true, 20, "a stderr\r\n")
	f.write(t, b.ID, false, 15, "b second\n")
	f.write(t, b.ID, false, 30, "b piece one, ")
	f.write(t, b.ID, false, 31, "piece two\n")
	f.write(t, a.ID, false, 40, "a last\n")
	f.write(t, other.ID, false, 12, "other function\n")
	f.write(t, foreign.ID, false, 13, "other daemon\n")

	since := at(15)
	for _, tc := range []struct {
		name string
		req  logs.Request
		want []string
	}{
		{"all replicas merged by time", logs.Request{Name: "hello"},
			[]string{"b@5 b stderr first", "a@10 a first", "b@15 b second", "a@20 a stderr", "b@30 b piece one, piece two", "a@40 a last"}},
		{"tail applies across replicas", logs.Request{Name: "hello", Tail: 3},
			[]string{"a@20 a stderr", "b@30 b piece one, piece two", "a@40 a last"}},
		{"tail larger than the log", logs.Request{Name: "hello", Tail: 100},
			[]string{"b@5 b stderr first", "a@10 a first", "b@15 b second", "a@20 a stderr", "b@30 b piece one, piece two", "a@40 a last"}},
		{"instance by short ID", logs.Request{Name: "hello", Instance: engine.ShortID(a.ID)},
			[]string{"a@10 a first", "a@20 a stderr", "a@40 a last"}},
		{"instance by name", logs.Request{Name: "hello", Instance: b.Name},
			[]string{"b@5 b stderr first", "b@15 b second", "b@30 b piece one, piece two"}},
		{"since is inclusive", logs.Request{Name: "hello", Since: &since},
			[]string{"b@15 b second", "a@20 a stderr", "b@30 b piece one, piece two", "a@40 a last"}},
		{"since and tail", logs.Request{Name: "hello", Since: &since, Tail: 1},
			[]string{"a@40 a last"}},
		{"explicit namespace", logs.Request{Name: "other", Namespace: "openfaas-fn"},
			[]string{"c@12 other function"}},
		{"unknown instance", logs.Request{Name: "hello", Instance: "nope"}, []string{}},
		{"no replicas", logs.Request{Name: "absent"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(f.collect(t, tc.req))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}

	t.Run("message fields", func(t *testing.T) {
		msgs := f.collect(t, logs.Request{Name: "hello", Tail: 1})
		want := logs.Message{Name: "hello", Namespace: "openfaas-fn", Instance: "aaaaaaaaaaaa", Timestamp: at(40), Text: "a last"}
		if len(msgs) != 1 || msgs[0] != want {
			t.Fatalf("got %+v, want [%+v]", msgs, want)
		}
		if loc := msgs[0].Timestamp.Location(); loc != time.UTC {
			t.Errorf("timestamp in %v, want UTC", loc)
		}
	})
}

// Docker stamps stdout and stderr in a goroutine each, so one container's
// log can hold a line stamped later before one stamped earlier (seen on a
// real engine: 24µs apart). The history is still in time order.
func TestLogsHistoryStreamsRecordedOutOfOrder(t *testing.T) {
	f := newLogFixture(t)
	a := f.replica("mixed", "a", engine.StateRunning)
	b := f.replica("mixed", "b", engine.StateRunning)
	f.write(t, a.ID, false, 10, "a out 10\n")
	f.write(t, a.ID, true, 21, "a err 21\n") // recorded before the stdout line stamped 20
	f.write(t, a.ID, false, 20, "a out 20\n")
	f.write(t, b.ID, true, 15, "b err 15\n")
	f.write(t, a.ID, true, 30, "a err 30\n")
	f.write(t, a.ID, false, 25, "a out 25\n")

	for _, tc := range []struct {
		name string
		req  logs.Request
		want []string
	}{
		{"whole history", logs.Request{Name: "mixed"},
			[]string{"a@10 a out 10", "b@15 b err 15", "a@20 a out 20", "a@21 a err 21", "a@25 a out 25", "a@30 a err 30"}},
		// Docker's tail is the lines recorded last, then put in time order.
		{"tail", logs.Request{Name: "mixed", Tail: 3},
			[]string{"a@20 a out 20", "a@25 a out 25", "a@30 a err 30"}},
		{"one replica", logs.Request{Name: "mixed", Instance: engine.ShortID(a.ID)},
			[]string{"a@10 a out 10", "a@20 a out 20", "a@21 a err 21", "a@25 a out 25", "a@30 a err 30"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(f.collect(t, tc.req))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestLogsErrors(t *testing.T) {
	t.Run("listing fails", func(t *testing.T) {
		f := newLogFixture(t)
		f.eng.Fail = func(op, _ string) error {
			if op == "list" {
				return errors.New("docker is down")
			}
			return nil
		}
		err := f.logs.Stream(context.Background(), logs.Request{Name: "hello"}, func(logs.Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "docker is down") {
			t.Fatalf("got %v, want the Docker error", err)
		}
	})
	t.Run("a replica removed after listing is skipped", func(t *testing.T) {
		f := newLogFixture(t)
		a := f.replica("hello", "a", engine.StateRunning)
		b := f.replica("hello", "b", engine.StateRunning)
		f.write(t, a.ID, false, 1, "from a\n")
		f.eng.Fail = func(op, id string) error {
			if op == "logs" && id == b.ID {
				return fmt.Errorf("logs: %w", engine.ErrNotFound)
			}
			return nil
		}
		if got := texts(f.collect(t, logs.Request{Name: "hello"})); len(got) != 1 || got[0] != "a@1 from a" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("emit error ends the stream", func(t *testing.T) {
		f := newLogFixture(t)
		a := f.replica("hello", "a", engine.StateRunning)
		for i := range 100 {
			f.write(t, a.ID, false, i, fmt.Sprintf("line %d\n", i))
		}
		boom := errors.New("client gone")
		n := 0
		err := f.logs.Stream(context.Background(), logs.Request{Name: "hello", Follow: true}, func(logs.Message) error {
			n++
			if n == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || n != 3 {
			t.Fatalf("got %v after %d messages, want %v after 3", err, n, boom)
		}
	})
}

// follower runs a follow stream in the background.
type follower struct {
	msgs   chan logs.Message
	done   chan struct{} // closed when Stream returned; err is then set
	err    error
	cancel context.CancelFunc
}

func (f *logFixture) follow(t *testing.T, req logs.Request) *follower {
	t.Helper()
	req.Follow = true
	ctx, cancel := context.WithCancel(context.Background())
	fl := &follower{msgs: make(chan logs.Message, 100), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(fl.done)
		fl.err = f.logs.Stream(ctx, req, func(m logs.Message) error {
			fl.msgs <- m
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-fl.done:
		case <-time.After(10 * time.Second):
			t.Error("follow stream did not end after cancel")
		}
	})
	return fl
}

// next waits for the next n messages.
func (fl *follower) next(t *testing.T, n int) []string {
	t.Helper()
	var got []logs.Message
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-fl.msgs:
			got = append(got, m)
		case <-fl.done:
			t.Fatalf("stream ended (%v) after %v, want %d messages", fl.err, texts(got), n)
		case <-timeout:
			t.Fatalf("got %v, want %d messages", texts(got), n)
		}
	}
	return texts(got)
}

// quiet checks that nothing more arrives within a short while (a
// duplicate would arrive at once: the fake delivers in milliseconds).
func (fl *follower) quiet(t *testing.T) {
	t.Helper()
	select {
	case m := <-fl.msgs:
		t.Fatalf("unexpected message %v", texts([]logs.Message{m}))
	case <-time.After(100 * time.Millisecond):
	}
}

func TestLogsFollow(t *testing.T) {
	f := newLogFixture(t)
	a := f.replica("hello", "a", engine.StateRunning)
	b := f.replica("hello", "b", engine.StateRunning)
	pending := f.replica("hello", "c", engine.StateCreated)
	f.write(t, a.ID, false, 1, "a old\n")
	f.write(t, b.ID, false, 2, "b old\n")
	// Two lines with the same timestamp at the end of the history: the
	// live part follows from that timestamp and must skip both.
	f.write(t, a.ID, false, 3, "a same time 1\n")
	f.write(t, a.ID, false, 3, "a same time 2\n")

	fl := f.follow(t, logs.Request{Name: "hello", Tail: 2})
	if got := fl.next(t, 2); strings.Join(got, "|") != "a@3 a same time 1|a@3 a same time 2" {
		t.Fatalf("history: got %v", got)
	}
	fl.quiet(t) // lines cut by the tail do not come back with the live part

	f.write(t, b.ID, true, 4, "b new\n")
	if got := fl.next(t, 1); got[0] != "b@4 b new" {
		t.Fatalf("live: got %v", got)
	}
	f.write(t, a.ID, false, 3, "a late line with an old timestamp\n")
	if got := fl.next(t, 1); got[0] != "a@3 a late line with an old timestamp" {
		t.Fatalf("live: got %v", got)
	}

	t.Run("replica added later", func(t *testing.T) {
		d := f.replica("hello", "d", engine.StateRunning)
		f.write(t, d.ID, false, 5, "d first\n")
		if got := fl.next(t, 1); got[0] != "d@5 d first" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("replica that was created but not running", func(t *testing.T) {
		f.eng.SetState(pending.ID, engine.StateRunning)
		f.write(t, pending.ID, false, 6, "c started\n")
		if got := fl.next(t, 1); got[0] != "c@6 c started" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("replica of another function is not followed", func(t *testing.T) {
		o := f.replica("other", "e", engine.StateRunning)
		f.write(t, o.ID, false, 7, "other\n")
		f.write(t, a.ID, false, 8, "a after\n")
		if got := fl.next(t, 1); got[0] != "a@8 a after" {
			t.Fatalf("got %v", got)
		}
		fl.quiet(t)
	})

	start := time.Now()
	fl.cancel()
	select {
	case <-fl.done:
		if fl.err != nil {
			t.Errorf("Stream after cancel: %v, want nil", fl.err)
		}
		t.Logf("follow stream ended %s after cancel", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("follow stream did not end after cancel")
	}
}

// TestLogsFollowStreamsStampedOutOfOrder: Docker stamps stdout and stderr
// lines in goroutines of their own, so a stderr line the history read can
// be stamped after a stdout line that reaches the log only afterwards. The
// follow must still send that stdout line: each stream is followed from
// its own mark, not from the newest line of both.
func TestLogsFollowStreamsStampedOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail int
	}{{"whole history", 0}, {"tail", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLogFixture(t)
			a := f.replica("mixed", "a", engine.StateRunning)
			f.write(t, a.ID, true, 10, "listening\n")
			f.write(t, a.ID, true, 21, "request GET /log\n") // stamped after the stdout line below
			fl := f.follow(t, logs.Request{Name: "mixed", Tail: tc.tail})
			if got := fl.next(t, 2); strings.Join(got, "|") != "a@10 listening|a@21 request GET /log" {
				t.Fatalf("history: got %v", got)
			}
			f.write(t, a.ID, false, 20, "marker\n") // reaches the log after the history was read
			if got := fl.next(t, 1); got[0] != "a@20 marker" {
				t.Fatalf("live: got %v", got)
			}
			f.write(t, a.ID, true, 22, "after\n")
			if got := fl.next(t, 1); got[0] != "a@22 after" {
				t.Fatalf("live: got %v", got)
			}
			fl.quiet(t) // nothing sent twice
			fl.cancel()
		})
	}
}

func TestLogsStopEndsFollowStreams(t *testing.T) {
	f := newLogFixture(t)
	a := f.replica("hello", "a", engine.StateRunning)
	f.write(t, a.ID, false, 1, "a\n")
	var wg sync.WaitGroup
	done := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done <- f.logs.Stream(context.Background(), logs.Request{Name: "hello", Follow: true}, func(logs.Message) error { return nil })
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them reach the live part; not required for correctness
	f.logs.Stop()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("follow streams did not end after Stop")
	}
	close(done)
	for err := range done {
		if err != nil {
			t.Errorf("Stream after Stop: %v, want nil", err)
		}
	}
	// A stream started after Stop ends at once too.
	if err := f.logs.Stream(context.Background(), logs.Request{Name: "hello", Follow: true}, func(logs.Message) error { return nil }); err != nil {
		t.Errorf("Stream after Stop: %v", err)
	}
}
