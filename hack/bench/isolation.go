package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
)

// The isolation section's function: test/e2e/testdata/fn-isolated, which
// answers JSON saying which container served the call and how many calls
// that process has answered.
const (
	isoSource   = "test/e2e/testdata/fn-isolated"
	isoRepo     = "dockerfaasd-bench/fn-isolated"
	isoReplica  = "benchisorep" // an ordinary function: warm replicas
	isoPoolSize = 2
)

// Bounded counts of the isolation section.
const (
	isoFloorRuns   = 15  // Docker cold starts, and the start rate
	isoReplicaRuns = 200 // sequential calls of the warm replica
	isoPacedRuns   = 40  // isolated calls per protocol, each on a full pool
	isoBurstRuns   = 60  // isolated calls per protocol, back to back
	isoRounds      = 3   // floor, replica and paced calls alternate in rounds
	isoPoolWait    = time.Minute
	isoGoal        = 50 * time.Millisecond
	isoGoalRatio   = 0.2
)

// isoProtocols are the protocols measured, with their function names.
var isoProtocols = []struct{ proto, fn string }{{"http", "benchisohttp"}, {"socket", "benchisosocket"}}

// isoReply is fn-isolated's answer.
type isoReply struct {
	Hostname string `json:"hostname"`
	Count    int64  `json:"count"`
	Protocol string `json:"protocol"`
}

