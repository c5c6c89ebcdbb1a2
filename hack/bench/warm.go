package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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
	// machine is the CPU time per request of the whole machine (every
	// process and the kernel: function, wrk, network stack), and switches
	// its context switches per request: what a path costs outside its own
	// process (the function's and wrk's work, their wake-ups).
	machine  time.Duration
	switches float64
}

// warm measures warm invocations: (A) the function container directly,
// (B) through baseproxy, (C) through dockerfaasd with auth, (N) through
// nginx, (H) through nginx adding the header fields the daemon adds,
// each at concurrency 1 and 32, after an unmeasured warm-up, in
// BENCH_WARM_ROUNDS rounds. On a small machine that wrk shares with the
// paths, one round swung C/B from 0.85× to 1.15× between two runs of the
// same build; the ratios are therefore taken per round, from cells run
// back to back, and their median is reported with their range. Then the
// daemon's RSS is sampled under a longer load at high concurrency.
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
	// N is measured when nginx is installed; without it the section still
	// gives A, B and C, and says how to get N.
	noNginx := ""
	ngx, err := r.startNginx(ctx, r.floorIP+":8080")
	switch {
	case errors.Is(err, errNoNginx):
		noNginx = "nginx is not installed (`hack/install-nginx.sh` installs Debian's)"
		logf("warm: N not measured: %s", noNginx)
	case err != nil:
		return err
	default:
		defer func() {
			if err := ngx.stop(); err != nil {
				logf("warm: %v", err)
			}
		}()
		if err := sameReplica(ctx, direct, "http://"+ngx.addr+"/"); err != nil {
			return err
		}
		if err := sameReplica(ctx, direct, "http://"+ngx.fieldsAddr+"/"); err != nil {
			return err
		}
		paths = append(paths,
			warmPath{"N nginx", "http://" + ngx.addr + "/", "", ngx.pid()},
			// H gets C's request: the Authorization field, which the daemon
			// passes on to the function, as nginx does.
			warmPath{"H nginx + fields", "http://" + ngx.fieldsAddr + "/", auth, ngx.pid()})
	}
	cells, err := r.measureRounds(ctx, paths)
	if err != nil {
		return err
	}
	// Kept for the swarm section, which sets its C/B next to this one.
	r.hostWarm = cells
	if ngx != nil {
		// Done with; the deferred stop is then a no-op.
		if err := ngx.stop(); err != nil {
			logf("warm: %v", err)
		}
	}
	// A failed RSS run is reported with the rounds, not instead of them.
	rss, err := r.rssUnderLoad(ctx, r.d.pid(), viaDaemon, auth, rssConns, rssLoad)
	if err != nil {
		logf("warm: RSS under load: %v", err)
		rss.err = err
	}
	r.rep.add("warm", renderWarm(cells, r.s.Duration, r.s.WarmRounds, noNginx, rss))
	return nil
}

// The daemon's memory under load: the 60 s at 256 connections,
// eight times the highest concurrency of the rounds.
const (
	rssConns = 256
	rssLoad  = 60 * time.Second
)

// rssRun is the daemon's VmRSS before, during and right after one long
// wrk run against path C.
type rssRun struct {
	conns                 int
	d                     time.Duration
	res                   wrkResult
	startKB, maxKB, endKB int64
	samples               int
	err                   error // the run failed: no figures
}

// rssUnderLoad runs wrk against url with conns connections for d while
// reading pid's VmRSS every second.
func (r *runner) rssUnderLoad(ctx context.Context, pid int, url, auth string, conns int, d time.Duration) (rssRun, error) {
	run := rssRun{conns: conns, d: d}
	kb, err := rssKB(pid)
	if err != nil {
		return run, fmt.Errorf("daemon RSS: %w", err)
	}
	run.startKB, run.maxKB, run.samples = kb, kb, 1
	type result struct {
		res wrkResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.runWrk(ctx, url, auth, conns, d)
		done <- result{res, err}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			// A failed read is left out; the read after the run is not.
			if kb, err := rssKB(pid); err == nil {
				run.maxKB = max(run.maxKB, kb)
				run.samples++
			}
		case w := <-done:
			if w.err != nil {
				return run, w.err
			}
			run.res = w.res
			if run.endKB, err = rssKB(pid); err != nil {
				return run, fmt.Errorf("daemon RSS: %w", err)
			}
			run.maxKB = max(run.maxKB, run.endKB)
			run.samples++
			logf("warm: daemon RSS under wrk -c %d for %s: start %s, max %s, end %s (%d samples); %.0f req/s, p99 %s, errors %s",
				conns, d, fmtKB(run.startKB), fmtKB(run.maxKB), fmtKB(run.endKB), run.samples, w.res.rps(), w.res.p99(), wrkErrors(w.res))
			return run, nil
		}
	}
}

