//go:build !unix

package proxy

// alive cannot peek at the socket on this platform; a closed idle
// connection then fails the call that picks it (retried when it is safe).
func (uc *upConn) alive() bool { return true }

func (uc *upConn) peek(uintptr) bool { return true }
