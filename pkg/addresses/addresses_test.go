package addresses

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// waitBound bounds every wait of these tests; a working Manager is done in
// milliseconds.
const waitBound = 10 * time.Second

func TestParsePrefix(t *testing.T) {
	cases := []struct {
		in, want string // want "" means refused
	}{
		{"127.77.0.0/24", "127.77.0.0/24"},
		{" 10.77.0.9/29 ", "10.77.0.8/29"},
		{"10.77.0.0/30", "10.77.0.0/30"},
		{"10.77.0.0/31", ""},
		{"10.77.0.1/32", ""},
		{"fd00::/64", ""},
		{"::ffff:10.0.0.0/104", ""},
		{"10.77.0.0", ""},
		{"10.77.0.0/33", ""},
		{"", ""},
	}
	for _, c := range cases {
		got, err := ParsePrefix(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParsePrefix(%q) = %s, want an error", c.in, got)
		case c.want != "" && (err != nil || got.String() != c.want):
			t.Errorf("ParsePrefix(%q) = %s %v, want %s", c.in, got, err, c.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	good := netip.MustParsePrefix("127.77.0.0/29")
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no prefix", Config{Port: 80}},
		{"IPv6", Config{Prefix: netip.MustParsePrefix("fd00::/64"), Port: 80}},
		{"/31", Config{Prefix: netip.MustParsePrefix("127.77.0.0/31"), Port: 80}},
		{"port 0", Config{Prefix: good}},
		{"port too big", Config{Prefix: good, Port: 70000}},
	}
	for _, c := range cases {
		if _, err := New(c.cfg, store.NewMemory(), http.NotFoundHandler()); err == nil {
			t.Errorf("%s: New accepted %+v", c.name, c.cfg)
		}
	}
}

// recorder is the gateway's root handler in these tests: it answers with
// the path, raw path and query it was handed.
func recorder() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s|%s", r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI)
	})
}

func TestRewrite(t *testing.T) {
	h := Rewrite(recorder(), "fn", "dev")
	cases := []struct {
		target, want string
	}{
		{"/", "/function/fn.dev/|||/function/fn.dev/"},
		{"/a/b?x=1&y=2", "/function/fn.dev/a/b||x=1&y=2|/function/fn.dev/a/b?x=1&y=2"},
		{"/a%2Fb?q", "/function/fn.dev/a/b|/function/fn.dev/a%2Fb|q|/function/fn.dev/a%2Fb?q"},
		{"/function/other", "/function/fn.dev/function/other|||/function/fn.dev/function/other"},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.target, nil))
		if got := w.Body.String(); w.Code != http.StatusOK || got != c.want {
			t.Errorf("%s: %d %q, want %q", c.target, w.Code, got, c.want)
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.URL.Path = "*"
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("OPTIONS *: %d, want 404", w.Code)
	}
}

// testPrefix returns a /29 of 127.0.0.0/8 no other test run is likely to
// use, and a port free on it.
func testPrefix(t *testing.T) (netip.Prefix, int) {
	t.Helper()
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(100 + rand.IntN(150)), byte(rand.IntN(256)), byte(8 * rand.IntN(32))}), 29)
	l, err := net.Listen("tcp", netip.AddrPortFrom(p.Addr().Next(), 0).String())
	if err != nil {
		if os.Getenv("CI") == "true" { // CI runs on Linux, where it is
			t.Fatalf("cannot listen on %s (is 127.0.0.0/8 local here?): %v", p.Addr().Next(), err)
		}
		t.Skipf("cannot listen on %s (is 127.0.0.0/8 local here?): %v", p.Addr().Next(), err)
	}
	defer l.Close()
	return p, l.Addr().(*net.TCPAddr).Port
}

// fixture is a Manager over a memory store, running until the test ends.
type fixture struct {
	t      *testing.T
	st     *store.Memory
	m      *Manager
	port   int
	prefix netip.Prefix
	logs   *test.Hook
	cancel context.CancelFunc
	done   chan error
}

func newFixture(t *testing.T, handler http.Handler, fns ...string) *fixture {
	t.Helper()
	p, port := testPrefix(t)
	st := store.NewMemory()
	for _, fn := range fns {
		createFn(t, st, fn)
	}
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	m, err := New(Config{Prefix: p, Port: port, Resync: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Log: log}, st, handler)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, m: m, port: port, prefix: p, logs: hook}
	f.start()
	return f
}

func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.m.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

// stop ends Run and waits for it.
func (f *fixture) stop() {
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Errorf("Run: %v", err)
		}
		f.done <- err // a later stop returns at once
	case <-time.After(waitBound):
		f.t.Fatal("Run did not return")
	}
}

