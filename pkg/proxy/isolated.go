package proxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"
)

// Pools hands out the containers of functions with per-request isolation:
// each has served no call, and is removed once the call it is handed out
// for is over (the runtime's pool implements it, through an adapter).
type Pools interface {
	// Take returns a fresh container of key, waiting for one until ctx
	// ends; then the error is a *BusyError.
	Take(ctx context.Context, key string) (Lease, error)
}

// Lease is one container handed out for one call.
type Lease interface {
	// Replica names the container (for load signals and logs).
	Replica() string
	// Dial connects to the function in the container; it is called once.
	Dial(ctx context.Context) (net.Conn, error)
	// Release ends the lease: the container is removed, whatever happened.
	Release()
}

// BusyError is Take's error when no fresh container became ready in time:
// calls outrun the pool's refill. The call gets 429 with Retry-After.
type BusyError struct {
	// RetryAfter is when a container is likely to be ready again.
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("no fresh container ready; retry after %s", e.RetryAfter)
}

type leaseKey struct{}

// isolatedProxy is the ReverseProxy of isolated calls: no retries (a
// second attempt would be a second call of the container) and no kept
// connections (one connection, one call, one container).
func (p *Proxy) isolatedProxy() *httputil.ReverseProxy {
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			l, ok := ctx.Value(leaseKey{}).(Lease)
			if !ok {
				return nil, errors.New("isolated call without a lease")
			}
			return l.Dial(ctx)
		},
		DisableKeepAlives:   true,
		DisableCompression:  true,
		MaxIdleConnsPerHost: -1,
	}
	return &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      t,
		FlushInterval:  flushInterval,
		BufferPool:     newBufferPool(),
		ErrorLog:       log.New(logWriter{p.log}, "", 0),
		ErrorHandler:   p.handleError,
		ModifyResponse: p.modifyResponse,
	}
}

// serveIsolated serves a call of a function with per-request isolation in
// a container of its pool that has served no other call, waiting for one
// up to ReadyWait; past that it answers 429 with Retry-After, never a used
// container.
func (p *Proxy) serveIsolated(w http.ResponseWriter, r *http.Request, c *call) {
	if p.pools == nil {
		p.fail(w, c, http.StatusNotImplemented, fmt.Sprintf("function %s asks for per-request isolation, which this runtime cannot run (it needs RUNTIME=docker)", c.ref()))
		return
	}
	if p.maxBody > 0 {
		if r.ContentLength > p.maxBody {
			p.fail(w, c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.maxBody))
			return
		}
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, p.maxBody), c: c}
	}
	wait, cancel := context.WithTimeout(r.Context(), p.readyWait)
	lease, err := p.pools.Take(wait, c.key)
	cancel()
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		secs := max(1, int((busy.RetryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p.log.WithFields(c.fields()).Info("isolated call: no fresh container ready in time; 429")
		p.fail(w, c, http.StatusTooManyRequests, fmt.Sprintf("no fresh container of %s became ready within %s (per-request isolation: calls outrun the pool); retry after %ds", c.ref(), p.readyWait, secs))
		return
	case err != nil && r.Context().Err() != nil:
		p.fail(w, c, StatusClientClosedRequest, "client closed request")
		return
	case err != nil:
		p.log.WithFields(c.fields()).WithError(err).Warn("isolated call: no container")
		p.fail(w, c, http.StatusServiceUnavailable, fmt.Sprintf("no container for %s: %v", c.ref(), err))
		return
	}
	defer lease.Release()
	c.upstream = lease.Replica()
	c.load.On(lease.Replica())
	rc := http.NewResponseController(w)
	ctx, cancelCall := p.deadlines(rc, r, c)
	defer cancelCall()
	_ = rc.EnableFullDuplex()
	ctx = context.WithValue(ctx, leaseKey{}, lease)
	p.isolated.ServeHTTP(w, r.WithContext(context.WithValue(ctx, callKey{}, c)))
}
