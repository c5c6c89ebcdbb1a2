package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// warmCell is one measured wrk run of one path at one concurrency.
type warmCell struct {
	path  string
	conns int
	res   wrkResult
	// cpu is the CPU time per request of the process that served the path
	// (the function, baseproxy, the daemon): unlike requests/s it holds up
	// when other work shares the machine.
	cpu time.Duration
	// writes is write(2) calls per request of that process: two (the
	// answer, plus the request upstream for a proxy) is the floor.
	writes float64
}

// warm measures warm invocations: (A) the function container directly,
// (B) through baseproxy, (C) through dockerfaasd with auth, each at
// concurrency 1 and 32, after an unmeasured warm-up.
func (r *runner) warm(ctx context.Context) error {
	if err := r.ensureFloorContainer(ctx); err != nil {
		return err
	}
	direct := "http://" + r.floorIP + ":8080/"
	bp, err := r.startBaseproxy(ctx, "http://"+r.floorIP+":8080")
	if err != nil {
		return err
	}
	ins, err := r.docker.ContainerInspect(ctx, r.floorID)
	if err != nil {
		return err
	}
	fnPid, bpPid := ins.State.Pid, r.procs[len(r.procs)-1].Process.Pid
	if err := r.d.deploy(ctx, "warm", r.image); err != nil {
		return err
	}
	viaDaemon := r.d.base + "/function/warm"
	auth := r.d.authHeader()
	if _, err := firstOK(ctx, viaDaemon, auth, nil, 10*time.Millisecond, 60*time.Second); err != nil {
		return err
	}
	paths := []struct {
		name, url, auth string
		pid             int
	}{
		{"A direct", direct, "", fnPid},
		{"B baseproxy", "http://" + bp + "/", "", bpPid},
		{"C dockerfaasd", viaDaemon, auth, r.d.pid()},
	}
	var cells []warmCell
	for _, conns := range []int{1, 32} {
		// The three paths run back to back at each concurrency, so that a
		// change in background load hits all of them alike.
		for _, p := range paths {
			if _, err := r.runWrk(ctx, p.url, p.auth, conns, r.s.Warmup); err != nil {
				return err
			}
			t0, err := cpuTicks(p.pid)
			if err != nil {
				return err
			}
			w0, err := writeCalls(p.pid)
			if err != nil {
				return err
			}
			res, err := r.runWrk(ctx, p.url, p.auth, conns, r.s.Duration)
			if err != nil {
				return err
			}
			t1, err := cpuTicks(p.pid)
			if err != nil {
				return err
			}
			w1, err := writeCalls(p.pid)
			if err != nil {
				return err
			}
			cpu, writes := time.Duration(0), 0.0
			if res.Requests > 0 {
				cpu = time.Duration(t1-t0) * (time.Second / clockTicks) / time.Duration(res.Requests)
				writes = float64(w1-w0) / float64(res.Requests)
			}
			logf("%-14s c=%-2d %8.0f req/s  p50 %-9s p99 %-9s cpu/req %-8s writes/req %.2f errors %d", p.name, conns, res.rps(),
				res.p50(), res.p99(), cpu, writes, res.errors())
			cells = append(cells, warmCell{path: p.name, conns: conns, res: res, cpu: cpu, writes: writes})
		}
	}
	r.rep.add("warm", renderWarm(cells, r.s.Duration))
	return nil
}

// ensureFloorContainer starts the driver's own function container, on a
// network the driver creates, for the direct path.
func (r *runner) ensureFloorContainer(ctx context.Context) error {
	if r.floorIP != "" {
		return nil
	}
	r.floorNet = "benchfloor-" + r.id
	id, err := r.createNetwork(ctx, r.floorNet)
	if err != nil {
		return err
	}
	r.floorNetID = id
	cid, ip, err := r.runFloor(ctx, r.floorNet+"-direct", r.floorNet)
	if err != nil {
		return err
	}
	r.floorID = cid
	if _, err := firstOK(ctx, "http://"+ip+":8080/", "", nil, 5*time.Millisecond, 30*time.Second); err != nil {
		return err
	}
	r.floorIP = ip
	return nil
}

func renderWarm(cells []warmCell, d time.Duration) string {
	get := func(path string, conns int) wrkResult {
		for _, c := range cells {
			if strings.HasPrefix(c.path, path) && c.conns == conns {
				return c.res
			}
		}
		return wrkResult{}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "wrk, %s per cell after a warm-up, GET of fn-hostname (a 12-byte answer).\n\n", d)
	b.WriteString("CPU/request is the CPU time of the process serving the path (the function for A, baseproxy for B, " +
		"the daemon for C) divided by the requests it served, and writes/request its write(2) calls per request: " +
		"both hold up when other work shares the machine, where requests/s and latency do not.\n\n")
	b.WriteString("| path | connections | requests/s | p50 | p99 | CPU/request | writes/request | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cells {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s | %.2f | %d |\n", c.path, c.conns, c.res.rps(),
			fmtDur(c.res.p50()), fmtDur(c.res.p99()), fmtDur(c.cpu), c.writes, c.res.errors())
	}
	b.WriteString("\n| ratio | c=1 | c=32 | target |\n|---|---:|---:|---|\n")
	for _, row := range []struct {
		name, num, den, target string
	}{
		{"C/A requests/s (dockerfaasd vs direct)", "C", "A", "—"},
		{"C/B requests/s (dockerfaasd vs one ideal hop)", "C", "B", "≥ 0.90 at c=32" + verdict(ratio(get("C", 32).rps(), get("B", 32).rps()) >= 0.9)},
		{"B/A requests/s (one ideal hop vs direct)", "B", "A", "—"},
	} {
		r1 := ratio(get(row.num, 1).rps(), get(row.den, 1).rps())
		r32 := ratio(get(row.num, 32).rps(), get(row.den, 32).rps())
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.name, fmtRatio(r1), fmtRatio(r32), row.target)
	}
	cpuOf := func(path string, conns int) time.Duration {
		for _, c := range cells {
			if strings.HasPrefix(c.path, path) && c.conns == conns {
				return c.cpu
			}
		}
		return 0
	}
	fmt.Fprintf(&b, "| C/B CPU per request (dockerfaasd vs one ideal hop) | %s | %s | — |\n",
		fmtRatio(ratio(cpuOf("C", 1).Seconds(), cpuOf("B", 1).Seconds())), fmtRatio(ratio(cpuOf("C", 32).Seconds(), cpuOf("B", 32).Seconds())))
	a1 := get("C", 1).p99() - get("B", 1).p99()
	a32 := get("C", 32).p99() - get("B", 32).p99()
	fmt.Fprintf(&b, "| p99 added by C over B | %s | %s | ≤ 1 ms at c=32%s |\n", fmtDur(a1), fmtDur(a32), verdict(a32 <= time.Millisecond))
	return b.String()
}
