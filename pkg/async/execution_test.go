package async

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// executions returns the records of function fn, newest first.
func (h *harness) executions(fn string) []store.Execution {
	h.t.Helper()
	list, err := h.st.ListExecutions(context.Background(), store.ExecutionFilter{Function: "openfaas-fn/" + fn})
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

// execution waits until the record id is in state.
func (h *harness) execution(id, state string) store.Execution {
	h.t.Helper()
	var e store.Execution
	poll.Until(h.t, 5*time.Second, "execution "+id+" "+state, func() bool {
		var err error
		e, err = h.st.GetExecution(context.Background(), id)
		return err == nil && e.State == state
	})
	return e
}

// TestAttemptRecords: each attempt of a call leaves its record, numbered,
// with status, sizes and times; the call's record is unchanged by them.
func TestAttemptRecords(t *testing.T) {
	h := newHarness(t, "flaky")
	var n atomic.Int32
	h.handle("flaky", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok, done"))
	})
	h.start()
	before := time.Now().UTC()
	h.accept("flaky", "r1", false)
	h.waitState("r1", store.CallSucceeded)
	list := h.executions("flaky")
	ids := make([]string, 0, len(list))
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"r1.3", "r1.2", "r1.1"}) {
		t.Fatalf("records %q, want r1.3 r1.2 r1.1", ids)
	}
	body := int64(len("body-r1"))
	for i, want := range []struct {
		state  string
		code   int
		out    int64
		number int
	}{
		{store.ExecutionSucceeded, 200, int64(len("ok, done")), 3},
		{store.ExecutionFailed, 503, int64(len("busy\n")), 2},
		{store.ExecutionFailed, 503, int64(len("busy\n")), 1},
	} {
		e := list[i]
		if e.Kind != store.ExecutionAsync || e.Function != "openfaas-fn/flaky" || e.State != want.state ||
			e.StatusCode != want.code || e.BytesIn != body || e.BytesOut != want.out || e.Attempt != want.number ||
			e.ExitCode != nil || e.Error != "" {
			t.Errorf("record %d: %+v", i, e)
		}
		if e.StartedAt.Before(before.Add(-time.Second)) || e.FinishedAt.Before(e.StartedAt) || e.DurationSeconds < 0 ||
			e.DurationSeconds > e.FinishedAt.Sub(e.StartedAt).Seconds()+0.001 {
			t.Errorf("record %d times: start %v end %v duration %v", i, e.StartedAt, e.FinishedAt, e.DurationSeconds)
		}
	}
}

// TestAttemptRecordRunning: the record says running while the attempt
// runs, and its outcome once it ends.
func TestAttemptRecordRunning(t *testing.T) {
	h := newHarness(t, "slow")
	release := make(chan struct{})
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusAccepted)
	})
	h.start()
	h.accept("slow", "s1", false)
	running := h.execution("s1.1", store.ExecutionRunning)
	if !running.FinishedAt.IsZero() || running.StatusCode != 0 || running.BytesIn != int64(len("body-s1")) {
		t.Errorf("running record %+v", running)
	}
	close(release)
	done := h.execution("s1.1", store.ExecutionSucceeded)
	if done.StatusCode != http.StatusAccepted || !done.StartedAt.Equal(running.StartedAt) {
		t.Errorf("final record %+v", done)
	}
	if list := h.executions("slow"); len(list) != 1 {
		t.Errorf("%d records, want 1", len(list))
	}
}

