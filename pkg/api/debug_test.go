package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
)

// staticDebug is a DebugSource with fixed content.
type staticDebug struct {
	fns    []status.Function
	global status.Global
}

func (s staticDebug) Functions() []status.Function { return s.fns }
func (s staticDebug) Global() status.Global        { return s.global }

func debugFixture() staticDebug {
	now := time.Now()
	return staticDebug{
		fns: []status.Function{
			{
				Key: "openfaas-fn/healthy", DesiredReplicas: 2, CurrentReplicas: 2, ReadyReplicas: 2,
				Generation: 3, ObservedGeneration: 3, SpecHash: "abc123def456",
				LastReconcile: now.Add(-2 * time.Second), LastResult: "converged",
				Replicas: []status.Replica{
					{Name: "d-healthy.openfaas-fn-abc-0", ID: "0123456789ab", Slot: 0, State: status.ReplicaReady, CurrentSpec: true, Node: "host-a"},
					{Name: "d-healthy.openfaas-fn-abc-1", ID: "ba9876543210", Slot: 1, State: status.ReplicaReady, CurrentSpec: true},
				},
			},
			{
				Key: "openfaas-fn/crashy", DesiredReplicas: 1, Generation: 1, ObservedGeneration: 1,
				LastResult: "progressing", Restarts: 4, Reason: "CrashLoopBackOff",
				NextRetry: now.Add(8 * time.Second), LastError: "exit <3>",
			},
		},
		global: status.Global{
			EventStream: "connected", LastConnect: now, LastResync: now, QueueDepth: 1,
			DriftCorrections: map[string]int64{"replica_missing": 2},
		},
	}
}

// TestDebugHandlerHTML checks what a person reads on the page.
func TestDebugHandlerHTML(t *testing.T) {
	h := DebugHandler(debugFixture())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/reconcile", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<td id="event-stream">connected</td>`,
		`<td id="drift">replica_missing: 2<br></td>`,
		`<td id="queue-depth">1</td>`,
		`<tr class="ok" data-key="openfaas-fn/healthy">`,
		`<td class="state">Ready</td>`,
		`<td class="desired num">2</td>`,
		`<td class="ready num">2</td>`,
		`<td class="result">converged</td>`,
		`<code title="d-healthy.openfaas-fn-abc-0">0123456789ab</code> <span class="r-ready">ready</span> <span class="node">on host-a</span></li>`,
		`<code title="d-healthy.openfaas-fn-abc-1">ba9876543210</code> <span class="r-ready">ready</span></li>`, // node not known: nothing said
		`<tr class="busy" data-key="openfaas-fn/crashy">`,
		`<td class="state">CrashLoopBackOff</td>`,
		`<td class="restarts num">4</td>`,
		`<td class="err">exit &lt;3&gt;</td>`, // escaped, never raw HTML
		`<span class="muted">none</span>`,     // crashy has no running replica
		`Functions (2)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(body, `<td class="next-retry">in `) {
		t.Errorf("next retry of the crashing function not shown as a time to come")
	}
}

func TestDebugHandlerEmpty(t *testing.T) {
	h := DebugHandler(staticDebug{global: status.Global{EventStream: "starting"}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/reconcile", nil))
	if !strings.Contains(rec.Body.String(), "No functions deployed.") {
		t.Errorf("empty page: %s", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/reconcile?format=json", nil))
	var v struct {
		Functions []status.Function `json:"functions"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Functions == nil {
		t.Errorf("empty JSON: functions must be [], got %s (%v)", rec.Body.String(), err)
	}
}

