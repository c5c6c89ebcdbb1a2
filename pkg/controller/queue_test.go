package controller

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/internal/poll"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func TestQueueDeduplicates(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second)
	for _, k := range []string{"a", "b", "a", "a", "c", "b"} {
		q.Add(k)
	}
	if q.Len() != 3 {
		t.Fatalf("Len = %d, want 3", q.Len())
	}
	var got []string
	for q.Len() > 0 {
		k, _ := q.Get()
		got = append(got, k)
		q.Done(k)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("order = %v, want [a b c]", got)
	}
}

func TestQueueKeyNeverProcessedTwiceAtOnce(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second)
	q.Add("k")
	k, _ := q.Get()
	q.Add("k") // added while processing: must wait for Done
	if q.Len() != 0 {
		t.Fatalf("key handed out while processing")
	}
	q.Done(k)
	if q.Len() != 1 {
		t.Fatalf("key added during processing was lost")
	}

	// Hammer it: no two workers ever hold the same key.
	q = NewQueue(time.Millisecond, time.Second)
	var inFlight sync.Map
	var violations, processed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				if _, loaded := inFlight.LoadOrStore(k, true); loaded {
					violations.Add(1)
				}
				time.Sleep(10 * time.Microsecond)
				inFlight.Delete(k)
				processed.Add(1)
				q.Done(k)
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		q.Add([]string{"x", "y", "z"}[i%3])
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.ShutDown()
	wg.Wait()
	if violations.Load() != 0 {
		t.Fatalf("%d concurrent holds of one key", violations.Load())
	}
	if processed.Load() == 0 {
		t.Fatal("nothing processed")
	}
}

