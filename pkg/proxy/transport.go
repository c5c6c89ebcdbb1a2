package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Transport tuning. Functions are few hosts receiving many small requests,
// so idle connections per host are plentiful; dials go to containers on a
// local bridge, so a dial that takes seconds means the replica is gone.
const (
	dialTimeout         = 2 * time.Second
	dialKeepAlive       = 30 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxIdleConnsPerHost = 256
	maxIdleConns        = 4096
)

// newTransport returns the shared keep-alive transport to function replicas.
// responseTimeout bounds the wait for response headers (0 = none).
func newTransport(responseTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}
	return &http.Transport{
		// Never a proxy from the environment: replicas are on a local Docker
		// network, and HTTP_PROXY set for image pulls must not capture them.
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes Content-Encoding through; letting the transport ask
		// for gzip and decompress would change what the client receives.
		DisableCompression: true,
		// Replicas speak HTTP/1.1 (the OpenFaaS watchdogs); h2 would only add
		// a negotiation path that is never used.
		ForceAttemptHTTP2: false,
	}
}

// retryTransport sends a request to its endpoint and, when the connection
// could not even be established, once more to the next endpoint of the same
// function. A dial error guarantees that no byte of the request left this
// process, so the retry cannot duplicate a side effect; any other error might
// come after the function started working and is returned as is.
type retryTransport struct {
	base http.RoundTripper
	// onRetry is told about the abandoned attempt, for logging.
	onRetry func(c *call, err error)
}

var _ http.RoundTripper = (*retryTransport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	g, _ := req.Body.(*replayGuard)
	c := callFrom(req.Context())
	if err != nil && t.retryable(req, c, g, err) {
		resp, err = t.retry(req, c, g, err)
	} else if g != nil {
		g.release()
	}
	if resp != nil && resp.Request == nil {
		// ModifyResponse finds the call through resp.Request; a custom base
		// transport may leave it unset.
		resp.Request = req
	}
	return resp, err
}

// retryable reports whether req may be sent again to another endpoint after
// err: only for a dial error, with another endpoint to try, while the client
// still waits, and when the body is provably untouched.
func (t *retryTransport) retryable(req *http.Request, c *call, g *replayGuard, err error) bool {
	if c == nil || len(c.eps) < 2 || !isDialError(err) || req.Context().Err() != nil {
		return false
	}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return true
	case g != nil:
		return !g.touched()
	default:
		// A body we cannot observe might have been partly consumed.
		return false
	}
}

// retry sends req to the endpoint after the one that failed with err.
func (t *retryTransport) retry(req *http.Request, c *call, g *replayGuard, err error) (*http.Response, error) {
	if t.onRetry != nil {
		t.onRetry(c, err)
	}
	c.pick = (c.pick + 1) % len(c.eps)
	c.upstream = c.eps[c.pick].Addr
	c.load.On(c.eps[c.pick].Replica) // the retried replica serves the call now
	// The first attempt's close of the body was held back; this attempt is
	// the last one, so it owns the body and may close it as usual.
	if g != nil {
		g.disarm()
	}
	// A RoundTripper must not modify its request; clone it for the new host.
	r2 := req.Clone(req.Context())
	r2.URL.Host = c.upstream
	return t.base.RoundTrip(r2)
}

// isDialError reports whether err means the upstream connection was never
// established (refused, unreachable, dial timeout).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// replayGuard wraps an outbound request body so that it can be sent again
// after a failed dial. http.Transport closes the body when the dial fails,
// and ReverseProxy's body wrapper refuses reads after Close, so the guard
// holds that Close back while a retry is still possible, and it records
// whether anything was read so a retry is never attempted with a partly
// consumed stream.
type replayGuard struct {
	body io.ReadCloser
	read atomic.Bool

	mu           sync.Mutex
	holding      bool // Close is deferred while nothing was read
	closePending bool // Close was called while holding
}

func newReplayGuard(body io.ReadCloser) *replayGuard {
	return &replayGuard{body: body, holding: true}
}

// Read implements io.Reader and marks the body as consumed, even for a read
// that returns nothing: the caller already tried to consume it.
func (g *replayGuard) Read(p []byte) (int, error) {
	if !g.read.Load() {
		g.read.Store(true)
	}
	return g.body.Read(p)
}

// Close implements io.Closer. It is deferred only while the body is
// untouched and a retry may still need it.
func (g *replayGuard) Close() error {
	g.mu.Lock()
	if g.holding && !g.read.Load() {
		g.closePending = true
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.body.Close()
}

// touched reports whether anything tried to read the body.
func (g *replayGuard) touched() bool { return g.read.Load() }

// disarm stops holding Close back and forgets a close requested by the
// abandoned attempt, so that the next attempt can read the body.
func (g *replayGuard) disarm() {
	g.mu.Lock()
	g.holding, g.closePending = false, false
	g.mu.Unlock()
}

// release stops holding Close back and performs a close that was held back.
func (g *replayGuard) release() {
	g.mu.Lock()
	pending := g.closePending
	g.holding, g.closePending = false, false
	g.mu.Unlock()
	if pending {
		_ = g.body.Close() // closing the proxy's body wrapper cannot fail
	}
}
