package proxy

import "context"

// afterFuncer is a context that runs a function when it is done by
// itself; the front loop's request contexts are.
type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// afterFunc is context.AfterFunc, using ctx's own AfterFunc when it has
// one: that spares the call a child context registered with its parent.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if a, ok := ctx.(afterFuncer); ok {
		return a.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}
