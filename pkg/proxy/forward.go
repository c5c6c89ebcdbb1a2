package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/h1"
)

// inlineBodyMax is the largest request body (with a Content-Length) that
// is written before the answer is read, on the handler's goroutine. It is
// far below the socket buffers of a local connection, so a function that
// answers before reading its input cannot deadlock against it; larger or
// unsized bodies are written by a goroutine while the answer is read.
const inlineBodyMax = 16 << 10

// max1xx bounds the informational answers read before the final one, as
// http.Transport does.
const max1xx = 5

// aLongTimeAgo is a deadline in the past: setting it on a connection makes
// its blocked reads and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// errUnexpectedSwitch is a 101 answer to a request that asked for no
// protocol switch (upgrades take the ReverseProxy path).
var errUnexpectedSwitch = errors.New("replica switched protocols unasked")

// forward sends an ordinary call to c.upstream over a pooled connection
// and streams the answer to w. It replaces ReverseProxy + http.Transport
// for the hot path: no outbound request or header map is built, and no
// goroutine is involved unless the request has a large or unsized body.
// ctx is the request's (the client leaving ends the call); exec is the
// exec timeout (0 for none), kept by the connection's own timer rather
// than a context per call; body is the request body already bounded by
// MaxBodyBytes (nil when the request has none).
func (p *Proxy) forward(ctx context.Context, exec time.Duration, w http.ResponseWriter, rc *http.ResponseController, r *http.Request, c *call, body io.ReadCloser) {
	dialBy := dialDeadline(exec)
	uc, err := p.replicaConn(ctx, dialBy, c)
	if err != nil {
		p.upstreamFailed(ctx, w, c, err)
		return
	}
	ex := exchange{p: p, ctx: ctx, exec: exec, dialBy: dialBy, r: r, c: c, body: body, uc: uc, w: w, rc: rc}
	resp, err := ex.replay(ex.roundTrip())
	if err != nil {
		ex.retire()
		if werr := ex.writerErr(); werr != nil {
			var mbe *http.MaxBytesError
			if errors.As(werr, &mbe) {
				c.tooLarge = true
			}
		}
		p.upstreamFailed(ctx, w, c, err)
		return
	}
	ex.respond(w, resp)
}

// dialDeadline is when a dial for a call with this exec timeout gives up:
// a dial counts against the exec timeout (zero: never).
func dialDeadline(exec time.Duration) time.Time {
	if exec <= 0 {
		return time.Time{}
	}
	return time.Now().Add(exec)
}

// replicaConn gets a connection to the call's replica. A dial that fails
// sends nothing, so the next replica may take the call: once, as
// retryTransport does, and the call moves there.
func (p *Proxy) replicaConn(ctx context.Context, dialBy time.Time, c *call) (*upConn, error) {
	uc, err := p.conns.get(ctx, dialBy, c.upstream)
	if err != nil && len(c.eps) > 1 && isDialError(err) && ctx.Err() == nil {
		p.logRetry(c, err)
		c.pick = (c.pick + 1) % len(c.eps)
		c.upstream = c.eps[c.pick].Addr
		c.load.On(c.eps[c.pick].Replica)
		uc, err = p.conns.get(ctx, dialBy, c.upstream)
	}
	return uc, err
}

// replay sends the request again on a fresh connection to the same
// replica when the pooled one was closed under it before the replica read
// anything and the request is safe to send again (replayable); otherwise
// it returns the first attempt's result.
func (ex *exchange) replay(resp *http.Response, err error) (*http.Response, error) {
	if err == nil || !ex.replayable(err) {
		return resp, err
	}
	ex.retire()
	if ex.uc, err = ex.p.conns.dial(ex.ctx, ex.dialBy, ex.c.upstream); err != nil {
		return nil, err
	}
	return ex.roundTrip()
}

// exchange is one request/answer on one upstream connection.
type exchange struct {
	p      *Proxy
	ctx    context.Context
	exec   time.Duration
	dialBy time.Time // when a dial for the call gives up (dialDeadline)
	r      *http.Request
	c      *call
	body   io.ReadCloser
	uc     *upConn
	w      http.ResponseWriter
	rc     *http.ResponseController

	stop    func() bool // unregisters the cancellation hook
	written chan error  // the body writer's result, nil when written inline

	// A plain answer (readPlainAnswer): its fields are already in w's
	// header map, and these stand for http.ReadResponse's results.
	plain     bool
	stream    bool
	plainResp http.Response
	plainBody plainBody
}

