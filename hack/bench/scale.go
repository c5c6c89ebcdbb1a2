package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat; 100
// on every Linux architecture Go supports.
const clockTicks = 100

// scaleFacts are the daemon's footprint at one moment.
type scaleFacts struct {
	rssKB    int64
	cpu      float64 // share of one core while idle
	healthz  time.Duration
	listP50  time.Duration
	listSize int
}

// scale deploys N functions of one replica each to a fresh daemon and
// measures time to all ready, memory, idle CPU, list latency and a graceful
// restart, against the same daemon empty and a single cold start.
func (r *runner) scale(ctx context.Context) error {
	n := r.s.Scale
	// A fresh daemon, so "empty" means never used.
	if err := r.d.stop(); err != nil {
		return err
	}
	if err := r.startDaemon(ctx, "state-scale"); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // past start-up work
	empty, err := r.facts(ctx)
	if err != nil {
		return err
	}
	logf("empty daemon: RSS %d kB, idle CPU %.2f%%, list p50 %s, healthz p50 %s", empty.rssKB, 100*empty.cpu, empty.listP50, empty.healthz)

	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%04d", i)
	}
	t0 := time.Now()
	if err := r.deployAll(ctx, names); err != nil {
		return err
	}
	deployed := time.Since(t0)
	ready, firstReady, err := r.waitAllReady(ctx, n, t0)
	if err != nil {
		return err
	}
	logf("%d functions: deployed in %s, first ready after %s, all ready after %s", n, deployed, firstReady, ready)
	time.Sleep(5 * time.Second) // let the last reconciles and probes finish
	full, err := r.facts(ctx)
	if err != nil {
		return err
	}
	logf("%d functions: RSS %d kB, idle CPU %.2f%%, list p50 %s", n, full.rssKB, 100*full.cpu, full.listP50)

	before, err := r.containerStarts(ctx)
	if err != nil {
		return err
	}
	stopStart := time.Now()
	if err := r.d.stop(); err != nil {
		return err
	}
	stopTook := time.Since(stopStart)
	t1 := time.Now()
	if err := r.d.start(ctx); err != nil {
		return err
	}
	healthy := time.Since(t1)
	readyAgain, _, err := r.waitAllReady(ctx, n, t1)
	if err != nil {
		return err
	}
	serving, err := r.invokeAll(ctx, names)
	if err != nil {
		return err
	}
	servingAfter := time.Since(t1)
	after, err := r.containerStarts(ctx)
	if err != nil {
		return err
	}
	restarted := 0
	for id, started := range before {
		if after[id] != started {
			restarted++
		}
	}
	logf("restart: healthy %s, all ready %s, all %d answered after %s; %d of %d containers replaced or restarted",
		healthy, readyAgain, serving, servingAfter, restarted, len(before))

	cold := r.coldDaemon
	var b strings.Builder
	fmt.Fprintf(&b, "%d functions, one replica each, deployed with 8 concurrent `POST /system/functions` to a fresh daemon. "+
		"Idle CPU over %s; list and healthz latency are the median of 20 sequential calls.\n\n", n, r.s.Idle)
	b.WriteString("| what | empty daemon | with N functions | ratio |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| RSS (VmRSS) | %s | %s | %s |\n", fmtKB(empty.rssKB), fmtKB(full.rssKB), fmtRatio(ratio(float64(full.rssKB), float64(empty.rssKB))))
	fmt.Fprintf(&b, "| idle CPU (share of one core) | %.2f%% | %.2f%% | — |\n", 100*empty.cpu, 100*full.cpu)
	fmt.Fprintf(&b, "| `GET /healthz` p50 | %s | %s | |\n", fmtDur(empty.healthz), fmtDur(full.healthz))
	fmt.Fprintf(&b, "| `GET /system/functions` p50 | %s | %s | %s of healthz |\n", fmtDur(empty.listP50), fmtDur(full.listP50),
		fmtRatio(ratio(full.listP50.Seconds(), full.healthz.Seconds())))
	fmt.Fprintf(&b, "\nRSS per function: %s (%s of the empty daemon's RSS).\n\n",
		fmtKB((full.rssKB-empty.rssKB)/int64(n)), fmtPct(float64(full.rssKB-empty.rssKB)/float64(n)/float64(empty.rssKB)))
	b.WriteString("| what | time | baseline | ratio |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| deploy of N (all 202s) | %s | | |\n", fmtDur(deployed))
	fmt.Fprintf(&b, "| deploy → first function available | %s | single cold start %s | %s |\n", fmtDur(firstReady),
		fmtDur(cold), fmtRatio(ratio(firstReady.Seconds(), cold.Seconds())))
	fmt.Fprintf(&b, "| deploy → all N available | %s | N × single cold start %s | %s |\n", fmtDur(ready),
		fmtDur(time.Duration(n)*cold), fmtRatio(ratio(ready.Seconds(), float64(n)*cold.Seconds())))
	fmt.Fprintf(&b, "| graceful stop (SIGTERM → exit) | %s | | |\n", fmtDur(stopTook))
	fmt.Fprintf(&b, "| restart → /healthz | %s | | |\n", fmtDur(healthy))
	fmt.Fprintf(&b, "| restart → all N available | %s | single cold start %s | %s |\n", fmtDur(readyAgain), fmtDur(cold),
		fmtRatio(ratio(readyAgain.Seconds(), cold.Seconds())))
	fmt.Fprintf(&b, "| restart → all N answered 200 | %s | | |\n", fmtDur(servingAfter))
	fmt.Fprintf(&b, "\nContainers replaced or restarted by the daemon restart: %d of %d (compared by ID and StartedAt)%s.\n",
		restarted, len(before), verdict(restarted == 0))
	r.rep.add("scale", b.String())
	return nil
}

