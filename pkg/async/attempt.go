package async

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/metrics"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// HeaderInternal marks an error answered by the proxy itself rather than by
// the function: such a 502 or 503 means no replica could be reached, and is
// retried whatever the function's codes.
const HeaderInternal = proxy.HeaderInternal

// storeRetry is how long a call whose outcome could not be written waits
// before it runs again.
const storeRetry = 5 * time.Second

// outcome is what one attempt came to.
type outcome struct {
	res      *store.CallResult
	err      string // why there is no function response
	duration time.Duration
	bytesOut int64 // the whole response body, also beyond what res keeps
	retry    bool
	wait     time.Duration
}

// attempt invokes it once and writes the outcome before acting on it.
func (s *Service) attempt(ctx context.Context, q *fnQueue, it *item) {
	defer s.wg.Done()
	c := it.call
	// Built only when something is logged: most attempts log nothing.
	log := func() logrus.FieldLogger {
		return s.cfg.Log.WithFields(logrus.Fields{"call_id": c.ID, "function": c.Function})
	}
	s.meters.inflight.WithLabelValues(functionName(c.Function)).Inc()
	started := s.now().UTC()
	rec := s.newAttemptRecord(ctx, c, started)
	defer rec.settle() // its running write never outlives the attempt
	out, err := s.invokeStored(ctx, c, q.policy, func(bytesIn int64) { s.sendRecord(rec, bytesIn) })
	s.meters.inflight.WithLabelValues(functionName(c.Function)).Dec()
	switch {
	case ctx.Err() != nil:
		// Cancelled (Cancel wrote the record and forgot the item), or
		// abandoned at shutdown: left as stored, it runs after restart.
		if s.stopping() {
			s.finishRecord(rec, rec.ended(store.ExecutionInterrupted, "the daemon stopped while it ran; the call runs again after the next start", out.duration, s.now()))
		} else {
			s.finishRecord(rec, rec.ended(store.ExecutionFailed, "cancelled while it ran", out.duration, s.now()))
		}
		s.release(q, it, false, 0)
		return
	case errors.Is(err, store.ErrNotFound):
		// The call is gone from the store: pruned or never fully there.
		s.release(q, it, false, 0)
		return
	case err != nil:
		log().WithError(err).Warn("async: cannot read the call; trying again later")
		s.release(q, it, true, storeRetry)
		return
	}
	if out.res != nil && out.res.Code == http.StatusNotFound && out.res.Header.Get(HeaderInternal) != "" {
		// The proxy does not know the function: deleted after the call
		// was accepted, or (if the store still has it) not yet known to
		// the proxy, which then learns of it: try again later.
		if _, err := s.st.Get(ctx, c.Function); errors.Is(err, store.ErrNotFound) {
			s.finishRecord(rec, rec.ended(store.ExecutionFailed, "function deleted", out.duration, s.now()))
			if _, err := s.cancel(ctx, c.ID, "function deleted"); err != nil && !errors.Is(err, ErrFinished) {
				log().WithError(err).Warn("async: cannot cancel a call of a deleted function")
			}
			s.release(q, it, false, 0)
			return
		}
		out.retry, out.wait = true, q.policy.Wait(c.Attempts+1, 0, s.rnd())
	}
	// The outcome's record goes in the call's update (PayloadChange), once
	// no running write can overwrite it.
	rec.settle()
	stored, err := s.st.UpdateCall(context.WithoutCancel(ctx), c.ID, func(sc *store.Call) (store.PayloadChange, error) {
		pc, err := s.apply(sc, q.policy, out, started)
		final := rec.outcome(out, s.now())
		pc.Execution = &final
		return pc, err
	})
	switch {
	case errors.Is(err, ErrFinished), errors.Is(err, store.ErrNotFound):
		s.finishRecord(rec, rec.outcome(out, s.now()))
		s.release(q, it, false, 0) // cancelled while it ran
		return
	case err != nil:
		log().WithError(err).Error("async: cannot record an attempt; the call runs again")
		s.finishRecord(rec, rec.outcome(out, s.now()))
		s.release(q, it, true, storeRetry)
		return
	}
	code := outcomeCode(out)
	if stored.State == store.CallRetrying {
		s.meters.retries.WithLabelValues(functionName(c.Function), code).Inc()
		log().WithFields(logrus.Fields{"status": code, "attempt": stored.Attempts, "wait": out.wait.Round(time.Millisecond).String()}).Info("async: call will be retried")
		it.call = stored
		s.release(q, it, true, out.wait)
		return
	}
	s.meters.processed.WithLabelValues(functionName(c.Function), code).Inc()
	if stored.State == store.CallFailed {
		log().WithFields(logrus.Fields{"status": code, "attempts": stored.Attempts, "error": stored.LastError}).Warn("async: call failed")
	}
	s.release(q, it, false, 0)
	if stored.Callback == store.CallbackPending {
		s.scheduleCallback(stored, 0)
	}
}

// release ends it's attempt: its slot is given back and it is either
// forgotten or, with again, queued after wait.
func (s *Service) release(q *fnQueue, it *item, again bool, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q.running--
	it.running, it.cancel = false, nil
	held := s.items[it.call.ID] == it
	switch {
	case !held:
	case again && s.ctx.Err() == nil:
		s.waitLocked(q, it, wait)
	default:
		delete(s.items, it.call.ID)
	}
	s.pumpLocked(q)
	s.dropIdleLocked(q)
}

