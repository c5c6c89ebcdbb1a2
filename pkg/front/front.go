// Package front serves plain HTTP/1.1 connections with a loop of its own
// for the requests that must be fast (function calls), and hands every
// other connection to net/http's server.
//
// net/http's server costs a function call more CPU than the proxy hop
// behind it: a background reader goroutine per request, its response
// machinery and the goroutine wake-ups both cause (docs/data-plane.md).
// The loop here reads a request head straight from the connection's
// buffer, runs the same http.Handler with a lean ResponseWriter, and
// writes the answer with one buffered write. Anything it does not serve
// itself (another path, a head it would have to judge, chunked or
// Expect: 100-continue uploads, upgrades, HTTP/1.0) is handed over at the
// request boundary, unread bytes included, so net/http answers exactly
// as before.
//
// What a client can tell apart from net/http's server (front_test.go
// compares the two answer by answer): http.Server.SetKeepAlivesEnabled
// is not seen (it has no getter); a request body the handler closed
// unread is dropped only up to 256 KiB (net/http reads all of it) and the
// connection closed beyond that; the loop has no Hijack (upgrades go to
// net/http) and speaks no HTTP/2.
package front

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Server is the front loop for one listener.
type Server struct {
	srv     *http.Server
	handler http.Handler
	fast    func(path string) bool
	plain   PlainServer // nil: every call goes through handler
	log     logrus.FieldLogger

	handed *connListener
	base   context.Context

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	shutdown atomic.Bool
}

// New returns a front for srv: requests whose path fast accepts are
// served by the loop with handler (which must answer them as srv.Handler
// would; nil means srv.Handler) and srv's timeouts, every other
// connection by srv itself.
func New(srv *http.Server, handler http.Handler, fast func(path string) bool, log logrus.FieldLogger) *Server {
	if handler == nil {
		handler = srv.Handler
	}
	if handler == nil {
		handler = http.DefaultServeMux
	}
	return &Server{srv: srv, handler: handler, fast: fast, log: log, conns: map[*conn]struct{}{}}
}

// ServePlain has the loop offer plain calls (see PlainCall) to ps before
// the handler. Call it before Serve.
func (s *Server) ServePlain(ps PlainServer) { s.plain = ps }

// FunctionCalls is the fast set of the daemon: synchronous function
// calls, /function/NAME and below, NAME not empty (the router's pattern).
func FunctionCalls(path string) bool {
	const prefix = "/function/"
	return len(path) > len(prefix) && path[:len(prefix)] == prefix && path[len(prefix)] != '/'
}

// Serve accepts connections on ln until Shutdown, like http.Server.Serve.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handed = newConnListener(ln.Addr())
	base := context.Background()
	if s.srv.BaseContext != nil {
		if base = s.srv.BaseContext(ln); base == nil {
			s.mu.Unlock()
			panic("front: BaseContext returned nil")
		}
	}
	s.base = context.WithValue(base, http.ServerContextKey, s.srv)
	s.mu.Unlock()
	fallback := make(chan error, 1)
	go func() { fallback <- s.srv.Serve(s.handed) }()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of descriptors or a transient failure: wait, as
				// net/http does, rather than spin or stop serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.WithError(err).WithField("retry_in", delay).Warn("accept failed")
				time.Sleep(delay)
				continue
			}
			_ = s.handed.Close()
			<-fallback
			return err
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			_ = nc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, waits for the calls
// in progress, then shuts the fallback server down (which runs its
// RegisterOnShutdown hooks).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			_ = c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return nil
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// connListener gives net/http's server the connections the loop hands
// over.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// hand passes c to net/http's server, or closes it once that has stopped.
func (l *connListener) hand(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
