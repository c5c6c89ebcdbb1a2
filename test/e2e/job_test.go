package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Job mode (README "Job mode"): one fresh container per call of fn-job
// (testdata/fn-job), its stdin the request body, its stdout the answer.

const (
	fnJob = "fn-job"
	// labelRole and roleJob mark a job's container (pkg/docker's
	// LabelRole, RoleJob); labelJob names its function.
	labelRole = "io.dockerfaas.role"
	roleJob   = "job"
	labelJob  = "io.dockerfaas.job"
)

// jobSpec is a job-mode deployment of img; extra annotations are added.
func jobSpec(name, img string, env map[string]string, annotations map[string]string) types.FunctionDeployment {
	ann := map[string]string{"io.dockerfaas.mode": "job"}
	for k, v := range annotations {
		ann[k] = v
	}
	labels := map[string]string{}
	return types.FunctionDeployment{Service: name, Image: img, EnvVars: env, Labels: &labels, Annotations: &ann}
}

// deployJob deploys fn-job as the job function name, with annotations
// added to the job mode's, and waits until it is ready to run.
func (d *daemon) deployJob(name string, annotations map[string]string) {
	d.t.Helper()
	d.deploy(jobSpec(name, fnImage(d.t, fnJob), nil, annotations))
	d.waitReady(name, defaultNamespace, 1)
}

// jobContainers lists this daemon's job containers, in any state.
func (d *daemon) jobContainers() ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", labelInstance+"="+d.instance),
		filters.Arg("label", labelRole+"="+roleJob),
	)})
}

// waitNoJobContainers waits until no job container of the daemon is left.
func (d *daemon) waitNoJobContainers(timeout time.Duration) {
	d.t.Helper()
	eventually(d.t, timeout, pollInterval, func() error {
		cs, err := d.jobContainers()
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			names := make([]string, 0, len(cs))
			for _, c := range cs {
				names = append(names, strings.TrimPrefix(c.Names[0], "/")+" "+c.State)
			}
			return fmt.Errorf("%d job containers left: %v", len(cs), names)
		}
		return nil
	})
}

// waitJobsSettled waits until the daemon's job containers are only what
// pools keep started ahead of calls: all running, at most pooled of them
// (0: none at all).
func (d *daemon) waitJobsSettled(pooled int, timeout time.Duration) {
	d.t.Helper()
	if pooled == 0 {
		d.waitNoJobContainers(timeout)
		return
	}
	eventually(d.t, timeout, pollInterval, func() error {
		cs, err := d.jobContainers()
		if err != nil {
			return err
		}
		var other []string
		for _, c := range cs {
			if c.State != "running" {
				other = append(other, strings.TrimPrefix(c.Names[0], "/")+" "+c.State)
			}
		}
		if len(other) > 0 || len(cs) > pooled {
			return fmt.Errorf("%d job containers, want at most %d pooled (running); not running: %v", len(cs), pooled, other)
		}
		return nil
	})
}

// jobCall is one call's full answer, trailers included.
type jobCall struct {
	httpResult
	Trailer http.Header
}

