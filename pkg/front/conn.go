package front

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/rawio"
)

const (
	stateActive int32 = iota
	stateIdle
)

// headMax is the largest request head the loop reads itself; a larger one
// goes to net/http (which allows up to MaxHeaderBytes).
const headMax = 8 << 10

// watchAfter is how long a call runs before the loop starts watching its
// connection for the client going away. Watching costs a goroutine and a
// read, which most calls finish well before needing.
const watchAfter = 50 * time.Millisecond

// discardMax is how much of a request body the handler left unread is
// read and thrown away to keep the connection, as net/http does.
const discardMax = 256 << 10

var bufPool = sync.Pool{New: func() any { return new(connBufs) }}

// connBufs are a connection's buffers, pooled across connections.
type connBufs struct {
	r *bufio.Reader
	w *bufio.Writer
	// body holds the answer's first bytes until its length is known.
	body []byte
}

// conn is one client connection served by the loop.
type conn struct {
	s      *Server
	nc     net.Conn
	rw     io.ReadWriter // nc's bytes (rawio)
	remote string
	state  atomic.Int32
	cr     connReader
	bufs   *connBufs
	pc     PlainCall // the plain call in progress, reused
	ctx    context.Context
	// The answer's fields and their copy at WriteHeader, reused call
	// after call.
	header, sent http.Header

	// The watch for the client going away during a long call.
	timer     *time.Timer
	mu        sync.Mutex
	reqCancel func()
	reqDone   bool // the handler has returned
	canWatch  bool // nothing of the request is left to read
	fired     bool // watchAfter has passed
	watching  bool
	aborting  bool
	gone      bool // the client closed or reset the connection
	watchDone chan struct{}
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	// Bytes of calls move with raw system calls where they can (see
	// rawio); the watch, deadlines and Close use nc.
	c.rw = rawio.New(nc)
	c.cr.rw = c.rw
	// Not cancellable: a request's context is cancelled by the loop itself
	// (client gone, handler done), and a parent that cannot be cancelled
	// spares each request's context registering with it.
	c.ctx = context.WithValue(s.base, http.LocalAddrContextKey, nc.LocalAddr())
	if s.srv.ConnContext != nil {
		if c.ctx = s.srv.ConnContext(c.ctx, nc); c.ctx == nil {
			panic("front: ConnContext returned nil")
		}
	}
	c.timer = time.AfterFunc(time.Hour, c.watchFired)
	c.timer.Stop()
	return c
}

// connReader reads the connection, first giving back the byte the watch
// read, if any.
type connReader struct {
	rw      io.Reader
	pending bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.pending && len(p) > 0 {
		r.pending = false
		p[0] = r.b[0]
		return 1, nil
	}
	return r.rw.Read(p)
}

func (c *conn) serve() {
	handedOver := false
	defer func() {
		c.timer.Stop()
		c.s.forget(c)
		if c.bufs != nil {
			c.bufs.r.Reset(nil)
			c.bufs.w.Reset(nil)
			bufPool.Put(c.bufs)
		}
		if !handedOver {
			_ = c.nc.Close()
		}
	}()
	c.bufs = bufPool.Get().(*connBufs)
	if c.bufs.r == nil {
		c.bufs.r = bufio.NewReaderSize(&c.cr, headMax)
		c.bufs.w = bufio.NewWriterSize(c.rw, 4<<10)
	} else {
		c.bufs.r.Reset(&c.cr)
		c.bufs.w.Reset(c.rw)
	}
	br := c.bufs.r
	srv := c.s.srv
	for first := true; ; first = false {
		if br.Buffered() == 0 {
			c.state.Store(stateIdle)
			if c.s.shutdown.Load() {
				return
			}
			// As net/http: a new connection has ReadHeaderTimeout to send
			// its first request, a kept one IdleTimeout for the next.
			idle := srv.IdleTimeout
			if first && srv.ReadHeaderTimeout > 0 {
				idle = srv.ReadHeaderTimeout
			}
			if idle <= 0 {
				idle = srv.ReadTimeout
			}
			if idle > 0 {
				_ = c.nc.SetReadDeadline(time.Now().Add(idle))
			} else {
				_ = c.nc.SetReadDeadline(time.Time{})
			}
			if _, err := br.Peek(1); err != nil {
				return
			}
			c.state.Store(stateActive)
		}
		// Blank lines before a request line are skipped (RFC 9112 2.2),
		// e.g. a CRLF a client sent after a body.
		for range 4 {
			if b, _ := br.Peek(2); len(b) < 2 || b[0] != '\r' || b[1] != '\n' {
				break
			}
			_, _ = br.Discard(2)
		}
		n, err := c.peekHead(br)
		if err != nil {
			return
		}
		if n < 0 {
			handedOver = c.handOver()
			return
		}
		if c.s.plain != nil {
			served, keep := c.servePlain(n)
			if served && !keep {
				return
			}
			if served {
				continue
			}
		}
		head, _ := br.Peek(n)
		req, ok := parseHead(head)
		if !ok || !c.s.fast(req.URL.Path) {
			handedOver = c.handOver()
			return
		}
		_, _ = br.Discard(n)
		if !c.serveRequest(req) {
			return
		}
	}
}

