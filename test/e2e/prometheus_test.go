package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Bounds of the test's Prometheus.
const (
	promReadyTimeout = 60 * time.Second
	promStopTimeout  = 15 * time.Second
	// promSeeTimeout bounds the wait for a value to reach Prometheus: one
	// scrape (1s) and one rule evaluation (1s), with room for a loaded
	// machine.
	promSeeTimeout = 60 * time.Second
)

// promBinary returns the path of the named Prometheus tool (prometheus,
// promtool). Without it the test is skipped, unless CI=true, where
// hack/install-prometheus.sh should have put it there and its absence is a
// failure.
func promBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no %s on PATH and CI=true: run hack/install-prometheus.sh", name)
	}
	t.Skipf("no %s on PATH; install it with hack/install-prometheus.sh (with CI=true this is a failure)", name)
	return ""
}

// promServer is one Prometheus process started by a test, listening on a
// free port of 127.0.0.1 with its storage in the test's temporary dir.
type promServer struct {
	t       *testing.T
	baseURL string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	http    *http.Client
}

// startPrometheus starts bin with config (YAML) and waits until /-/ready
// answers 200. t.Cleanup stops it and logs its output when the test failed.
func startPrometheus(t *testing.T, bin, config string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgPath, config)
	p := &promServer{t: t, logPath: filepath.Join(dir, "prometheus.log"), http: &http.Client{Timeout: 10 * time.Second}}
	// The port was free when picked but may have been taken since: retry
	// with another one when Prometheus says so.
	for attempt := 1; ; attempt++ {
		err := p.launch(bin, cfgPath, filepath.Join(dir, "data"), freePort(t))
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(p.logTail(), "address already in use") {
			t.Logf("prometheus log:\n%s", p.logTail())
			t.Fatalf("prometheus: %v", err)
		}
	}
	t.Cleanup(p.stop)
	t.Logf("prometheus listening on %s (log %s)", p.baseURL, p.logPath)
	return p
}

// launch starts one Prometheus process and waits until it is ready.
func (p *promServer) launch(bin, cfgPath, dataDir string, port int) error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--storage.tsdb.retention.time=1h",
	)
	cmd.Dir = filepath.Dir(cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, and die with the test binary, so an aborted run
	// leaves no Prometheus behind (as the daemon harness does).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	p.cmd, p.exited, p.baseURL = cmd, exited, "http://"+addr
	err = poll(promReadyTimeout, 250*time.Millisecond, func() error {
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		default:
		}
		res, err := p.http.Get(p.baseURL + "/-/ready")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %d", res.StatusCode)
		}
		return nil
	})
	select {
	case <-exited:
		return fmt.Errorf("prometheus exited: %w", err)
	default:
	}
	if err != nil {
		p.kill()
	}
	return err
}

// stop ends the process this test started: SIGTERM, then SIGKILL if it
// does not exit within promStopTimeout.
func (p *promServer) stop() {
	if p.t.Failed() {
		p.t.Logf("prometheus log (last lines):\n%s", p.logTail())
	}
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(promStopTimeout):
		p.t.Errorf("prometheus did not stop within %s of SIGTERM; killing it", promStopTimeout)
		p.kill()
	}
}

// kill sends SIGKILL to the process and waits for it.
func (p *promServer) kill() {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(promStopTimeout):
	}
}

// logTail returns the last lines of Prometheus' output.
func (p *promServer) logTail() string {
	lines, _, err := tailFile(p.logPath, 40)
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}

// promResponse is the envelope of Prometheus' HTTP API.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

// value returns the sample's value.
func (s promSample) value() (float64, error) {
	v, ok := s.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", s.Value[1])
	}
	return strconv.ParseFloat(v, 64)
}

// api GETs one path of Prometheus' HTTP API and returns its data, or the
// error Prometheus reported.
func (p *promServer) api(path string, q url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.baseURL+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	res, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: reading body: %w", path, err)
	}
	var r promResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %d %q: %w", path, res.StatusCode, b, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// query evaluates expr now (GET /api/v1/query) and returns the result when
// it is an instant vector (a scalar comes back as one sample without
// labels).
func (p *promServer) query(expr string) ([]promSample, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	switch d.ResultType {
	case "vector":
		var v []promSample
		err := json.Unmarshal(d.Result, &v)
		return v, err
	case "scalar":
		var s promSample
		err := json.Unmarshal(d.Result, &s.Value)
		return []promSample{s}, err
	default:
		return nil, fmt.Errorf("query %s: result type %q", expr, d.ResultType)
	}
}

// scalar evaluates expr, which must give exactly one sample, and returns
// its value.
func (p *promServer) scalar(expr string) (float64, error) {
	v, err := p.query(expr)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("query %s: %d samples, want 1", expr, len(v))
	}
	return v[0].value()
}

// promRule is one rule of /api/v1/rules.
type promRule struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	State     string `json:"state"` // alerting rules: inactive, pending, firing
	Alerts    []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}

