package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// TestDeployEcho deploys captured bodies and checks that list and describe
// echo every submitted field exactly, compared as JSON values: faas-cli diff
// and the certifier compare them field by field.
func TestDeployEcho(t *testing.T) {
	bodies := map[string]string{
		"stack [cap 04]":        helloBody,
		"store deploy [cap 58]": `{"service":"nodeinfo","image":"ghcr.io/openfaas/nodeinfo:latest","envVars":{"write_timeout":"10s"},"labels":{"com.openfaas.ui.ext":"json"},"annotations":{"x":"y"},"readOnlyRootFilesystem":true}`,
		"minimal":               `{"service":"plain","image":"docker.io/example/plain:latest","labels":{},"annotations":{}}`,
		"explicit namespace":    `{"service":"plain","image":"plain","namespace":"openfaas-fn"}`,
		"odd image kept as is":  `{"service":"img","image":"Example.com:5000/Org/img@sha256:0123"}`,
		"gpu limits":            `{"service":"gpu","image":"x","limits":{"memory":"5Mi","nvidia.com/gpu":"1"},"requests":{"cpu":"0.5"}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, body)
			var sent map[string]any
			if err := json.Unmarshal([]byte(body), &sent); err != nil {
				t.Fatal(err)
			}
			fn := sent["service"].(string)

			w := f.do(t, "GET", "/system/functions", "")
			if w.Code != 200 {
				t.Fatalf("list: %d", w.Code)
			}
			var list []map[string]any
			decodeJSON(t, w, &list)
			if len(list) != 1 {
				t.Fatalf("list has %d items, want 1", len(list))
			}

			w = f.do(t, "GET", "/system/function/"+fn+"?usage=1", "")
			if w.Code != 200 {
				t.Fatalf("describe: %d", w.Code)
			}
			var one map[string]any
			decodeJSON(t, w, &one)

			for src, got := range map[string]map[string]any{"list": list[0], "describe": one} {
				// Labels come back with exactly one addition: faas_function,
				// which OpenFaaS providers report (the certifier checks it).
				labels, _ := got["labels"].(map[string]any)
				if labels["faas_function"] != fn {
					t.Errorf("%s: labels = %v, want faas_function=%s", src, labels, fn)
				}
				delete(labels, "faas_function")
				if _, sentLabels := sent["labels"]; !sentLabels && len(labels) == 0 {
					delete(got, "labels")
				}
				for k, v := range sent {
					gk := k
					if k == "service" {
						gk = "name"
					}
					if !reflect.DeepEqual(got[gk], v) {
						t.Errorf("%s: %s = %#v, want %#v as sent", src, gk, got[gk], v)
					}
				}
				if got["namespace"] != store.DefaultNamespace {
					t.Errorf("%s: namespace = %v, want %s", src, got["namespace"], store.DefaultNamespace)
				}
				// Nothing else the user did not send may appear among the
				// spec fields (no injected env, labels or limits).
				for _, k := range []string{"envProcess", "envVars", "constraints", "secrets", "labels", "annotations", "limits", "requests", "readOnlyRootFilesystem"} {
					if _, ok := sent[k]; !ok {
						if _, ok := got[k]; ok {
							t.Errorf("%s: %s = %v, but none was sent", src, k, got[k])
						}
					}
				}
			}
		})
	}
}

// TestStatusFields checks the observed fields of list and describe.
func TestStatusFields(t *testing.T) {
	counts := countMap{store.Key(store.DefaultNamespace, "hello"): 7}
	f := newFixture(t, func(c *Config) { c.Invocations = counts })
	before := time.Now().Add(-time.Second)
	f.deploy(t, helloBody)

	check := func(when string, wantAvail uint64) {
		t.Helper()
		var list []types.FunctionStatus
		decodeJSON(t, f.do(t, "GET", "/system/functions", ""), &list)
		var one types.FunctionStatus
		decodeJSON(t, f.do(t, "GET", "/system/function/hello", ""), &one)
		for src, st := range map[string]types.FunctionStatus{"list": list[0], "describe": one} {
			if st.Replicas != 1 || st.AvailableReplicas != wantAvail || st.InvocationCount != 7 {
				t.Errorf("%s %s: replicas=%d available=%d invocations=%v, want 1 %d 7",
					when, src, st.Replicas, st.AvailableReplicas, st.InvocationCount, wantAvail)
			}
			if st.CreatedAt.Before(before) || st.CreatedAt.After(time.Now()) {
				t.Errorf("%s %s: createdAt %v not the deploy time", when, src, st.CreatedAt)
			}
		}
	}
	check("no status yet", 0)
	f.board.Set(status.Function{Key: "openfaas-fn/hello", DesiredReplicas: 1, ReadyReplicas: 1})
	check("ready", 1)
}

type countMap map[string]float64

func (c countMap) Count(key string) float64 { return c[key] }

func TestListEmptyIsArray(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, "GET", "/system/functions", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("got %d %q, want 200 []", w.Code, w.Body.String())
	}
}

// TestDeploySequence replays what faas-cli deploy does: PUT, on 404 POST,
// then PUT again for the next deploy.
func TestDeploySequence(t *testing.T) {
	f := newFixture(t, nil)
	steps := []struct {
		method string
		want   int
	}{
		{"PUT", 404},
		{"POST", 202},
		{"PUT", 202},
		{"PUT", 202},
	}
	for i, s := range steps {
		if w := f.do(t, s.method, "/system/functions", helloBody); w.Code != s.want {
			t.Fatalf("step %d %s: got %d %q, want %d", i, s.method, w.Code, w.Body.String(), s.want)
		}
	}
	if fn := f.get(t, "openfaas-fn/hello"); fn.Generation != 1 {
		t.Errorf("generation = %d after identical updates, want 1", fn.Generation)
	}
	// One Info line per accepted write, with the fields operators grep for.
	entries := f.infoEntries()
	if len(entries) != 3 {
		t.Fatalf("%d info lines, want 3 (deploy, update, update)", len(entries))
	}
	for _, e := range entries {
		if e.Data["function"] != "hello" || e.Data["namespace"] != "openfaas-fn" || e.Data["generation"] == nil {
			t.Errorf("log fields %v", e.Data)
		}
		s, _ := e.String()
		if strings.Contains(s, "my-value") {
			t.Errorf("log leaks env values: %s", s)
		}
	}
}

func TestDeployConflict(t *testing.T) {
	f := newFixture(t, nil)
	f.deploy(t, helloBody)
	before := f.snapshot(t)
	w := f.do(t, "POST", "/system/functions", with(t, "image", `"other:1"`))
	if w.Code != http.StatusConflict {
		t.Fatalf("got %d, want 409", w.Code)
	}
	if want := "function hello already exists in namespace openfaas-fn\n"; w.Body.String() != want {
		t.Errorf("body %q, want %q", w.Body.String(), want)
	}
	if f.snapshot(t) != before {
		t.Error("a refused deploy changed the store")
	}
}

func TestDeployInitialReplicas(t *testing.T) {
	tests := []struct {
		labels string
		want   uint64
	}{
		{``, 1},
		{`{}`, 1},
		{`{"com.openfaas.scale.min":"3"}`, 3},
		{`{"com.openfaas.scale.min":"0"}`, 1}, // "may scale to zero", still starts one
		// max 0 alone is now a 400 (the default min of 1 exceeds it, see
		// TestBadInput); min = max = 0 still deploys a function with none.
		{`{"com.openfaas.scale.min":"0","com.openfaas.scale.max":"0"}`, 0},
		{`{"com.openfaas.scale.min":"5","com.openfaas.scale.max":"5"}`, 5},
		{`{"com.openfaas.scale.max":"100"}`, 1},
		{`{"com.openfaas.scale.zero":"true"}`, 1},                                  // starts, goes to zero when idle
		{`{"com.openfaas.scale.min":"2","com.openfaas.scale.zero":"true"}`, 2},     // min is the initial count
		{`{"com.openfaas.scale.min":"30"}`, 30},                                    // a min above the default max (20) raises it
		{`{"com.openfaas.scale.type":"cpu","com.openfaas.scale.target":"500"}`, 1}, // Pro mode starts at min too
	}
	for _, tt := range tests {
		t.Run(tt.labels, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, with(t, "labels", tt.labels))
			if got := f.get(t, "openfaas-fn/hello").Replicas; got != tt.want {
				t.Errorf("replicas = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestUpdateKeepsReplicas: an update keeps a scaled function's replicas,
// moved into the new label range.
func TestUpdateKeepsReplicas(t *testing.T) {
	tests := []struct {
		labels       string
		scaled, want uint64
	}{
		{`{}`, 4, 4},
		{`{"com.openfaas.scale.max":"2"}`, 4, 2},
		{`{"com.openfaas.scale.min":"6"}`, 4, 6},
		{`{"com.openfaas.scale.min":"1","com.openfaas.scale.max":"10"}`, 4, 4},
		// At zero, an update keeps it there (0 is below every min): the
		// next call wakes it, not the update.
		{`{"com.openfaas.scale.min":"6"}`, 0, 0},
		{`{"com.openfaas.scale.min":"2","com.openfaas.scale.max":"2"}`, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.labels, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, helloBody)
			if w := f.do(t, "POST", "/system/scale-function/hello", fmt.Sprintf(`{"replicas":%d}`, tt.scaled)); w.Code != 202 {
				t.Fatalf("scale: %d", w.Code)
			}
			if w := f.do(t, "PUT", "/system/functions", with(t, "labels", tt.labels)); w.Code != 202 {
				t.Fatalf("update: %d %s", w.Code, w.Body.String())
			}
			fn := f.get(t, "openfaas-fn/hello")
			if fn.Replicas != tt.want {
				t.Errorf("replicas = %d, want %d", fn.Replicas, tt.want)
			}
			if got := *fn.Spec.Labels; !reflect.DeepEqual(got, labelsOf(t, tt.labels)) {
				t.Errorf("labels = %v, want the new ones", got)
			}
		})
	}
}

func labelsOf(t *testing.T, raw string) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDelete(t *testing.T) {
	f := newFixture(t, nil)
	f.deploy(t, helloBody)
	if w := f.do(t, "DELETE", "/system/functions", `{"functionName":"hello"}`); w.Code != 202 {
		t.Fatalf("delete: %d", w.Code)
	}
	if got := f.snapshot(t); got != "[]" {
		t.Errorf("store after delete = %s", got)
	}
	w := f.do(t, "DELETE", "/system/functions", `{"functionName":"hello"}`)
	if w.Code != 404 || w.Body.String() != "function hello.openfaas-fn not found\n" {
		t.Errorf("second delete: %d %q, want 404", w.Code, w.Body.String())
	}
	if w := f.do(t, "GET", "/system/function/hello", ""); w.Code != 404 {
		t.Errorf("describe after delete: %d, want 404", w.Code)
	}
	if n := len(f.infoEntries()); n != 2 {
		t.Errorf("%d info lines, want 2 (deploy, delete)", n)
	}
}

func TestScale(t *testing.T) {
	tests := []struct {
		name, labels, body string
		want               uint64
	}{
		{"up", `{}`, `{"serviceName":"hello","replicas":3}`, 3},
		{"to zero", `{}`, `{"replicas":0}`, 0},
		// Without a max label, max is now the default max (20), no longer
		// MAX_REPLICAS: OpenFaaS's default for com.openfaas.scale.max.
		{"default max", `{}`, `{"replicas":100}`, 20},
		{"limit", `{"com.openfaas.scale.max":"100"}`, `{"replicas":100}`, 100},
		{"above max label", `{"com.openfaas.scale.max":"5"}`, `{"replicas":9}`, 5},
		{"below min label", `{"com.openfaas.scale.min":"2"}`, `{"replicas":1}`, 2},
		// 0 is no longer raised to min: it means "to zero" for every
		// function (Test_ScaleFromZeroDuringInvoke).
		{"to zero below min label", `{"com.openfaas.scale.min":"2"}`, `{"replicas":0}`, 0},
		{"to zero when static", `{"com.openfaas.scale.min":"2","com.openfaas.scale.max":"2"}`, `{"replicas":0}`, 0},
		{"to zero without opting in", `{"com.openfaas.scale.zero":"false"}`, `{"replicas":0}`, 0},
		{"static", `{"com.openfaas.scale.min":"2","com.openfaas.scale.max":"2"}`, `{"replicas":5}`, 2},
		{"inside labels", `{"com.openfaas.scale.min":"2","com.openfaas.scale.max":"5"}`, `{"replicas":4}`, 4},
		{"namespace in body", `{}`, `{"replicas":2,"namespace":"openfaas-fn"}`, 2},
		{"unknown fields ignored", `{}`, `{"replicas":2,"future":true}`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, with(t, "labels", tt.labels))
			old := f.get(t, "openfaas-fn/hello")
			if w := f.do(t, "POST", "/system/scale-function/hello", tt.body); w.Code != 202 {
				t.Fatalf("scale: %d %q", w.Code, w.Body.String())
			}
			fn := f.get(t, "openfaas-fn/hello")
			if fn.Replicas != tt.want {
				t.Errorf("replicas = %d, want %d", fn.Replicas, tt.want)
			}
			if changed := fn.Replicas != old.Replicas; changed != (fn.Generation > old.Generation) {
				t.Errorf("generation %d -> %d with replicas %d -> %d", old.Generation, fn.Generation, old.Replicas, fn.Replicas)
			}
			entries := f.infoEntries()
			last := entries[len(entries)-1]
			if len(entries) != 2 || last.Data["function"] != "hello" || last.Data["generation"] != fn.Generation {
				t.Errorf("want one scale log line with fields, got %d lines, last %v", len(entries), last.Data)
			}
		})
	}
}

// TestScaleUsesQueryNamespace: the CE gateway's scale-from-zero sends the
// namespace in the query and a body without one.
func TestScaleUsesQueryNamespace(t *testing.T) {
	f := newFixture(t, nil)
	f.deploy(t, helloBody)
	if w := f.do(t, "POST", "/system/scale-function/hello?namespace=openfaas-fn", `{"serviceName":"hello","replicas":2}`); w.Code != 202 {
		t.Fatalf("got %d", w.Code)
	}
	// The body wins over the query.
	if w := f.do(t, "POST", "/system/scale-function/hello?namespace=dev", `{"replicas":3,"namespace":"openfaas-fn"}`); w.Code != 202 {
		t.Fatalf("got %d", w.Code)
	}
	if got := f.get(t, "openfaas-fn/hello").Replicas; got != 3 {
		t.Errorf("replicas = %d, want 3", got)
	}
}

func TestMaxReplicasConfig(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxReplicas = 3 })
	f.deploy(t, helloBody)
	w := f.do(t, "POST", "/system/scale-function/hello", `{"replicas":4}`)
	if w.Code != 400 || w.Body.String() != "replicas must be between 0 and 3\n" {
		t.Errorf("got %d %q", w.Code, w.Body.String())
	}
	if w := f.do(t, "PUT", "/system/functions", with(t, "labels", `{"com.openfaas.scale.max":"4"}`)); w.Code != 400 {
		t.Errorf("max label above MaxReplicas: got %d, want 400", w.Code)
	}
}

// TestScaleDefaultsConfig: Config.Scaling sets the max of a function
// without a max label; MaxReplicas stays the absolute limit.
func TestScaleDefaultsConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*Config)
		labels  string
		replica uint64 // requested
		want    uint64
		code    int // of the deploy
	}{
		{"default max from config", func(c *Config) { c.Scaling.Max = 5 }, `{}`, 9, 5, 202},
		{"max label above default max", func(c *Config) { c.Scaling.Max = 5 }, `{"com.openfaas.scale.max":"8"}`, 9, 8, 202},
		{"default max above the limit", func(c *Config) { c.Scaling.Max = 50; c.MaxReplicas = 10 }, `{}`, 10, 10, 202},
		{"zero value is OpenFaaS's 20", nil, `{}`, 30, 20, 202},
		{"max label above the limit", func(c *Config) { c.MaxReplicas = 10 }, `{"com.openfaas.scale.max":"11"}`, 0, 0, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg)
			w := f.do(t, "POST", "/system/functions", with(t, "labels", tt.labels))
			if w.Code != tt.code {
				t.Fatalf("deploy: %d %q, want %d", w.Code, w.Body.String(), tt.code)
			}
			if tt.code != 202 {
				return
			}
			if w := f.do(t, "POST", "/system/scale-function/hello", fmt.Sprintf(`{"replicas":%d}`, tt.replica)); w.Code != 202 {
				t.Fatalf("scale: %d %q", w.Code, w.Body.String())
			}
			if got := f.get(t, "openfaas-fn/hello").Replicas; got != tt.want {
				t.Errorf("replicas = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestEffectiveDefaults(t *testing.T) {
	def := scaling.DefaultDefaults
	tests := []struct {
		name  string
		in    scaling.Defaults
		limit uint64
		want  scaling.Defaults
	}{
		{"zero value", scaling.Defaults{}, 100, def},
		{"limit is MaxReplicas", scaling.Defaults{}, 10, scaling.Defaults{Max: 10, Limit: 10, ZeroDuration: def.ZeroDuration, DownWindow: def.DownWindow}},
		{"limit never above MaxReplicas", scaling.Defaults{Limit: 500}, 100, def},
		{"lower limit kept", scaling.Defaults{Limit: 8}, 100, scaling.Defaults{Max: 8, Limit: 8, ZeroDuration: def.ZeroDuration, DownWindow: def.DownWindow}},
		{"settings kept", scaling.Defaults{Max: 50, ZeroDuration: time.Minute, DownWindow: 2 * time.Minute}, 100,
			scaling.Defaults{Max: 50, Limit: 100, ZeroDuration: time.Minute, DownWindow: 2 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := effectiveDefaults(tt.in, tt.limit); got != tt.want {
				t.Errorf("effectiveDefaults(%+v, %d) = %+v, want %+v", tt.in, tt.limit, got, tt.want)
			}
		})
	}
}

// TestScaleLabelsAccepted: every scale label OpenFaaS defines is accepted
// with a valid value, on deploy and on update.
func TestScaleLabelsAccepted(t *testing.T) {
	for _, labels := range []string{
		`{"com.openfaas.scale.min":"0","com.openfaas.scale.max":"20"}`,
		`{"com.openfaas.scale.factor":"0"}`,
		`{"com.openfaas.scale.factor":"100"}`,
		`{"com.openfaas.scale.zero":"true","com.openfaas.scale.zero-duration":"30s"}`,
		`{"com.openfaas.scale.zero":"false"}`,
		`{"com.openfaas.scale.type":"rps","com.openfaas.scale.target":"50"}`,
		`{"com.openfaas.scale.type":"capacity","com.openfaas.scale.target":"5","com.openfaas.scale.target-proportion":"1"}`,
		`{"com.openfaas.scale.type":"cpu","com.openfaas.scale.target":"800","com.openfaas.scale.target-proportion":"0.7"}`,
		`{"com.openfaas.scale.target":"2.5"}`,
		`{"com.openfaas.scale.down.window":"5m"}`,
	} {
		t.Run(labels, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, with(t, "labels", labels))
			if w := f.do(t, "PUT", "/system/functions", with(t, "labels", labels)); w.Code != 202 {
				t.Fatalf("update: %d %q", w.Code, w.Body.String())
			}
			if got := *f.get(t, "openfaas-fn/hello").Spec.Labels; !reflect.DeepEqual(got, labelsOf(t, labels)) {
				t.Errorf("labels = %v, want them stored as sent", got)
			}
		})
	}
}

// TestStatusAtZero: replicas is the desired count from the store, so a
// function scaled to zero (by the API or by the idler) reads 0 at once, as
// the certifier's Test_ScaleFromZeroDuringInvoke requires, while
// availableReplicas stays what the controller observes: the replicas that
// still serve until they are drained or paused.
func TestStatusAtZero(t *testing.T) {
	key := store.Key(store.DefaultNamespace, "hello")
	tests := []struct {
		name   string
		toZero func(t *testing.T, f *fixture)
		by     string
	}{
		{"api", func(t *testing.T, f *fixture) {
			if w := f.do(t, "POST", "/system/scale-function/hello", `{"serviceName":"hello","replicas":0}`); w.Code != 202 {
				t.Fatalf("scale: %d %q", w.Code, w.Body.String())
			}
		}, store.ScaledByAPI},
		{"idler", func(t *testing.T, f *fixture) {
			if _, err := f.store.ScaleBy(context.Background(), key, 0, store.ScaledByIdler); err != nil {
				t.Fatal(err)
			}
		}, store.ScaledByIdler},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.deploy(t, with(t, "labels", `{"com.openfaas.scale.min":"2","com.openfaas.scale.zero":"true"}`))
			// Test_ScaleMinimum: min replicas right after the deploy.
			f.checkReplicas(t, "deployed", 2, 0)
			f.board.Set(status.Function{Key: key, DesiredReplicas: 2, CurrentReplicas: 2, ReadyReplicas: 2})
			f.checkReplicas(t, "ready", 2, 2)

			tt.toZero(t, f)
			f.checkReplicas(t, "scaled to zero", 0, 2)
			if got := f.get(t, key).ScaledBy; got != tt.by {
				t.Errorf("scaledBy = %q, want %q", got, tt.by)
			}
			f.board.Set(status.Function{Key: key, DesiredReplicas: 0, ReadyReplicas: 0})
			f.checkReplicas(t, "drained", 0, 0)
		})
	}
}

// checkReplicas reads hello through list and describe.
func (f *fixture) checkReplicas(t *testing.T, when string, replicas, available uint64) {
	t.Helper()
	var list []types.FunctionStatus
	decodeJSON(t, f.do(t, "GET", "/system/functions", ""), &list)
	var one types.FunctionStatus
	decodeJSON(t, f.do(t, "GET", "/system/function/hello", ""), &one)
	for src, st := range map[string]types.FunctionStatus{"list": list[0], "describe": one} {
		if st.Replicas != replicas || st.AvailableReplicas != available {
			t.Errorf("%s %s: replicas=%d availableReplicas=%d, want %d %d", when, src, st.Replicas, st.AvailableReplicas, replicas, available)
		}
	}
}

// TestScaleWithUnreadableLabels: a function stored with scale labels that
// are refused today (deployed before they were all validated, or before
// MAX_REPLICAS was lowered) can still be scaled, within the limit; an
// update must fix the labels.
func TestScaleWithUnreadableLabels(t *testing.T) {
	tests := []struct {
		name, body string
		want       uint64
	}{
		{"within the limit", `{"replicas":30}`, 30},
		{"to zero", `{"replicas":0}`, 0},
		{"one", `{"replicas":1}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			labels := map[string]string{scaling.LabelType: "memory", scaling.LabelMin: "3"}
			spec := types.FunctionDeployment{Service: "old", Image: "example/old:1", Labels: &labels}
			if _, err := f.store.Create(context.Background(), spec, 3); err != nil {
				t.Fatal(err)
			}
			if w := f.do(t, "POST", "/system/scale-function/old", tt.body); w.Code != 202 {
				t.Fatalf("scale: %d %q", w.Code, w.Body.String())
			}
			if got := f.get(t, "openfaas-fn/old").Replicas; got != tt.want {
				t.Errorf("replicas = %d, want %d", got, tt.want)
			}
			w := f.do(t, "PUT", "/system/functions", `{"service":"old","image":"example/old:2","labels":{"com.openfaas.scale.type":"memory"}}`)
			if w.Code != 400 || !strings.Contains(w.Body.String(), scaling.LabelType) {
				t.Errorf("update keeping the bad label: %d %q, want 400 naming it", w.Code, w.Body.String())
			}
		})
	}
}
