package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestScaleDownFiveToOneUnderLoad keeps eight goroutines invoking a function
// with five replicas while it is scaled to one: four replicas are drained
// (taken out of the endpoint set, then stopped) under load. Not one request
// may fail: any status but 200, a transport error, or a 200 that fn-echo did
// not write. The loop is bounded to 60 s and 20000 requests.
func TestScaleDownFiveToOneUnderLoad(t *testing.T) {
	eachRuntime(t, testScaleDownFiveToOne)
}

func testScaleDownFiveToOne(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const name = "shrink"
	var env map[string]string
	if rt == runtimeSwarm {
		env = map[string]string{"SHUTDOWN_GRACE": "10s"} // see testRollingUpdateUnderLoad
	}
	d.deploy(simpleSpec(name, img, env, nil))
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 5); err != nil {
		t.Fatalf("scale to 5: %v", err)
	}
	d.waitReady(name, defaultNamespace, 5)
	eventually(t, readyTimeout, pollInterval, func() error {
		return d.replicasAre(name, 5, func(string) error { return nil })
	})

	load := startLoad(t, d, loadOptions{
		workers: 8, maxDuration: 60 * time.Second, maxRequests: 150000, pause: 2 * time.Millisecond, // see checkLoadLasted
		request: func(w, i int) (string, string, []byte) {
			if w%2 == 1 { // a POST with a body is never retried by Go's client
				return http.MethodPost, "/function/" + name, []byte(fmt.Sprintf("w%d-%d", w, i))
			}
			return http.MethodGet, "/function/" + name, nil
		},
	})
	time.Sleep(2 * time.Second)
	scaleAt := time.Now()
	if err := d.client().ScaleFunction(ctx, name, defaultNamespace, 1); err != nil {
		t.Fatalf("scale to 1: %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		return d.replicasAre(name, 1, func(string) error { return nil })
	})
	d.waitReady(name, defaultNamespace, 1)
	doneAt := time.Now()
	time.Sleep(2 * time.Second) // the lone replica keeps serving
	samples := load.stop()

	t.Logf("scale down 5→1: one replica left %s after the scale; %d requests: %v",
		doneAt.Sub(scaleAt).Round(time.Millisecond), len(samples), loadSummary(samples))
	logLatency(t, "scale down 5→1", samples)
	checkLoadLasted(t, "scale down 5→1", samples, doneAt)
	hosts := map[string]int{}
	for _, s := range samples {
		if !s.failed() {
			hosts[s.reply.Hostname]++
		}
	}
	t.Logf("answers by replica: %v", hosts)
	if len(samples) == 0 {
		t.Fatal("the load loop sent nothing")
	}
	if n := countFailed(samples); n > 0 {
		t.Errorf("scale down 5→1: %d of %d requests failed:%s", n, len(samples), firstFailures(samples, 10))
	}
	if len(hosts) < 2 {
		t.Errorf("answers came from %d replica(s) %v; the load should have reached several before the scale", len(hosts), hosts)
	}
}
