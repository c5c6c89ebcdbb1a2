//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// alive reports whether an idle connection is still usable: the peer has
// not closed it and sent nothing unasked. It peeks without blocking, one
// syscall, instead of keeping a reader goroutine per idle connection as
// http.Transport does.
func (uc *upConn) alive() bool {
	if uc.raw == nil {
		return true
	}
	uc.peekLive = false
	if err := uc.raw.Read(uc.peekFn); err != nil {
		return false
	}
	return uc.peekLive
}

// peek is alive's look at the socket.
func (uc *upConn) peek(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Nothing to read is the only healthy state: no error is EOF or a
	// stray answer, any other error is fatal.
	uc.peekLive = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
	return true // never wait for readiness
}