// TestDebugHandlerJSON checks both ways of asking for JSON and that the
// shape stays what scripts read.
func TestDebugHandlerJSON(t *testing.T) {
	src := debugFixture()
	tests := []struct {
		name   string
		target string
		accept string
	}{
		{"query", "/debug/reconcile?format=json", ""},
		{"accept header", "/debug/reconcile", "application/json"},
		{"accept list", "/debug/reconcile", "text/plain, application/json;q=0.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			DebugHandler(src).ServeHTTP(rec, req)
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			var raw map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"now", "global", "functions"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("JSON lacks %q: %s", k, rec.Body.String())
				}
			}
			var v debugView
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			if len(v.Functions) != 2 || v.Functions[0].Key != "openfaas-fn/healthy" {
				t.Fatalf("functions = %+v", v.Functions)
			}
			if got := v.Functions[0].Replicas; !reflect.DeepEqual(got, src.fns[0].Replicas) {
				t.Errorf("replicas = %+v, want %+v", got, src.fns[0].Replicas)
			}
			if f := v.Functions[1]; f.Reason != "CrashLoopBackOff" || f.Restarts != 4 || !f.NextRetry.After(time.Now()) {
				t.Errorf("crashing function = %+v", f)
			}
			if v.Global.EventStream != "connected" || v.Global.DriftCorrections["replica_missing"] != 2 {
				t.Errorf("global = %+v", v.Global)
			}
		})
	}
}

// scalingFixture is the autoscaler's state for debugFixture's functions:
// healthy scales by rps and went up; crashy is not seen yet.
func scalingFixture(now time.Time) *status.ScalingBoard {
	b := status.NewScalingBoard()
	b.Set(status.Scaling{
		Key: "openfaas-fn/healthy", Mode: "rps", Min: 1, Max: 20, Load: 91.456, Target: 45, Desired: 3,
		LastDecision: "up", Reason: "load 91.46 req/s > 2 × 45", DecidedAt: now.Add(-4 * time.Second),
		Zero: true, IdleSince: now.Add(-2 * time.Minute), ZeroAt: now.Add(13 * time.Minute),
	})
	return b
}

// serveDebug gets /debug/reconcile through the router, as cmd mounts it.
func serveDebug(t *testing.T, sc ScalingReader, target string) *httptest.ResponseRecorder {
	t.Helper()
	f := newFixture(t, func(c *Config) {
		c.Debug = DebugHandler(debugFixture())
		if sc != nil {
			c.ScalingStatus = sc
		}
	})
	w := f.do(t, http.MethodGet, target, "")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d %q", w.Code, w.Body.String())
	}
	return w
}

// TestDebugScalingHTML checks what a person reads about the autoscaler.
func TestDebugScalingHTML(t *testing.T) {
	body := serveDebug(t, scalingFixture(time.Now()), "/debug/reconcile").Body.String()
	for _, want := range []string{
		`<h2>Autoscaler</h2>`,
		`<table id="scaling">`,
		`<td class="mode">rps</td>`,
		`<td class="range num">1–20</td>`,
		`<td class="load num">91.46 req/s</td>`,
		`<td class="target num">45 req/s</td>`,
		`<td class="scale-desired num">3</td>`,
		`<td class="decision"><b>up</b>: load 91.46 req/s &gt; 2 × 45 <span class="muted">(4s ago)</span></td>`,
		`<td class="idle">idle 2m0s, zero in 13m0s</td>`,
		`<td colspan="7" class="muted">not seen by the autoscaler yet</td>`, // crashy
		`<tr class="ok" data-key="openfaas-fn/healthy">`,                    // the controller's table is unchanged
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the page must be readable without JavaScript")
	}
	// Scripts and the browser test find a function's controller row by
	// tr[data-key=...]: the autoscaler's rows must not match it too.
	if n := strings.Count(body, `data-key="openfaas-fn/healthy"`); n != 1 {
		t.Errorf("%d rows with data-key openfaas-fn/healthy, want only the controller's", n)
	}
	if !strings.Contains(body, `<tr data-scaling-key="openfaas-fn/healthy">`) {
		t.Error("the autoscaler's row of healthy has no data-scaling-key")
	}
}