// wrkErrors is wrk's error count with its kinds: at 256 connections a
// refused connection and a 5xx are different findings.
func wrkErrors(w wrkResult) string {
	if w.errors() == 0 {
		return "0"
	}
	var kinds []string
	for _, k := range []struct {
		name string
		n    int64
	}{{"connect", w.Connect}, {"read", w.Read}, {"write", w.Write}, {"non-2xx/3xx", w.Status}, {"timeout", w.Timeout}} {
		if k.n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k.name, k.n))
		}
	}
	return fmt.Sprintf("%d (%s)", w.errors(), strings.Join(kinds, ", "))
}

// sameReplica checks that proxy reaches the container that direct is:
// fn-hostname answers with its hostname.
func sameReplica(ctx context.Context, direct, proxy string) error {
	want, err := getOnce(ctx, direct)
	if err != nil {
		return err
	}
	got, err := getOnce(ctx, proxy)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s answered %q, the function %q: not the same replica", proxy, got, want)
	}
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
				m0, err := readMachine()
				if err != nil {
					return nil, err
				}
				res, err := r.runWrk(ctx, p.url, p.auth, conns, r.s.Duration)
				if err != nil {
					return nil, err
				}
				t1, w1, err := procCounters(p.pid)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.name, err)
				}
				m1, err := readMachine()
				if err != nil {
					return nil, err
				}
				c := warmCell{path: p.name, conns: conns, round: round, res: res}
				if n := res.Requests; n > 0 {
					c.cpu = time.Duration(t1-t0) * (time.Second / clockTicks) / time.Duration(n)
					c.writes = float64(w1-w0) / float64(n)
					c.machine = time.Duration(m1.busy-m0.busy) * (time.Second / clockTicks) / time.Duration(n)
					c.switches = float64(m1.switches-m0.switches) / float64(n)
				}
				logf("round %d %-16s c=%-2d %8.0f req/s  p50 %-9s p99 %-9s cpu/req %-8s writes/req %.2f machine/req %-8s switches/req %.2f errors %d",
					round+1, p.name, conns, res.rps(), res.p50(), res.p99(), c.cpu, c.writes, c.machine, c.switches, res.errors())
				cells = append(cells, c)
			}
		}
	}
	return cells, nil
}

// procCounters reads the CPU ticks and write(2) calls so far of a process
// and its children: nginx serves from worker processes its master forked
// (the other paths' processes have none). For pid 0 (a process that could
// not be found) it reads nothing.
func procCounters(pid int) (ticks, writes int64, err error) {
	if pid == 0 {
		return 0, 0, nil
	}
	if ticks, err = cpuTicks(pid); err != nil {
		return 0, 0, err
	}
	if writes, err = writeCalls(pid); err != nil {
		return 0, 0, err
	}
	for _, child := range childPids(pid) {
		// A child that ended since the list was read is left out.
		t, err1 := cpuTicks(child)
		w, err2 := writeCalls(child)
		if err1 == nil && err2 == nil {
			ticks, writes = ticks+t, writes+w
		}
	}
	return ticks, writes, nil
}

// machineCounters are the whole machine's busy CPU ticks (all CPUs: user,
// nice, system, irq and softirq time) and context switches so far.
type machineCounters struct{ busy, switches int64 }

// readMachine reads machineCounters from /proc/stat.
func readMachine() (machineCounters, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCounters{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat takes machineCounters from /proc/stat's "cpu" and
// "ctxt" lines.
func parseProcStat(s string) (machineCounters, error) {
	var m machineCounters
	var haveCPU, haveCtxt bool
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 8 && f[0] == "cpu":
			// user nice system idle iowait irq softirq: all but idle and
			// iowait is work.
			for _, i := range []int{1, 2, 3, 6, 7} {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return m, fmt.Errorf("/proc/stat cpu line: %w", err)
				}
				m.busy += v
			}
			haveCPU = true
		case len(f) == 2 && f[0] == "ctxt":
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return m, fmt.Errorf("/proc/stat ctxt line: %w", err)
			}
			m.switches, haveCtxt = v, true
		}
	}
	if !haveCPU || !haveCtxt {
		return m, errors.New("/proc/stat without cpu and ctxt lines")
	}
	return m, nil
}

