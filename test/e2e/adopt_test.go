package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// TestRestartAdoptsReplicasUnderLoad restarts the daemon, once gracefully
// (SIGTERM) and once with SIGKILL, while four goroutines keep invoking two
// functions of two replicas each. A restart must restart no replica (same
// container IDs, same StartedAt), every endpoint must be ready again, and
// once the new process answers /healthz no invocation may fail. Requests that
// fail while the process is down are counted and logged, not asserted: no one
// listens then; but none, even then, may be a 404. A container labelled for
// this instance but for a function that is not in the store, created while
// the daemon is down, is removed, and counted on /metrics.
func TestRestartAdoptsReplicasUnderLoad(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	names := []string{"adopt-a", "adopt-b"}
	for _, name := range names {
		d.deploy(simpleSpec(name, img, map[string]string{"FN": name},
			map[string]string{"com.openfaas.scale.min": "2"}))
	}
	for _, name := range names {
		d.waitReady(name, defaultNamespace, 2)
	}

	for _, mode := range []string{"SIGTERM", "SIGKILL"} {
		t.Logf("===== restart with %s =====", mode)
		before := d.replicaStarts(names)
		if len(before) != 4 {
			t.Fatalf("%s: %d running replicas before the restart, want 4: %v", mode, len(before), before)
		}
		t.Logf("%s: replicas before: %v", mode, before)

		load := startLoad(t, d, loadOptions{
			workers: 4, maxDuration: 30 * time.Second, maxRequests: 5000, pause: 10 * time.Millisecond,
			request: func(w, i int) (string, string, []byte) {
				path := "/function/" + names[(w+i)%len(names)]
				if w%2 == 1 { // half the callers POST a body, which no client retries
					return http.MethodPost, path, []byte(fmt.Sprintf("w%d-%d", w, i))
				}
				return http.MethodGet, path, nil
			},
		})
		time.Sleep(500 * time.Millisecond) // some traffic against the old process first

		downAt := time.Now()
		if mode == "SIGTERM" {
			d.Stop()
		} else {
			d.Kill()
		}
		orphan := d.createOrphan(img, "ghost-"+randomSuffix(4))
		d.Restart()
		healthyAt := time.Now()
		for _, name := range names {
			d.waitReady(name, defaultNamespace, 2)
		}
		readyAt := time.Now()
		time.Sleep(time.Second) // and some traffic once everything is ready again
		samples := load.stop()
		t.Logf("%s: down → healthy %s, healthy → all replicas ready %s",
			mode, healthyAt.Sub(downAt).Round(time.Millisecond), readyAt.Sub(healthyAt).Round(time.Millisecond))

		checkRestartLoad(t, mode, samples, names, downAt, healthyAt)

		after := d.replicaStarts(names)
		t.Logf("%s: replicas after:  %v", mode, after)
		if !maps.Equal(before, after) {
			t.Errorf("%s: the restart changed the replicas (container ID → StartedAt):\nbefore %v\nafter  %v", mode, before, after)
		}
		eventually(t, 60*time.Second, pollInterval, func() error {
			_, err := d.docker.ContainerInspect(context.Background(), orphan)
			switch {
			case cerrdefs.IsNotFound(err):
				return nil
			case err != nil:
				return err
			}
			return fmt.Errorf("orphan container %s is still there", short(orphan))
		})
		t.Logf("%s: orphan container %s was removed", mode, short(orphan))
		v, err := d.reconcileStatus()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if f, ok := v.function(name); !ok || f.Restarts != 0 || f.ReadyReplicas != 2 {
				t.Errorf("%s: /debug/reconcile shows %s as %+v, want 2 ready and 0 restarts", mode, name, f)
			}
		}
		t.Logf("%s: drift corrections %v", mode, v.Global.DriftCorrections)
	}
	checkControllerMetrics(t, d)
}

