package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// cell makes a warm cell with the given requests/s (over one second), p50
// and p99 in microseconds, and CPU per request.
func cell(path string, conns, round int, rps, p50, p99 int64, cpu time.Duration) warmCell {
	return warmCell{path: path, conns: conns, round: round, cpu: cpu,
		res: wrkResult{Requests: rps, DurationUS: 1e6, P50: p50, P99: p99}}
}

// onMachine sets a cell's whole-machine CPU and context switches per
// request.
func onMachine(c warmCell, machine time.Duration, switches float64) warmCell {
	c.machine, c.switches = machine, switches
	return c
}

func TestRenderWarmNginxRows(t *testing.T) {
	// Per round at c=1 p50: A 50 µs, N 140, 150, 160 µs, C as given; at
	// c=32: N 20000 req/s, p99 8 ms.
	mk := func(cP50 int64, cRPS int64, cP99 int64) []warmCell {
		var cells []warmCell
		for round := range 3 {
			cells = append(cells,
				cell("A direct", 1, round, 15000, 50, 900, 60*time.Microsecond),
				cell("B baseproxy", 1, round, 3000, 280, 3000, 240*time.Microsecond),
				cell("C dockerfaasd", 1, round, 2600, cP50, 2800, 300*time.Microsecond),
				cell("N nginx", 1, round, 7000, 140+10*int64(round), 1000, 100*time.Microsecond),
				cell("A direct", 32, round, 35000, 700, 11000, 30*time.Microsecond),
				cell("B baseproxy", 32, round, 8000, 4000, 12000, 170*time.Microsecond),
				onMachine(cell("C dockerfaasd", 32, round, cRPS, 4000, cP99, 150*time.Microsecond), 80*time.Microsecond, 2.5),
				onMachine(cell("N nginx", 32, round, 20000, 1500, 8000, 60*time.Microsecond), 64*time.Microsecond, 1.75),
				onMachine(cell("H nginx + fields", 32, round, 16000+1000*int64(round), 1600, 8200, 70*time.Microsecond), 72*time.Microsecond, 2),
				cell("H nginx + fields", 1, round, 6000, 160, 1100, 110*time.Microsecond),
			)
		}
		return cells
	}
	rss := rssRun{conns: 256, d: time.Minute, startKB: 20 << 10, maxKB: 40 << 10, endKB: 30 << 10, samples: 62,
		res: wrkResult{Requests: 5000, DurationUS: 1e6, Status: 7, Timeout: 3}}
	for _, tc := range []struct {
		name  string
		cells []warmCell
		want  []string
	}{
		{"goals met", mk(170, 19000, 8500), []string{
			"| C/N requests/s (dockerfaasd vs nginx) | 0.37× (0.37× – 0.37×) | 0.95× (0.95× – 0.95×) | ≥ 0.90 at c=32 (met) |",
			"| p50 added over direct by C (C−A) | 120 µs (120 µs – 120 µs) |",
			"| p50 added over direct by N (N−A) | 100 µs (90 µs – 110 µs) |",
			"| (C−A)/(N−A) p50 (latency dockerfaasd adds vs nginx) | 1.20× (1.09× – 1.33×) |",
			"≤ 1.20 at c=1 (met) |",
			"| p99 of C over N | 1.80 ms (1.80 ms – 1.80 ms) | 500 µs (500 µs – 500 µs) | ≤ 1 ms at c=32 (met) |",
			"| C/N CPU per request (dockerfaasd vs nginx) | 3.00× (3.00× – 3.00×) | 2.50× (2.50× – 2.50×) | — |",
			"| N nginx | 32 | 20000 | 1.50 ms | 8.00 ms | 60 µs |",
			"| 20.0 MiB | 40.0 MiB | 30.0 MiB | 62 | 5000 | 0 | 10 (non-2xx/3xx 7, timeout 3) |",
			"each running A, B, C, N and H back to back",
			"| C/N machine CPU per request | — | 1.25× (1.25× – 1.25×) | — |",
			"| C−N context switches per request | +0.00 (+0.00 – +0.00) | +0.75 (+0.75 – +0.75) | — |",
			"| H/N requests/s (what the contract's fields cost nginx) | 0.86× (0.86× – 0.86×) | 0.85× (0.80× – 0.90×) | — |",
			"| C/H requests/s (dockerfaasd vs nginx adding the same fields) | 0.43× (0.43× – 0.43×) | 1.12× (1.06× – 1.19×) | — |",
			"| C/H machine CPU per request | — | 1.11× (1.11× – 1.11×) | — |",
			"| H nginx + fields | 32 | 17000 | 1.60 ms | 8.20 ms | 70 µs | 0.00 | 72 µs | 2.00 | 0 |",
			"| N nginx | 1 | 7000 | 150 µs | 1.00 ms | 100 µs | 0.00 | — | — | 0 |",
		}},
		{"goals not met", mk(350, 8000, 16000), []string{
			"| C/N requests/s (dockerfaasd vs nginx) | 0.37× (0.37× – 0.37×) | 0.40× (0.40× – 0.40×) | ≥ 0.90 at c=32 (**not met**) |",
			"| (C−A)/(N−A) p50 (latency dockerfaasd adds vs nginx) | 3.00× (2.73× – 3.33×) |",
			"≤ 1.20 at c=1 (**not met**) |",
			"≤ 1 ms at c=32 (**not met**) |",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := renderWarm(tc.cells, 10*time.Second, 3, "", rss)
			for _, w := range tc.want {
				if !strings.Contains(md, w) {
					t.Errorf("report lacks %q:\n%s", w, md)
				}
			}
		})
	}
}

