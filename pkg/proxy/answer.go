package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/dockerfaasd/dockerfaasd/internal/h1"
)

// plainAnswer is an answer head read without http.ReadResponse: its
// fields went straight into the client's header map, so no Response and
// no header map of its own were built.
type plainAnswer struct {
	code   int
	length int64 // Content-Length, the only framing a plain answer has
	stream bool  // an event stream or NDJSON: flushed per write
}

// readPlainAnswer reads the head of the replica's answer when it is plain
// and already buffered whole: HTTP/1.1, a final status other than 204 and
// 304, one Content-Length, no Transfer-Encoding, Trailer or Connection
// option but keep-alive, CRLF lines and valid fields; the answer to a
// HEAD request is never taken. Its end-to-end fields are added to w's
// header map and the head is consumed. ok is false for any other answer,
// with nothing consumed and w untouched: http.ReadResponse then reads it
// as always.
// err is a failure to read the answer's first bytes.
func readPlainAnswer(br *bufio.Reader, method string, w http.ResponseWriter) (a plainAnswer, ok bool, err error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return a, false, err
		}
	}
	if method == http.MethodHead {
		return a, false, nil
	}
	b, _ := br.Peek(br.Buffered())
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return a, false, nil
	}
	head := b[:end+2] // the status line and fields, each ending in CRLF
	a, n, ok := checkPlainHead(head)
	if !ok {
		return a, false, nil
	}
	addPlainFields(w.Header(), head, n)
	_, _ = br.Discard(end + 4)
	return a, true, nil
}

var crlfcrlf = []byte("\r\n\r\n")

// checkPlainHead validates a head (each line ending in CRLF) for
// readPlainAnswer without keeping anything of it, and counts its fields.
func checkPlainHead(head []byte) (a plainAnswer, fields int, ok bool) {
	line, rest, ok := h1.CutLine(head)
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return a, 0, false
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return a, 0, false
		}
		a.code = a.code*10 + int(d-'0')
	}
	if a.code < 200 || a.code == http.StatusNoContent || a.code == http.StatusNotModified {
		return a, 0, false
	}
	a.length = -1
	for len(rest) > 0 {
		if line, rest, ok = h1.CutLine(rest); !ok {
			return a, 0, false
		}
		name, value, ok := cutField(line)
		if !ok {
			return a, 0, false
		}
		fields++
		switch {
		case equalFold(name, "Content-Length"):
			if a.length >= 0 {
				return a, 0, false
			}
			n, ok := h1.ParseLength(value)
			if !ok {
				return a, 0, false
			}
			a.length = n
		case equalFold(name, "Connection"):
			for _, t := range bytes.Split(value, []byte(",")) {
				if t = bytes.Trim(t, " \t"); len(t) > 0 && !equalFold(t, "keep-alive") {
					return a, 0, false // close, or fields to drop: http.ReadResponse's
				}
			}
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Trailer"):
			return a, 0, false
		case equalFold(name, "Content-Type"):
			a.stream = isStream(string(value))
		}
	}
	return a, fields, a.length >= 0
}

// addPlainFields adds the end-to-end fields of a head checked by
// checkPlainHead to h. Their names and values share one string, and the
// values one backing array, so a head costs two allocations plus the
// names that are not common and canonical.
func addPlainFields(h http.Header, head []byte, fields int) {
	s := string(head)
	vals := make([]string, fields)
	_, s, _ = strings.Cut(s, "\r\n") // the status line
	for i := 0; s != ""; i++ {
		var line string
		line, s, _ = strings.Cut(s, "\r\n")
		name, value, _ := strings.Cut(line, ":")
		key, ok := commonFields[name]
		if !ok {
			key = textproto.CanonicalMIMEHeaderKey(name)
		}
		if hopHeaders[key] {
			continue
		}
		vals[i] = strings.Trim(value, " \t")
		if old, ok := h[key]; ok {
			h[key] = append(old, vals[i])
		} else {
			h[key] = vals[i : i+1 : i+1]
		}
	}
}

// commonFields are answer field names in canonical form, kept so that a
// field so written takes no allocation for its name.
var commonFields = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Cache-Control", "Content-Encoding", "Content-Length", "Content-Type",
		"Date", "Etag", "Expires", "Last-Modified", "Location", "Server",
		"Set-Cookie", "Vary", "X-Duration-Seconds", "X-Call-Id", "X-Start-Time",
		"Content-Disposition", "Access-Control-Allow-Origin", "Connection", "Keep-Alive",
	} {
		m[k] = k
	}
	return m
}()

// cutField splits a field line into a valid name and a valid, trimmed
// value.
func cutField(line []byte) (name, value []byte, ok bool) {
	name, value, ok = bytes.Cut(line, []byte(":"))
	if !ok || !h1.ValidToken(name) {
		return nil, nil, false
	}
	value = bytes.Trim(value, " \t")
	return name, value, h1.ValidValue(value)
}

// equalFold is strings.EqualFold for a field name in bytes.
func equalFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// plainBody is the body of a plain answer: exactly length bytes.
type plainBody struct {
	br   *bufio.Reader
	left int64
}

func (b *plainBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *plainBody) Close() error { return nil }
