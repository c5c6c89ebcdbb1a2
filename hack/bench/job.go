package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
)

// The job section's function: test/e2e/testdata/fn-job, which reads its
// stdin and writes it back: with an empty body it exits at once.
const (
	jobSource = "test/e2e/testdata/fn-job"
	jobRepo   = "dockerfaasd-bench/fn-job"
	jobFn     = "benchjob"
)

// jobLevels are the concurrencies measured: one call at a time, and four
// at once (two cores).
var jobLevels = []int{1, 4}

// job measures job mode (one fresh container per call) through
// /function/ against the Docker floor of the same work: create + start +
// wait + remove of the same image through the Docker API, on a network of
// its own, with the same concurrency, in the same run. Floor and daemon
// alternate in rounds, so background load hits both alike. It also times
// each Docker step of a run as the daemon makes it (create, attach,
// start, start → exit, remove), which is what pre-creating containers
// could save.
func (r *runner) job(ctx context.Context) error {
	runs, err := strconv.Atoi(envOr("BENCH_JOB_RUNS", "40"))
	if err != nil || runs < 4 || runs > 2000 {
		return errors.New("BENCH_JOB_RUNS: want a number from 4 to 2000")
	}
	img, err := r.ensureJobImage(ctx)
	if err != nil {
		return err
	}
	netName := "benchjob-" + r.id
	netID, err := r.createNetwork(ctx, netName)
	if err != nil {
		return err
	}
	defer func() { _ = removeNetwork(context.WithoutCancel(ctx), r.docker, netID) }()

	ann := map[string]string{"io.dockerfaas.mode": "job", "io.dockerfaas.job.concurrency": "8"}
	labels := map[string]string{}
	if err := r.d.deploySpec(ctx, types.FunctionDeployment{Service: jobFn, Image: img, Annotations: &ann, Labels: &labels}); err != nil {
		return err
	}
	defer func() { _ = r.removeFunction(context.WithoutCancel(ctx), jobFn) }()
	if err := r.waitAvailable(ctx, jobFn, 1, 60*time.Second); err != nil {
		return err
	}
	call := func(ctx context.Context) error { return r.jobCall(ctx) }
	floor := func(ctx context.Context) error { return r.jobFloor(ctx, img, netName) }
	// Warm both paths up: the first runs pay for caches.
	for range 3 {
		if err := call(ctx); err != nil {
			return fmt.Errorf("warm-up call: %w", err)
		}
		if err := floor(ctx); err != nil {
			return fmt.Errorf("warm-up floor: %w", err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d runs per side and concurrency, in 4 alternating rounds; fn-job with an empty body (it exits at once). "+
		"Floor: `ContainerCreate` + `ContainerStart` + `ContainerWait` + `ContainerRemove` through the Docker API on a network of "+
		"the driver's. dockerfaasd: `POST /function/%s` (basic auth, keep-alive) to a job-mode function: create, attach, start, "+
		"stdin closed, output read, wait; the container's removal follows the answer.\n\n", runs, jobFn)
	b.WriteString("| concurrency | what | p50 | p99 | runs/s |\n|---:|---|---:|---:|---:|\n")
	type row struct {
		c                  int
		floor, via         []time.Duration
		floorRate, viaRate float64
	}
	var rows []row
	for _, c := range jobLevels {
		var rw row
		rw.c = c
		var floorTime, viaTime time.Duration
		for round := range 4 {
			n := runs / 4
			if round == 3 {
				n = runs - 3*(runs/4)
			}
			lat, el, err := runConcurrent(ctx, c, n, floor)
			if err != nil {
				return fmt.Errorf("floor at concurrency %d: %w", c, err)
			}
			rw.floor, floorTime = append(rw.floor, lat...), floorTime+el
			lat, el, err = runConcurrent(ctx, c, n, call)
			if err != nil {
				return fmt.Errorf("dockerfaasd at concurrency %d: %w", c, err)
			}
			rw.via, viaTime = append(rw.via, lat...), viaTime+el
		}
		slices.Sort(rw.floor)
		slices.Sort(rw.via)
		rw.floorRate = ratio(float64(len(rw.floor)), floorTime.Seconds())
		rw.viaRate = ratio(float64(len(rw.via)), viaTime.Seconds())
		rows = append(rows, rw)
		logf("job c=%d: floor p50 %s p99 %s; dockerfaasd p50 %s p99 %s", c,
			percentile(rw.floor, 50), percentile(rw.floor, 99), percentile(rw.via, 50), percentile(rw.via, 99))
		fmt.Fprintf(&b, "| %d | Docker floor: create+start+wait+remove | %s | %s | %s |\n", c,
			fmtDur(percentile(rw.floor, 50)), fmtDur(percentile(rw.floor, 99)), fmtNum(rw.floorRate))
		fmt.Fprintf(&b, "| %d | dockerfaasd: job through /function/ | %s | %s | %s |\n", c,
			fmtDur(percentile(rw.via, 50)), fmtDur(percentile(rw.via, 99)), fmtNum(rw.viaRate))
	}
	b.WriteString("\n| concurrency | dockerfaasd / floor, p50 | p99 | target |\n|---:|---:|---:|---|\n")
	for _, rw := range rows {
		p50 := ratio(percentile(rw.via, 50).Seconds(), percentile(rw.floor, 50).Seconds())
		p99 := ratio(percentile(rw.via, 99).Seconds(), percentile(rw.floor, 99).Seconds())
		fmt.Fprintf(&b, "| %d | %s | %s | ≤ 1.0%s |\n", rw.c, fmtRatio(p50), fmtRatio(p99), verdict(p50 <= 1.0))
	}

	steps, err := r.jobSteps(ctx, img, netName, max(runs/2, 10))
	if err != nil {
		return err
	}
	b.WriteString("\nThe Docker steps of one run as the daemon makes them (driver, one at a time, medians of " +
		strconv.Itoa(max(runs/2, 10)) + " runs): what pre-creating containers ahead of calls could take off a call's path is create " +
		"(and attach), since start needs the call's `Http_*` environment, which is fixed at create.\n\n")
	b.WriteString("| step | median | share of the run |\n|---|---:|---:|\n")
	var total time.Duration
	for _, s := range steps {
		total += s.median
	}
	for _, s := range steps {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.name, fmtDur(s.median), fmtPct(ratio(s.median.Seconds(), total.Seconds())))
	}
	fmt.Fprintf(&b, "| all | %s | |\n", fmtDur(total))
	r.rep.add("job", b.String())
	return nil
}

// runConcurrent runs n calls of f, c at a time, and returns their
// latencies and the time the whole batch took.
func runConcurrent(ctx context.Context, c, n int, f func(context.Context) error) ([]time.Duration, time.Duration, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs []error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				t := time.Now()
				err := f(ctx)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	return lat, time.Since(t0), ctx.Err()
}

// jobCall makes one call of the job function and checks its answer.
func (r *runner) jobCall(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.d.base+"/function/"+jobFn, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.d.authHeader())
	res, err := r.d.http.Do(req)
	if err != nil {
		return err
	}
	drain(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Exit-Code") != "0" {
		return fmt.Errorf("POST /function/%s: %d, exit code %q", jobFn, res.StatusCode, res.Header.Get("X-Exit-Code"))
	}
	return nil
}

