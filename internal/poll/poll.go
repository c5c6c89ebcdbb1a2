// Package poll waits in tests for a condition that another goroutine makes
// true, instead of sleeping for a guessed time.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every few milliseconds and fails the test, naming what
// it waited for, when cond is still false after timeout.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
