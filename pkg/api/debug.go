package api

import (
	"context"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/status"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// DebugSource is what /debug/reconcile shows: the controller's view.
type DebugSource interface {
	Functions() []status.Function
	Global() status.Global
}

// debugView is the page's data, also served as JSON.
type debugView struct {
	Now    time.Time     `json:"now"`
	Global status.Global `json:"global"`
	// Autoscaler is true when the autoscaler's state is shown (the page was
	// given a ScalingReader); each function then carries "scaling" once
	// the autoscaler has looked at it.
	Autoscaler bool            `json:"autoscaler"`
	Functions  []debugFunction `json:"functions"`
	// Async lists the async queue of every function with calls, when the
	// page was given the queue (nil otherwise).
	Async []async.Depth `json:"async,omitempty"`
	// Nodes are the hosts of a multi-host runtime and what runs on each
	// (nil on one host); NodesError says why they are missing.
	Nodes      []status.Node `json:"nodes,omitempty"`
	NodesError string        `json:"nodesError,omitempty"`
	// Pools are the pools of functions with per-request isolation, when
	// the runtime has them.
	Pools []runtime.PoolStats `json:"pools,omitempty"`
	// Executions sums up each function's execution records (job runs,
	// async attempts) with its newest debugRuns, when the page reads a
	// store (nil otherwise); ExecutionsError says why they are missing.
	Executions      []store.ExecutionSummary `json:"executions,omitempty"`
	ExecutionsError string                   `json:"executionsError,omitempty"`
	// Routes are the functions' path routes (io.dockerfaas.route), served
	// or not (Error says why), when the page was given the route table.
	Routes []faas.Route `json:"routes,omitempty"`
}

// debugRuns is how many of a function's newest runs the page shows.
const debugRuns = 5

// NodeLister lists the hosts of a multi-host runtime for the debug page;
// the swarm runtime satisfies it.
type NodeLister interface {
	Nodes(ctx context.Context) ([]status.Node, error)
}

// PoolLister describes the pools of per-request isolation for the debug
// page; the Docker runtime satisfies it.
type PoolLister interface {
	PoolStats() []runtime.PoolStats
}

// AsyncDepths is the read side of the async queue for the debug page;
// *async.Service satisfies it.
type AsyncDepths interface {
	Depths() []async.Depth
}

var _ AsyncDepths = (*async.Service)(nil)

// debugFunction is one function's row: the controller's status, with its
// fields at the top level of the JSON object as before, and the
// autoscaler's state beside it. Both are on one page because "why does it
// run 3 replicas" is answered by the two together: the autoscaler's
// decision and the controller's progress towards it.
type debugFunction struct {
	status.Function
	Scaling *status.Scaling `json:"scaling,omitempty"`
}

// debugHandler serves /debug/reconcile; see DebugHandler.
type debugHandler struct {
	src     DebugSource
	scaling ScalingReader // nil: no autoscaler state on the page
	async   AsyncDepths   // nil: no async queues on the page
	nodes   NodeLister    // nil: one host, no nodes on the page
	pools   PoolLister    // nil: no pools on the page
	routes  RouteLister   // nil: no routes on the page
	// executions reads the records' summary: the index and debugRuns
	// records per function, not every record (store.ExecutionSummaries).
	executions store.ExecutionSummaries // nil: no executions on the page
}

// DebugHandler serves /debug/reconcile: an HTML page a person can read at a
// glance (no JavaScript), or the same data as JSON with
// `Accept: application/json` or `?format=json`. Mounted through
// Config.Debug, it also shows Config.ScalingStatus.
func DebugHandler(src DebugSource) http.Handler { return &debugHandler{src: src} }

func (h *debugHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fns := h.src.Functions()
	v := debugView{Now: time.Now(), Global: h.src.Global(), Autoscaler: h.scaling != nil,
		Functions: make([]debugFunction, 0, len(fns))}
	for _, f := range fns {
		df := debugFunction{Function: f}
		if h.scaling != nil {
			if s, ok := h.scaling.Get(f.Key); ok {
				df.Scaling = &s
			}
		}
		v.Functions = append(v.Functions, df)
	}
	if h.async != nil {
		v.Async = h.async.Depths()
	}
	if h.executions != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		sums, err := h.executions.SummarizeExecutions(ctx, debugRuns)
		cancel()
		v.Executions = sums
		if err != nil {
			v.ExecutionsError = err.Error()
		}
	}
	if h.nodes != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		nodes, err := h.nodes.Nodes(ctx)
		cancel()
		v.Nodes = nodes
		if err != nil {
			v.NodesError = err.Error()
		}
	}
	if h.pools != nil {
		v.Pools = h.pools.PoolStats()
	}
	if h.routes != nil {
		v.Routes = h.routes.Routes()
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = debugPage.Execute(w, v)
}