func TestQueueAddAfterKeepsEarliest(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second)
	q.AddAfter("k", time.Hour)
	q.AddAfter("k", 10*time.Millisecond)
	q.AddAfter("k", time.Hour) // later deadline must not postpone
	got := make(chan string, 1)
	go func() { k, _ := q.Get(); got <- k }()
	select {
	case k := <-got:
		if k != "k" {
			t.Fatalf("got %q", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delayed key never arrived: a later AddAfter postponed it")
	}
	q.ShutDown()
}

func TestQueueRateLimitGrowsAndForgets(t *testing.T) {
	q := NewQueue(10*time.Millisecond, 80*time.Millisecond)
	defer q.ShutDown()
	var ds []time.Duration
	for i := 0; i < 6; i++ {
		ds = append(ds, q.AddRateLimited("k"))
	}
	// Jitter is ±20%, so compare against the nominal curve loosely.
	if ds[0] > 12*time.Millisecond || ds[3] < 60*time.Millisecond {
		t.Fatalf("backoff does not grow: %v", ds)
	}
	for _, d := range ds {
		if d > 96*time.Millisecond {
			t.Fatalf("backoff above cap: %v", ds)
		}
	}
	if !q.Failures("k") {
		t.Fatal("Failures = false while backing off")
	}
	q.Forget("k")
	if q.Failures("k") {
		t.Fatal("Forget did not reset")
	}
	if d := q.AddRateLimited("k"); d > 12*time.Millisecond {
		t.Fatalf("after Forget first delay = %v, want ~10ms", d)
	}
}

func TestQueueShutDownReleasesWorkers(t *testing.T) {
	q := NewQueue(time.Millisecond, time.Second)
	done := make(chan bool)
	go func() { _, ok := q.Get(); done <- ok }()
	q.ShutDown()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("Get returned a key after shutdown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("worker not released")
	}
}

// TestRunReactsToStoreAndRuntime: with Run going, a deploy is synced and
// published, a runtime event syncs the key again, and a delete removes it.
func TestRunReactsToStoreAndRuntime(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	st := store.NewMemory()
	rt := fake.New()
	cache := proxy.NewCache()
	c := New(Config{Resync: time.Hour, Log: log}, st, rt, cache, status.NewBoard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, cond func() bool) { t.Helper(); poll.Until(t, 10*time.Second, what, cond) }
	waitFor("event stream", func() bool { return c.Global().EventStream == "connected" })

	fn, err := st.Create(ctx, types.FunctionDeployment{Service: "fn", Image: "example/fn:1"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Known to the proxy by the time the write returns: an invoke right
	// after the deploy's 202 waits for a replica instead of getting 404.
	if _, known := cache.Lookup(fn.Key()); !known {
		t.Fatal("function not known to the proxy when its deploy returned")
	}
	waitFor("endpoint after deploy", func() bool { eps, _ := cache.Lookup(fn.Key()); return len(eps) == 1 })

	before := len(rt.Syncs())
	rt.Event(fn.Key())
	waitFor("a sync after the runtime's event", func() bool { return len(rt.Syncs()) > before })

	if err := st.Delete(ctx, fn.Key()); err != nil {
		t.Fatal(err)
	}
	waitFor("teardown after delete", func() bool {
		_, known := cache.Lookup(fn.Key())
		return !known && slices.Contains(rt.Removed(), fn.Key())
	})
}

func TestQueueNudgeRespectsBackoffAddDoesNot(t *testing.T) {
	q := NewQueue(time.Hour, time.Hour) // a failure backs off for an hour
	defer q.ShutDown()
	q.AddRateLimited("k")
	q.Nudge("k") // a Docker event during the backoff
	if q.Len() != 0 {
		t.Fatal("Nudge bypassed the backoff")
	}
	q.Add("k") // a change of desired state
	if q.Len() != 1 {
		t.Fatal("Add must not wait for the backoff")
	}
	k, _ := q.Get()
	q.Done(k)
	q.Forget(k)
	q.Nudge("k")
	if q.Len() != 1 {
		t.Fatal("Nudge after Forget must queue at once")
	}
}

// A key whose delay ran out does not wait behind every fresh key: the two
// lanes take turns, so neither starves the other.
func TestQueueDueLane(t *testing.T) {
	tests := []struct {
		name  string
		setup func(q *Queue)
		want  []string
	}{
		{"due and fresh keys take turns", func(q *Queue) {
			for _, k := range []string{"f1", "f2", "f3", "f4"} {
				q.Add(k)
			}
			q.AddAfter("d1", time.Millisecond)
			q.AddAfter("d2", 30*time.Millisecond) // after d1: timers fire in no set order
			for deadline := time.Now().Add(5 * time.Second); q.Len() < 6 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}, []string{"f1", "d1", "f2", "d2", "f3", "f4"}},
		// The first Get serves "d" from the due lane, so fresh goes next.
		{"a due key re-added while processed keeps its lane", func(q *Queue) {
			q.AddAfter("d", time.Millisecond)
			k, _ := q.Get() // waits for the timer
			q.Add("f1")
			q.Add("f2")
			q.AddAfter(k, time.Millisecond)
			time.Sleep(20 * time.Millisecond) // the timer fires while "d" is processed
			q.Done(k)
		}, []string{"f1", "d", "f2"}},
		// Nudged among fresh keys by its own container's events, a key
		// moves to the due lane when its delay runs out.
		{"a due key overtakes its fresh copy", func(q *Queue) {
			for _, k := range []string{"f1", "f2", "f3", "k"} {
				q.Add(k)
			}
			q.AddAfter("k", time.Millisecond)
			time.Sleep(20 * time.Millisecond)
		}, []string{"f1", "k", "f2", "f3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(time.Millisecond, time.Second)
			defer q.ShutDown()
			tt.setup(q)
			if got := drain(q); !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
		})
	}
}

// drain takes every waiting key off q, in the order workers would get them.
func drain(q *Queue) []string {
	var got []string
	for q.Len() > 0 {
		k, _ := q.Get()
		q.Done(k)
		got = append(got, k)
	}
	return got
}
