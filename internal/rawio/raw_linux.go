//go:build linux

package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a socket through its syscall.RawConn. The
// functions given to the RawConn are bound once, and the buffer of the
// read or write in progress is passed in fields, so that a call allocates
// nothing.
type rawConn struct {
	c  net.Conn
	rc syscall.RawConn

	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

func newRaw(c net.Conn) (io.ReadWriter, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	r := &rawConn{c: c, rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeAll
	return r, true
}

// Read reads what the socket holds, waiting on the poller while it holds
// nothing; 0 bytes read is io.EOF.
func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	n, rerr := r.rn, r.rerr
	r.rbuf, r.rerr = nil, nil
	if err != nil {
		return 0, r.pollError("read", err)
	}
	return n, rerr
}

func (r *rawConn) readOnce(fd uintptr) bool {
	for {
		n, err := readFD(fd, r.rbuf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false // wait for the poller
		case err != nil:
			r.rerr = r.opError("read", os.NewSyscallError("read", err))
		case n == 0:
			r.rerr = io.EOF
		default:
			r.rn = n
		}
		return true
	}
}

// Write writes all of p, waiting on the poller while the socket's buffer
// is full.
func (r *rawConn) Write(p []byte) (int, error) {
	r.wbuf, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	n, werr := r.wn, r.werr
	r.wbuf, r.werr = nil, nil
	if err != nil {
		return n, r.pollError("write", err)
	}
	return n, werr
}

func (r *rawConn) writeAll(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		n, err := writeFD(fd, r.wbuf[r.wn:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false // wait for the poller
		case err != nil:
			r.werr = r.opError("write", os.NewSyscallError("write", err))
			return true
		}
		r.wn += n
	}
	return true
}

// opError wraps err as net's own Read and Write do.
func (r *rawConn) opError(op string, err error) error {
	oe := &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
	if oe.Source != nil {
		oe.Net = oe.Source.Network()
	}
	return oe
}

// pollError names a RawConn's error (deadline, closed) as Read or Write
// would, not as "raw-read" or "raw-write".
func (r *rawConn) pollError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return r.opError(op, oe.Err)
	}
	return r.opError(op, err)
}

// rawRead and rawWrite are read(2) and write(2) without entering the
// runtime's syscall state: only for non-blocking descriptors.
func rawRead(fd uintptr, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd uintptr, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawPeek is syscallPeek without entering the runtime's syscall state.
func rawPeek(fd uintptr) error {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
