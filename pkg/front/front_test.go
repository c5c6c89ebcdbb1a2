// Differential tests: each case runs the same handler behind net/http's
// server and behind the front loop, sends the same raw bytes to both and
// compares what a client sees. A case with a bug field is a known
// divergence of front and fails until it is fixed.

package front

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// wait bounds every read, write and wait of these tests.
const wait = 5 * time.Second

// getX is the request most cases send.
const getX = "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"

func headX() string { return strings.Replace(getX, "GET", "HEAD", 1) }

func post(path, body string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n", path, len(body))
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

func always(string) bool { return true }

// --- servers -------------------------------------------------------------

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// startStd serves h with net/http's server and returns its address.
func startStd(t *testing.T, h http.Handler, config func(*http.Server)) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if config != nil {
		config(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// frontServer is a running front with what the tests look at.
type frontServer struct {
	*Server
	srv    *http.Server
	addr   string
	served chan error // Serve's result
}

// startFront serves h with the front loop on 127.0.0.1:0; it is shut
// down at the end of the test.
func startFront(t *testing.T, h http.Handler, fast func(string) bool, config func(*http.Server)) *frontServer {
	t.Helper()
	return startFrontPlain(t, h, fast, config, nil)
}

// startFrontPlain is startFront with plain calls offered to plain.
func startFrontPlain(t *testing.T, h http.Handler, fast func(string) bool, config func(*http.Server), plain PlainServer) *frontServer {
	t.Helper()
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	if config != nil {
		config(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &frontServer{Server: New(srv, nil, fast, quietLog()), srv: srv, addr: ln.Addr().String(), served: make(chan error, 1)}
	if plain != nil {
		fs.ServePlain(plain)
	}
	go func() { fs.served <- fs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = fs.Shutdown(ctx)
		select {
		case <-fs.served:
		case <-time.After(wait):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return fs
}

// dial connects to addr; every read and write on the conn is bounded.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// --- what a handler saw ----------------------------------------------------

// notes is what a handler saw and what its calls returned; it is
// compared between the two servers like the answer.
type notes struct {
	mu      sync.Mutex
	lines   []string
	entered atomic.Bool
	once    sync.Once
	done    chan struct{}
}

func newNotes() *notes { return &notes{done: make(chan struct{})} }

func (n *notes) add(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, fmt.Sprintf(format, args...))
}

// collect returns the notes once the handler has returned; none if it
// never ran (its answer came from the server alone).
func (n *notes) collect() []string {
	if !n.entered.Load() {
		return nil
	}
	select {
	case <-n.done:
	case <-time.After(wait):
		n.add("(handler still running)")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.lines)
}

// handlerFunc is a case's handler; it records into n.
type handlerFunc func(n *notes, w http.ResponseWriter, r *http.Request)

// caseHandler answers /probe itself and gives every other request to h.
func caseHandler(h handlerFunc, n *notes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/probe" {
			_, _ = w.Write([]byte("probe"))
			return
		}
		n.entered.Store(true)
		defer n.once.Do(func() { close(n.done) })
		h(n, w, r)
	})
}

// write writes s and notes what Write returned.
func write(n *notes, w http.ResponseWriter, s string) {
	k, err := w.Write([]byte(s))
	n.add("write(%d) = %d, %v", len(s), k, err)
}

func flush(w http.ResponseWriter) { w.(http.Flusher).Flush() }

// --- raw round trip --------------------------------------------------------

// answer is one response head: informational or final.
type answer struct {
	Status string
	Header http.Header
}

// exchange is everything a client can observe of one request.
type exchange struct {
	Answers          []answer // informational answers first, the final one last
	HeadErr          bool     // no final answer could be read
	Body             string
	BodyErr          bool
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Trailer          http.Header
	// Reuse is what the connection did with a next request: served,
	// closed or silent (no answer within a second).
	Reuse string
	Notes []string
}

// roundTrip writes raw on a fresh connection to addr and reads what
// comes back, then probes whether the connection takes another request.
func roundTrip(t *testing.T, addr, raw string, n *notes) exchange {
	t.Helper()
	c := dial(t, addr)
	// Written aside: a server may answer before it reads a large body.
	go func() { _, _ = io.WriteString(c, raw) }()
	br := bufio.NewReader(c)
	req := &http.Request{Method: raw[:max(strings.IndexByte(raw, ' '), 0)]}
	var ex exchange
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			ex.HeadErr = true
			break
		}
		ex.Answers = append(ex.Answers, answer{resp.Status, normHeader(resp.Header)})
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		ex.Body, ex.BodyErr = string(b), err != nil
		ex.ContentLength, ex.Close = resp.ContentLength, resp.Close
		if len(resp.TransferEncoding) > 0 {
			ex.TransferEncoding = resp.TransferEncoding
		}
		if len(resp.Trailer) > 0 {
			ex.Trailer = resp.Trailer
		}
		if !ex.BodyErr {
			ex.Reuse = probe(c, br)
		}
		break
	}
	if n != nil {
		ex.Notes = n.collect()
	}
	return ex
}

// probe sends a next request on c and says what became of it.
func probe(c net.Conn, br *bufio.Reader) string {
	if _, err := io.WriteString(c, "GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"); err != nil {
		return "closed"
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	defer func() { _ = c.SetReadDeadline(time.Now().Add(wait)) }()
	resp, err := http.ReadResponse(br, nil)
	switch {
	case isTimeout(err):
		return "silent"
	case err != nil:
		return "closed"
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "probe" {
		return fmt.Sprintf("garbled (%q, %v)", b, err)
	}
	return "served"
}

// normHeader drops an empty header and replaces a current Date (which
// differs between two answers) by a marker; a Date the handler set is
// kept.
func normHeader(h http.Header) http.Header {
	if len(h) == 0 {
		return nil
	}
	h = h.Clone()
	if d, err := http.ParseTime(h.Get("Date")); err == nil && time.Since(d).Abs() < time.Minute {
		h["Date"] = []string{"(now)"}
	}
	return h
}

// diffExchange lists the fields in which two exchanges differ.
func diffExchange(std, fr exchange) string {
	var b strings.Builder
	vs, vf := reflect.ValueOf(std), reflect.ValueOf(fr)
	for i := range vs.NumField() {
		if !reflect.DeepEqual(vs.Field(i).Interface(), vf.Field(i).Interface()) {
			fmt.Fprintf(&b, "  %s:\n    net/http: %#v\n    front:    %#v\n", vs.Type().Field(i).Name,
				vs.Field(i).Interface(), vf.Field(i).Interface())
		}
	}
	return b.String()
}

// diffCase is one request answered by both servers with the same handler.
type diffCase struct {
	name    string
	raw     string // request bytes; getX when empty
	handler handlerFunc
	config  func(*http.Server)
	// bug, when set, describes a known divergence of front; the case
	// still asserts net/http's behaviour, so it fails until fixed.
	bug string
	// differs, when set, says why front answers otherwise on purpose;
	// check then asserts front's answer instead of equality.
	differs string
	check   func(t *testing.T, std, fr exchange)
}

// runBoth sends c.raw to net/http's server and to front (fast path for
// every request), each with its own instance of c.handler.
func runBoth(t *testing.T, c diffCase) (std, fr exchange) {
	t.Helper()
	raw := c.raw
	if raw == "" {
		raw = getX
	}
	nStd, nFr := newNotes(), newNotes()
	stdAddr := startStd(t, caseHandler(c.handler, nStd), c.config)
	fs := startFront(t, caseHandler(c.handler, nFr), always, c.config)
	// Run one after the other: some handlers are timing sensitive.
	std = roundTrip(t, stdAddr, raw, nStd)
	fr = roundTrip(t, fs.addr, raw, nFr)
	return std, fr
}

func runDiffCases(t *testing.T, cases []diffCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			std, fr := runBoth(t, c)
			if c.check != nil {
				t.Logf("front differs on purpose: %s", c.differs)
				c.check(t, std, fr)
				return
			}
			if d := diffExchange(std, fr); d != "" {
				msg := "front differs from net/http"
				if c.bug != "" {
					msg = "known divergence: " + c.bug
				}
				t.Errorf("%s\n%s", msg, d)
			}
		})
	}
}

