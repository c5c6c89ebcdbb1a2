//go:build unix

package rawio

import "syscall"

// Idle reports whether the socket fd is a healthy idle connection: nothing
// to read, no end, no error. It peeks without blocking: one system call
// (raw where New's reads and writes are).
func Idle(fd uintptr) bool {
	return peekFD(fd) == syscall.EAGAIN
}

// syscallPeek is Idle's look through package syscall: nil when there are
// bytes or an end to read.
func syscallPeek(fd uintptr) error {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
