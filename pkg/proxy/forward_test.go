package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// oneFunction serves h as function "fn" behind a fresh proxy and returns
// the proxy's URL of it, the proxy and the replica's endpoint.
func oneFunction(t *testing.T, h http.Handler, opts Options) (string, *Proxy, faas.Endpoint) {
	t.Helper()
	_, ep := backend(t, h)
	c := NewCache()
	c.Set("openfaas-fn/fn", []faas.Endpoint{ep})
	if opts.Log == nil {
		opts.Log = quietLogger()
	}
	p := New(c, opts)
	return front(t, p) + "/function/fn", p, ep
}

func TestServerSentEventsFlushedPerEvent(t *testing.T) {
	next := make(chan struct{})
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
			_ = http.NewResponseController(w).Flush()
			select { // the next event only once the client saw this one
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	}), Options{})

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		event := readEvent(t, br)
		if want := fmt.Sprintf("id: %d\ndata: event %d\n\n", i, i); event != want {
			t.Fatalf("event %d = %q, want %q", i, event, want)
		}
		next <- struct{}{} // the function is blocked until now: no buffering
	}
}

// readEvent reads one SSE event (up to a blank line) within 10 s.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\n" {
				got <- b.String()
				return
			}
		}
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("event not delivered while the function waits")
		return ""
	}
}

func TestNDJSONStreamedPerLine(t *testing.T) {
	next := make(chan struct{})
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := range 3 {
			fmt.Fprintf(w, "{\"n\":%d}\n", i)
			_ = http.NewResponseController(w).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	}), Options{})
	resp, err := noRedirects.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line := make(chan string, 1)
		go func() { s, _ := br.ReadString('\n'); line <- s }()
		select {
		case s := <-line:
			if want := fmt.Sprintf("{\"n\":%d}\n", i); s != want {
				t.Fatalf("line %d = %q, want %q", i, s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d not delivered while the function waits", i)
		}
		next <- struct{}{}
	}
}

// wsEcho is a minimal WebSocket-style upgrade: after a 101 the replica
// echoes raw bytes, enough to prove both directions are tunnelled.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "want an upgrade", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Call-Id: " + r.Header.Get(HeaderCallID) + "\r\n\r\n")
	_ = brw.Flush()
	buf := make([]byte, 512)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			_, _ = conn.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func TestWebSocketUpgradeTunnelled(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(wsEcho), Options{})
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/function/fn"), "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /function/fn/chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if resp.Header.Get("X-Seen-Call-Id") == "" {
		t.Errorf("the replica saw no X-Call-Id on the upgrade")
	}
	for i := range 3 {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ left, off int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = byte((r.off + int64(i)) % 251)
	}
	r.off += int64(len(p))
	r.left -= int64(len(p))
	return len(p), nil
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestLargeBodiesStreamed(t *testing.T) {
	const size = 64 << 20
	const slack = 16 << 20 // far below the body size: nothing buffers it whole
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, &patternReader{left: size})
	}), Options{})
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{left: size})
	wantSum := fmt.Sprintf("%x", want.Sum(nil))

	tests := []struct {
		name    string
		chunked bool
	}{
		{name: "sized upload"},
		{name: "chunked upload", chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := heapInUse()
			req, _ := http.NewRequest(http.MethodPost, url, &patternReader{left: size})
			if !tt.chunked {
				req.ContentLength = size
			}
			resp, body := do(t, req)
			if resp.StatusCode != 200 || string(body) != fmt.Sprintf("%d %s", size, wantSum) {
				t.Fatalf("status %d, replica got %q, want %d %s", resp.StatusCode, body, size, wantSum)
			}
			if grown := int64(heapInUse()) - int64(before); grown > slack {
				t.Errorf("heap grew by %d bytes for a %d-byte upload", grown, size)
			}
		})
	}
	t.Run("download", func(t *testing.T) {
		before := heapInUse()
		resp, err := noRedirects.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		var peak uint64
		buf := make([]byte, 1<<20)
		var n int64
		for {
			m, err := resp.Body.Read(buf)
			h.Write(buf[:m])
			n += int64(m)
			if n%(16<<20) < int64(m) { // sample the heap a few times mid-body
				peak = max(peak, heapInUse())
			}
			if err != nil {
				break
			}
		}
		if n != size || fmt.Sprintf("%x", h.Sum(nil)) != wantSum {
			t.Fatalf("downloaded %d bytes (sum match %v), want %d", n, fmt.Sprintf("%x", h.Sum(nil)) == wantSum, size)
		}
		if grown := int64(peak) - int64(before); grown > slack {
			t.Errorf("heap grew by %d bytes during a %d-byte download", grown, size)
		}
	})
}