// deployAll POSTs every function, 8 at a time.
func (r *runner) deployAll(ctx context.Context, names []string) error {
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.d.deploy(ctx, name, r.image); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitAllReady polls the list every 100 ms until n functions have a ready
// replica and returns the time since t0, and when the first one was ready.
// It gives up when for a while (90 s, more for many functions) neither
// another function became ready nor another container started, and says
// why from /debug/reconcile.
func (r *runner) waitAllReady(ctx context.Context, n int, t0 time.Time) (all, first time.Duration, err error) {
	best, running, progress := 0, 0, time.Now()
	// A resync puts every function in the queue, ahead of a replica waiting
	// for its next probe; with many functions a pass takes minutes.
	patience := max(90*time.Second, time.Duration(n)*300*time.Millisecond)
	lastCount := time.Time{}
	for i := 0; i < 100000; i++ {
		list, err := r.d.list(ctx)
		if err == nil {
			ready := 0
			for _, f := range list {
				if f.AvailableReplicas >= 1 {
					ready++
				}
			}
			if ready > 0 && first == 0 {
				first = time.Since(t0)
			}
			if ready >= n {
				return time.Since(t0), first, nil
			}
			if ready > best {
				best, progress = ready, time.Now()
			}
		}
		// Replicas are created before any is probed again, so for a
		// while progress shows only as containers.
		if time.Since(lastCount) > time.Second {
			lastCount = time.Now()
			if cs, err := r.instanceContainers(ctx); err == nil && len(cs) > running {
				running, progress = len(cs), time.Now()
			}
		}
		if time.Since(progress) > patience {
			return 0, 0, fmt.Errorf("stalled at %d of %d functions ready and %d containers for %s; controller: %s",
				best, n, running, patience, r.d.debugReasons(ctx))
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, 0, errors.New("too many polls")
}

// invokeAll calls every function once, 8 at a time; all must answer 200.
func (r *runner) invokeAll(ctx context.Context, names []string) (int, error) {
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var errs []error
	ok := 0
	var wg sync.WaitGroup
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			code, _, err := r.d.do(ctx, http.MethodGet, "/function/"+name, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case code != http.StatusOK:
				errs = append(errs, fmt.Errorf("%s: %d", name, code))
			default:
				ok++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return ok, fmt.Errorf("%d of %d functions failed after the restart, e.g. %w", len(errs), len(names), errs[0])
	}
	return ok, nil
}

// containerStarts maps every container of the daemon to its StartedAt.
func (r *runner) containerStarts(ctx context.Context) (map[string]string, error) {
	cs, err := r.instanceContainers(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		ins, err := r.docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		out[c.ID] = ins.State.StartedAt
	}
	return out, nil
}

// facts measures the daemon's RSS, idle CPU and request latencies.
func (r *runner) facts(ctx context.Context) (scaleFacts, error) {
	var f scaleFacts
	var err error
	pid := r.d.pid()
	if f.rssKB, err = rssKB(pid); err != nil {
		return f, err
	}
	c0, err := cpuTicks(pid)
	if err != nil {
		return f, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(r.s.Idle):
	}
	c1, err := cpuTicks(pid)
	if err != nil {
		return f, err
	}
	f.cpu = float64(c1-c0) / clockTicks / time.Since(t0).Seconds()
	if f.healthz, err = r.p50(ctx, "/healthz"); err != nil {
		return f, err
	}
	if f.listP50, err = r.p50(ctx, "/system/functions"); err != nil {
		return f, err
	}
	return f, nil
}

// p50 is the median latency of 20 sequential GETs of path.
func (r *runner) p50(ctx context.Context, path string) (time.Duration, error) {
	var ds []time.Duration
	for range 20 {
		t := time.Now()
		if _, err := r.d.expect(ctx, http.StatusOK, http.MethodGet, path, nil); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t))
	}
	return median(ds), nil
}

// rssKB reads VmRSS from /proc/<pid>/status.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/pid/status")
}

// writeCalls reads syscw, the write syscalls so far, from /proc/<pid>/io.
func writeCalls(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no syscw in /proc/pid/io")
}

// cpuTicks reads utime+stime from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name may contain spaces; fields start after its ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/pid/stat")
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + st, nil
}
