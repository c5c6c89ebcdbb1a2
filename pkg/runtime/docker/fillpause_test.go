package docker

import (
	"sync"
	"testing"
	"time"
)

func TestFillPause(t *testing.T) {
	f := fillPause{base: 10 * time.Millisecond, max: 40 * time.Millisecond}
	for i, want := range []time.Duration{10, 20, 40, 40} {
		if got := f.fail(); got != want*time.Millisecond {
			t.Errorf("failure %d: wait %s, want %s", i+1, got, want*time.Millisecond)
		}
	}
	if !f.paused() {
		t.Error("not paused after failures")
	}
	var mu sync.Mutex
	kicked := make(chan struct{}, 2)
	mu.Lock()
	held := f.holdLocked(&mu, func() { kicked <- struct{}{} })
	again := f.holdLocked(&mu, func() { kicked <- struct{}{} }) // one timer only
	mu.Unlock()
	if !held || !again {
		t.Fatal("holdLocked did not hold paused fills")
	}
	select {
	case <-kicked:
	case <-time.After(5 * time.Second):
		t.Fatal("no kick when the pause ended")
	}
	select {
	case <-kicked:
		t.Error("kicked twice for one pause")
	case <-time.After(100 * time.Millisecond):
	}
	f.reset()
	mu.Lock()
	defer mu.Unlock()
	if f.paused() || f.holdLocked(&mu, func() {}) || f.fails != 0 {
		t.Errorf("after reset: %+v", f)
	}
	if got := f.fail(); got != 10*time.Millisecond {
		t.Errorf("first failure after reset waits %s, want the base", got)
	}
}