// --- 1. differential answers -----------------------------------------------

var (
	html  = "<!DOCTYPE html><html><body>hi</body></html>"
	gzipd = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x01\x00\x00\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"
)

func TestAnswersMatchNetHTTP(t *testing.T) {
	cases := []diffCase{
		{name: "empty 200", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {}},
		{name: "small body gets a Content-Length", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, "hello, world")
		}},
		{name: "html body is sniffed", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, html)
		}},
		{name: "nil Content-Type suppresses sniffing", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			write(n, w, html)
		}},
		{name: "body over 4 KiB is chunked", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, strings.Repeat("a", 10000))
		}},
		{name: "body over 4 KiB in small writes is chunked", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			for range 100 {
				write(n, w, strings.Repeat("b", 100))
			}
		}},
		{name: "body between 2 and 4 KiB", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, strings.Repeat("c", 3000))
		}},
		{name: "handler sets Content-Length", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			write(n, w, "hello")
		}},
		{name: "handler sets a large Content-Length", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10000")
			for range 10 {
				write(n, w, strings.Repeat("d", 1000))
			}
		}},
		{name: "HEAD, nothing written", raw: headX(), handler: func(n *notes, w http.ResponseWriter, r *http.Request) {}},
		{
			name: "HEAD, body written", raw: headX(),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) { write(n, w, "hello") },
			bug:     "front does not sniff a Content-Type for HEAD (Write returns before the bytes are held)",
		},
		{name: "HEAD, Content-Type and body written", raw: headX(), handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			write(n, w, "hello")
		}},
		{name: "HEAD, Content-Length set, nothing written", raw: headX(), handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "42")
		}},
		{name: "HEAD, Content-Length and Content-Type set, body written", raw: headX(), handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Content-Type", "text/plain")
			write(n, w, "hello")
		}},
		{
			name: "HEAD, body over 4 KiB written", raw: headX(),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				write(n, w, strings.Repeat("e", 10000))
			},
			bug: "front sends Content-Length: 10000 for HEAD, where net/http sends none (its GET would be chunked, as front's is)",
		},
		{name: "204 refuses a body", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNoContent)
			write(n, w, "x")
		}},
		{name: "304 refuses a body and drops its type and length", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "1")
			w.Header().Set("Etag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
			write(n, w, "x")
		}},
		{name: "write beyond Content-Length in one write", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			write(n, w, "hello world")
		}},
		{
			name: "write beyond Content-Length after reaching it",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				write(n, w, "hello")
				write(n, w, "!")
			},
			bug: "net/http counts the refused bytes and closes the connection (written != Content-Length); front keeps it",
		},
		{name: "declared length not reached closes the connection", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			write(n, w, "hello")
		}},
		{name: "Flush before the end", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, "first ")
			flush(w)
			write(n, w, "second")
		}},
		{name: "Flush before any write", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			flush(w)
			write(n, w, html)
		}},
		{name: "server-sent events", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			for i := range 3 {
				write(n, w, fmt.Sprintf("data: %d\n\n", i))
				flush(w)
				time.Sleep(5 * time.Millisecond)
			}
		}},
		{name: "trailers declared with the Trailer field, set after a Flush", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum, X-Count")
			write(n, w, "abc")
			flush(w)
			w.Header().Set("X-Sum", "6")
			w.Header().Set("X-Count", "3")
		}},
		{
			// net/http's own example (ExampleResponseWriter_trailers).
			name: "trailers declared with the Trailer field, set after WriteHeader",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "AtEnd1, AtEnd2")
				w.Header().Add("Trailer", "AtEnd3")
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusOK)
				w.Header().Set("AtEnd1", "value 1")
				write(n, w, "This HTTP response has both headers before this text and trailers at the end.\n")
				w.Header().Set("AtEnd2", "value 2")
				w.Header().Set("AtEnd3", "value 3")
			},
			bug: "front writes the head when the body ends, from the live map: the trailer fields set after WriteHeader also go into the head",
		},
		{name: "TrailerPrefix set before the body", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set(http.TrailerPrefix+"X-Sum", "pending")
			write(n, w, "abc")
			w.Header().Set(http.TrailerPrefix+"X-Sum", "6")
		}},
		{name: "TrailerPrefix set after a Flush", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, "abc")
			flush(w)
			w.Header().Set(http.TrailerPrefix+"X-Sum", "6")
		}},
		{
			name: "TrailerPrefix set after a small unflushed body",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				write(n, w, "abc")
				w.Header().Set(http.TrailerPrefix+"X-Sum", "6")
			},
			bug: "net/http fixed the header at WriteHeader: Content-Length, no trailer; front chunks and sends the trailer",
		},
		{
			name: "Trailer field with a handler Content-Length",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Sum")
				w.Header().Set("Content-Length", "3")
				write(n, w, "abc")
				w.Header().Set("X-Sum", "6")
			},
			bug: "net/http keeps the handler's Content-Length (and drops the trailer); front drops the length and chunks",
		},
		{
			name: "HEAD with a Trailer field", raw: headX(),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Sum")
				w.Header().Set("Content-Type", "text/plain")
				write(n, w, "abc")
			},
			bug: "net/http sends the Trailer field and no Content-Length (trailers rule it out); front drops the field and sends Content-Length: 3",
		},
		{
			name: "204 with a Trailer field",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Sum")
				w.WriteHeader(http.StatusNoContent)
			},
			bug: "front drops the Trailer field whenever it does not chunk; net/http sends it",
		},
		{name: "103 Early Hints then 200", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/plain")
			write(n, w, "hinted")
		}},
		{
			name: "103 Early Hints with a Content-Length already set",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "6")
				w.Header().Add("Link", "</style.css>; rel=preload; as=style")
				w.WriteHeader(http.StatusEarlyHints)
				write(n, w, "hinted")
			},
			bug: "front writes Content-Length in the 103 (its status is still 0 there); net/http leaves it out",
		},
		{name: "request Connection: close", raw: "GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) { write(n, w, "bye") }},
		{name: "handler sets Connection: close", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			write(n, w, "bye")
		}},
		{
			// ReadResponse drops a Connection field holding close, so this
			// compares resp.Close only; TestConnectionFieldsRaw looks at the bytes.
			name: "request Connection: close, handler sets Connection: keep-alive",
			raw:  "GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "keep-alive")
				write(n, w, "bye")
			},
		},
		{name: "header values with CR and LF", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Split", "a\r\nX-Injected: 1")
			w.Header()["X-Lf"] = []string{"b\nc", "\r\nd\r\n"}
		}},
		{name: "invalid field names are dropped", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header()["Bad Name"] = []string{"x"}
			w.Header()["X-Ok"] = []string{"y"}
		}},
		{
			name: "header value ending in a non-ASCII space",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Nbsp", "a\u00a0")
			},
			bug: "front trims values with strings.TrimSpace (Unicode spaces), net/http with textproto.TrimString (ASCII)",
		},
		{
			name: "Content-Encoding without Content-Type is not sniffed",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				write(n, w, gzipd)
			},
			bug: "front sniffs despite Content-Encoding (net/http does not, issue 31753)",
		},
		{
			name: "header changed after WriteHeader",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Early", "1")
				w.WriteHeader(http.StatusOK)
				w.Header().Set("X-Late", "1")
				write(n, w, "x")
			},
			bug: "net/http snapshots the header at WriteHeader; front sends fields set after it",
		},
		{
			name: "declared length, body in small writes, sniffed",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(html)))
				write(n, w, html[:1])
				write(n, w, html[1:])
			},
			bug: "with a declared length front sniffs only the first Write; net/http sniffs its 2 KiB buffer",
		},
		{
			name: "handler sets Transfer-Encoding: chunked",
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Transfer-Encoding", "chunked")
				w.Header().Set("Content-Type", "text/plain")
				write(n, w, "abc")
			},
			bug: "net/http honours the handler's chunked encoding; front drops it and sends a Content-Length",
		},
		{name: "status without a text", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(599)
			write(n, w, "x")
		}},
		{name: "superfluous WriteHeader", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
			write(n, w, "x")
			w.WriteHeader(http.StatusTeapot)
		}},
		{name: "several values of one field", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
		}},
		{name: "Date set by the handler", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		}},
		{name: "Date suppressed by the handler", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil
		}},
		{name: "request as the handler sees it", raw: "GET /a/b%20c?q=1&r=%2F HTTP/1.1\r\nHost: example.com:8080\r\n" +
			"User-Agent: t\r\naccept: */*\r\nX-Multi: 1\r\nx-multi: 2\r\nX-Space:  padded \t\r\nConnection: keep-alive\r\n\r\n",
			handler: echoRequest},
		{name: "request with Connection: close as the handler sees it",
			raw:     "GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
			handler: echoRequest},
		{
			name:    "request with Pragma: no-cache as the handler sees it",
			raw:     "GET /x HTTP/1.1\r\nHost: example.com\r\nPragma: no-cache\r\n\r\n",
			handler: echoRequest,
			bug:     "net/http adds Cache-Control: no-cache for Pragma: no-cache (fixPragmaCacheControl); parseHead does not",
		},
		{name: "POST body echoed", raw: post("/x", "the body"), handler: echoRequest},
		{name: "POST small body left unread keeps the connection", raw: post("/x", strings.Repeat("u", 1000)),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) { write(n, w, "ignored") }},
		{name: "POST small body closed unread keeps the connection", raw: post("/x", strings.Repeat("u", 1000)),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				n.add("close: %v", r.Body.Close())
				write(n, w, "ignored")
			}},
		{
			name: "POST body over 256 KiB left unread",
			raw:  post("/x", strings.Repeat("U", 300<<10)),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				write(n, w, "ignored")
			},
			bug: "net/http answers with Connection: close; front closes the connection without saying so",
		},
		{name: "POST body read in part, then an answer", raw: post("/x", strings.Repeat("p", 5000)),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				b := make([]byte, 100)
				k, err := io.ReadFull(r.Body, b)
				n.add("read %d %v", k, err)
				write(n, w, "partial")
			}},
		{name: "handler abort after part of a chunked body", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			write(n, w, strings.Repeat("a", 5000))
			flush(w)
			panic(http.ErrAbortHandler)
		}},
		{name: "handler panic before writing", handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
			panic("boom")
		}},
	}
	runDiffCases(t, cases)
}

