package proxy

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/rawio"
)

// Pool tuning for the forwarding path. The bounds match the transport's
// (see transport.go): functions are few hosts receiving many small calls.
const (
	// sweepInterval is how often idle connections are checked for their
	// idle timeout and for a replica that left its function's endpoints.
	sweepInterval = 2 * time.Second
	// connBufferSize sizes each connection's reader and writer: the
	// request head and a small answer fit in one syscall each.
	connBufferSize = 4 << 10
)

// upConn is one persistent HTTP/1.1 connection to a replica. It is used by
// one call at a time: the pool hands it out and takes it back.
type upConn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	reused bool      // it served a call before this one
	idle   time.Time // when it was put back

	// For alive: the socket and a peek function bound once, so that the
	// check allocates nothing per call.
	raw      syscall.RawConn
	peekFn   func(fd uintptr) bool
	peekLive bool
	// abortFn ends what a call is doing on the connection (a past
	// deadline): the cancellation hook, bound once.
	abortFn func()

	// The exec timeout of the call using the connection: one timer for
	// the connection's life, re-armed per call, which ends the call by
	// setting a past deadline (cheaper than a context with a timer per
	// call). A connection whose timer fired is never reused.
	execTimer *time.Timer
	execArmed bool
	expired   atomic.Bool
}

// armExec starts the exec timeout of a call on uc.
func (uc *upConn) armExec(d time.Duration) {
	uc.execArmed = true
	if uc.execTimer == nil {
		uc.execTimer = time.AfterFunc(d, uc.expire)
		return
	}
	uc.execTimer.Reset(d)
}

// expire ends the call in progress: its reads and writes fail at once.
func (uc *upConn) expire() {
	uc.expired.Store(true)
	_ = uc.conn.SetDeadline(aLongTimeAgo)
}

// disarmExec stops the exec timeout and reports whether the connection
// is untouched by it (false once it fired: the deadline is poisoned).
func (uc *upConn) disarmExec() bool {
	if !uc.execArmed {
		return !uc.expired.Load()
	}
	uc.execArmed = false
	return uc.execTimer.Stop()
}

// connPool keeps idle connections per replica address, so that a call
// finds a connection without a dial and without the goroutine hand-offs of
// http.Transport (which runs a reader and a writer goroutine per
// connection). Only idle connections are pooled and bounded; a call that
// finds none dials a new one, as http.Transport does.
type connPool struct {
	dialer      net.Dialer
	maxIdle     int           // per replica
	idleTimeout time.Duration // an idle connection older than this is closed
	// present reports whether addr is still an endpoint of key; idle
	// connections of a replica that left are closed by the sweep.
	present func(key, addr string) bool

	mu    sync.Mutex
	hosts map[string]*hostConns
	sweep *time.Timer // armed while any connection is idle
}

// hostConns are the idle connections of one replica, most recent last.
type hostConns struct {
	key  string // a function key the replica serves, for the sweep
	idle []*upConn
}

func newConnPool(present func(key, addr string) bool) *connPool {
	return &connPool{
		dialer:      net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive},
		maxIdle:     maxIdleConnsPerHost,
		idleTimeout: idleConnTimeout,
		present:     present,
		hosts:       map[string]*hostConns{},
	}
}

// get returns an idle connection to addr that the peer has not closed, or
// dials a new one, giving up on the dial at by (if not zero). A dial
// error is returned as the dialer's *net.OpError.
func (p *connPool) get(ctx context.Context, by time.Time, addr string) (*upConn, error) {
	for {
		p.mu.Lock()
		h := p.hosts[addr]
		var uc *upConn
		if h != nil && len(h.idle) > 0 {
			uc = h.idle[len(h.idle)-1]
			h.idle[len(h.idle)-1] = nil
			h.idle = h.idle[:len(h.idle)-1]
		}
		p.mu.Unlock()
		if uc == nil {
			break
		}
		// The replica may have closed it while idle (its server's idle
		// timeout, or a restart); http.Transport learns that from its
		// background reader, we ask the socket. Every time, even right
		// after the last call: a server shutting down gracefully (a
		// replica being replaced) closes its idle connections at once.
		if uc.alive() {
			uc.reused = true
			return uc, nil
		}
		_ = uc.conn.Close()
	}
	return p.dial(ctx, by, addr)
}

// dial opens a new connection to addr, giving up at by (if not zero).
func (p *connPool) dial(ctx context.Context, by time.Time, addr string) (*upConn, error) {
	d := p.dialer
	d.Deadline = by
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Bytes of calls move with raw system calls where they can (see
	// rawio); deadlines, the idle check and Close use conn.
	rw := rawio.New(conn)
	uc := &upConn{
		conn: conn,
		br:   bufio.NewReaderSize(rw, connBufferSize),
		bw:   bufio.NewWriterSize(rw, connBufferSize),
		addr: addr,
	}
	if sc, ok := conn.(syscall.Conn); ok {
		uc.raw, _ = sc.SyscallConn()
	}
	uc.peekFn = uc.peek
	uc.abortFn = func() { _ = conn.SetDeadline(aLongTimeAgo) }
	return uc, nil
}

// put gives back a connection that finished a call cleanly; key is the
// function it served. Beyond the per-replica bound it is closed.
func (p *connPool) put(key string, uc *upConn) {
	uc.idle = time.Now()
	p.mu.Lock()
	h := p.hosts[uc.addr]
	if h == nil {
		h = &hostConns{key: key}
		p.hosts[uc.addr] = h
	}
	if len(h.idle) >= p.maxIdle {
		p.mu.Unlock()
		_ = uc.conn.Close()
		return
	}
	h.idle = append(h.idle, uc)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(sweepInterval, p.sweepIdle)
	}
	p.mu.Unlock()
}

// sweepIdle closes idle connections past the idle timeout or to replicas
// that are no longer endpoints of their function, and re-arms itself
// while any connection stays idle.
func (p *connPool) sweepIdle() {
	var closing []*upConn
	cutoff := time.Now().Add(-p.idleTimeout)
	p.mu.Lock()
	for addr, h := range p.hosts {
		if p.present != nil && !p.present(h.key, addr) {
			closing = append(closing, h.idle...)
			delete(p.hosts, addr)
			continue
		}
		// Oldest first: drop the prefix that timed out.
		n := 0
		for n < len(h.idle) && h.idle[n].idle.Before(cutoff) {
			n++
		}
		if n > 0 {
			closing = append(closing, h.idle[:n]...)
			h.idle = append(h.idle[:0], h.idle[n:]...)
		}
		if len(h.idle) == 0 {
			delete(p.hosts, addr)
		}
	}
	if len(p.hosts) > 0 {
		p.sweep.Reset(sweepInterval)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, uc := range closing {
		_ = uc.conn.Close()
	}
}

// closeIdle closes every idle connection, e.g. on shutdown.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	hosts := p.hosts
	p.hosts = map[string]*hostConns{}
	p.mu.Unlock()
	for _, h := range hosts {
		for _, uc := range h.idle {
			_ = uc.conn.Close()
		}
	}
}

// idleCount is the number of idle connections to addr (for tests).
func (p *connPool) idleCount(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.hosts[addr]; h != nil {
		return len(h.idle)
	}
	return 0
}
