package proxy

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestCacheSetCopies(t *testing.T) {
	c := NewCache()
	in := []faas.Endpoint{{Replica: "a", Addr: "10.0.0.1:8080"}, {Replica: "b", Addr: "10.0.0.2:8080"}}
	c.Set("ns/fn", in)
	in[0].Addr = "mutated"
	got, ok := c.Lookup("ns/fn")
	if !ok || got[0].Addr != "10.0.0.1:8080" {
		t.Fatalf("Lookup = %v, %v; the caller's later write leaked into the cache", got, ok)
	}
}

func TestCacheLookup(t *testing.T) {
	ep := faas.Endpoint{Replica: "a", Addr: "10.0.0.1:8080"}
	tests := []struct {
		name      string
		ops       func(c *Cache)
		wantKnown bool
		wantEps   []faas.Endpoint
	}{
		{name: "unknown", ops: func(*Cache) {}, wantKnown: false},
		{name: "known but empty (nil)", ops: func(c *Cache) { c.Set("ns/fn", nil) }, wantKnown: true},
		{name: "known but empty (slice)", ops: func(c *Cache) { c.Set("ns/fn", []faas.Endpoint{}) }, wantKnown: true},
		{name: "ready", ops: func(c *Cache) { c.Set("ns/fn", []faas.Endpoint{ep}) }, wantKnown: true, wantEps: []faas.Endpoint{ep}},
		{name: "scaled to zero", ops: func(c *Cache) {
			c.Set("ns/fn", []faas.Endpoint{ep})
			c.Set("ns/fn", nil)
		}, wantKnown: true},
		{name: "deleted", ops: func(c *Cache) {
			c.Set("ns/fn", []faas.Endpoint{ep})
			c.Delete("ns/fn")
		}, wantKnown: false},
		{name: "other key", ops: func(c *Cache) { c.Set("ns/other", []faas.Endpoint{ep}) }, wantKnown: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache()
			tt.ops(c)
			eps, known := c.Lookup("ns/fn")
			if known != tt.wantKnown || !slices.Equal(eps, tt.wantEps) {
				t.Fatalf("Lookup = %v, %v; want %v, %v", eps, known, tt.wantEps, tt.wantKnown)
			}
		})
	}
}

func TestCacheChangeNotification(t *testing.T) {
	a := faas.Endpoint{Replica: "a", Addr: "10.0.0.1:8080"}
	b := faas.Endpoint{Replica: "b", Addr: "10.0.0.2:8080"}
	tests := []struct {
		name       string
		setup      func(c *Cache)
		change     func(c *Cache)
		wantWakeup bool
	}{
		{name: "equal set is a no-op", setup: func(c *Cache) { c.Set("k", []faas.Endpoint{a, b}) },
			change: func(c *Cache) { c.Set("k", []faas.Endpoint{a, b}) }},
		{name: "empty set on known-empty is a no-op", setup: func(c *Cache) { c.Set("k", nil) },
			change: func(c *Cache) { c.Set("k", []faas.Endpoint{}) }},
		{name: "delete of absent key is a no-op", setup: func(*Cache) {},
			change: func(c *Cache) { c.Delete("k") }},
		{name: "new key wakes", setup: func(*Cache) {},
			change: func(c *Cache) { c.Set("k", nil) }, wantWakeup: true},
		{name: "reorder wakes", setup: func(c *Cache) { c.Set("k", []faas.Endpoint{a, b}) },
			change: func(c *Cache) { c.Set("k", []faas.Endpoint{b, a}) }, wantWakeup: true},
		{name: "endpoint added wakes", setup: func(c *Cache) { c.Set("k", nil) },
			change: func(c *Cache) { c.Set("k", []faas.Endpoint{a}) }, wantWakeup: true},
		{name: "delete wakes", setup: func(c *Cache) { c.Set("k", []faas.Endpoint{a}) },
			change: func(c *Cache) { c.Delete("k") }, wantWakeup: true},
		{name: "change to another key wakes too", setup: func(c *Cache) { c.Set("k", nil) },
			change: func(c *Cache) { c.Set("other", nil) }, wantWakeup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache()
			tt.setup(c)
			_, _, ch := c.lookupOrWait("k")
			tt.change(c)
			if got := closed(ch); got != tt.wantWakeup {
				t.Fatalf("change channel closed = %v, want %v", got, tt.wantWakeup)
			}
			if _, _, next := c.lookupOrWait("k"); closed(next) {
				t.Fatalf("the current snapshot's channel is already closed")
			}
		})
	}
}

func TestCacheKeys(t *testing.T) {
	c := NewCache()
	c.Set("a/x", nil)
	c.Set("b/y", []faas.Endpoint{{Addr: "1.2.3.4:8080"}})
	c.Set("c/z", nil)
	c.Delete("c/z")
	keys := c.Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a/x", "b/y"}) {
		t.Fatalf("Keys = %v", keys)
	}
}

// TestCacheConcurrentSetLookup is for the race detector: one writer (as in
// production, the controller) and many lock-free readers.
func TestCacheConcurrentSetLookup(t *testing.T) {
	c := NewCache()
	const keys = 16
	var wg sync.WaitGroup
	stop := make(chan struct{})
	writers := 2 // more than production's one: writers must serialise
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				key := fmt.Sprintf("ns/fn-%d", (i+w)%keys)
				switch i % 3 {
				case 0:
					c.Set(key, []faas.Endpoint{{Replica: key, Addr: fmt.Sprintf("10.0.0.%d:8080", i%250)}})
				case 1:
					c.Set(key, nil)
				default:
					c.Delete(key)
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("ns/fn-%d", i%keys)
				eps, known := c.Lookup(key)
				if !known && len(eps) != 0 {
					t.Errorf("unknown key %s with endpoints %v", key, eps)
					return
				}
				for _, ep := range eps {
					if ep.Replica != key {
						t.Errorf("key %s returned %v", key, ep)
						return
					}
				}
				_, _, ch := c.lookupOrWait(key)
				_ = closed(ch)
				_ = c.Keys()
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
}
