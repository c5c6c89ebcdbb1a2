package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
)

// DefaultReadyWait is the ReadyWait of zero Options. It covers a container
// start plus a health probe or two, so the first call after a deploy or
// scale-up waits instead of failing.
const DefaultReadyWait = 10 * time.Second

// Headers the proxy adds or reads.
const (
	HeaderCallID    = "X-Call-Id"
	HeaderStartTime = "X-Start-Time"
	HeaderDuration  = "X-Duration-Seconds"
)

// flushInterval bounds how long a piece of a sized response body may wait
// in the proxy before it is sent on. ReverseProxy flushes event streams and
// bodies of unknown length after every write whatever this says; the bound
// is for a sized body that a function writes slowly, which must flow too.
// It is not -1 (flush every write) because that sends the headers and the
// body of every ordinary small answer in separate writes, from a timer
// goroutine: about a tenth of the proxy's CPU time per call, measured with
// BenchmarkInvokeFullStack. Within the bound, an answer that arrives whole
// goes out in one write when the handler returns.
const flushInterval = time.Millisecond

// StatusClientClosedRequest is the status recorded (and written, though no
// one reads it) when the client goes away before a response is available.
// It is nginx's convention, chosen so metrics don't blame the function.
const StatusClientClosedRequest = 499

// Resolver gives the ready endpoints of a function key ("namespace/name")
// and whether the function is known at all. *Cache implements it; tests may
// use anything smaller. The returned slice must not be modified.
type Resolver interface {
	Lookup(key string) ([]faas.Endpoint, bool)
}

var _ Resolver = (*Cache)(nil)

// Waker is told that a call is waiting for a known function with no ready
// replica, e.g. one scaled to zero; the autoscaler implements it. Wake must
// return at once: it only asks for the wake-up (unpause the replicas, or
// raise desired replicas to min), and the call then waits for a ready
// endpoint bounded by ReadyWait as any call does. It is called once per
// waiting call, so a burst of calls to a function at zero calls it once
// each: deduplicating them into one wake-up is the Waker's job, because
// only it knows whether a wake-up is already under way.
type Waker interface {
	Wake(key string)
}

// Options configure a Proxy. The zero value is usable.
type Options struct {
	// Timeout is the default exec timeout: how long a call may take from
	// the moment it is sent to a replica until its response is complete
	// (504 when headers have not been sent by then). A function's own
	// exec_timeout (published with its endpoints) overrides it. 0 means
	// faas.DefaultTimeout, negative means no limit.
	Timeout time.Duration
	// ReadyWait is how long a call to a known function with no ready replica
	// waits for one before failing with 503. 0 means DefaultReadyWait,
	// negative means fail at once.
	ReadyWait time.Duration
	// Transport, when set, sends requests to replicas through
	// httputil.ReverseProxy instead of the proxy's own forwarding path
	// (forward.go), e.g. to compare the two. nil: the forwarding path,
	// with pooled keep-alive connections per replica.
	Transport http.RoundTripper
	// Log receives one entry per failed call; nil means logrus's standard logger.
	Log logrus.FieldLogger
	// MaxBodyBytes limits request bodies (413 beyond it); 0 means no limit.
	MaxBodyBytes int64
	// Started, when set, is called when a call to a known function starts.
	Started func(key string)
	// Observe, when set, is called once per request after it completes,
	// with the status sent and the time taken, e.g. to feed metrics. key is
	// "namespace/name" of a known function and "" otherwise, so that calls
	// to random names cannot grow label cardinality without bound.
	Observe func(key string, code int, d time.Duration)
	// Load, when set, receives the proxy's live load counts, for draining
	// (a replica is stopped only once its calls have finished) and
	// autoscaling. Per function: one request per call to a known function,
	// in flight from then (waiting for a ready replica included) until the
	// handler returns. Per replica: in flight from the moment the proxy
	// picks it until the response was written completely or failed, moved
	// to the next replica when a dial error makes the call retry there.
	// nil counts nowhere.
	Load *load.Signals
	// Wake, when set, is called with the function key by every call that
	// finds a known function with no ready endpoint, before it waits for
	// one (see Waker). It is how a function at zero, paused or with no
	// replica at all, gets woken by its first call instead of answering
	// 503. nil: such a call only waits, as for a replica still starting.
	Wake Waker
	// Jobs runs the calls of job-mode functions (those whose one endpoint
	// is faas.JobEndpoints'): see job.go. nil answers them 501.
	Jobs JobRunner
	// Pools hands out the fresh containers of functions with per-request
	// isolation (those whose one endpoint is faas.IsolatedEndpoints'):
	// see isolated.go. nil answers them 501.
	Pools Pools
}

