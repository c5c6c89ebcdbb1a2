package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Auth configures HTTP basic auth.
type Auth struct {
	// User and Password are the only accepted credentials. An empty Password
	// rejects every protected request: failing closed is safer than serving
	// an unauthenticated API because a setting was lost.
	User, Password string
	// InvokeOpen serves /function/* without auth, as upstream OpenFaaS does.
	// Off by default: this project requires auth on invocation.
	InvokeOpen bool
	// FailuresMax wrong credentials from one client within FailureWindow
	// (0: DefaultFailureWindow) make every authenticated request of that
	// client answer 429 with Retry-After until the window ends, even with
	// the right credentials, so a guesser cannot tell when it found them.
	// 0 turns the throttle off.
	FailuresMax   int
	FailureWindow time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client;
	// from any other peer the header is ignored, as anyone can send it.
	TrustedProxies []netip.Prefix
	// Registerer receives dockerfaasd_auth_failures_total and
	// dockerfaasd_auth_throttled_total; nil keeps them unexported.
	Registerer prometheus.Registerer
	// now is the throttle's clock; nil means time.Now (tests set it).
	now func() time.Time
}

// basicAuth checks credentials against hashes of the configured ones.
type basicAuth struct {
	user, pass [sha256.Size]byte
	// header is the hash of the Authorization header that clients send for
	// the configured credentials ("Basic " and their standard base64):
	// one hash of the header as it came decides most calls.
	header     [sha256.Size]byte
	userName   string
	configured bool
	throttle   *throttle // nil: off
	metrics    authMetrics
	log        logrus.FieldLogger
}

func newBasicAuth(a Auth, log logrus.FieldLogger) *basicAuth {
	if a.Password == "" {
		log.Warn("no API password configured: every authenticated route will answer 401")
	}
	b := &basicAuth{
		user:       sha256.Sum256([]byte(a.User)),
		pass:       sha256.Sum256([]byte(a.Password)),
		header:     sha256.Sum256([]byte("Basic " + base64.StdEncoding.EncodeToString([]byte(a.User+":"+a.Password)))),
		userName:   a.User,
		configured: a.Password != "",
		metrics:    newAuthMetrics(a.Registerer),
		log:        log,
	}
	if a.FailuresMax > 0 {
		b.throttle = newThrottle(a.FailuresMax, a.FailureWindow, a.TrustedProxies, a.now)
	}
	return b
}

// check reports whether r carries the configured credentials, and whether
// it carries Basic credentials at all (only those are login attempts: no
// header, or faas-cli's bare "Bearer" when not logged in, are not).
// Comparing fixed-size hashes in constant time leaks neither the content
// nor the length of either secret, and both comparisons always run so the
// timing does not tell a wrong user from a wrong password.
func (a *basicAuth) check(r *http.Request) (valid, attempted bool, user string) {
	if a.knownHeader(r.Header["Authorization"]) {
		return true, true, a.userName
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false, false, ""
	}
	uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	match := subtle.ConstantTimeCompare(uh[:], a.user[:]) & subtle.ConstantTimeCompare(ph[:], a.pass[:])
	return match == 1 && a.configured, true, u
}

// knownHeader reports whether vv is exactly the header clients send for
// the configured credentials, comparing hashes in constant time. Any
// other header (another case or padding, a wrong secret) goes on to the
// full check.
func (a *basicAuth) knownHeader(vv []string) bool {
	return len(vv) == 1 && knownValue(a, vv[0])
}

// knownValue is knownHeader for one value.
func knownValue[T string | []byte](a *basicAuth, v T) bool {
	if !a.configured {
		return false
	}
	var buf [256]byte // hashed from the stack: no allocation per call
	if len(v) > len(buf) {
		return false
	}
	n := copy(buf[:], v)
	h := sha256.Sum256(buf[:n])
	return subtle.ConstantTimeCompare(h[:], a.header[:]) == 1
}

// allows reports whether wrap would let a request with this
// Authorization value, from remote through the proxies these
// X-Forwarded-For values name, through at once: the configured
// credentials as clients send them, from a client the throttle does not
// refuse. It counts nothing; a request it does not allow is for wrap to
// answer.
func (a *basicAuth) allows(authorization []byte, remote string, forwardedFor [][]byte) bool {
	if !knownValue(a, authorization) {
		return false
	}
	if a.throttle == nil {
		return true
	}
	var xff []string
	if len(forwardedFor) > 0 && a.throttle.trusts(remoteAddr(remote)) {
		// Read only from a trusted peer, as client does.
		xff = make([]string, len(forwardedFor))
		for i, v := range forwardedFor {
			xff[i] = string(v)
		}
	}
	wait, _ := a.throttle.settle(a.throttle.clientAt(remote, xff), true, true)
	return wait == 0
}

// wrap protects next. The realm and body are the ones OpenFaaS uses, so
// clients that recognise them keep working.
func (a *basicAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		valid, attempted, user := a.check(r)
		if a.throttle != nil {
			client := a.throttle.client(r)
			wait, refusedNow := a.throttle.settle(client, attempted, valid)
			if refusedNow {
				// Once per client and window: never the password, nor the header.
				a.log.WithFields(logrus.Fields{"client": client.String(), "user": user, "failures": a.throttle.max, "window": a.throttle.window.String()}).
					Warn("too many failed logins: this client is refused (429) until its window ends")
			}
			if wait > 0 {
				a.refuse(w, wait)
				return
			}
		}
		if !valid {
			if attempted {
				a.metrics.failures.Inc()
			}
			// Never log the Authorization header itself.
			a.log.WithFields(logrus.Fields{"path": r.URL.Path, "remote": r.RemoteAddr}).Debug("rejected request without valid credentials")
			w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
			writeError(w, a.log, http.StatusUnauthorized, "invalid credentials", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers a throttled client, whatever its credentials.
func (a *basicAuth) refuse(w http.ResponseWriter, wait time.Duration) {
	a.metrics.throttled.Inc()
	secs := strconv.Itoa(int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", secs)
	writeError(w, a.log, http.StatusTooManyRequests, "too many failed logins from this address: retry after "+secs+" seconds", nil)
}
