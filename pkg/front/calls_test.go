package front

import "testing"

// FunctionCalls must take exactly the paths the router sends to the
// invocation handler (/function/{name}, /function/{name}/,
// /function/{name}/{params:.*}, name not empty), or the fast path would
// answer a path the router answers otherwise.
func TestFunctionCalls(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/function/fn", true},
		{"/function/fn/", true},
		{"/function/fn.ns/a/b", true},
		{"/function/fn//x", true},
		{"/function/", false},
		{"/function", false},
		{"/function//fn", false},
		{"/functions/fn", false},
		{"/async-function/fn", false},
		{"/system/functions", false},
		{"/", false},
	} {
		if got := FunctionCalls(tc.path); got != tc.want {
			t.Errorf("FunctionCalls(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