// callJob sends one authenticated call and reads the whole answer.
func (d *daemon) callJob(method, path string, body []byte, headers map[string]string) (jobCall, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return jobCall{}, err
	}
	req.SetBasicAuth(d.user, d.password)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := d.http.Do(req)
	if err != nil {
		return jobCall{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return jobCall{}, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return jobCall{httpResult: httpResult{Status: res.StatusCode, Header: res.Header, Body: b}, Trailer: res.Trailer}, nil
}

func (d *daemon) mustCallJob(method, path string, body []byte, headers map[string]string) jobCall {
	d.t.Helper()
	res, err := d.callJob(method, path, body, headers)
	if err != nil {
		d.t.Fatal(err)
	}
	return res
}

// jobEnv is fn-job's mode=env answer.
type jobEnv struct {
	Args  []string          `json:"args"`
	Env   map[string]string `json:"env"`
	Stdin string            `json:"stdin"`
}

// TestJobMode: a job function's call runs one fresh container: stdin in,
// stdout out (held back up to 1 MiB, then streamed with the exit code in
// a trailer), exit codes, the Http_* environment, fprocess, secrets, env,
// limits and a read-only root filesystem as for replicas, the exec timeout
// (504) and an OOM kill under 20Mi, stderr in the function's logs, records
// of every run, and no container left afterwards.
func TestJobMode(t *testing.T) { testJobMode(t, false) }

// TestJobModeWarm is TestJobMode with the job function's calls handed to
// containers started ahead of them (io.dockerfaas.job.warm 1), which must
// behave exactly as containers made for the call.
func TestJobModeWarm(t *testing.T) { testJobMode(t, true) }

func testJobMode(t *testing.T, warm bool) {
	t.Parallel()
	pool := 0
	if warm {
		pool = 1
	}
	d := startDaemon(t)
	img := fnImage(t, fnJob)
	if res := d.invoke("POST", "/system/secrets", []byte(`{"name":"job-secret","value":"s3cr3t-job"}`), nil); res.Status != 201 {
		t.Fatalf("create secret: %s", res)
	}
	spec := jobSpec("job", img, map[string]string{"MODE": "test", "exec_timeout": "4s"}, map[string]string{"io.dockerfaas.job.warm": strconv.Itoa(pool)})
	spec.Secrets = []string{"job-secret"}
	spec.ReadOnlyRootFilesystem = true
	spec.Limits = &types.FunctionResources{Memory: "20Mi"}
	d.deploy(spec)
	fp := jobSpec("job-fp", img, nil, map[string]string{"io.dockerfaas.job.warm": strconv.Itoa(pool)})
	fp.EnvProcess = "/fn --from-fprocess  x"
	d.deploy(fp)
	st := d.waitReady("job", defaultNamespace, 1) // the one pseudo endpoint: ready to run
	t.Logf("job function: replicas %d, available %d", st.Replicas, st.AvailableReplicas)
	if cs, err := d.fnContainers("job", defaultNamespace, true); err != nil || len(cs) != 0 {
		t.Fatalf("replica containers of a job function: %d %v", len(cs), err)
	}

	t.Run("stdin to stdout", func(t *testing.T) {
		res := d.mustCallJob("POST", "/function/job?mode=upper", []byte("hello job"), map[string]string{"X-Call-Id": "job-roundtrip"})
		if res.Status != 200 || string(res.Body) != "HELLO JOB" || res.Header.Get("X-Exit-Code") != "0" ||
			res.Header.Get("X-Call-Id") != "job-roundtrip" || res.Header.Get("X-Duration-Seconds") == "" {
			t.Fatalf("got %s headers %v", res, res.Header)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB in, echoed
		res = d.mustCallJob("POST", "/function/job", big, nil)
		if res.Status != 200 || !bytes.Equal(res.Body, big) {
			t.Fatalf("1 MiB echo: status %d, %d bytes back (equal %v)", res.Status, len(res.Body), bytes.Equal(res.Body, big))
		}
		rec := d.waitExecution("job-roundtrip", store.ExecutionSucceeded)
		if rec.Kind != store.ExecutionJob || rec.Function != "openfaas-fn/job" || rec.ExitCode == nil || *rec.ExitCode != 0 ||
			rec.StatusCode != 200 || rec.BytesIn != 9 || rec.BytesOut != 9 || rec.StdoutHead != "HELLO JOB" {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("Http environment, env and fprocess", func(t *testing.T) {
		var pooled []string
		if warm {
			d.waitJobsSettled(2, 30*time.Second) // earlier calls' containers gone: job's and job-fp's pools
			pooled = d.waitPooled("job", 1)
		}
		res := d.mustCallJob("PUT", "/function/job/some/path?mode=env&k=v", []byte("in"),
			map[string]string{"X-Custom": "custom-value", "Content-Type": "text/x-test"})
		var got jobEnv
		if err := json.Unmarshal(res.Body, &got); res.Status != 200 || err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if warm && !slices.ContainsFunc(pooled, func(id string) bool { return got.Env["HOSTNAME"] != "" && strings.HasPrefix(id, got.Env["HOSTNAME"]) }) {
			t.Errorf("ran in container %q, want the one started ahead of the call (%v)", got.Env["HOSTNAME"], pooled)
		}
		if warm && !slices.Equal(got.Args, []string{"/fn"}) {
			t.Errorf("args %q, want the image's entrypoint", got.Args)
		}
		for k, v := range map[string]string{
			"Http_Method": "PUT", "Http_Path": "/some/path", "Http_Query": "mode=env&k=v", "Http_X_Custom": "custom-value",
			"Http_Content_Type": "text/x-test", "Http_Content_Length": "2", "MODE": "test",
		} {
			if got.Env[k] != v {
				t.Errorf("env %s = %q, want %q", k, got.Env[k], v)
			}
		}
		if got.Env["Http_X_Call_Id"] == "" || got.Env["Http_X_Start_Time"] == "" {
			t.Errorf("no call headers in the environment: %v", got.Env)
		}
		if _, ok := got.Env["Http_Authorization"]; ok {
			t.Error("the gateway's credentials reached the job's environment")
		}
		if got.Stdin != "in" || res.Header.Get("Content-Type") != "text/x-test" {
			t.Errorf("stdin %q, content type %q", got.Stdin, res.Header.Get("Content-Type"))
		}
		res = d.mustCallJob("POST", "/function/job-fp?mode=env", nil, nil)
		if err := json.Unmarshal(res.Body, &got); err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if !slices.Equal(got.Args, []string{"/fn", "--from-fprocess", "x"}) {
			t.Errorf("args %q, want fprocess split at spaces", got.Args)
		}
	})

	t.Run("secrets and read-only root filesystem", func(t *testing.T) {
		if res := d.mustCallJob("POST", "/function/job?cat=/var/openfaas/secrets/job-secret", nil, nil); string(res.Body) != "s3cr3t-job" {
			t.Errorf("secret: %s", res)
		}
		if res := d.mustCallJob("POST", "/function/job?write=/x", nil, nil); !strings.Contains(string(res.Body), "read-only file system") {
			t.Errorf("write to /: %s, want refused", res)
		}
		if res := d.mustCallJob("POST", "/function/job?write=/tmp/x", nil, nil); string(res.Body) != "ok" {
			t.Errorf("write to /tmp: %s, want ok", res)
		}
	})

	t.Run("the container while it runs", func(t *testing.T) {
		done := make(chan jobCall, 1)
		go func() {
			res, _ := d.callJob("POST", "/function/job?sleep=2s", nil, map[string]string{"X-Call-Id": "job-inspected"})
			done <- res
		}()
		var c container.Summary
		eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
			cs, err := d.jobContainers()
			if err != nil {
				return err
			}
			// Containers of earlier runs may still be on their way out.
			// Pooled containers carry no call ID (it is not known when they
			// are made) and are all alike: any running one will do.
			for _, x := range cs {
				if x.State == "running" && x.Labels[labelJob] == "openfaas-fn/job" &&
					(warm || x.Labels["io.dockerfaas.call-id"] == "job-inspected") {
					c = x
					return nil
				}
			}
			return fmt.Errorf("no running container of the call among %d job containers", len(cs))
		})
		in := d.inspect(c.ID)
		l := in.Config.Labels
		if l[labelJob] != "openfaas-fn/job" || (!warm && l["io.dockerfaas.call-id"] != "job-inspected") || l[labelFunction] != "" ||
			l["com.openfaas.annotations.io.dockerfaas.mode"] != "job" {
			t.Errorf("labels %v", l)
		}
		if warm {
			// It runs the daemon's binary first, mounted read-only.
			if ep := in.Config.Entrypoint; len(ep) < 4 || ep[0] != "/.dockerfaasd/dockerfaasd" || ep[1] != "job-init" || ep[3] != "/fn" {
				t.Errorf("entrypoint %q, want job-init then the image's /fn", ep)
			}
			if !slices.ContainsFunc(in.Mounts, func(m container.MountPoint) bool {
				return m.Destination == "/.dockerfaasd" && !m.RW && strings.HasPrefix(m.Name, "dockerfaasd-job-init-")
			}) {
				t.Errorf("mounts %+v, want the job-init volume read-only", in.Mounts)
			}
		}
		hc := in.HostConfig
		if !hc.ReadonlyRootfs || hc.Memory != 20<<20 || hc.PidsLimit == nil || *hc.PidsLimit <= 0 ||
			!slices.Contains(hc.SecurityOpt, "no-new-privileges") || hc.LogConfig.Type != "none" || hc.AutoRemove {
			t.Errorf("host config: readonly %v memory %d pids %v security %v log %q", hc.ReadonlyRootfs, hc.Memory, hc.PidsLimit, hc.SecurityOpt, hc.LogConfig.Type)
		}
		if _, ok := in.NetworkSettings.Networks[d.networkName(defaultNamespace, "job")]; !ok {
			t.Errorf("networks %v, want the function's", in.NetworkSettings.Networks)
		}
		if res := <-done; res.Status != 200 {
			t.Errorf("the inspected call: %s", res)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		res := d.mustCallJob("POST", "/function/job?exit=3&stderr=going-to-fail", []byte("partial"), map[string]string{"X-Call-Id": "job-exit3"})
		if res.Status != 500 || res.Header.Get("X-Exit-Code") != "3" || string(res.Body) != "partial" {
			t.Fatalf("exit 3: %s headers %v", res, res.Header)
		}
		rec := d.waitExecution("job-exit3", store.ExecutionFailed)
		if rec.ExitCode == nil || *rec.ExitCode != 3 || rec.StatusCode != 500 || rec.StderrHead != "going-to-fail\n" {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("exec timeout kills", func(t *testing.T) {
		start := time.Now()
		res := d.mustCallJob("POST", "/function/job?sleep=30s", nil, map[string]string{"X-Call-Id": "job-timeout"})
		took := time.Since(start)
		if res.Status != 504 || !strings.Contains(string(res.Body), "timed out") {
			t.Fatalf("timeout: %s", res)
		}
		if took > 25*time.Second {
			t.Errorf("answered after %s: the 4s exec timeout did not kill it", took)
		}
		t.Logf("504 after %s (exec_timeout 4s)", took.Round(time.Millisecond))
		d.waitJobsSettled(2*pool, 30*time.Second) // job and job-fp
		if rec := d.waitExecution("job-timeout", store.ExecutionTimedOut); rec.StatusCode != 504 {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("OOM kill under 20Mi", func(t *testing.T) {
		res := d.mustCallJob("POST", "/function/job?alloc=256", nil, map[string]string{"X-Call-Id": "job-oom"})
		if res.Status != 500 || res.Header.Get("X-Oom-Killed") != "true" || res.Header.Get("X-Exit-Code") != "137" {
			t.Fatalf("OOM: %s headers %v", res, res.Header)
		}
		if rec := d.waitExecution("job-oom", store.ExecutionOOMKilled); !rec.OOMKilled {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("output beyond 1 MiB is streamed with trailers", func(t *testing.T) {
		const n = 3 << 20
		for _, exit := range []string{"0", "5"} {
			res := d.mustCallJob("POST", "/function/job?bytes="+strconv.Itoa(n)+"&exit="+exit, nil, nil)
			if res.Status != 200 || len(res.Body) != n || res.Header.Get("X-Exit-Code") != "" || res.Trailer.Get("X-Exit-Code") != exit {
				t.Errorf("exit %s: status %d, %d bytes, header %q, trailer %v", exit, res.Status, len(res.Body), res.Header.Get("X-Exit-Code"), res.Trailer)
			}
		}
	})

	t.Run("stderr in the function's logs", func(t *testing.T) {
		marker := "job-marker-" + randomSuffix(8)
		d.mustCallJob("POST", "/function/job?stderr="+marker+"-1&stderr="+marker+"-2", nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := d.client()
		ch, err := c.GetLogs(ctx, "job", defaultNamespace, false, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for m := range ch {
			if m.Name != "job" || m.Instance == "" {
				t.Errorf("message %+v", m)
			}
			lines = append(lines, m.Text)
		}
		if !slices.Contains(lines, marker+"-1") || !slices.Contains(lines, marker+"-2") {
			t.Fatalf("history %q lacks the markers", lines)
		}
		res := d.invoke("GET", "/system/logs?name=job&tail=1&follow=false", nil, nil)
		if res.Status != 200 || strings.Count(string(res.Body), "\n") != 1 || !strings.Contains(string(res.Body), marker+"-2") {
			t.Errorf("tail=1: %s", res)
		}
		// Follow: a later run's line arrives.
		fctx, fcancel := context.WithCancel(ctx)
		defer fcancel()
		fch, err := c.GetLogs(fctx, "job", defaultNamespace, true, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		later := marker + "-later"
		go d.callJob("POST", "/function/job?stderr="+later, nil, nil)
		deadline := time.After(60 * time.Second)
		for found := false; !found; {
			select {
			case m, ok := <-fch:
				if !ok {
					t.Fatal("follow stream ended")
				}
				found = m.Text == later
			case <-deadline:
				t.Fatal("the later run's line did not arrive on the follow stream")
			}
		}
	})

	d.waitJobsSettled(2*pool, 30*time.Second) // job and job-fp
	// Deleting the function removes its network and its pooled container;
	// nothing of it is left.
	for _, fn := range []string{"job", "job-fp"} {
		if err := d.client().DeleteFunction(context.Background(), fn, defaultNamespace); err != nil {
			t.Fatalf("delete %s: %v", fn, err)
		}
	}
	d.waitNoJobContainers(30 * time.Second)
	eventually(t, 30*time.Second, pollInterval, func() error {
		if nws, err := d.networksLeft(t, "job"); err != nil || len(nws) != 0 {
			return fmt.Errorf("networks of job: %d %v", len(nws), err)
		}
		return nil
	})
}

// TestJobThousandExecutions: 1000 calls (JOB_RUNS) from 8 workers, each
// answered 200 with its own input, leave no job container behind and a
// succeeded record each; deleted then, the function leaves nothing the
// engine lets go of.
func TestJobThousandExecutions(t *testing.T) {
	t.Parallel()
	runs := envInt(t, "JOB_RUNS", 1000)
	const workers = 8
	d := startDaemon(t)
	d.deployJob("many", map[string]string{"io.dockerfaas.job.concurrency": strconv.Itoa(workers)})

	var next atomic.Int64
	var failed atomic.Int64
	var mu sync.Mutex
	var firstErr string
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(runs) {
					return
				}
				in := []byte("run-" + strconv.FormatInt(i, 10))
				t0 := time.Now()
				res, err := d.callJob("POST", "/function/many", in, map[string]string{"X-Call-Id": "many-" + strconv.FormatInt(i, 10)})
				took := time.Since(t0)
				mu.Lock()
				lat = append(lat, took)
				if err != nil || res.Status != 200 || !bytes.Equal(res.Body, in) {
					failed.Add(1)
					if firstErr == "" {
						firstErr = fmt.Sprintf("run %d: %v %s", i, err, res)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	t.Logf("%d runs by %d workers in %s (%.1f/s); latency p50 %s p99 %s", runs, workers, elapsed.Round(time.Millisecond),
		float64(runs)/elapsed.Seconds(), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond))
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d runs failed; first: %s", n, runs, firstErr)
	}
	d.waitJobsSettled(1, 60*time.Second) // the default pool of one

	eventually(t, 60*time.Second, time.Second, func() error {
		list, err := d.executionsOf("function=many&kind=job&state=succeeded&limit=1000")
		if err != nil {
			return err
		}
		if len(list) < min(runs, 1000) {
			return fmt.Errorf("%d succeeded records, want %d", len(list), min(runs, 1000))
		}
		return nil
	})

	// So many containers joining and leaving one network side by side is
	// what makes Engine 20.10 miscount its endpoints: the delete completes
	// even then, and the daemon reports a network it cannot remove.
	if err := d.client().DeleteFunction(context.Background(), "many", defaultNamespace); err != nil {
		t.Fatal(err)
	}
	d.waitNoJobContainers(30 * time.Second)
	eventually(t, 30*time.Second, pollInterval, func() error {
		if nws, err := d.networksLeft(t, "many"); err != nil || len(nws) != 0 {
			return fmt.Errorf("networks of many: %d %v", len(nws), err)
		}
		return nil
	})
}

// TestJobConcurrencyLimit: with io.dockerfaas.job.concurrency 2 and a
// READY_WAIT of 1s, a third call while two run waits that long and gets
// 429 with a message; once they ended, a call runs again.
func TestJobConcurrencyLimit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("READY_WAIT", "1s"))
	// No pool: the test counts the containers of the two runs.
	d.deployJob("limited", map[string]string{"io.dockerfaas.job.concurrency": "2", "io.dockerfaas.job.warm": "0"})

	var wg sync.WaitGroup
	slow := make([]jobCall, 2)
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slow[i], _ = d.callJob("POST", "/function/limited?sleep=6s", nil, nil)
		}()
	}
	eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		cs, err := d.jobContainers()
		if err != nil || len(cs) != 2 {
			return fmt.Errorf("%d job containers (%v), want the 2 slow runs", len(cs), err)
		}
		return nil
	})
	start := time.Now()
	res := d.mustCallJob("POST", "/function/limited", []byte("third"), nil)
	waited := time.Since(start)
	if res.Status != 429 || !strings.Contains(string(res.Body), "running 2 jobs, its limit") {
		t.Fatalf("third call: %s, want 429 naming the limit", res)
	}
	if waited < 900*time.Millisecond {
		t.Errorf("429 after %s, want after READY_WAIT (1s)", waited)
	}
	t.Logf("third call: 429 after %s: %s", waited.Round(time.Millisecond), strings.TrimSpace(string(res.Body)))
	wg.Wait()
	for i, r := range slow {
		if r.Status != 200 {
			t.Errorf("slow call %d: %s", i, r)
		}
	}
	if res := d.mustCallJob("POST", "/function/limited", []byte("again"), nil); res.Status != 200 || string(res.Body) != "again" {
		t.Errorf("call after the slow ones: %s", res)
	}
	d.waitNoJobContainers(30 * time.Second)
}

// TestJobAsync: a job function called through /async-function/ runs as a
// job; the callback gets its stdout and status, and the run has its job
// record next to the async attempt's.
func TestJobAsync(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.deployJob("ajob", nil)
	recv := newCallbackReceiver(t)
	res := d.invoke("POST", "/async-function/ajob?mode=upper", []byte("async job"), map[string]string{
		"X-Callback-Url": recv.url("/done"), "X-Call-Id": "ajob-1",
	})
	if res.Status != 202 {
		t.Fatalf("accept: %s", res)
	}
	hits := recv.wait(t, "ajob-1", 1)
	if string(hits[0].Body) != "ASYNC JOB" || hits[0].Header.Get("X-Function-Status") != "200" || hits[0].Header.Get("X-Exit-Code") != "0" {
		t.Errorf("callback body %q headers %v", hits[0].Body, hits[0].Header)
	}
	rec := d.waitExecution("ajob-1", store.ExecutionSucceeded)
	if rec.Kind != store.ExecutionJob || rec.StdoutHead != "ASYNC JOB" {
		t.Errorf("job record %+v", rec)
	}
	d.waitExecution("ajob-1.1", store.ExecutionSucceeded)
	d.waitJobsSettled(1, 30*time.Second)
}

// TestJobAsyncConcurrency: four /async-function/ calls at once to a job
// function with io.dockerfaas.job.concurrency 1 all complete, each with
// its own output, and their runs (the job records' start and end) never
// overlap. With async max-inflight 4 the calls that found the slot taken
// were answered 429 after READY_WAIT and retried; with max-inflight 1
// they waited in the async queue instead, and none got a 429.
func TestJobAsyncConcurrency(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("READY_WAIT", "1s"))
	const calls = 4
	tests := []struct {
		name        string
		maxInflight int
		retried     bool // some attempts were answered 429 and retried
	}{
		{name: "retried after 429", maxInflight: calls, retried: true},
		{name: "queued", maxInflight: 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := "ajobc" + strconv.Itoa(i)
			d.deployJob(fn, map[string]string{
				"io.dockerfaas.job.concurrency": "1",
				annMaxInflight:                  strconv.Itoa(tc.maxInflight),
				annRetryAttempts:                "20",
				annRetryMinWait:                 "100ms",
				annRetryMaxWait:                 "500ms",
			})
			suffix := randomSuffix(6)
			ids := make([]string, 0, calls)
			for n := range calls {
				id := fmt.Sprintf("%s-%d-%s", fn, n, suffix)
				d.accept(http.MethodPost, "/async-function/"+fn+"?sleep=1s&mode=upper", []byte(id), map[string]string{"X-Call-Id": id})
				ids = append(ids, id)
			}
			for _, id := range ids {
				d.waitRecord(id, finalWith("succeeded", false))
			}

			// One job record per call (a 429 leaves none), each with the
			// call's own output; sorted by start, each run began after
			// the one before it ended.
			runs := d.waitExecutions("function="+fn+"&kind=job", calls)
			slices.SortFunc(runs, func(a, b store.Execution) int { return a.StartedAt.Compare(b.StartedAt) })
			for n, e := range runs {
				if e.State != store.ExecutionSucceeded || !slices.Contains(ids, e.ID) || e.StdoutHead != strings.ToUpper(e.ID) {
					t.Errorf("job record %+v, want succeeded with the call's own output", e)
				}
				if n > 0 && e.StartedAt.Before(runs[n-1].FinishedAt) {
					t.Errorf("run %s started at %s, before run %s ended (%s): more than one ran at a time",
						e.ID, e.StartedAt.Format(time.StampMicro), runs[n-1].ID, runs[n-1].FinishedAt.Format(time.StampMicro))
				}
			}

			// The async attempts: per call, the last succeeded and every
			// earlier one was refused with 429.
			attempts, err := d.executionsOf("function=" + fn + "&kind=async&limit=1000")
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			for _, id := range ids {
				rec, _, err := d.asyncRecordOf(id)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range attempts {
					if !strings.HasPrefix(a.ID, id+".") {
						continue
					}
					switch {
					case a.Attempt == rec.Attempts && a.State == store.ExecutionSucceeded && a.StatusCode == http.StatusOK:
					case a.Attempt < rec.Attempts && a.StatusCode == http.StatusTooManyRequests:
						refused++
					default:
						t.Errorf("attempt %s: %s, status %d (the call took %d attempts)", a.ID, a.State, a.StatusCode, rec.Attempts)
					}
				}
			}
			t.Logf("%d async attempt records, %d answered 429 and retried", len(attempts), refused)
			if got, want := len(attempts), calls+refused; got != want {
				t.Errorf("%d attempt records, want %d (one success per call and the 429s)", got, want)
			}
			if tc.retried && refused == 0 {
				t.Error("no attempt was answered 429: the calls did not meet the concurrency bound")
			}
			if !tc.retried && refused != 0 {
				t.Errorf("%d attempts answered 429 with max-inflight 1, want the calls queued", refused)
			}
		})
	}
	d.waitJobsSettled(len(tests), 30*time.Second) // one pooled container per function
}

// TestJobKillDuringRuns: kill -9 while four jobs run; after the restart no
// container of the killed runs is left, their records read interrupted
// (written whole: the state file passes its checks), and the function
// runs jobs again.
func TestJobKillDuringRuns(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.deployJob("killed", nil)
	const n = 4
	for i := range n {
		go d.callJob("POST", "/function/killed?sleep=30s", nil, map[string]string{"X-Call-Id": "killed-" + strconv.Itoa(i)})
	}
	eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		cs, err := d.jobContainers()
		running := 0
		for _, c := range cs {
			if c.State == "running" {
				running++
			}
		}
		// The n runs, and the pooled container started behind them.
		if err != nil || running < n {
			return fmt.Errorf("%d of %d job containers running (%v), want at least %d", running, len(cs), err, n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // past the 250 ms after which a running record is written
	d.Kill()
	cs, err := d.jobContainers()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d job containers left by the killed daemon", len(cs))
	checkStateFile(t, "after kill -9", filepath.Join(d.stateDir, "state.db"))
	d.Restart()
	// Every container the dead daemon left goes (runs and pool alike); the
	// new daemon's pool starts its own.
	eventually(t, 60*time.Second, pollInterval, func() error {
		now, err := d.jobContainers()
		if err != nil {
			return err
		}
		for _, c := range now {
			if slices.ContainsFunc(cs, func(old container.Summary) bool { return old.ID == c.ID }) {
				return fmt.Errorf("container %s (%s) of the killed daemon is still there", c.Names[0], c.State)
			}
		}
		return nil
	})
	d.waitJobsSettled(1, 60*time.Second)
	for i := range n {
		rec := d.waitExecution("killed-"+strconv.Itoa(i), store.ExecutionInterrupted)
		if rec.FinishedAt.IsZero() || rec.Kind != store.ExecutionJob {
			t.Errorf("record %+v", rec)
		}
	}
	if res := d.mustCallJob("POST", "/function/killed?mode=upper", []byte("after"), nil); res.Status != 200 || string(res.Body) != "AFTER" {
		t.Errorf("call after the restart: %s", res)
	}
	d.waitJobsSettled(1, 30*time.Second)
}

// TestJobModeSwarmNotSupported: on RUNTIME=swarm, deploying a job-mode
// function is a 501 that says what is needed, and nothing is stored.
func TestJobModeSwarmNotSupported(t *testing.T) {
	t.Parallel()
	requireSwarm(t)
	d := startDaemon(t, onRuntime(runtimeSwarm))
	body, err := json.Marshal(jobSpec("swarmjob", "example/job:1", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		res := d.invoke(method, "/system/functions", body, nil)
		if res.Status != http.StatusNotImplemented || !strings.Contains(string(res.Body), "job mode needs RUNTIME=docker") {
			t.Errorf("%s of a job function on swarm: %s, want 501 naming RUNTIME=docker", method, res)
		}
	}
	if _, code, _ := d.getFunction("swarmjob", defaultNamespace); code != http.StatusNotFound {
		t.Errorf("GET after the refused deploy: %d, want 404", code)
	}
}
