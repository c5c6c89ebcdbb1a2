package front

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dockerfaasd/dockerfaasd/internal/h1"
)

// bodyHold is how much of an answer is held before its head is written,
// as net/http's server does: an answer that ends within it gets a
// Content-Length, a longer one or a flushed one is sent chunked unless
// the handler gave its length.
const bodyHold = 2 << 10

// response is the loop's http.ResponseWriter. It follows net/http's
// server in what it adds to an answer (Date, Content-Length or chunked
// framing, a sniffed Content-Type, Connection: close), in what it refuses
// (a body for HEAD, 204 or 304, more than the declared length) and in
// taking the fields as they were at WriteHeader (trailers excepted).
type response struct {
	c      *conn
	req    *http.Request
	body   *body // nil without a request body
	bw     *bufio.Writer
	header http.Header // the handler's, live
	sent   http.Header // as it was at WriteHeader: the head's fields

	status      int
	wroteHeader bool
	headSent    bool
	chunked     bool
	declared    int64 // Content-Length the handler set, or -1
	written     int64
	held        []byte
	trailers    []string
	closeAfter  bool // announced with Connection: close
	overrun     bool // closed after the answer, unannounced
	fullDuplex  bool
	failed      error
}

func newResponse(c *conn, req *http.Request, b *body) *response {
	if c.header == nil {
		c.header, c.sent = make(http.Header, 8), make(http.Header, 8)
	} else {
		clear(c.header)
	}
	return &response{c: c, req: req, body: b, bw: c.bufs.w, header: c.header, declared: -1, held: c.bufs.body[:0]}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return // net/http logs "superfluous WriteHeader"; the answer stands
	}
	if code < 100 || code > 999 {
		panic("front: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational answer (103 Early Hints) goes out at once with
		// the fields set so far.
		w.writeStatusLine(code)
		w.writeFields(w.header, code)
		w.bw.WriteString("\r\n")
		w.fail(w.bw.Flush())
		return
	}
	w.status, w.wroteHeader = code, true
	// The head says what the fields were now, as net/http's copy does;
	// the map is the connection's, reused (values are shared, not copied).
	w.sent = w.c.sent
	clear(w.sent)
	for k, vv := range w.header {
		w.sent[k] = vv
	}
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if n, ok := h1.ParseLength([]byte(textproto.TrimString(cl))); ok {
			w.declared = n
		} else {
			delete(w.sent, "Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed != nil {
		return 0, w.failed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		w.overrun = true // net/http gives up on such a connection, unannounced
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headSent && w.written <= bodyHold {
		w.held = append(w.held, p...)
		return len(p), nil
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // counted, never sent
	}
	if !w.headSent {
		w.sendHead(false, p)
	}
	w.writeBody(p)
	return len(p), w.failed
}

func (w *response) writeBody(p []byte) {
	if w.req.Method == http.MethodHead || len(p) == 0 {
		return
	}
	if w.chunked {
		w.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.bw.WriteString("\r\n")
		w.bw.Write(p)
		_, err := w.bw.WriteString("\r\n")
		w.fail(err)
		return
	}
	_, err := w.bw.Write(p)
	w.fail(err)
}

// Flush sends what is written so far; http.Flusher.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed != nil {
		return w.failed
	}
	if !w.headSent {
		w.sendHead(false, nil)
	}
	w.fail(w.bw.Flush())
	return w.failed
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex serve
// http.ResponseController. The loop reads a request body and writes the
// answer independently, so full duplex only changes what happens to a
// body left unread when the head is written (nothing, as in net/http).
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

func (w *response) fail(err error) {
	if err != nil && w.failed == nil {
		w.failed = err
	}
}

// finish completes the answer after the handler returned.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(true, nil)
	}
	if w.chunked {
		w.bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				writeField(w.bw, k, v)
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					writeField(w.bw, name, v)
				}
			}
		}
		w.bw.WriteString("\r\n")
	}
	if w.declared >= 0 && w.written < w.declared && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		w.closeAfter = true // the client waits for bytes that will not come
	}
	w.fail(w.bw.Flush())
	return w.failed
}

