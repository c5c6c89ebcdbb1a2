package front

import (
	"bytes"
	"net/http"
	"net/textproto"

	"github.com/dockerfaasd/dockerfaasd/internal/h1"
)

// parseHead parses a request head (request line, fields, the blank line)
// into a request for the loop. It accepts only what it can judge without
// doubt: HTTP/1.1, origin-form target, CRLF lines, one Host, at most one
// Content-Length, no Transfer-Encoding, Expect or Upgrade, no obsolete
// line folding, valid names and values. Anything else (ok false) goes to
// net/http, which serves it or answers 400 as it always did.
func parseHead(head []byte) (req *http.Request, ok bool) {
	line, rest, ok := h1.CutLine(head)
	if !ok {
		return nil, false
	}
	method, line, ok1 := bytes.Cut(line, sp)
	target, proto, ok2 := bytes.Cut(line, sp)
	if !ok1 || !ok2 || !bytes.Equal(proto, http11) || !h1.ValidToken(method) ||
		len(target) == 0 || target[0] != '/' || !validTarget(target) {
		return nil, false
	}
	req = &http.Request{
		Method:        methodString(method),
		RequestURI:    string(target),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, 8),
		ContentLength: 0,
	}
	u, ok := parseURL(req.RequestURI)
	if !ok {
		return nil, false
	}
	req.URL = u
	hosts, lengths := 0, 0
	for {
		line, rest, ok = h1.CutLine(rest)
		if !ok {
			return nil, false
		}
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, colon)
		if !found || !h1.ValidToken(name) {
			return nil, false
		}
		value = bytes.Trim(value, " \t")
		if !h1.ValidValue(value) {
			return nil, false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			hosts++
			req.Host = string(value)
			if !validHost(value) {
				return nil, false
			}
		case "Content-Length":
			lengths++
			n, ok := h1.ParseLength(value)
			if !ok {
				return nil, false
			}
			req.ContentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade", "Te":
			return nil, false
		case "Connection":
			for _, t := range bytes.Split(value, comma) {
				t = bytes.Trim(t, " \t")
				switch {
				case bytes.EqualFold(t, []byte("close")):
					req.Close = true
				case bytes.EqualFold(t, []byte("upgrade")):
					return nil, false
				}
			}
		}
		if key == "Host" {
			continue // net/http keeps it in req.Host only
		}
		req.Header[key] = append(req.Header[key], string(value))
	}
	if hosts != 1 || lengths > 1 {
		return nil, false
	}
	// As net/http: an HTTP/1.0 cache directive read as its 1.1 one.
	if p := req.Header["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := req.Header["Cache-Control"]; !ok {
			req.Header["Cache-Control"] = []string{"no-cache"}
		}
	}
	return req, true
}

var (
	sp     = []byte(" ")
	colon  = []byte(":")
	comma  = []byte(",")
	http11 = []byte("HTTP/1.1")
)

// commonKeys are field names clients send on nearly every call, kept as
// constants so that reading them does not allocate.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language",
		"Authorization", "Connection", "Content-Length", "Content-Type", "Cookie", "Origin", "Referer",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Call-Id",
		"X-Request-Id", "Cache-Control", "Transfer-Encoding", "Expect", "Upgrade", "Te"} {
		m[k] = k
		lower := []byte(k)
		for i, c := range lower {
			if 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		m[string(lower)] = k
	}
	return m
}()

func canonicalKey(name []byte) string {
	if k, ok := commonKeys[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// knownMethods are returned as the constants, so that reading them does
// not allocate.
var knownMethods = [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodHead, http.MethodPatch, http.MethodOptions}

func methodString(m []byte) string {
	for _, k := range knownMethods {
		if string(m) == k {
			return k
		}
	}
	return string(m)
}

// validTarget reports whether a request target is printable ASCII; other
// bytes are judged by net/http.
func validTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validHost is net/http's check of a Host value, narrowed: letters,
// digits and the characters of names, IPv4 and bracketed IPv6 with port.
func validHost(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_' || c == '%':
		default:
			return false
		}
	}
	return true
}
