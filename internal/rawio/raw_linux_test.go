//go:build linux

package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, the first wrapped
// by New.
func pair(t *testing.T) (net.Conn, io.ReadWriter, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	rw := New(c)
	if _, ok := rw.(*rawConn); !ok {
		t.Fatalf("New(%T) = %T, want the raw reader and writer", c, rw)
	}
	return c, rw, peer
}

// TestLargeTransfersBothWays writes more than the socket buffers hold,
// so writes wait on the poller and return partly, and reads find nothing
// now and then.
func TestLargeTransfersBothWays(t *testing.T) {
	_, rw, peer := pair(t)
	out := make([]byte, 8<<20)
	if _, err := rand.Read(out); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(out))))
		got <- b
	}()
	if n, err := rw.Write(out); n != len(out) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(out))
	}
	if b := <-got; !bytes.Equal(b, out) {
		t.Fatalf("the peer read %d bytes, not what was written", len(b))
	}

	go func() { _, _ = peer.Write(out) }()
	in := make([]byte, len(out))
	if _, err := io.ReadFull(rw, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, out) {
		t.Fatal("read back other bytes than the peer wrote")
	}
}

func TestReadEndsAndFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(c, peer net.Conn)
		check func(t *testing.T, n int, err error)
	}{
		{
			name:  "peer closes: EOF",
			setup: func(c, peer net.Conn) { peer.Close() },
			check: func(t *testing.T, n int, err error) {
				if n != 0 || err != io.EOF {
					t.Errorf("Read = %d, %v; want 0, EOF", n, err)
				}
			},
		},
		{
			name:  "deadline passes while waiting",
			setup: func(c, peer net.Conn) { _ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) },
			check: func(t *testing.T, n int, err error) {
				var ne net.Error
				if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("Read = %d, %v; want a timeout", n, err)
				}
				var oe *net.OpError
				if !errors.As(err, &oe) || oe.Op != "read" {
					t.Errorf("error %v is not named as net names a read's", err)
				}
			},
		},
		{
			name:  "deadline already passed",
			setup: func(c, peer net.Conn) { _ = c.SetReadDeadline(time.Unix(1, 0)) },
			check: func(t *testing.T, n int, err error) {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("Read = %d, %v; want a timeout", n, err)
				}
			},
		},
		{
			name: "closed while waiting",
			setup: func(c, peer net.Conn) {
				time.AfterFunc(20*time.Millisecond, func() { c.Close() })
			},
			check: func(t *testing.T, n int, err error) {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Read = %d, %v; want net.ErrClosed", n, err)
				}
			},
		},
		{
			name: "peer resets",
			setup: func(c, peer net.Conn) {
				_ = peer.(*net.TCPConn).SetLinger(0)
				peer.Close()
			},
			check: func(t *testing.T, n int, err error) {
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("Read = %d, %v; want ECONNRESET", n, err)
				}
			},
		},
		{
			name:  "bytes ready",
			setup: func(c, peer net.Conn) { _, _ = peer.Write([]byte("hello")) },
			check: func(t *testing.T, n int, err error) {
				if n != 5 || err != nil {
					t.Errorf("Read = %d, %v; want 5, nil", n, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rw, peer := pair(t)
			tc.setup(c, peer)
			buf := make([]byte, 64)
			n, err := rw.Read(buf)
			tc.check(t, n, err)
		})
	}
}

func TestWriteFails(t *testing.T) {
	t.Run("peer reset", func(t *testing.T) {
		_, rw, peer := pair(t)
		_ = peer.(*net.TCPConn).SetLinger(0)
		peer.Close()
		var err error
		for i := 0; i < 100 && err == nil; i++ { // the reset arrives after a write or two
			_, err = rw.Write([]byte("x"))
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("Write after a reset: %v; want ECONNRESET or EPIPE", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" {
			t.Errorf("error %v is not named as net names a write's", err)
		}
	})
	t.Run("deadline passes while the buffer is full", func(t *testing.T) {
		c, rw, _ := pair(t)
		_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := rw.Write(make([]byte, 64<<20)) // the peer reads nothing
		if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 64<<20 {
			t.Fatalf("Write = %d, %v; want part written and a timeout", n, err)
		}
	})
}

func TestZeroLengthRead(t *testing.T) {
	_, rw, _ := pair(t)
	if n, err := rw.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func TestNewKeepsConnsWithoutSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rw := New(a); rw != io.ReadWriter(a) {
		t.Fatalf("New(net.Pipe) = %T, want the conn itself", rw)
	}
}

// TestRawSyscalls runs the raw read and write (the ones builds without the
// race detector use) in every build.
func TestRawSyscalls(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	buf := make([]byte, 16)
	if _, err := rawRead(uintptr(fds[0]), buf); err != syscall.EAGAIN {
		t.Fatalf("read of an empty socket: %v, want EAGAIN", err)
	}
	if n, err := rawWrite(uintptr(fds[1]), []byte("ping")); n != 4 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	if n, err := rawRead(uintptr(fds[0]), buf); n != 4 || err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read = %d %q, %v", n, buf[:max(n, 0)], err)
	}
	syscall.Close(fds[1])
	if n, err := rawRead(uintptr(fds[0]), buf); n != 0 || err != nil {
		t.Fatalf("read after the peer closed = %d, %v; want 0, nil", n, err)
	}
	if _, err := rawWrite(^uintptr(0)>>1, buf); err != syscall.EBADF {
		t.Fatalf("write to no descriptor: %v, want EBADF", err)
	}
}

func TestNoAllocationsPerCall(t *testing.T) {
	_, rw, peer := pair(t)
	msg := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 256)
	pbuf := make([]byte, 256)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rw.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, _ := peer.Read(pbuf)
		_, _ = peer.Write(pbuf[:n])
		if _, err := io.ReadFull(rw, buf[:n]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per write and read, want 0", allocs)
	}
}

func TestIdle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(peer net.Conn)
		want  bool
	}{
		{"nothing to read", func(net.Conn) {}, true},
		{"a stray answer", func(peer net.Conn) { _, _ = peer.Write([]byte("HTTP/1.1 200 OK\r\n")) }, false},
		{"peer closed", func(peer net.Conn) { peer.Close() }, false},
		{"peer reset", func(peer net.Conn) { _ = peer.(*net.TCPConn).SetLinger(0); peer.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, peer := pair(t)
			tc.setup(peer)
			time.Sleep(20 * time.Millisecond) // for the bytes, FIN or RST to arrive
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var idle bool
			if err := rc.Control(func(fd uintptr) { idle = Idle(fd) }); err != nil {
				t.Fatal(err)
			}
			if idle != tc.want {
				t.Errorf("Idle = %v, want %v", idle, tc.want)
			}
		})
	}
}

// TestPeeksAgree runs the raw peek and package syscall's on the same
// sockets, in every build.
func TestPeeksAgree(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	check := func(state string, want error) {
		t.Helper()
		if raw, sys := rawPeek(uintptr(fds[0])), syscallPeek(uintptr(fds[0])); raw != want || sys != want {
			t.Errorf("%s: raw peek %v, syscall peek %v; want %v", state, raw, sys, want)
		}
	}
	check("empty", syscall.EAGAIN)
	if _, err := syscall.Write(fds[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	check("a byte pending (peeked, not taken)", nil)
	check("the byte still pending", nil)
	buf := make([]byte, 1)
	_, _ = syscall.Read(fds[0], buf)
	syscall.Close(fds[1])
	check("peer closed", nil)
}
