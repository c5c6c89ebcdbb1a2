package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// wait bounds every wait of these tests.
const wait = 10 * time.Second

// shortDir is a fresh directory whose path leaves room for a socket name
// (t.TempDir embeds the test name and can exceed the 107-byte limit).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ho")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// listen is Listen on a fresh path, closed at the end of the test.
func listen(t *testing.T) *Listener {
	t.Helper()
	l, err := Listen(filepath.Join(shortDir(t), "c.sock"))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// accept is Accept bounded by wait, failing the test on error.
func accept(t *testing.T, l *Listener) *Control {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialControl connects like a container's handler does.
func dialControl(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("dial control socket: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// receive reads the hand-off message from a control connection and returns
// the socket it carried.
func receive(ctrl *net.UnixConn) (net.Conn, error) {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := ctrl.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	if n != 1 || buf[0] != 'H' {
		return nil, fmt.Errorf("payload %q, want \"H\"", buf[:n])
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("%d control messages, want 1", len(msgs))
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		return nil, fmt.Errorf("%d fds, want 1", len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "call")
	defer f.Close()
	return net.FileConn(f)
}

// oneConn is a net.Listener of one connection: its second Accept returns
// once that connection is closed, so http.Server.Serve returns after it.
type oneConn struct {
	conn net.Conn
	done chan struct{}
	once sync.Once
	used bool
}

func newOneConn(c net.Conn) *oneConn {
	l := &oneConn{done: make(chan struct{})}
	l.conn = &notifyConn{Conn: c, onClose: func() { l.once.Do(func() { close(l.done) }) }}
	return l
}

func (l *oneConn) Accept() (net.Conn, error) {
	if !l.used {
		l.used = true
		return l.conn, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }

type notifyConn struct {
	net.Conn
	onClose func()
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}

// echo answers with the method, path and body it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
})

// fakeContainer is a function container's handler in a goroutine: it
// connects to path, waits for its hand-off, serves one HTTP connection on it
// with h, then closes its control connection (it "exits"). Its error, or
// nil, arrives on the returned channel.
func fakeContainer(t *testing.T, path string, h http.Handler) <-chan error {
	t.Helper()
	ctrl := dialControl(t, path)
	errc := make(chan error, 1)
	go func() {
		defer ctrl.Close()
		conn, err := receive(ctrl)
		if err != nil {
			errc <- fmt.Errorf("receive: %w", err)
			return
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: wait}
		if err := srv.Serve(newOneConn(conn)); !errors.Is(err, net.ErrClosed) {
			errc <- fmt.Errorf("serve: %w", err)
			return
		}
		errc <- nil
	}()
	return errc
}

// client is an HTTP client whose only connection is conn.
func client(conn net.Conn) *http.Client {
	var once sync.Once
	return &http.Client{
		Timeout: wait,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				var c net.Conn
				once.Do(func() { c = conn })
				if c == nil {
					return nil, errors.New("the call's connection was used already")
				}
				return c, nil
			},
		},
	}
}

func waitClosed(t *testing.T, c *Control) {
	t.Helper()
	select {
	case <-c.Closed():
	case <-time.After(wait):
		t.Fatal("Closed did not fire")
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, method, path, body string
	}{
		{"get", http.MethodGet, "/", ""},
		{"post with body", http.MethodPost, "/fn/x", "hello"},
		{"large body", http.MethodPut, "/big", strings.Repeat("x", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t)
			errc := fakeContainer(t, l.Path(), echo)
			c := accept(t, l)

			conn, err := c.HandOff()
			if err != nil {
				t.Fatalf("HandOff: %v", err)
			}
			if _, ok := conn.(*net.UnixConn); !ok {
				t.Errorf("HandOff conn is %T, want *net.UnixConn", conn)
			}
			req, err := http.NewRequest(tt.method, "http://fn"+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client(conn).Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if want := tt.method + " " + tt.path + " " + tt.body; resp.StatusCode != http.StatusOK || string(got) != want {
				t.Errorf("response %d %.40q, want 200 %.40q", resp.StatusCode, got, want)
			}
			if err := <-errc; err != nil {
				t.Errorf("container: %v", err)
			}
			waitClosed(t, c)
		})
	}
}

func TestAcceptContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"cancelled before", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t)
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := l.Accept(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Accept = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > wait/2 {
				t.Errorf("Accept returned after %s", d)
			}
			// A later Accept with a live context still works.
			dialControl(t, l.Path())
			accept(t, l)
		})
	}
}