// echoRequest notes and answers what the handler sees of the request.
func echoRequest(n *notes, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%s url=%s len=%d close=%v te=%v body=%q err=%v\n",
		r.Method, r.RequestURI, r.Proto, r.Host, r.URL, r.ContentLength, r.Close, r.TransferEncoding, body, err)
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		fmt.Fprintf(&b, "%s: %q\n", k, r.Header[k])
	}
	_, isSrv := r.Context().Value(http.ServerContextKey).(*http.Server)
	_, isAddr := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	fmt.Fprintf(&b, "server=%v local=%v remote=%v tls=%v", isSrv, isAddr,
		strings.HasPrefix(r.RemoteAddr, "127.0.0.1:"), r.TLS != nil)
	n.add("%s", b.String())
	write(n, w, b.String())
}

// --- 2. keep-alive and pipelining -------------------------------------------

func pathHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, body)
	})
}

// readAnswer reads one answer and its body, failing the test on error.
func readAnswer(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// expectClosed asserts that c is closed by the server (EOF or reset).
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := br.ReadByte()
	if err == nil || isTimeout(err) {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestKeepAliveSequential(t *testing.T) {
	fs := startFront(t, pathHandler(), always, nil)
	c := dial(t, fs.addr)
	br := bufio.NewReader(c)
	for i := range 100 {
		fmt.Fprintf(c, "GET /n/%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		resp, body := readAnswer(t, br, "GET")
		if want := fmt.Sprintf("/n/%d ", i); body != want || resp.Close {
			t.Fatalf("request %d: body %q close %v, want %q on a kept connection", i, body, resp.Close, want)
		}
	}
}

func TestPipelined(t *testing.T) {
	fs := startFront(t, pathHandler(), always, nil)
	c := dial(t, fs.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"+post("/b", "bee")+"GET /c HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/a ", "/b bee", "/c "} {
		if _, body := readAnswer(t, br, "GET"); body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
}

func TestUnreadBody(t *testing.T) {
	ignore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	for _, tc := range []struct {
		name string
		size int
		keep bool
	}{
		{"small body discarded, connection kept", 10 << 10, true},
		{"body over 256 KiB closes the connection", 300 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFront(t, ignore, always, nil)
			c := dial(t, fs.addr)
			br := bufio.NewReader(c)
			go io.WriteString(c, post("/big", strings.Repeat("z", tc.size)))
			if _, body := readAnswer(t, br, "POST"); body != "/big" {
				t.Fatalf("body %q", body)
			}
			if !tc.keep {
				expectClosed(t, c, br)
				return
			}
			io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			if _, body := readAnswer(t, br, "GET"); body != "/next" {
				t.Fatalf("next body %q", body)
			}
		})
	}
}

func TestPipelinedMatchNetHTTP(t *testing.T) {
	cases := []diffCase{
		{name: "two requests in one write", raw: getX + strings.Replace(getX, "/x", "/probe", 1),
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) { write(n, w, "first") }},
		{
			// net/http skips CR and LF after a POST body (RFC 9112 2.2
			// tolerance for old clients); a handed-over connection loses
			// that, so net/http's fresh reader answers 400.
			name:    "stray CRLF after a POST body",
			raw:     post("/x", "body") + "\r\n",
			handler: echoRequest,
			bug:     "front hands the connection over at the stray CRLF and net/http answers the probe with 400",
		},
	}
	runDiffCases(t, cases)
}

// --- 3. hand-over ---------------------------------------------------------------

// whoHandler answers with the path, the ResponseWriter's type, whether the
// context carries srv, and the request body.
func whoHandler(srv *atomic.Pointer[http.Server]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		same := r.Context().Value(http.ServerContextKey) == srv.Load()
		fmt.Fprintf(w, "%s %T srv=%v body=%q err=%v", r.URL.Path, w, same, body, err)
	})
}

