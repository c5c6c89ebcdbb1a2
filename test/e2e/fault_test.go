package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Shape of TestKillDuringConcurrentDeploys: 100 deploys of distinct
// fn-hostname functions (FAULT_FUNCTIONS) from 16 goroutines. FAULT_STEPS
// above 1 follows each create with that many minus one updates (PUT with a
// new GEN), so that the kill also lands in rolling updates, e.g.
// FAULT_FUNCTIONS=20 FAULT_STEPS=5. Every function has its own network:
// the ~30 functions left after the kill need an engine with more than
// Docker's default address pools (hack/docker-up.sh sets a larger one).
const (
	faultFunctions = 100
	faultSteps     = 1
	faultWorkers   = 16
	// faultKillAfter acknowledged deploys, the daemon is SIGKILLed.
	faultKillAfter = 30
	// faultSettle bounds the wait, after the first round of creates, for
	// the controller to be busy creating containers.
	faultSettle = 30 * time.Second
	// faultConverge bounds the wait for every function to be whole again
	// after the restart (generous: never a timing assertion).
	faultConverge = 5 * time.Minute
	// faultGenEnv is the environment variable each deploy step sets.
	faultGenEnv = "GEN"
)

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}

// deployAttempt is the outcome of one deploy request.
type deployAttempt struct {
	fn, step int
	status   int   // HTTP status, 0 on a transport error
	err      error // transport error
}

func (a deployAttempt) acked() bool   { return a.err == nil && a.status/100 == 2 }
func (a deployAttempt) refused() bool { return errors.Is(a.err, syscall.ECONNREFUSED) }

// faultSpec is deploy step of function fn: fn-hostname with GEN=step.
func faultSpec(img string, fn, step int) types.FunctionDeployment {
	return simpleSpec(faultName(fn), img, map[string]string{faultGenEnv: strconv.Itoa(step)}, nil)
}

func faultName(fn int) string { return fmt.Sprintf("crash-%03d", fn) }