// rules returns the loaded rules by name.
func (p *promServer) rules() (map[string]promRule, error) {
	data, err := p.api("/api/v1/rules", nil)
	if err != nil {
		return nil, err
	}
	var d struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	out := map[string]promRule{}
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			out[r.Name] = r
		}
	}
	return out, nil
}

// shippedAlertNames reads the alert names of deploy/prometheus/alerts.yml.
func shippedAlertNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var names []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s: no alert rules", path)
	}
	return names
}

// TestPrometheusScrape runs Debian's Prometheus against a daemon, as a user
// would: it scrapes /metrics every second with the shipped alert rules
// loaded. A function is invoked N times (some calls answered 502); PromQL
// must then count exactly N, and the latency histogram, the replica gauge
// and the controller's series must be there. The shipped rules must load
// and evaluate without error (the error-rate alert goes pending for the
// 502s, the daemon-down alerts stay inactive), promtool must accept the
// shipped config and rules and pass their unit tests, and every PromQL expression of the shipped
// Grafana dashboard must evaluate without error.
func TestPrometheusScrape(t *testing.T) {
	t.Parallel()
	prom := promBinary(t, "prometheus")
	promtool := promBinary(t, "promtool")
	root := suite.moduleRoot
	promDir := filepath.Join(root, "deploy", "prometheus")
	alertsPath := filepath.Join(promDir, "alerts.yml")

	t.Run("promtool", func(t *testing.T) {
		for _, args := range [][]string{
			{"check", "config", filepath.Join(promDir, "prometheus.yml")},
			{"check", "rules", alertsPath},
			{"test", "rules", filepath.Join(promDir, "alerts_test.yml")},
		} {
			cmd := exec.Command(promtool, args...)
			cmd.Dir = promDir // alerts_test.yml names alerts.yml relative to itself
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "scraped"
	fn := name + "." + defaultNamespace
	d.deploy(simpleSpec(name, img, nil, nil))
	d.waitReady(name, defaultNamespace, 1)

	target, err := url.Parse(d.baseURL)
	if err != nil {
		t.Fatal(err)
	}
	// /metrics is served without auth (pkg/api/router.go), so no
	// basic_auth here. Nothing is written or sent anywhere else.
	p := startPrometheus(t, prom, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: dockerfaasd
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, alertsPath, target.Host))

	// The calls come in two batches with a scrape between them, so that
	// rate() sees the counters grow (one batch between two scrapes would
	// leave every rate at 0).
	invokeAll := func(ok, failed int) {
		t.Helper()
		for range ok {
			if res := d.invoke(http.MethodGet, "/function/"+name, nil, nil); res.Status != http.StatusOK {
				t.Fatalf("invoke: %s, want 200", res)
			}
		}
		for range failed {
			if res := d.invoke(http.MethodGet, "/function/"+name+"/status/502", nil, nil); res.Status != http.StatusBadGateway {
				t.Fatalf("invoke /status/502: %s, want 502", res)
			}
		}
	}
	total := fmt.Sprintf(`sum(gateway_function_invocation_total{function_name=%q})`, fn)
	waitTotal := func(want float64) {
		t.Helper()
		eventually(t, promSeeTimeout, 500*time.Millisecond, func() error {
			got, err := p.scalar(total)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s = %v, want %v", total, got, want)
			}
			return nil
		})
	}
	invokeAll(4, 1)
	waitTotal(5)
	invokeAll(3, 2)
	const n, failed = 10, 3
	waitTotal(n)
	t.Logf("prometheus counts %d invocations of %s", n, fn)

	t.Run("series", func(t *testing.T) {
		atLeast := func(min float64) func(float64) error {
			return func(v float64) error {
				if v < min {
					return fmt.Errorf("%v, want at least %v", v, min)
				}
				return nil
			}
		}
		equal := func(want float64) func(float64) error {
			return func(v float64) error {
				if v != want {
					return fmt.Errorf("%v, want %v", v, want)
				}
				return nil
			}
		}
		sel := fmt.Sprintf(`function_name=%q`, fn)
		for _, c := range []struct {
			expr  string
			check func(float64) error
		}{
			{`up{job="dockerfaasd"}`, equal(1)},
			{`sum(gateway_function_invocation_total{` + sel + `, code="502"})`, equal(failed)},
			{`sum(gateway_function_invocation_total{` + sel + `, code="200"})`, equal(n - failed)},
			{`sum(gateway_function_invocation_started{` + sel + `})`, equal(n)},
			{`sum(gateway_functions_seconds_count{` + sel + `})`, equal(n)},
			{`sum(gateway_functions_seconds_bucket{` + sel + `, le="+Inf"})`, equal(n)},
			{`count(gateway_functions_seconds_bucket{` + sel + `})`, atLeast(2)},
			{`sum(function_invocations_total{` + sel + `})`, equal(n)},
			{`sum(function_errors_total{` + sel + `})`, equal(failed)},
			{`gateway_service_count{` + sel + `}`, equal(1)},
			{`sum(dockerfaasd_reconcile_total{result="success"})`, atLeast(1)},
			{`count(dockerfaasd_reconcile_total)`, equal(4)}, // every result at zero from the start
			{`count(dockerfaasd_reconcile_duration_seconds_bucket)`, atLeast(2)},
			{`dockerfaasd_queue_depth`, atLeast(0)},
			{`count(dockerfaasd_docker_errors_total)`, atLeast(1)},
			{`count(dockerfaasd_autoscaler_decisions_total)`, atLeast(1)},
		} {
			eventually(t, promSeeTimeout, 500*time.Millisecond, func() error {
				v, err := p.scalar(c.expr)
				if err != nil {
					return err
				}
				if err := c.check(v); err != nil {
					return fmt.Errorf("%s: %w", c.expr, err)
				}
				return nil
			})
		}
	})

	t.Run("alert rules", func(t *testing.T) {
		names := shippedAlertNames(t, alertsPath)
		// Health is "unknown" until a rule's first evaluation.
		eventually(t, promSeeTimeout, 500*time.Millisecond, func() error {
			rules, err := p.rules()
			if err != nil {
				return err
			}
			for _, n := range names {
				r, ok := rules[n]
				switch {
				case !ok:
					return fmt.Errorf("rule %s not loaded (loaded: %d)", n, len(rules))
				case r.Health != "ok":
					return fmt.Errorf("rule %s: health %q %s", n, r.Health, r.LastError)
				}
			}
			if len(rules) != len(names) {
				return fmt.Errorf("%d rules loaded, want %d", len(rules), len(names))
			}
			return nil
		})
		// The rules must select the metrics the daemon really exports: 3 of
		// 10 calls were 502s, so the error-rate alert is pending (its for:
		// is 5 minutes) for this function, while the daemon is up.
		eventually(t, promSeeTimeout, 500*time.Millisecond, func() error {
			rules, err := p.rules()
			if err != nil {
				return err
			}
			for _, n := range []string{"DockerfaasdDown", "DockerfaasdAbsent"} {
				if s := rules[n].State; s != "inactive" {
					return fmt.Errorf("rule %s: state %q, want inactive", n, s)
				}
			}
			r := rules["FunctionHighErrorRate"]
			for _, a := range r.Alerts {
				if a.Labels["function_name"] == fn && (a.State == "pending" || a.State == "firing") {
					return nil
				}
			}
			return fmt.Errorf("FunctionHighErrorRate: no pending alert for %s (alerts %+v)", fn, r.Alerts)
		})
	})

	t.Run("grafana dashboard", func(t *testing.T) {
		exprs := dashboardExprs(t, filepath.Join(root, "deploy", "grafana", "dockerfaasd-dashboard.json"))
		var invocationsSeen bool
		for _, e := range exprs {
			q := grafanaToPromQL(e)
			v, err := p.query(q)
			if err != nil {
				t.Errorf("dashboard expression %s: %v", e, err)
				continue
			}
			if strings.HasPrefix(q, "sum by (function_name) (rate(gateway_function_invocation_total") {
				for _, s := range v {
					invocationsSeen = invocationsSeen || s.Metric["function_name"] == fn
				}
			}
		}
		if !invocationsSeen {
			t.Errorf("the invocations-by-function panel shows no series for %s", fn)
		}
		t.Logf("%d dashboard expressions evaluated", len(exprs))
	})

	// Prometheus is stopped (SIGTERM) by its cleanup; check it ends cleanly
	// here, where a failure is still the test's.
	p.stop()
	select {
	case <-p.exited:
	default:
		t.Error("prometheus still running after stop")
	}
	p.cmd = nil // stopped: the cleanup has nothing left to do
}

// dashboardExprs checks the shape of a Grafana dashboard file (valid JSON,
// a Prometheus data source variable that every panel and target uses) and
// returns the PromQL expressions of its targets.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type panel struct {
		Title      string      `json:"title"`
		Type       string      `json:"type"`
		Datasource *datasource `json:"datasource"`
		Targets    []struct {
			Datasource *datasource `json:"datasource"`
			Expr       string      `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("%s: title %q, uid %q: both are needed", path, dash.Title, dash.UID)
	}
	var dsVar string
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = "${" + v.Name + "}"
		}
	}
	if dsVar == "" {
		t.Fatalf("%s: no Prometheus data source variable in templating", path)
	}
	usesVar := func(ds *datasource) bool { return ds != nil && ds.Type == "prometheus" && ds.UID == dsVar }
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				t.Errorf("%s: row %q has collapsed panels, which this check does not read", path, p.Title)
			}
			continue
		}
		if !usesVar(p.Datasource) {
			t.Errorf("%s: panel %q: data source %+v, want the %s variable", path, p.Title, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, tg := range p.Targets {
			if !usesVar(tg.Datasource) {
				t.Errorf("%s: panel %q: target data source %+v, want the %s variable", path, p.Title, tg.Datasource, dsVar)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: panel %q: empty expression", path, p.Title)
				continue
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s: no expressions", path)
	}
	return exprs
}

// grafanaToPromQL replaces the dashboard's template variables by what
// Grafana would send with "All" selected.
func grafanaToPromQL(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m",
		"$__interval", "1m",
		"${instance}", ".*", "$instance", ".*",
		"${function}", ".*", "$function", ".*",
	).Replace(expr)
}