// checkControllerMetrics reads the restarted daemon's /metrics after it
// removed an orphan: every controller family is there, the reconciles and
// the orphan removal are counted.
func checkControllerMetrics(t *testing.T, d *daemon) {
	t.Helper()
	res, err := d.request(http.MethodGet, "/metrics", nil, nil, authNone)
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", res, err)
	}
	checks := []struct {
		series string
		ok     func(float64) bool
		want   string
	}{
		{`dockerfaasd_reconcile_total{result="success"}`, func(v float64) bool { return v >= 2 }, "≥ 2 (two functions converged)"},
		{`dockerfaasd_reconcile_total{result="error"}`, func(float64) bool { return true }, "present"},
		{`dockerfaasd_reconcile_duration_seconds_count`, func(v float64) bool { return v >= 2 }, "≥ 2"},
		{`dockerfaasd_queue_depth`, func(v float64) bool { return v >= 0 }, "present"},
		{`dockerfaasd_drift_corrections_total{kind="orphan_removed"}`, func(v float64) bool { return v == 1 }, "1 (the orphan made while the daemon was down)"},
		{`dockerfaasd_drift_corrections_total{kind="replica_missing"}`, func(v float64) bool { return v == 0 }, "0 (adoption is no drift)"},
		{`dockerfaasd_docker_errors_total{op="create"}`, func(float64) bool { return true }, "present"},
	}
	for _, c := range checks {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(c.series) + ` (\S+)$`)
		m := re.FindSubmatch(res.Body)
		if m == nil {
			t.Errorf("/metrics has no %s", c.series)
			continue
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil || !c.ok(v) {
			t.Errorf("/metrics: %s = %s, want %s", c.series, m[1], c.want)
		}
	}
}

// checkRestartLoad splits the samples of a restart into before the stop,
// the restart window, and after the new process answered /healthz: only the
// window may have failures. Every success must come from the function called.
func checkRestartLoad(t *testing.T, mode string, samples []loadSample, names []string, downAt, healthyAt time.Time) {
	t.Helper()
	var before, window, after []loadSample
	for _, s := range samples {
		switch {
		case s.end.Before(downAt):
			before = append(before, s)
		case !s.start.Before(healthyAt):
			after = append(after, s)
		default:
			window = append(window, s)
		}
		if !s.failed() && "/function/"+s.reply.Env["FN"] != s.path {
			t.Errorf("%s: %s was answered by function %q", mode, s, s.reply.Env["FN"])
		}
		// Even in the first milliseconds of the new process, a function
		// the daemon has is never "not found": that is what makes callers
		// (faas-cli, a gateway's scale from zero) give up.
		if s.status == http.StatusNotFound {
			t.Errorf("%s: %s: 404 for a deployed function", mode, s)
		}
	}
	t.Logf("%s: %d requests: before the stop %v; while restarting %v; after /healthz %v",
		mode, len(samples), loadSummary(before), loadSummary(window), loadSummary(after))
	if len(after) == 0 {
		t.Errorf("%s: no request was sent after the restart", mode)
	}
	for _, part := range []struct {
		name    string
		samples []loadSample
	}{{"before the stop", before}, {"after the new process answered /healthz", after}} {
		if n := countFailed(part.samples); n > 0 {
			t.Errorf("%s: %d of %d requests failed %s:%s", mode, n, len(part.samples), part.name, firstFailures(part.samples, 10))
		}
	}
}

func countFailed(samples []loadSample) int {
	n := 0
	for _, s := range samples {
		if s.failed() {
			n++
		}
	}
	return n
}

// replicaStarts maps the running containers of the functions to their
// State.StartedAt, which changes when Docker restarts a container.
func (d *daemon) replicaStarts(names []string) map[string]string {
	d.t.Helper()
	out := map[string]string{}
	for _, name := range names {
		ids, err := d.runningIDs(name, defaultNamespace)
		if err != nil {
			d.t.Fatal(err)
		}
		for _, id := range ids {
			out[short(id)] = d.inspect(id).State.StartedAt
		}
	}
	return out
}

// createOrphan starts a container labelled as a replica of function fn of
// this daemon's instance, which the store does not know, with no network. It
// returns the container ID.
func (d *daemon) createOrphan(img, fn string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	labels := map[string]string{
		labelManaged:              "true",
		labelInstance:             d.instance,
		labelFunction:             fn,
		labelNamespace:            defaultNamespace,
		"io.dockerfaas.spec-hash": "000000000000",
		"io.dockerfaas.slot":      "0",
	}
	res, err := d.docker.ContainerCreate(ctx, &container.Config{Image: img, Labels: labels},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, d.instance+"-"+fn+"."+defaultNamespace+"-orphan-0")
	if err != nil {
		d.t.Fatalf("creating an orphan container: %v", err)
	}
	if err := d.docker.ContainerStart(ctx, res.ID, container.StartOptions{}); err != nil {
		d.t.Fatalf("starting the orphan container: %v", err)
	}
	return res.ID
}
