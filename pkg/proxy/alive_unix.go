//go:build unix

package proxy

import "github.com/dockerfaasd/dockerfaasd/internal/rawio"

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

// peek is alive's look at the socket. Nothing to read is the only healthy
// state: bytes are EOF or a stray answer, any error is fatal.
func (uc *upConn) peek(fd uintptr) bool {
	uc.peekLive = rawio.Idle(fd)
	return true // never wait for readiness
}
