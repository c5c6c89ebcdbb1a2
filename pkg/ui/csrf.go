package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
)

// The console is behind basic auth, which a browser sends on its own with
// every request to the origin, including a form posted from another site.
// Two checks stop such cross-site requests:
//
//   - every form carries a token, HMAC-SHA256 under a key drawn at random
//     when the daemon starts, of the basic-auth user and the form's action
//     path. Another site cannot read a page to learn it, and a token is good
//     only for its own form and user (and until the daemon restarts);
//   - a POST whose Origin (or, without one, Referer) names another host is
//     refused, whatever its token.

// csrfField is the name of the token's form field.
const csrfField = "csrf"

// token is the form token of user for the form posting to action.
func (h *Handler) token(user, action string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(action))
	return hex.EncodeToString(m.Sum(nil))
}

// validToken checks got against the token of r's user for r's path.
func (h *Handler) validToken(r *http.Request, got string) bool {
	want := h.token(user(r), r.URL.Path)
	return hmac.Equal([]byte(got), []byte(want))
}

// sameOrigin reports whether r's Origin, or its Referer when there is no
// Origin, names r's own host. A request with neither (curl, an old
// browser) is judged by its token alone.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	u, err := url.Parse(src)
	if err != nil {
		return false
	}
	return u.Host == r.Host
}

// user is the basic-auth user of r ("" without credentials; the API
// refuses those before the console sees them).
func user(r *http.Request) string {
	u, _, _ := r.BasicAuth()
	return u
}