// sendDeploy POSTs (step 0) or PUTs one deployment with plain HTTP, so that a
// transport error is told apart from an HTTP answer.
func sendDeploy(c *http.Client, d *daemon, method string, spec types.FunctionDeployment) (int, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.baseURL+"/system/functions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(d.user, d.password)
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// TestKillDuringConcurrentDeploys sends 100 deploys from 16 goroutines and
// SIGKILLs the daemon once 30 of them were acknowledged, while the rest are
// in flight. After a restart every acknowledged deploy must be there (the
// function exists with at least that step's spec), a deploy that failed in
// transit may or may not have been applied, one refused at connect never
// was; every function converges to one ready replica of its stored spec and
// nothing is left of functions that do not exist; and the state file passes
// bbolt's and the store's consistency checks, both right after the kill and
// after a graceful stop at the end.
func TestKillDuringConcurrentDeploys(t *testing.T) {
	t.Parallel()
	nFns := envInt(t, "FAULT_FUNCTIONS", faultFunctions)
	nSteps := envInt(t, "FAULT_STEPS", faultSteps)
	killAfter := min(faultKillAfter, nFns*nSteps)
	d := startDaemon(t)
	img := fnImage(t, fnHostname)
	dbPath := filepath.Join(d.stateDir, "state.db")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: faultWorkers}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		attempts []deployAttempt
		acked    atomic.Int64
		killed   atomic.Bool
		killOnce sync.Once
		killNow  = make(chan struct{})
		wg       sync.WaitGroup
	)
	// Each worker owns the functions fn ≡ w (mod workers) and sends their
	// steps in order, so a later step of a function is only sent once the
	// earlier one was acknowledged. The first create of each worker goes
	// first; once the controller is busy creating their containers, the
	// rest (the other creates, then the updates) go out without a pause,
	// and the kill lands among them.
	type send struct{ fn, step int }
	first := make([][]send, faultWorkers)
	rest := make([][]send, faultWorkers)
	for w := 0; w < faultWorkers; w++ {
		for step := 0; step < nSteps; step++ {
			for fn := w; fn < nFns; fn += faultWorkers {
				if fn == w && step == 0 {
					first[w] = append(first[w], send{fn, step})
				} else {
					rest[w] = append(rest[w], send{fn, step})
				}
			}
		}
	}
	release := make(chan struct{})
	var firstDone sync.WaitGroup
	start := time.Now()
	for w := 0; w < faultWorkers; w++ {
		wg.Add(1)
		firstDone.Add(1)
		go func() {
			defer wg.Done()
			dead := map[int]bool{}
			do := func(sends []send) {
				for _, sd := range sends {
					if killed.Load() || dead[sd.fn] {
						continue
					}
					method := http.MethodPut
					if sd.step == 0 {
						method = http.MethodPost
					}
					code, err := sendDeploy(client, d, method, faultSpec(img, sd.fn, sd.step))
					a := deployAttempt{fn: sd.fn, step: sd.step, status: code, err: err}
					mu.Lock()
					attempts = append(attempts, a)
					mu.Unlock()
					if !a.acked() {
						dead[sd.fn] = true
						continue
					}
					if acked.Add(1) >= int64(killAfter) {
						killOnce.Do(func() { close(killNow) })
					}
				}
			}
			do(first[w])
			firstDone.Done()
			<-release
			do(rest[w])
		}()
	}
	firstDone.Wait()
	settled := time.Now()
	_ = poll(faultSettle, 50*time.Millisecond, func() error {
		cs, err := d.docker.ContainerList(context.Background(), containerListAll(labelInstance+"="+d.instance))
		if err != nil || len(cs) < min(nFns, faultWorkers)/4 {
			return fmt.Errorf("%d containers", len(cs))
		}
		return nil
	})
	t.Logf("first %d creates acknowledged in %s; released the rest after %s", min(nFns, faultWorkers),
		settled.Sub(start).Round(time.Millisecond), time.Since(settled).Round(time.Millisecond))
	close(release)
	allSent := make(chan struct{})
	go func() { wg.Wait(); close(allSent) }()
	select {
	case <-killNow:
	case <-allSent:
	}
	killed.Store(true)
	d.Kill()
	killedAt := time.Now()
	select {
	case <-allSent:
	case <-time.After(60 * time.Second):
		t.Fatal("deploy workers still busy 60s after the kill")
	}

	// Tally per function: the last acknowledged step, and the step that
	// failed in transit after it (the daemon may have committed it).
	lastAck := make([]int, nFns)
	inFlight := make([]int, nFns)
	for i := range lastAck {
		lastAck[i], inFlight[i] = -1, -1
	}
	var nAcked, nInFlight, nRefused, nHTTPErr int
	for _, a := range attempts {
		switch {
		case a.acked():
			nAcked++
			lastAck[a.fn] = max(lastAck[a.fn], a.step)
		case a.refused():
			nRefused++ // never reached the daemon
		case a.err != nil:
			nInFlight++
			inFlight[a.fn] = a.step
		default:
			nHTTPErr++
			t.Errorf("deploy %s step %d answered %d before the kill", faultName(a.fn), a.step, a.status)
		}
	}
	t.Logf("%d functions × %d steps: %d sent in %s, %d acknowledged, %d failed in flight, %d refused, %d not sent; SIGKILL after %d acks",
		nFns, nSteps, len(attempts), killedAt.Sub(start).Round(time.Millisecond), nAcked, nInFlight, nRefused,
		nFns*nSteps-len(attempts), killAfter)
	if cs, err := d.docker.ContainerList(context.Background(), containerListAll(labelInstance+"="+d.instance)); err == nil {
		t.Logf("containers of the instance at the kill: %d", len(cs))
	}

	// The file the killed daemon left behind.
	checkStateFile(t, "after SIGKILL", dbPath)

	d.start()
	restartedAt := time.Now()
	list, err := d.listFunctions("")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, f := range list {
		gen, err := strconv.Atoi(f.EnvVars[faultGenEnv])
		if err != nil {
			t.Errorf("function %s has %s=%q", f.Name, faultGenEnv, f.EnvVars[faultGenEnv])
			continue
		}
		stored[f.Name] = gen
	}
	applied, lost := 0, 0
	for fn := 0; fn < nFns; fn++ {
		name := faultName(fn)
		gen, ok := stored[name]
		switch {
		case lastAck[fn] < 0 && inFlight[fn] < 0:
			if ok {
				t.Errorf("%s was never acknowledged nor in flight, but is stored with %s=%d", name, faultGenEnv, gen)
			}
		case !ok && lastAck[fn] >= 0:
			t.Errorf("%s: step %d was acknowledged, but the function is gone after the restart", name, lastAck[fn])
		case !ok:
			lost++ // its create was in flight and not committed
		case gen == inFlight[fn]:
			applied++
		case gen == lastAck[fn]:
			if inFlight[fn] >= 0 {
				lost++
			}
		default:
			t.Errorf("%s is stored with %s=%d; acknowledged up to %d, in flight %d", name, faultGenEnv, gen, lastAck[fn], inFlight[fn])
		}
		delete(stored, name)
	}
	for name := range stored {
		t.Errorf("function %s is stored but was never deployed", name)
	}
	t.Logf("deploys that failed in flight: %d were applied, %d were not", applied, lost)

	want := map[string]fnWant{}
	for _, f := range list {
		want[f.Name] = fnWant{gen: f.EnvVars[faultGenEnv], replicas: 1}
	}
	err = poll(faultConverge, time.Second, func() error { return d.convergedTo(want) })
	if err != nil {
		t.Fatalf("%d functions did not converge within %s after the restart: %v", len(want), faultConverge, err)
	}
	t.Logf("restart→%d functions each with one ready replica of its stored spec: %s (kill→restart healthy %s)",
		len(want), time.Since(restartedAt).Round(time.Millisecond), restartedAt.Sub(killedAt).Round(time.Millisecond))

	// Delete everything through the API: the daemon removes the
	// containers and networks of 30 functions with its workers in
	// parallel, much faster than the harness's cleanup would one by one.
	deletedAt := time.Now()
	c := d.client()
	for name := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.DeleteFunction(ctx, name, defaultNamespace)
		cancel()
		if err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
	}
	if err := poll(faultConverge, time.Second, func() error { return d.convergedTo(nil) }); err != nil {
		t.Fatalf("after deleting every function: %v", err)
	}
	t.Logf("deleted %d functions; their containers and networks were gone %s later",
		len(want), time.Since(deletedAt).Round(time.Millisecond))

	d.Stop()
	checkStateFile(t, "after a graceful stop", dbPath)
}

