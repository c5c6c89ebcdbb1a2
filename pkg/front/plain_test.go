package front

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// plainHeads are request heads parsePlain must take as plain or not.
var plainHeads = []struct {
	name  string
	head  string
	plain bool
}{
	{"GET", "GET /function/f HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"POST with fields", "POST /function/f.dev/a/b?x=1&y=%20 HTTP/1.1\r\nHost: a:8080\r\ncontent-type: text/plain\r\n" +
		"X-Call-Id: 7\r\nAuthorization: Basic eDp5\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", true},
	{"PUT", "PUT /function/f HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"PATCH", "PATCH /function/f HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"DELETE", "DELETE /function/f HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
	{"empty query", "GET /function/f? HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"unreserved path bytes", "GET /function/f/a-b_c.d~e/ HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"32 fields", "GET /function/f HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-F: 1\r\n", 32) + "\r\n", true},

	{"33 fields", "GET /function/f HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-F: 1\r\n", 33) + "\r\n", false},
	{"HEAD", "HEAD /function/f HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"OPTIONS", "OPTIONS /function/f HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"not a call", "GET /system/functions HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"no name", "GET /function/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"escaped path", "GET /function/f/%41 HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"path with a colon", "GET /function/f/a:b HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"HTTP/1.0", "GET /function/f HTTP/1.0\r\nHost: a\r\n\r\n", false},
	{"no Host", "GET /function/f HTTP/1.1\r\n\r\n", false},
	{"two Hosts", "GET /function/f HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", false},
	{"two call IDs", "GET /function/f HTTP/1.1\r\nHost: a\r\nX-Call-Id: 1\r\nX-Call-Id: 2\r\n\r\n", false},
	{"two Authorization", "GET /function/f HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", false},
	{"body over 8 KiB", "POST /function/f HTTP/1.1\r\nHost: a\r\nContent-Length: 8193\r\n\r\n", false},
	{"Connection options", "GET /function/f HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-A\r\n\r\n", false},
	{"chunked", "POST /function/f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	{"Expect", "POST /function/f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false},
	{"Keep-Alive", "GET /function/f HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\n\r\n", false},
	{"Pragma", "GET /function/f HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", false},
	{"Proxy-Authorization", "GET /function/f HTTP/1.1\r\nHost: a\r\nproxy-authorization: x\r\n\r\n", false},
	{"Forwarded", "GET /function/f HTTP/1.1\r\nHost: a\r\nForwarded: for=x\r\n\r\n", false},
	{"X-Forwarded-*", "GET /function/f HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-proto: https\r\n" +
		"X-Forwarded-Host:\r\nX-Forwarded-Host: b\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n\r\n", true},
	{"5 X-Forwarded-For", "GET /function/f HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Forwarded-For: 10.0.0.1\r\n", 5) + "\r\n", false},
	{"X-Start-Time", "GET /function/f HTTP/1.1\r\nHost: a\r\nX-Start-Time: 1\r\n\r\n", false},
	{"Trailer", "GET /function/f HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n", false},
}

// TestParsePlain: parsePlain takes exactly the plain heads, and what it
// takes parseHead takes too, with the same meaning (Escalate relies on it).
func TestParsePlain(t *testing.T) {
	for _, tc := range plainHeads {
		t.Run(tc.name, func(t *testing.T) {
			pc := PlainCall{c: &conn{}}
			got := pc.parsePlain([]byte(tc.head))
			if got != tc.plain {
				t.Fatalf("parsePlain(%q) = %v, want %v", tc.head, got, tc.plain)
			}
			if got {
				if d := comparePlainWithHead([]byte(tc.head), &pc); d != "" {
					t.Error(d)
				}
			}
		})
	}
	// The call's own fields.
	pc := PlainCall{c: &conn{}}
	if !pc.parsePlain([]byte(plainHeads[1].head)) {
		t.Fatal("not plain")
	}
	var fields []string
	for i := range pc.NumFields() {
		k, v := pc.Field(i)
		fields = append(fields, k+": "+string(v))
	}
	want := []string{"Content-Type: text/plain", "Authorization: Basic eDp5"}
	if pc.Method != http.MethodPost || string(pc.Path) != "/function/f.dev/a/b" || string(pc.RawQuery) != "x=1&y=%20" ||
		!pc.HasQuery || string(pc.Host) != "a:8080" || string(pc.CallID) != "7" || string(pc.Auth) != "Basic eDp5" ||
		!pc.Close || pc.bodyLen != 3 || !slices.Equal(fields, want) {
		t.Errorf("parsed %+v, fields %q; want POST /function/f.dev/a/b ? x=1&y=%%20, host a:8080, call ID 7, close, length 3, fields %q",
			pc, fields, want)
	}
}

