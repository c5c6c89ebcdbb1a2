package front

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/h1"
)

// PlainServer serves function calls without an http.Request, header maps
// or a ResponseWriter: the loop hands it the calls it finds plain (see
// PlainCall), and it writes the answer's bytes itself. That is most of
// what a warm call costs the daemon above a bare hop (docs/data-plane.md).
type PlainServer interface {
	// ServePlain serves pc and returns true, or returns false, having
	// done nothing but look (Begin not called), and the loop serves the
	// request through the handler as any other.
	ServePlain(pc *PlainCall) bool
}

// maxPlainFields bounds the fields of a plain call: a call with more
// takes the handler's path.
const maxPlainFields = 32

// plainBodyMax bounds a plain call's body: with the head, it must fit in
// the loop's buffer (headMax), where it is read whole before the call.
const plainBodyMax = headMax

// PlainCall is a request the loop found plain: HTTP/1.1, GET, POST, PUT,
// PATCH or DELETE of a /function/ path made of letters, digits and
// "-._~/", one Host, a body that fits with the head in the loop's 8 KiB
// buffer, and no field but end-to-end ones the proxy forwards as they
// are (at most 32) and X-Forwarded-* (at most 4 X-Forwarded-For): no
// Transfer-Encoding, Expect, Upgrade, Te, Trailer, Keep-Alive, Pragma,
// Proxy-*, Forwarded or X-Start-Time, and a Connection field only to say
// keep-alive or close. Byte slices point into the
// loop's buffer and are valid until ServePlain returns.
type PlainCall struct {
	Method   string
	Path     []byte // the target's path, e.g. /function/echo/a
	RawQuery []byte // after the '?', when HasQuery
	HasQuery bool
	Host     []byte
	Auth     []byte // the Authorization value, also among the fields
	CallID   []byte // the X-Call-Id value (not among the fields)
	Body     []byte
	Remote   string // the client's address
	Close    bool   // the client asked to close after the answer

	// What an outer proxy reported (not among the fields): the values
	// of X-Forwarded-For in order, and the first X-Forwarded-Host and
	// X-Forwarded-Proto values (empty without one).
	ForwardedFor   [][]byte
	ForwardedHost  []byte
	ForwardedProto []byte
	xffBuf         [4][]byte // ForwardedFor's backing array

	fields  [maxPlainFields]plainField
	nfields int
	bodyLen int64

	c      *conn
	head   []byte // the request head, for Escalate
	ctx    context.Context
	cancel func()
	begun  bool
	w      *response // set by Escalate
}

type plainField struct {
	name  string // canonical
	value []byte
}

// NumFields is the number of end-to-end fields to forward.
func (pc *PlainCall) NumFields() int { return pc.nfields }

// Field is the i-th end-to-end field, its name canonical and its value
// trimmed, in the order the client sent them.
func (pc *PlainCall) Field(i int) (name string, value []byte) {
	f := &pc.fields[i]
	return f.name, f.value
}

// Begin takes the call: the connection's deadlines are set as for any
// request, the watch for the client going away starts, and the call's
// context (done when the client leaves) is returned.
func (pc *PlainCall) Begin() context.Context {
	c := pc.c
	pc.begun = true
	if t := c.s.srv.WriteTimeout; t > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(t))
	}
	ctx, cancel := c.requestContext()
	pc.ctx, pc.cancel = ctx, cancel
	c.mu.Lock()
	c.reqCancel, c.reqDone, c.fired, c.gone = cancel, false, false, false
	c.canWatch = c.bufs.r.Buffered() == len(pc.head)+len(pc.Body)
	c.mu.Unlock()
	c.timer.Reset(watchAfter)
	return ctx
}

// SetReadDeadline and SetWriteDeadline set the client connection's
// deadlines, as http.ResponseController's do.
func (pc *PlainCall) SetReadDeadline(t time.Time) error  { return pc.c.nc.SetReadDeadline(t) }
func (pc *PlainCall) SetWriteDeadline(t time.Time) error { return pc.c.nc.SetWriteDeadline(t) }

// StartAnswer writes the status line of the answer and returns the
// writer for its fields (each a "Name: value\r\n" line, with no framing
// field but a Content-Length) and, after EndHead, its body.
func (pc *PlainCall) StartAnswer(code int) *bufio.Writer {
	bw := pc.c.bufs.w
	writeStatusLine(bw, code)
	return bw
}

