//go:build linux && race

package rawio

import "syscall"

// Under the race detector, reads and writes go through package syscall:
// its annotations order a write to a socket before the read that gets the
// bytes, which tests that talk to themselves over loopback rely on. The
// rest of this package runs as in other builds.
var (
	readFD  = func(fd uintptr, p []byte) (int, error) { return syscall.Read(int(fd), p) }
	writeFD = func(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }
	peekFD  = syscallPeek
)