// Proxy is the invocation handler for /function/{name}[.{namespace}][/{path}].
// It routes each call to a ready replica found in the Resolver, round-robin,
// and never asks Docker anything: the controller keeps the Resolver current.
type Proxy struct {
	resolver  Resolver
	waiter    waiter    // resolver's change notification, nil when it has none
	timeouts  timeouter // resolver's per-function timeouts, nil when it has none
	timeout   time.Duration
	maxBody   int64
	started   func(key string)
	readyWait time.Duration
	log       logrus.FieldLogger
	observe   func(key string, code int, d time.Duration)
	transport http.RoundTripper
	rp        *httputil.ReverseProxy
	load      *load.Signals // nil counts nowhere
	wake      Waker         // nil wakes nothing
	jobs      JobRunner     // nil answers job functions 501
	pools     Pools         // nil answers isolated functions 501
	isolated  *httputil.ReverseProxy
	conns     *connPool   // the forwarding path's connections
	buffers   *bufferPool // its body copy buffers
	viaRP     bool        // Options.Transport was set: every call takes rp
	plain     *PlainHooks // nil: ServePlain declines every call (EnablePlain)

	// rr holds one *atomic.Uint64 round-robin counter per function key.
	// Per key, so that each function's replicas are hit evenly whatever the
	// mix of calls; entries are never removed, which bounds them by the
	// number of functions ever called.
	rr sync.Map
}

var _ http.Handler = (*Proxy)(nil)

// New returns a Proxy that routes through resolver.
func New(resolver Resolver, opts Options) *Proxy {
	timeout := orDefault(opts.Timeout, faas.DefaultTimeout)
	p := &Proxy{
		resolver:  resolver,
		timeout:   timeout,
		maxBody:   opts.MaxBodyBytes,
		started:   opts.Started,
		readyWait: orDefault(opts.ReadyWait, DefaultReadyWait),
		log:       opts.Log,
		observe:   opts.Observe,
		transport: opts.Transport,
		load:      opts.Load,
		wake:      opts.Wake,
		jobs:      opts.Jobs,
		pools:     opts.Pools,
	}
	p.waiter, _ = resolver.(waiter)
	p.timeouts, _ = resolver.(timeouter)
	if p.log == nil {
		p.log = logrus.StandardLogger()
	}
	if p.transport == nil {
		// No response header timeout: each call carries its own deadline,
		// which may be longer than the default. Only upgrades use it.
		p.transport = newTransport(0)
	} else {
		p.viaRP = true
	}
	p.conns = newConnPool(p.isEndpoint)
	p.buffers = newBufferPool()
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &retryTransport{base: p.transport, onRetry: p.logRetry},
		FlushInterval:  flushInterval,
		BufferPool:     newBufferPool(),
		ErrorLog:       log.New(logWriter{p.log}, "", 0),
		ErrorHandler:   p.handleError,
		ModifyResponse: p.modifyResponse,
	}
	p.isolated = p.isolatedProxy()
	return p
}