// peekHead returns the length of the request head at the start of br's
// buffer, reading more as needed; -1 if it is larger than the loop takes.
func (c *conn) peekHead(br *bufio.Reader) (int, error) {
	headerDeadline := false
	for {
		b, _ := br.Peek(br.Buffered())
		// A head ends at its first empty line. One ended by a bare LF is
		// net/http's to judge (it accepts it).
		if i := bytes.Index(b, lflf); i >= 0 && !bytes.Contains(b[:i+1], crlfcrlf) {
			return -1, nil
		}
		// So is one whose last field line ends in a bare LF before the
		// CRLF that ends the head.
		if i := bytes.Index(b, lfcrlf); i >= 0 && (i == 0 || b[i-1] != '\r') && !bytes.Contains(b[:i+1], crlfcrlf) {
			return -1, nil
		}
		if i := bytes.Index(b, crlfcrlf); i >= 0 {
			return i + 4, nil
		}
		if len(b) >= headMax {
			return -1, nil
		}
		if !headerDeadline {
			headerDeadline = true
			if t := c.s.srv.ReadHeaderTimeout; t > 0 {
				_ = c.nc.SetReadDeadline(time.Now().Add(t))
			}
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			if len(b) > 0 && !errors.Is(err, io.EOF) && !isTimeout(err) {
				return 0, err
			}
			// A head cut short: net/http says 400 for it, so hand it over
			// only if it has something to judge.
			if len(b) > 0 && !isTimeout(err) {
				return -1, nil
			}
			return 0, err
		}
	}
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
	lfcrlf   = []byte("\n\r\n")
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handedConn is a connection given to net/http: reads start with what the
// loop had buffered and not consumed.
type handedConn struct {
	net.Conn
	r io.Reader
}

func (h *handedConn) Read(p []byte) (int, error) { return h.r.Read(p) }

// CloseWrite keeps net/http's graceful close (a FIN before closing after
// an error answer) working through the wrapper.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handOver gives the connection to net/http's server with every byte not
// yet consumed. Its buffer goes with it, so it is not pooled again.
func (c *conn) handOver() bool {
	if c.s.handed == nil {
		return false
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	br := c.bufs.r
	c.bufs = nil
	c.s.handed.hand(&handedConn{Conn: c.nc, r: br})
	return true
}

// serveRequest runs the handler for req and reports whether the
// connection can carry another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	srv := c.s.srv
	now := time.Now()
	br := c.bufs.r
	if req.ContentLength > 0 {
		if srv.ReadTimeout > 0 {
			_ = c.nc.SetReadDeadline(now.Add(srv.ReadTimeout))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
	}
	if srv.WriteTimeout > 0 {
		_ = c.nc.SetWriteDeadline(now.Add(srv.WriteTimeout))
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	var b *body
	if req.ContentLength > 0 {
		b = &body{r: br, left: req.ContentLength, c: c}
		req.Body = b
	} else {
		req.Body = http.NoBody
	}

	c.mu.Lock()
	c.reqCancel, c.reqDone, c.fired, c.gone = cancel, false, false, false
	c.canWatch = b == nil && br.Buffered() == 0
	c.mu.Unlock()
	c.timer.Reset(watchAfter)

	w := newResponse(c, req, b)
	aborted := c.runHandler(w, req)
	c.endWatch()
	if aborted {
		return false
	}
	// A client gone (or only done sending: a half-close) still gets the
	// answer if it can take it, as from net/http; then the connection ends.
	if err := w.finish(); err != nil || c.gone {
		return false
	}
	if w.closeAfter || w.overrun || req.Close || c.s.shutdown.Load() {
		return false
	}
	if b != nil {
		left, ok := b.unread()
		if left > discardMax || left > 0 && !ok {
			return false
		}
		if _, err := io.CopyN(io.Discard, br, left); err != nil {
			return false
		}
	}
	return true
}

// requestContext is a new request's context and its cancel function.
func (c *conn) requestContext() (context.Context, func()) {
	if c.ctx.Done() == nil {
		ctx := newCallCtx(c.ctx)
		return ctx, ctx.cancel
	}
	return context.WithCancel(c.ctx) // follows a cancellable BaseContext
}

// runHandler calls the handler, turning a panic into a closed connection
// as net/http does (silently for http.ErrAbortHandler).
func (c *conn) runHandler(w *response, req *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = true
			if v == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log.WithFields(map[string]any{"remote": c.remote, "path": req.URL.Path, "panic": v}).
				Errorf("handler panicked\n%s", buf)
		}
	}()
	c.s.handler.ServeHTTP(w, req)
	return false
}

// watchFired runs watchAfter into a call: from now on a closed client
// connection cancels the call, as net/http's background read does.
func (c *conn) watchFired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fired = true
	c.startWatchLocked()
}