// isolation measures per-request isolation (io.dockerfaas.isolation:
// per-request) against what it replaces and what bounds it: the Docker
// floor of a fresh container per call (create + start + first answer of
// its health check + one call, straight through the Docker API and to the
// container's address), the same image as an ordinary function with a
// warm replica, isolated calls each made on a full pool (the latency a
// call meets at an idle function), and isolated calls back to back (the
// throughput, bound by how fast Docker starts containers). Every isolated
// answer must come from a process that answered no call before, in a
// container that served none.
func (r *runner) isolation(ctx context.Context) error {
	img, err := r.ensureFnImage(ctx, isoSource, isoRepo, "fn-isolated")
	if err != nil {
		return err
	}
	netName := "benchiso-" + r.id
	netID, err := r.createNetwork(ctx, netName)
	if err != nil {
		return err
	}
	defer func() { _ = removeNetwork(context.WithoutCancel(ctx), r.docker, netID) }()

	labels := map[string]string{}
	if err := r.d.deploySpec(ctx, types.FunctionDeployment{Service: isoReplica, Image: img, Labels: &labels}); err != nil {
		return err
	}
	defer func() { _ = r.removeFunction(context.WithoutCancel(ctx), isoReplica) }()
	for _, p := range isoProtocols {
		ann := map[string]string{
			"io.dockerfaas.isolation": "per-request",
			"io.dockerfaas.protocol":  p.proto,
			"io.dockerfaas.pool.size": fmt.Sprint(isoPoolSize),
		}
		if err := r.d.deploySpec(ctx, types.FunctionDeployment{Service: p.fn, Image: img, Annotations: &ann, Labels: &labels}); err != nil {
			return err
		}
		defer func() { _ = r.removeFunction(context.WithoutCancel(ctx), p.fn) }()
	}
	if err := r.waitAvailable(ctx, isoReplica, 1, 60*time.Second); err != nil {
		return err
	}
	seen := map[string]bool{} // hostnames of the containers that served an isolated call
	isoCall := func(ctx context.Context, fn, proto string) error {
		rep, err := r.isoCall(ctx, fn)
		if err != nil {
			return err
		}
		if rep.Count != 1 || rep.Protocol != proto || seen[rep.Hostname] {
			return fmt.Errorf("%s: answer %+v from a container that served another call (seen before: %t)", fn, rep, seen[rep.Hostname])
		}
		seen[rep.Hostname] = true
		return nil
	}

	// Warm-up, not measured: the first runs of each path pay for caches.
	for range 2 {
		if _, _, err := r.isoFloor(ctx, img, netName); err != nil {
			return fmt.Errorf("warm-up of the floor: %w", err)
		}
		if _, err := r.isoCall(ctx, isoReplica); err != nil {
			return fmt.Errorf("warm-up of %s: %w", isoReplica, err)
		}
		for _, p := range isoProtocols {
			if _, err := r.waitPoolFull(ctx, p.fn); err != nil {
				return err
			}
			if err := isoCall(ctx, p.fn, p.proto); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}

	var floor, ready, replica []time.Duration
	paced := make([][]time.Duration, len(isoProtocols))
	share := func(total, round int) int { return total*(round+1)/isoRounds - total*round/isoRounds }
	for round := range isoRounds {
		for range share(isoFloorRuns, round) {
			toReady, toAnswer, err := r.isoFloor(ctx, img, netName)
			if err != nil {
				return fmt.Errorf("floor: %w", err)
			}
			ready, floor = append(ready, toReady), append(floor, toAnswer)
		}
		for range share(isoReplicaRuns, round) {
			t := time.Now()
			if _, err := r.isoCall(ctx, isoReplica); err != nil {
				return err
			}
			replica = append(replica, time.Since(t))
		}
		for i, p := range isoProtocols {
			for range share(isoPacedRuns, round) {
				if _, err := r.waitPoolFull(ctx, p.fn); err != nil {
					return err
				}
				t := time.Now()
				if err := isoCall(ctx, p.fn, p.proto); err != nil {
					return err
				}
				paced[i] = append(paced[i], time.Since(t))
			}
		}
	}

	// Back to back: each run starts on a full pool, then outruns it.
	type burst struct {
		took  time.Duration
		stats poolStats
	}
	bursts := make([]burst, len(isoProtocols))
	for i, p := range isoProtocols {
		st0, err := r.waitPoolFull(ctx, p.fn)
		if err != nil {
			return err
		}
		t0 := time.Now()
		for range isoBurstRuns {
			if err := isoCall(ctx, p.fn, p.proto); err != nil {
				return fmt.Errorf("back to back: %w", err)
			}
		}
		bursts[i].took = time.Since(t0)
		st, err := r.poolOf(ctx, p.fn)
		if err != nil {
			return err
		}
		st.Served, st.Waited, st.Busy = st.Served-st0.Served, st.Waited-st0.Waited, st.Busy-st0.Busy
		bursts[i].stats = st
	}

	for _, ds := range append([][]time.Duration{floor, ready, replica}, paced...) {
		slices.Sort(ds)
	}
	var sumReady time.Duration
	for _, d := range ready {
		sumReady += d
	}
	startRate := ratio(float64(len(ready)), sumReady.Seconds())
	floor50 := percentile(floor, 50)

	var b strings.Builder
	fmt.Fprintf(&b, "fn-isolated (its answer says which container served the call and how many calls its process has "+
		"answered), GET, c=1, in %d alternating rounds after a warm-up. **Floor**: what a fresh container per call costs "+
		"without a pool: `ContainerCreate` on a network of the driver's + `ContainerStart`, polls of `GET /_/health` at its "+
		"address every 5 ms until a 200, then one call; timed from create to the answer (%d runs; the container is then "+
		"removed, not timed). **Replica**: the same image deployed as an ordinary function, calls through `/function/NAME` "+
		"(basic auth, keep-alive). **Isolated**: `io.dockerfaas.isolation: per-request` with a pool of %d, each call made "+
		"once `/debug/reconcile` shows the pool full again (the wait is not timed), so every call meets the pool as at an "+
		"idle function. Every isolated answer had count 1 and a hostname never seen before (a container that served no "+
		"other call).\n\n", isoRounds, isoFloorRuns, isoPoolSize)
	b.WriteString("| what | calls | p50 | p99 | p50 / floor p50 (goal ≤ 0.2×) | goal p50 ≤ 50 ms |\n|---|---:|---:|---:|---:|---|\n")
	fmt.Fprintf(&b, "| Docker floor: create + start + health 200 + one call | %d | %s | %s | 1.00× | — |\n",
		len(floor), fmtDur(floor50), fmtDur(percentile(floor, 99)))
	fmt.Fprintf(&b, "| dockerfaasd, warm replica | %d | %s | %s | %s | — |\n", len(replica),
		fmtDur(percentile(replica, 50)), fmtDur(percentile(replica, 99)), fmtSmallRatio(ratio(percentile(replica, 50).Seconds(), floor50.Seconds())))
	for i, p := range isoProtocols {
		p50 := percentile(paced[i], 50)
		rt := ratio(p50.Seconds(), floor50.Seconds())
		fmt.Fprintf(&b, "| dockerfaasd, isolated (%s), pool of %d, full before each call | %d | %s | %s | %s%s | %s |\n",
			p.proto, isoPoolSize, len(paced[i]), fmtDur(p50), fmtDur(percentile(paced[i], 99)), fmtSmallRatio(rt), verdict(rt <= isoGoalRatio),
			strings.Trim(verdict(p50 <= isoGoal), " ()"))
		logf("isolation %s paced: p50 %s p99 %s (floor p50 %s)", p.proto, p50, percentile(paced[i], 99), floor50)
	}
	logf("isolation floor p50 %s p99 %s; replica p50 %s p99 %s; start rate %.2f/s",
		floor50, percentile(floor, 99), percentile(replica, 50), percentile(replica, 99), startRate)

	fmt.Fprintf(&b, "\nSustained: %d isolated calls back to back at c=1 per protocol, starting on a full pool and then waiting "+
		"for its refills (a call waits up to `READY_WAIT` for a fresh container; the calls that waited are counted by the "+
		"daemon over the run). Docker start rate: containers Docker "+
		"creates, starts and sees answer `/_/health`, one after the other, per second (the floor's runs: %d ÷ their summed "+
		"create → first 200, median %s). The pool refills up to its size side by side, so it can outrun that "+
		"one-at-a-time rate. Pool figures are the daemon's, from `/debug/reconcile` after the run.\n\n",
		isoBurstRuns, len(ready), fmtDur(percentile(ready, 50)))
	b.WriteString("| protocol | calls | took | calls/s | Docker start rate | calls/s ÷ start rate | pool: create → ready (moving average) | calls that waited |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, p := range isoProtocols {
		bs := bursts[i]
		rate := ratio(float64(isoBurstRuns), bs.took.Seconds())
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s/s | %s | %s | %d of %d |\n", p.proto, isoBurstRuns, fmtDur(bs.took),
			fmtNum(rate), fmtNum(startRate), fmtRatio(ratio(rate, startRate)),
			fmtDur(time.Duration(bs.stats.StartSeconds*float64(time.Second))), bs.stats.Waited, bs.stats.Served)
		logf("isolation %s back to back: %.2f calls/s (start rate %.2f/s)", p.proto, rate, startRate)
	}
	r.rep.add("isolation", b.String())
	return nil
}

