package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestRollingUpdateUnderLoadLosesNoRequest keeps eight goroutines invoking a
// three-replica function whose replicas take a second to become ready, while
// a PUT changes its environment and later a scale goes from 3 to 1, and
// then from 2 to 1 while every call lasts longer than the drain grace.
// Readiness gating and draining must lose nothing: not one failed request
// (any status but 200, or a transport error), and the answers switch from
// the old environment to the new one.
func TestRollingUpdateUnderLoadLosesNoRequest(t *testing.T) {
	eachRuntime(t, testRollingUpdateUnderLoad)
}

func testRollingUpdateUnderLoad(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()
	const name = "roll"
	spec := func(version string) map[string]string {
		env := map[string]string{"HEALTH_DELAY": "1s", "VERSION": version}
		if rt == runtimeSwarm {
			// Swarm, not the daemon, picks the task a scale down stops, so
			// the task's calls finish only if the function lets them on
			// SIGTERM, as the OpenFaaS watchdogs do (README "When one host
			// is not enough").
			env["SHUTDOWN_GRACE"] = "10s"
		}
		return env
	}
	d.deploy(simpleSpec(name, img, spec("1"), nil))
	if err := c.ScaleFunction(ctx, name, defaultNamespace, 3); err != nil {
		t.Fatalf("scale to 3: %v", err)
	}
	d.waitReady(name, defaultNamespace, 3)
	oldIDs, err := d.replicaIDs(name, defaultNamespace)
	if err != nil || len(oldIDs) != 3 {
		t.Fatalf("running replicas before the update: %v %v, want 3", oldIDs, err)
	}

	opts := loadOptions{
		// Bound by time and count; the count is far above what 8 workers
		// send in the time an update takes (checkLoadLasted).
		workers: 8, maxDuration: 60 * time.Second, maxRequests: 150000, pause: 2 * time.Millisecond,
		request: func(w, i int) (string, string, []byte) {
			if w%2 == 1 { // a POST with a body is never retried by Go's client
				return http.MethodPost, "/function/" + name, []byte(fmt.Sprintf("w%d-%d", w, i))
			}
			return http.MethodGet, "/function/" + name, nil
		},
	}

	// Rolling update: PUT a new environment.
	load := startLoad(t, d, opts)
	time.Sleep(500 * time.Millisecond)
	putAt := time.Now()
	code, err := c.Update(ctx, simpleSpec(name, img, spec("2"), nil))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("PUT VERSION=2: %d %v, want 202", code, err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		return d.replicasAre(name, 3, func(id string) error {
			if slices.Contains(oldIDs, id) {
				return fmt.Errorf("old replica %s still there", short(id))
			}
			if v := d.replicaEnv(id)["VERSION"]; v != "2" {
				return fmt.Errorf("replica %s has VERSION=%q", short(id), v)
			}
			return nil
		})
	})
	d.waitReady(name, defaultNamespace, 3)
	doneAt := time.Now()
	time.Sleep(time.Second)
	samples := load.stop()
	t.Logf("rolling update: PUT → old replicas gone and 3 new ready in %s; %d requests: %v",
		doneAt.Sub(putAt).Round(time.Millisecond), len(samples), loadSummary(samples))
	logLatency(t, "rolling update", samples)
	checkLoadLasted(t, "rolling update", samples, doneAt)
	if n := countFailed(samples); n > 0 {
		t.Errorf("rolling update: %d of %d requests failed:%s", n, len(samples), firstFailures(samples, 10))
	}
	versions := map[string]int{}
	var lastOld time.Time
	for _, s := range samples {
		if s.failed() {
			continue
		}
		v := s.reply.Env["VERSION"]
		versions[v]++
		if v == "1" && s.start.After(lastOld) {
			lastOld = s.start
		}
		if v == "1" && s.start.After(doneAt) {
			t.Errorf("rolling update: %s answered by the old spec after the update was complete", s)
		}
	}
	t.Logf("rolling update: answers by VERSION %v; last old answer started %s after the PUT",
		versions, lastOld.Sub(putAt).Round(time.Millisecond))
	if versions["1"] == 0 || versions["2"] == 0 || len(versions) != 2 {
		t.Errorf("rolling update: answers by VERSION %v, want both 1 (before) and 2 (after) and nothing else", versions)
	}

	// Scale down 3 → 1: two replicas are drained under load.
	load = startLoad(t, d, opts)
	time.Sleep(500 * time.Millisecond)
	scaleAt := time.Now()
	if err := c.ScaleFunction(ctx, name, defaultNamespace, 1); err != nil {
		t.Fatalf("scale to 1: %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		return d.replicasAre(name, 1, func(string) error { return nil })
	})
	d.waitReady(name, defaultNamespace, 1)
	doneAt = time.Now()
	time.Sleep(time.Second)
	samples = load.stop()
	t.Logf("scale down 3→1: done in %s; %d requests: %v",
		doneAt.Sub(scaleAt).Round(time.Millisecond), len(samples), loadSummary(samples))
	logLatency(t, "scale down", samples)
	checkLoadLasted(t, "scale down", samples, doneAt)
	if n := countFailed(samples); n > 0 {
		t.Errorf("scale down: %d of %d requests failed:%s", n, len(samples), firstFailures(samples, 10))
	}

	// Scale down 2 → 1 while every call takes longer than the controller's
	// drain grace (2 s): the drained replica must be stopped only once its
	// calls have ended. fn-echo exits at once on SIGTERM, like many
	// functions, so a call still running when it is stopped fails.
	if err := c.ScaleFunction(ctx, name, defaultNamespace, 2); err != nil {
		t.Fatalf("scale to 2: %v", err)
	}
	d.waitReady(name, defaultNamespace, 2)
	slow := loadOptions{
		workers: 4, maxDuration: 60 * time.Second, maxRequests: 200, pause: 10 * time.Millisecond,
		request: func(int, int) (string, string, []byte) {
			return http.MethodGet, "/function/" + name + "/sleep?d=4s", nil
		},
	}
	load = startLoad(t, d, slow)
	time.Sleep(time.Second) // every worker is in the middle of a call on one of the two replicas
	scaleAt = time.Now()
	if err := c.ScaleFunction(ctx, name, defaultNamespace, 1); err != nil {
		t.Fatalf("scale to 1: %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		return d.replicasAre(name, 1, func(string) error { return nil })
	})
	doneAt = time.Now()
	time.Sleep(time.Second)
	samples = load.stop()
	t.Logf("scale down 2→1 with 4 s calls: drained replica gone %s after the scale; %d calls: %v",
		doneAt.Sub(scaleAt).Round(time.Millisecond), len(samples), slowSummary(samples))
	for _, s := range samples {
		if s.err != nil || s.status != http.StatusOK {
			t.Errorf("scale down with long calls: %s", s)
		}
	}
}

