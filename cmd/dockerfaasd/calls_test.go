package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// callsFirst sends exactly the router's invocation paths to the calls
// handler and everything else on.
func TestCallsFirst(t *testing.T) {
	var got string
	mark := func(name string) http.Handler {
		return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got = name })
	}
	h := callsFirst(mark("calls"), mark("rest"))
	for _, tc := range []struct{ path, want string }{
		{"/function/fn", "calls"},
		{"/function/fn.ns/a?b=c", "calls"},
		{"/function/", "rest"},
		{"/function//fn", "rest"},
		{"/async-function/fn", "rest"},
		{"/system/functions", "rest"},
		{"/sum", "rest"},
	} {
		got = ""
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.path, nil))
		if got != tc.want {
			t.Errorf("%s: served by %q, want %q", tc.path, got, tc.want)
		}
	}
}
