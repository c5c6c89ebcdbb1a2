//go:build unix && !linux

package rawio

var peekFD = syscallPeek
