package front

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
)

// heads are request heads the parser must take (ok) or leave to net/http.
var heads = []struct {
	name string
	head string
	ok   bool
}{
	{"plain GET", "GET /function/f HTTP/1.1\r\nHost: a\r\n\r\n", true},
	{"POST with a length", "POST /function/f?x=1 HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n", true},
	{"lower-case names, padded values", "GET / HTTP/1.1\r\nhost:  a \r\nx-call-id:\t7\t\r\nuser-agent: ua\r\n\r\n", true},
	{"repeated field", "GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\naccept: b\r\n\r\n", true},
	{"Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", true},
	{"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-V: caf\xc3\xa9\r\n\r\n", true},
	{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", true},
	{"leading zeros in the length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", true},
	{"Pragma: no-cache", "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", true},

	{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", false},
	{"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"no Host", "GET / HTTP/1.1\r\n\r\n", false},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", false},
	{"odd Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", false},
	{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", false},
	{"signed length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", false},
	{"list length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", false},
	{"huge length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", false},
	{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	{"Expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false},
	{"Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", false},
	{"Connection: upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", false},
	{"TE", "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n", false},
	{"obsolete folding", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", false},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", false},
	{"CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", false},
	{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", false},
	{"space before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n", false},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", false},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", false},
	{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"control byte in the target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"no blank line", "GET / HTTP/1.1\r\nHost: a\r\n", false},
	{"empty", "", false},
}

func TestParseHead(t *testing.T) {
	for _, tc := range heads {
		t.Run(tc.name, func(t *testing.T) {
			req, ok := parseHead([]byte(tc.head))
			if ok != tc.ok {
				t.Fatalf("parseHead(%q) ok = %v, want %v", tc.head, ok, tc.ok)
			}
			if ok {
				if d := compareWithNetHTTP([]byte(tc.head), req); d != "" {
					t.Error(d)
				}
			}
		})
	}
}

// compareWithNetHTTP says how req, parsed from head by parseHead, differs
// from what http.ReadRequest makes of head.
func compareWithNetHTTP(head []byte, req *http.Request) string {
	std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return "parseHead accepted a head http.ReadRequest refuses: " + err.Error()
	}
	var d strings.Builder
	check := func(what string, got, want any) {
		if got != want {
			fmt.Fprintf(&d, "  %s: parseHead %#v, net/http %#v\n", what, got, want)
		}
	}
	check("Method", req.Method, std.Method)
	check("RequestURI", req.RequestURI, std.RequestURI)
	check("URL", req.URL.String(), std.URL.String())
	check("Host", req.Host, std.Host)
	check("ContentLength", req.ContentLength, std.ContentLength)
	check("Close", req.Close, std.Close)
	check("Proto", req.Proto, std.Proto)
	// The server drops Host from the map (it is in req.Host); so does parseHead.
	stdHeader := std.Header.Clone()
	delete(stdHeader, "Host")
	if !maps.EqualFunc(req.Header, stdHeader, func(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }) {
		fmt.Fprintf(&d, "  Header: parseHead %v, net/http %v\n", req.Header, stdHeader)
	}
	if d.Len() > 0 {
		return fmt.Sprintf("for %q:\n%s", head, d.String())
	}
	return ""
}

// FuzzParseHead: whatever the bytes, parseHead does not panic, and what
// it accepts http.ReadRequest accepts too, with the same method, target,
// host, length and fields. The Pragma seed fails until parseHead adds
// Cache-Control: no-cache as net/http does.
func FuzzParseHead(f *testing.F) {
	for _, tc := range heads {
		f.Add([]byte(tc.head))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		req, ok := parseHead(head)
		if !ok {
			return
		}
		if d := compareWithNetHTTP(head, req); d != "" {
			t.Error(d)
		}
	})
}
