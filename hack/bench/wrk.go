package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print its summary as one JSON line; latencies are in
// microseconds.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`

// wrkResult is one wrk run.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"` // responses other than 2xx/3xx
	Timeout    int64 `json:"timeout"`
	P50        int64 `json:"p50"`
	P90        int64 `json:"p90"`
	P99        int64 `json:"p99"`
	Max        int64 `json:"max"`
}

func (w wrkResult) rps() float64 {
	if w.DurationUS == 0 {
		return 0
	}
	return float64(w.Requests) / (float64(w.DurationUS) / 1e6)
}

func (w wrkResult) errors() int64 { return w.Connect + w.Read + w.Write + w.Status + w.Timeout }

func (w wrkResult) p50() time.Duration { return time.Duration(w.P50) * time.Microsecond }
func (w wrkResult) p99() time.Duration { return time.Duration(w.P99) * time.Microsecond }

// runWrk loads url with conns connections for d and returns the summary.
func (r *runner) runWrk(ctx context.Context, url, auth string, conns int, d time.Duration) (wrkResult, error) {
	script := filepath.Join(r.tmp, "summary.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
			return wrkResult{}, err
		}
	}
	threads := min(conns, 2)
	// wrk takes whole seconds only.
	secs := max(1, int((d+time.Second-1)/time.Second))
	args := []string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", secs), "--timeout", "5s", "-s", script,
	}
	if auth != "" {
		args = append(args, "-H", "Authorization: "+auth)
	}
	args = append(args, url)
	shown := fmt.Sprintf("wrk -c %d -d %s %s", conns, d, url) // no credentials in messages
	// wrk ends by itself after d; the context bounds a wrk that hangs.
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, r.wrkBin, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w\n%s", shown, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	var res wrkResult
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		return wrkResult{}, fmt.Errorf("%s: output: %w\n%s", shown, err, out)
	}
	return res, nil
}