func TestHandOver(t *testing.T) {
	fastPrefix := func(p string) bool { return strings.HasPrefix(p, "/fast/") }
	const (
		loop = "*front.response"
		std  = "*http.response"
	)
	type want struct{ path, writer, body string }
	cases := []struct {
		name   string
		writes []string // written one after the other, each after the previous answers
		want   [][]want // answers expected after each write
	}{
		{
			name:   "slow path on a fresh connection, pipelined",
			writes: []string{post("/slow", "slow body") + "GET /fast/after HTTP/1.1\r\nHost: a\r\n\r\n"},
			want:   [][]want{{{"/slow", std, "slow body"}, {"/fast/after", std, ""}}},
		},
		{
			name: "slow path after a fast one, pipelined in one write",
			writes: []string{post("/fast/x", "one") + post("/slow", "two") +
				"GET /slow2 HTTP/1.1\r\nHost: a\r\n\r\n"},
			want: [][]want{{{"/fast/x", loop, "one"}, {"/slow", std, "two"}, {"/slow2", std, ""}}},
		},
		{
			name:   "slow path after a fast one, sequential",
			writes: []string{post("/fast/x", "one"), post("/slow", strings.Repeat("s", 20000))},
			want:   [][]want{{{"/fast/x", loop, "one"}}, {{"/slow", std, strings.Repeat("s", 20000)}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var srv atomic.Pointer[http.Server]
			fs := startFront(t, whoHandler(&srv), fastPrefix, nil)
			srv.Store(fs.srv)
			c := dial(t, fs.addr)
			br := bufio.NewReader(c)
			for i, w := range tc.writes {
				io.WriteString(c, w)
				for _, a := range tc.want[i] {
					_, body := readAnswer(t, br, "GET")
					exp := fmt.Sprintf("%s %s srv=true body=%q err=<nil>", a.path, a.writer, a.body)
					if body != exp {
						t.Errorf("answer\n got %.200q\nwant %.200q", body, exp)
					}
				}
			}
		})
	}
}

// TestHandOverHeads sends heads the loop must not judge itself, on a fast
// path: each must get net/http's answer from net/http.
func TestHandOverHeads(t *testing.T) {
	seen := func(n *notes, w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		n.add("%T %s %s body=%q err=%v", w, r.Proto, r.URL, body, err)
		fmt.Fprintf(w, "%s %q", r.URL.Path, body)
	}
	cases := []diffCase{
		{name: "chunked upload", raw: "POST /fast/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"},
		{name: "Expect: 100-continue", raw: post("/fast/x", "body", "Expect: 100-continue")},
		{name: "websocket upgrade", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"},
		{name: "HTTP/1.0", raw: "GET /fast/x HTTP/1.0\r\n\r\n"},
		{name: "HTTP/1.0 keep-alive", raw: "GET /fast/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{name: "absolute-form target", raw: "GET http://example.com/fast/x HTTP/1.1\r\nHost: example.com\r\n\r\n"},
		{name: "two equal Content-Length fields", raw: post("/fast/x", "body", "Content-Length: 4")},
		{name: "two different Content-Length fields", raw: post("/fast/x", "body", "Content-Length: 5")},
		{name: "no Host", raw: "GET /fast/x HTTP/1.1\r\n\r\n"},
		{name: "two Host fields", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "odd Host", raw: "GET /fast/x HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{name: "obsolete line folding", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"},
		{name: "head over 8 KiB", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n"},
		{name: "space before colon", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nX-Bad : 1\r\n\r\n"},
		{name: "bad Content-Length", raw: "POST /fast/x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
		{name: "TE: trailers", raw: "GET /fast/x HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n"},
		{
			name: "bare LF line ends",
			raw:  "GET /fast/x HTTP/1.1\nHost: a\n\n",
			bug:  "peekHead only looks for CRLFCRLF: the head never ends for the loop, which waits (until ReadHeaderTimeout) instead of handing over",
		},
		{name: "bare LF before the final CRLF", raw: "GET /fast/x HTTP/1.1\r\nHost: a\n\r\n"},
		{
			name: "bare LF after the last field",
			raw:  "GET /fast/x HTTP/1.1\r\nHost: a\r\n\n",
			bug:  "as above: a head ending in CRLF LF is neither served nor handed over",
		},
	}
	for i := range cases {
		cases[i].handler = seen
	}
	runDiffCases(t, cases)
}

// TestHandOverCutShortHead sends a partial head and half-closes: net/http
// answers 400, so the loop hands it over.
func TestHandOverCutShortHead(t *testing.T) {
	raw := "GET /fast/x HTTP/1.1\r\nHost: a\r\n"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	got := map[string]string{}
	for name, addr := range map[string]string{
		"net/http": startStd(t, h, nil),
		"front":    startFront(t, h, always, nil).addr,
	} {
		c := dial(t, addr)
		io.WriteString(c, raw)
		_ = c.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			got[name] = "error"
		} else {
			got[name] = resp.Status
		}
	}
	if got["front"] != got["net/http"] {
		t.Errorf("cut-short head: net/http %s, front %s", got["net/http"], got["front"])
	}
}

// --- 4. client gone -------------------------------------------------------------

func TestClientGoneCancels(t *testing.T) {
	for _, raw := range []string{getX, post("/x", "read me")} {
		t.Run(raw[:4], func(t *testing.T) {
			result := make(chan string, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				select {
				case <-r.Context().Done():
					result <- "cancelled"
				case <-time.After(wait):
					result <- "not cancelled"
				}
			})
			fs := startFront(t, h, always, nil)
			c := dial(t, fs.addr)
			io.WriteString(c, raw)
			time.Sleep(200 * time.Millisecond)
			c.Close()
			select {
			case got := <-result:
				if got != "cancelled" {
					t.Fatal("context not cancelled after the client closed")
				}
			case <-time.After(2 * wait):
				t.Fatal("handler did not return")
			}
		})
	}
}

func TestPipelinedDuringLongCall(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "next")
			return
		}
		select {
		case <-r.Context().Done():
			io.WriteString(w, "cancelled")
		case <-time.After(300 * time.Millisecond):
			io.WriteString(w, "slow done")
		}
	})
	fs := startFront(t, h, always, nil)
	c := dial(t, fs.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(150 * time.Millisecond) // the watch runs from 50 ms
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"slow done", "next"} {
		if _, body := readAnswer(t, br, "GET"); body != want {
			t.Fatalf("body %q, want %q", body, want)
		}
	}
}