// comparePlainWithHead says how a plain call differs from parseHead's
// request for the same head.
func comparePlainWithHead(head []byte, pc *PlainCall) string {
	req, ok := parseHead(head)
	if !ok {
		return fmt.Sprintf("parsePlain took %q, parseHead does not", head)
	}
	var d strings.Builder
	check := func(what string, got, want any) {
		if got != want {
			fmt.Fprintf(&d, "  %s: parsePlain %#v, parseHead %#v\n", what, got, want)
		}
	}
	check("Method", pc.Method, req.Method)
	check("Path", string(pc.Path), req.URL.Path)
	check("RawPath", "", req.URL.RawPath)
	check("RawQuery", string(pc.RawQuery), req.URL.RawQuery)
	check("HasQuery", pc.HasQuery, req.URL.RawQuery != "" || req.URL.ForceQuery)
	check("Host", string(pc.Host), req.Host)
	check("ContentLength", pc.bodyLen, req.ContentLength)
	check("Close", pc.Close, req.Close)
	check("CallID", string(pc.CallID), req.Header.Get("X-Call-Id"))
	check("Auth", string(pc.Auth), req.Header.Get("Authorization"))
	// The fields are the request's but for those the call holds itself.
	var xff []string
	for _, v := range pc.ForwardedFor {
		xff = append(xff, string(v))
	}
	check("ForwardedFor", fmt.Sprint(xff), fmt.Sprint(req.Header["X-Forwarded-For"]))
	check("ForwardedHost", string(pc.ForwardedHost), req.Header.Get("X-Forwarded-Host"))
	check("ForwardedProto", string(pc.ForwardedProto), req.Header.Get("X-Forwarded-Proto"))
	h := req.Header.Clone()
	for _, k := range []string{"Content-Length", "Connection", "X-Call-Id", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(h, k)
	}
	got := http.Header{}
	for i := range pc.NumFields() {
		k, v := pc.Field(i)
		got[k] = append(got[k], string(v))
	}
	check("fields", fmt.Sprint(got), fmt.Sprint(h))
	return d.String()
}

// FuzzParsePlain: whatever the bytes, parsePlain does not panic, and
// what it takes parseHead takes too, with the same meaning.
func FuzzParsePlain(f *testing.F) {
	for _, tc := range plainHeads {
		f.Add([]byte(tc.head))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		pc := PlainCall{c: &conn{}}
		if !pc.parsePlain(head) {
			return
		}
		if d := comparePlainWithHead(head, &pc); d != "" {
			t.Error(d)
		}
	})
}

// stubPlain is a PlainServer doing what the X-Do field of a call says.
type stubPlain struct{}