// jobFloor is one run of the image straight through the Docker API:
// create, start, wait for the exit, remove.
func (r *runner) jobFloor(ctx context.Context, img, nw string) error {
	c, err := r.docker.ContainerCreate(ctx,
		&container.Config{Image: img, Labels: map[string]string{labelBench: r.id}},
		&container.HostConfig{NetworkMode: container.NetworkMode(nw)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw: {}}}, nil, "")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer func() { _ = removeContainer(context.WithoutCancel(ctx), r.docker, c.ID) }()
	if err := r.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	resC, errC := r.docker.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case res := <-resC:
		if res.StatusCode != 0 {
			return fmt.Errorf("exit code %d", res.StatusCode)
		}
	case err := <-errC:
		return fmt.Errorf("wait: %w", err)
	}
	if err := r.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// jobStep is the median time of one Docker step of a run.
type jobStep struct {
	name   string
	median time.Duration
}

// jobSteps times each Docker step of n runs made the way the daemon makes
// them, one at a time.
func (r *runner) jobSteps(ctx context.Context, img, nw string, n int) ([]jobStep, error) {
	names := []string{"create", "attach", "start", "start → exit (stdin closed)", "remove"}
	times := make([][]time.Duration, len(names))
	for range n {
		var t [5]time.Duration
		mark := time.Now()
		lap := func(i int) {
			now := time.Now()
			t[i] = now.Sub(mark)
			mark = now
		}
		c, err := r.docker.ContainerCreate(ctx,
			&container.Config{Image: img, Labels: map[string]string{labelBench: r.id},
				OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true, AttachStderr: true},
			&container.HostConfig{NetworkMode: container.NetworkMode(nw), LogConfig: container.LogConfig{Type: "none"}},
			&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw: {}}}, nil, "")
		if err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		lap(0)
		att, err := r.docker.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			_ = removeContainer(context.WithoutCancel(ctx), r.docker, c.ID)
			return nil, fmt.Errorf("attach: %w", err)
		}
		lap(1)
		if err := r.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			att.Close()
			_ = removeContainer(context.WithoutCancel(ctx), r.docker, c.ID)
			return nil, fmt.Errorf("start: %w", err)
		}
		lap(2)
		_ = att.CloseWrite()
		resC, errC := r.docker.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
		select {
		case <-resC:
		case err := <-errC:
			att.Close()
			_ = removeContainer(context.WithoutCancel(ctx), r.docker, c.ID)
			return nil, fmt.Errorf("wait: %w", err)
		}
		lap(3)
		att.Close()
		mark = time.Now()
		if err := r.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("remove: %w", err)
		}
		lap(4)
		for i := range t {
			times[i] = append(times[i], t[i])
		}
	}
	out := make([]jobStep, len(names))
	for i, name := range names {
		out[i] = jobStep{name: name, median: median(times[i])}
	}
	return out, nil
}

// ensureJobImage builds fn-job into a FROM scratch image unless one built
// from the same sources, Dockerfile, toolchain and flags is there.
func (r *runner) ensureJobImage(ctx context.Context) (string, error) {
	return r.ensureFnImage(ctx, jobSource, jobRepo, "fn-job")
}