func TestClosedFiresWhenContainerCloses(t *testing.T) {
	l := listen(t)
	ctrl := dialControl(t, l.Path())
	c := accept(t, l)
	select {
	case <-c.Closed():
		t.Fatal("Closed fired while the container is connected")
	case <-time.After(50 * time.Millisecond):
	}
	_ = ctrl.Close()
	waitClosed(t, c)
}

func TestHandOffErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, ctrl *net.UnixConn, c *Control)
		want    error // nil: any error
	}{
		{"container gone, seen", func(t *testing.T, ctrl *net.UnixConn, c *Control) {
			_ = ctrl.Close()
			waitClosed(t, c)
		}, ErrGone},
		{"container gone, not yet seen", func(t *testing.T, ctrl *net.UnixConn, c *Control) {
			_ = ctrl.Close() // the send fails (EPIPE) or watch saw it first
		}, ErrGone},
		{"second hand-off", func(t *testing.T, ctrl *net.UnixConn, c *Control) {
			conn, err := c.HandOff()
			if err != nil {
				t.Fatalf("first HandOff: %v", err)
			}
			_ = conn.Close()
		}, nil},
		{"control closed by daemon", func(t *testing.T, ctrl *net.UnixConn, c *Control) {
			_ = c.Close()
		}, net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t)
			ctrl := dialControl(t, l.Path())
			c := accept(t, l)
			tt.prepare(t, ctrl, c)
			conn, err := c.HandOff()
			if err == nil {
				_ = conn.Close()
				t.Fatal("HandOff succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("HandOff = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLaterConnectionsRefused(t *testing.T) {
	l := listen(t)
	dialControl(t, l.Path())
	accept(t, l)
	if conn, err := net.Dial("unix", l.Path()); err == nil {
		_ = conn.Close()
		t.Fatal("a second control connection was accepted")
	}
	if _, err := os.Lstat(l.Path()); err != nil {
		t.Errorf("socket file gone after Accept: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := l.Accept(ctx); err == nil {
		t.Error("a second Accept succeeded")
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name     string
		accepted bool
	}{
		{"waiting", false},
		{"after accept", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t)
			if tt.accepted {
				dialControl(t, l.Path())
				accept(t, l)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Lstat(l.Path()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket file after Close: %v, want not exist", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if _, err := l.Accept(ctx); err == nil {
				t.Error("Accept after Close succeeded")
			}
		})
	}
}

func TestCloseDuringAccept(t *testing.T) {
	l := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept(ctx)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Accept block (passes without it, too)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = l.Close() })
	}
	wg.Wait()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept = %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Accept still waiting after Close")
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		path    func(dir string) string
		wantErr string
	}{
		{name: "fresh"},
		{name: "stale socket replaced", prepare: func(t *testing.T, path string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			_ = ln.Close()
		}},
		{name: "regular file kept", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "not a socket"},
		{name: "path too long", path: func(dir string) string {
			return filepath.Join(dir, strings.Repeat("s", 120))
		}, wantErr: "limit of a Unix socket address"},
		{name: "longest path", path: func(dir string) string {
			return filepath.Join(dir, strings.Repeat("s", maxPathLen-len(dir)-1))
		}},
		{name: "empty path", path: func(string) string { return "" }, wantErr: "empty"},
		{name: "missing directory", path: func(dir string) string {
			return filepath.Join(dir, "no", "c.sock")
		}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			path := filepath.Join(dir, "c.sock")
			if tt.path != nil {
				path = tt.path(dir)
			}
			if tt.prepare != nil {
				tt.prepare(t, path)
			}
			l, err := Listen(path)
			if tt.wantErr != "" {
				if err == nil {
					_ = l.Close()
					t.Fatalf("Listen(%q) succeeded, want error %q", path, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Listen = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()
			if l.Path() != path {
				t.Errorf("Path = %q, want %q", l.Path(), path)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o666 {
				t.Errorf("socket file mode %s, want socket 0666", fi.Mode())
			}
			dialControl(t, path)
			accept(t, l)
		})
	}
}

// TestHandOffDropsDaemonCopy checks that the daemon keeps no copy of the
// container's end: when the container closes it, the daemon's end reads
// EOF (with a copy left open, the read would wait forever).
func TestHandOffDropsDaemonCopy(t *testing.T) {
	l := listen(t)
	ctrl := dialControl(t, l.Path())
	c := accept(t, l)
	conn, err := c.HandOff()
	if err != nil {
		t.Fatalf("HandOff: %v", err)
	}
	defer conn.Close()
	theirs, err := receive(ctrl)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	_ = theirs.Close()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
	}
}
