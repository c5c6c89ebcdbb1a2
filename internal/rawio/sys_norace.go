//go:build linux && !race

package rawio

// readFD, writeFD and peekFD are the raw system calls.
var (
	readFD  = rawRead
	writeFD = rawWrite
	peekFD  = rawPeek
)