func TestChunkedRequestBody(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%v %d %s", r.TransferEncoding, r.ContentLength, b)
	}), Options{})
	pr, pw := io.Pipe()
	go func() {
		for _, s := range []string{"one ", "two ", "three"} {
			_, _ = io.WriteString(pw, s)
			time.Sleep(10 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, url, pr) // unknown length: chunked
	resp, body := do(t, req)
	if want := "[chunked] -1 one two three"; resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

func TestRequestTrailersPassed(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", b, r.Trailer.Get("X-Sum"))
	}), Options{})
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.ContentLength = -1 // chunked: trailers need it
	req.Trailer = http.Header{"X-Sum": nil}
	req.Body = readerThen{Reader: strings.NewReader("data"), then: func() { req.Trailer.Set("X-Sum", "42") }}
	resp, body := do(t, req)
	if resp.StatusCode != 200 || string(body) != "data 42" {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "data 42")
	}
}

// readerThen calls then when its reader is exhausted, e.g. to fill in
// trailers as a client does once its body is sent.
type readerThen struct {
	io.Reader
	then func()
}

func (r readerThen) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err == io.EOF {
		r.then()
	}
	return n, err
}

func (r readerThen) Close() error { return nil }

func TestExpectContinue(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d", len(b))
	}), Options{})
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/function/fn"), "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := strings.Repeat("x", 100000)
	fmt.Fprintf(conn, "POST /function/fn HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", host, len(body))
	br := bufio.NewReader(conn)
	// The body is sent only after the 100 Continue, as a careful client does.
	interim, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if interim.StatusCode != http.StatusContinue {
		t.Fatalf("first answer %d, want 100", interim.StatusCode)
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != strconv.Itoa(len(body)) {
		t.Fatalf("got %d %q", resp.StatusCode, got)
	}
}

func TestBodylessAnswers(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			if r.Method != http.MethodHead {
				_, _ = io.WriteString(w, "hello")
			}
		}
	}), Options{})
	tests := []struct {
		method, path string
		code         int
		length       string
	}{
		{http.MethodHead, "/", 200, "5"},
		{http.MethodGet, "/204", 204, ""},
		{http.MethodGet, "/304", 304, ""},
		{http.MethodGet, "/", 200, "5"}, // the connection is still in sync
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url+tt.path, nil)
			resp, body := do(t, req)
			if resp.StatusCode != tt.code || len(body) != 0 && tt.method == http.MethodHead {
				t.Fatalf("got %d with %d body bytes, want %d", resp.StatusCode, len(body), tt.code)
			}
			if tt.length != "" && resp.Header.Get("Content-Length") != tt.length {
				t.Errorf("Content-Length %q, want %q", resp.Header.Get("Content-Length"), tt.length)
			}
		})
	}
}

func TestResponseTrailersPassed(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}), Options{})
	resp, body := get(t, url)
	if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("body %q trailer %v", body, resp.Trailer)
	}
}

func TestConnectionsReusedAndRetired(t *testing.T) {
	var conns atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv, ep, c := countingReplica(t, h, &conns)
	p := New(c, Options{Log: quietLogger()})
	base := front(t, p) + "/function/fn"

	for range 20 {
		if resp, body := get(t, base); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential calls used %d connections, want 1", n)
	}
	if resp, _ := get(t, base+"/close"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if n := p.conns.idleCount(ep.Addr); n != 0 {
		t.Errorf("%d idle connections after Connection: close, want 0", n)
	}
	get(t, base)
	if n := conns.Load(); n != 2 {
		t.Errorf("after Connection: close, %d connections in all, want 2", n)
	}

	// The replica closes its idle connections (as a server's idle timeout
	// or graceful shutdown does): the next call finds that out before
	// sending, so even one with a body (never replayed) succeeds.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		req, _ := http.NewRequest(method, base, strings.NewReader("side effect"))
		if resp, body := do(t, req); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("%s after the replica closed idle connections: %d %q", method, resp.StatusCode, body)
		}
	}

	// The replica leaves the endpoint set: the sweep drops its connections.
	c.Set("openfaas-fn/fn", nil)
	p.conns.sweepIdle()
	if n := p.conns.idleCount(ep.Addr); n != 0 {
		t.Errorf("%d idle connections to a replica that left, want 0", n)
	}
}

