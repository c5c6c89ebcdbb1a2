// Package handoff is the daemon side of the socket hand-off protocol of
// per-request isolation (see docs/handoff.md).
//
// A pooled function container runs without a network and with a Unix
// socket bind-mounted at /control.sock. Its handler connects to that socket
// when it is ready to serve: the accepted connection (a Control) is the
// readiness signal. For a call, the daemon creates a connected stream socket
// pair and passes one end to the container over the control connection
// (SCM_RIGHTS, one message whose payload is the byte 'H'); it then speaks
// HTTP/1.1 on the other end. The container serves that one request and may
// exit; the daemon removes it afterwards in any case.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrGone is wrapped by HandOff when the container's side of the control
// connection is closed: the container exited or died before its call.
var ErrGone = errors.New("handoff: container's control connection is gone")

// payload is the one byte sent with the file descriptor.
const payload = 'H'

// maxPathLen is the longest socket path the kernel accepts: sun_path less
// its terminating NUL (107 bytes on Linux).
var maxPathLen = len(syscall.RawSockaddrUnix{}.Path) - 1

// sendTimeout bounds the one sendmsg of HandOff. It never waits in practice
// (one byte into an empty buffer) but a wedged peer must not hang a call.
const sendTimeout = 5 * time.Second

// longAgo is a deadline in the past: it wakes a blocked Accept.
var longAgo = time.Unix(1, 0)

// Listener is the control socket of one pooled container.
type Listener struct {
	path string
	ln   *net.UnixListener

	mu        sync.Mutex
	accepting bool // an Accept is waiting
	accepted  bool // the control connection was accepted; ln is closed
	closed    bool
}

// Listen creates the control socket of one pooled container at path,
// replacing a stale socket file left there (a daemon restart leaves them).
// The socket's mode is 0666 so that a handler running as any user can
// connect. path must fit the kernel's socket address (107 bytes on Linux).
func Listen(path string) (*Listener, error) {
	if path == "" {
		return nil, errors.New("handoff: empty control socket path")
	}
	if len(path) > maxPathLen {
		return nil, fmt.Errorf("handoff: control socket path %q is %d bytes, over the %d-byte limit of a Unix socket address: use a shorter directory",
			path, len(path), maxPathLen)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handoff: listen on %s: %w", path, err)
	}
	// The file outlives the listening socket: Accept closes the socket after
	// the first connection (later ones are refused) and Close removes the file.
	ln.SetUnlinkOnClose(false)
	// Not through the umask: the handler may run as any user.
	if err := os.Chmod(path, 0o666); err != nil {
		_ = ln.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("handoff: chmod control socket %s: %w", path, err)
	}
	return &Listener{path: path, ln: ln}, nil
}

// removeStale removes a socket file at path. Anything else there is an
// error: a path that collides with a real file is a configuration bug, and
// the file may not be ours to delete.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("handoff: control socket path %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("handoff: control socket path %s exists and is not a socket (%s)", path, fi.Mode().Type())
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("handoff: removing stale control socket %s: %w", path, err)
	}
	return nil
}

// Path is the socket file's path, the one to bind-mount into the container.
func (l *Listener) Path() string { return l.path }

// Accept waits for the container's control connection. Only the first one
// is accepted: the listening socket is closed then, so later connections are
// refused (and any already queued are reset). ctx bounds the wait; when it
// ends, Accept returns ctx.Err() wrapped. Accept may be called again after a
// ctx end, but not concurrently, and not after it succeeded.
func (l *Listener) Accept(ctx context.Context) (*Control, error) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, fmt.Errorf("handoff: accept on %s: %w", l.path, net.ErrClosed)
	case l.accepted:
		l.mu.Unlock()
		return nil, fmt.Errorf("handoff: accept on %s: control connection already accepted", l.path)
	case l.accepting:
		l.mu.Unlock()
		return nil, fmt.Errorf("handoff: accept on %s: another Accept is waiting", l.path)
	}
	l.accepting = true
	l.mu.Unlock()

	conn, err := l.acceptUnix(ctx)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepting = false
	if err == nil && l.closed { // Close won the race: the file is gone
		_ = conn.Close()
		err = net.ErrClosed
	}
	if err != nil {
		if l.closed {
			return nil, fmt.Errorf("handoff: accept on %s: %w", l.path, net.ErrClosed)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("handoff: waiting for the control connection on %s: %w", l.path, ctxErr)
		}
		return nil, fmt.Errorf("handoff: accept on %s: %w", l.path, err)
	}
	l.accepted = true
	_ = l.ln.Close()
	return newControl(conn), nil
}

