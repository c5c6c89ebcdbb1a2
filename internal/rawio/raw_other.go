//go:build !linux

package rawio

import (
	"io"
	"net"
)

func newRaw(net.Conn) (io.ReadWriter, bool) { return nil, false }
