package faas

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// AnnotationRoute gives a function a path route (DESIGN.md §12): the
// gateway serves it at that path prefix too, exactly as /function/NAME
// (`io.dockerfaas.route: /sum` makes /sum/x?y=1 the call /function/sum/x?y=1).
const AnnotationRoute = "io.dockerfaas.route"

// MaxRouteLen bounds a route: it is matched on every request that no other
// path of the gateway takes.
const MaxRouteLen = 128

// ReservedRoutes are the gateway's own path prefixes: a route may be
// neither one of them nor under one, so that no route can ever take a
// request from the API, the invocation paths or the UI (/build is the
// builder API).
var ReservedRoutes = []string{
	"/system", "/function", "/async-function", "/healthz", "/metrics", "/debug", "/ui", "/build",
}

// Route is a function's path route as the route table holds it.
type Route struct {
	// Path is the route, e.g. "/sum".
	Path string `json:"path"`
	// Function and Namespace name the function it claims.
	Function  string `json:"function"`
	Namespace string `json:"namespace"`
	// Error says why the route is not served (another function created
	// earlier has it, or it is invalid); empty when it is served.
	Error string `json:"error,omitempty"`
}

// RouteOf reads a function's route from its annotations: "" when it has
// none, an error naming the annotation when it is not a valid route.
func RouteOf(annotations map[string]string) (string, error) {
	r, ok := annotations[AnnotationRoute]
	if !ok {
		return "", nil
	}
	if err := checkRoute(r); err != nil {
		return "", fmt.Errorf("annotations: %s %s: %w", AnnotationRoute, quoteRoute(r), err)
	}
	return r, nil
}

// checkRoute says what is wrong with r as a route, if anything.
func checkRoute(r string) error {
	switch {
	case r == "":
		return errors.New("must not be empty (leave the annotation out for no route)")
	case len(r) > MaxRouteLen:
		return fmt.Errorf("longer than %d bytes", MaxRouteLen)
	case r[0] != '/':
		return errors.New("must start with /")
	case r == "/":
		return errors.New("/ would take every path of the gateway")
	}
	for i := 0; i < len(r); i++ {
		if !routeByte(r[i]) {
			return errors.New("only letters, digits and - . _ ~ / are allowed")
		}
	}
	if strings.HasSuffix(r, "/") {
		return fmt.Errorf("must not end with / (the route serves its subpaths anyway: use %s)", strings.TrimRight(r, "/"))
	}
	if path.Clean(r) != r {
		return errors.New("must be a clean path (no empty, . or .. segments)")
	}
	for _, p := range ReservedRoutes {
		if UnderRoute(r, p) {
			return fmt.Errorf("%s is the gateway's own path prefix", p)
		}
	}
	return nil
}

// routeByte reports whether c may appear in a route: RFC 3986's
// unreserved characters and the segment separator, so that a route reads
// the same escaped or not.
func routeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
}

// UnderRoute reports whether the path p is the route r or under it, on
// segment boundaries: /sum/x is under /sum, /summary is not.
func UnderRoute(p, r string) bool {
	rest, ok := strings.CutPrefix(p, r)
	return ok && (rest == "" || rest[0] == '/')
}

// quoteRoute renders a route for an error message, cut and quoted so that
// a huge or odd value stays readable.
func quoteRoute(r string) string {
	if len(r) > MaxRouteLen+8 {
		r = r[:MaxRouteLen+8] + "..."
	}
	return fmt.Sprintf("%q", r)
}