// apply writes an attempt's outcome into the stored call: retrying with
// its next time, or final with its callback due.
func (s *Service) apply(c *store.Call, p Policy, out outcome, started time.Time) (store.PayloadChange, error) {
	if !c.Pending() {
		return store.PayloadChange{}, ErrFinished
	}
	now := s.now().UTC()
	c.Attempts++
	if c.MaxAttempts == 0 {
		c.MaxAttempts = p.Attempts
	}
	if c.StartedAt.IsZero() {
		c.StartedAt = started
	}
	c.DurationSeconds = out.duration.Seconds()
	c.LastCode, c.LastError = 0, out.err
	if out.res != nil {
		c.LastCode = out.res.Code
	}
	if out.retry && c.Attempts < c.MaxAttempts {
		c.State, c.NextAttemptAt = store.CallRetrying, now.Add(out.wait)
		return store.PayloadChange{}, nil
	}
	c.State, c.NextAttemptAt, c.FinishedAt = store.CallFailed, time.Time{}, now
	if out.res != nil && out.res.Code < 400 {
		c.State = store.CallSucceeded
	}
	if c.CallbackURL == "" {
		return store.PayloadChange{Drop: true}, nil
	}
	c.Callback, c.CallbackNextAt = store.CallbackPending, now
	res := out.res
	if res == nil {
		res = &store.CallResult{Code: http.StatusServiceUnavailable}
	}
	return store.PayloadChange{Set: &store.CallPayload{Result: res}}, nil
}

// outcomeCode labels an outcome in metrics: its status, or "error".
func outcomeCode(o outcome) string {
	if o.res == nil {
		return "error"
	}
	return strconv.Itoa(o.res.Code)
}

// invokeStored loads c's request and sends it through the invocation
// handler, deciding from the answer whether to retry and when. started is
// called with the size of the body just before the request is sent.
func (s *Service) invokeStored(ctx context.Context, c store.Call, p Policy, started func(bytesIn int64)) (outcome, error) {
	payload, err := s.st.GetCallPayload(ctx, c.ID)
	if err != nil {
		return outcome{}, err
	}
	ns, name, _ := faas.SplitKey(c.Function)
	target := "/function/" + name + "." + ns + c.Path
	if c.Query != "" {
		target += "?" + c.Query
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, target, bytes.NewReader(payload.Body))
	if err != nil {
		// Accept checked what it stored; a request that cannot be built
		// will never be, so it fails without a retry.
		return outcome{err: "cannot build the request: " + err.Error()}, nil
	}
	req.RequestURI = target
	req.Header = payload.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("X-Call-Id", c.ID)
	req.ContentLength = int64(len(payload.Body))
	rec := newRecorder(s.cfg.MaxResultBytes)
	started(int64(len(payload.Body)))
	start := time.Now()
	serve(s.invoke, rec, req)
	o := outcome{duration: time.Since(start), res: rec.result(), bytesOut: rec.written}
	internal := o.res.Header.Get(HeaderInternal) != ""
	code := o.res.Code
	o.retry = p.Retries(code) || internal && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable)
	if o.retry {
		after, _ := RetryAfter(o.res.Header, s.now())
		o.wait = p.Wait(c.Attempts+1, after, s.rnd())
	}
	return o, nil
}

// serve runs h, turning the panic ReverseProxy uses to abort a response
// mid-body into a 502 kept as the result.
func serve(h http.Handler, rec *recorder, req *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			rec.aborted = true
		}
	}()
	h.ServeHTTP(rec, req)
}

// recorder is the ResponseWriter an attempt runs with: it keeps the status,
// the headers and up to limit bytes of the body.
type recorder struct {
	header    http.Header
	code      int
	body      bytes.Buffer
	limit     int64
	written   int64 // body bytes the function wrote, kept or not
	truncated bool
	aborted   bool
}

func newRecorder(limit int64) *recorder { return &recorder{header: http.Header{}, limit: limit} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.written += int64(len(b))
	room := r.limit - int64(r.body.Len())
	if int64(len(b)) > room {
		r.body.Write(b[:max(room, 0)])
		r.truncated = true
		return len(b), nil
	}
	return r.body.Write(b)
}

// Flush lets the proxy flush; there is nothing to flush to.
func (r *recorder) Flush() {}

// result is what was recorded, as kept for the callback.
func (r *recorder) result() *store.CallResult {
	code := r.code
	if code == 0 {
		code = http.StatusOK
	}
	h := r.header.Clone()
	if r.aborted {
		// The function's answer broke off: not a response to pass on.
		code = http.StatusBadGateway
		h.Set(HeaderInternal, "proxy")
	}
	if r.truncated {
		h.Set("X-Result-Truncated", "true")
	}
	h.Del("Content-Length")
	for _, k := range hopHeaders {
		h.Del(k)
	}
	return &store.CallResult{Code: code, Header: h, Body: bytes.Clone(r.body.Bytes())}
}

// hopHeaders are connection-level headers that must not be replayed.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te"}

// functionName is the metric label of a store key: "name.namespace".
func functionName(key string) string { return metrics.FunctionName(key) }