// TestDebugWithoutAutoscaler: without a ScalingReader the page and the
// JSON are as before, with no autoscaler section.
func TestDebugWithoutAutoscaler(t *testing.T) {
	body := serveDebug(t, nil, "/debug/reconcile").Body.String()
	if strings.Contains(body, "Autoscaler") || !strings.Contains(body, `data-key="openfaas-fn/healthy"`) {
		t.Errorf("page without autoscaler: %s", body)
	}
	w := serveDebug(t, nil, "/debug/reconcile?format=json")
	var v struct {
		Autoscaler *bool            `json:"autoscaler"`
		Functions  []map[string]any `json:"functions"`
	}
	decodeJSON(t, w, &v)
	if v.Autoscaler == nil || *v.Autoscaler {
		t.Errorf("autoscaler = %v, want false", v.Autoscaler)
	}
	for _, fn := range v.Functions {
		if _, ok := fn["scaling"]; ok {
			t.Errorf("function %v has scaling without an autoscaler", fn["key"])
		}
	}
}

func TestDebugIdleText(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		s    status.Scaling
		want string
	}{
		{"not opted in", status.Scaling{Mode: "rps"}, "off"},
		{"calls running", status.Scaling{Zero: true}, "calls running"},
		{"counting down", status.Scaling{Zero: true, IdleSince: now.Add(-time.Minute), ZeroAt: now.Add(14 * time.Minute)}, "idle 1m0s, zero in 14m0s"},
		{"due", status.Scaling{Zero: true, IdleSince: now.Add(-16 * time.Minute), ZeroAt: now.Add(-time.Minute)}, "idle 16m0s, zero due"},
		{"no deadline", status.Scaling{Zero: true, IdleSince: now.Add(-5 * time.Second)}, "idle 5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idleText(now, tt.s); got != tt.want {
				t.Errorf("idleText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDebugFormatLoad(t *testing.T) {
	tests := []struct {
		load float64
		mode string
		want string
	}{
		{12.345, "rps", "12.35 req/s"},
		{7, "legacy", "7 req/s"},
		{3, "capacity", "3 in flight"},
		{850, "cpu", "850m"},
		{4, "queue", "4 queued"},
		{2.5, "static", "2.5"},
	}
	for _, tt := range tests {
		if got := formatLoad(tt.load, tt.mode); got != tt.want {
			t.Errorf("formatLoad(%v, %q) = %q, want %q", tt.load, tt.mode, got, tt.want)
		}
	}
}

// TestDebugScalingJSON checks the autoscaler's fields scripts read, next to
// the controller's, which keep their place at the top level of each function.
func TestDebugScalingJSON(t *testing.T) {
	now := time.Now()
	w := serveDebug(t, scalingFixture(now), "/debug/reconcile?format=json")
	var raw struct {
		Autoscaler bool             `json:"autoscaler"`
		Functions  []map[string]any `json:"functions"`
	}
	decodeJSON(t, w, &raw)
	if !raw.Autoscaler || len(raw.Functions) != 2 {
		t.Fatalf("autoscaler=%v, %d functions: %s", raw.Autoscaler, len(raw.Functions), w.Body.String())
	}
	healthy, crashy := raw.Functions[0], raw.Functions[1]
	if healthy["key"] != "openfaas-fn/healthy" || healthy["desiredReplicas"] != 2.0 || healthy["lastResult"] != "converged" {
		t.Errorf("controller fields moved: %v", healthy)
	}
	sc, ok := healthy["scaling"].(map[string]any)
	if !ok {
		t.Fatalf("healthy has no scaling object: %v", healthy)
	}
	for _, k := range []string{"mode", "min", "max", "load", "target", "desired", "lastDecision", "reason", "decidedAt", "zero", "idleSince", "zeroAt"} {
		if _, ok := sc[k]; !ok {
			t.Errorf("scaling lacks %q: %v", k, sc)
		}
	}
	if _, ok := crashy["scaling"]; ok {
		t.Errorf("crashy, unseen by the autoscaler, has scaling: %v", crashy["scaling"])
	}
	// And the typed view round-trips.
	var v debugView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want, _ := scalingFixture(now).Get("openfaas-fn/healthy")
	if got := v.Functions[0].Scaling; got == nil || got.Mode != want.Mode || got.Load != want.Load ||
		got.Desired != want.Desired || got.Reason != want.Reason || !got.DecidedAt.Equal(want.DecidedAt) || !got.ZeroAt.Equal(want.ZeroAt) {
		t.Errorf("scaling = %+v, want %+v", got, want)
	}
}

// fakeAsync is an async queue for the debug page: AsyncQueue (unused here)
// plus the depths the page shows.
type fakeAsync struct {
	AsyncQueue
	depths []async.Depth
}

func (f fakeAsync) Depths() []async.Depth { return f.depths }

// TestDebugAsyncQueues: the page shows each function's async queue, in
// HTML and JSON, when the router has an async queue with depths.
func TestDebugAsyncQueues(t *testing.T) {
	q := fakeAsync{depths: []async.Depth{{Function: "openfaas-fn/slow", Queued: 4, Retrying: 1, Running: 2, MaxInflight: 2}}}
	f := newFixture(t, func(c *Config) {
		c.Debug = DebugHandler(debugFixture())
		c.Async = q
	})
	body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String()
	for _, want := range []string{
		`<h2>Async queues</h2>`,
		`<tr data-async-key="openfaas-fn/slow">`,
		`<td class="queued num">4</td>`, `<td class="retrying num">1</td>`,
		`<td class="running num">2</td>`, `<td class="max num">2</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	w := f.do(t, http.MethodGet, "/debug/reconcile?format=json", "")
	var v struct {
		Async []async.Depth `json:"async"`
	}
	decodeJSON(t, w, &v)
	if len(v.Async) != 1 || v.Async[0] != q.depths[0] {
		t.Errorf("JSON async = %+v", v.Async)
	}
	// Without calls, no section.
	f = newFixture(t, func(c *Config) {
		c.Debug = DebugHandler(debugFixture())
		c.Async = fakeAsync{}
	})
	if body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String(); strings.Contains(body, "Async queues") {
		t.Error("an empty async section is shown")
	}
}

// fakeNodes lists swarm nodes for the debug page.
type fakeNodes struct {
	nodes []status.Node
	err   error
}

func (f fakeNodes) Nodes(context.Context) ([]status.Node, error) { return f.nodes, f.err }

// TestDebugNodes: with a multi-host runtime the page shows each node, its
// state and the replicas on it; an error listing them is shown, not
// hidden; one host shows no section.
func TestDebugNodes(t *testing.T) {
	nodes := []status.Node{
		{ID: "n1", Hostname: "mgr-1", Role: "manager", State: "ready", Availability: "active", Addr: "10.0.0.1", Replicas: 3, Functions: 2},
		{ID: "n2", Hostname: "wrk-1", Role: "worker", State: "down", Availability: "drain"},
	}
	cases := []struct {
		name     string
		lister   NodeLister
		want     []string
		wantNone bool
	}{
		{"nodes", fakeNodes{nodes: nodes}, []string{
			`<h2>Nodes</h2>`, `<tr data-node="mgr-1">`, `<td class="replicas num">3 (2 functions)</td>`,
			`<tr data-node="wrk-1">`, `<td class="state">down</td>`, `<td class="availability">drain</td>`,
		}, false},
		{"error", fakeNodes{err: errors.New("not a swarm manager")}, []string{`<h2>Nodes</h2>`, `not a swarm manager`}, false},
		{"one host", nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) {
				cfg.Debug = DebugHandler(debugFixture())
				cfg.Nodes = c.lister
			})
			body := f.do(t, http.MethodGet, "/debug/reconcile", "").Body.String()
			for _, want := range c.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			if c.wantNone && strings.Contains(body, "<h2>Nodes</h2>") {
				t.Error("a one-host page shows a nodes section")
			}
		})
	}
	f := newFixture(t, func(cfg *Config) {
		cfg.Debug = DebugHandler(debugFixture())
		cfg.Nodes = fakeNodes{nodes: nodes}
	})
	var v struct {
		Nodes []status.Node `json:"nodes"`
	}
	decodeJSON(t, f.do(t, http.MethodGet, "/debug/reconcile?format=json", ""), &v)
	if len(v.Nodes) != 2 || v.Nodes[0] != nodes[0] {
		t.Errorf("JSON nodes = %+v", v.Nodes)
	}
}