// TestHalfClosedClient: a client that shuts its sending side after the
// request still waits for the answer. net/http cancels the context (it
// reads EOF) but still sends whatever the handler wrote.
func TestHalfClosedClient(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintf(w, "late, ctx err %v", r.Context().Err())
	})
	got := map[string]string{}
	for name, addr := range map[string]string{
		"net/http": startStd(t, h, nil),
		"front":    startFront(t, h, always, nil).addr,
	} {
		c := dial(t, addr)
		io.WriteString(c, getX)
		_ = c.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			got[name] = "error: " + err.Error()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		got[name] = fmt.Sprintf("%s %q %v", resp.Status, b, err)
	}
	if got["front"] != got["net/http"] {
		t.Errorf("known divergence: front drops the answer once the watch saw EOF\n net/http: %s\n front:    %s",
			got["net/http"], got["front"])
	}
}

// --- 5. panics ------------------------------------------------------------------

func TestPanicKeepsServing(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "fine")
	})
	fs := startFront(t, h, always, nil)
	c := dial(t, fs.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	expectClosed(t, c, br)
	c2 := dial(t, fs.addr)
	io.WriteString(c2, getX)
	if _, body := readAnswer(t, bufio.NewReader(c2), "GET"); body != "fine" {
		t.Fatalf("after a panic: body %q", body)
	}
}

func TestAbortHandlerCutsChunkedBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 5000))
		flush(w)
		panic(http.ErrAbortHandler)
	})
	fs := startFront(t, h, always, nil)
	c := dial(t, fs.addr)
	io.WriteString(c, getX)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("body read to its end: the terminating chunk was sent after an abort")
	}
}

// --- 6. shutdown ----------------------------------------------------------------

func TestShutdown(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(entered)
			select {
			case <-release:
			case <-time.After(wait):
			}
		}
		io.WriteString(w, r.URL.Path)
	})
	fs := startFront(t, h, always, nil)
	var hooked atomic.Bool
	fs.srv.RegisterOnShutdown(func() { hooked.Store(true) })

	idle := dial(t, fs.addr)
	idleR := bufio.NewReader(idle)
	io.WriteString(idle, getX)
	readAnswer(t, idleR, "GET")
	busy := dial(t, fs.addr)
	busyR := bufio.NewReader(busy)
	io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		done <- fs.Shutdown(ctx)
	}()
	expectClosed(t, idle, idleR)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a call in progress", err)
	default:
	}
	close(release)
	// resp.Close is Connection: close (ReadResponse drops the field).
	resp, body := readAnswer(t, busyR, "GET")
	if body != "/block" || !resp.Close {
		t.Errorf("call in progress: body %q, close %v; want /block with Connection: close", body, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-fs.served:
		fs.served <- err // for the cleanup
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	if !hooked.Load() {
		t.Error("RegisterOnShutdown hook did not run")
	}
}

// TestShutdownFreshConnection: net/http's Shutdown leaves a connection
// that has sent nothing yet open for a while (StateNew) but hangs up on
// the request it then reads; front closes it at once. Either way the
// request gets no answer.
func TestShutdownFreshConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") })
	got := map[string]string{}
	for _, name := range []string{"net/http", "front"} {
		srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var shutdown func(context.Context) error
		served := make(chan error, 1)
		if name == "front" {
			fs := New(srv, nil, always, quietLog())
			go func() { served <- fs.Serve(ln) }()
			shutdown = fs.Shutdown
		} else {
			go func() { served <- srv.Serve(ln) }()
			shutdown = srv.Shutdown
		}
		c := dial(t, ln.Addr().String())
		time.Sleep(50 * time.Millisecond) // accepted
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		done := make(chan error, 1)
		go func() { done <- shutdown(ctx) }()
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, getX)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			got[name] = "no answer"
		} else {
			b, _ := io.ReadAll(resp.Body)
			got[name] = fmt.Sprintf("%s %q close=%v", resp.Status, b, resp.Close)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("%s: Shutdown: %v", name, err)
		}
		cancel()
		<-served
	}
	if got["front"] != got["net/http"] {
		t.Errorf("request on a fresh connection during Shutdown\n net/http: %s\n front:    %s",
			got["net/http"], got["front"])
	}
}

