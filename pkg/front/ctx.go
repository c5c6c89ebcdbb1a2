package front

import (
	"context"
	"sync"
)

// callCtx is a request's context: done when the loop cancels it (the
// client went away, or the handler returned), as net/http's are. Its own
// AfterFunc lets the proxy hook the client leaving without a child
// context: context.AfterFunc (and WithCancel) on an ordinary context
// register the child in a map of their parent, made and emptied again
// for every call. It is used when the connection's context can never be
// done (no cancellable BaseContext), so it has nothing to follow.
type callCtx struct {
	context.Context // the connection's: values only, never done

	mu      sync.Mutex
	done    chan struct{} // made when first asked for
	err     error
	hooks   []*ctxHook
	hookBuf [2]*ctxHook // hooks' first backing array
}

// ctxHook is one function registered by AfterFunc.
type ctxHook struct {
	c *callCtx
	f func()
}

func newCallCtx(parent context.Context) *callCtx {
	c := &callCtx{Context: parent}
	c.hooks = c.hookBuf[:0]
	return c
}

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run in its own goroutine once c is done,
// with context.AfterFunc's contract: stop reports whether it stopped f
// from being started.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	h := &ctxHook{c: c, f: f}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.hooks = append(c.hooks, h)
	return h.stop
}

func (h *ctxHook) stop() bool {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.hooks {
		if x == h {
			copy(c.hooks[i:], c.hooks[i+1:])
			c.hooks[len(c.hooks)-1] = nil
			c.hooks = c.hooks[:len(c.hooks)-1]
			return true
		}
	}
	return false
}

// cancel ends c with context.Canceled and starts the hooks still
// registered.
func (c *callCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	hooks := c.hooks
	c.hooks = nil
	c.mu.Unlock()
	for _, h := range hooks {
		go h.f()
	}
}

// String names the context in panics and logs, as context's own types do.
func (c *callCtx) String() string { return "front.callCtx" }
