package runtime

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

type probeFunc func(ctx context.Context, addr string) bool

func (f probeFunc) Ready(ctx context.Context, addr string) bool { return f(ctx, addr) }

func TestProbesUnready(t *testing.T) {
	var running, most atomic.Int32
	p := Probes{Timeout: time.Second, Limit: 2, Prober: probeFunc(func(ctx context.Context, addr string) bool {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		return addr != "down"
	})}
	addrs := map[string][]string{"a": {"up", "up"}, "b": {"up", "down"}, "c": nil, "d": {"down"}}
	got := p.Unready(context.Background(), []string{"a", "b", "c", "d"}, func(k string) []string { return addrs[k] })
	slices.Sort(got)
	if !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("unready %v, want [b d]", got)
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d probes at once, want at most 2", m)
	}

	// A probe cut short because ctx ended is no failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := p.Unready(ctx, []string{"d"}, func(k string) []string { return addrs[k] }); len(got) != 0 {
		t.Errorf("unready after cancel %v, want none", got)
	}
}
