package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is the throttle's time, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestLoginThrottleSequences drives the router through sequences of logins from
// client addresses, on a fake clock, and checks each answer.
func TestLoginThrottleSequences(t *testing.T) {
	const (
		a = "192.0.2.1:1000"
		b = "192.0.2.2:1000"
	)
	type step struct {
		advance time.Duration
		remote  string
		cred    string // "right", "wrong", "none"
		xff     string
		code    int
		retry   string // Retry-After, when code is 429
	}
	wrong := func(remote string) step { return step{remote: remote, cred: "wrong", code: 401} }
	tests := []struct {
		name    string
		trusted string
		steps   []step
		// counters after the steps
		failures, throttled float64
	}{
		{
			name: "max failures, then 429 for the rest of the window, even when right",
			steps: []step{
				wrong(a), wrong(a), wrong(a),
				{advance: 10 * time.Second, remote: a, cred: "wrong", code: 429, retry: "50"},
				{remote: a, cred: "right", code: 429, retry: "50"},
				{remote: a, cred: "none", code: 429, retry: "50"},
				{advance: 49500 * time.Millisecond, remote: a, cred: "right", code: 429, retry: "1"},
				{advance: 500 * time.Millisecond, remote: a, cred: "right", code: 200},
			},
			failures: 3, throttled: 4,
		},
		{
			name: "other clients are not affected",
			steps: []step{
				wrong(a), wrong(a), wrong(a),
				{remote: b, cred: "right", code: 200},
				wrong(b),
				{remote: a, cred: "right", code: 429, retry: "60"},
			},
			failures: 4, throttled: 1,
		},
		{
			name: "a success resets nothing",
			steps: []step{
				wrong(a), wrong(a),
				{remote: a, cred: "right", code: 200},
				wrong(a),
				{remote: a, cred: "right", code: 429, retry: "60"},
			},
			failures: 3, throttled: 1,
		},
		{
			name: "failures spread over windows never throttle",
			steps: []step{
				wrong(a), wrong(a),
				{advance: time.Minute, remote: a, cred: "wrong", code: 401},
				wrong(a),
				{remote: a, cred: "right", code: 200},
			},
			failures: 4,
		},
		{
			name: "requests without credentials are not failures",
			steps: []step{
				{remote: a, cred: "none", code: 401}, {remote: a, cred: "none", code: 401},
				{remote: a, cred: "none", code: 401}, {remote: a, cred: "none", code: 401},
				{remote: a, cred: "right", code: 200},
			},
		},
		{
			name: "X-Forwarded-For is ignored from an untrusted peer",
			steps: []step{
				{remote: a, xff: "198.51.100.1", cred: "wrong", code: 401},
				{remote: a, xff: "198.51.100.2", cred: "wrong", code: 401},
				{remote: a, xff: "198.51.100.3", cred: "wrong", code: 401},
				{remote: a, xff: "198.51.100.4", cred: "right", code: 429, retry: "60"},
			},
			failures: 3, throttled: 1,
		},
		{
			name:    "behind a trusted proxy the forwarded client counts",
			trusted: "192.0.2.0/24",
			steps: []step{
				{remote: a, xff: "198.51.100.1", cred: "wrong", code: 401},
				{remote: a, xff: "198.51.100.1", cred: "wrong", code: 401},
				{remote: b, xff: "203.0.113.9, 198.51.100.1", cred: "wrong", code: 401},
				{remote: a, xff: "198.51.100.1", cred: "right", code: 429, retry: "60"},
				// A spoofed left-most entry does not help; the proxy appended the real one.
				{remote: a, xff: "198.51.100.1, 198.51.100.7", cred: "right", code: 200},
				{remote: a, cred: "right", code: 200},
			},
			failures: 3, throttled: 1,
		},
		{
			name: "an IPv6 client is its /64",
			steps: []step{
				{remote: "[2001:db8::1]:1", cred: "wrong", code: 401},
				{remote: "[2001:db8::2]:1", cred: "wrong", code: 401},
				{remote: "[2001:db8::3]:1", cred: "wrong", code: 401},
				{remote: "[2001:db8::4]:1", cred: "right", code: 429, retry: "60"},
				{remote: "[2001:db8:0:1::1]:1", cred: "right", code: 200},
			},
			failures: 3, throttled: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			reg := prometheus.NewRegistry()
			trusted, err := ParseTrustedProxies(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, func(c *Config) {
				c.Auth.FailuresMax, c.Auth.FailureWindow, c.Auth.TrustedProxies = 3, time.Minute, trusted
				c.Auth.Registerer, c.Auth.now = reg, clock.Now
			})
			for i, s := range tt.steps {
				clock.Add(s.advance)
				w := f.send(t, "GET", "/system/info", "", func(r *http.Request) {
					r.RemoteAddr = s.remote
					if s.xff != "" {
						r.Header.Set("X-Forwarded-For", s.xff)
					}
					switch s.cred {
					case "right":
						r.SetBasicAuth(testUser, testPass)
					case "wrong":
						r.SetBasicAuth(testUser, "guess")
					}
				})
				if w.Code != s.code {
					t.Fatalf("step %d (%+v): %d %s, want %d", i, s, w.Code, strings.TrimSpace(w.Body.String()), s.code)
				}
				if got := w.Header().Get("Retry-After"); got != s.retry {
					t.Errorf("step %d: Retry-After %q, want %q", i, got, s.retry)
				}
			}
			if got := counterValue(t, reg, "dockerfaasd_auth_failures_total"); got != tt.failures {
				t.Errorf("failures counted %v, want %v", got, tt.failures)
			}
			if got := counterValue(t, reg, "dockerfaasd_auth_throttled_total"); got != tt.throttled {
				t.Errorf("throttled counted %v, want %v", got, tt.throttled)
			}
		})
	}
}

