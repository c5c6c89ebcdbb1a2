package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// rawAnswers are replica answers written as bytes, so that they can be
// what no Go server writes: lowercase names, hop-by-hop fields, a reason
// of their own, no type. The replica picks one by the request's X-Answer.
var rawAnswers = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	// No type: the ordinary path sniffs one.
	"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n<html></html>\n",
	"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n" +
		"x-call-id: theirs\r\nx-start-time: 1\r\nX-Duration-Seconds: 0.5\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n" +
		"proxy-authenticate: Basic\r\nupgrade: h2c\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\ncontent-length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nfail",
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 16\r\n\r\ndata: a\n\ndata: b",
	"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 20000\r\n\r\n" + strings.Repeat("0123456789", 2000),
	"HTTP/1.1 299 Whatever\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
	"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-Custom_Name: 1\r\nx-lower-case: 2\r\nContent-Length: 4\r\n\r\nnope",
}

// rawReplica is a function replica that records each request it reads
// (head and body, as bytes) and writes the answer X-Answer names.
type rawReplica struct {
	ln   net.Listener
	mu   sync.Mutex
	seen [][]byte
}

func newRawReplica(t testing.TB) *rawReplica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawReplica{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *rawReplica) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		var rec bytes.Buffer
		_ = req.Header.Write(&rec) // sorted: order is not part of the contract
		r.mu.Lock()
		r.seen = append(r.seen, fmt.Appendf(nil, "%s %s %s\r\n%s\r\n%q", req.Method, req.RequestURI, req.Host, rec.String(), body))
		r.mu.Unlock()
		n, _ := strconv.Atoi(req.Header.Get("X-Answer"))
		answer := rawAnswers[n%len(rawAnswers)]
		// Closed after the answers that say so, or whose body ends there.
		if _, err := io.WriteString(c, answer); err != nil || strings.Contains(answer, "Connection: close") || strings.HasSuffix(answer, "until close") {
			return
		}
	}
}

func (r *rawReplica) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// plainPair is one proxy serving plain calls and one that declines them
// all, each in front of its own raw replica of function "echo".
type plainPair struct {
	urls     [2]string
	replicas [2]*rawReplica
}

func newPlainPair(t testing.TB) *plainPair {
	t.Helper()
	var pp plainPair
	for i, allow := range []bool{true, false} {
		pp.replicas[i] = newRawReplica(t)
		c := NewCache()
		c.Set("openfaas-fn/echo", []faas.Endpoint{{Replica: "r", Addr: pp.replicas[i].ln.Addr().String()}})
		p := New(c, Options{Log: quietLogger(), ReadyWait: -1})
		p.EnablePlain(PlainHooks{Authorize: func([]byte, string, [][]byte) bool { return allow }})
		pp.urls[i] = strings.TrimPrefix(front(t, p), "http://")
	}
	return &pp
}

// exchangeRaw sends a request as bytes on a new connection and returns
// the answer as the client sees it: status, fields with the per-call
// values masked, body; or the error that ended it.
func exchangeRaw(addr, request string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return "write: " + err.Error()
	}
	// One answer per request. (Saying that nothing more comes, with a
	// half-close, would race with the calls: a client gone cancels them.)
	complete, _ := completeRequests(request)
	br := bufio.NewReader(c)
	var out strings.Builder
	method, _, _ := strings.Cut(request, " ")
	for n := 0; n < complete; n++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				out.WriteString("read: timeout\n")
			case err != io.EOF:
				out.WriteString("read: failed\n")
			}
			return out.String()
		}
		body, err := io.ReadAll(resp.Body)
		for _, k := range []string{"Date", HeaderCallID, HeaderStartTime, HeaderDuration} {
			if v := resp.Header.Get(k); v != "" && (k != HeaderCallID || v != "mine") {
				resp.Header.Set(k, "*")
			}
		}
		var h bytes.Buffer
		_ = resp.Header.Write(&h)
		fmt.Fprintf(&out, "%s chunked=%v length=%d close=%v\n%s%q %v\n", resp.Status, len(resp.TransferEncoding) > 0,
			resp.ContentLength, resp.Close, h.String(), body, err)
		if resp.StatusCode < 200 {
			n-- // informational: the answer follows
		}
	}
	return out.String()
}

// completeRequests counts the whole requests at the start of b, and
// reports whether they are all of it.
func completeRequests(b string) (n int, whole bool) {
	r := strings.NewReader(b)
	br := bufio.NewReader(r)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return n, errors.Is(err, io.EOF) && br.Buffered() == 0 && r.Len() == 0
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return n, false
		}
		n++
	}
}

