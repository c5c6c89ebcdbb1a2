package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// pollInterval is how often a Resolver without change notification is asked
// again while a request waits for a ready replica.
const pollInterval = 50 * time.Millisecond

// Errors of waitReady.
var (
	// errNoReady means no replica became ready within ReadyWait.
	errNoReady = errors.New("no ready replica")
	// errGone means the function was deleted while the request waited.
	errGone = errors.New("function deleted")
)

// waiter is implemented by resolvers that can announce changes, so a waiting
// request wakes as soon as the controller publishes an endpoint instead of
// on the next poll. *Cache implements it.
type waiter interface {
	// lookupOrWait is Lookup plus a channel closed on the next change.
	lookupOrWait(key string) ([]faas.Endpoint, bool, <-chan struct{})
}

var _ waiter = (*Cache)(nil)

// waitReady waits up to p.readyWait for key to have an endpoint. It returns
// errNoReady on timeout, errGone when the key disappears, and the context's
// error when the client gives up first.
func (p *Proxy) waitReady(ctx context.Context, key string) ([]faas.Endpoint, error) {
	if p.readyWait <= 0 {
		return nil, errNoReady
	}
	deadline := time.NewTimer(p.readyWait)
	defer deadline.Stop()

	var tick <-chan time.Time
	if p.waiter == nil {
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var (
			eps     []faas.Endpoint
			known   bool
			changed <-chan struct{}
		)
		if p.waiter != nil {
			eps, known, changed = p.waiter.lookupOrWait(key)
		} else {
			eps, known = p.resolver.Lookup(key)
		}
		switch {
		case !known:
			return nil, errGone
		case len(eps) > 0:
			return eps, nil
		}
		// Exactly one of changed and tick is non-nil; a nil channel never fires.
		select {
		case <-changed:
		case <-tick:
		case <-deadline.C:
			return nil, errNoReady
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}
