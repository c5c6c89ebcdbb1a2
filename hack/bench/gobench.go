package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// goBenchPackages are the packages whose Go benchmarks the report includes.
var goBenchPackages = []string{"./pkg/proxy", "./pkg/api", "./pkg/store", "./pkg/runtime/docker"}

// goBenchResult is one line of `go test -bench` output.
type goBenchResult struct {
	pkg, name string
	n         int64
	metrics   map[string]float64 // unit → value: ns/op, B/op, allocs/op, req/s, ...
	units     []string           // in output order
}

// goBench runs the Go benchmarks with -benchmem and reports them with ratios.
func (r *runner) goBench(ctx context.Context) error {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1",
		"-benchtime", r.s.GoBench, "-timeout", "20m"}, goBenchPackages...)
	cctx, cancel := context.WithTimeout(ctx, 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", args...)
	cmd.Dir = r.s.ModuleDir
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	res := parseGoBench(string(out))
	if len(res) == 0 {
		return fmt.Errorf("no benchmark results in:\n%s", out)
	}
	get := func(name, unit string) float64 {
		for _, g := range res {
			if g.name == name {
				return g.metrics[unit]
			}
		}
		return 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`go test -run '^$' -bench . -benchmem -benchtime %s %s` (GOMAXPROCS = cores).\n\n",
		r.s.GoBench, strings.Join(goBenchPackages, " "))
	b.WriteString("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|---:|---:|---:|---|\n")
	for _, g := range res {
		var other []string
		for _, u := range g.units {
			switch u {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, fmt.Sprintf("%s %s", fmtNum(g.metrics[u]), u))
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(g.pkg, "github.com/dockerfaasd/dockerfaasd/"),
			g.name, fmtNum(g.metrics["ns/op"]), fmtNum(g.metrics["B/op"]), fmtNum(g.metrics["allocs/op"]), strings.Join(other, ", "))
	}
	b.WriteString("\n| ratio | value |\n|---|---:|\n")
	rows := []struct {
		name string
		v    float64
	}{
		{"ProxyHop/front / IdealHop requests/s (dockerfaasd's loop and proxy vs one ideal hop, in process)", ratio(get("ProxyHop/front", "req/s"), get("IdealHop", "req/s"))},
		{"ProxyHop/front / Direct requests/s", ratio(get("ProxyHop/front", "req/s"), get("Direct", "req/s"))},
		{"IdealHop / Direct requests/s", ratio(get("IdealHop", "req/s"), get("Direct", "req/s"))},
		{"InvokeFullStack / InvokeIdealHop requests/s (router, auth, metrics and proxy vs one ideal hop)", ratio(get("InvokeFullStack", "req/s"), get("InvokeIdealHop", "req/s"))},
		{"InvokeFullStack / InvokeIdealHop CPU per request (whole process)", ratio(get("InvokeFullStack", "cpu-µs/op"), get("InvokeIdealHop", "cpu-µs/op"))},
		{"InvokeFullStack / InvokeIdealHop write calls per request", ratio(get("InvokeFullStack", "writes/op"), get("InvokeIdealHop", "writes/op"))},
		{"HandlerFullStack / HandlerIdealHop CPU per call (no sockets)", ratio(get("HandlerFullStack", "cpu-ns/op"), get("HandlerIdealHop", "cpu-ns/op"))},
		{"BoltGet / MemoryGet ns/op (cost of the bbolt read transaction)", ratio(get("BoltGet", "ns/op"), get("MemoryGet", "ns/op"))},
		{"Reconcile1000Converged / Reconcile1000Create ns/op (reconciling every converged key vs creating everything)", ratio(get("Reconcile1000Converged", "ns/op"), get("Reconcile1000Create", "ns/op"))},
		{"Resync1000Converged / Reconcile1000Converged ns/op (a resync pass, one list, vs reconciling every key)", ratio(get("Resync1000Converged", "ns/op"), get("Reconcile1000Converged", "ns/op"))},
	}
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", row.name, fmtRatio(row.v))
	}
	r.rep.add("go", b.String())
	return nil
}

// parseGoBench reads benchmark lines, e.g.
// "BenchmarkBoltGet-2  	  123456	      9876 ns/op	  1024 B/op	  12 allocs/op".
func parseGoBench(out string) []goBenchResult {
	var res []goBenchResult
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		g := goBenchResult{pkg: pkg, name: name, n: n, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			g.metrics[f[i+1]] = v
			g.units = append(g.units, f[i+1])
		}
		res = append(res, g)
	}
	return res
}