// TestAttemptRecordOutcomes: what the proxy answers itself, and attempts
// cut short, are recorded as such.
func TestAttemptRecordOutcomes(t *testing.T) {
	t.Run("exec timeout", func(t *testing.T) {
		h := newHarness(t)
		h.deploy("late", map[string]string{AnnotationRetryAttempts: "1"})
		h.handle("late", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(HeaderInternal, "proxy")
			http.Error(w, "function late.openfaas-fn timed out", http.StatusGatewayTimeout)
		})
		h.start()
		h.accept("late", "t1", false)
		e := h.execution("t1.1", store.ExecutionTimedOut)
		if e.StatusCode != http.StatusGatewayTimeout || e.Error != "function late.openfaas-fn timed out" {
			t.Errorf("record %+v", e)
		}
	})
	t.Run("function's own 504", func(t *testing.T) {
		h := newHarness(t)
		h.deploy("gw", map[string]string{AnnotationRetryAttempts: "1"})
		h.handle("gw", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGatewayTimeout) })
		h.start()
		h.accept("gw", "g1", false)
		if e := h.execution("g1.1", store.ExecutionFailed); e.Error != "" {
			t.Errorf("record %+v", e)
		}
	})
	t.Run("cancelled while running", func(t *testing.T) {
		h := newHarness(t, "slow")
		h.handle("slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		h.start()
		h.accept("slow", "c1", false)
		h.execution("c1.1", store.ExecutionRunning)
		if _, err := h.svc.Cancel(context.Background(), "c1"); err != nil {
			t.Fatal(err)
		}
		if e := h.execution("c1.1", store.ExecutionFailed); e.Error != "cancelled while it ran" {
			t.Errorf("record %+v", e)
		}
	})
	t.Run("function deleted", func(t *testing.T) {
		h := newHarness(t)
		ann := map[string]string{AnnotationRetryAttempts: "5"}
		h.deploy("gone", ann)
		h.start()
		h.halt()
		h.accept("gone", "d1", false)
		// Deleted while the service was stopped: no watch event, the
		// attempt finds out itself (the proxy knows it no more).
		h.fns.mu.Lock()
		delete(h.fns.fns, "gone.openfaas-fn")
		h.fns.mu.Unlock()
		if err := h.st.Delete(context.Background(), "openfaas-fn/gone"); err != nil {
			t.Fatal(err)
		}
		h.start()
		e := h.execution("d1.1", store.ExecutionFailed)
		if e.StatusCode != 0 || e.Error != "function deleted" {
			t.Errorf("record %+v", e)
		}
	})
}

// TestAttemptRecordInterruptedAtShutdown: an attempt abandoned at
// shutdown is recorded interrupted; the call runs again after the restart
// as the next number, and the interrupted record stays.
func TestAttemptRecordInterruptedAtShutdown(t *testing.T) {
	h := newHarness(t, "slow")
	h.grace = 20 * time.Millisecond
	started := make(chan struct{}, 1)
	h.handle("slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	h.start()
	h.accept("slow", "i1", false)
	<-started
	h.halt()
	e, err := h.st.GetExecution(context.Background(), "i1.1")
	if err != nil || e.State != store.ExecutionInterrupted || e.FinishedAt.IsZero() {
		t.Fatalf("record after shutdown: %+v, %v", e, err)
	}
	h.serveOK("slow")
	h.start()
	h.waitState("i1", store.CallSucceeded)
	h.execution("i1.2", store.ExecutionSucceeded)
	if e, _ := h.st.GetExecution(context.Background(), "i1.1"); e.State != store.ExecutionInterrupted {
		t.Errorf("i1.1 is %s after the rerun", e.State)
	}
	if c, _ := h.st.GetCall(context.Background(), "i1"); c.Attempts != 1 {
		t.Errorf("the call counts %d attempts, want 1 (an interrupted one is not counted)", c.Attempts)
	}
}

// TestAttemptRecordAfterCrash: a record a dead daemon left (running, or
// marked interrupted since) keeps its number; the rerun takes the next.
func TestAttemptRecordAfterCrash(t *testing.T) {
	h := newHarness(t, "echo")
	h.start()
	h.halt() // stopped: accepts are stored but not run
	h.accept("echo", "k1", false)
	left := store.Execution{ID: "k1.1", Kind: store.ExecutionAsync, Attempt: 1, Function: "openfaas-fn/echo", State: store.ExecutionRunning, StartedAt: time.Now().Add(-time.Minute)}
	if err := h.st.PutExecution(context.Background(), left); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitState("k1", store.CallSucceeded)
	if e := h.execution("k1.2", store.ExecutionSucceeded); e.Attempt != 2 {
		t.Errorf("rerun record %+v", e)
	}
	if e, err := h.st.GetExecution(context.Background(), "k1.1"); err != nil || e.State != store.ExecutionRunning {
		t.Errorf("the left record was touched: %+v, %v", e, err)
	}
}

// failingExecutions is a store whose execution writes fail.
type failingExecutions struct{ *store.Memory }

func (failingExecutions) PutExecution(context.Context, store.Execution) error {
	return errors.New("disk full")
}

// TestAttemptRecordWriteFailureKeepsTheCallRunning: a record that cannot
// be written as running does not stop the attempt.
func TestAttemptRecordWriteFailureKeepsTheCallRunning(t *testing.T) {
	h := newHarness(t, "echo")
	svc, err := New(Config{Defaults: DefaultPolicy, Log: discardLog()}, failingExecutions{h.st}, h.fns)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, _, err := svc.Accept(context.Background(), Request{CallID: "w1", Function: "openfaas-fn/echo", Method: "POST", Path: "/"}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "w1 succeeded", func() bool {
		rec, err := svc.Get(context.Background(), "w1")
		return err == nil && rec.State == store.CallSucceeded
	})
}

func discardLog() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}
