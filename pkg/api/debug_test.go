package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

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
					{Name: "d-healthy.openfaas-fn-abc-0", ID: "0123456789ab", Slot: 0, State: status.ReplicaReady, CurrentSpec: true},
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
		`<code title="d-healthy.openfaas-fn-abc-0">0123456789ab</code> <span class="r-ready">ready</span>`,
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