// --- 7. timeouts ----------------------------------------------------------------

func TestTimeouts(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	t.Run("IdleTimeout closes an idle connection", func(t *testing.T) {
		fs := startFront(t, h, always, func(s *http.Server) { s.IdleTimeout = 200 * time.Millisecond })
		c := dial(t, fs.addr)
		br := bufio.NewReader(c)
		io.WriteString(c, getX)
		readAnswer(t, br, "GET")
		start := time.Now()
		expectClosed(t, c, br)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout", d)
		}
	})
	t.Run("ReadHeaderTimeout closes a connection with a partial head", func(t *testing.T) {
		fs := startFront(t, h, always, func(s *http.Server) {
			s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, time.Minute
		})
		c := dial(t, fs.addr)
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n")
		expectClosed(t, c, bufio.NewReader(c))
	})
	t.Run("ReadHeaderTimeout on a fresh silent connection", func(t *testing.T) {
		// net/http's header deadline starts when the connection is
		// accepted; front waits for the first byte with IdleTimeout.
		config := func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = 200*time.Millisecond, time.Minute }
		got := map[string]string{}
		for name, addr := range map[string]string{
			"net/http": startStd(t, h, config),
			"front":    startFront(t, h, always, config).addr,
		} {
			c := dial(t, addr)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			switch {
			case isTimeout(err):
				got[name] = "still open after 2s"
			case err != nil:
				got[name] = "closed"
			default:
				got[name] = "data"
			}
		}
		if got["front"] != got["net/http"] {
			t.Errorf("known divergence: a silent fresh connection is held for IdleTimeout, not ReadHeaderTimeout\n"+
				" net/http: %s\n front:    %s", got["net/http"], got["front"])
		}
	})
}