func TestClientGoneIs499(t *testing.T) {
	entered := make(chan struct{})
	codes := make(chan int, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}), Options{Observe: func(key string, code int, _ time.Duration) { codes <- code }})
	host := strings.TrimPrefix(strings.TrimSuffix(url, "/function/fn"), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /function/fn HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	<-entered
	_ = conn.Close()
	select {
	case code := <-codes:
		if code != StatusClientClosedRequest {
			t.Fatalf("observed %d, want 499", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call not finished after the client left")
	}
}

func TestExecTimeoutMidBodyAborts(t *testing.T) {
	url, _, _ := oneFunction(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "12345")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}), Options{Timeout: 200 * time.Millisecond})
	resp, err := noRedirects.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil || !bytes.Equal(b, []byte("12345")) {
		t.Fatalf("read %q, %v; want the first half and an error", b, err)
	}
}

// TestOptionsTransportKeepsReverseProxyPath: a caller-supplied transport
// is used for every call.
func TestOptionsTransportKeepsReverseProxyPath(t *testing.T) {
	var used atomic.Int32
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	url, _, _ := oneFunction(t, echoHandler("a"), Options{Transport: tr})
	if resp, _ := get(t, url); resp.StatusCode != 200 || used.Load() != 1 {
		t.Fatalf("status %d, transport used %d times", resp.StatusCode, used.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzWriteHead checks that whatever headers a request carries, the head
// written for the replica is one well-formed request that says exactly
// what the client said, plus the proxy's own fields: no header can split
// it or smuggle a field in.
func FuzzWriteHead(f *testing.F) {
	f.Add("X-Thing", "value", "/a/b", "q=1")
	f.Add("X-Evil", "v\r\nX-Injected: 1", "/", "")
	f.Add("Bad Name", "v", "/%2F", "a&b")
	f.Add("X-Call-Id", "client", "/x y", "")
	f.Add("x-call-id", "client", "/", "") // a key middleware set without canonicalising
	f.Add("host", "elsewhere", "/", "")
	f.Fuzz(func(t *testing.T, name, value, path, query string) {
		r := httptest.NewRequest(http.MethodGet, "/function/fn", nil)
		r.Header = http.Header{name: {value}}
		r.URL.RawQuery = query
		c := &call{callID: "id-1", startStr: "1", upstream: "10.0.0.1:8080"}
		c.path = "/" + strings.TrimPrefix(path, "/")
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := writeHead(bw, r, c, false, false); err != nil {
			return // refused: nothing was sent
		}
		_ = bw.Flush()
		head := buf.String()
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			if strings.IndexFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
				return // the query is the client's bytes as is; net/http's server refuses these
			}
			t.Fatalf("unparsable head %q: %v", head, err)
		}
		if got.Header.Get(HeaderCallID) != "id-1" || got.Host != c.upstream {
			t.Fatalf("proxy fields lost: %q", head)
		}
		if got.Header.Get("X-Injected") != "" && name != "X-Injected" {
			t.Fatalf("header injected: %q", head)
		}
	})
}

// TestExecTimeoutOnPooledConnections: the exec timeout is a timer of the
// connection, re-armed per call. A call that ended in time leaves the
// connection usable however long it then stays idle; one that timed out
// gets 504 and its connection is not reused.
func TestExecTimeoutOnPooledConnections(t *testing.T) {
	var conns atomic.Int32
	_, ep, c := countingReplica(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), &conns)
	p := New(c, Options{Log: quietLogger(), Timeout: 150 * time.Millisecond})
	base := front(t, p) + "/function/fn"

	for i := range 2 {
		if resp, body := get(t, base); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("call %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(300 * time.Millisecond) // idle for twice the timeout
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("calls that ended in time used %d connections, want 1", n)
	}
	if resp, _ := get(t, base+"/slow"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow call: %d, want 504", resp.StatusCode)
	}
	if n := p.conns.idleCount(ep.Addr); n != 0 {
		t.Fatalf("%d idle connections after an exec timeout, want 0", n)
	}
	if resp, body := get(t, base); resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("after the timeout: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections in all, want 2 (the timed-out one replaced)", n)
	}
}

// countingReplica serves h as the one replica of openfaas-fn/fn, counting
// the connections it accepts in conns.
func countingReplica(t *testing.T, h http.Handler, conns *atomic.Int32) (*httptest.Server, faas.Endpoint, *Cache) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	ep := faas.Endpoint{Replica: "r1", Addr: srv.Listener.Addr().String()}
	c := NewCache()
	c.Set("openfaas-fn/fn", []faas.Endpoint{ep})
	return srv, ep, c
}
