package swarm

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

// logT0 is the base time of every log line in these tests, and the
// runtime's clock: a follow starts followOverlap before it, so the lines of
// the history are read again and must be recognised.
var logT0 = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)

// at returns logT0 plus ms milliseconds.
func at(ms int) time.Time { return logT0.Add(time.Duration(ms) * time.Millisecond) }

// hostnames are the fake swarm's nodes.
var hostnames = map[string]string{"node1": "node-1", "node2": "node-2", "node3": "node-3"}

// logFixture is a fake swarm running the function echo, and a runtime.
type logFixture struct {
	eng  *fake.Swarm
	r    *Runtime
	hook *logtest.Hook
}

func newLogFixture(t *testing.T, replicas int) *logFixture {
	t.Helper()
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	eng := fake.NewSwarm(testImage)
	r := New(Config{Instance: "dfd", Self: "self0", Prober: &fakeProber{}, Log: log, SettleTimeout: 100 * time.Millisecond, LogPoll: 10 * time.Millisecond}, eng)
	r.now = func() time.Time { return logT0 }
	f := &logFixture{eng: eng, r: r, hook: hook}
	if replicas > 0 {
		mustSync(t, r, fn(replicas, "hash000001"))
	}
	return f
}

// tasks are the tasks of echo's service, in slot order.
func (f *logFixture) tasks(t *testing.T, want int) []engine.Task {
	t.Helper()
	ts := f.eng.Tasks(svcName)
	if len(ts) != want {
		t.Fatalf("tasks %+v, want %d", ts, want)
	}
	return ts
}

func (f *logFixture) write(t *testing.T, task engine.Task, stderr bool, ms int, text string) {
	t.Helper()
	if err := f.eng.WriteTaskLog(task.ID, stderr, at(ms), text); err != nil {
		t.Fatal(err)
	}
}

