package proxy

import (
	"fmt"
	"net/http"
	"time"
)

// JobRunner runs the calls of job-mode functions: one fresh container per
// call (pkg/job implements it). The proxy hands it a call once it found
// the function's pseudo endpoint (faas.JobEndpoints), with the call's ID,
// its timeouts applied and its body bounded, as for any call; the load
// signals and metrics count it as any call.
type JobRunner interface {
	// ServeJob answers the call and returns the status it sent (or
	// StatusClientClosedRequest when the client went away).
	ServeJob(w http.ResponseWriter, r *http.Request, call JobCall) int
}

// JobCall is one call of a job function as the proxy resolved it.
type JobCall struct {
	// Key is "namespace/name"; Name and Namespace its parts.
	Key, Name, Namespace string
	// CallID is the call's X-Call-Id (the caller's, or a new one).
	CallID string
	// Start is when the proxy received the call; StartHeader how it is
	// sent in X-Start-Time.
	Start       time.Time
	StartHeader string
	// Path is the path the function sees (after /function/NAME, "/" at
	// least), unescaped.
	Path string
	// Timeout is the exec timeout: the function's exec_timeout, else the
	// daemon's (0: none). The job runner applies it to the process.
	Timeout time.Duration
	// MaxBodyBytes is the body bound already applied (0: none): a read
	// past it fails with *http.MaxBytesError, to be answered 413.
	MaxBodyBytes int64
}

// serveJob hands a call of a job function to the job runner.
func (p *Proxy) serveJob(w http.ResponseWriter, r *http.Request, c *call) {
	if p.jobs == nil {
		p.fail(w, c, http.StatusNotImplemented, fmt.Sprintf("function %s runs in job mode, which this runtime cannot run (job mode needs RUNTIME=docker)", c.ref()))
		return
	}
	if p.maxBody > 0 {
		if r.ContentLength > p.maxBody {
			p.fail(w, c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", p.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, p.maxBody)
	}
	exec := p.timeout
	rc := http.NewResponseController(w)
	if p.timeouts != nil {
		t := p.timeouts.Timeouts(c.key)
		if t.Exec > 0 {
			exec = t.Exec
		}
		if t.Read > 0 {
			_ = rc.SetReadDeadline(time.Now().Add(t.Read))
		}
	}
	if exec > 0 {
		// Room for the wait for a free slot (bounded like the wait for a
		// replica), the container's creation and removal, and the answer.
		_ = rc.SetWriteDeadline(time.Now().Add(p.readyWait + exec + 30*time.Second))
	}
	// The process may answer while its input still arrives.
	_ = rc.EnableFullDuplex()
	c.code = p.jobs.ServeJob(w, r, JobCall{
		Key: c.key, Name: c.name, Namespace: c.namespace,
		CallID: c.callID, Start: c.start, StartHeader: c.startStr,
		Path: c.path, Timeout: exec, MaxBodyBytes: p.maxBody,
	})
}