// orDefault maps 0 to def and negative values to 0 ("none").
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// CloseIdleConnections closes idle connections to replicas, e.g. on
// shutdown, when the transport supports it.
func (p *Proxy) CloseIdleConnections() {
	p.conns.closeIdle()
	if t, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// call is the state of one invocation. ReverseProxy is shared by all
// requests, so Rewrite, the retrying transport, ModifyResponse and
// ErrorHandler find it in the request context. All of them run on the
// handler's goroutine, so its fields need no synchronisation.
type call struct {
	target
	key         string
	observedKey string // key once the function is known, else ""
	callID      string
	start       time.Time
	startStr    string // start in unix nanoseconds, as sent in X-Start-Time
	eps         []faas.Endpoint
	pick        int    // index in eps of the endpoint in use
	upstream    string // eps[pick].Addr
	code        int    // status sent to the client
	tooLarge    bool   // the request body went over MaxBodyBytes
	// load is the call's hold on the load counts: its function's from the
	// lookup, and eps[pick]'s once picked. The zero value (a call made
	// without a Proxy, in transport tests) counts nowhere.
	load load.Call
}

// timeouter is implemented by resolvers that know per-function timeouts;
// *Cache does.
type timeouter interface {
	Timeouts(key string) faas.Timeouts
}

var _ timeouter = (*Cache)(nil)

type callKey struct{}

// callFrom returns the call stored in ctx by ServeHTTP, or nil.
func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// ref is the function as users write it: "name.namespace".
func (c *call) ref() string { return c.name + "." + c.namespace }

// fields are the logrus fields identifying the call in failure logs.
func (c *call) fields() logrus.Fields {
	return logrus.Fields{
		"function":  c.name,
		"namespace": c.namespace,
		"upstream":  c.upstream,
		"call_id":   c.callID,
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{start: time.Now()}
	if p.observe != nil {
		// Deferred so that it also runs when ReverseProxy aborts a response
		// mid-body with panic(http.ErrAbortHandler).
		defer func() { p.observe(c.observedKey, c.code, time.Since(c.start)) }()
	}
	t, err := parseInvocation(r.URL)
	if err != nil {
		p.fail(w, c, http.StatusNotFound, "function not found: invalid function path")
		return
	}
	c.target = t
	c.key = faas.Key(t.namespace, t.name)
	eps, known := p.resolver.Lookup(c.key)
	if !known {
		p.fail(w, c, http.StatusNotFound, fmt.Sprintf("function %s not found", c.ref()))
		return
	}
	p.begin(c, r.Header.Get(HeaderCallID))
	defer c.load.End()

	if len(eps) == 0 {
		// Nothing ready: the function may be at zero. Ask for it to be
		// woken, then wait as for any replica that is starting. Waking is
		// asked for even when ReadyWait is negative (fail at once): the
		// next call then finds a replica.
		if p.wake != nil {
			p.wake.Wake(c.key)
		}
		if eps, err = p.waitReady(r.Context(), c.key); err != nil {
			p.waitFailed(w, c, err)
			return
		}
	}
	if faas.IsJobRoute(eps) {
		p.serveJob(w, r, c)
		return
	}
	if faas.IsIsolatedRoute(eps) {
		p.serveIsolated(w, r, c)
		return
	}
	p.pickReplica(c, eps)

	if p.maxBody > 0 && r.ContentLength > p.maxBody {
		p.fail(w, c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.maxBody))
		return
	}
	rc := http.NewResponseController(w)
	exec := p.clientDeadlines(rc, c)

	// Without full duplex, a function that answers while still reading a
	// large request body gets its response truncated (golang/go#40747).
	// The error only says the writer can't do it (HTTP/2 always can).
	_ = rc.EnableFullDuplex()
	if p.viaRP || isUpgrade(r) {
		// A protocol switch (WebSocket) is tunnelled by ReverseProxy,
		// which hijacks the client connection and copies both ways.
		if p.maxBody > 0 {
			r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, p.maxBody), c: c}
		}
		ctx, cancel := withExec(r.Context(), exec)
		defer cancel()
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, callKey{}, c)))
		return
	}
	// A request with no body, or one announcing zero bytes, sends none
	// (ReverseProxy drops such a body too).
	var body io.ReadCloser
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = r.Body
		if p.maxBody > 0 {
			// Read by the body writer's goroutine: the 413 is decided
			// from its error, not from a flag on the call.
			body = http.MaxBytesReader(w, body, p.maxBody)
		}
	}
	p.forward(r.Context(), exec, w, rc, r, c, body)
}

// begin starts a call to a known function: it is observed under the
// function's key and counted in its load, the started hook hears of it,
// and it gets its call ID (the client's, or a new one) and start time.
// The caller ends c.load.
func (p *Proxy) begin(c *call, callID string) {
	c.observedKey = c.key
	c.load = p.load.Begin(c.key)
	if p.started != nil {
		p.started(c.key)
	}
	if callID == "" {
		callID = NewCallID()
	}
	c.callID = callID
	c.startStr = strconv.FormatInt(c.start.UnixNano(), 10)
}