// isoCall makes one GET of fn through the daemon and decodes the answer.
func (r *runner) isoCall(ctx context.Context, fn string) (isoReply, error) {
	var rep isoReply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.d.base+"/function/"+fn, nil)
	if err != nil {
		return rep, err
	}
	req.Header.Set("Authorization", r.d.authHeader())
	res, err := r.d.http.Do(req)
	if err != nil {
		return rep, fmt.Errorf("GET /function/%s: %w", fn, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return rep, fmt.Errorf("GET /function/%s: %w", fn, err)
	}
	if res.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("GET /function/%s: %d %s", fn, res.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("GET /function/%s: %w: %q", fn, err, b)
	}
	return rep, nil
}

// isoFloor runs one fresh container of img on network nw straight through
// the Docker API: create, start, polls of its health check until a 200,
// one call. It returns the time from create to the first health 200 and
// to the call's answer, and removes the container.
func (r *runner) isoFloor(ctx context.Context, img, nw string) (toReady, toAnswer time.Duration, err error) {
	t0 := time.Now()
	c, err := r.docker.ContainerCreate(ctx,
		&container.Config{Image: img, Labels: map[string]string{labelBench: r.id}},
		&container.HostConfig{NetworkMode: container.NetworkMode(nw)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw: {}}}, nil, "")
	if err != nil {
		return 0, 0, fmt.Errorf("create: %w", err)
	}
	defer func() { _ = removeContainer(context.WithoutCancel(ctx), r.docker, c.ID) }()
	if err := r.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	ins, err := r.docker.ContainerInspect(ctx, c.ID)
	if err != nil {
		return 0, 0, fmt.Errorf("inspect: %w", err)
	}
	ep := ins.NetworkSettings.Networks[nw]
	if ep == nil || ep.IPAddress == "" {
		return 0, 0, fmt.Errorf("container %.12s has no address on %s", c.ID, nw)
	}
	base := "http://" + ep.IPAddress + ":8080"
	at, err := firstOK(ctx, base+"/_/health", "", nil, 5*time.Millisecond, 30*time.Second)
	if err != nil {
		return 0, 0, err
	}
	toReady = at.Sub(t0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return 0, 0, err
	}
	res, err := pollClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("call: %w", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	toAnswer = time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("call: %w", err)
	}
	var rep isoReply
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &rep) != nil || rep.Count != 1 {
		return 0, 0, fmt.Errorf("call: %d %q, want the first answer of the container", res.StatusCode, b)
	}
	return toReady, toAnswer, nil
}