// roundTrip writes the request and reads the head of the final answer.
func (ex *exchange) roundTrip() (*http.Response, error) {
	uc := ex.uc
	conn := uc.conn
	// The exec timeout and the client leaving both end the call by
	// unblocking whatever the call is doing on the connection, without a
	// watcher goroutine: the connection's timer, and one hook on the
	// request's context.
	if ex.exec > 0 {
		uc.armExec(ex.exec)
	}
	ex.stop = afterFunc(ex.ctx, uc.abortFn)

	r := ex.r
	hasBody := ex.body != nil
	chunked := hasBody && r.ContentLength < 0
	if err := writeHead(uc.bw, r, ex.c, hasBody, chunked); err != nil {
		return nil, err
	}
	switch {
	case hasBody && !chunked && r.ContentLength <= inlineBodyMax:
		if err := writeBody(uc.bw, ex.body, r.ContentLength, false, nil); err != nil {
			ex.written = make(chan error, 1)
			ex.written <- err
			return nil, err
		}
		if err := uc.bw.Flush(); err != nil {
			return nil, err
		}
	case hasBody:
		if err := uc.bw.Flush(); err != nil {
			return nil, err
		}
		// The replica may answer while its input still arrives (and a
		// streaming one must): write the body beside the read.
		done := make(chan error, 1)
		ex.written = done
		go func(bw *bufio.Writer, body io.Reader, n int64, trailer http.Header) {
			err := writeBody(bw, body, n, chunked, trailer)
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				// Abort the request so that the read side stops waiting.
				_ = conn.Close()
			}
			done <- err
		}(uc.bw, ex.body, r.ContentLength, r.Trailer)
	default:
		if err := uc.bw.Flush(); err != nil {
			return nil, err
		}
	}

	return ex.readAnswer()
}

// readAnswer reads the head of the final answer to the request written.
func (ex *exchange) readAnswer() (*http.Response, error) {
	uc, r := ex.uc, ex.r
	// Not while a body writer runs: the body's size limit may touch w's
	// header map from its goroutine.
	if ex.written == nil {
		a, ok, err := readPlainAnswer(uc.br, r.Method, ex.w)
		switch {
		case err != nil:
			return nil, ex.cause(err)
		case ok:
			ex.plain = true
			ex.plainBody = plainBody{br: uc.br, left: a.length}
			ex.plainResp = http.Response{StatusCode: a.code, ContentLength: a.length, Body: &ex.plainBody}
			ex.stream = a.stream
			return &ex.plainResp, nil
		}
	}
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(uc.br, r)
		if err != nil {
			return nil, ex.cause(err)
		}
		code := resp.StatusCode
		switch {
		case code == http.StatusSwitchingProtocols:
			return nil, errUnexpectedSwitch
		case code >= 100 && code < 200 && n < max1xx:
			ex.informational(resp)
			continue
		case code >= 100 && code < 200:
			return nil, fmt.Errorf("more than %d informational answers", max1xx)
		}
		return resp, nil
	}
}

