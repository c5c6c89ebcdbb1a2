package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// wakeRecorder is a Waker that records its calls and runs onWake (in a
// goroutine of its own, as the autoscaler wakes in the background) for
// each; Wake itself returns at once, as the proxy requires.
type wakeRecorder struct {
	mu     sync.Mutex
	keys   []string
	onWake func(n int) // n: calls so far, this one included
}

func (w *wakeRecorder) Wake(key string) {
	w.mu.Lock()
	w.keys = append(w.keys, key)
	n := len(w.keys)
	w.mu.Unlock()
	if w.onWake != nil {
		go w.onWake(n)
	}
}

func (w *wakeRecorder) calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.keys...)
}

// TestWakeThenServe: a call to a known function with nothing ready asks
// for a wake-up once, before it waits, and is served by the replica the
// wake-up publishes within ReadyWait, with the change-notifying cache and
// with a polled resolver.
func TestWakeThenServe(t *testing.T) {
	_, ep := backend(t, echoHandler("woken"))
	const key = "openfaas-fn/cold"
	c := NewCache()
	m := &mapResolver{m: map[string][]faas.Endpoint{}}
	tests := []struct {
		name     string
		resolver Resolver
		set      func(key string, eps []faas.Endpoint)
	}{
		{name: "cache notifies", resolver: c, set: c.Set},
		{name: "resolver polled", resolver: m, set: m.set},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.set(key, nil) // known, scaled to zero
			w := &wakeRecorder{onWake: func(int) {
				time.Sleep(150 * time.Millisecond) // a resume or a start
				tt.set(key, []faas.Endpoint{ep})
			}}
			base := front(t, New(tt.resolver, Options{ReadyWait: 20 * time.Second, Wake: w, Log: quietLogger()}))
			resp, body := get(t, base+"/function/cold")
			if resp.StatusCode != http.StatusOK || decodeSeen(t, body).Backend != "woken" {
				t.Fatalf("got %d %q, want 200 from the woken replica", resp.StatusCode, body)
			}
			if got := w.calls(); len(got) != 1 || got[0] != key {
				t.Errorf("Wake calls = %q, want exactly [%s]", got, key)
			}
		})
	}
}

// TestWakeConcurrentCalls: every call that arrives while the function is
// at zero calls Wake (the Waker, not the proxy, shares one wake-up between
// them), all of them wait, counted as in flight, and all are served.
func TestWakeConcurrentCalls(t *testing.T) {
	const (
		calls = 16
		key   = "openfaas-fn/burst"
	)
	_, ep := backend(t, echoHandler("woken"))
	c := NewCache()
	c.Set(key, nil)
	signals := new(load.Signals)
	var waiting load.Snapshot
	var once sync.Once
	w := &wakeRecorder{onWake: func(n int) {
		// Publish only once every call has asked: proves that each call
		// called Wake and then waited rather than failing.
		if n < calls {
			return
		}
		once.Do(func() {
			waiting = signals.Function(key)
			c.Set(key, []faas.Endpoint{ep})
		})
	}}
	base := front(t, New(c, Options{ReadyWait: 20 * time.Second, Wake: w, Load: signals, Log: quietLogger()}))

	codes := make(chan int, calls)
	for range calls {
		go func() {
			resp, err := http.Get(base + "/function/burst")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range calls {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a call got %d, want 200", code)
		}
	}
	if got := w.calls(); len(got) != calls {
		t.Errorf("%d Wake calls, want one per call (%d)", len(got), calls)
	}
	// Waiting calls are load already (the autoscaler sees them), and a
	// woken call counts as one request like any other, nothing more.
	if waiting.InFlight != calls {
		t.Errorf("in flight while waiting = %d, want %d", waiting.InFlight, calls)
	}
	// A client can read the whole answer a moment before the proxy's
	// handler returns and releases the call: wait for that, bounded.
	poll.Until(t, 10*time.Second, "every call to be released", func() bool {
		return signals.Function(key) == load.Snapshot{Requests: calls}
	})
}

// TestWakeOnlyWhenNothingReady: Wake is for calls that would wait; a
// function with a ready replica, or one that is not known, is never woken.
func TestWakeOnlyWhenNothingReady(t *testing.T) {
	_, ep := backend(t, echoHandler("warm"))
	c := NewCache()
	c.Set("openfaas-fn/warm", []faas.Endpoint{ep})
	w := &wakeRecorder{}
	base := front(t, New(c, Options{ReadyWait: time.Second, Wake: w, Log: quietLogger()}))
	for range 5 {
		if resp, body := get(t, base+"/function/warm"); resp.StatusCode != http.StatusOK {
			t.Fatalf("warm: %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, base+"/function/ghost"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ghost: %d, want 404", resp.StatusCode)
	}
	if got := w.calls(); len(got) != 0 {
		t.Errorf("Wake calls = %q, want none", got)
	}
}

// TestWakeBoundedByReadyWait: a wake-up that publishes nothing ends, as any
// wait does, with 503 after ReadyWait (or at once when ReadyWait is
// negative); without a Waker the proxy behaves as it always did.
func TestWakeBoundedByReadyWait(t *testing.T) {
	const wait = 100 * time.Millisecond
	tests := []struct {
		name      string
		readyWait time.Duration
		wake      bool
		wantWakes int
		minWait   time.Duration
	}{
		{"waker that never wakes", wait, true, 1, wait},
		{"no waker", wait, false, 0, wait},
		{"fail at once still wakes", -1, true, 1, 0},
		{"fail at once without waker", -1, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache()
			c.Set("openfaas-fn/cold", nil)
			w := &wakeRecorder{}
			opts := Options{ReadyWait: tt.readyWait, Log: quietLogger()}
			if tt.wake {
				opts.Wake = w
			}
			base := front(t, New(c, opts))
			start := time.Now()
			resp, body := get(t, base+"/function/cold")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no ready replica for cold.openfaas-fn") {
				t.Fatalf("got %d %q, want 503 no ready replica", resp.StatusCode, body)
			}
			if el := time.Since(start); el < tt.minWait || el > 10*time.Second {
				t.Errorf("answered after %v, want the ReadyWait of %v", el, tt.readyWait)
			}
			if got := len(w.calls()); got != tt.wantWakes {
				t.Errorf("%d Wake calls, want %d", got, tt.wantWakes)
			}
		})
	}
}