// EndHead ends the answer's head with the fields the loop adds: Date
// (unless hasDate) and Connection: close when the connection ends after
// this answer.
func (pc *PlainCall) EndHead(hasDate bool) {
	bw := pc.c.bufs.w
	if !hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if pc.closing() {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

func (pc *PlainCall) closing() bool { return pc.Close || pc.c.s.shutdown.Load() }

// Escalate turns the call into an ordinary one for an answer the server
// cannot write as plain bytes (or an error to report): the request as
// the handler would have had it (its body already consumed) and a
// ResponseWriter. Nothing may have been written by StartAnswer.
func (pc *PlainCall) Escalate() (http.ResponseWriter, *http.Request) {
	req, ok := parseHead(pc.head)
	if !ok {
		panic("front: a plain call's head does not parse") // plain heads are a subset
	}
	req = req.WithContext(pc.ctx)
	req.RemoteAddr = pc.Remote
	req.Body = http.NoBody
	pc.w = newResponse(pc.c, req, nil)
	return pc.w, req
}

// reset clears pc for the connection's next call.
func (pc *PlainCall) reset() {
	c := pc.c
	*pc = PlainCall{c: c, Remote: c.remote}
}

// parsePlain fills pc from a request head and reports whether the call
// is plain.
func (pc *PlainCall) parsePlain(head []byte) bool {
	line, rest, ok := h1.CutLine(head)
	if !ok {
		return false
	}
	method, line, ok1 := bytes.Cut(line, sp)
	target, proto, ok2 := bytes.Cut(line, sp)
	if !ok1 || !ok2 || !bytes.Equal(proto, http11) {
		return false
	}
	switch string(method) {
	case http.MethodGet:
		pc.Method = http.MethodGet
	case http.MethodPost:
		pc.Method = http.MethodPost
	case http.MethodPut:
		pc.Method = http.MethodPut
	case http.MethodPatch:
		pc.Method = http.MethodPatch
	case http.MethodDelete:
		pc.Method = http.MethodDelete
	default:
		return false
	}
	path, query, hasQuery := bytes.Cut(target, question)
	if !plainPath(path) || !validTarget(query) || !FunctionCalls(string(path)) {
		return false
	}
	pc.Path, pc.RawQuery, pc.HasQuery = path, query, hasQuery
	hosts, lengths, ids, auths, fwdHosts, fwdProtos := 0, 0, 0, 0, 0, 0
	length := int64(0)
	for {
		line, rest, ok = h1.CutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, colon)
		if !found || !h1.ValidToken(name) {
			return false
		}
		value = bytes.Trim(value, " \t")
		if !h1.ValidValue(value) {
			return false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			hosts++
			if !validHost(value) {
				return false
			}
			pc.Host = value
			continue
		case "Content-Length":
			lengths++
			n, ok := h1.ParseLength(value)
			if !ok || n > plainBodyMax {
				return false
			}
			length = n
			continue
		case "Connection":
			switch {
			case bytes.EqualFold(value, []byte("close")):
				pc.Close = true
			case bytes.EqualFold(value, []byte("keep-alive")):
			default:
				return false
			}
			continue
		case "X-Call-Id":
			ids++
			pc.CallID = value
			continue
		case "Authorization":
			auths++
			pc.Auth = value
		case "X-Forwarded-For":
			if len(pc.ForwardedFor) == len(pc.xffBuf) {
				return false
			}
			pc.ForwardedFor = append(pc.xffBuf[:len(pc.ForwardedFor)], value)
			continue
		case "X-Forwarded-Host":
			if fwdHosts++; fwdHosts == 1 {
				pc.ForwardedHost = value
			}
			continue
		case "X-Forwarded-Proto":
			if fwdProtos++; fwdProtos == 1 {
				pc.ForwardedProto = value
			}
			continue
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Keep-Alive", "Pragma",
			"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Forwarded", "X-Start-Time":
			return false
		}
		if pc.nfields == maxPlainFields {
			return false
		}
		pc.fields[pc.nfields] = plainField{name: key, value: value}
		pc.nfields++
	}
	if hosts != 1 || lengths > 1 || ids > 1 || auths > 1 {
		return false
	}
	pc.bodyLen = length
	return true
}

var question = []byte("?")

// plainPath reports whether a target's path is made of the characters
// that no escaping or unescaping changes.
func plainPath(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '/':
		default:
			return false
		}
	}
	return true
}

// writeStatusLine writes an answer's status line as net/http's server
// does: the code's standard text, whatever the handler's source said.
func writeStatusLine(bw *bufio.Writer, code int) {
	if code >= 100 && code < 600 {
		if line := statusLines[code]; line != "" {
			bw.WriteString(line)
			return
		}
	}
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteString(" status code ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteString("\r\n")
}

// statusLines are the status lines of the codes that have a text, made
// once so that writing one takes no allocation.
var statusLines = func() (lines [600]string) {
	for code := 100; code < len(lines); code++ {
		if text := http.StatusText(code); text != "" {
			lines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return lines
}()

// servePlain offers the request whose head is the first n bytes of the
// buffer to the plain server. served is false when the request is not
// plain or the server declined it: nothing was consumed or written.
func (c *conn) servePlain(n int) (served, keep bool) {
	br := c.bufs.r
	pc := &c.pc
	pc.c = c
	pc.reset()
	head, _ := br.Peek(n)
	if !pc.parsePlain(head) {
		return false, false
	}
	total := n + int(pc.bodyLen)
	if total > br.Size() {
		return false, false
	}
	if br.Buffered() < total {
		// The body follows the head: wait for it as the handler's read
		// would, then parse again (the buffer may have moved).
		if t := c.s.srv.ReadTimeout; t > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(t))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		if _, err := br.Peek(total); err != nil {
			return false, false
		}
		pc.reset()
		head, _ = br.Peek(n)
		if !pc.parsePlain(head) {
			return false, false
		}
	}
	b, _ := br.Peek(total)
	pc.head, pc.Body = b[:n], b[n:total]

	served, aborted := c.runPlain(pc)
	if !served {
		if pc.begun {
			panic("front: ServePlain declined a call it had begun")
		}
		return false, false
	}
	c.endWatch()
	if pc.cancel != nil {
		pc.cancel()
	}
	if aborted {
		return true, false
	}
	var err error
	closeAfter := pc.closing()
	if w := pc.w; w != nil {
		err = w.finish()
		closeAfter = closeAfter || w.closeAfter || w.overrun
	} else {
		err = c.bufs.w.Flush()
	}
	if err != nil || c.gone || closeAfter {
		return true, false
	}
	_, _ = br.Discard(total)
	return true, true
}

// runPlain calls the plain server, turning a panic into a closed
// connection as runHandler does.
func (c *conn) runPlain(pc *PlainCall) (served, aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			served, aborted = true, true
			if v == http.ErrAbortHandler {
				return
			}
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log.WithFields(map[string]any{"remote": c.remote, "path": string(pc.Path), "panic": v}).
				Errorf("handler panicked\n%s", buf)
		}
	}()
	return c.s.plain.ServePlain(pc), false
}
