package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// Settings of the scale to zero and autoscaling section.
const (
	// zeroPark is the daemon's PARK_RETENTION during the section: long
	// enough to read a paused replica's memory and call it, short enough
	// that the removed tier comes within seconds.
	zeroPark = 5 * time.Second
	// reactWorkers callers invoke a function back to back (5 ms apart) to
	// drive the autoscaler; reactTarget is its rps target per replica, far
	// below what they send, so the decision is never a close call.
	reactWorkers = 4
	reactTarget  = 5
	reactLimit   = 90 * time.Second
)

// memStat is a container's memory as Docker's stats report it, in bytes.
type memStat struct {
	used int64 // usage − inactive_file: what `docker stats` shows
	anon int64 // anonymous memory (cgroup v2 anon, v1 rss)
}

// zero measures scale to zero and autoscaling (issue 10) against the
// cold-start floor measured in the same section: the first response after
// a scale to zero from the paused tier and from the removed tier, the
// memory a paused replica keeps, and the autoscaler's reaction time. The
// floor, the paused tier and the removed tier alternate, so background load
// hits all three alike.
func (r *runner) zero(ctx context.Context) error {
	// The daemon again on the same state (running functions are adopted),
	// with a short PARK_RETENTION; its defaults again afterwards.
	if err := r.restartWith(ctx, "PARK_RETENTION="+zeroPark.String()); err != nil {
		return err
	}
	defer func() {
		if ctx.Err() == nil {
			if err := r.restartWith(ctx); err != nil {
				logf("zero: restarting the daemon with its defaults: %v", err)
			}
		}
	}()
	const fn = "zero"
	if err := r.d.deploy(ctx, fn, r.image); err != nil {
		return err
	}
	if _, err := firstOK(ctx, r.d.base+"/function/"+fn, r.d.authHeader(), nil, 10*time.Millisecond, 60*time.Second); err != nil {
		return err
	}

	var floors, paused, removed []time.Duration
	var memRun, memPaused []memStat
	netKept := 0
	for i := range r.s.ColdRuns {
		f, _, err := r.coldFloorOnce(ctx, 100+i)
		if err != nil {
			return err
		}
		p, mr, mp, err := r.pausedOnce(ctx, fn)
		if err != nil {
			return fmt.Errorf("paused tier, run %d: %w", i+1, err)
		}
		rm, kept, err := r.removedOnce(ctx, fn)
		if err != nil {
			return fmt.Errorf("removed tier, run %d: %w", i+1, err)
		}
		if kept {
			netKept++
		}
		floors, paused, removed = append(floors, f), append(paused, p), append(removed, rm)
		memRun, memPaused = append(memRun, mr), append(memPaused, mp)
		logf("zero %d: floor %s, paused tier %s, removed tier %s; memory running %s / paused %s",
			i+1, f, p, rm, fmtKB(mr.used/1024), fmtKB(mp.used/1024))
	}
	if err := r.removeFunction(ctx, fn); err != nil {
		return err
	}

	var decided, serving, after []time.Duration
	var rates []float64
	for i := range r.s.HealRuns {
		dc, sv, rate, err := r.reactOnce(ctx, i)
		if err != nil {
			return fmt.Errorf("autoscaler reaction, run %d: %w", i+1, err)
		}
		decided, serving, after, rates = append(decided, dc), append(serving, sv), append(after, sv-dc), append(rates, rate)
		logf("reaction %d: replicas 2 after %s, new replica serving after %s (%.0f calls/s)", i+1, dc, sv, rate)
	}

	floor, p, rm := median(floors), median(paused), median(removed)
	var b strings.Builder
	fmt.Fprintf(&b, "Median of %d runs each, alternating Docker floor, paused tier and removed tier; the function is "+
		"scaled to zero with `POST /system/scale-function` 0, and the daemon runs with `PARK_RETENTION=%s` in this "+
		"section (see Method).\n\n", r.s.ColdRuns, zeroPark)
	b.WriteString("| what | median | runs |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| Docker floor: container create+start → first 200 | %s | %s |\n", fmtDur(floor), fmtDurs(floors))
	fmt.Fprintf(&b, "| paused tier: first call → 200 from the resumed replica | %s | %s |\n", fmtDur(p), fmtDurs(paused))
	fmt.Fprintf(&b, "| removed tier: first call → 200 from a new replica | %s | %s |\n", fmtDur(rm), fmtDurs(removed))
	pr, rr := ratio(p.Seconds(), floor.Seconds()), ratio(rm.Seconds(), floor.Seconds())
	b.WriteString("\n| ratio | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| paused tier / cold-start floor | %s | ≤ 0.50%s |\n", fmtRatio(pr), verdict(pr <= 0.5))
	fmt.Fprintf(&b, "| removed tier / cold-start floor | %s | ≤ 1.10%s |\n", fmtRatio(rr), verdict(rr <= 1.1))
	fmt.Fprintf(&b, "\nThe function's network was still there at the removed tier in %d of %d runs (the floor above "+
		"creates none; section 2 shows the floor with a network).", netKept, len(removed))
	if r.coldFloor > 0 {
		fmt.Fprintf(&b, " Section 2's floor in this run, for comparison: %s.", fmtDur(r.coldFloor))
	}
	b.WriteString("\n")
	b.WriteString("\nFor scale: faasd (containerd) is quoted at about 190 ms to unpause a task and 390 ms to start a new one.\n\n")

	mr, mp := medianMem(memRun), medianMem(memPaused)
	fmt.Fprintf(&b, "Memory of one replica (the fn-hostname function), median of %d readings of Docker's stats "+
		"(one-shot; in use = usage − inactive_file, as `docker stats` shows it):\n\n", len(memRun))
	b.WriteString("| state | in use | anonymous |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| running | %s | %s |\n", fmtKB(mr.used/1024), fmtKB(mr.anon/1024))
	fmt.Fprintf(&b, "| paused (kept for `PARK_RETENTION`) | %s | %s |\n", fmtKB(mp.used/1024), fmtKB(mp.anon/1024))
	b.WriteString("| removed | 0 | 0 |\n")
	fmt.Fprintf(&b, "| paused / running | %s | %s |\n\n",
		fmtRatio(ratio(float64(mp.used), float64(mr.used))), fmtRatio(ratio(float64(mp.anon), float64(mr.anon))))

	dc, sv, af := median(decided), median(serving), median(after)
	fmt.Fprintf(&b, "Autoscaler reaction, median of %d runs: a new function (`type` rps, `target` %d, min 1, max 2, the "+
		"daemon's default `AUTOSCALE_INTERVAL`), then %d callers back to back (%.0f calls/s).\n\n",
		r.s.HealRuns, reactTarget, reactWorkers, medianOf(rates))
	b.WriteString("| what | median | runs |\n|---|---:|---|\n")
	fmt.Fprintf(&b, "| load start → `replicas` 2 (the decision) | %s | %s |\n", fmtDur(dc), fmtDurs(decided))
	fmt.Fprintf(&b, "| load start → first 200 from the new replica | %s | %s |\n", fmtDur(sv), fmtDurs(serving))
	fmt.Fprintf(&b, "| decision → new replica serving | %s | %s |\n", fmtDur(af), fmtDurs(after))
	b.WriteString("\n| ratio | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| decision → serving / cold-start floor | %s |\n", fmtRatio(ratio(af.Seconds(), floor.Seconds())))
	fmt.Fprintf(&b, "| load start → serving / cold-start floor | %s |\n", fmtRatio(ratio(sv.Seconds(), floor.Seconds())))
	r.rep.add("zero", b.String())
	return nil
}

