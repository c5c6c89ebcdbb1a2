package proxy

import (
	"net/http"
	"testing"
	"time"
)

// TestInFlightCountsCallsPerReplica checks that a replica's in-flight count
// covers a call from the pick until its response is complete, and that a
// retry after a dial error counts on the replica that serves the call.
func TestInFlightCountsCallsPerReplica(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	_, slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		_, _ = w.Write([]byte("done"))
	}))
	gone := Endpoint{Container: "gone", Addr: closedAddr(t)}
	c := NewCache()
	// The unreachable replica first: the round robin starts there and the
	// call is retried on the slow one.
	c.Set("openfaas-fn/fn", []Endpoint{gone, slow})
	p := New(c, Options{Log: quietLogger()})
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
	if got := p.InFlight(slow.Container); got != 1 {
		t.Errorf("while the call runs: InFlight(slow) = %d, want 1", got)
	}
	if got := p.InFlight(gone.Container); got != 0 {
		t.Errorf("after the retry moved the call: InFlight(gone) = %d, want 0", got)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("call: %d, want 200", code)
	}
	// The count drops when the handler returns, which may be a moment
	// after the client has read the whole response.
	deadline := time.Now().Add(5 * time.Second)
	for p.InFlight(slow.Container) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := p.InFlight(slow.Container); got != 0 {
		t.Errorf("after the call: InFlight(slow) = %d, want 0", got)
	}
	p.ForgetReplica(slow.Container)
	if _, ok := p.inflight.m.Load(slow.Container); ok {
		t.Error("ForgetReplica kept the counter")
	}
}
