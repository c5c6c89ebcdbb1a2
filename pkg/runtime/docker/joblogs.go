package docker

import (
	"bytes"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

// Bounds of the job log history kept in memory per function. A job's
// container is removed once it ran, and Docker's log driver is off for it
// (its stdout is the answer, not a log), so the stderr lines of a job
// function's runs live here only: the newest jobLogLines lines, at most
// jobLogBytes of text, per function. The execution records keep the head
// and tail of each run's stderr for longer.
const (
	jobLogLines = 1000
	jobLogBytes = 1 << 20
	// jobLogLineMax cuts longer lines into pieces, as Docker does (16 KiB).
	jobLogLineMax = 16 << 10
	// jobLogFollowBuffer is how many lines a follower may lag behind
	// before it misses lines: a log stream must never hold a job up.
	jobLogFollowBuffer = 256
)

// jobLogs keeps the stderr lines of job runs per function key, with
// followers that get new lines as they come.
type jobLogs struct {
	mu    sync.Mutex
	byKey map[string]*jobLog
}

type jobLog struct {
	lines []logs.Message // oldest first
	bytes int
	subs  map[chan logs.Message]struct{}
}

func newJobLogs() *jobLogs { return &jobLogs{byKey: map[string]*jobLog{}} }

// add keeps m as the newest line of key and hands it to key's followers;
// a follower whose buffer is full misses it.
func (j *jobLogs) add(key string, m logs.Message) {
	j.mu.Lock()
	defer j.mu.Unlock()
	l := j.byKey[key]
	if l == nil {
		l = &jobLog{}
		j.byKey[key] = l
	}
	l.lines = append(l.lines, m)
	l.bytes += len(m.Text)
	drop := 0
	for len(l.lines)-drop > jobLogLines || l.bytes > jobLogBytes && drop < len(l.lines)-1 {
		l.bytes -= len(l.lines[drop].Text)
		drop++
	}
	if drop > 0 {
		// Copy rather than reslice, so the dropped lines' memory goes.
		l.lines = append(make([]logs.Message, 0, len(l.lines)-drop+1), l.lines[drop:]...)
	}
	for ch := range l.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// history returns key's lines, oldest first, and with follow a channel of
// the lines added after them (none missing or repeated in between) and
// the function that ends the subscription.
func (j *jobLogs) history(key string, follow bool) ([]logs.Message, <-chan logs.Message, func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	l := j.byKey[key]
	var hist []logs.Message
	if l != nil {
		hist = append(hist, l.lines...)
	}
	if !follow {
		return hist, nil, func() {}
	}
	if l == nil {
		l = &jobLog{}
		j.byKey[key] = l
	}
	if l.subs == nil {
		l.subs = map[chan logs.Message]struct{}{}
	}
	ch := make(chan logs.Message, jobLogFollowBuffer)
	l.subs[ch] = struct{}{}
	return hist, ch, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		delete(l.subs, ch)
	}
}

// drop forgets key's lines (the function was removed); its followers get
// nothing more.
func (j *jobLogs) drop(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if l := j.byKey[key]; l != nil {
		l.lines, l.bytes = nil, 0
		if len(l.subs) == 0 {
			delete(j.byKey, key)
		}
	}
}

// lineWriter turns one run's stderr into log lines of its function: each
// line stamped when it was read, the instance the container's short ID.
// Write never fails: the logs must never stop a job.
type lineWriter struct {
	logs     *jobLogs
	key      string
	name, ns string
	instance string
	buf      []byte
	now      func() time.Time
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= jobLogLineMax {
				w.emit(w.buf[:jobLogLineMax])
				w.buf = append(w.buf[:0], w.buf[jobLogLineMax:]...)
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		for len(w.buf) > jobLogLineMax {
			w.emit(w.buf[:jobLogLineMax])
			w.buf = append(w.buf[:0], w.buf[jobLogLineMax:]...)
		}
		w.emit(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush sends a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

func (w *lineWriter) emit(line []byte) {
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	w.logs.add(w.key, logs.Message{Name: w.name, Namespace: w.ns, Instance: w.instance, Timestamp: now(), Text: string(line)})
}