func TestRenderWarmWithoutNginx(t *testing.T) {
	var cells []warmCell
	for _, conns := range []int{1, 32} {
		cells = append(cells,
			cell("A direct", conns, 0, 15000, 50, 900, 0),
			cell("B baseproxy", conns, 0, 3000, 280, 3000, 0),
			cell("C dockerfaasd", conns, 0, 2600, 300, 2800, 0))
	}
	md := renderWarm(cells, 10*time.Second, 1, "nginx is not installed (`hack/install-nginx.sh` installs Debian's)", rssRun{})
	for _, w := range []string{"**N (nginx) not measured in this run:** nginx is not installed", "each running A, B and C back"} {
		if !strings.Contains(md, w) {
			t.Errorf("report lacks %q:\n%s", w, md)
		}
	}
	for _, unwanted := range []string{"N nginx", "C/N", "H nginx", "C/H"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("report has %q without N:\n%s", unwanted, md)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  100 5 50 9000 30 7 8 2 0 0\ncpu0 50 2 25 4500 15 3 4 1 0 0\nintr 1 2 3\nctxt 123456\nbtime 1\n"
	for _, tc := range []struct {
		name string
		in   string
		want machineCounters
		ok   bool
	}{
		{"busy is user, nice, system, irq, softirq", stat, machineCounters{busy: 170, switches: 123456}, true},
		{"no ctxt line", "cpu  1 2 3 4 5 6 7 8\n", machineCounters{}, false},
		{"no cpu line", "ctxt 5\n", machineCounters{}, false},
		{"bad number", "cpu  x 2 3 4 5 6 7 8\nctxt 5\n", machineCounters{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.in)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Errorf("parseProcStat = %+v, %v; want %+v, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
	if _, err := readMachine(); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

func TestAddedP50RatioNoLatencyByN(t *testing.T) {
	cells := []warmCell{
		cell("A direct", 1, 0, 1, 100, 0, 0),
		cell("C dockerfaasd", 1, 0, 1, 300, 0, 0),
		cell("N nginx", 1, 0, 1, 100, 0, 0),
	}
	if got := addedP50Ratio(cells, 1); len(got) != 1 || got[0] == got[0] {
		t.Errorf("addedP50Ratio = %v, want [NaN] when N adds nothing", got)
	}
}

// TestNginxHop runs the bench's nginx in front of a local server: it
// answers through the hop, its workers' CPU is counted, and stop ends
// master and workers. Skipped where nginx is not installed.
func TestNginxHop(t *testing.T) {
	if _, err := findNginx(); errors.Is(err, errNoNginx) {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is missing (.ci/run installs it with hack/install-nginx.sh)")
		}
		t.Skip("nginx not installed (hack/install-nginx.sh; with CI=true this is a failure)")
	}
	fields := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Call-Id") != "" {
			select {
			case fields <- r.Header.Clone():
			default:
			}
		}
		_, _ = io.WriteString(w, "fn-1234")
	}))
	defer backend.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := &runner{tmp: t.TempDir()}
	n, err := r.startNginx(ctx, strings.TrimPrefix(backend.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.stop() }()
	select {
	case <-fields: // startNginx's own look at the fields hop
	case <-time.After(10 * time.Second):
		t.Fatal("startNginx's look at the fields hop sent no X-Call-Id upstream")
	}
	if err := sameReplica(ctx, backend.URL, "http://"+n.addr+"/"); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-fields:
		t.Fatalf("the plain hop added the contract's fields: %v", h)
	default:
	}
	// The other server adds the fields the daemon adds, both ways.
	res, err := http.Get("http://" + n.fieldsAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	for _, k := range []string{"X-Call-Id", "X-Start-Time", "X-Duration-Seconds"} {
		if res.Header.Get(k) == "" {
			t.Errorf("answer through the fields hop lacks %s: %v", k, res.Header)
		}
	}
	select {
	case h := <-fields:
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Call-Id", "X-Start-Time"} {
			if h.Get(k) == "" {
				t.Errorf("request through the fields hop lacks %s: %v", k, h)
			}
		}
	default:
		t.Error("the fields hop sent no X-Call-Id upstream")
	}
	workers := childPids(n.pid())
	if len(workers) != runtime.NumCPU() {
		t.Errorf("nginx has %d workers, want one per core (%d)", len(workers), runtime.NumCPU())
	}
	t0, w0, err := procCounters(n.pid())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	for range 2000 {
		res, err := client.Get("http://" + n.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	t1, w1, err := procCounters(n.pid())
	if err != nil {
		t.Fatal(err)
	}
	// Each answer is at least one write by a worker; the master writes none.
	if w1-w0 < 2000 || t1 < t0 {
		t.Errorf("counters over 2000 requests: %d writes, %d ticks; want the workers' writes counted", w1-w0, t1-t0)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if _, err := cpuTicks(w); err == nil {
			t.Errorf("worker %d still runs after stop", w)
		}
	}
}
