package proxy

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/internal/capturetest"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// invocationSeeds returns the targets (path and query) of the invocations
// faas-cli sent in the captures, for seeds (see capturetest.Seeds).
func invocationSeeds(f *testing.F) []string {
	f.Helper()
	var out []string
	for _, c := range capturetest.Seeds(f) {
		if strings.HasPrefix(c.Path, "/function/") || strings.HasPrefix(c.Path, "/async-function/") {
			t := c.Path
			if c.RawQuery != "" {
				t += "?" + c.RawQuery
			}
			out = append(out, t)
		}
	}
	return out
}

// FuzzParseName checks that a reference that parses splits into two safe
// names that rebuild it, and that nothing else parses.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"hello", "hello.openfaas-fn", "hello.dev", "a.b.c", ".x", "x.", "..", "../x",
		"%2e%2e", "a/b", "a\x00b", "Hello_World", ""} {
		f.Add(s)
	}
	for _, t := range invocationSeeds(f) {
		ref, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(t, "/function/"), "/async-function/"), "/")
		ref, _, _ = strings.Cut(ref, "?")
		f.Add(ref)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, ns, err := ParseName(s)
		if err != nil {
			if name != "" || ns != "" {
				t.Fatalf("ParseName(%q) failed (%v) but returned %q, %q", s, err, name, ns)
			}
			return
		}
		if !safeName(name) || !safeName(ns) {
			t.Fatalf("ParseName(%q) = %q, %q: not safe names", s, name, ns)
		}
		if s != name+"."+ns && !(s == name && ns == faas.DefaultNamespace) {
			t.Fatalf("ParseName(%q) = %q, %q, which do not rebuild it", s, name, ns)
		}
		if n2, ns2, err := ParseName(name + "." + ns); err != nil || n2 != name || ns2 != ns {
			t.Fatalf("ParseName(%q) = %q, %q, %v; want %q, %q", name+"."+ns, n2, ns2, err, name, ns)
		}
	})
}

// FuzzParseInvocation sends any request target through the server's own
// request parsing and then parseInvocation: what parses names a safe
// function, and the path the function sees is exactly the rest of the
// request path, in the same escaping.
func FuzzParseInvocation(f *testing.F) {
	for _, s := range []string{"/function/hello", "/function/hello/", "/function/hello.dev/a/b?x=1", "/function/hello/a%2Fb",
		"/function/hello/%2e%2e/x", "/function/../system/functions", "/function/%2e%2e", "/function/a%2Fb/x", "/function/hello//x",
		"/function/hello/%zz", "/function/", "/function", "/async-function/hello"} {
		f.Add(s)
	}
	for _, t := range invocationSeeds(f) {
		f.Add(t)
	}
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			return // no client could send it
		}
		tg, err := parseInvocation(r.URL)
		if err != nil {
			return
		}
		if !safeName(tg.name) || !safeName(tg.namespace) {
			t.Fatalf("%q: parsed to %q, %q", target, tg.name, tg.namespace)
		}
		if !strings.HasPrefix(tg.path, "/") {
			t.Fatalf("%q: function path %q does not start with /", target, tg.path)
		}
		// The escaped request path is the prefix, the reference (with or
		// without its namespace) and a remainder that unescapes to the
		// function's path, kept verbatim in rawPath when it differs.
		esc := r.URL.EscapedPath()
		matched := false
		for _, ref := range []string{tg.name + "." + tg.namespace, tg.name} {
			rem, ok := strings.CutPrefix(esc, functionPrefix+ref)
			if !ok || rem != "" && rem[0] != '/' {
				continue
			}
			matched = true
			switch p, err := url.PathUnescape(rem); {
			case rem == "" && (tg.path != "/" || tg.rawPath != ""):
				t.Fatalf("%q: no remainder, but parsed to %+v", target, tg)
			case rem != "" && (err != nil || p != tg.path):
				t.Fatalf("%q: remainder %q unescapes to %q (%v), parsed path %q", target, rem, p, err, tg.path)
			case tg.rawPath != "" && tg.rawPath != rem:
				t.Fatalf("%q: rawPath %q, remainder %q", target, tg.rawPath, rem)
			}
		}
		if !matched {
			t.Fatalf("%q (escaped path %q): parsed to %+v, which does not rebuild it", target, esc, tg)
		}
	})
}
