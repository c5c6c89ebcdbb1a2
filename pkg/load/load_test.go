package load

import (
	"fmt"
	"maps"
	"sync"
	"testing"
)

// step is one thing a test does to a set of calls, numbered by their index.
type step struct {
	begin string // Begin call i on this function key
	on    string // move call i to this replica
	end   bool   // End call i
	call  int
}

func begin(i int, key string) step  { return step{call: i, begin: key} }
func on(i int, replica string) step { return step{call: i, on: replica} }
func end(i int) step                { return step{call: i, end: true} }

func TestCounts(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		replicas  map[string]int64 // InFlight wanted afterwards
		functions map[string]Snapshot
	}{
		{
			name:      "nothing called",
			replicas:  map[string]int64{"a": 0},
			functions: map[string]Snapshot{},
		},
		{
			name:      "waiting for a replica counts on the function only",
			steps:     []step{begin(0, "ns/f")},
			replicas:  map[string]int64{"a": 0},
			functions: map[string]Snapshot{"ns/f": {InFlight: 1, Requests: 1}},
		},
		{
			name:      "call on a replica",
			steps:     []step{begin(0, "ns/f"), on(0, "a")},
			replicas:  map[string]int64{"a": 1, "b": 0},
			functions: map[string]Snapshot{"ns/f": {InFlight: 1, Requests: 1}},
		},
		{
			name:      "finished call",
			steps:     []step{begin(0, "ns/f"), on(0, "a"), end(0)},
			replicas:  map[string]int64{"a": 0},
			functions: map[string]Snapshot{"ns/f": {InFlight: 0, Requests: 1}},
		},
		{
			name:      "retry moves the count, the request is counted once",
			steps:     []step{begin(0, "ns/f"), on(0, "a"), on(0, "b")},
			replicas:  map[string]int64{"a": 0, "b": 1},
			functions: map[string]Snapshot{"ns/f": {InFlight: 1, Requests: 1}},
		},
		{
			name:      "moving to the same replica keeps one count",
			steps:     []step{begin(0, "ns/f"), on(0, "a"), on(0, "a")},
			replicas:  map[string]int64{"a": 1},
			functions: map[string]Snapshot{"ns/f": {InFlight: 1, Requests: 1}},
		},
		{
			name: "calls add up per replica and per function",
			steps: []step{
				begin(0, "ns/f"), on(0, "a"),
				begin(1, "ns/f"), on(1, "a"),
				begin(2, "ns/f"), on(2, "b"),
				begin(3, "ns/g"), on(3, "c"),
				end(1),
			},
			replicas: map[string]int64{"a": 1, "b": 1, "c": 1},
			functions: map[string]Snapshot{
				"ns/f": {InFlight: 2, Requests: 3},
				"ns/g": {InFlight: 1, Requests: 1},
			},
		},
		{
			name:      "End twice releases once",
			steps:     []step{begin(0, "ns/f"), on(0, "a"), begin(1, "ns/f"), on(1, "a"), end(0), end(0)},
			replicas:  map[string]int64{"a": 1},
			functions: map[string]Snapshot{"ns/f": {InFlight: 1, Requests: 2}},
		},
		{
			name:      "a call ended before it reached a replica",
			steps:     []step{begin(0, "ns/f"), end(0)},
			replicas:  map[string]int64{"a": 0},
			functions: map[string]Snapshot{"ns/f": {InFlight: 0, Requests: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Signals
			calls := map[int]*Call{}
			for _, st := range tt.steps {
				switch {
				case st.begin != "":
					c := s.Begin(st.begin)
					calls[st.call] = &c
				case st.on != "":
					calls[st.call].On(st.on)
				case st.end:
					calls[st.call].End()
				}
			}
			for r, want := range tt.replicas {
				if got := s.InFlight(r); got != want {
					t.Errorf("InFlight(%q) = %d, want %d", r, got, want)
				}
			}
			for k, want := range tt.functions {
				if got := s.Function(k); got != want {
					t.Errorf("Function(%q) = %+v, want %+v", k, got, want)
				}
			}
			if got := s.Functions(); !maps.Equal(got, tt.functions) {
				t.Errorf("Functions() = %v, want %v", got, tt.functions)
			}
		})
	}
}

// TestNilAndZero checks that publishing to a nil *Signals and using a zero
// Call count nowhere, and that reading a nil *Signals reads zero.
func TestNilAndZero(t *testing.T) {
	var s *Signals
	c := s.Begin("ns/f")
	c.On("a")
	c.End()
	var zero Call
	zero.On("a")
	zero.End()
	if got := s.InFlight("a"); got != 0 {
		t.Errorf("InFlight = %d, want 0", got)
	}
	if got := s.Function("ns/f"); got != (Snapshot{}) {
		t.Errorf("Function = %+v, want zero", got)
	}
	if got := s.Functions(); got == nil || len(got) != 0 {
		t.Errorf("Functions = %#v, want an empty map", got)
	}
}

