package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

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
}

// basicAuth checks credentials against hashes of the configured ones.
type basicAuth struct {
	user, pass [sha256.Size]byte
	configured bool
	log        logrus.FieldLogger
}

func newBasicAuth(a Auth, log logrus.FieldLogger) *basicAuth {
	if a.Password == "" {
		log.Warn("no API password configured: every authenticated route will answer 401")
	}
	return &basicAuth{
		user:       sha256.Sum256([]byte(a.User)),
		pass:       sha256.Sum256([]byte(a.Password)),
		configured: a.Password != "",
		log:        log,
	}
}

// valid reports whether r carries the configured credentials. Comparing
// fixed-size hashes in constant time leaks neither the content nor the
// length of either secret, and both comparisons always run so the timing
// does not tell a wrong user from a wrong password. Any other scheme,
// including the bare "Bearer" faas-cli sends when not logged in, means no
// credentials.
func (a *basicAuth) valid(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	match := subtle.ConstantTimeCompare(uh[:], a.user[:]) & subtle.ConstantTimeCompare(ph[:], a.pass[:])
	return match == 1 && a.configured
}

// wrap protects next. The realm and body are the ones OpenFaaS uses, so
// clients that recognise them keep working.
func (a *basicAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.valid(r) {
			// Never log the Authorization header itself.
			a.log.WithFields(logrus.Fields{"path": r.URL.Path, "remote": r.RemoteAddr}).Debug("rejected request without valid credentials")
			w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
			writeError(w, a.log, http.StatusUnauthorized, "invalid credentials", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}