// childPids lists a process's children from /proc/PID/task/*/children
// (every thread's: a child belongs to the thread that forked it).
func childPids(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
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
	if !slices.ContainsFunc(vs, func(v float64) bool { return !math.IsNaN(v) }) {
		return format(math.NaN()) // nothing measured
	}
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

func renderWarm(cells []warmCell, d time.Duration, rounds int, noNginx string, rss rssRun) string {
	var b strings.Builder
	withN := len(warmCells(cells, "N", 1)) > 0
	withH := len(warmCells(cells, "H", 1)) > 0
	paths, names := []string{"A direct", "B baseproxy", "C dockerfaasd"}, "A, B and C"
	switch {
	case withN && withH:
		paths, names = append(paths, "N nginx", "H nginx + fields"), "A, B, C, N and H"
	case withN:
		paths, names = append(paths, "N nginx"), "A, B, C and N"
	}
	fmt.Fprintf(&b, "wrk, %s per cell after a warm-up, GET of fn-hostname (a 12-byte answer); %d rounds, each running "+
		"%s back to back at each concurrency.\n\n", d, rounds, names)
	b.WriteString("CPU/request is the CPU time of the process serving the path (the function for A, baseproxy for B, " +
		"the daemon for C, nginx's master and workers for N and H) divided by the requests it served, and writes/request its " +
		"write(2) calls per request: both hold up better than requests/s and latency when other work shares the machine. " +
		"Machine CPU/request and switches/request are the whole machine's busy CPU time and context switches " +
		"(`/proc/stat`) per request: the function, wrk and the network stack included, so they show what a path costs " +
		"outside its own process. The first table gives the median of the rounds for each cell; the ratios are taken " +
		"within each round and given as their median (lowest – highest).\n\n")
	if withH {
		b.WriteString("H is the same nginx adding the header fields the daemon adds to every call (X-Forwarded-For, " +
			"-Host and -Proto, a call ID and a start time on the request; the call ID, start time and duration on the " +
			"answer), which the function then parses, and sent C's request (with its Authorization field, which both " +
			"pass on to the function): the contract's own cost, which N does not pay.\n\n")
	}
	if !withN {
		fmt.Fprintf(&b, "**N (nginx) not measured in this run:** %s.\n\n", noNginx)
	}
	writeCellTable(&b, cells, paths)
	type row struct {
		name   string
		vals   func(conns int) []float64
		format func(float64) string
		target string
	}
	pair := func(x, y string, f func(x, y warmCell) float64) func(int) []float64 {
		return func(conns int) []float64 { return perRound(cells, x, y, conns, f) }
	}
	cb32 := perRound(cells, "C", "B", 32, rpsRatio)
	p32 := perRound(cells, "C", "B", 32, addedP99)
	rows := []row{
		{"C/A requests/s (dockerfaasd vs direct)", pair("C", "A", rpsRatio), fmtRatio, "—"},
		{"C/B requests/s (dockerfaasd vs one ideal hop)", pair("C", "B", rpsRatio), fmtRatio, "≥ 0.90 at c=32" + verdict(medianF(cb32) >= 0.9)},
		{"B/A requests/s (one ideal hop vs direct)", pair("B", "A", rpsRatio), fmtRatio, "—"},
		{"C/B CPU per request (dockerfaasd vs one ideal hop)", pair("C", "B", cpuRatio), fmtRatio, "—"},
		{"p99 added by C over B", pair("C", "B", addedP99), fmtMs, "≤ 1 ms at c=32" + verdict(medianF(p32) <= 1)},
	}
	if withN {
		// Issue 17's goals: dockerfaasd as fast as one nginx hop.
		cn32 := perRound(cells, "C", "N", 32, rpsRatio)
		added := func(conns int) []float64 { return addedP50Ratio(cells, conns) }
		pn32 := perRound(cells, "C", "N", 32, addedP99)
		rows = append(rows,
			row{"C/N requests/s (dockerfaasd vs nginx)", pair("C", "N", rpsRatio), fmtRatio, "≥ 0.90 at c=32" + verdict(medianF(cn32) >= 0.9)},
			row{"N/A requests/s (nginx vs direct)", pair("N", "A", rpsRatio), fmtRatio, "—"},
			row{"C/N CPU per request (dockerfaasd vs nginx)", pair("C", "N", cpuRatio), fmtRatio, "—"},
			row{"p50 added over direct by C (C−A)", pair("C", "A", addedP50), fmtMs, "—"},
			row{"p50 added over direct by N (N−A)", pair("N", "A", addedP50), fmtMs, "—"},
			row{"(C−A)/(N−A) p50 (latency dockerfaasd adds vs nginx)", added, fmtRatio, "≤ 1.20 at c=1" + verdict(medianF(added(1)) <= 1.2)},
			row{"p99 of C over N", pair("C", "N", addedP99), fmtMs, "≤ 1 ms at c=32" + verdict(medianF(pn32) <= 1)},
			row{"C/N machine CPU per request", pair("C", "N", machineRatio), fmtRatio, "—"},
			row{"C−N context switches per request", pair("C", "N", addedSwitches), fmtSwitches, "—"},
		)
	}
	if withH {
		rows = append(rows,
			row{"H/N requests/s (what the contract's fields cost nginx)", pair("H", "N", rpsRatio), fmtRatio, "—"},
			row{"C/H requests/s (dockerfaasd vs nginx adding the same fields)", pair("C", "H", rpsRatio), fmtRatio, "—"},
			row{"C/H machine CPU per request", pair("C", "H", machineRatio), fmtRatio, "—"},
		)
	}
	b.WriteString("\n| ratio | c=1 | c=32 | target |\n|---|---:|---:|---|\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.name, spread(row.vals(1), row.format), spread(row.vals(32), row.format), row.target)
	}
	fmt.Fprintf(&b, "\nThe daemon's memory under load: its VmRSS (`/proc/PID/status`) just before, every second during and "+
		"right after one wrk run of %s at %d connections against C, after the rounds above.\n\n", rss.d, rss.conns)
	if rss.err != nil {
		msg := rss.err.Error()
		if len(msg) > 1000 {
			msg = msg[:1000] + "…"
		}
		fmt.Fprintf(&b, "**Failed in this run:**\n\n```\n%s\n```\n", msg)
		return b.String()
	}
	b.WriteString("| RSS at start | max | at end | samples | requests/s | p99 | errors |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %s | %s |\n", fmtKB(rss.startKB), fmtKB(rss.maxKB), fmtKB(rss.endKB),
		rss.samples, rss.res.rps(), fmtDur(rss.res.p99()), wrkErrors(rss.res))
	return b.String()
}

// addedP50Ratio is, for each round, (C−A)/(N−A) of the p50: the latency
// dockerfaasd adds to a direct call against what nginx adds. NaN when N
// added nothing measurable (its p50 not above A's).
func addedP50Ratio(cells []warmCell, conns int) []float64 {
	as, cs, ns := warmCells(cells, "A", conns), warmCells(cells, "C", conns), warmCells(cells, "N", conns)
	var out []float64
	for i := range min(len(as), len(cs), len(ns)) {
		byC, byN := cs[i].res.p50()-as[i].res.p50(), ns[i].res.p50()-as[i].res.p50()
		if byN <= 0 {
			out = append(out, math.NaN())
			continue
		}
		out = append(out, float64(byC)/float64(byN))
	}
	return out
}

// The per-round comparisons of two cells.
func rpsRatio(x, y warmCell) float64 { return ratio(x.res.rps(), y.res.rps()) }
func cpuRatio(x, y warmCell) float64 { return ratio(x.cpu.Seconds(), y.cpu.Seconds()) }
func machineRatio(x, y warmCell) float64 {
	return ratio(x.machine.Seconds(), y.machine.Seconds())
}
func addedSwitches(x, y warmCell) float64 { return x.switches - y.switches }

func fmtSwitches(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%+.2f", v)
}
func addedP99(x, y warmCell) float64 {
	return float64(x.res.p99()-y.res.p99()) / float64(time.Millisecond)
}
func addedP50(x, y warmCell) float64 {
	return float64(x.res.p50()-y.res.p50()) / float64(time.Millisecond)
}

// writeCellTable writes the median of the rounds of each path (by full
// name) at each concurrency. A CPU figure of zero means the serving
// process was not found (no request is served in no CPU time).
func writeCellTable(b *strings.Builder, cells []warmCell, paths []string) {
	b.WriteString("| path | connections | requests/s | p50 | p99 | CPU/request | writes/request | machine CPU/request | switches/request | errors |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, conns := range []int{1, 32} {
		for _, path := range paths {
			var rps, p50, p99, cpu, writes, machine, switches []float64
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
				machine = append(machine, float64(c.machine))
				switches = append(switches, c.switches)
				errs += c.res.errors()
			}
			cpuS, writesS := fmtDur(time.Duration(medianF(cpu))), fmt.Sprintf("%.2f", medianF(writes))
			if medianF(cpu) == 0 {
				cpuS, writesS = "—", "—"
			}
			machineS, switchesS := fmtDur(time.Duration(medianF(machine))), fmt.Sprintf("%.2f", medianF(switches))
			if medianF(machine) == 0 {
				machineS, switchesS = "—", "—"
			}
			fmt.Fprintf(b, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %d |\n", path, conns, medianF(rps),
				fmtDur(time.Duration(medianF(p50))), fmtDur(time.Duration(medianF(p99))), cpuS, writesS, machineS, switchesS, errs)
		}
	}
}