// sendHead writes the status line and fields. final says the handler has
// returned, so the held bytes are the whole body; first is the write
// about to follow (for sniffing the type).
func (w *response) sendHead(final bool, first []byte) {
	w.headSent = true
	h := w.sent
	if h.Get("Connection") == "close" || w.req.Close || w.c.s.shutdown.Load() {
		w.closeAfter = true
	}
	// A request body the handler left unread: it is read and dropped up to
	// 256 KiB after the answer; with more left, the connection will close,
	// and net/http says so now.
	if b := w.body; b != nil && !w.fullDuplex {
		if left, _ := b.unread(); left >= discardMax {
			w.closeAfter = true
		}
	}
	allowed := bodyAllowed(w.status)
	isHead := w.req.Method == http.MethodHead
	te, hasTE := "", false
	if v, ok := h["Transfer-Encoding"]; ok && len(v) > 0 {
		te, hasTE = v[0], true
	}
	if tr, ok := h["Trailer"]; ok {
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = http.CanonicalHeaderKey(textproto.TrimString(k)); k != "" {
					w.trailers = append(w.trailers, k)
				}
			}
		}
	}
	hasTrailers := len(w.trailers) > 0 || hasPrefixedTrailer(h)
	var setLength string
	switch {
	case !allowed:
	case hasTE && te == "identity":
		w.closeAfter = true // the body ends with the connection
	case w.declared >= 0:
	case isHead:
		if final && !hasTrailers && !hasTE && w.written > 0 && w.written <= bodyHold {
			setLength = strconv.FormatInt(w.written, 10)
		}
	case final && !hasTrailers && !hasTE:
		setLength = strconv.FormatInt(w.written, 10)
	default:
		w.chunked = true
	}
	if _, ok := h["Content-Type"]; !ok && allowed && !hasTE && h.Get("Content-Encoding") == "" {
		sample := w.held
		if len(sample) == 0 {
			sample = first
		}
		if len(sample) > 0 {
			h.Set("Content-Type", http.DetectContentType(sample))
		}
	}
	w.writeStatusLine(w.status)
	w.writeFields(h, w.status)
	if _, ok := h["Date"]; !ok {
		w.bw.WriteString("Date: ")
		w.bw.WriteString(httpDate())
		w.bw.WriteString("\r\n")
	}
	if setLength != "" {
		w.bw.WriteString("Content-Length: ")
		w.bw.WriteString(setLength)
		w.bw.WriteString("\r\n")
	}
	if w.chunked {
		w.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		w.bw.WriteString("Connection: close\r\n")
	}
	w.bw.WriteString("\r\n")
	held := w.held
	w.held = nil
	w.writeBody(held)
	w.c.bufs.body = held[:0]
}

func (w *response) writeStatusLine(code int) { writeStatusLine(w.bw, code) }

// writeFields writes the handler's fields except those the loop decides
// (framing, Connection when it closes) or that come after the body
// (trailers), and, as net/http, no length or framing for an answer
// without a body and no type for a 304.
func (w *response) writeFields(h http.Header, status int) {
	allowed := bodyAllowed(status)
	for k, vv := range h {
		switch {
		case k == "Transfer-Encoding",
			k == "Content-Length" && (w.chunked || !allowed),
			k == "Content-Type" && status == http.StatusNotModified,
			k == "Connection" && w.closeAfter,
			strings.HasPrefix(k, http.TrailerPrefix),
			!h1.ValidToken(k):
			continue
		}
		for _, v := range vv {
			writeField(w.bw, k, v)
		}
	}
}

// writeField writes one field, with CR and LF in the value turned into
// spaces as net/http does.
func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

func hasPrefixedTrailer(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// bodyAllowed is net/http's rule: no body for 1xx, 204 and 304.
func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// httpDate is the Date value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := date.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &dateValue{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.s
}

type dateValue struct {
	sec int64
	s   string
}

var date atomic.Pointer[dateValue]