// runCode is what a run ended with: a job's exit code or the HTTP status
// of an async attempt; "" when it has neither.
func runCode(e store.Execution) string {
	switch {
	case e.ExitCode != nil:
		return "exit " + strconv.Itoa(*e.ExitCode)
	case e.StatusCode != 0:
		return "HTTP " + strconv.Itoa(e.StatusCode)
	}
	return ""
}

// loadUnit is the unit of a scaling mode's load, as the page prints it.
func loadUnit(mode string) string {
	switch scaling.Type(mode) {
	case scaling.RPS, scaling.Legacy:
		return "req/s"
	case scaling.Capacity:
		return "in flight"
	case scaling.CPU:
		return "m" // millicores
	case scaling.Queue:
		return "queued"
	}
	return ""
}

// formatLoad prints a load with at most two decimals and its unit.
func formatLoad(x float64, mode string) string {
	s := strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
	if u := loadUnit(mode); u == "m" {
		return s + u
	} else if u != "" {
		return s + " " + u
	}
	return s
}

// idleText describes the scale-to-zero timer: off unless the function
// opted in; otherwise how long it has been idle and when it goes to zero.
func idleText(now time.Time, s status.Scaling) string {
	switch {
	case !s.Zero:
		return "off"
	case s.IdleSince.IsZero():
		return "calls running"
	}
	out := "idle " + now.Sub(s.IdleSince).Round(time.Second).String()
	switch {
	case s.ZeroAt.IsZero():
	case s.ZeroAt.After(now):
		out += ", zero in " + s.ZeroAt.Sub(now).Round(time.Second).String()
	default:
		out += ", zero due"
	}
	return out
}