// pickReplica chooses the call's replica among eps (not empty), round
// robin per function, and holds it in the call's load until c.load ends
// (after the response is written), so that a replica drained now is
// stopped only after this call has finished.
func (p *Proxy) pickReplica(c *call, eps []faas.Endpoint) {
	c.eps = eps
	c.pick = int((p.counter(c.key).Add(1) - 1) % uint64(len(eps)))
	c.upstream = eps[c.pick].Addr
	c.load.On(eps[c.pick].Replica)
}

// isEndpoint reports whether addr is still a ready endpoint of key, for
// the connection pool's sweep.
func (p *Proxy) isEndpoint(key, addr string) bool {
	eps, _ := p.resolver.Lookup(key)
	for _, ep := range eps {
		if ep.Addr == addr {
			return true
		}
	}
	return false
}

// deadlines applies the function's timeouts to this call: read and write
// deadlines on the client connection, and the exec timeout as a deadline
// on the call to the replica. The write deadline leaves room to send the
// 504 that an exec timeout produces.
func (p *Proxy) deadlines(rc *http.ResponseController, r *http.Request, c *call) (context.Context, context.CancelFunc) {
	return withExec(r.Context(), p.clientDeadlines(rc, c))
}

// withExec is ctx ended by the exec timeout, if there is one.
func withExec(ctx context.Context, exec time.Duration) (context.Context, context.CancelFunc) {
	if exec <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, exec)
}

// clientDeadlines sets the function's read and write deadlines on the
// client connection and returns its exec timeout (0 for none).
func (p *Proxy) clientDeadlines(rc deadliner, c *call) time.Duration {
	var t faas.Timeouts
	if p.timeouts != nil {
		t = p.timeouts.Timeouts(c.key)
	}
	exec := p.timeout
	if t.Exec > 0 {
		exec = t.Exec
	}
	now := time.Now()
	if t.Read > 0 {
		_ = rc.SetReadDeadline(now.Add(t.Read))
	}
	if t.Write > 0 || t.Exec > 0 {
		_ = rc.SetWriteDeadline(now.Add(max(t.Write, exec) + time.Second))
	}
	return max(exec, 0)
}

// deadliner sets a client connection's deadlines: http.ResponseController,
// or a plain call.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// limitedBody notes on the call that the body went over the limit, so the
// error handler answers 413 rather than blaming the function.
type limitedBody struct {
	io.ReadCloser
	c *call
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.c.tooLarge = true
	}
	return n, err
}

// counter returns the round-robin counter of key. The Load fast path is a
// lock-free read once the key has been seen.
func (p *Proxy) counter(key string) *atomic.Uint64 {
	if v, ok := p.rr.Load(key); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := p.rr.LoadOrStore(key, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// waitFailed answers a call whose wait for a ready replica failed.
func (p *Proxy) waitFailed(w http.ResponseWriter, c *call, err error) {
	switch {
	case errors.Is(err, errGone):
		p.fail(w, c, http.StatusNotFound, fmt.Sprintf("function %s not found", c.ref()))
	case errors.Is(err, errNoReady):
		p.log.WithFields(c.fields()).Warn("no ready replica")
		p.fail(w, c, http.StatusServiceUnavailable, fmt.Sprintf("no ready replica for %s", c.ref()))
	default: // the client went away
		p.fail(w, c, StatusClientClosedRequest, "client closed request")
	}
}

// rewrite is the ReverseProxy Rewrite hook: it points the outbound request
// at the chosen replica and adds the OpenFaaS invocation headers.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	c := callFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = c.upstream
	out.URL.Path, out.URL.RawPath = c.path, c.rawPath
	// ReverseProxy drops query parameters it cannot parse, a defence for
	// proxies that route on the query. We don't, and the function must see
	// the query exactly as the client sent it.
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = "" // the Host header names the replica, like any HTTP client's would
	setForwarded(pr)
	out.Header.Set(HeaderCallID, c.callID)
	out.Header.Set(HeaderStartTime, c.startStr)
	// Only a body that might need a second attempt gets the guard; with a
	// single replica there is nowhere to retry.
	if out.Body != nil && out.Body != http.NoBody && len(c.eps) > 1 {
		out.Body = newReplayGuard(out.Body)
	}
}

// setForwarded sets X-Forwarded-For/-Host/-Proto. Rewrite starts from a
// request stripped of them; the client's chain is extended, and a Host or
// scheme reported by an outer proxy is kept because that, not ours, is what
// the end user addressed (the OpenFaaS gateway sets them only if absent).
func setForwarded(pr *httputil.ProxyRequest) {
	in := pr.In.Header
	if prior := in["X-Forwarded-For"]; len(prior) > 0 {
		pr.Out.Header["X-Forwarded-For"] = prior // SetXForwarded replaces, never appends in place
	}
	pr.SetXForwarded()
	if v := in.Get("X-Forwarded-Host"); v != "" {
		pr.Out.Header.Set("X-Forwarded-Host", v)
	}
	if v := in.Get("X-Forwarded-Proto"); v != "" {
		pr.Out.Header.Set("X-Forwarded-Proto", v)
	}
}

// modifyResponse stamps the call headers on the function's response.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	c := callFrom(resp.Request.Context())
	h := resp.Header
	h.Set(HeaderCallID, c.callID)
	h.Set(HeaderStartTime, c.startStr)
	// The watchdog measures the function itself; ours would include the hop.
	if h.Get(HeaderDuration) == "" {
		h.Set(HeaderDuration, formatSeconds(time.Since(c.start)))
	}
	c.code = resp.StatusCode
	return nil
}

