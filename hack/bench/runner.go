package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker"
)

// runner holds what the sections of one run share.
type runner struct {
	s   settings
	id  string // run ID: INSTANCE of the daemon and value of labelBench
	tmp string
	rep *report

	docker       *client.Client
	image        string
	daemonBin    string
	baseproxyBin string
	wrkBin       string

	d     *daemon     // the daemon currently running, if any
	procs []*exec.Cmd // baseproxy processes

	floorNet, floorNetID string // the driver's own network for the direct path
	floorIP              string // address of the direct-path container
	floorID              string // its container ID

	// The warm section's cells, set next to the swarm section's.
	hostWarm []warmCell

	// Medians of the cold-start section, the baselines of later ones.
	coldFloor, coldFloorNet, coldDaemon time.Duration
}

// setup connects to Docker, builds the image, the daemon and baseproxy,
// finds wrk and starts the daemon.
func (r *runner) setup(ctx context.Context) error {
	cli, err := connectDocker(ctx)
	if err != nil {
		return err
	}
	r.docker = cli
	if r.wrkBin, err = findWrk(ctx); err != nil {
		return err
	}
	if r.image, err = r.ensureImage(ctx); err != nil {
		return err
	}
	logf("function image %s", r.image)
	r.daemonBin = filepath.Join(r.tmp, "dockerfaasd")
	if err := r.goBuild(ctx, []string{"CGO_ENABLED=0"}, "-trimpath", "-o", r.daemonBin, "./cmd/dockerfaasd"); err != nil {
		return err
	}
	r.baseproxyBin = filepath.Join(r.tmp, "baseproxy")
	if err := r.goBuild(ctx, []string{"CGO_ENABLED=0"}, "-trimpath", "-o", r.baseproxyBin, "./hack/baseproxy"); err != nil {
		return err
	}
	r.rep.machine(ctx, r)
	return r.startDaemon(ctx, "state")
}

// startDaemon starts a daemon with a fresh state dir named dir.
func (r *runner) startDaemon(ctx context.Context, dir string) error {
	d, err := r.newDaemon()
	if err != nil {
		return err
	}
	d.stateDir = filepath.Join(r.tmp, dir)
	if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
		return err
	}
	r.d = d
	if err := d.start(ctx); err != nil {
		return err
	}
	logf("daemon %s on %s (log %s)", d.instance, d.base, d.logPath)
	return nil
}

// keepLog copies the daemon's log out of the temporary directory, which is
// removed at the end, so that a failure can be looked into.
func (r *runner) keepLog() {
	if r.d == nil {
		return
	}
	b, err := os.ReadFile(r.d.logPath)
	if err != nil {
		return
	}
	dst := filepath.Join(os.TempDir(), r.id+"-dockerfaasd.log")
	if err := os.WriteFile(dst, b, 0o644); err == nil {
		logf("daemon log kept in %s", dst)
	}
}

// findWrk returns wrk's path, installing Debian's wrk when it is missing.
func findWrk(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	logf("wrk not found; installing Debian's wrk with apt-get")
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "wrk")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install wrk: %w\n%s", err, out)
		}
		return nil
	}
	if err := install(); err != nil {
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w\n%s", uerr, out)
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	return exec.LookPath("wrk")
}

// startBaseproxy runs hack/baseproxy in front of target and returns its
// address.
func (r *runner) startBaseproxy(ctx context.Context, target string) (string, error) {
	cmd := exec.Command(r.baseproxyBin, "-listen", "127.0.0.1:0", "-target", target)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	r.procs = append(r.procs, cmd)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(l, "listening on ")
		if !ok {
			return "", fmt.Errorf("baseproxy: %s", l)
		}
		return addr, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("baseproxy did not start within 10s")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// cleanup stops what the run started and removes what it created in
// Docker, by label only. It runs on success, failure and interrupt.
func (r *runner) cleanup() {
	for _, p := range r.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	if r.d != nil {
		if err := r.d.stop(); err != nil {
			logf("cleanup: %v", err)
		}
	}
	if r.docker == nil {
		return
	}
	// Docker removes a network in about half a second when it has a
	// thousand; leave room for BENCH_SCALE of them.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+time.Duration(r.s.Scale)*time.Second)
	defer cancel()
	for _, label := range []string{labelBench, docker.LabelInstance} {
		if err := r.removeLabelled(ctx, r.docker, label); err != nil {
			logf("cleanup of %s=%s: %v", label, r.id, err)
		}
	}
	_ = r.docker.Close()
	logf("removed containers and networks labelled %s", r.id)
}

// pollClient sends the polls that look for a first 200: short timeouts, no
// proxy from the environment.
var pollClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxPolls},
}

// maxPolls bounds the polls firstOK keeps in flight. Generous, because a
// poll routed to a replica that was just removed may hang until its
// timeout, and the others must keep sampling meanwhile.
const maxPolls = 64

// firstOK polls url every interval, with up to maxPolls requests in flight, until
// one answers 200 with a body accept agrees with (nil accepts any), and
// returns when that response arrived. It gives up after limit.
func firstOK(ctx context.Context, url, auth string, accept func([]byte) bool, interval, limit time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	type result struct {
		at  time.Time
		err error
	}
	results := make(chan result, maxPolls)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: in-flight polls end at once
	inflight := 0
	var last error
	tick := time.NewTicker(interval)
	defer tick.Stop()
	send := func() {
		inflight++
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			res, err := pollClient.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			at := time.Now()
			switch {
			case err != nil:
				results <- result{err: err}
			case res.StatusCode != http.StatusOK:
				results <- result{err: fmt.Errorf("status %d: %s", res.StatusCode, strings.TrimSpace(string(b)))}
			case accept != nil && !accept(b):
				results <- result{err: fmt.Errorf("unexpected body %q", b)}
			default:
				results <- result{at: at}
			}
		}()
	}
	send()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no 200 from %s within %s; last: %v", url, limit, last)
		case res := <-results:
			inflight--
			if res.err == nil {
				return res.at, nil
			}
			last = res.err
		case <-tick.C:
			if inflight < maxPolls {
				send()
			}
		}
	}
}

// median of durations; zero for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