// acceptUnix is AcceptUnix bounded by ctx: a ctx end moves the listener's
// deadline to the past, which wakes the blocked accept.
func (l *Listener) acceptUnix(ctx context.Context) (*net.UnixConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Clear the deadline an earlier, cancelled Accept left behind.
	if err := l.ln.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = l.ln.SetDeadline(longAgo) })
	defer stop()
	return l.ln.AcceptUnix()
}

// Close stops listening and removes the socket file. It is safe to call
// more than once and concurrently with Accept, which then returns an error.
// It does not close an accepted Control.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if !l.accepted {
		_ = l.ln.Close() // wakes a waiting Accept
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("handoff: removing control socket %s: %w", l.path, err)
	}
	return nil
}

// Control is an accepted control connection: one container that is ready
// to take one call.
type Control struct {
	conn   *net.UnixConn
	closed chan struct{} // closed by watch when the connection ends

	mu        sync.Mutex
	handedOff bool
	closing   bool // Close was called
}

func newControl(conn *net.UnixConn) *Control {
	c := &Control{conn: conn, closed: make(chan struct{})}
	go c.watch()
	return c
}

// watch reads the control connection until it ends. The container sends
// nothing, so the read returns only on EOF (the container closed it,
// exited or died) or an error (including our own Close).
func (c *Control) watch() {
	defer close(c.closed)
	_, _ = io.Copy(io.Discard, c.conn)
}

// HandOff makes a connected stream socket pair, sends one end to the
// container (SCM_RIGHTS, payload "H"), closes the daemon's copy of that end
// and returns the other end, on which the caller writes one HTTP/1.1
// request and reads its response. It may be called once; a second call is
// an error. When the container's control connection is gone the error wraps
// ErrGone.
func (c *Control) HandOff() (net.Conn, error) {
	c.mu.Lock()
	switch {
	case c.closing:
		c.mu.Unlock()
		return nil, fmt.Errorf("handoff: hand-off on a closed control connection: %w", net.ErrClosed)
	case c.handedOff:
		c.mu.Unlock()
		return nil, errors.New("handoff: the container already had its hand-off")
	}
	c.handedOff = true
	c.mu.Unlock()

	select {
	case <-c.closed:
		return nil, ErrGone
	default:
	}

	ours, theirs, err := socketPair()
	if err != nil {
		return nil, err
	}
	// The container holds its own reference once sendmsg returns (or it
	// failed): close ours either way, so the container's exit is the
	// daemon's EOF.
	err = c.send(theirs)
	_ = syscall.Close(theirs)
	if err != nil {
		_ = syscall.Close(ours)
		return nil, err
	}
	conn, err := fdConn(ours)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// send passes fd to the container in one message whose payload is the byte 'H'.
func (c *Control) send(fd int) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	defer func() { _ = c.conn.SetWriteDeadline(time.Time{}) }()
	n, oobn, err := c.conn.WriteMsgUnix([]byte{payload}, syscall.UnixRights(fd), nil)
	if err != nil {
		if isGone(err) {
			return fmt.Errorf("%w: %w", ErrGone, err)
		}
		return fmt.Errorf("handoff: sending the socket: %w", err)
	}
	if n != 1 || oobn == 0 {
		return fmt.Errorf("handoff: sending the socket: short write (%d bytes, %d of control data)", n, oobn)
	}
	return nil
}

// isGone tells whether a send failed because the peer is no longer there.
func isGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOTCONN)
}

// socketPair returns a connected pair of close-on-exec stream sockets.
// SOCK_CLOEXEC is Linux-only; ForkLock closes the window in which a
// concurrent fork+exec could inherit the fds (as package net does).
func socketPair() (int, int, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, -1, fmt.Errorf("handoff: socketpair: %w", os.NewSyscallError("socketpair", err))
	}
	return fds[0], fds[1], nil
}

// fdConn makes fd a *net.UnixConn (on the runtime poller, so deadlines and
// http.Transport work) and closes fd: net.FileConn works on a duplicate.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "handoff")
	defer f.Close()
	conn, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("handoff: socket of the call: %w", err)
	}
	return conn, nil
}

// Closed is closed once the control connection has ended: the container
// closed its side (it exited or died), or Close was called.
func (c *Control) Closed() <-chan struct{} { return c.closed }

// Close closes the control connection. It is safe to call more than once.
// It does not close a connection HandOff returned.
func (c *Control) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	c.closing = true
	if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("handoff: closing the control connection: %w", err)
	}
	return nil
}