// --- server settings ------------------------------------------------------------

type ctxKey struct{}

func TestServerSettings(t *testing.T) {
	cases := []diffCase{
		{
			name: "BaseContext and ConnContext",
			config: func(s *http.Server) {
				s.BaseContext = func(net.Listener) context.Context {
					return context.WithValue(context.Background(), ctxKey{}, "base")
				}
				s.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
					return context.WithValue(ctx, ctxKey{}, fmt.Sprint(ctx.Value(ctxKey{}), "+conn"))
				}
			},
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				write(n, w, fmt.Sprint(r.Context().Value(ctxKey{})))
			},
		},
		{
			name:   "keep-alives disabled",
			config: func(s *http.Server) { s.SetKeepAlivesEnabled(false) },
			handler: func(n *notes, w http.ResponseWriter, r *http.Request) {
				write(n, w, "x")
			},
			// http.Server has no getter for it: the package doc says that
			// front keeps connections whatever it is set to.
			differs: "front cannot see srv.SetKeepAlivesEnabled(false)",
			check: func(t *testing.T, std, fr exchange) {
				if !std.Close || std.Reuse == "served" {
					t.Errorf("net/http: Close %v, reuse %s; want it to close", std.Close, std.Reuse)
				}
				if fr.Close || fr.Reuse != "served" || fr.Body != std.Body {
					t.Errorf("front: Close %v, reuse %s, body %q; want the same answer on a kept connection", fr.Close, fr.Reuse, fr.Body)
				}
			},
		},
	}
	runDiffCases(t, cases)
}

var registerDefault sync.Once

func TestNilHandlerUsesDefaultServeMux(t *testing.T) {
	const path = "/front-test-default-mux/"
	registerDefault.Do(func() {
		http.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "default mux") })
	})
	fs := startFront(t, nil, always, nil)
	c := dial(t, fs.addr)
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("known divergence: front calls a nil srv.Handler (panic, connection closed): %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "default mux" {
		t.Fatalf("body %q, want DefaultServeMux's answer", b)
	}
}

// TestConnectionFieldsRaw compares the Connection fields of the answer
// head byte for byte (a Go client drops them when one says close).
func TestConnectionFieldsRaw(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		io.WriteString(w, "bye")
	})
	raw := "GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
	got := map[string][]string{}
	for name, addr := range map[string]string{
		"net/http": startStd(t, h, nil),
		"front":    startFront(t, h, always, nil).addr,
	} {
		c := dial(t, addr)
		io.WriteString(c, raw)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
			if strings.HasPrefix(strings.ToLower(line), "connection:") {
				got[name] = append(got[name], strings.TrimSpace(line))
			}
		}
	}
	if !slices.Equal(got["front"], got["net/http"]) {
		t.Errorf("known divergence: net/http replaces the handler's Connection field when it closes; front adds one\n"+
			" net/http: %q\n front:    %q", got["net/http"], got["front"])
	}
}
