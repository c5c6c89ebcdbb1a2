package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// ErrInvalidName is wrapped by ParseName when a function reference is empty
// or contains characters outside [-a-zA-Z_0-9] in its name or namespace.
var ErrInvalidName = errors.New("invalid function name")

// functionPrefix is the path prefix of synchronous invocations.
const functionPrefix = "/function/"

// ParseName splits a function reference "fn" or "fn.ns" at its last dot into
// name and namespace; without a dot the namespace is faas.DefaultNamespace.
// Both parts must be non-empty safe names, so that a reference can never
// smuggle a path, a key separator or a header-breaking byte into a store key.
func ParseName(s string) (name, namespace string, err error) {
	name, namespace = s, faas.DefaultNamespace
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		name, namespace = s[:i], s[i+1:]
	}
	if !safeName(name) || !safeName(namespace) {
		return "", "", fmt.Errorf("%w: %q", ErrInvalidName, s)
	}
	return name, namespace, nil
}

// safeName reports whether s matches [-a-zA-Z_0-9]+. A loop instead of a
// regexp because it runs on every request.
func safeName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// target is where an invocation path points: the function and the path the
// function itself should see.
type target struct {
	name, namespace string
	// path is the unescaped remainder after /function/{name}, "/" when empty;
	// rawPath is its original escaping when that differs from the default
	// one (e.g. an encoded slash), so the function sees the bytes the client sent.
	path, rawPath string
}

// parseInvocation maps a request URL onto a target. It works on the escaped
// path so that an encoded "/" in the remainder is not mistaken for a separator
// and is forwarded exactly as sent.
func parseInvocation(u *url.URL) (target, error) {
	return parseInvocationPath(u.EscapedPath())
}

// parseInvocationPath is parseInvocation for an escaped path.
func parseInvocationPath(esc string) (target, error) {
	rest, ok := strings.CutPrefix(esc, functionPrefix)
	if !ok {
		return target{}, fmt.Errorf("path %q is not under %s", esc, functionPrefix)
	}
	ref, remainder := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		ref, remainder = rest[:i], rest[i:]
	}
	name, ns, err := ParseName(ref)
	if err != nil {
		return target{}, err
	}
	if remainder == "" {
		return target{name: name, namespace: ns, path: "/"}, nil
	}
	p, err := url.PathUnescape(remainder)
	if err != nil {
		return target{}, fmt.Errorf("path of %s.%s: %w", name, ns, err)
	}
	t := target{name: name, namespace: ns, path: p}
	if p != remainder {
		t.rawPath = remainder
	}
	return t, nil
}