// restartWith stops the run's daemon and starts it again on the same state
// dir, port and instance with extra settings (none: its defaults).
func (r *runner) restartWith(ctx context.Context, env ...string) error {
	if err := r.d.stop(); err != nil {
		return err
	}
	r.d.env = env
	if err := r.d.start(ctx); err != nil {
		return err
	}
	logf("daemon restarted on the same state with %v", env)
	return nil
}

// settledReplica waits until the function has one running, available
// replica and returns its container ID.
func (r *runner) settledReplica(ctx context.Context, fn string) (string, error) {
	if err := r.waitReplicas(ctx, fn, 1, 60*time.Second); err != nil {
		return "", err
	}
	cs, err := r.functionContainers(ctx, fn)
	if err != nil {
		return "", err
	}
	if len(cs) != 1 {
		return "", fmt.Errorf("%s: %d containers, want 1", fn, len(cs))
	}
	return cs[0].ID, nil
}

// pausedOnce scales the function to zero, waits until its replica is
// paused, and times one call; the answer must come from that replica
// (fn-hostname answers with its hostname, the short container ID). It also
// returns the replica's memory before and after the pause.
func (r *runner) pausedOnce(ctx context.Context, fn string) (time.Duration, memStat, memStat, error) {
	var running, paused memStat
	id, err := r.settledReplica(ctx, fn)
	if err != nil {
		return 0, running, paused, err
	}
	if running, err = r.containerMemory(ctx, id); err != nil {
		return 0, running, paused, err
	}
	if err := r.d.scaleTo(ctx, fn, 0); err != nil {
		return 0, running, paused, err
	}
	if err := r.waitPaused(ctx, id, 30*time.Second); err != nil {
		return 0, running, paused, err
	}
	if paused, err = r.containerMemory(ctx, id); err != nil {
		return 0, running, paused, err
	}
	t0 := time.Now()
	body, err := r.d.callOnce(ctx, fn)
	took := time.Since(t0)
	if err != nil {
		return 0, running, paused, err
	}
	if body != id[:12] {
		return 0, running, paused, fmt.Errorf("served by %q, not the paused replica %s: the call did not find the paused tier", body, id[:12])
	}
	return took, running, paused, nil
}

