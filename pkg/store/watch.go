package store

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Watcher receives the keys of committed changes. Keys are coalesced: a key
// changed many times before Next is called is reported once, so a slow
// reader never blocks a writer and never grows without bound beyond the
// number of distinct keys.
type Watcher struct {
	onCommit func(key string) // optional synchronous hook, see OnCommit
	mu       sync.Mutex
	pending  map[string]struct{}
	signal   chan struct{} // capacity 1: "pending is not empty"
	done     <-chan struct{}
}

func newWatcher(ctx context.Context, opts []WatchOption) *Watcher {
	w := &Watcher{
		pending: make(map[string]struct{}),
		signal:  make(chan struct{}, 1),
		done:    ctx.Done(),
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// WatchOption configures a Watcher.
type WatchOption func(*Watcher)

// OnCommit makes the Watcher also call fn with the key of every committed
// change, synchronously in the writer's goroutine and before the write
// returns to its caller. It lets a reader act on a change before anyone
// could have heard of it (the controller marks a new function as known to
// the proxy before the deploy is answered). fn must be quick and must not
// block or call the Store.
func OnCommit(fn func(key string)) WatchOption {
	return func(w *Watcher) { w.onCommit = fn }
}

// notify records key and wakes the reader. It never blocks.
func (w *Watcher) notify(key string) {
	if w.onCommit != nil {
		w.onCommit(key)
	}
	w.mu.Lock()
	w.pending[key] = struct{}{}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Next blocks until at least one key changed or ctx (or the Watch context)
// is done, and returns the changed keys sorted. Once the Watch context is
// done, Next returns context.Canceled, even if keys are still pending.
func (w *Watcher) Next(ctx context.Context) ([]string, error) {
	for {
		// Checked before draining: a write racing with the cancellation may
		// still have queued a key, and a stopped Watcher must say so
		// deterministically rather than hand that key out.
		select {
		case <-w.done:
			return nil, context.Canceled
		default:
		}
		if keys := w.drain(); len(keys) > 0 {
			return keys, nil
		}
		select {
		case <-w.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.done:
			return nil, context.Canceled
		}
	}
}

func (w *Watcher) drain() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	keys := make([]string, 0, len(w.pending))
	for k := range w.pending {
		keys = append(keys, k)
	}
	clear(w.pending)
	sort.Strings(keys)
	return keys
}

// watchers is a set of Watchers an implementation fans changes out to.
type watchers struct {
	mu  sync.Mutex
	set map[*Watcher]struct{}
}

// add registers a Watcher that is dropped when ctx is done.
func (ws *watchers) add(ctx context.Context, opts []WatchOption) *Watcher {
	w := newWatcher(ctx, opts)
	ws.mu.Lock()
	if ws.set == nil {
		ws.set = make(map[*Watcher]struct{})
	}
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
	// AfterFunc rather than a goroutine blocked on ctx.Done: it costs no
	// goroutine while ctx is live, and none at all for a ctx that can never
	// be cancelled.
	context.AfterFunc(ctx, func() {
		ws.mu.Lock()
		delete(ws.set, w)
		ws.mu.Unlock()
	})
	return w
}

// notify tells every Watcher that key changed.
func (ws *watchers) notify(key string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		w.notify(key)
	}
}

// Follow keeps a view of the store's functions current until ctx is done:
// it subscribes to w first (so no change falls between), calls resync for
// a full pass, then changed with the keys of every committed change as
// they come, and resync again every interval (catching what a pass could
// not do, e.g. a listener that failed to bind). The callbacks run on
// Follow's goroutine, one at a time. It returns when ctx is done.
func Follow(ctx context.Context, watch func(context.Context, ...WatchOption) *Watcher, interval time.Duration,
	resync func(context.Context), changed func(context.Context, []string)) {
	w := watch(ctx)
	changes := make(chan []string)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			keys, err := w.Next(ctx)
			if err != nil {
				return
			}
			select {
			case changes <- keys:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { <-watching }()
	resync(ctx)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case keys := <-changes:
			changed(ctx, keys)
		case <-tick.C:
			resync(ctx)
		}
	}
}
