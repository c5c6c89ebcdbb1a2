// Package h1 holds the HTTP/1.1 syntax checks shared by the daemon's own
// request loop (pkg/front) and its forwarding path (pkg/proxy): the
// pieces of a head they read or write without net/http.
package h1

import "bytes"

// CutLine cuts the first CRLF-ended line off b. A bare LF or CR, or a
// line starting with white space (obsolete folding), is not taken (ok
// false): net/http judges those.
func CutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line, rest = b[:i-1], b[i+1:]
	if bytes.IndexByte(line, '\r') >= 0 || len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return nil, nil, false
	}
	return line, rest, true
}

// ParseLength parses a Content-Length value: digits only, no sign, at most
// 18 of them (no overflow).
func ParseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ValidToken reports whether b is an RFC 9110 token (a method, a field
// name).
func ValidToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() [128]bool {
	var t [128]bool
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidValue reports whether a field value holds no control byte other
// than horizontal tab, so that it cannot split a head.
func ValidValue[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
