package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// warmCell is one measured wrk run of one path at one concurrency.
type warmCell struct {
	path  string
	conns int
	round int
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
// concurrency 1 and 32, after an unmeasured warm-up, in BENCH_WARM_ROUNDS
// rounds. On a small machine that wrk shares with the paths, one round
// swung C/B from 0.85× to 1.15× between two runs of the same build; the
// ratios are therefore taken per round, from cells run back to back, and
// their median is reported with their range.
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
	paths := []warmPath{
		{"A direct", direct, "", fnPid},
		{"B baseproxy", "http://" + bp + "/", "", bpPid},
		{"C dockerfaasd", viaDaemon, auth, r.d.pid()},
	}
	cells, err := r.measureRounds(ctx, paths)
	if err != nil {
		return err
	}
	// Kept for the swarm section, which sets its C/B next to this one.
	r.hostWarm = cells
	r.rep.add("warm", renderWarm(cells, r.s.Duration, r.s.WarmRounds))
	return nil
}

// warmPath is one way to invoke the function: name starts with the path's
// letter, pid is the process that serves it (0: unknown, no CPU figures).
type warmPath struct {
	name, url, auth string
	pid             int
}

// measureRounds runs wrk against every path at concurrency 1 and 32, in
// BENCH_WARM_ROUNDS rounds, with an unmeasured warm-up before each cell.
func (r *runner) measureRounds(ctx context.Context, paths []warmPath) ([]warmCell, error) {
	var cells []warmCell
	for round := 0; round < r.s.WarmRounds; round++ {
		for _, conns := range []int{1, 32} {
			// The paths run back to back at each concurrency, so that a
			// change in background load hits all of them alike; each round
			// starts with another path, so none is always first.
			for i := range paths {
				p := paths[(i+round)%len(paths)]
				if _, err := r.runWrk(ctx, p.url, p.auth, conns, r.s.Warmup); err != nil {
					return nil, err
				}
				t0, w0, err := procCounters(p.pid)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.name, err)
				}
				res, err := r.runWrk(ctx, p.url, p.auth, conns, r.s.Duration)
				if err != nil {
					return nil, err
				}
				t1, w1, err := procCounters(p.pid)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.name, err)
				}
				cpu, writes := time.Duration(0), 0.0
				if res.Requests > 0 {
					cpu = time.Duration(t1-t0) * (time.Second / clockTicks) / time.Duration(res.Requests)
					writes = float64(w1-w0) / float64(res.Requests)
				}
				logf("round %d %-14s c=%-2d %8.0f req/s  p50 %-9s p99 %-9s cpu/req %-8s writes/req %.2f errors %d", round+1, p.name, conns, res.rps(),
					res.p50(), res.p99(), cpu, writes, res.errors())
				cells = append(cells, warmCell{path: p.name, conns: conns, round: round, res: res, cpu: cpu, writes: writes})
			}
		}
	}
	return cells, nil
}

// procCounters reads a process's CPU ticks and write(2) calls so far; for
// pid 0 (a process that could not be found) it reads nothing.
func procCounters(pid int) (ticks, writes int64, err error) {
	if pid == 0 {
		return 0, 0, nil
	}
	if ticks, err = cpuTicks(pid); err != nil {
		return 0, 0, err
	}
	writes, err = writeCalls(pid)
	return ticks, writes, err
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

// warmCells picks the cells of one path (by its letter) at one
// concurrency, in round order.
func warmCells(cells []warmCell, path string, conns int) []warmCell {
	var out []warmCell
	for _, c := range cells {
		if strings.HasPrefix(c.path, path) && c.conns == conns {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].round < out[j].round })
	return out
}

// perRound applies f to the cells of paths x and y of each round.
func perRound(cells []warmCell, x, y string, conns int, f func(x, y warmCell) float64) []float64 {
	xs, ys := warmCells(cells, x, conns), warmCells(cells, y, conns)
	var out []float64
	for i := range min(len(xs), len(ys)) {
		out = append(out, f(xs[i], ys[i]))
	}
	return out
}

