package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// TestLoadCountsCallsPerReplica checks what the proxy publishes to
// Options.Load: a replica's in-flight count covers a call from the pick
// until its response is complete, a retry after a dial error counts on the
// replica that serves the call, and the function counts the call once, as
// one request, whatever the retry.
func TestLoadCountsCallsPerReplica(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	_, slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = w.Write([]byte("done"))
	}))
	gone := faas.Endpoint{Replica: "gone", Addr: closedAddr(t)}
	c := NewCache()
	// The unreachable replica first: the round robin starts there and the
	// call is retried on the slow one.
	c.Set("openfaas-fn/fn", []faas.Endpoint{gone, slow})
	signals := new(load.Signals)
	p := New(c, Options{Log: quietLogger(), Load: signals})
	base := front(t, p)

	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "/function/fn")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the slow replica")
	}
	if got := signals.InFlight(slow.Replica); got != 1 {
		t.Errorf("while the call runs: InFlight(slow) = %d, want 1", got)
	}
	if got := signals.InFlight(gone.Replica); got != 0 {
		t.Errorf("after the retry moved the call: InFlight(gone) = %d, want 0", got)
	}
	if got, want := signals.Function("openfaas-fn/fn"), (load.Snapshot{InFlight: 1, Requests: 1}); got != want {
		t.Errorf("while the call runs: Function = %+v, want %+v", got, want)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("call: %d, want 200", code)
	}
	// The counts drop when the handler returns, which may be a moment
	// after the client has read the whole response.
	deadline := time.Now().Add(5 * time.Second)
	for (signals.InFlight(slow.Replica) != 0 || signals.Function("openfaas-fn/fn").InFlight != 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := signals.InFlight(slow.Replica); got != 0 {
		t.Errorf("after the call: InFlight(slow) = %d, want 0", got)
	}
	if got, want := signals.Function("openfaas-fn/fn"), (load.Snapshot{InFlight: 0, Requests: 1}); got != want {
		t.Errorf("after the call: Function = %+v, want %+v", got, want)
	}
}

// TestLoadCountsWaitingAndFailedCalls checks the function counts of calls
// that never reach a replica: a call waiting for a ready replica is in
// flight (demand an autoscaler must see when a function is at zero), a call
// that gave up waiting is one request, and a call to an unknown function
// counts nowhere.
func TestLoadCountsWaitingAndFailedCalls(t *testing.T) {
	c := NewCache()
	c.Set("openfaas-fn/cold", nil)
	signals := new(load.Signals)
	base := front(t, New(c, Options{Log: quietLogger(), ReadyWait: 300 * time.Millisecond, Load: signals}))

	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(base + "/function/cold")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for signals.Function("openfaas-fn/cold").InFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := signals.Function("openfaas-fn/cold"), (load.Snapshot{InFlight: 1, Requests: 1}); got != want {
		t.Errorf("while the call waits: Function = %+v, want %+v", got, want)
	}
	if code := <-done; code != http.StatusServiceUnavailable {
		t.Fatalf("call: %d, want 503", code)
	}
	// As above, the handler may return a moment after the client is done.
	deadline = time.Now().Add(5 * time.Second)
	for signals.Function("openfaas-fn/cold").InFlight != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := signals.Function("openfaas-fn/cold"), (load.Snapshot{InFlight: 0, Requests: 1}); got != want {
		t.Errorf("after the call: Function = %+v, want %+v", got, want)
	}

	resp, err := http.Get(base + "/function/unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown function: %d, want 404", resp.StatusCode)
	}
	if got := signals.Functions(); len(got) != 1 {
		t.Errorf("Functions() = %v, want only openfaas-fn/cold", got)
	}
}
