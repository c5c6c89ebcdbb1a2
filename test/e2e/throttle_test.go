package e2e

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// TestLoginThrottle: a daemon with AUTH_FAILURES_MAX=3 answers three wrong
// passwords from 127.0.0.1 with 401, then everything authenticated from
// that address with 429 and Retry-After, the right password included
// (on function calls too),
// until the window ends; open routes stay open. The metrics count both,
// and the daemon log never holds a password that was sent.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	const window = 8 * time.Second
	d := startDaemon(t,
		withEnv("AUTH_FAILURES_MAX", "3"),
		withEnv("AUTH_FAILURE_WINDOW", window.String()),
		withEnv("LOG_LEVEL", "debug"), // every line the daemon could write
	)
	basic := func(user, pass string) map[string]string {
		r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	send := func(what, method, path string, hdr map[string]string, want int) httpResult {
		t.Helper()
		res, err := d.request(method, path, nil, hdr, authNone)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Status != want {
			t.Fatalf("%s: %s, want %d", what, res, want)
		}
		return res
	}
	retryAfter := func(what string, res httpResult) time.Duration {
		t.Helper()
		n, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || n < 1 || n > int(window/time.Second) {
			t.Fatalf("%s: Retry-After %q, want 1 to %d seconds", what, res.Header.Get("Retry-After"), int(window/time.Second))
		}
		return time.Duration(n) * time.Second
	}

	// A function, so that calls are throttled too: the daemon forwards
	// most calls without the API's handlers (plain calls), and must not
	// let the right password through for a client refused.
	d.deploy(types.FunctionDeployment{Service: "thr", Image: fnImage(t, "fn-echo")})
	d.waitReady("thr", "openfaas-fn", 1)
	// Nothing throttled yet: the right password works.
	send("right password first", "GET", "/system/info", basic(d.user, d.password), http.StatusOK)
	send("a call with the right password", "POST", "/function/thr", basic(d.user, d.password), http.StatusOK)
	var sent []string
	start := time.Now()
	for i := 0; i < 3; i++ {
		guess := "guess-" + randomSuffix(12)
		sent = append(sent, guess)
		send("wrong password "+strconv.Itoa(i+1), "GET", "/system/functions", basic(d.user, guess), http.StatusUnauthorized)
	}
	guess := "guess-" + randomSuffix(12)
	sent = append(sent, guess)
	res := send("a fourth wrong password", "GET", "/system/functions", basic(d.user, guess), http.StatusTooManyRequests)
	retryAfter("a fourth wrong password", res)
	res = send("the right password within the window", "GET", "/system/functions", basic(d.user, d.password), http.StatusTooManyRequests)
	retryAfter("the right password", res)
	res = send("no credentials within the window", "GET", "/system/providers", nil, http.StatusTooManyRequests)
	wait := retryAfter("no credentials", res)
	res = send("a call with the right password within the window", "POST", "/function/thr", basic(d.user, d.password), http.StatusTooManyRequests)
	retryAfter("a call with the right password", res)
	if time.Since(start) >= window-time.Second {
		t.Fatalf("the requests took %v, too close to the %v window for the checks above to mean anything", time.Since(start), window)
	}
	// Open routes are not behind auth, so not throttled either.
	send("/healthz", "GET", "/healthz", nil, http.StatusOK)

	if got := metricValue(t, d, "dockerfaasd_auth_failures_total"); got != 3 {
		t.Errorf("dockerfaasd_auth_failures_total = %v, want 3", got)
	}
	if got := metricValue(t, d, "dockerfaasd_auth_throttled_total"); got != 4 {
		t.Errorf("dockerfaasd_auth_throttled_total = %v, want 4", got)
	}

	// The window ends within Retry-After; then the right password works.
	time.Sleep(wait)
	deadline := time.Now().Add(3 * time.Second)
	for {
		res, err := d.request("GET", "/system/providers", nil, basic(d.user, d.password), authNone)
		if err == nil && res.Status == http.StatusOK {
			if !strings.Contains(string(res.Body), `"features"`) {
				t.Errorf("/system/providers: %s, want the features", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("right password after Retry-After (%v): %s %v, want 200", wait, res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	log, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(sent, d.password) {
		if strings.Contains(string(log), p) {
			t.Errorf("the daemon log holds a password that was sent (%s…)", p[:6])
		}
	}
	if n := strings.Count(string(log), "too many failed logins"); n != 1 {
		t.Errorf("the refusal is logged %d times, want once per window:\n%s", n, d.logTail(40))
	}
	if !strings.Contains(string(log), "127.0.0.1/32") {
		t.Errorf("the refusal does not name the client address:\n%s", d.logTail(40))
	}
}
