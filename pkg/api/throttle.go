package api

import (
	"container/list"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the login throttle where Auth leaves them zero.
const (
	// DefaultFailureWindow is how long failed logins are remembered.
	DefaultFailureWindow = time.Minute
	// maxTrackedClients bounds the throttle's memory: beyond it the client
	// whose window started first is forgotten.
	maxTrackedClients = 10000
)

// authMetrics count login failures and refusals; they exist even when the
// throttle is off, so a dashboard can alert on guessing either way.
type authMetrics struct {
	failures, throttled prometheus.Counter
}

func newAuthMetrics(reg prometheus.Registerer) authMetrics {
	m := authMetrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfaasd_auth_failures_total",
			Help: "Requests with basic auth credentials that were wrong.",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfaasd_auth_throttled_total",
			Help: "Requests refused with 429 because their client address failed to log in too often.",
		}),
	}
	if reg == nil {
		return m
	}
	// A second router on the same registry (tests) shares the counters.
	for _, c := range []*prometheus.Counter{&m.failures, &m.throttled} {
		var are prometheus.AlreadyRegisteredError
		if err := reg.Register(*c); errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				*c = existing
			}
		}
	}
	return m
}

// throttle remembers failed logins per client and refuses a client that
// failed max times within one window until that window ends. A window
// starts at a client's first failure. Every request carrying credentials
// reserves one failure before they are checked, released when they are
// right: a burst of concurrent guesses therefore cannot run past max.
// A success resets nothing: a guesser behind the same NAT as a real user
// must not be given fresh attempts by the user's logins.
type throttle struct {
	max     int
	window  time.Duration
	limit   int // clients tracked at most
	trusted []netip.Prefix
	now     func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*list.Element // of *attempts
	order   *list.List                     // oldest window first
}

// attempts is one client's current window.
type attempts struct {
	client  netip.Prefix
	start   time.Time
	failed  int
	logged  bool // the refusal was logged in this window
	removed bool
}

func newThrottle(max int, window time.Duration, trusted []netip.Prefix, now func() time.Time) *throttle {
	if window <= 0 {
		window = DefaultFailureWindow
	}
	if now == nil {
		now = time.Now
	}
	return &throttle{
		max: max, window: window, limit: maxTrackedClients, trusted: trusted, now: now,
		clients: map[netip.Prefix]*list.Element{},
		order:   list.New(),
	}
}

// current returns the live window of c, dropping an expired one; nil if
// none.
func (t *throttle) current(c netip.Prefix, now time.Time) *attempts {
	e, ok := t.clients[c]
	if !ok {
		return nil
	}
	a := e.Value.(*attempts)
	if now.Before(a.start.Add(t.window)) {
		return a
	}
	t.remove(e)
	return nil
}

func (t *throttle) remove(e *list.Element) {
	a := e.Value.(*attempts)
	a.removed = true
	delete(t.clients, a.client)
	t.order.Remove(e)
}

// settle decides, under one lock, a request from c whose credentials were
// checked already (attempted: it carried Basic credentials; valid: the
// right ones). A client that failed max times in its window is refused
// (wait > 0) whatever it sent, so a guess that happens to be right does not
// tell. Otherwise a wrong attempt counts one failure; refusedNow is true
// for the failure that reaches max, the first time in its window, so that
// is logged once. Decisions are serialised here, so a burst of parallel
// guesses gets no more than max answers that are not 429, and concurrent
// logins with the right password are never held back by each other.
func (t *throttle) settle(c netip.Prefix, attempted, valid bool) (wait time.Duration, refusedNow bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := t.current(c, now)
	if a != nil && a.failed >= t.max {
		return a.start.Add(t.window).Sub(now), false
	}
	if !attempted || valid {
		return 0, false
	}
	if a == nil {
		// Expired windows are at the front; then the oldest live one goes.
		for f := t.order.Front(); f != nil && (len(t.clients) >= t.limit || !now.Before(f.Value.(*attempts).start.Add(t.window))); f = t.order.Front() {
			t.remove(f)
		}
		a = &attempts{client: c, start: now}
		t.clients[c] = t.order.PushBack(a)
	}
	a.failed++
	if a.failed >= t.max && !a.logged {
		a.logged = true
		return 0, true
	}
	return 0, false
}

// client is the throttled unit a request comes from: the TCP peer's
// address, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For no trusted proxy added. An IPv6 client is its /64, the
// block one subscriber usually gets, so it cannot rotate addresses.
func (t *throttle) client(r *http.Request) netip.Prefix {
	return t.clientAt(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
}

// clientAt is client for a request from remote with these X-Forwarded-For
// values.
func (t *throttle) clientAt(remote string, xff []string) netip.Prefix {
	peer := remoteAddr(remote)
	addr := peer
	if t.trusts(peer) {
		hops := forwardedFor(xff)
		for i := len(hops) - 1; i >= 0; i-- {
			h, err := netip.ParseAddr(hops[i])
			if err != nil {
				break // not from a proxy we trust: stop at the last trusted hop
			}
			addr = h.Unmap()
			if !t.trusts(addr) {
				break
			}
		}
	}
	bits := addr.BitLen()
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // no address (a Unix socket): one shared client
	}
	return p
}

func (t *throttle) trusts(a netip.Addr) bool {
	for _, p := range t.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out = append(out, h)
			}
		}
	}
	return out
}

// ParseTrustedProxies reads AUTH_TRUSTED_PROXIES: IPs and CIDRs,
// comma-separated; "" trusts none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
