package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// runningJobs returns the IDs of fn's running job containers.
func (d *daemon) runningJobs(fn string) ([]string, error) {
	cs, err := d.jobContainers()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cs {
		if c.State == "running" && c.Labels[labelJob] == defaultNamespace+"/"+fn {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// waitPooled waits until fn has n job containers running (its pool, with
// no call running) and returns their IDs.
func (d *daemon) waitPooled(fn string, n int) []string {
	d.t.Helper()
	return d.waitPooledNot(fn, n, nil)
}

// waitPooledNot is waitPooled where none of the pooled containers may be
// one of not.
func (d *daemon) waitPooledNot(fn string, n int, not []string) []string {
	d.t.Helper()
	var ids []string
	eventually(d.t, 60*time.Second, pollInterval, func() (err error) {
		if ids, err = d.runningJobs(fn); err != nil {
			return err
		}
		if len(ids) != n {
			return fmt.Errorf("%d job containers of %s running, want %d pooled", len(ids), fn, n)
		}
		for _, id := range ids {
			if slices.Contains(not, id) {
				return fmt.Errorf("container %.12s is still pooled", id)
			}
		}
		return nil
	})
	return ids
}

// envCall calls fn in mode=env and returns the container (HOSTNAME) and
// the process ID counter that answered.
func (d *daemon) envCall(fn string) jobEnv {
	d.t.Helper()
	res := d.mustCallJob("POST", "/function/"+fn+"?mode=env", []byte("x"), nil)
	var got jobEnv
	if err := json.Unmarshal(res.Body, &got); res.Status != 200 || err != nil || got.Env["HOSTNAME"] == "" {
		d.t.Fatalf("%s: %v", res, err)
	}
	return got
}

// TestJobWarmPool: a job function keeps one container started ahead of
// its calls (JOB_WARM's default); a call runs in it (its HOSTNAME is that
// container's), it serves no other call and is removed, another takes its
// place; a new spec replaces the pooled container; kill -9 of the daemon
// leaves no pooled container behind after the restart; deleting the
// function leaves nothing.
func TestJobWarmPool(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.deployJob("warm", nil)

	seen := map[string]bool{}
	var used []string // IDs of containers that served a call
	for i := range 5 {
		// A used container may still show as running while it is removed.
		pooled := d.waitPooledNot("warm", 1, used)
		got := d.envCall("warm")
		host := got.Env["HOSTNAME"]
		if !strings.HasPrefix(pooled[0], host) {
			t.Fatalf("call %d ran in %s, want the pooled container %.12s", i, host, pooled[0])
		}
		if seen[host] {
			t.Fatalf("call %d: container %s served an earlier call", i, host)
		}
		seen[host] = true
		used = append(used, pooled[0])
		if got.Env["Http_Method"] != "POST" || got.Stdin != "x" {
			t.Errorf("call %d: env %v stdin %q", i, got.Env, got.Stdin)
		}
	}
	d.waitJobsSettled(1, 30*time.Second)

	// A new spec: the pooled container of the old one is replaced.
	old := d.waitPooledNot("warm", 1, used)
	spec := jobSpec("warm", fnImage(t, fnJob), map[string]string{"GENERATION": "2"}, nil)
	if code, _ := d.deployLikeFaasCLI(spec); code != 202 {
		t.Fatalf("update: %d", code)
	}
	d.waitPooledNot("warm", 1, old)
	if got := d.envCall("warm"); got.Env["GENERATION"] != "2" {
		t.Errorf("after the update: env %v, want the new spec's", got.Env)
	}

	// kill -9: the pooled container of the dead daemon is removed after
	// the restart, a new one is started.
	before := d.waitPooledNot("warm", 1, used)
	d.Kill()
	d.Restart()
	d.waitPooledNot("warm", 1, before)
	if got := d.envCall("warm"); seen[got.Env["HOSTNAME"]] {
		t.Errorf("after the restart: container %s served an earlier call", got.Env["HOSTNAME"])
	}

	if err := d.client().DeleteFunction(t.Context(), "warm", defaultNamespace); err != nil {
		t.Fatal(err)
	}
	d.waitNoJobContainers(30 * time.Second)
}
