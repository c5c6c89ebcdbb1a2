package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// annotationAddress is where list and describe show a function's dedicated
// address (FUNCTION_CIDR).
const annotationAddress = "io.dockerfaas.address"

// addressPrefixAndPort picks a /28 of 127.0.0.0/8 (local on Linux, so the
// daemon can bind it without configuring anything) that parallel tests are
// unlikely to share, and the port to serve it on: 80 when running as root
// and 80 is free there, otherwise a free port.
func addressPrefixAndPort(t *testing.T) (netip.Prefix, int) {
	t.Helper()
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(100 + rand.IntN(151)), byte(rand.IntN(256)), 0}), 28)
	first := p.Addr().Next()
	if os.Geteuid() == 0 {
		l, err := net.Listen("tcp", netip.AddrPortFrom(first, 80).String())
		if err == nil {
			l.Close()
			return p, 80
		}
		t.Logf("port 80 is not free on %s (%v): using another port", first, err)
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(first, 0).String())
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", first, err)
	}
	defer l.Close()
	return p, l.Addr().(*net.TCPAddr).Port
}

// functionAddress reads the function's address URL with the Go SDK, as
// GET /system/function/NAME shows it, waiting for it to appear.
func (d *daemon) functionAddress(name string) *url.URL {
	d.t.Helper()
	var u *url.URL
	eventually(d.t, 30*time.Second, pollInterval, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := d.client().GetFunction(ctx, name, defaultNamespace)
		if err != nil {
			return err
		}
		if st.Annotations == nil || (*st.Annotations)[annotationAddress] == "" {
			return fmt.Errorf("%s: no %s annotation in %v", name, annotationAddress, st.Annotations)
		}
		u, err = url.Parse((*st.Annotations)[annotationAddress])
		return err
	})
	return u
}

// addressGet sends GET to the function address u, with the daemon's
// credentials when auth is set.
func (d *daemon) addressGet(u *url.URL, path string, auth bool) (httpResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u.String(), "/")+path, nil)
	if err != nil {
		return httpResult{}, err
	}
	if auth {
		req.SetBasicAuth(d.user, d.password)
	}
	res, err := d.http.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return httpResult{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// servedByReplica checks that body is the hostname of one of the
// function's running containers (fn-hostname's answer).
func (d *daemon) servedByReplica(name string, body []byte) error {
	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil {
		return err
	}
	host := strings.TrimSpace(string(body))
	for _, id := range ids {
		if host != "" && short(id) == host {
			return nil
		}
	}
	return fmt.Errorf("answer %q is not the hostname of a replica of %s (%d running)", host, name, len(ids))
}

// TestFunctionAddress: with FUNCTION_CIDR, every function is served on an
// address of its own, shown by GET /system/function/NAME; it answers with
// the gateway's invocation auth and metrics, two functions never share one,
// and a deleted function's address stops answering and is handed to the
// next new function.
func TestFunctionAddress(t *testing.T) {
	t.Parallel()
	prefix, port := addressPrefixAndPort(t)
	d := startDaemon(t, withInvokeAuth(true),
		withEnv("FUNCTION_CIDR", prefix.String()),
		withEnv("FUNCTION_ADDRESS_PORT", strconv.Itoa(port)))
	t.Logf("FUNCTION_CIDR=%s FUNCTION_ADDRESS_PORT=%d", prefix, port)
	img := fnImage(t, fnHostname)

	d.deploy(simpleSpec("addr-a", img, nil, nil))
	d.waitReady("addr-a", defaultNamespace, 1)
	a := d.functionAddress("addr-a")
	t.Logf("addr-a is served at %s", a)
	host, err := netip.ParseAddr(a.Hostname())
	if err != nil || !prefix.Contains(host) || host == prefix.Addr() {
		t.Fatalf("addr-a's address %s: not a usable address of %s (%v)", a, prefix, err)
	}
	if want := port == 80; (a.Port() == "") != want {
		t.Errorf("URL %s: the port must be shown unless it is 80 (port %d)", a, port)
	}

	// The listener may come up a moment after the annotation.
	eventually(t, 30*time.Second, pollInterval, func() error {
		res, err := d.addressGet(a, "/", false)
		if err != nil {
			return err
		}
		if res.Status != http.StatusUnauthorized {
			return fmt.Errorf("GET %s without auth: %s, want 401", a, res)
		}
		return nil
	})
	metric := `gateway_function_invocation_total{code="200",function_name="addr-a.openfaas-fn"}`
	before := metricValue(t, d, metric)
	const calls = 5
	for i := range calls {
		res, err := d.addressGet(a, "/any/path?i="+strconv.Itoa(i), true)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("GET %s with auth: %v %v, want 200", a, res, err)
		}
		if err := d.servedByReplica("addr-a", res.Body); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, d, metric); got != before+calls {
		t.Errorf("%s = %v after %d calls through the address, want %v", metric, got, calls, before+calls)
	}

	d.deploy(simpleSpec("addr-b", img, nil, nil))
	d.waitReady("addr-b", defaultNamespace, 1)
	b := d.functionAddress("addr-b")
	t.Logf("addr-b is served at %s", b)
	if b.Host == a.Host {
		t.Fatalf("addr-a and addr-b share the address %s", a.Host)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		res, err := d.addressGet(b, "/", true)
		if err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("GET %s: %v %v, want 200", b, res, err)
		}
		return d.servedByReplica("addr-b", res.Body)
	})

	// Deleted: the address stops answering, and is released.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.client().DeleteFunction(ctx, "addr-a", defaultNamespace); err != nil {
		t.Fatalf("delete addr-a: %v", err)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		c, err := net.DialTimeout("tcp", a.Host+portSuffix(a), 2*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s still accepts connections after the delete", a.Host)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial %s: %v, want connection refused", a.Host, err)
		}
		return nil
	})

	// The lowest free address is a's again: the next function gets it.
	d.deploy(simpleSpec("addr-c", img, nil, nil))
	d.waitReady("addr-c", defaultNamespace, 1)
	c := d.functionAddress("addr-c")
	t.Logf("addr-c is served at %s", c)
	if c.Host != a.Host {
		t.Errorf("addr-c got %s, want the address addr-a released, %s", c.Host, a.Host)
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		res, err := d.addressGet(c, "/", true)
		if err != nil || res.Status != http.StatusOK {
			return fmt.Errorf("GET %s: %v %v, want 200", c, res, err)
		}
		return d.servedByReplica("addr-c", res.Body)
	})
}

// portSuffix is ":80" for a URL without a port, "" otherwise (u.Host has it).
func portSuffix(u *url.URL) string {
	if u.Port() == "" {
		return ":80"
	}
	return ""
}
