package push

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress reports an upload on a writer (stderr): a bar redrawn in place on
// a terminal, else one line every few seconds, so that CI logs stay short.
type Progress struct {
	// W receives the report.
	W io.Writer
	// Label names what is sent (the image).
	Label string
	// Expected is the estimated archive size (0: unknown).
	Expected int64
	// Terminal redraws one line in place; otherwise lines are appended.
	Terminal bool
	// Interval between reports (defaults: 200ms on a terminal, 5s else).
	Interval time.Duration
	// Gzip shows the compressed bytes sent too.
	Gzip bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	archive atomic.Int64 // archive bytes read from the engine
	wire    atomic.Int64 // bytes handed to the connection

	mu      sync.Mutex
	start   time.Time
	samples []sample // recent (time, archive bytes), for the current rate
	stop    chan struct{}
	stopped chan struct{}
}

// sample is the archive bytes read at one time.
type sample struct {
	at time.Time
	n  int64
}

// rateWindow is how far back the current rate looks: long enough to smooth
// bursts, short enough to show a stall.
const rateWindow = 3 * time.Second

// Start begins reporting in a goroutine until Finish.
func (p *Progress) Start() {
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
		if p.Terminal {
			p.Interval = 200 * time.Millisecond
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.start = p.Now()
	p.samples = []sample{{p.start, 0}}
	p.stop, p.stopped = stop, stopped
	p.mu.Unlock()
	go func() {
		defer close(stopped)
		t := time.NewTicker(p.Interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.report(false)
			}
		}
	}()
}

// Finish stops the reports and writes the final line: the totals when ok,
// else ends the bar's line so the error starts on its own.
func (p *Progress) Finish(ok bool) {
	p.mu.Lock()
	stop, stopped := p.stop, p.stopped
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-stopped
	if ok {
		p.report(true)
	} else if p.Terminal {
		fmt.Fprintln(p.W)
	}
}

// CountArchive wraps r so that what is read from it counts as archive bytes.
func (p *Progress) CountArchive(r io.Reader) io.Reader { return counter{r, &p.archive} }

// CountWire wraps r so that what is read from it counts as bytes sent.
func (p *Progress) CountWire(r io.Reader) io.Reader { return counter{r, &p.wire} }

type counter struct {
	r io.Reader
	n *atomic.Int64
}

func (c counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// report writes one report (final: the totals).
func (p *Progress) report(final bool) {
	line := p.line(final)
	switch {
	case p.Terminal && final:
		fmt.Fprintf(p.W, "\r%s\x1b[K\n", line)
	case p.Terminal:
		fmt.Fprintf(p.W, "\r%s\x1b[K", line)
	default:
		fmt.Fprintln(p.W, line)
	}
}

// line renders the state: bytes sent of the expected size, percentage and
// the rate over the last rateWindow; the final line has the average.
func (p *Progress) line(final bool) string {
	archive, wire := p.archive.Load(), p.wire.Load()
	now := p.Now()
	p.mu.Lock()
	elapsed := now.Sub(p.start)
	from := sample{p.start, 0}
	if !final {
		// Drop samples older than the window, keeping one to measure from.
		i := 0
		for i < len(p.samples)-1 && now.Sub(p.samples[i+1].at) >= rateWindow {
			i++
		}
		p.samples = append(p.samples[i:], sample{now, archive})
		from = p.samples[0]
	}
	p.mu.Unlock()
	rate := ""
	if secs := now.Sub(from.at).Seconds(); secs > 0 {
		rate = humanBytes(int64(float64(archive-from.n)/secs)) + "/s"
	}
	var b strings.Builder
	if final {
		fmt.Fprintf(&b, "sent %s: %s in %s", p.Label, humanBytes(archive), elapsed.Round(100*time.Millisecond))
		if rate != "" {
			b.WriteString(", " + rate)
		}
		if p.Gzip {
			fmt.Fprintf(&b, " (%s gzip on the wire)", humanBytes(wire))
		}
		return b.String()
	}
	pct := -1
	if p.Expected > 0 {
		// The size is an estimate: never claim 100% before the end.
		pct = min(int(archive*100/p.Expected), 99)
	}
	if p.Terminal {
		const width = 24
		fill := 0
		if pct >= 0 {
			fill = pct * width / 100
		}
		b.WriteString("[" + strings.Repeat("=", fill))
		if fill < width {
			b.WriteString(">" + strings.Repeat(" ", width-fill-1))
		}
		b.WriteString("] ")
	} else {
		b.WriteString("pushing " + p.Label + ": ")
	}
	b.WriteString(humanBytes(archive))
	if p.Expected > 0 {
		fmt.Fprintf(&b, " / ~%s (%d%%)", humanBytes(p.Expected), pct)
	}
	if rate != "" {
		b.WriteString(", " + rate)
	}
	if p.Gzip {
		fmt.Fprintf(&b, ", %s gzip sent", humanBytes(wire))
	}
	return b.String()
}

// humanBytes renders n in IEC units with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