// formatSeconds formats d like fmt's %f, as the watchdogs do.
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 6, 64)
}

// handleError is the ReverseProxy ErrorHandler: it maps a failed round trip
// to 499 (client gone), 504 (function too slow) or 502 (anything else).
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	c := callFrom(r.Context())
	if c == nil { // impossible: every request passes through ServeHTTP
		http.Error(w, "upstream error", http.StatusBadGateway)
		return
	}
	p.failUpstream(w, c, r.Context().Err(), err)
}

// failUpstream answers a call that got no answer from its replica; ctxErr
// is the error of the call's context (client gone, or exec timeout).
func (p *Proxy) failUpstream(w http.ResponseWriter, c *call, ctxErr, err error) {
	entry := p.log.WithFields(c.fields()).WithError(err)
	switch {
	case c.tooLarge:
		entry.Info("request body too large")
		p.fail(w, c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.maxBody))
	case errors.Is(ctxErr, context.Canceled):
		entry.Debug("client closed request")
		p.fail(w, c, StatusClientClosedRequest, "client closed request")
	case !isDialError(err) && isTimeout(err):
		entry.Warn("function timed out")
		p.fail(w, c, http.StatusGatewayTimeout, fmt.Sprintf("function %s timed out", c.ref()))
	default:
		entry.Warn("upstream error")
		p.fail(w, c, http.StatusBadGateway, fmt.Sprintf("upstream error for %s", c.ref()))
	}
}

// isTimeout reports whether err is a deadline: the transport's response
// header timeout or a deadline on the request context.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logRetry records a dial failure that is retried on the next replica.
func (p *Proxy) logRetry(c *call, err error) {
	p.log.WithFields(c.fields()).WithError(err).Warn("replica unreachable, retrying on the next one")
}

// HeaderInternal marks an answer the proxy made itself, not the function,
// as faas-provider's proxy does; the async queue retries such a 502 or 503
// whatever the function's retry codes say.
const HeaderInternal = "X-OpenFaaS-Internal"

// fail answers the call with a short plain-text error.
func (p *Proxy) fail(w http.ResponseWriter, c *call, code int, msg string) {
	c.code = code
	w.Header().Set(HeaderInternal, "proxy")
	if c.callID != "" {
		w.Header().Set(HeaderCallID, c.callID)
		w.Header().Set(HeaderStartTime, c.startStr)
	}
	http.Error(w, msg, code)
}

// logWriter turns ReverseProxy's ErrorLog lines (body copy errors and the
// like) into logrus entries.
type logWriter struct{ log logrus.FieldLogger }

func (l logWriter) Write(b []byte) (int, error) {
	l.log.Warn(strings.TrimSpace(string(b)))
	return len(b), nil
}

// bufferPool recycles ReverseProxy's copy buffers, which it would otherwise
// allocate (32 KiB) for every response.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}}}
}

// Get implements httputil.BufferPool.
func (b *bufferPool) Get() []byte { return *b.pool.Get().(*[]byte) }

// Put implements httputil.BufferPool.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	buf = buf[:copyBufferSize]
	b.pool.Put(&buf)
}