// fnWant is the state a function must converge to: its replicas, each
// running with this GEN in its environment.
type fnWant struct {
	gen      string
	replicas int
}

// convergedTo returns nil when exactly the functions in want exist, each
// reported with its replicas all available, each with exactly that many
// running containers whose GEN is the wanted one, and no container or
// network of the instance belongs to anything else.
func (d *daemon) convergedTo(want map[string]fnWant) error {
	list, err := d.listFunctions("")
	if err != nil {
		return err
	}
	if len(list) != len(want) {
		return fmt.Errorf("%d functions listed, want %d", len(list), len(want))
	}
	notReady := 0
	for _, f := range list {
		w, ok := want[f.Name]
		if !ok {
			return fmt.Errorf("unexpected function %s", f.Name)
		}
		if f.Replicas != uint64(w.replicas) || f.AvailableReplicas != uint64(w.replicas) {
			notReady++
		}
	}
	if notReady > 0 {
		return fmt.Errorf("%d of %d functions not at their replicas, all available", notReady, len(want))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelInstance+"="+d.instance))
	cs, err := d.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	byFn := map[string][]container.Summary{}
	for _, c := range cs {
		byFn[c.Labels[labelFunction]] = append(byFn[c.Labels[labelFunction]], c)
	}
	for name, w := range want {
		got := byFn[name]
		if len(got) != w.replicas {
			return fmt.Errorf("%s: containers %s, want %d running", name, describeContainers(got), w.replicas)
		}
		for _, c := range got {
			if c.State != "running" {
				return fmt.Errorf("%s: containers %s, want %d running", name, describeContainers(got), w.replicas)
			}
			in, err := d.docker.ContainerInspect(ctx, c.ID)
			if err != nil {
				return err
			}
			if g := envList(in.Config.Env)[faultGenEnv]; g != w.gen {
				return fmt.Errorf("%s: container %s runs %s=%s, the stored spec has %s", name, short(c.ID), faultGenEnv, g, w.gen)
			}
		}
		delete(byFn, name)
	}
	if len(byFn) > 0 {
		var left []string
		for name, got := range byFn {
			left = append(left, name+" "+describeContainers(got))
		}
		sort.Strings(left)
		return fmt.Errorf("containers of functions that do not exist: %v", left)
	}
	nws, err := d.docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, n := range nws {
		if _, ok := want[n.Labels[labelFunction]]; !ok {
			return fmt.Errorf("network %s of a function that does not exist", n.Name)
		}
	}
	if len(nws) != len(want) {
		return fmt.Errorf("%d networks for %d functions", len(nws), len(want))
	}
	return nil
}

// checkStateFile checks the state file of a daemon that is not running, as
// the next start would read it (see stateFileError).
func checkStateFile(t *testing.T, when, path string) {
	t.Helper()
	size, err := stateFileError(path)
	if err != nil {
		t.Fatalf("state file %s: %v", when, err)
	}
	t.Logf("state file %s: consistent (%d bytes)", when, size)
}

// stateFileError runs bbolt's page-level check on a read-only open (which
// cannot change the file), then store.Open and the store's record-level
// Check, and returns the file's size.
func stateFileError(path string) (int64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("read-only open: %w", err)
	}
	var errs []error
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err = errors.Join(append(errs, err)...); err != nil {
		return 0, fmt.Errorf("bbolt check: %w", err)
	}
	s, err := store.Open(path)
	if err != nil {
		return 0, fmt.Errorf("store.Open: %w", err)
	}
	err = s.Check()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("store check: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