// bodyDone is called when the request body has been read to its end.
func (c *conn) bodyDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bufs != nil && c.bufs.r.Buffered() > 0 {
		return // pipelined bytes: no close can be seen behind them
	}
	c.canWatch = true
	if c.fired {
		c.startWatchLocked()
	}
}

func (c *conn) startWatchLocked() {
	if c.reqDone || c.watching || !c.canWatch {
		return
	}
	c.watching = true
	c.watchDone = make(chan struct{})
	// Cleared here, under the lock, so that endWatch's abort (a past
	// deadline set after it sees watching) cannot be undone by the watch.
	_ = c.nc.SetReadDeadline(time.Time{})
	go c.watch()
}

// watch reads one byte: an error means the client went away (unless the
// loop is aborting the read), a byte is the next request, kept for it.
func (c *conn) watch() {
	defer close(c.watchDone)
	n, err := c.nc.Read(c.cr.b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.cr.pending = true
	}
	if err != nil && !c.aborting && !isTimeout(err) {
		c.gone = true
		c.reqCancel()
	}
}

// endWatch stops the watch once the handler has returned.
func (c *conn) endWatch() {
	c.timer.Stop()
	c.mu.Lock()
	c.reqDone = true
	watching := c.watching
	c.aborting = watching
	c.mu.Unlock()
	if !watching {
		return
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	c.mu.Lock()
	c.watching, c.aborting = false, false
	c.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// body is a request body of known length read from the connection. A
// handler may read it on one goroutine and close it on another (as the
// proxy's body writer does), hence the lock.
type body struct {
	mu     sync.Mutex
	r      *bufio.Reader
	left   int64
	c      *conn
	err    error
	closed bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.c.bodyDone()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// unread is how much of the body is left and whether it can still be read.
func (b *body) unread() (left int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.left, b.err == nil
}

// parseURL is url.ParseRequestURI for the origin form the loop accepts.
func parseURL(target string) (*url.URL, bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return nil, false
	}
	return u, true
}