// collect runs a stream without follow and returns its messages.
func (f *logFixture) collect(t *testing.T, req logs.Request) []logs.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []logs.Message
	if err := f.r.Stream(ctx, req, func(m logs.Message) error {
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

// inst is how the lines of task tk are named, without the service's name.
func inst(tk engine.Task) string { return fmt.Sprintf("%d@%s", tk.Slot, hostnames[tk.NodeID]) }

// texts renders messages as "SLOT@NODE MS text" for comparison.
func texts(msgs []logs.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s %d %s", strings.TrimPrefix(m.Instance, svcName+"."), m.Timestamp.Sub(logT0).Milliseconds(), m.Text))
	}
	return out
}

func same(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestLogsHistory(t *testing.T) {
	f := newLogFixture(t, 3)
	ts := f.tasks(t, 3)
	a, b, c := ts[0], ts[1], ts[2]
	// Slot 2 crashes: swarm keeps the task in its history, so its last
	// words are in the log, and starts another in its slot.
	f.write(t, b, true, 5, "b stderr first\n")
	f.write(t, b, false, 15, "b second\n")
	f.eng.KillTask(b.ID)
	var b2 engine.Task
	for _, tk := range f.eng.Tasks(svcName) {
		if tk.Slot == 2 && tk.ID != b.ID {
			b2 = tk
		}
	}
	if b2.ID == "" {
		t.Fatal("swarm did not replace the crashed task")
	}
	f.write(t, a, false, 10, "a first\n")
	f.write(t, a, true, 20, "a stderr\r\n")
	f.write(t, c, false, 25, "c only\n")
	f.write(t, b2, false, 30, "b2 piece one, ")
	f.write(t, b2, false, 31, "piece two\n")
	f.write(t, a, false, 40, "a last\n")
	// Another function, and the same function of another daemon.
	other := fn(1, "hash000001")
	other.Key, other.Name, other.Spec.Service = "openfaas-fn/other", "other", "other"
	mustSync(t, f.r, other)
	f.write(t, f.eng.Tasks("dfd-other_openfaas-fn")[0], false, 12, "other function\n")
	foreign := New(Config{Instance: "dfx", Self: "self1", Prober: &fakeProber{}, Log: quiet()}, f.eng)
	mustSync(t, foreign, fn(1, "hash000001"))
	f.write(t, f.eng.Tasks("dfx-echo_openfaas-fn")[0], false, 13, "other daemon\n")

	all := []string{
		inst(b) + " 5 b stderr first", inst(a) + " 10 a first", inst(b) + " 15 b second", inst(a) + " 20 a stderr",
		inst(c) + " 25 c only", inst(b2) + " 30 b2 piece one, piece two", inst(a) + " 40 a last",
	}
	since := at(15)
	for _, tc := range []struct {
		name string
		req  logs.Request
		want []string
	}{
		{"all tasks merged by time", logs.Request{Name: "echo"}, all},
		{"tail applies across tasks", logs.Request{Name: "echo", Tail: 3}, all[4:]},
		{"tail larger than the log", logs.Request{Name: "echo", Tail: 100}, all},
		{"instance by name", logs.Request{Name: "echo", Instance: svcName + "." + inst(c)}, []string{inst(c) + " 25 c only"}},
		{"instance by task ID", logs.Request{Name: "echo", Instance: b.ID}, []string{all[0], all[2]}},
		{"instance by short task ID", logs.Request{Name: "echo", Instance: engine.ShortID(a.ID)}, []string{all[1], all[3], all[6]}},
		{"since is inclusive", logs.Request{Name: "echo", Since: &since}, all[2:]},
		{"since and tail", logs.Request{Name: "echo", Since: &since, Tail: 1}, all[6:]},
		{"explicit namespace", logs.Request{Name: "other", Namespace: "openfaas-fn"}, []string{"dfd-other_openfaas-fn.1@" + hostnames[f.eng.Tasks("dfd-other_openfaas-fn")[0].NodeID] + " 12 other function"}},
		{"unknown instance", logs.Request{Name: "echo", Instance: "nope"}, []string{}},
		{"not deployed", logs.Request{Name: "absent"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same(t, texts(f.collect(t, tc.req)), tc.want)
		})
	}

	t.Run("message fields", func(t *testing.T) {
		msgs := f.collect(t, logs.Request{Name: "echo", Tail: 1})
		want := logs.Message{Name: "echo", Namespace: "openfaas-fn", Instance: svcName + "." + inst(a), Timestamp: at(40), Text: "a last"}
		if len(msgs) != 1 || msgs[0] != want {
			t.Fatalf("got %+v, want [%+v]", msgs, want)
		}
		if loc := msgs[0].Timestamp.Location(); loc != time.UTC {
			t.Errorf("timestamp in %v, want UTC", loc)
		}
	})
}

func TestLogsHistoryLongerThanTheTailHeld(t *testing.T) {
	// The history is held 2×tail lines at a time while swarm sends it
	// task by task: the newest lines of the function must win anyway.
	f := newLogFixture(t, 2)
	ts := f.tasks(t, 2)
	for i := range 50 {
		f.write(t, ts[i%2], false, i, fmt.Sprintf("line %d\n", i))
	}
	got := texts(f.collect(t, logs.Request{Name: "echo", Tail: 4}))
	same(t, got, []string{
		inst(ts[0]) + " 46 line 46", inst(ts[1]) + " 47 line 47", inst(ts[0]) + " 48 line 48", inst(ts[1]) + " 49 line 49",
	})
}

func TestLogsErrors(t *testing.T) {
	t.Run("finding the service fails", func(t *testing.T) {
		f := newLogFixture(t, 1)
		f.eng.Fail = func(op, _ string) error {
			if op == "list-services" {
				return errors.New("docker is down")
			}
			return nil
		}
		err := f.r.Stream(context.Background(), logs.Request{Name: "echo"}, func(logs.Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "docker is down") {
			t.Fatalf("got %v, want the Docker error", err)
		}
	})
	t.Run("reading the logs fails", func(t *testing.T) {
		f := newLogFixture(t, 1)
		f.eng.Fail = func(op, _ string) error {
			if op == "service-logs" {
				return errors.New("manager gone")
			}
			return nil
		}
		err := f.r.Stream(context.Background(), logs.Request{Name: "echo"}, func(logs.Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "manager gone") {
			t.Fatalf("got %v, want the Docker error", err)
		}
	})
	t.Run("a service removed after it was found has no logs", func(t *testing.T) {
		f := newLogFixture(t, 1)
		f.write(t, f.tasks(t, 1)[0], false, 1, "x\n")
		f.eng.Fail = func(op, _ string) error {
			if op == "service-logs" {
				return fmt.Errorf("logs: %w", engine.ErrNotFound)
			}
			return nil
		}
		if got := f.collect(t, logs.Request{Name: "echo"}); len(got) != 0 {
			t.Fatalf("got %v", texts(got))
		}
	})
	t.Run("a node swarm cannot reach leaves a gap, logged", func(t *testing.T) {
		f := newLogFixture(t, 3)
		ts := f.tasks(t, 3)
		for i, tk := range ts {
			f.write(t, tk, false, i, fmt.Sprintf("from %d\n", i))
		}
		f.eng.SetNodeState(ts[1].NodeID, "down")
		same(t, texts(f.collect(t, logs.Request{Name: "echo"})), []string{inst(ts[0]) + " 0 from 0", inst(ts[2]) + " 2 from 2"})
		warned := false
		for _, e := range f.hook.AllEntries() {
			if e.Level == logrus.WarnLevel && strings.Contains(fmt.Sprint(e.Data[logrus.ErrorKey]), "node "+ts[1].NodeID+" is not available") {
				warned = true
			}
		}
		if !warned {
			t.Error("the gap was not logged")
		}
	})
	t.Run("tasks named by ID when they cannot be listed", func(t *testing.T) {
		f := newLogFixture(t, 1)
		tk := f.tasks(t, 1)[0]
		f.write(t, tk, false, 1, "x\n")
		f.eng.Fail = func(op, _ string) error {
			if op == "list-tasks" {
				return errors.New("flaky")
			}
			return nil
		}
		msgs := f.collect(t, logs.Request{Name: "echo"})
		if want := svcName + "." + engine.ShortID(tk.ID) + "@" + hostnames[tk.NodeID]; len(msgs) != 1 || msgs[0].Instance != want {
			t.Fatalf("got %+v, want one line of %s", msgs, want)
		}
	})
	t.Run("emit error ends the stream", func(t *testing.T) {
		f := newLogFixture(t, 1)
		tk := f.tasks(t, 1)[0]
		for i := range 100 {
			f.write(t, tk, false, i, fmt.Sprintf("line %d\n", i))
		}
		boom := errors.New("client gone")
		for _, follow := range []bool{false, true} {
			n := 0
			err := f.r.Stream(context.Background(), logs.Request{Name: "echo", Follow: follow}, func(logs.Message) error {
				n++
				if n == 3 {
					return boom
				}
				return nil
			})
			if err != boom || n != 3 {
				t.Fatalf("follow %v: got %v after %d messages, want %v after 3", follow, err, n, boom)
			}
		}
	})
}

func TestLogsTTY(t *testing.T) {
	// Docker sends a TTY's output raw, not multiplexed.
	f := newLogFixture(t, 1)
	svc, _ := f.eng.Service(svcName)
	svc.Spec.TaskTemplate.ContainerSpec.TTY = true
	if err := f.eng.UpdateService(context.Background(), svc.ID, svc.Version.Index, svc.Spec); err != nil {
		t.Fatal(err)
	}
	tk := f.eng.Tasks(svcName)
	f.write(t, tk[len(tk)-1], false, 1, "one\r\n")
	f.write(t, tk[len(tk)-1], true, 2, "two\r\n")
	same(t, texts(f.collect(t, logs.Request{Name: "echo"})), []string{inst(tk[len(tk)-1]) + " 1 one", inst(tk[len(tk)-1]) + " 2 two"})
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
		fl.err = f.r.Stream(ctx, req, func(m logs.Message) error {
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
	f := newLogFixture(t, 2)
	ts := f.tasks(t, 2)
	a, b := ts[0], ts[1]
	f.write(t, a, false, 1, "a old\n")
	f.write(t, b, false, 2, "b old\n")
	// Two lines with the same timestamp at the end of the history: the
	// live part reads them again and must skip both.
	f.write(t, a, false, 3, "a same time 1\n")
	f.write(t, a, false, 3, "a same time 2\n")

	fl := f.follow(t, logs.Request{Name: "echo", Tail: 2})
	same(t, fl.next(t, 2), []string{inst(a) + " 3 a same time 1", inst(a) + " 3 a same time 2"})
	fl.quiet(t) // neither the history nor the lines cut by the tail come again

	f.write(t, b, true, 4, "b new\n")
	same(t, fl.next(t, 1), []string{inst(b) + " 4 b new"})
	f.write(t, a, false, 3, "a late line with an old timestamp\n")
	same(t, fl.next(t, 1), []string{inst(a) + " 3 a late line with an old timestamp"})

	t.Run("task started later", func(t *testing.T) {
		f.eng.ScaleBehindBack(svcName, 3)
		c := f.tasks(t, 3)[2]
		f.write(t, c, false, 5, "c first\n")
		same(t, fl.next(t, 1), []string{inst(c) + " 5 c first"})
	})
	t.Run("task of another function is not followed", func(t *testing.T) {
		other := fn(1, "hash000001")
		other.Key, other.Name, other.Spec.Service = "openfaas-fn/other", "other", "other"
		mustSync(t, f.r, other)
		f.write(t, f.eng.Tasks("dfd-other_openfaas-fn")[0], false, 7, "other\n")
		f.write(t, a, false, 8, "a after\n")
		same(t, fl.next(t, 1), []string{inst(a) + " 8 a after"})
		fl.quiet(t)
	})
	t.Run("swarm ends the stream", func(t *testing.T) {
		// A manager restarting or losing its leadership: the stream is
		// opened again, without repeating or losing a line.
		f.eng.EndLogStreams()
		f.write(t, b, false, 9, "b after the end\n")
		same(t, fl.next(t, 1), []string{inst(b) + " 9 b after the end"})
		fl.quiet(t)
	})
	t.Run("function deployed again", func(t *testing.T) {
		f.eng.RemoveServiceBehindBack(svcName)
		time.Sleep(50 * time.Millisecond) // the stream sees it gone; not required for correctness
		mustSync(t, f.r, fn(1, "hash000002"))
		nt := f.tasks(t, 1)[0]
		// A new service: even a line older than all sent is new.
		f.write(t, nt, false, 1, "new service\n")
		same(t, fl.next(t, 1), []string{inst(nt) + " 1 new service"})
		fl.quiet(t)
	})

	fl.cancel()
	select {
	case <-fl.done:
		if fl.err != nil {
			t.Errorf("Stream after cancel: %v, want nil", fl.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow stream did not end after cancel")
	}
}

// TestLogsFollowStreamsStampedOutOfOrder: a stderr line the history read
// can be stamped after a stdout line that reaches the log only later
// (Docker stamps each stream in a goroutine of its own); the follow must
// still send the stdout line, so marks are kept per task and stream.
func TestLogsFollowStreamsStampedOutOfOrder(t *testing.T) {
	f := newLogFixture(t, 1)
	a := f.tasks(t, 1)[0]
	f.write(t, a, true, 10, "listening\n")
	f.write(t, a, true, 21, "request GET /log\n")
	fl := f.follow(t, logs.Request{Name: "echo"})
	same(t, fl.next(t, 2), []string{inst(a) + " 10 listening", inst(a) + " 21 request GET /log"})
	f.write(t, a, false, 20, "marker\n")
	same(t, fl.next(t, 1), []string{inst(a) + " 20 marker"})
	fl.quiet(t)
	fl.cancel()
}

func TestLogsFollowBeforeDeploy(t *testing.T) {
	f := newLogFixture(t, 0)
	since := at(2)
	fl := f.follow(t, logs.Request{Name: "echo", Since: &since})
	fl.quiet(t)
	mustSync(t, f.r, fn(1, "hash000001"))
	tk := f.tasks(t, 1)[0]
	f.write(t, tk, false, 1, "before since\n")
	f.write(t, tk, false, 2, "first\n")
	same(t, fl.next(t, 1), []string{inst(tk) + " 2 first"})
}

func TestLogsFollowInstance(t *testing.T) {
	f := newLogFixture(t, 2)
	ts := f.tasks(t, 2)
	fl := f.follow(t, logs.Request{Name: "echo", Instance: ts[1].ID})
	f.write(t, ts[0], false, 1, "not this one\n")
	f.write(t, ts[1], false, 2, "this one\n")
	same(t, fl.next(t, 1), []string{inst(ts[1]) + " 2 this one"})
	fl.quiet(t)
}

func TestLogsStopEndsFollowStreams(t *testing.T) {
	f := newLogFixture(t, 1)
	f.write(t, f.tasks(t, 1)[0], false, 1, "a\n")
	var wg sync.WaitGroup
	done := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done <- f.r.Stream(context.Background(), logs.Request{Name: "echo", Follow: true}, func(logs.Message) error { return nil })
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them reach the live part; not required for correctness
	f.r.StopLogs()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("follow streams did not end after StopLogs")
	}
	close(done)
	for err := range done {
		if err != nil {
			t.Errorf("Stream after StopLogs: %v, want nil", err)
		}
	}
	// A stream started after StopLogs ends at once too.
	if err := f.r.Stream(context.Background(), logs.Request{Name: "echo", Follow: true}, func(logs.Message) error { return nil }); err != nil {
		t.Errorf("Stream after StopLogs: %v", err)
	}
}

func TestSortedHistory(t *testing.T) {
	// Lines arrive task by task, as swarm sends them: task a's 1 3 5 7,
	// then task b's 2 4 6 8 (text "xx" each, 2 bytes).
	arrival := []int{1, 3, 5, 7, 2, 4, 6, 8}
	for _, tc := range []struct {
		name         string
		tail, budget int
		held         int // most lines held at once
		want         string
	}{
		{"sorted", 0, 1 << 20, 8, "1 2 3 4 5 6 7 8"},
		{"tail across tasks", 3, 1 << 20, 5, "6 7 8"},
		{"tail held 2×tail at a time", 1, 1 << 20, 1, "8"},
		{"over budget: sorted chunks", 0, 7, 3, "1 3 2 4 5 6 7 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			h := sortedHistory{tail: tc.tail, budget: tc.budget, emit: func(m logs.Message) error {
				got = append(got, fmt.Sprint(m.Timestamp.Sub(logT0).Milliseconds()))
				return nil
			}}
			for _, ms := range arrival {
				if err := h.push(logs.Message{Timestamp: at(ms), Text: "xx"}); err != nil {
					t.Fatal(err)
				}
				if len(h.buf) > tc.held {
					t.Fatalf("%d lines held, want at most %d", len(h.buf), tc.held)
				}
			}
			if err := h.flush(); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("sent %v, want %s", got, tc.want)
			}
		})
	}
}