func (stubPlain) ServePlain(pc *PlainCall) bool {
	var do string
	for i := range pc.NumFields() {
		if k, v := pc.Field(i); k == "X-Do" {
			do = string(v)
		}
	}
	switch do {
	case "decline":
		return false
	case "escalate":
		pc.Begin()
		w, r := pc.Escalate()
		w.Header().Set("X-Path", r.URL.Path)
		fmt.Fprintf(w, "escalated %s", r.Method)
		return true
	case "abort":
		pc.Begin()
		bw := pc.StartAnswer(http.StatusOK)
		bw.WriteString("Content-Length: 100\r\n")
		pc.EndHead(false)
		bw.WriteString("cut")
		_ = bw.Flush()
		panic(http.ErrAbortHandler)
	}
	pc.Begin()
	bw := pc.StartAnswer(http.StatusCreated)
	body := fmt.Sprintf("plain %s %s %q", pc.Method, pc.Path, pc.Body)
	fmt.Fprintf(bw, "Content-Type: text/plain\r\nContent-Length: %d\r\n", len(body))
	pc.EndHead(false)
	bw.WriteString(body)
	return true
}

// TestPlainCalls: the loop hands plain calls to the PlainServer, whose
// answer, escalated answer or abort the client gets; a declined call or
// one that is not plain goes to the handler; keep-alive, pipelining and
// Connection: close work across both.
func TestPlainCalls(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testPlainCalls(t, nil) })
	// A cancellable BaseContext makes each call's context a child of it.
	t.Run("cancellable base", func(t *testing.T) {
		testPlainCalls(t, func(s *http.Server) {
			s.BaseContext = func(net.Listener) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				return ctx
			}
		})
	})
}

func testPlainCalls(t *testing.T, config func(*http.Server)) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "handler %s %s %q", r.Method, r.URL.Path, body)
	})
	fs := startFrontPlain(t, h, always, config, stubPlain{})

	c := dial(t, fs.addr)
	br := bufio.NewReader(c)
	exchange := func(raw string, want ...string) {
		t.Helper()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			method, _, _ := strings.Cut(raw, " ")
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			body, err := io.ReadAll(resp.Body)
			got := fmt.Sprintf("%d %s", resp.StatusCode, body)
			if resp.Header.Get("Date") == "" {
				got += " (no Date)"
			}
			if err != nil || got != w {
				t.Errorf("%q: got %s (%v), want %s", raw, got, err, w)
			}
		}
	}
	exchange("GET /function/f HTTP/1.1\r\nHost: a\r\n\r\n", `201 plain GET /function/f ""`)
	exchange("POST /function/f/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody", `201 plain POST /function/f/x "body"`)
	exchange("POST /function/f HTTP/1.1\r\nHost: a\r\nX-Do: decline\r\nContent-Length: 2\r\n\r\nhi", `200 handler POST /function/f "hi"`)
	exchange("GET /function/f HTTP/1.1\r\nHost: a\r\nX-Do: escalate\r\n\r\n", `200 escalated GET`)
	exchange("HEAD /function/f HTTP/1.1\r\nHost: a\r\n\r\n", `200 `)
	// A body that does not fit with its head in the buffer.
	big := strings.Repeat("b", 8150)
	exchange("POST /function/f HTTP/1.1\r\nHost: a\r\nContent-Length: 8150\r\n\r\n"+big, `200 handler POST /function/f "`+big+`"`)
	// Pipelined, the body of the first arriving with the second's head.
	exchange("POST /function/f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /function/g?q HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET /function/h HTTP/1.1\r\nHost: a\r\nX-Do: decline\r\n\r\n",
		`201 plain POST /function/f "abc"`, `201 plain GET /function/g ""`, `200 handler GET /function/h ""`)
	// A body that arrives after its head.
	io.WriteString(c, "POST /function/f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	exchange("later", `201 plain POST /function/f "later"`)
	exchange("GET /function/f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", `201 plain GET /function/f ""`)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %v, want EOF", err)
	}

	// An abort after the head cuts the answer and the connection.
	c = dial(t, fs.addr)
	io.WriteString(c, "GET /function/f HTTP/1.1\r\nHost: a\r\nX-Do: abort\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(resp.Body); err == nil || !bytes.Equal(body, []byte("cut")) {
		t.Errorf("aborted answer: body %q, err %v; want \"cut\" and an unexpected EOF", body, err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stayed open after the abort")
	}
}