func createFn(t *testing.T, st store.Store, name string) {
	t.Helper()
	if _, err := st.Create(t.Context(), types.FunctionDeployment{Service: name, Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
}

// addr is the n-th address of the fixture's prefix with its port.
func (f *fixture) addr(n int) string {
	a := f.prefix.Addr()
	for range n {
		a = a.Next()
	}
	return netip.AddrPortFrom(a, uint16(f.port)).String()
}

// eventually polls fn until it returns nil, failing after waitBound.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servedAs waits until exactly want (key → address) is served.
func (f *fixture) servedAs(want map[string]string) {
	f.t.Helper()
	eventually(f.t, func() error {
		got := f.m.Served()
		if len(got) != len(want) {
			return fmt.Errorf("served %v, want %v", got, want)
		}
		for k, a := range want {
			if got[k].String() != a {
				return fmt.Errorf("served %v, want %v", got, want)
			}
		}
		return nil
	})
}

var client = &http.Client{Timeout: waitBound}

func get(url string) (int, string, error) {
	res, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("dial %s: %v, want connection refused", addr, err)
	}
	return nil
}

// TestServeFollowDeleteReuse: every function is served on the lowest free
// address, through the gateway handler with its path rewritten; a deleted
// function's address stops answering and is released, and a new function
// takes it.
func TestServeFollowDeleteReuse(t *testing.T) {
	f := newFixture(t, recorder(), "a", "b")
	a, b := store.Key(store.DefaultNamespace, "a"), store.Key(store.DefaultNamespace, "b")
	f.servedAs(map[string]string{a: f.addr(1), b: f.addr(2)})

	code, body, err := get("http://" + f.addr(1) + "/x/y?q=1")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "/function/a.openfaas-fn/x/y||q=1|") {
		t.Fatalf("GET on a's address: %d %q %v", code, body, err)
	}
	if _, body, _ := get("http://" + f.addr(2) + "/"); !strings.HasPrefix(body, "/function/b.openfaas-fn/|") {
		t.Errorf("GET on b's address: %q", body)
	}

	// A function deployed later is followed through the store's watch.
	createFn(t, f.st, "c")
	c := store.Key(store.DefaultNamespace, "c")
	f.servedAs(map[string]string{a: f.addr(1), b: f.addr(2), c: f.addr(3)})

	if err := f.st.Delete(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	f.servedAs(map[string]string{b: f.addr(2), c: f.addr(3)})
	eventually(t, func() error { return refused(f.addr(1)) })
	eventually(t, func() error {
		if _, err := f.st.GetAddress(t.Context(), a); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("a's address still allocated: %v", err)
		}
		return nil
	})

	createFn(t, f.st, "d")
	d := store.Key(store.DefaultNamespace, "d")
	f.servedAs(map[string]string{b: f.addr(2), c: f.addr(3), d: f.addr(1)})
	if _, body, err := get("http://" + f.addr(1) + "/"); err != nil || !strings.HasPrefix(body, "/function/d.openfaas-fn/|") {
		t.Errorf("the reused address serves %q %v, want d", body, err)
	}
}

// TestBindFailureRetried: an address that cannot be bound is logged and
// served at a later resync once it can.
func TestBindFailureRetried(t *testing.T) {
	p, port := testPrefix(t)
	first := netip.AddrPortFrom(p.Addr().Next(), uint16(port))
	blocker, err := net.Listen("tcp", first.String())
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	st := store.NewMemory()
	createFn(t, st, "a")
	log, hook := test.NewNullLogger()
	m, err := New(Config{Prefix: p, Port: port, Resync: 50 * time.Millisecond, Log: log}, st, recorder())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, m: m, port: port, prefix: p, logs: hook}
	f.start()

	eventually(t, func() error {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "cannot listen") && e.Data["address"] == first.Addr().String() {
				return nil
			}
		}
		return errors.New("no warning about the address that cannot be bound")
	})
	if len(m.Served()) != 0 {
		t.Fatalf("served %v while the address is taken", m.Served())
	}
	blocker.Close()
	f.servedAs(map[string]string{store.Key(store.DefaultNamespace, "a"): first.String()})
}

// TestResyncReleasesLeftovers: an allocation whose function was deleted
// while no Manager ran is released at start, so its address is free again.
func TestResyncReleasesLeftovers(t *testing.T) {
	p, port := testPrefix(t)
	st := store.NewMemory()
	createFn(t, st, "gone")
	gone := store.Key(store.DefaultNamespace, "gone")
	if _, err := st.AllocateAddress(t.Context(), gone, p); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	createFn(t, st, "new")
	log, _ := test.NewNullLogger()
	m, err := New(Config{Prefix: p, Port: port, Resync: time.Hour, Log: log}, st, recorder())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, m: m, port: port, prefix: p}
	f.start()
	// "gone" sorts before "new", but its leftover is released first.
	f.servedAs(map[string]string{store.Key(store.DefaultNamespace, "new"): f.addr(1)})
	list, err := st.ListAddresses(t.Context())
	if err != nil || len(list) != 1 || list[0].Key != store.Key(store.DefaultNamespace, "new") {
		t.Errorf("allocations %+v %v, want new's only", list, err)
	}
}

// TestStopIsGraceful: ending Run closes every listener, but a call under
// way finishes; the addresses stay allocated for the next start.
func TestStopIsGraceful(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	f := newFixture(t, slow, "a")
	a := store.Key(store.DefaultNamespace, "a")
	f.servedAs(map[string]string{a: f.addr(1)})

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		_, body, err := get("http://" + f.addr(1) + "/")
		got <- result{body, err}
	}()
	select {
	case <-entered:
	case <-time.After(waitBound):
		t.Fatal("the call never reached the handler")
	}
	f.cancel()
	eventually(t, func() error { return refused(f.addr(1)) })
	close(release)
	select {
	case r := <-got:
		if r.err != nil || r.body != "done" {
			t.Errorf("the call under way got %q %v, want done", r.body, r.err)
		}
	case <-time.After(waitBound):
		t.Fatal("the call under way never finished")
	}
	f.stop()
	if len(f.m.Served()) != 0 {
		t.Errorf("still served after Stop: %v", f.m.Served())
	}
	if _, err := f.st.GetAddress(t.Context(), a); err != nil {
		t.Errorf("Stop released a's address: %v", err)
	}
}