// removedOnce scales the function to zero, waits until its replica was
// paused and then removed, and times one call; the answer must come from
// another replica. It also reports whether the function's network was
// still there when the call was sent (what the wake has to create).
func (r *runner) removedOnce(ctx context.Context, fn string) (time.Duration, bool, error) {
	id, err := r.settledReplica(ctx, fn)
	if err != nil {
		return 0, false, err
	}
	if err := r.d.scaleTo(ctx, fn, 0); err != nil {
		return 0, false, err
	}
	if err := r.waitPaused(ctx, id, 30*time.Second); err != nil {
		return 0, false, err
	}
	if err := r.waitNoContainer(ctx, fn, zeroPark+60*time.Second); err != nil {
		return 0, false, err
	}
	nws, err := r.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", docker.LabelInstance+"="+r.id), filters.Arg("label", docker.LabelFunction+"="+fn))})
	if err != nil {
		return 0, false, err
	}
	t0 := time.Now()
	body, err := r.d.callOnce(ctx, fn)
	took := time.Since(t0)
	if err != nil {
		return 0, false, err
	}
	if body == id[:12] {
		return 0, false, fmt.Errorf("served by the removed replica %s", body)
	}
	return took, len(nws) > 0, nil
}

// waitPaused polls the container every 10 ms until Docker reports it paused.
func (r *runner) waitPaused(ctx context.Context, id string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ins, err := r.docker.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("waiting for %s to be paused: %w", id[:12], err)
		}
		if ins.State != nil && ins.State.Paused {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("container %s not paused %s after the scale to zero", id[:12], limit)
}

// waitNoContainer polls every 20 ms until the function has no container.
func (r *runner) waitNoContainer(ctx context.Context, fn string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		cs, err := r.functionContainers(ctx, fn)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: containers still there %s after the scale to zero (PARK_RETENTION %s)", fn, limit, zeroPark)
}

// containerMemory reads a container's memory from Docker's one-shot stats,
// or from its cgroup (v2) when Docker reports none.
func (r *runner) containerMemory(ctx context.Context, id string) (memStat, error) {
	rd, err := r.docker.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return memStat{}, fmt.Errorf("stats of %s: %w", id[:12], err)
	}
	defer rd.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(rd.Body).Decode(&st); err != nil {
		return memStat{}, fmt.Errorf("stats of %s: %w", id[:12], err)
	}
	m := st.MemoryStats
	if m.Usage == 0 {
		return r.cgroupMemory(ctx, id)
	}
	inactive, ok := m.Stats["inactive_file"] // cgroup v2
	if !ok {
		inactive = m.Stats["total_inactive_file"] // cgroup v1
	}
	anon, ok := m.Stats["anon"]
	if !ok {
		anon = m.Stats["rss"]
	}
	return memStat{used: int64(m.Usage - min(inactive, m.Usage)), anon: int64(anon)}, nil
}

