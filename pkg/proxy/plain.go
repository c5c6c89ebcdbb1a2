package proxy

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	frontloop "github.com/dockerfaasd/dockerfaasd/pkg/front"
)

// PlainHooks let the proxy serve the front loop's plain calls (see
// ServePlain) with the checks and counts of the handlers that otherwise
// stand in front of it.
type PlainHooks struct {
	// Authorize decides a call's credentials (its Authorization value,
	// possibly empty) from the client at remote, through the proxies
	// X-Forwarded-For names, as the handler in front of the proxy would. true lets the call through; false hands it to
	// that handler, which answers it (401, 429) and counts the failure.
	// Required.
	Authorize func(authorization []byte, remote string, forwardedFor [][]byte) bool
	// Count, when set, counts a call served, as the handler in front of
	// the proxy counts requests.
	Count func(code int, method string)
}

var _ frontloop.PlainServer = (*Proxy)(nil)

// EnablePlain has ServePlain serve the calls it can, with h's checks and
// counts; until then it declines every call. Call it before serving.
func (p *Proxy) EnablePlain(h PlainHooks) {
	if h.Authorize == nil {
		panic("proxy: PlainHooks without Authorize")
	}
	p.plain = &h
}

// ServePlain implements frontloop.PlainServer: a call to a function with
// ready replicas, which the proxy forwards itself, with credentials the
// hooks accept, is served here, its head written as bytes and a plain
// answer (plainAnswer's kind, with a Content-Type or an empty body)
// copied to the client the same way. Every other answer, and every
// failure, is written through the ResponseWriter of the ordinary path
// (Escalate), so what the client gets is what ServeHTTP sends. Calls this
// declines (unknown function, nothing ready, jobs, per-request isolation,
// bad credentials, a body over the limit) take ServeHTTP.
func (p *Proxy) ServePlain(pc *frontloop.PlainCall) bool {
	h := p.plain
	if h == nil || p.viaRP {
		return false
	}
	// A plain path has nothing escaped: it is its own escaped form.
	t, err := parseInvocationPath(string(pc.Path))
	if err != nil {
		return false
	}
	key := faas.Key(t.namespace, t.name)
	eps, known := p.resolver.Lookup(key)
	if !known || len(eps) == 0 || faas.IsJobRoute(eps) || faas.IsIsolatedRoute(eps) {
		return false
	}
	if p.maxBody > 0 && int64(len(pc.Body)) > p.maxBody {
		return false
	}
	if !h.Authorize(pc.Auth, pc.Remote, pc.ForwardedFor) {
		return false
	}

	ctx := pc.Begin()
	c := &call{start: time.Now(), target: t, key: key}
	if p.observe != nil {
		defer func() { p.observe(c.observedKey, c.code, time.Since(c.start)) }()
	}
	p.begin(c, string(pc.CallID))
	defer c.load.End()
	p.pickReplica(c, eps)

	exec := p.clientDeadlines(pc, c)
	p.forwardPlain(ctx, exec, pc, c)
	if h.Count != nil {
		h.Count(c.code, pc.Method)
	}
	return true
}

// forwardPlain is forward for a plain call.
func (p *Proxy) forwardPlain(ctx context.Context, exec time.Duration, pc *frontloop.PlainCall, c *call) {
	dialBy := dialDeadline(exec)
	uc, err := p.replicaConn(ctx, dialBy, c)
	if err != nil {
		w, _ := pc.Escalate()
		p.upstreamFailed(ctx, w, c, err)
		return
	}
	ex := exchange{p: p, ctx: ctx, exec: exec, dialBy: dialBy, c: c, uc: uc}
	if len(pc.Body) > 0 {
		ex.body = http.NoBody // sent: never replayed
	}
	err = ex.writePlain(pc)
	if err == nil {
		var done bool
		if done, err = ex.answerPlain(pc); done {
			return
		}
	}
	// An answer to write through the ordinary path, or a failure.
	w, r := pc.Escalate()
	ex.r, ex.w, ex.rc = r, w, http.NewResponseController(w)
	var resp *http.Response
	if err == nil {
		resp, err = ex.readAnswer()
	}
	if resp, err = ex.replay(resp, err); err != nil {
		ex.retire()
		p.upstreamFailed(ctx, w, c, err)
		return
	}
	ex.respond(w, resp)
}