// cause returns err, wrapped in what ended the call when the client or
// the exec timeout did: the deadline they set surfaces as an i/o timeout
// that would otherwise read as the replica's fault.
func (ex *exchange) cause(err error) error {
	if cerr := ex.ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if ex.uc.expired.Load() {
		return fmt.Errorf("exec timeout: %w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// informational passes a 1xx answer (103 Early Hints and the like) to the
// client, as ReverseProxy does; 100 Continue is the proxy's own business.
func (ex *exchange) informational(resp *http.Response) {
	if resp.StatusCode == http.StatusContinue {
		return
	}
	h := ex.w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	ex.w.WriteHeader(resp.StatusCode)
	for k := range resp.Header {
		delete(h, k)
	}
}

// replayable reports whether the request may be sent again after err on a
// reused connection: the failure is the connection being closed before any
// answer, and the request has no body and a method that is safe to repeat
// (http.Transport's rule for the same race).
func (ex *exchange) replayable(err error) bool {
	if !ex.uc.reused || ex.body != nil || ex.ctx.Err() != nil || ex.uc.expired.Load() {
		return false
	}
	switch ex.r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// writerErr is the body writer's error, waiting for it briefly: the
// writer closes the connection when it fails, which is usually what made
// the read fail.
func (ex *exchange) writerErr() error {
	if ex.written == nil {
		return nil
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case err := <-ex.written:
		ex.written <- err // keep it for another look
		return err
	case <-t.C:
		return nil
	}
}

// release ends the exchange: the connection goes back to the pool when
// the call left it clean, else it is closed.
func (ex *exchange) release(clean bool) {
	if ex.stop != nil && !ex.stop() {
		clean = false // the cancellation hook ran: the deadline is poisoned
	}
	if !ex.uc.disarmExec() {
		clean = false // so did the exec timeout
	}
	if clean && ex.written != nil {
		select {
		case err := <-ex.written:
			clean = err == nil
		default:
			clean = false // the replica answered before reading all input
		}
	}
	if clean && ex.uc.br.Buffered() == 0 {
		ex.p.conns.put(ex.c.key, ex.uc)
		return
	}
	_ = ex.uc.conn.Close()
}

// retire closes the exchange's connection for good.
func (ex *exchange) retire() {
	if ex.stop != nil {
		ex.stop()
	}
	ex.uc.disarmExec()
	_ = ex.uc.conn.Close()
}

// respond streams the answer to the client.
func (ex *exchange) respond(w http.ResponseWriter, resp *http.Response) {
	p, c := ex.p, ex.c
	h := w.Header()
	if !ex.plain {
		copyEndToEnd(h, resp.Header)
		ex.stream = isStream(resp.Header.Get("Content-Type"))
	}
	h.Set(HeaderCallID, c.callID)
	h.Set(HeaderStartTime, c.startStr)
	// The watchdog measures the function itself; ours would include the hop.
	if len(h[HeaderDuration]) == 0 {
		h.Set(HeaderDuration, formatSeconds(time.Since(c.start)))
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	c.code = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	rc := ex.rc
	if announced > 0 {
		// Chunked, so that the trailers have somewhere to go.
		_ = rc.Flush()
	}

	// Event streams and bodies of unknown length are flushed after every
	// write, as ReverseProxy does. A sized body is flushed whenever the
	// replica has nothing more buffered, so a slowly written one flows,
	// while an answer that arrives whole leaves in one write with its head.
	everyWrite := resp.ContentLength < 0 || ex.stream
	bufp := p.buffers.pool.Get().(*[]byte)
	buf := *bufp
	var (
		written int64
		rerr    error
		werr    error
	)
	for {
		var n int
		n, rerr = resp.Body.Read(buf)
		if n > 0 {
			if _, werr = w.Write(buf[:n]); werr != nil {
				break
			}
			written += int64(n)
			if everyWrite || (rerr == nil && written < resp.ContentLength && ex.uc.br.Buffered() == 0) {
				_ = rc.Flush()
			}
		}
		if rerr != nil {
			break
		}
	}
	p.buffers.pool.Put(bufp)
	if rerr == io.EOF && werr == nil {
		ex.release(!resp.Close && (resp.ContentLength >= 0 || isChunked(resp) || resp.Body == http.NoBody))
		copyTrailers(h, resp.Trailer, announced)
		return
	}
	ex.retire()
	err := werr
	if err == nil {
		err = ex.cause(rerr)
	}
	if ex.r.Context().Err() == nil {
		p.log.WithFields(c.fields()).WithError(err).Warn("response body copy failed")
	}
	// Headers are gone: the only way to tell the client the body is
	// incomplete is to abort the connection, as ReverseProxy does. A
	// handler not run by net/http's server (the async queue's) returns.
	if ex.r.Context().Value(http.ServerContextKey) != nil {
		panic(http.ErrAbortHandler)
	}
}

// copyTrailers sends the answer's trailers after its body.
func copyTrailers(h, trailer http.Header, announced int) {
	if len(trailer) == 0 {
		return
	}
	if len(trailer) == announced {
		for k, vv := range trailer {
			h[k] = append(h[k], vv...)
		}
		return
	}
	for k, vv := range trailer {
		h[http.TrailerPrefix+k] = append(h[http.TrailerPrefix+k], vv...)
	}
}

func isChunked(resp *http.Response) bool {
	return len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
}

// isStream reports whether a Content-Type is one whose every write must
// reach the client at once: server-sent events and NDJSON.
func isStream(ct string) bool {
	// The media type without its parameters, as mime.ParseMediaType would
	// give it, without the allocations.
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return strings.EqualFold(ct, "text/event-stream") || strings.EqualFold(ct, "application/x-ndjson")
}

// upstreamFailed answers a call whose replica gave no answer: 499 when the
// client left, 413 when its body was over the limit, 504 on the exec
// timeout, 502 otherwise.
func (p *Proxy) upstreamFailed(ctx context.Context, w http.ResponseWriter, c *call, err error) {
	p.failUpstream(w, c, ctx.Err(), err)
}

// hopHeaders are removed in both directions (RFC 9110 7.6.1), with the
// headers a Connection header names.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// requestOwn are request headers the proxy writes itself.
var requestOwn = map[string]bool{
	"Host":              true,
	"Content-Length":    true,
	"Forwarded":         true,
	"X-Forwarded-For":   true,
	"X-Forwarded-Host":  true,
	"X-Forwarded-Proto": true,
	HeaderCallID:        true,
	HeaderStartTime:     true,
	// The proxy reads the body as soon as the replica may take it; the
	// client's 100 Continue comes from net/http's server on that read.
	"Expect": true,
}

// forwarded reports whether the client's field k goes to the replica.
// Middleware may set keys that are not canonical, so the filters compare
// canonical names (canonicalising a canonical key does not allocate).
func forwarded(k string, conn map[string]bool) bool {
	ck := textproto.CanonicalMIMEHeaderKey(k)
	return !hopHeaders[ck] && !requestOwn[ck] && !conn[ck]
}

// connectionTokens returns the header names a Connection header lists
// (canonical), or nil without one.
func connectionTokens(h http.Header) map[string]bool {
	vv := h["Connection"]
	if len(vv) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, v := range vv {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				m[textproto.CanonicalMIMEHeaderKey(t)] = true
			}
		}
	}
	return m
}

// hasToken reports whether a comma-separated header holds token, case
// insensitively.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// isUpgrade reports whether r asks to switch protocols (WebSocket).
func isUpgrade(r *http.Request) bool {
	return len(r.Header["Upgrade"]) > 0 && hasToken(r.Header["Connection"], "upgrade")
}

// copyEndToEnd adds the end-to-end headers of src to dst.
func copyEndToEnd(dst, src http.Header) {
	conn := connectionTokens(src)
	for k, vv := range src {
		if hopHeaders[k] || conn[k] {
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
}

// writeHead writes the request line and headers for the replica: the
// client's end-to-end headers as they are, then the proxy's own
// (X-Forwarded-*, X-Call-Id, X-Start-Time, framing), with the same values
// the ReverseProxy path sets (see rewrite and setForwarded).
func writeHead(bw *bufio.Writer, r *http.Request, c *call, hasBody, chunked bool) error {
	in := r.Header
	conn := connectionTokens(in)
	for k, vv := range in {
		if !forwarded(k, conn) {
			continue
		}
		if !h1.ValidToken(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vv {
			if !h1.ValidValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
	}

	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	u := url.URL{Path: c.path, RawPath: c.rawPath}
	bw.WriteString(u.EscapedPath())
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(c.upstream)
	bw.WriteString("\r\n")

	for k, vv := range in {
		if !forwarded(k, conn) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if hasToken(in["Te"], "trailers") {
		writeField(bw, "Te", "trailers")
	}

	// X-Forwarded-For extends the client's chain with its address;
	// X-Forwarded-Host and -Proto keep what an outer proxy reported.
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range in["X-Forwarded-For"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	fwdHost := in.Get("X-Forwarded-Host")
	if fwdHost == "" {
		fwdHost = r.Host
	}
	writeField(bw, "X-Forwarded-Host", fwdHost)
	proto := in.Get("X-Forwarded-Proto")
	switch {
	case proto != "":
	case r.TLS == nil:
		proto = "http"
	default:
		proto = "https"
	}
	writeField(bw, "X-Forwarded-Proto", proto)
	writeField(bw, HeaderCallID, c.callID)
	writeField(bw, HeaderStartTime, c.startStr)

	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			keys := make([]string, 0, len(r.Trailer))
			for k := range r.Trailer {
				keys = append(keys, k)
			}
			writeField(bw, "Trailer", strings.Join(keys, ", "))
		}
	case hasBody:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		// As net/http's client: these methods always say how long their body is.
		bw.WriteString("Content-Length: 0\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeField writes one header line; values were checked by writeHead or
// are the proxy's own.
func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeBody copies the request body: exactly n bytes, or chunked with
// the trailers the client sent after it.
func writeBody(bw *bufio.Writer, body io.Reader, n int64, chunked bool, trailer http.Header) error {
	if chunked {
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, body); err != nil {
			return err
		}
		if err := cw.Close(); err != nil { // the last chunk
			return err
		}
		// The client's trailers are known once its body was read.
		for k, vv := range trailer {
			if !h1.ValidToken(k) {
				continue
			}
			for _, v := range vv {
				if h1.ValidValue(v) {
					writeField(bw, k, v)
				}
			}
		}
		_, err := bw.WriteString("\r\n")
		return err
	}
	got, err := io.CopyN(bw, body, n)
	if err == io.EOF {
		return fmt.Errorf("request body ended after %d of %d bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return err
}
