package api

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/load"
	"github.com/dockerfaasd/dockerfaasd/pkg/metrics"
	"github.com/dockerfaasd/dockerfaasd/pkg/proxy"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// benchBackend is the function: it answers every request with two bytes.
func benchBackend(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "OK")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// runInvocations GETs url with auth (when set) from b.RunParallel
// goroutines over one keep-alive client and reports req/s.
func runInvocations(b *testing.B, url, auth string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0, w0 := time.Now(), cpuTime(b), writeCalls(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				b.Error(err)
				return
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
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
	// CPU time per request of the whole process (client, daemon stack and
	// backend alike) holds up on a busy machine where req/s does not; the
	// client and backend are the same in both benchmarks, so the
	// difference between them is the daemon's.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	// write(2) calls per request, of the whole process: exact where the
	// CPU figures are noisy, and each one is a syscall and a packet.
	b.ReportMetric(float64(writeCalls(b)-w0)/float64(b.N), "writes/op")
}

// writeCalls is the process's write syscall count so far (syscw in
// /proc/self/io).
func writeCalls(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io:", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no syscw in /proc/self/io")
	return 0
}

// cpuTime is the user+system CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInvokeFullStack is an invocation through everything the daemon
// puts in front of a function, wired as cmd/dockerfaasd does: request
// metrics, the router, basic auth, the proxy with its invocation metrics.
// Its req/s over BenchmarkInvokeIdealHop's is the share of one ideal hop's
// throughput the daemon keeps; a CPU profile of it shows where the rest goes.
func BenchmarkInvokeFullStack(b *testing.B) {
	backend := benchBackend(b)
	log := logrus.New()
	log.SetOutput(io.Discard)
	cache := proxy.NewCache()
	cache.Set("openfaas-fn/bench", []faas.Endpoint{{Replica: "bench", Addr: backend.Listener.Addr().String()}})
	gw := metrics.New(prometheus.NewRegistry(), nil)
	p := proxy.New(cache, proxy.Options{Log: log, Started: gw.Started, Observe: gw.Observe, Load: new(load.Signals)})
	h := gw.Instrument(NewRouter(Config{
		Store:       store.NewMemory(),
		Status:      status.NewBoard(),
		Invocations: gw,
		Invoke:      p,
		Auth:        Auth{User: testUser, Password: testPass},
		Log:         log,
	}))
	front := httptest.NewServer(h)
	b.Cleanup(func() {
		front.Close()
		p.CloseIdleConnections()
	})
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	runInvocations(b, front.URL+"/function/bench", auth)
}

// BenchmarkInvokeIdealHop is BenchmarkInvokeFullStack's yardstick: one bare
// ReverseProxy hop to the same kind of backend, no auth, no metrics.
func BenchmarkInvokeIdealHop(b *testing.B) {
	backend := benchBackend(b)
	u, err := url.Parse(backend.URL)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr}
	front := httptest.NewServer(rp)
	b.Cleanup(func() {
		front.Close()
		tr.CloseIdleConnections()
	})
	runInvocations(b, front.URL+"/", "")
}

// cannedTransport answers every request at once without a network, so that
// the handler benchmarks below measure only the code in front of it.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"2"}},
		Body:          io.NopCloser(strings.NewReader("OK")),
		ContentLength: 2,
		Request:       r,
	}, nil
}

// serveLoop calls h directly b.N times with one request and a recorder.
func serveLoop(b *testing.B, h http.Handler, path, auth string) {
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkHandlerFullStack is BenchmarkInvokeFullStack without sockets:
// the daemon's handler in front of a transport that answers at once. It
// isolates the CPU the daemon adds per call from the network and the
// machine's load, which swamp it in the end-to-end figures.
func BenchmarkHandlerFullStack(b *testing.B) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cache := proxy.NewCache()
	cache.Set("openfaas-fn/bench", []faas.Endpoint{{Replica: "bench", Addr: "192.0.2.1:8080"}})
	gw := metrics.New(prometheus.NewRegistry(), nil)
	p := proxy.New(cache, proxy.Options{Log: log, Transport: cannedTransport{}, Started: gw.Started, Observe: gw.Observe, Load: new(load.Signals)})
	h := gw.Instrument(NewRouter(Config{
		Store: store.NewMemory(), Status: status.NewBoard(), Invocations: gw, Invoke: p,
		Auth: Auth{User: testUser, Password: testPass}, Log: log,
	}))
	serveLoop(b, h, "/function/bench", "Basic "+base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass)))
}

// BenchmarkHandlerIdealHop is BenchmarkHandlerFullStack's yardstick: a bare
// ReverseProxy in front of the same transport.
func BenchmarkHandlerIdealHop(b *testing.B) {
	u, _ := url.Parse("http://192.0.2.1:8080")
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: cannedTransport{}}
	serveLoop(b, rp, "/", "")
}
