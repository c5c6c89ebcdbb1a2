package async

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Callback retry waits: doubled from the first to the last.
const (
	callbackFirstWait = time.Second
	callbackMaxWait   = time.Minute
)

// maxCallbacks bounds callback deliveries in flight, so that a receiver
// that hangs cannot make the daemon open connections without end.
const maxCallbacks = 32

// newCallbackClient is the HTTP client callbacks are sent with: the guard
// checks every address it dials, and redirects are not followed (a
// redirect could lead anywhere the guard would refuse).
func newCallbackClient(g Guard, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         g.DialContext(d),
			MaxIdleConnsPerHost: maxCallbacks,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// scheduleCallback delivers c's callback after wait.
func (s *Service) scheduleCallback(c store.Call, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return // delivered after the next start
	}
	if t := s.callbacks[c.ID]; t != nil {
		t.Stop()
	}
	stopped, ctx := s.ctx, s.work
	s.callbacks[c.ID] = time.AfterFunc(max(wait, 0), func() {
		s.mu.Lock()
		delete(s.callbacks, c.ID)
		if stopped.Err() != nil {
			s.mu.Unlock()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			select {
			case s.sending <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-s.sending }()
			s.deliver(ctx, c.ID)
		}()
	})
}

// deliver sends call id's callback once and records how it went.
func (s *Service) deliver(ctx context.Context, id string) {
	c, err := s.st.GetCall(ctx, id)
	if err != nil || c.Callback != store.CallbackPending {
		return
	}
	p, err := s.st.GetCallPayload(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.cfg.Log.WithError(err).WithField("call_id", id).Warn("async: cannot read a callback; trying again later")
		s.scheduleCallback(c, storeRetry)
		return
	}
	code, retryAfter, sendErr := s.send(ctx, c, p.Result)
	if ctx.Err() != nil {
		return // shutting down: sent again after the next start
	}
	retry := sendErr != nil || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	now := s.now().UTC()
	var wait time.Duration
	stored, err := s.st.UpdateCall(context.WithoutCancel(ctx), id, func(sc *store.Call) (store.PayloadChange, error) {
		if sc.Callback != store.CallbackPending {
			return store.PayloadChange{}, ErrFinished
		}
		sc.CallbackAttempts++
		sc.CallbackCode, sc.CallbackError = code, ""
		if sendErr != nil {
			sc.CallbackError = sendErr.Error()
		}
		switch {
		case code/100 == 2:
			sc.Callback, sc.CallbackNextAt = store.CallbackDelivered, time.Time{}
		case retry && sc.CallbackAttempts < s.cfg.CallbackAttempts:
			p := Policy{MinWait: callbackFirstWait, MaxWait: callbackMaxWait}
			wait = p.Wait(sc.CallbackAttempts, retryAfter, s.rnd())
			sc.CallbackNextAt = now.Add(wait)
			return store.PayloadChange{}, nil
		default:
			sc.Callback, sc.CallbackNextAt = store.CallbackFailed, time.Time{}
			if sc.CallbackError == "" {
				sc.CallbackError = fmt.Sprintf("receiver answered %d", code)
			}
		}
		return store.PayloadChange{Drop: true}, nil
	})
	log := s.cfg.Log.WithFields(logrus.Fields{"call_id": id, "function": c.Function, "status": code})
	switch {
	case errors.Is(err, ErrFinished):
	case err != nil:
		log.WithError(err).Error("async: cannot record a callback delivery; it will be sent again")
		s.scheduleCallback(c, storeRetry)
	case stored.Callback == store.CallbackDelivered:
		s.meters.callbacks.WithLabelValues("delivered").Inc()
	case stored.Callback == store.CallbackPending:
		s.meters.callbacks.WithLabelValues("retried").Inc()
		log.WithError(sendErr).WithField("wait", wait.Round(time.Millisecond).String()).Info("async: callback will be retried")
		s.scheduleCallback(stored, wait)
	default:
		s.meters.callbacks.WithLabelValues("failed").Inc()
		log.WithError(sendErr).WithField("attempts", stored.CallbackAttempts).Warn("async: callback not delivered")
	}
}

// send posts the callback of c with the function's result res: its body
// and headers, and the X-Function-* headers of the OpenFaaS queue worker.
func (s *Service) send(ctx context.Context, c store.Call, res *store.CallResult) (code int, retryAfter time.Duration, err error) {
	if res == nil {
		res = &store.CallResult{Code: c.LastCode}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.CallbackURL, bytes.NewReader(res.Body))
	if err != nil {
		return 0, 0, err
	}
	for k, vs := range res.Header {
		if k == HeaderInternal {
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	h := req.Header
	h.Set("X-Function-Status", strconv.Itoa(res.Code))
	h.Set("X-Function-Name", functionName(c.Function))
	h.Set("X-Call-Id", c.ID)
	h.Set("X-Duration-Seconds", strconv.FormatFloat(c.DurationSeconds, 'f', 6, 64))
	h.Set("X-Retry", strconv.Itoa(max(c.Attempts-1, 0)))
	h.Set("X-Retry-Max", strconv.Itoa(max(c.MaxAttempts-1, 0)))
	h.Set("User-Agent", s.cfg.UserAgent)
	resp, err := s.callback.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	retryAfter, _ = RetryAfter(resp.Header, s.now())
	return resp.StatusCode, retryAfter, nil
}
