package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	frontloop "github.com/dockerfaasd/dockerfaasd/pkg/front"
)

// BenchmarkLookupConcurrentSwaps measures the proxy's hot-path read while
// the controller keeps publishing new snapshots.
func BenchmarkLookupConcurrentSwaps(b *testing.B) {
	c := NewCache()
	const keys = 200
	for i := range keys {
		c.Set(fmt.Sprintf("openfaas-fn/fn-%d", i), []faas.Endpoint{{Replica: "c", Addr: "10.0.0.1:8080"}})
	}
	sets := [][]faas.Endpoint{
		{{Replica: "a", Addr: "10.0.0.1:8080"}},
		{{Replica: "a", Addr: "10.0.0.1:8080"}, {Replica: "b", Addr: "10.0.0.2:8080"}},
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Set("openfaas-fn/fn-0", sets[i%2])
			time.Sleep(100 * time.Microsecond) // a busy controller, not a spinning one
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Lookup(benchKeys[i%len(benchKeys)]); !ok {
				b.Error("key vanished")
				return
			}
			i++
		}
	})
	b.StopTimer()
	close(stop)
	<-done
}

// benchKeys avoids formatting keys inside the measured loop.
var benchKeys = func() []string {
	k := make([]string, 200)
	for i := range k {
		k[i] = fmt.Sprintf("openfaas-fn/fn-%d", i)
	}
	return k
}()

// benchClient is a keep-alive client sized for RunParallel's goroutines,
// so that both benchmarks measure requests, not connection setup.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
	}}
}

func benchBackend(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "OK")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// runRequests GETs url from b.RunParallel goroutines and reports req/s.
func runRequests(b *testing.B, url string) {
	client := benchClient()
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkDirect is the baseline: the client talks to the function itself.
func BenchmarkDirect(b *testing.B) {
	srv := benchBackend(b)
	runRequests(b, srv.URL+"/")
}

// BenchmarkProxyHop sends the same requests through the proxy; its req/s
// over BenchmarkDirect's is the share of direct throughput one hop keeps.
// Sub-benchmarks, measured in the same run: "plain" is the daemon's path
// for plain function calls (pkg/front's loop handing the call's bytes to
// ServePlain), "front" the loop with the handler (calls that are not
// plain, or a daemon without the hooks: http.Request, then the proxy's own
// forwarding),
// "forward" the same forwarding behind net/http's server (TLS, dedicated
// addresses), "reverseproxy" the httputil.ReverseProxy + http.Transport
// path behind net/http that forwarding replaced (still used for upgrades
// and when Options.Transport is set).
func BenchmarkProxyHop(b *testing.B) {
	for _, path := range []struct {
		name      string
		loop      bool
		plain     bool
		transport http.RoundTripper
	}{
		{name: "plain", loop: true, plain: true},
		{name: "front", loop: true},
		{name: "forward"},
		{name: "reverseproxy", transport: newTransport(0)},
	} {
		b.Run(path.name, func(b *testing.B) {
			srv := benchBackend(b)
			c := NewCache()
			c.Set("openfaas-fn/bench", []faas.Endpoint{{Replica: "bench", Addr: srv.Listener.Addr().String()}})
			p := New(c, Options{Log: quietLogger(), Transport: path.transport})
			fr := httptest.NewUnstartedServer(p)
			url := "http://" + fr.Listener.Addr().String() + "/function/bench"
			if !path.loop {
				fr.Start()
				b.Cleanup(func() {
					fr.Close()
					p.CloseIdleConnections()
				})
				runRequests(b, url)
				return
			}
			loop := frontloop.New(fr.Config, nil, frontloop.FunctionCalls, quietLogger())
			if path.plain {
				p.EnablePlain(PlainHooks{Authorize: func([]byte, string, [][]byte) bool { return true }})
				loop.ServePlain(p)
			}
			go func() { _ = loop.Serve(fr.Listener) }()
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = loop.Shutdown(ctx)
				p.CloseIdleConnections()
			})
			runRequests(b, url)
		})
	}
}

// BenchmarkProxyServe measures the proxy's handler alone, without the
// client side: a recorder as ResponseWriter, the replica over loopback.
// Its allocs/op are the proxy's own per call.
func BenchmarkProxyServe(b *testing.B) {
	for _, path := range []struct {
		name      string
		transport http.RoundTripper
		body      string
	}{
		{name: "forward/GET"},
		{name: "reverseproxy/GET", transport: newTransport(0)},
		{name: "forward/POST-1KiB", body: strings.Repeat("x", 1024)},
		{name: "reverseproxy/POST-1KiB", transport: newTransport(0), body: strings.Repeat("x", 1024)},
	} {
		b.Run(path.name, func(b *testing.B) {
			srv := benchBackend(b)
			c := NewCache()
			c.Set("openfaas-fn/bench", []faas.Endpoint{{Replica: "bench", Addr: srv.Listener.Addr().String()}})
			p := New(c, Options{Log: quietLogger(), Transport: path.transport})
			b.Cleanup(p.CloseIdleConnections)
			method := http.MethodGet
			if path.body != "" {
				method = http.MethodPost
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(method, "/function/bench", strings.NewReader(path.body))
					w := discardWriter{h: http.Header{}}
					p.ServeHTTP(&w, req)
					if w.code != http.StatusOK {
						b.Errorf("status %d", w.code)
						return
					}
				}
			})
		})
	}
}

// discardWriter is the cheapest ResponseWriter: it keeps the status only.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

// BenchmarkIdealHop is the bare minimum reverse proxy (Rewrite with SetURL,
// a keep-alive transport, nothing else), the yardstick BenchmarkProxyHop is
// meant to match.
func BenchmarkIdealHop(b *testing.B) {
	srv := benchBackend(b)
	u, err := url.Parse(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: tr,
	}
	fr := httptest.NewServer(rp)
	b.Cleanup(func() {
		fr.Close()
		tr.CloseIdleConnections()
	})
	runRequests(b, fr.URL+"/")
}