// slowSummary counts /sleep answers ("slept 4s" is not fn-echo's JSON).
func slowSummary(samples []loadSample) map[string]int {
	m := map[string]int{}
	for _, s := range samples {
		switch {
		case s.err != nil:
			m["transport error"]++
		default:
			m[fmt.Sprint(s.status)]++
		}
	}
	return m
}

// replicasAre checks that the function has exactly n containers in any
// state, all running, each passing check.
func (d *daemon) replicasAre(name string, n int, check func(id string) error) error {
	if d.runtime == runtimeSwarm {
		return d.tasksAre(name, n, check)
	}
	cs, err := d.fnContainers(name, defaultNamespace, true)
	if err != nil {
		return err
	}
	if len(cs) != n {
		return fmt.Errorf("%d containers (all states), want %d", len(cs), n)
	}
	for _, ct := range cs {
		if ct.State != "running" {
			return fmt.Errorf("container %s is %s", short(ct.ID), ct.State)
		}
		if err := check(ct.ID); err != nil {
			return err
		}
	}
	return nil
}

// logLatency logs the median and worst request latency of samples.
func logLatency(t *testing.T, what string, samples []loadSample) {
	t.Helper()
	if len(samples) == 0 {
		return
	}
	ds := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		ds = append(ds, s.end.Sub(s.start))
	}
	slices.Sort(ds)
	t.Logf("%s: latency median %s, p99 %s, max %s", what,
		ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond), ds[len(ds)-1].Round(time.Millisecond))
}
