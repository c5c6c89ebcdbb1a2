// Package metrics holds the gateway's Prometheus collectors: the names the
// project's spec asks for and the OpenFaaS gateway names that faas tooling
// and dashboards expect. Collectors live on an injected registry, never the
// global one.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Gateway records API requests and function invocations. Function labels
// are "name.namespace", as the OpenFaaS gateway reports them.
type Gateway struct {
	httpRequests *prometheus.CounterVec

	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec

	gwInvocations *prometheus.CounterVec
	gwSeconds     *prometheus.HistogramVec
	gwStarted     *prometheus.CounterVec

	// fns are each function's metric children, looked up once: a vector
	// hashes and checks its label values on every WithLabelValues, which
	// a call would otherwise do six times. Their count backs
	// invocationCount in function lists.
	fns sync.Map // key → *fnMetrics

	reqMu sync.RWMutex
	reqs  map[reqLabels]prometheus.Counter // gateway_http_requests_total's children
}

// fnMetrics are one function's children of the per-function vectors.
type fnMetrics struct {
	started  prometheus.Counter
	duration prometheus.Observer
	count    atomic.Uint64 // completed invocations

	mu    sync.Mutex
	codes atomic.Pointer[[]*codeMetrics] // copied on write: a function answers few codes
}

// codeMetrics are a function's children for one status code.
type codeMetrics struct {
	code                       int
	invocations, gwInvocations prometheus.Counter
	gwSeconds                  prometheus.Observer
	errors                     prometheus.Counter // nil below 500
}

// reqLabels are the labels of gateway_http_requests_total.
type reqLabels struct {
	code          int
	method, route string
}

// ReplicaLister gives the desired replicas per function key, read at scrape
// time for gateway_service_count.
type ReplicaLister func() map[string]uint64

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer, replicas ReplicaLister) *Gateway {
	fn := []string{"function_name"}
	fnCode := []string{"function_name", "code"}
	g := &Gateway{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total", Help: "HTTP requests served, by status code, method and route.",
		}, []string{"code", "method", "path"}),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "function_invocations_total", Help: "Function invocations completed, by function and status code.",
		}, fnCode),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "function_duration_seconds", Help: "Time from receiving an invocation to its response, by function.",
			Buckets: prometheus.DefBuckets,
		}, fn),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "function_errors_total", Help: "Invocations that ended in a 5xx, by function and status code.",
		}, fnCode),
		gwInvocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_total", Help: "Function invocations completed (OpenFaaS gateway name).",
		}, fnCode),
		gwSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_functions_seconds", Help: "Function invocation time taken (OpenFaaS gateway name).",
			Buckets: prometheus.DefBuckets,
		}, fnCode),
		gwStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_started", Help: "Function invocations started (OpenFaaS gateway name).",
		}, fn),
		reqs: map[reqLabels]prometheus.Counter{},
	}
	reg.MustRegister(g.httpRequests, g.invocations, g.duration, g.errors, g.gwInvocations, g.gwSeconds, g.gwStarted)
	if replicas != nil {
		reg.MustRegister(serviceCount{replicas})
	}
	return g
}

// FunctionName turns a store key "namespace/name" into "name.namespace".
func FunctionName(key string) string {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return key
	}
	return name + "." + ns
}

// Started records that an invocation of key began.
func (g *Gateway) Started(key string) {
	g.function(key).started.Inc()
}

// function returns key's metric children, made on its first call.
func (g *Gateway) function(key string) *fnMetrics {
	if v, ok := g.fns.Load(key); ok {
		return v.(*fnMetrics)
	}
	name := FunctionName(key)
	v, _ := g.fns.LoadOrStore(key, &fnMetrics{
		started:  g.gwStarted.WithLabelValues(name),
		duration: g.duration.WithLabelValues(name),
	})
	return v.(*fnMetrics)
}

// findCode returns f's children for code if made, and all those made.
func (f *fnMetrics) findCode(code int) (*codeMetrics, []*codeMetrics) {
	p := f.codes.Load()
	if p == nil {
		return nil, nil
	}
	for _, m := range *p {
		if m.code == code {
			return m, *p
		}
	}
	return nil, *p
}