// counterValue reads the counter name registered on reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// TestLoginThrottleLogsOnce: the refusal is logged once per window with
// the client and user, and no line ever holds the password guessed.
func TestLoginThrottleLogsOnce(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	f := newFixture(t, func(c *Config) { c.Auth.FailuresMax, c.Auth.now = 2, clock.Now })
	for i := 0; i < 6; i++ {
		f.send(t, "GET", "/system/functions", "", func(r *http.Request) {
			r.RemoteAddr = "192.0.2.9:5"
			r.SetBasicAuth("mallory", fmt.Sprintf("guess-%d-secret", i))
		})
		if i == 3 {
			clock.Add(time.Minute) // a new window: up to one more line
		}
	}
	var warned int
	for _, e := range f.logs.AllEntries() {
		line, _ := e.String()
		if strings.Contains(line, "-secret") {
			t.Errorf("log line holds a guessed password: %s", line)
		}
		if strings.Contains(e.Message, "too many failed logins") {
			warned++
			if e.Data["client"] != "192.0.2.9/32" || e.Data["user"] != "mallory" {
				t.Errorf("refusal logged with %v, want client 192.0.2.9/32 and user mallory", e.Data)
			}
		}
	}
	if warned != 2 {
		t.Errorf("refusal logged %d times over two windows, want 2", warned)
	}
}

// TestLoginThrottleConcurrent: concurrent guesses cannot run past the
// limit, because each is decided under the throttle's lock; concurrent
// logins with the right password, however many, are never refused.
func TestLoginThrottleConcurrent(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Auth.FailuresMax = 5 })
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/system/info", nil)
			r.RemoteAddr = "192.0.2.3:1"
			r.SetBasicAuth(testUser, "guess")
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			mu.Lock()
			codes[w.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[401] > 5 || codes[401]+codes[429] != 50 {
		t.Errorf("answers %v, want at most 5 × 401 and the rest 429", codes)
	}

	g := newFixture(t, func(c *Config) { c.Auth.FailuresMax = 5 })
	ok := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/system/info", nil)
			r.RemoteAddr = "192.0.2.4:1"
			r.SetBasicAuth(testUser, testPass)
			w := httptest.NewRecorder()
			g.h.ServeHTTP(w, r)
			mu.Lock()
			if w.Code == 200 {
				ok++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ok != 50 {
		t.Errorf("%d of 50 concurrent logins with the right password answered 200", ok)
	}
}

// TestThrottleBounded: the throttle never tracks more than its limit; the
// client whose window started first is forgotten first.
func TestThrottleBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	th := newThrottle(1, time.Minute, nil, clock.Now)
	th.limit = 100
	client := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
	}
	for i := 0; i < 250; i++ {
		clock.Add(time.Millisecond)
		if wait, _ := th.settle(client(i), true, false); wait != 0 {
			t.Fatalf("client %d refused before any failure", i)
		}
	}
	refusedFor := func(c netip.Prefix) time.Duration {
		wait, _ := th.settle(c, false, false)
		return wait
	}
	if n := len(th.clients); n != 100 || th.order.Len() != 100 {
		t.Fatalf("tracking %d clients (%d in order), want 100", n, th.order.Len())
	}
	if refusedFor(client(0)) != 0 || refusedFor(client(149)) != 0 {
		t.Error("the oldest clients are still tracked")
	}
	if refusedFor(client(150)) == 0 || refusedFor(client(249)) == 0 {
		t.Error("the newest clients are not refused")
	}
	// Expired windows go first, whatever the limit.
	clock.Add(time.Minute)
	th.settle(client(1000), true, false)
	if n := len(th.clients); n != 1 {
		t.Errorf("after every window expired, tracking %d clients, want 1", n)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "[]", false},
		{"10.0.0.1", "[10.0.0.1/32]", false},
		{" 10.0.0.0/8 , ::1 ", "[10.0.0.0/8 ::1/128]", false},
		{"172.16.5.4/12", "[172.16.0.0/12]", false},
		{"proxy.local", "", true},
	}
	for _, tt := range tests {
		got, err := ParseTrustedProxies(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTrustedProxies(%q) error %v", tt.in, err)
			continue
		}
		if !tt.wantErr && fmt.Sprint(got) != tt.want {
			t.Errorf("ParseTrustedProxies(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}