// fmtSmallRatio is fmtRatio with three decimals below 0.1×: a call
// through a pool is a small fraction of a container start.
func fmtSmallRatio(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.3f×", v)
	}
	return fmtRatio(v)
}

// poolStats is the part of a pool's entry on /debug/reconcile read here.
type poolStats struct {
	Key              string  `json:"key"`
	Size             int     `json:"size"`
	Ready            int     `json:"ready"`
	Served           uint64  `json:"served"`
	Waited           uint64  `json:"waited"`
	Busy             uint64  `json:"busy"`
	RefillsPerSecond float64 `json:"refillsPerSecond"`
	StartSeconds     float64 `json:"startSeconds"`
	LastError        string  `json:"lastError"`
}

// errNoPool is poolOf's error when the daemon shows no pool of fn.
var errNoPool = errors.New("no pool on /debug/reconcile")

// poolOf reads fn's pool from /debug/reconcile.
func (r *runner) poolOf(ctx context.Context, fn string) (poolStats, error) {
	b, err := r.d.expect(ctx, http.StatusOK, http.MethodGet, "/debug/reconcile?format=json", nil)
	if err != nil {
		return poolStats{}, err
	}
	var v struct {
		Pools []poolStats `json:"pools"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return poolStats{}, fmt.Errorf("/debug/reconcile: %w", err)
	}
	for _, p := range v.Pools {
		if p.Key == fn || strings.HasSuffix(p.Key, "/"+fn) || strings.HasPrefix(p.Key, fn+".") {
			return p, nil
		}
	}
	return poolStats{}, fmt.Errorf("%s: %w", fn, errNoPool)
}

// waitPoolFull polls fn's pool every 5 ms (up to isoPoolWait) until it
// holds as many ready containers as its size.
func (r *runner) waitPoolFull(ctx context.Context, fn string) (poolStats, error) {
	deadline := time.Now().Add(isoPoolWait)
	for {
		st, err := r.poolOf(ctx, fn)
		if err != nil && !errors.Is(err, errNoPool) {
			return st, err
		}
		if err == nil && st.Size > 0 && st.Ready == st.Size {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("pool of %s: %d of %d ready after %s (last error %q, err %v)", fn, st.Ready, st.Size, isoPoolWait, st.LastError, err)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