// code returns f's children for code, made on its first call.
func (g *Gateway) code(key string, f *fnMetrics, code int) *codeMetrics {
	if m, _ := f.findCode(code); m != nil {
		return m
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m, old := f.findCode(code) // made meanwhile?
	if m != nil {
		return m
	}
	name, c := FunctionName(key), strconv.Itoa(code)
	m = &codeMetrics{
		code:          code,
		invocations:   g.invocations.WithLabelValues(name, c),
		gwInvocations: g.gwInvocations.WithLabelValues(name, c),
		gwSeconds:     g.gwSeconds.WithLabelValues(name, c),
	}
	if code >= 500 {
		m.errors = g.errors.WithLabelValues(name, c)
	}
	codes := append(append(make([]*codeMetrics, 0, len(old)+1), old...), m)
	f.codes.Store(&codes)
	return m
}

// Observe records a completed invocation. An empty key (unknown function)
// is not recorded per function, so random names cannot grow label sets.
func (g *Gateway) Observe(key string, code int, d time.Duration) {
	if key == "" {
		return
	}
	f := g.function(key)
	m := g.code(key, f, code)
	secs := d.Seconds()
	m.invocations.Inc()
	m.gwInvocations.Inc()
	f.duration.Observe(secs)
	m.gwSeconds.Observe(secs)
	if m.errors != nil {
		m.errors.Inc()
	}
	f.count.Add(1)
}

// Count returns the completed invocations of key since the daemon started.
func (g *Gateway) Count(key string) float64 {
	if v, ok := g.fns.Load(key); ok {
		return float64(v.(*fnMetrics).count.Load())
	}
	return 0
}

// Instrument counts every request handled by next in
// gateway_http_requests_total, with the path reduced to its route so that
// function names and arbitrary URLs cannot grow the label set.
func (g *Gateway) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		g.request(reqLabels{sw.code, r.Method, route(r.URL.Path)}).Inc()
	})
}

// CountCall counts a function call served without Instrument (the front
// loop's plain calls), as Instrument counts it.
func (g *Gateway) CountCall(code int, method string) {
	g.request(reqLabels{code, method, functionRoute}).Inc()
}

// request returns the child of gateway_http_requests_total for l. The
// labels are bounded (routes, methods, codes), so the cache is too.
func (g *Gateway) request(l reqLabels) prometheus.Counter {
	g.reqMu.RLock()
	c, ok := g.reqs[l]
	g.reqMu.RUnlock()
	if ok {
		return c
	}
	c = g.httpRequests.WithLabelValues(strconv.Itoa(l.code), l.method, l.route)
	g.reqMu.Lock()
	if len(g.reqs) < maxRequestLabels {
		g.reqs[l] = c
	}
	g.reqMu.Unlock()
	return c
}

// maxRequestLabels bounds the request counter cache: methods are any
// token a client sends, so their number is not.
const maxRequestLabels = 1024

// routes are the fixed paths reported as themselves.
var routes = map[string]bool{
	"/healthz": true, "/metrics": true, "/system/metrics": true, "/system/info": true,
	"/system/functions": true, "/system/namespaces": true, "/system/secrets": true,
	"/system/logs": true, "/debug/reconcile": true, "/system/async": true,
}

// functionRoute is the route of every function call.
const functionRoute = "/function/{name}"

// route maps a request path onto a bounded set of route names.
func route(p string) string {
	switch {
	case routes[p]:
		return p
	case strings.HasPrefix(p, "/function/"):
		return functionRoute
	case strings.HasPrefix(p, "/system/function/"):
		return "/system/function/{name}"
	case strings.HasPrefix(p, "/system/scale-function/"):
		return "/system/scale-function/{name}"
	case strings.HasPrefix(p, "/system/namespace/"):
		return "/system/namespace/{name}"
	case strings.HasPrefix(p, "/async-function/"):
		return "/async-function/{name}"
	case strings.HasPrefix(p, "/system/async/"):
		return "/system/async/{id}"
	default:
		return "other"
	}
}

// statusWriter remembers the status code written through it. Unwrap keeps
// http.ResponseController (flush, deadlines, full duplex) working.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streaming handlers that type-assert http.Flusher keep working.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serviceCount reports gateway_service_count: desired replicas per function,
// read from desired state at scrape time.
type serviceCount struct{ list ReplicaLister }

var serviceCountDesc = prometheus.NewDesc("gateway_service_count",
	"Desired replicas per function (OpenFaaS gateway name).", []string{"function_name"}, nil)

func (s serviceCount) Describe(ch chan<- *prometheus.Desc) { ch <- serviceCountDesc }

func (s serviceCount) Collect(ch chan<- prometheus.Metric) {
	for key, n := range s.list() {
		ch <- prometheus.MustNewConstMetric(serviceCountDesc, prometheus.GaugeValue, float64(n), FunctionName(key))
	}
}