// medianF is the median of vs (NaN for none).
func medianF(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread prints the median of vs and, with more than one, their range.
func spread(vs []float64, format func(float64) string) string {
	if len(vs) < 2 {
		return format(medianF(vs))
	}
	return fmt.Sprintf("%s (%s – %s)", format(medianF(vs)), format(slices.Min(vs)), format(slices.Max(vs)))
}

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmtSignedDur(time.Duration(v * float64(time.Millisecond)))
}

func fmtSignedDur(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return fmtDur(d)
}

func renderWarm(cells []warmCell, d time.Duration, rounds int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk, %s per cell after a warm-up, GET of fn-hostname (a 12-byte answer); %d rounds, each running "+
		"A, B and C back to back at each concurrency.\n\n", d, rounds)
	b.WriteString("CPU/request is the CPU time of the process serving the path (the function for A, baseproxy for B, " +
		"the daemon for C) divided by the requests it served, and writes/request its write(2) calls per request: " +
		"both hold up better than requests/s and latency when other work shares the machine. The first table gives " +
		"the median of the rounds for each cell; the ratios are taken within each round and given as their median " +
		"(lowest – highest).\n\n")
	writeCellTable(&b, cells, []string{"A direct", "B baseproxy", "C dockerfaasd"})
	cb32 := perRound(cells, "C", "B", 32, rpsRatio)
	p32 := perRound(cells, "C", "B", 32, addedP99)
	b.WriteString("\n| ratio | c=1 | c=32 | target |\n|---|---:|---:|---|\n")
	for _, row := range []struct {
		name, x, y string
		f          func(x, y warmCell) float64
		format     func(float64) string
		target     string
	}{
		{"C/A requests/s (dockerfaasd vs direct)", "C", "A", rpsRatio, fmtRatio, "—"},
		{"C/B requests/s (dockerfaasd vs one ideal hop)", "C", "B", rpsRatio, fmtRatio, "≥ 0.90 at c=32" + verdict(medianF(cb32) >= 0.9)},
		{"B/A requests/s (one ideal hop vs direct)", "B", "A", rpsRatio, fmtRatio, "—"},
		{"C/B CPU per request (dockerfaasd vs one ideal hop)", "C", "B", cpuRatio, fmtRatio, "—"},
		{"p99 added by C over B", "C", "B", addedP99, fmtMs, "≤ 1 ms at c=32" + verdict(medianF(p32) <= 1)},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.name, spread(perRound(cells, row.x, row.y, 1, row.f), row.format),
			spread(perRound(cells, row.x, row.y, 32, row.f), row.format), row.target)
	}
	return b.String()
}

// The per-round comparisons of two cells.
func rpsRatio(x, y warmCell) float64 { return ratio(x.res.rps(), y.res.rps()) }
func cpuRatio(x, y warmCell) float64 { return ratio(x.cpu.Seconds(), y.cpu.Seconds()) }
func addedP99(x, y warmCell) float64 {
	return float64(x.res.p99()-y.res.p99()) / float64(time.Millisecond)
}

// writeCellTable writes the median of the rounds of each path (by full
// name) at each concurrency. A CPU figure of zero means the serving
// process was not found (no request is served in no CPU time).
func writeCellTable(b *strings.Builder, cells []warmCell, paths []string) {
	b.WriteString("| path | connections | requests/s | p50 | p99 | CPU/request | writes/request | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, conns := range []int{1, 32} {
		for _, path := range paths {
			var rps, p50, p99, cpu, writes []float64
			var errs int64
			for _, c := range cells {
				if c.path != path || c.conns != conns {
					continue
				}
				rps = append(rps, c.res.rps())
				p50 = append(p50, float64(c.res.p50()))
				p99 = append(p99, float64(c.res.p99()))
				cpu = append(cpu, float64(c.cpu))
				writes = append(writes, c.writes)
				errs += c.res.errors()
			}
			cpuS, writesS := fmtDur(time.Duration(medianF(cpu))), fmt.Sprintf("%.2f", medianF(writes))
			if medianF(cpu) == 0 {
				cpuS, writesS = "—", "—"
			}
			fmt.Fprintf(b, "| %s | %d | %.0f | %s | %s | %s | %s | %d |\n", path, conns, medianF(rps),
				fmtDur(time.Duration(medianF(p50))), fmtDur(time.Duration(medianF(p99))), cpuS, writesS, errs)
		}
	}
}