// writePlain sends a plain call's request: writeHead's head from the
// call's fields, and its body.
func (ex *exchange) writePlain(pc *frontloop.PlainCall) error {
	uc, c := ex.uc, ex.c
	if ex.exec > 0 {
		uc.armExec(ex.exec)
	}
	ex.stop = afterFunc(ex.ctx, uc.abortFn)
	bw := uc.bw
	bw.WriteString(pc.Method)
	bw.WriteByte(' ')
	bw.WriteString(c.path)
	if pc.HasQuery {
		bw.WriteByte('?')
		bw.Write(pc.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(c.upstream)
	bw.WriteString("\r\n")
	for i := range pc.NumFields() {
		k, v := pc.Field(i)
		writeFieldBytes(bw, k, v)
	}
	// As writeHead: the client's chain extended with its address, and an
	// outer proxy's host and scheme kept.
	if ip, _, err := net.SplitHostPort(pc.Remote); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range pc.ForwardedFor {
			bw.Write(v)
			bw.WriteString(", ")
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	if len(pc.ForwardedHost) > 0 {
		writeFieldBytes(bw, "X-Forwarded-Host", pc.ForwardedHost)
	} else {
		writeFieldBytes(bw, "X-Forwarded-Host", pc.Host)
	}
	if len(pc.ForwardedProto) > 0 {
		writeFieldBytes(bw, "X-Forwarded-Proto", pc.ForwardedProto)
	} else {
		writeField(bw, "X-Forwarded-Proto", "http")
	}
	writeField(bw, HeaderCallID, c.callID)
	writeField(bw, HeaderStartTime, c.startStr)
	switch {
	case len(pc.Body) > 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], int64(len(pc.Body)), 10))
		bw.WriteString("\r\n")
	case pc.Method == http.MethodPost || pc.Method == http.MethodPut || pc.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(pc.Body)
	return bw.Flush()
}

func writeFieldBytes(bw *bufio.Writer, k string, v []byte) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.Write(v)
	bw.WriteString("\r\n")
}

// answerPlain writes the replica's answer to a plain call when it is
// plain (checkPlainHead) and needs nothing of the ordinary path (a type
// to sniff): done is true then. Otherwise nothing is consumed or written
// and err is a failure to read the answer's first bytes.
func (ex *exchange) answerPlain(pc *frontloop.PlainCall) (done bool, err error) {
	br := ex.uc.br
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return false, ex.cause(err)
		}
	}
	b, _ := br.Peek(br.Buffered())
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return false, nil
	}
	head := b[:end+2]
	a, _, ok := checkPlainHead(head)
	if !ok {
		return false, nil
	}
	_, fields, _ := bytes.Cut(head, crlf) // after the status line
	var hasType, hasDate, hasDuration bool
	for rest := fields; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, crlf)
		name, _, _ := cutField(line)
		switch {
		case equalFold(name, "Content-Type"), equalFold(name, "Content-Encoding"):
			hasType = true
		case equalFold(name, "Date"):
			hasDate = true
		case equalFold(name, HeaderDuration):
			hasDuration = true
		}
	}
	if !hasType && a.length > 0 {
		return false, nil // the ordinary path sniffs a type
	}

	c := ex.c
	c.code = a.code
	bw := pc.StartAnswer(a.code)
	for rest := fields; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, _ := cutField(line)
		var buf [64]byte
		key := canonicalName(buf[:0], name)
		if hopHeaders[string(key)] || string(key) == HeaderCallID || string(key) == HeaderStartTime {
			continue
		}
		bw.Write(key)
		bw.WriteString(": ")
		bw.Write(value)
		bw.WriteString("\r\n")
	}
	writeField(bw, HeaderCallID, c.callID)
	writeField(bw, HeaderStartTime, c.startStr)
	if !hasDuration {
		var num [32]byte
		bw.WriteString(HeaderDuration + ": ")
		bw.Write(strconv.AppendFloat(num[:0], time.Since(c.start).Seconds(), 'f', 6, 64))
		bw.WriteString("\r\n")
	}
	pc.EndHead(hasDate)
	_, _ = br.Discard(end + 4)

	// A sized body, flushed whenever the replica has nothing more
	// buffered (so a slowly written one flows) or after every piece for
	// a stream; one that arrived whole leaves with the head.
	var werr error
	for left := a.length; left > 0 && werr == nil; {
		if br.Buffered() == 0 {
			if _, err = br.Peek(1); err != nil {
				break
			}
		}
		chunk, _ := br.Peek(int(min(int64(br.Buffered()), left)))
		_, werr = bw.Write(chunk)
		_, _ = br.Discard(len(chunk))
		left -= int64(len(chunk))
		if werr == nil && left > 0 && (a.stream || br.Buffered() == 0) {
			werr = bw.Flush()
		}
	}
	if err == nil && werr == nil {
		ex.release(true)
		return true, nil
	}
	ex.retire()
	if werr != nil {
		err = werr
	} else {
		err = ex.cause(err)
	}
	if ex.ctx.Err() == nil {
		ex.p.log.WithFields(c.fields()).WithError(err).Warn("response body copy failed")
	}
	// The head is gone: only an aborted connection tells the client the
	// body is incomplete.
	panic(http.ErrAbortHandler)
}

var crlf = []byte("\r\n")

// canonicalName appends the canonical form of a valid field name
// (textproto.CanonicalMIMEHeaderKey's) to dst: without an allocation
// for a name that fits dst's capacity.
func canonicalName(dst, name []byte) []byte {
	upper := true
	for _, ch := range name {
		switch {
		case upper && 'a' <= ch && ch <= 'z':
			ch -= 'a' - 'A'
		case !upper && 'A' <= ch && ch <= 'Z':
			ch += 'a' - 'A'
		}
		dst = append(dst, ch)
		upper = ch == '-'
	}
	return dst
}