// entries counts the replica counters in the map, retired or not.
func (s *Signals) entries() int {
	n := 0
	s.replicas.Range(func(any, any) bool { n++; return true })
	return n
}

// TestReplicaCountersDoNotLeak calls many short-lived replicas, as rolling
// updates do over a daemon's life, and checks that the replica map stays
// bounded while the counts of replicas still serving calls survive every
// sweep.
func TestReplicaCountersDoNotLeak(t *testing.T) {
	var s Signals
	const busy = 10
	held := make([]Call, busy)
	for i := range held {
		held[i] = s.Begin("ns/long")
		held[i].On(fmt.Sprintf("busy-%d", i))
	}
	for i := range 10_000 {
		c := s.Begin("ns/f")
		c.On(fmt.Sprintf("replica-%d", i))
		c.End()
	}
	if n, bound := s.entries(), 2*max(minSweep, 2*busy); n > bound {
		t.Errorf("%d replica counters after 10000 replicas came and went, want at most %d", n, bound)
	}
	if got := s.live.Load(); got != int64(s.entries()) {
		t.Errorf("live = %d, map holds %d", got, s.entries())
	}
	for i := range held {
		if got := s.InFlight(fmt.Sprintf("busy-%d", i)); got != 1 {
			t.Errorf("InFlight(busy-%d) = %d after the sweeps, want 1", i, got)
		}
		held[i].End()
	}
	s.sweep()
	if n := s.entries(); n != 0 {
		t.Errorf("%d replica counters left once all calls ended and a sweep ran, want 0", n)
	}
	if got := s.Function("ns/f"); got != (Snapshot{InFlight: 0, Requests: 10_000}) {
		t.Errorf("Function(ns/f) = %+v", got)
	}
}

// TestConcurrent runs calls on a few replicas while other goroutines churn
// through new replicas (forcing sweeps) and read. A replica serving a call
// must never read as idle, or draining would stop it under the call; once
// everything has ended, all counts are back at zero and every request was
// counted exactly once. Run it with -race.
func TestConcurrent(t *testing.T) {
	var s Signals
	const (
		workers  = 8
		perCall  = 500
		replicas = 3
	)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default: // enough to show what went wrong
		}
	}
	for w := range workers {
		wg.Go(func() {
			for i := range perCall {
				key := fmt.Sprintf("ns/f%d", w%2)
				first := fmt.Sprintf("r%d", (w+i)%replicas)
				second := fmt.Sprintf("r%d", (w+i+1)%replicas)
				c := s.Begin(key)
				c.On(first)
				if s.InFlight(first) < 1 {
					report(fmt.Errorf("replica %s serving a call reads as idle", first))
				}
				c.On(second) // a retry
				if s.InFlight(second) < 1 {
					report(fmt.Errorf("replica %s serving a retried call reads as idle", second))
				}
				c.End()
			}
		})
	}
	var churn sync.WaitGroup
	// At least enough short-lived replicas for several sweeps, and more
	// while the calls run.
	const minChurn = 1000
	churn.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				if i >= minChurn {
					return
				}
			default:
			}
			c := s.Begin("ns/churn")
			c.On(fmt.Sprintf("short-%d", i))
			c.End()
		}
	})
	churn.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for k, snap := range s.Functions() {
				if snap.InFlight < 0 {
					report(fmt.Errorf("%s: negative InFlight %d", k, snap.InFlight))
				}
			}
			for r := range replicas {
				if n := s.InFlight(fmt.Sprintf("r%d", r)); n < 0 || n > workers {
					report(fmt.Errorf("r%d: InFlight %d out of range", r, n))
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for r := range replicas {
		if n := s.InFlight(fmt.Sprintf("r%d", r)); n != 0 {
			t.Errorf("InFlight(r%d) = %d after all calls ended", r, n)
		}
	}
	for i := range 2 {
		key := fmt.Sprintf("ns/f%d", i)
		if got, want := s.Function(key), (Snapshot{Requests: workers / 2 * perCall}); got != want {
			t.Errorf("Function(%s) = %+v, want %+v", key, got, want)
		}
	}
	if got := s.live.Load(); got != int64(s.entries()) {
		t.Errorf("live = %d, map holds %d", got, s.entries())
	}
	if n, bound := s.entries(), 2*minSweep; n > bound {
		t.Errorf("%d replica counters after %d short-lived replicas, want at most %d", n, minChurn, bound)
	}
}
