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
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
)

// The job section's function: test/e2e/testdata/fn-job, which reads its
// stdin and writes it back: with an empty body it exits at once.
const (
	jobSource = "test/e2e/testdata/fn-job"
	jobRepo   = "dockerfaasd-bench/fn-job"
	jobColdFn = "benchjobcold" // io.dockerfaas.job.warm 0: a container made per call
)

// jobLevels are the concurrencies measured (one call at a time, and four
// at once on two cores), each with a function keeping as many containers
// started ahead of calls (one is JOB_WARM's default).
var jobLevels = []struct {
	c    int
	fn   string
	warm string // "" for the default
}{{1, "benchjob", ""}, {4, "benchjob4", "4"}}

// job measures job mode (one fresh container per call) through
// /function/ against the Docker floor of the same work: create + start +
// wait + remove of the same image through the Docker API, on a network of
// its own, with the same concurrency, in the same run. Floor and daemon
// alternate in rounds, so background load hits both alike. Three ways of
// the daemon are measured: calls back to back to a function with the
// default pool of one container started ahead of calls (saturated: bound
// by Docker's start rate, like the floor), the same with each call made
// once the pool holds a fresh container (a call as it meets an idle
// function), and a function without a pool (a container made per call).
// It also times each Docker step of a run made per call (create, attach,
// start, start → exit, remove).
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

	fns := map[string]string{jobColdFn: "0"}
	for _, l := range jobLevels {
		fns[l.fn] = l.warm
	}
	for fn, warm := range fns {
		ann := map[string]string{"io.dockerfaas.mode": "job", "io.dockerfaas.job.concurrency": "8"}
		if warm != "" {
			ann["io.dockerfaas.job.warm"] = warm
		}
		labels := map[string]string{}
		if err := r.d.deploySpec(ctx, types.FunctionDeployment{Service: fn, Image: img, Annotations: &ann, Labels: &labels}); err != nil {
			return err
		}
		defer func() { _ = r.removeFunction(context.WithoutCancel(ctx), fn) }()
		if err := r.waitAvailable(ctx, fn, 1, 60*time.Second); err != nil {
			return err
		}
	}
	cold := func(ctx context.Context) error { return r.jobCall(ctx, jobColdFn) }
	floor := func(ctx context.Context) error { return r.jobFloor(ctx, img, netName) }
	// Warm all paths up: the first runs pay for caches.
	for range 3 {
		for _, f := range []func(context.Context) error{cold, floor, func(ctx context.Context) error { return r.jobCall(ctx, jobLevels[0].fn) }} {
			if err := f(ctx); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d runs per side and concurrency, in 4 alternating rounds; fn-job with an empty body (it exits at once). "+
		"Floor: `ContainerCreate` + `ContainerStart` + `ContainerWait` + `ContainerRemove` through the Docker API on a network of "+
		"the driver's. dockerfaasd: `POST /function/NAME` (basic auth, keep-alive) to a job-mode function, whose container is "+
		"removed after the answer. Pooled: a function keeping as many containers started ahead of calls as calls run at once "+
		"(the default pool of one at concurrency 1, `io.dockerfaas.job.warm: 4` at 4; at 4 also the default pool of one), its calls made back to back (bound by "+
		"Docker's start rate, like the floor) or each batch once the pool is full of fresh containers (as calls meet an idle "+
		"function; the wait is not timed). `%s` has no pool (`io.dockerfaas.job.warm: 0`: create, attach, start per call).\n\n", runs, jobColdFn)
	b.WriteString("| concurrency | what | p50 | p99 | runs/s |\n|---:|---|---:|---:|---:|\n")
	type row struct {
		c     int
		sides []*jobSide
	}
	var rows []row
	for _, l := range jobLevels {
		c, fn := l.c, l.fn
		call := func(ctx context.Context) error { return r.jobCall(ctx, fn) }
		rw := row{c: c, sides: []*jobSide{
			{name: "Docker floor: create+start+wait+remove", f: floor},
			{name: fmt.Sprintf("dockerfaasd, pool of %d, calls back to back", c), f: call},
			{name: "dockerfaasd, no pool (a container made per call)", f: cold},
		}}
		if c > 1 {
			// What a function gets without an annotation (JOB_WARM's
			// pool of one) when calls come c at a time.
			def := jobLevels[0].fn
			rw.sides = append(rw.sides, &jobSide{name: "dockerfaasd, default pool of 1, calls back to back",
				f: func(ctx context.Context) error { return r.jobCall(ctx, def) }, poolFn: def, poolN: 1})
		}
		for round := range 4 {
			n := runs / 4
			if round == 3 {
				n = runs - 3*(runs/4)
			}
			for _, sd := range rw.sides {
				pfn, pn := fn, c
				if sd.poolFn != "" {
					pfn, pn = sd.poolFn, sd.poolN
				}
				if _, err := r.waitPooled(ctx, pfn, pn, nil); err != nil {
					return err
				}
				lat, el, err := runConcurrent(ctx, c, n, sd.f)
				if err != nil {
					return fmt.Errorf("%s at concurrency %d: %w", sd.name, c, err)
				}
				sd.lat, sd.took = append(sd.lat, lat...), sd.took+el
			}
		}
		paced, err := r.jobPaced(ctx, fn, c, runs)
		if err != nil {
			return err
		}
		rw.sides = append(rw.sides, paced)
		rows = append(rows, rw)
		for _, sd := range rw.sides {
			slices.Sort(sd.lat)
			rate := ""
			if sd.took > 0 {
				rate = fmtNum(ratio(float64(len(sd.lat)), sd.took.Seconds()))
			}
			logf("job c=%d %s: p50 %s p99 %s", c, sd.name, percentile(sd.lat, 50), percentile(sd.lat, 99))
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", c, sd.name, fmtDur(percentile(sd.lat, 50)), fmtDur(percentile(sd.lat, 99)), rate)
		}
	}
	b.WriteString("\n| concurrency | dockerfaasd / floor | p50 | p99 | target (p50) |\n|---:|---|---:|---:|---|\n")
	for _, rw := range rows {
		fl := rw.sides[0].lat
		for _, sd := range rw.sides[1:] {
			p50 := ratio(percentile(sd.lat, 50).Seconds(), percentile(fl, 50).Seconds())
			p99 := ratio(percentile(sd.lat, 99).Seconds(), percentile(fl, 99).Seconds())
			fmt.Fprintf(&b, "| %d | %s | %s | %s | ≤ 1.0%s |\n", rw.c, sd.name, fmtRatio(p50), fmtRatio(p99), verdict(p50 <= 1.0))
		}
	}

	steps, err := r.jobSteps(ctx, img, netName, max(runs/2, 10))
	if err != nil {
		return err
	}
	b.WriteString("\nThe Docker steps of one run made per call (driver, one at a time, medians of " +
		strconv.Itoa(max(runs/2, 10)) + " runs): a container started ahead of its call takes all but start → exit off the call's path.\n\n")
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

// jobSide is one way of running jobs the section measures: its latencies
// and, for calls made back to back, the time they took together (0 when
// the calls were paced).
type jobSide struct {
	name string
	f    func(context.Context) error
	lat  []time.Duration
	took time.Duration
	// poolFn's pool is waited for to hold poolN fresh containers before
	// each round ("": the row's function and concurrency).
	poolFn string
	poolN  int
}

// jobPaced makes n calls of fn, c at once, each batch once fn's pool
// holds c containers that served no call (the wait is not timed).
func (r *runner) jobPaced(ctx context.Context, fn string, c, n int) (*jobSide, error) {
	out := &jobSide{name: fmt.Sprintf("dockerfaasd, pool of %d, each batch of %d once the pool is full", c, c)}
	var used []string
	for len(out.lat) < n {
		ids, err := r.waitPooled(ctx, fn, c, used)
		if err != nil {
			return nil, err
		}
		lat, _, err := runConcurrent(ctx, c, c, func(ctx context.Context) error { return r.jobCall(ctx, fn) })
		if err != nil {
			return nil, err
		}
		out.lat = append(out.lat, lat...)
		used = append(used, ids...)
	}
	return out, nil
}

// waitPooled waits (up to a minute) until fn has exactly n running job
// containers, none of them one of used (no call is running then: they
// are its pool), and returns their IDs.
func (r *runner) waitPooled(ctx context.Context, fn string, n int, used []string) ([]string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := r.docker.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", "io.dockerfaas.job=openfaas-fn/"+fn), filters.Arg("status", "running"))})
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, c := range list {
			if !slices.Contains(used, c.ID) {
				ids = append(ids, c.ID)
			}
		}
		if len(ids) == n && len(list) == n {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("job function %s: %d running containers, want its %d pooled ones", fn, len(list), n)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
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

// jobCall makes one call of job function fn and checks its answer.
func (r *runner) jobCall(ctx context.Context, fn string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.d.base+"/function/"+fn, nil)
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
		return fmt.Errorf("POST /function/%s: %d, exit code %q", fn, res.StatusCode, res.Header.Get("X-Exit-Code"))
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