// compare sends request (with X-Answer: answer) through both proxies and
// fails when the client or the replica sees anything different.
func (pp *plainPair) compare(t *testing.T, request string, answer int) {
	t.Helper()
	if line, rest, ok := strings.Cut(request, "\r\n"); ok {
		request = line + "\r\nX-Answer: " + strconv.Itoa(answer) + "\r\n" + rest
	}
	var got [2]string
	var seen [2][][]byte
	for i := range 2 {
		got[i] = exchangeRaw(pp.urls[i], request)
		seen[i] = pp.replicas[i].take()
		for j := range seen[i] {
			// The Host each replica sees is its own address.
			seen[i][j] = bytes.Replace(seen[i][j], []byte(pp.replicas[i].ln.Addr().String()), []byte("REPLICA"), 1)
			seen[i][j] = maskField(seen[i][j], "X-Start-Time")
			seen[i][j] = maskCallID(seen[i][j])
		}
	}
	if got[0] != got[1] {
		t.Errorf("request %q, answer %d: the client got, plain:\n%s\nordinary:\n%s", request, answer, got[0], got[1])
	}
	if !reflect.DeepEqual(seen[0], seen[1]) {
		t.Errorf("request %q, answer %d: the replica got, plain:\n%s\nordinary:\n%s", request, answer, bytes.Join(seen[0], []byte("\n--\n")), bytes.Join(seen[1], []byte("\n--\n")))
	}
}

// maskField replaces the value of field k in a recorded request.
func maskField(rec []byte, k string) []byte {
	lines := bytes.Split(rec, []byte("\r\n"))
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte(k+": ")) {
			lines[i] = []byte(k + ": *")
		}
	}
	return bytes.Join(lines, []byte("\r\n"))
}

// maskCallID masks a generated call ID, keeping one the client sent.
func maskCallID(rec []byte) []byte {
	if bytes.Contains(rec, []byte(HeaderCallID+": mine\r\n")) {
		return rec
	}
	return maskField(rec, HeaderCallID)
}

// plainRequests are requests for the differential tests: plain ones of
// every kind, and some the loop must not take as plain.
var plainRequests = []string{
	"GET /function/echo HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n",
	"POST /function/echo/a/b?x=1&y=%20 HTTP/1.1\r\nHost: h:8080\r\ncontent-type: text/plain\r\nx-custom-Thing:  v1 \r\n" +
		"X-Custom-Thing: v2\r\nAuthorization: Basic Zm9vOmJhcg==\r\nX-Call-Id: mine\r\nContent-Length: 4\r\n\r\nbody",
	"PUT /function/echo.openfaas-fn/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	"DELETE /function/echo? HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n",
	"GET /function/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n",
	"PATCH /function/echo/x.y-z_~ HTTP/1.1\r\nHost: x\r\nCONNECTION: Keep-Alive\r\n\r\n",
	"GET /function/echo/%41 HTTP/1.1\r\nHost: x\r\n\r\n",
	"HEAD /function/echo HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /function/echo HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
	"GET /function/nothere HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /function/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /function/echo HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /function/echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nX-Call-Id: mine\r\n\r\n",
	"GET /function/echo HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 10.0.0.1,10.0.0.2\r\nX-Forwarded-Host:\r\n" +
		"X-Forwarded-Host: outer\r\nX-Forwarded-For: 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n",
	"POST /function/echo HTTP/1.1\r\nHost: x\r\nForwarded: for=10.0.0.1\r\nContent-Length: 2\r\n\r\nhi",
}

// TestPlainMatchesOrdinary: every request of plainRequests, with every
// answer of rawAnswers, gets the same answer through a proxy that serves
// plain calls as through one that serves them all with ServeHTTP, and
// the replica gets the same request.
func TestPlainMatchesOrdinary(t *testing.T) {
	pp := newPlainPair(t)
	for _, req := range plainRequests {
		for a := range rawAnswers {
			pp.compare(t, req, a)
		}
	}
}

// FuzzPlainMatchesOrdinary is TestPlainMatchesOrdinary for any request
// made of a method, target, fields and body that frame one request.
func FuzzPlainMatchesOrdinary(f *testing.F) {
	for i, req := range plainRequests {
		head, body, _ := strings.Cut(req, "\r\n\r\n")
		line, fields, _ := strings.Cut(head, "\r\n")
		method, rest, _ := strings.Cut(line, " ")
		target, _, _ := strings.Cut(rest, " ")
		f.Add(method, target, fields+"\r\n", []byte(body), uint8(i%len(rawAnswers)))
	}
	pp := newPlainPair(f)
	f.Fuzz(func(t *testing.T, method, target, fields string, body []byte, answer uint8) {
		if !strings.HasSuffix(fields, "\r\n") {
			fields += "\r\n"
		}
		if len(body) > 0 && !strings.Contains(strings.ToLower(fields), "content-length") {
			fields += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
		}
		req := method + " " + target + " HTTP/1.1\r\n" + fields + "\r\n" + string(body)
		if n, whole := completeRequests(req); n != 1 || !whole {
			return // not one framed request: the servers may wait for more
		}
		pp.compare(t, req, int(answer)%len(rawAnswers))
	})
}
