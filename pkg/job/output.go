package job

import (
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// trailers are declared on a streamed answer: how the process ended is
// known only after its output.
const trailers = HeaderExitCode + ", " + HeaderOOMKilled + ", " + HeaderTimedOut + ", " + proxy.HeaderDuration

// output is the process's stdout on its way to the client: held back up
// to limit bytes, so that the status can say how the process ended, then
// streamed with 200 (see the package doc). Write is called by one
// goroutine at a time (the runtime's), finish after the last Write.
type output struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	limit     int
	hdr       http.Header
	buf       []byte
	streaming bool
	n         int64     // bytes the process wrote
	capture   *headTail // for the record
	werr      error     // the client's connection failed
}

func newOutput(w http.ResponseWriter, limit int, hdr http.Header) *output {
	return &output{w: w, rc: http.NewResponseController(w), limit: limit, hdr: hdr, capture: newHeadTail(recordHeadTail)}
}

// Write implements io.Writer. It fails once the client's connection did,
// which makes the runtime kill the process: nobody reads its answer.
func (o *output) Write(p []byte) (int, error) {
	o.n += int64(len(p))
	_, _ = o.capture.Write(p)
	if o.werr != nil {
		return 0, o.werr
	}
	if !o.streaming {
		if len(o.buf)+len(p) <= o.limit {
			o.buf = append(o.buf, p...)
			return len(p), nil
		}
		o.stream()
		if o.werr != nil {
			return 0, o.werr
		}
	}
	if _, err := o.w.Write(p); err != nil {
		o.werr = err
		return 0, err
	}
	// A writer that cannot flush (an in-process caller's) gets it whole.
	if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		o.werr = err
		return 0, err
	}
	return len(p), nil
}

// stream sends the headers with 200 and what was held back.
func (o *output) stream() {
	o.streaming = true
	h := o.w.Header()
	for k, v := range o.hdr {
		h[k] = v
	}
	h.Set("Trailer", trailers)
	o.w.WriteHeader(http.StatusOK)
	if _, err := o.w.Write(o.buf); err != nil {
		o.werr = err
	}
	o.buf = nil
}

// finish sends the answer (or, streamed, its trailers) and returns the
// status the client got.
func (o *output) finish(a answer, res runtime.RunResult) int {
	h := o.w.Header()
	duration := ""
	if !res.Started.IsZero() && !res.Exited.IsZero() {
		duration = strconv.FormatFloat(res.Exited.Sub(res.Started).Seconds(), 'f', 6, 64)
	}
	if o.streaming {
		if a.exited {
			h.Set(HeaderExitCode, strconv.Itoa(res.ExitCode))
		}
		if res.OOMKilled {
			h.Set(HeaderOOMKilled, "true")
		}
		if res.TimedOut {
			h.Set(HeaderTimedOut, "true")
		}
		if duration != "" {
			h.Set(proxy.HeaderDuration, duration)
		}
		if a.code == proxy.StatusClientClosedRequest {
			return a.code
		}
		return http.StatusOK
	}
	for k, v := range o.hdr {
		h[k] = v
	}
	if a.exited {
		h.Set(HeaderExitCode, strconv.Itoa(res.ExitCode))
	}
	if res.OOMKilled {
		h.Set(HeaderOOMKilled, "true")
	}
	if duration != "" {
		h.Set(proxy.HeaderDuration, duration)
	}
	if a.msg != "" {
		if a.internal {
			h.Set(proxy.HeaderInternal, "proxy")
		}
		h.Del("Content-Type")
		http.Error(o.w, a.msg, a.code)
		return a.code
	}
	h.Set("Content-Length", strconv.Itoa(len(o.buf)))
	o.w.WriteHeader(a.code)
	_, _ = o.w.Write(o.buf)
	return a.code
}

// headTail keeps the first max bytes written and the last max after them.
type headTail struct {
	max   int
	head  []byte
	tail  []byte // the last bytes beyond head; trimmed to max when read
	total int64
}

func newHeadTail(max int) *headTail { return &headTail{max: max} }

// Write implements io.Writer; it never fails.
func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	h.total += int64(n)
	if room := h.max - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		h.tail = append(h.tail, p...)
		if len(h.tail) > 2*h.max {
			h.tail = append(h.tail[:0:0], h.tail[len(h.tail)-h.max:]...)
		}
	}
	return n, nil
}

// Head is the start, cut at a whole UTF-8 character.
func (h *headTail) Head() string {
	b := h.head
	if len(h.tail) > 0 {
		b = trimIncompleteEnd(b)
	}
	return string(b)
}

// Tail is the end beyond Head (at most max bytes), "" when Head holds all.
func (h *headTail) Tail() string {
	b := h.tail
	if len(b) > h.max {
		b = b[len(b)-h.max:]
	}
	// It starts where Head or the bound cut: a character cut there is
	// dropped.
	for len(b) > 0 && !utf8.RuneStart(b[0]) {
		b = b[1:]
	}
	return string(b)
}

// trimIncompleteEnd drops a UTF-8 character cut at the end of b.
func trimIncompleteEnd(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