var debugPage = template.Must(template.New("debug").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"in": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		if d := t.Sub(now); d > 0 {
			return "in " + d.Round(100*time.Millisecond).String()
		}
		return "due"
	},
	"load":    formatLoad,
	"idle":    idleText,
	"runCode": runCode,
	"seconds": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
	"state": func(f debugFunction) string {
		switch {
		case f.LastResult == "error" || f.LastResult == "terminal":
			return "bad"
		case f.ReadyReplicas == f.DesiredReplicas && f.LastResult == "converged":
			return "ok"
		default:
			return "busy"
		}
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dockerfaasd — reconcile</title>
<meta http-equiv="refresh" content="5">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} th[title]{cursor:help;text-decoration:underline dotted}
td.num{text-align:right}
tr.ok td.state{background:#d9f2d9} tr.busy td.state{background:#fff3cd} tr.bad td.state{background:#f8d7da}
code{font-size:12px} .err{color:#a00;max-width:40em;word-break:break-word}
ul.replicas{margin:0;padding:0;list-style:none}
.r-ready{color:#060} .r-starting{color:#8a6100} .r-draining{color:#666} .muted{color:#666}
.x-succeeded{color:#060} .x-running{color:#8a6100} .x-failed,.x-timeout,.x-oom-killed,.x-interrupted{color:#a00}
</style></head><body>
<h1>dockerfaasd reconcile status</h1>
<h2>Controller</h2>
<table id="global">
<tr><th>Event stream</th><td id="event-stream">{{.Global.EventStream}}</td></tr>
<tr><th>Last (re)connect</th><td>{{ago .Now .Global.LastConnect}}</td></tr>
{{with .Global.LastStreamError}}<tr><th>Last stream error</th><td class="err">{{.}}</td></tr>{{end}}
<tr><th>Last full resync</th><td>{{ago .Now .Global.LastResync}}</td></tr>
<tr><th title="function keys waiting for a worker">Queue depth</th><td id="queue-depth">{{.Global.QueueDepth}}</td></tr>
<tr><th title="times Docker was found changed behind the daemon's back and put right, by kind">Drift corrections</th><td id="drift">{{range $k, $v := .Global.DriftCorrections}}{{$k}}: {{$v}}<br>{{else}}none{{end}}</td></tr>
</table>
<h2>Functions ({{len .Functions}})</h2>
<table id="functions">
<tr><th>Function</th><th title="Ready when every desired replica runs the current spec and answers its readiness probe; otherwise why not yet">State</th><th>Desired</th><th title="running containers, including old-spec ones during an update">Current</th><th title="replicas receiving traffic">Ready</th><th title="running containers: short ID, state, the node they run on">Replicas</th><th title="observed / desired; they differ while a change is being applied">Generation</th><th>Spec hash</th><th>Last reconcile</th><th>Result</th><th title="unexpected exits of current-spec replicas">Restarts</th><th>Next retry</th><th>Last error</th></tr>
{{$now := .Now}}{{range .Functions}}<tr class="{{state .}}" data-key="{{.Key}}">
<td class="key"><code>{{.Key}}</code></td><td class="state">{{if .Reason}}{{.Reason}}{{else}}Ready{{end}}</td>
<td class="desired num">{{.DesiredReplicas}}</td><td class="current num">{{.CurrentReplicas}}</td><td class="ready num">{{.ReadyReplicas}}</td>
<td class="replicas">{{with .Replicas}}<ul class="replicas">{{range .}}<li><code title="{{.Name}}">{{.ID}}</code> <span class="r-{{.State}}">{{.State}}</span>{{if not .CurrentSpec}} <span class="muted">(old spec)</span>{{end}}{{with .Node}} <span class="node">on {{.}}</span>{{end}}</li>{{end}}</ul>{{else}}<span class="muted">none</span>{{end}}</td>
<td class="generation">{{.ObservedGeneration}} / {{.Generation}}</td><td><code>{{.SpecHash}}</code></td>
<td class="last-reconcile">{{ago $now .LastReconcile}}</td><td class="result">{{.LastResult}}</td><td class="restarts num">{{.Restarts}}</td><td class="next-retry">{{in $now .NextRetry}}</td>
<td class="err">{{.LastError}}</td></tr>
{{else}}<tr><td colspan="13">No functions deployed.</td></tr>{{end}}
</table>
{{if .Autoscaler}}<h2>Autoscaler</h2>
<table id="scaling">
<tr><th>Function</th><th title="static: min = max or factor 0, never moved; legacy: OpenFaaS CE's alert rule; else the scale.type label">Mode</th><th title="com.openfaas.scale.min – max">Range</th><th title="now, in the unit of the mode">Load</th><th title="load one replica should carry: target × target-proportion">Target</th><th title="replicas the load asks for now; the desired replicas written to the store are in the table above">Desired</th><th>Last decision</th><th title="scale to zero: idle time, and when the function goes to zero">Idle timer</th></tr>
{{range .Functions}}<tr data-scaling-key="{{.Key}}">{{with .Scaling}}
<td class="key"><code>{{.Key}}</code></td><td class="mode">{{.Mode}}</td><td class="range num">{{.Min}}–{{.Max}}</td>
<td class="load num">{{load .Load .Mode}}</td><td class="target num">{{load .Target .Mode}}</td><td class="scale-desired num">{{.Desired}}</td>
<td class="decision">{{if .LastDecision}}<b>{{.LastDecision}}</b>{{with .Reason}}: {{.}}{{end}} <span class="muted">({{ago $now .DecidedAt}})</span>{{else}}<span class="muted">none yet</span>{{end}}</td>
<td class="idle">{{idle $now .}}</td>{{else}}
<td class="key"><code>{{.Key}}</code></td><td colspan="7" class="muted">not seen by the autoscaler yet</td>{{end}}</tr>
{{end}}</table>
{{end}}{{with .Async}}<h2>Async queues</h2>
<table id="async">
<tr><th>Function</th><th title="calls waiting for a slot">Queued</th><th title="calls waiting for their next attempt">Retrying</th><th title="attempts running now">Running</th><th title="io.dockerfaas.async.max-inflight">Max in flight</th></tr>
{{range .}}<tr data-async-key="{{.Function}}"><td class="key"><code>{{.Function}}</code></td><td class="queued num">{{.Queued}}</td><td class="retrying num">{{.Retrying}}</td><td class="running num">{{.Running}}</td><td class="max num">{{.MaxInflight}}</td></tr>
{{end}}</table>
{{end}}{{if or .Nodes .NodesError}}<h2>Nodes</h2>
{{with .NodesError}}<p class="error">{{.}}</p>{{end}}<table id="nodes">
<tr><th>Node</th><th>Role</th><th title="as swarm sees it: ready, down, ...">State</th><th title="active, pause or drain">Availability</th><th>Address</th><th title="this daemon's replicas on the node, and the functions they belong to">Replicas</th></tr>
{{range .Nodes}}<tr data-node="{{.Hostname}}"><td class="key"><code>{{.Hostname}}</code></td><td>{{.Role}}</td><td class="state">{{.State}}</td><td class="availability">{{.Availability}}</td><td>{{.Addr}}</td><td class="replicas num">{{.Replicas}} ({{.Functions}} functions)</td></tr>
{{end}}</table>
{{end}}{{if .Pools}}<h2>Pools (per-request isolation)</h2>
<table id="pools">
<tr><th>Function</th><th>Protocol</th><th title="ready now / kept ready (io.dockerfaas.pool.size, POOL_SIZE)">Ready</th><th title="being started now">Starting</th><th title="calls waiting for a fresh container now">Waiting</th><th title="calls served / had to wait / got 429">Served</th><th title="containers made ready; per second over the last minute; mean create-to-ready time">Refills</th></tr>
{{range .Pools}}<tr data-pool="{{.Key}}"><td class="key"><code>{{.Key}}</code></td><td>{{.Protocol}}</td><td class="ready num">{{.Ready}} / {{.Size}}</td><td class="num">{{.Starting}}</td><td class="num">{{.Waiting}}</td><td class="served num">{{.Served}} / {{.Waited}} waited / {{.Busy}} busy</td><td class="num">{{.Refills}} ({{printf "%.2f" .RefillsPerSecond}}/s, {{seconds .StartSeconds}}){{with .LastError}} <span class="err">{{.}}</span>{{end}}</td></tr>
{{end}}</table>
{{end}}{{with .Routes}}<h2>Path routes</h2>
<table id="routes">
<tr><th title="io.dockerfaas.route: the path prefix served as /function/NAME">Route</th><th>Function</th><th title="why a route is not served (taken by a function created first, invalid)">Served</th></tr>
{{range .}}<tr data-route="{{.Path}}"><td><code>{{.Path}}</code></td><td class="key"><code>{{.Function}}.{{.Namespace}}</code></td><td>{{with .Error}}<span class="err">{{.}}</span>{{else}}yes{{end}}</td></tr>
{{end}}</table>
{{end}}{{if or .Executions .ExecutionsError}}<h2>Executions</h2>
{{with .ExecutionsError}}<p class="error">{{.}}</p>{{end}}<table id="executions">
<tr><th>Function</th><th title="records kept (EXECUTIONS_MAX, EXECUTIONS_MAX_AGE)">Retained</th><th title="running now">Running</th><th title="retained records that ended other than succeeded">Failures</th><th title="newest first: id, kind, state, duration, exit or HTTP status, start">Last runs</th></tr>
{{range .Executions}}<tr data-executions-key="{{.Function}}"><td class="key"><code>{{.Function}}</code></td><td class="retained num">{{.Retained}}</td><td class="running num">{{.Running}}</td><td class="failures num">{{.Failures}}</td>
<td class="runs"><ul class="replicas">{{range .Last}}<li data-execution="{{.ID}}"><code>{{.ID}}</code> {{.Kind}} <span class="x-{{.State}}">{{.State}}</span>{{if .Final}} {{seconds .DurationSeconds}}{{end}}{{with runCode .}} {{.}}{{end}} <span class="muted">({{ago $now .StartedAt}})</span>{{with .Error}} <span class="err">{{.}}</span>{{end}}</li>{{end}}</ul></td></tr>
{{end}}</table>
{{end}}<p>Generated {{.Now.Format "2006-01-02 15:04:05 MST"}} · refreshes every 5 s · <a href="?format=json">JSON</a></p>
</body></html>
`))