// cgroupMemory reads memory.current and memory.stat's anon and
// inactive_file from the container's cgroup v2 directory, found through
// /proc/PID/cgroup of its main process.
func (r *runner) cgroupMemory(ctx context.Context, id string) (memStat, error) {
	ins, err := r.docker.ContainerInspect(ctx, id)
	if err != nil {
		return memStat{}, err
	}
	if ins.State == nil || ins.State.Pid == 0 {
		return memStat{}, fmt.Errorf("container %s has no process", id[:12])
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", ins.State.Pid))
	if err != nil {
		return memStat{}, err
	}
	path, ok := strings.CutPrefix(strings.TrimSpace(string(cg)), "0::")
	if !ok {
		return memStat{}, fmt.Errorf("container %s: Docker reported no memory and its cgroup is not v2", id[:12])
	}
	dir := filepath.Join("/sys/fs/cgroup", path)
	cur, err := os.ReadFile(filepath.Join(dir, "memory.current"))
	if err != nil {
		return memStat{}, err
	}
	used, err := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return memStat{}, err
	}
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return memStat{}, err
	}
	var m memStat
	for _, line := range strings.Split(string(stat), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "anon":
			m.anon = n
		case "inactive_file":
			used -= min(n, used)
		}
	}
	m.used = used
	return m, nil
}

// reactOnce deploys a function that scales by requests per second, starts
// the load, and returns the time from the load's start until the function
// read replicas 2 (the autoscaler's decision, polled every 20 ms) and until
// a 200 came from a replica other than the first, with the calls per
// second sent. The function is removed afterwards.
func (r *runner) reactOnce(ctx context.Context, i int) (decided, served time.Duration, rate float64, err error) {
	name := fmt.Sprintf("react%d", i)
	labels := map[string]string{
		"com.openfaas.scale.min":    "1",
		"com.openfaas.scale.max":    "2",
		"com.openfaas.scale.type":   "rps",
		"com.openfaas.scale.target": strconv.Itoa(reactTarget),
	}
	if _, err := r.d.expect(ctx, http.StatusAccepted, http.MethodPost, "/system/functions",
		types.FunctionDeployment{Service: name, Image: r.image, Labels: &labels}); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		if rerr := r.removeFunction(context.WithoutCancel(ctx), name); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	first, err := r.settledReplica(ctx, name)
	if err != nil {
		return 0, 0, 0, err
	}
	lctx, cancel := context.WithTimeout(ctx, reactLimit)
	defer cancel()
	var once sync.Once
	servedAt := make(chan time.Time, 1)
	var calls atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range reactWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				code, b, err := r.d.do(lctx, http.MethodGet, "/function/"+name, nil)
				calls.Add(1)
				if err == nil && code == http.StatusOK && string(b) != first[:12] {
					at := time.Now()
					once.Do(func() { servedAt <- at })
				}
				select {
				case <-lctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	var decidedAt time.Time
	for decidedAt.IsZero() {
		if st, err := r.d.function(lctx, name); err == nil && st.Replicas >= 2 {
			decidedAt = time.Now()
			continue
		}
		select {
		case <-lctx.Done():
			return 0, 0, 0, fmt.Errorf("%s: replicas still 1 after %s of load (%d calls)", name, reactLimit, calls.Load())
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case at := <-servedAt:
		rate = float64(calls.Load()) / time.Since(t0).Seconds()
		return decidedAt.Sub(t0), at.Sub(t0), rate, nil
	case <-lctx.Done():
		return 0, 0, 0, fmt.Errorf("%s: replicas 2 after %s but no answer from a second replica within %s", name, decidedAt.Sub(t0), reactLimit)
	}
}

// medianMem is the median of each field of the readings.
func medianMem(ms []memStat) memStat {
	used := make([]int64, len(ms))
	anon := make([]int64, len(ms))
	for i, m := range ms {
		used[i], anon[i] = m.used, m.anon
	}
	return memStat{used: medianOf(used), anon: medianOf(anon)}
}

// medianOf is the median of vs (the mean of the middle two for an even
// count); zero for none.
func medianOf[T int64 | float64](vs []T) T {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
