// Command fn-isolated is a test function for the per-request isolation of
// dockerfaasd, and the complete Go example of the socket hand-off protocol
// (docs/handoff.md). It uses the standard library only.
//
// It speaks one of two protocols, chosen at start:
//
//   - Socket hand-off, when /control.sock exists or HANDOFF_SOCKET names a
//     socket path (then it waits up to 10 s for that path to accept): it
//     connects to the control socket (the daemon counts the container ready),
//     receives one connected socket (one message, payload 'H', the fd as
//     SCM_RIGHTS), serves exactly one HTTP/1.1 request on it and exits 0.
//   - HTTP: otherwise it listens on :8080 like any function, with /_/health
//     answering "OK", until SIGTERM.
//
// Every path but /_/health answers JSON:
//
//	{"hostname": "...", "pid": 1, "count": 1, "interfaces": ["lo"],
//	 "protocol": "socket"|"http", "body": "<request body>"}
//
// where count numbers the requests this process has answered (1 for the
// first; health checks are not counted) and interfaces names the network
// interfaces the container sees. /sleep?ms=N waits N ms (at most 10000)
// before answering. Each request is logged as one line on stderr.
//
// It is built by the e2e harness into a FROM scratch image.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// defaultSocket is where the daemon mounts the control socket.
	defaultSocket = "/control.sock"
	// dialRetry and dialWait bound the wait for the control socket: when
	// testing locally the daemon side may not listen yet.
	dialRetry = 10 * time.Millisecond
	dialWait  = 10 * time.Second
	// maxSleep bounds /sleep.
	maxSleep = 10 * time.Second
	// maxBody bounds the request body echoed back.
	maxBody = 10 << 20
)

// reply is the JSON body of every answer but /_/health.
type reply struct {
	Hostname   string   `json:"hostname"`
	PID        int      `json:"pid"`
	Count      int64    `json:"count"`
	Interfaces []string `json:"interfaces"`
	Protocol   string   `json:"protocol"`
	Body       string   `json:"body"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	path, socket := os.LookupEnv("HANDOFF_SOCKET")
	if !socket || path == "" {
		path = defaultSocket
		_, err := os.Stat(path)
		socket = err == nil
	}
	var err error
	if socket {
		err = serveHandOff(ctx, path, handler("socket"))
	} else {
		err = serveHTTP(ctx, handler("http"))
	}
	if err != nil {
		log.Fatalf("fn-isolated: %v", err)
	}
}

// handler answers /_/health with "OK" and everything else with a reply.
func handler(protocol string) http.Handler {
	host, err := os.Hostname()
	if err != nil {
		log.Printf("hostname: %v", err)
	}
	var count atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("/_/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := count.Add(1)
		log.Printf("request %d %s %s %s", n, protocol, r.Method, r.URL.RequestURI())
		if r.URL.Path == "/sleep" {
			ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
			if err != nil || ms < 0 {
				http.Error(w, "ms must be a number of milliseconds", http.StatusBadRequest)
				return
			}
			d := min(time.Duration(ms)*time.Millisecond, maxSleep)
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply{
			Hostname:   host,
			PID:        os.Getpid(),
			Count:      n,
			Interfaces: interfaces(),
			Protocol:   protocol,
			Body:       string(body),
		})
	})
	return mux
}

// interfaces names the network interfaces: only "lo" under --network none.
func interfaces() []string {
	names := []string{}
	ifs, err := net.Interfaces()
	if err != nil {
		log.Printf("interfaces: %v", err)
		return names
	}
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names
}

// serveHTTP is the HTTP protocol: listen on :8080 until SIGTERM.
func serveHTTP(ctx context.Context, h http.Handler) error {
	srv := &http.Server{Addr: ":8080", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("fn-isolated: http protocol, listening on :8080")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveHandOff is the socket hand-off protocol: connect to the control
// socket at path, receive one connection and serve one request on it.
func serveHandOff(ctx context.Context, path string, h http.Handler) error {
	// Connect only now, when ready to serve: the connection is the
	// readiness signal.
	ctrl, err := dialControl(ctx, path)
	if err != nil {
		return err
	}
	defer ctrl.Close()
	log.Printf("fn-isolated: socket protocol, connected to %s", path)

	// SIGTERM while waiting: closing the connection ends the read.
	stopWait := context.AfterFunc(ctx, func() { _ = ctrl.Close() })
	conn, err := receiveConn(ctrl)
	stopWait()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before a call came
		}
		return err
	}

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	// One request: the response says "Connection: close" and the server
	// closes the connection after it.
	srv.SetKeepAlivesEnabled(false)
	stopServe := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stopServe()
	if err := srv.Serve(newOneConn(conn)); err != nil &&
		!errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// dialControl connects to the control socket, retrying while the path does
// not exist yet or refuses connections, for up to dialWait.
func dialControl(ctx context.Context, path string) (*net.UnixConn, error) {
	deadline := time.Now().Add(dialWait)
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	for {
		conn, err := net.DialUnix("unix", nil, addr)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("control socket not accepting after %s: %w", dialWait, err)
		}
		select {
		case <-time.After(dialRetry):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// receiveConn waits for the hand-off: one message whose payload is the
// byte 'H' and whose ancillary data carries one socket (SCM_RIGHTS).
func receiveConn(ctrl *net.UnixConn) (net.Conn, error) {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4)) // room for one fd
	n, oobn, flags, _, err := ctrl.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("waiting for the hand-off: %w", err)
	}
	if n == 0 {
		return nil, errors.New("control connection closed before the hand-off")
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("hand-off control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue // not SCM_RIGHTS
		}
		fds = append(fds, got...)
	}
	if buf[0] != 'H' || len(fds) != 1 || flags&syscall.MSG_CTRUNC != 0 {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
		return nil, fmt.Errorf("unexpected hand-off message: payload %q, %d fds, flags %#x", buf[:n], len(fds), flags)
	}
	f := os.NewFile(uintptr(fds[0]), "call")
	defer f.Close() // FileConn works on a duplicate
	conn, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("hand-off socket: %w", err)
	}
	return conn, nil
}

// oneConn is a net.Listener that yields one connection. Its second Accept
// waits until that connection (or the listener) is closed, then fails, so
// http.Server.Serve returns once the one request has been answered.
type oneConn struct {
	conn net.Conn
	next chan net.Conn
	done chan struct{}
	once sync.Once
}

func newOneConn(c net.Conn) *oneConn {
	l := &oneConn{next: make(chan net.Conn, 1), done: make(chan struct{})}
	l.conn = &closeNotifyConn{Conn: c, onClose: l.finish}
	l.next <- l.conn
	return l
}

func (l *oneConn) finish() { l.once.Do(func() { close(l.done) }) }

func (l *oneConn) Accept() (net.Conn, error) {
	select {
	case c := <-l.next:
		return c, nil
	default:
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { l.finish(); return nil }
func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }

// closeNotifyConn calls onClose after the connection is closed.
type closeNotifyConn struct {
	net.Conn
	onClose func()
}

func (c *closeNotifyConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}
