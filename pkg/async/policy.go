package async

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Annotations a function's deployment may carry to tune its async calls.
// The retry ones are OpenFaaS Pro's names with their meaning; max-inflight
// is ours (DESIGN.md §12).
const (
	AnnotationMaxInflight   = "io.dockerfaas.async.max-inflight"
	AnnotationRetryAttempts = "com.openfaas.retry.attempts"
	AnnotationRetryCodes    = "com.openfaas.retry.codes"
	AnnotationRetryMinWait  = "com.openfaas.retry.min_wait"
	AnnotationRetryMaxWait  = "com.openfaas.retry.max_wait"
)

// maxRetryAfter bounds how long a Retry-After may postpone a call, so that a
// function answering "come back next year" cannot park a call for good.
const maxRetryAfter = time.Hour

// DefaultRetryCodes are the statuses retried when neither the function nor
// the daemon's settings say otherwise (OpenFaaS Pro's defaults).
var DefaultRetryCodes = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// Policy is how one function's async calls are run: how many at once, and
// how failed attempts are retried.
type Policy struct {
	// MaxInflight is how many of the function's calls run at once.
	MaxInflight int
	// Attempts is the most invocations a call gets, the first included.
	Attempts int
	// Codes are the statuses that are retried (connection errors always
	// are: the proxy reports them as 502 or 503).
	Codes []int
	// MinWait is the wait before the first retry, doubled for each next one
	// up to MaxWait.
	MinWait, MaxWait time.Duration
}

// DefaultPolicy is what a function without async annotations gets unless
// the daemon's settings say otherwise.
var DefaultPolicy = Policy{
	MaxInflight: 10,
	Attempts:    10,
	Codes:       DefaultRetryCodes,
	MinWait:     time.Second,
	MaxWait:     2 * time.Minute,
}

// Valid checks that p can be used; it is how settings are validated.
func (p Policy) Valid() error {
	switch {
	case p.MaxInflight < 1:
		return fmt.Errorf("max in-flight %d: must be at least 1", p.MaxInflight)
	case p.Attempts < 1:
		return fmt.Errorf("attempts %d: must be at least 1", p.Attempts)
	case p.MinWait <= 0:
		return fmt.Errorf("minimum wait %s: must be positive", p.MinWait)
	case p.MaxWait < p.MinWait:
		return fmt.Errorf("maximum wait %s is below the minimum wait %s", p.MaxWait, p.MinWait)
	}
	for _, c := range p.Codes {
		if c < 100 || c > 599 {
			return fmt.Errorf("retry code %d: not an HTTP status", c)
		}
	}
	return nil
}

// ParsePolicy reads a function's async annotations over def (the daemon's
// defaults). An annotation present but malformed is an error naming it, so
// a deploy that carries one can be refused with a clear message.
func ParsePolicy(annotations map[string]string, def Policy) (Policy, error) {
	p := def
	var errs []error
	intOf := func(key string, dst *int) {
		v, ok := annotations[key]
		if !ok {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("annotation %s=%q: want a whole number of at least 1", key, v))
			return
		}
		*dst = n
	}
	durOf := func(key string, dst *time.Duration) {
		v, ok := annotations[key]
		if !ok {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("annotation %s=%q: want a positive Go duration such as 500ms or 2m", key, v))
			return
		}
		*dst = d
	}
	intOf(AnnotationMaxInflight, &p.MaxInflight)
	intOf(AnnotationRetryAttempts, &p.Attempts)
	durOf(AnnotationRetryMinWait, &p.MinWait)
	durOf(AnnotationRetryMaxWait, &p.MaxWait)
	if v, ok := annotations[AnnotationRetryCodes]; ok {
		codes, err := ParseCodes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("annotation %s=%q: %w", AnnotationRetryCodes, v, err))
		} else {
			p.Codes = codes
		}
	}
	// Only the two annotations together can contradict each other; one
	// alone moves the default it is measured against, so that whether a
	// deploy is valid does not depend on the daemon's settings.
	_, hasMin := annotations[AnnotationRetryMinWait]
	_, hasMax := annotations[AnnotationRetryMaxWait]
	switch {
	case len(errs) > 0 || p.MaxWait >= p.MinWait:
	case hasMin && hasMax:
		errs = append(errs, fmt.Errorf("annotation %s (%s) is below %s (%s)", AnnotationRetryMaxWait, p.MaxWait, AnnotationRetryMinWait, p.MinWait))
	case hasMin:
		p.MaxWait = p.MinWait
	default:
		p.MinWait = p.MaxWait
	}
	if err := errors.Join(errs...); err != nil {
		return def, err
	}
	return p, nil
}

// ParseCodes reads a comma-separated list of HTTP statuses ("429,503");
// an empty list is allowed and retries nothing but connection errors.
func ParseCodes(s string) ([]int, error) {
	codes := []int{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 599 {
			return nil, fmt.Errorf("%q is not an HTTP status code", f)
		}
		if !slices.Contains(codes, n) {
			codes = append(codes, n)
		}
	}
	slices.Sort(codes)
	return codes, nil
}

// Retries reports whether a response with code is retried.
func (p Policy) Retries(code int) bool { return slices.Contains(p.Codes, code) }

// Wait is how long to wait before the attempt after attempt (1 for the wait
// after the first): MinWait doubled per attempt, capped at MaxWait, with
// "equal jitter" (half fixed, half random, rnd in [0,1)) so that calls
// failing together do not come back together; never below MinWait. A
// Retry-After the function sent (retryAfter > 0) wins when it is longer.
func (p Policy) Wait(attempt int, retryAfter time.Duration, rnd float64) time.Duration {
	base := p.MinWait
	for i := 1; i < attempt && base < p.MaxWait; i++ {
		base *= 2
	}
	base = min(base, p.MaxWait)
	d := base/2 + time.Duration(rnd*float64(base/2))
	d = max(d, p.MinWait)
	if retryAfter > d {
		d = max(d, min(retryAfter, maxRetryAfter))
	}
	return d
}

// jitter is the random source of Wait.
func jitter() float64 { return rand.Float64() }

// RetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (relative to now). ok is false when it is absent or unreadable.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int(maxRetryAfter/time.Second))) * time.Second, true
	}
	if len(v) > 0 && v[0] >= '0' && v[0] <= '9' && strings.Trim(v, "0123456789") == "" {
		return maxRetryAfter, true // delay-seconds too large for an int
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}
