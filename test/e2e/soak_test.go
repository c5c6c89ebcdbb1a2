package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Bounds of TestSoak. SOAK_DURATION sets how long the mixed workload runs
// (default 10m); the daemon is SIGKILLed and restarted every SOAK_KILL_EVERY
// (default 60s, ±50%).
const (
	soakFunctions   = 8
	soakMaxReplicas = 3
	soakInvokers    = 4
	soakMaxOps      = 100000
	soakConverge    = 5 * time.Minute
)

// soakFn is what the test believes is stored for one function.
type soakFn struct {
	exists   bool
	gen      int
	replicas int
}

func (f soakFn) String() string {
	if !f.exists {
		return "absent"
	}
	return fmt.Sprintf("GEN=%d replicas=%d", f.gen, f.replicas)
}

// soakModel is the test's idea of desired state. A write that failed in
// transit leaves its function uncertain (before or after) until the next
// sync reads it back.
type soakModel struct {
	fns       map[string]soakFn
	uncertain map[string][2]soakFn // name → {before, after}
}

// envDuration reads a duration from the environment, or def.
func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", key, v)
	}
	return d
}

// TestSoak runs a mixed workload for SOAK_DURATION: one driver creates,
// updates, scales and deletes functions one request at a time, four
// goroutines keep invoking them, and the daemon is SIGKILLed and restarted
// every minute or so. After every kill the state file must pass the
// consistency checks, and every acknowledged write must be what the daemon
// reads back (a write that failed in transit may or may not have been
// applied). At the end everything must converge: each function with its
// replicas of its last spec, nothing left of deleted ones. Runs with SOAK=1
// only (make soak).
func TestSoak(t *testing.T) {
	if os.Getenv("SOAK") != "1" {
		t.Skip("a long soak; run it with SOAK=1 (make soak)")
	}
	duration := envDuration(t, "SOAK_DURATION", 10*time.Minute)
	killEvery := envDuration(t, "SOAK_KILL_EVERY", time.Minute)
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	dbPath := filepath.Join(d.stateDir, "state.db")
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()

	names := make([]string, soakFunctions)
	for i := range names {
		names[i] = fmt.Sprintf("soak-%d", i)
	}

	// The killer: SIGKILL, check the file, start again.
	var (
		killMu  sync.Mutex // held while the daemon is down on purpose
		kills   int
		downFor time.Duration
		errMu   sync.Mutex
		bgErrs  []error
	)
	report := func(err error) {
		errMu.Lock()
		bgErrs = append(bgErrs, err)
		errMu.Unlock()
	}
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for i := 0; i < 10000; i++ {
			wait := killEvery/2 + time.Duration(rand.Int64N(int64(killEvery)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			killMu.Lock()
			downAt := time.Now()
			d.Kill()
			if _, err := stateFileError(dbPath); err != nil {
				report(fmt.Errorf("state file after kill %d: %w", kills+1, err))
			}
			err := d.launch()
			kills++
			downFor += time.Since(downAt)
			killMu.Unlock()
			if err != nil {
				report(fmt.Errorf("restart after kill %d: %w", kills, err))
				return
			}
		}
	}()

	// The invokers: measured, never asserted (kills and deletes fail calls).
	var invMu sync.Mutex
	invokes := map[string]int{}
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < soakInvokers; w++ {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for i := 0; i < 1000000 && ctx.Err() == nil; i++ {
				s := send(ctx, client, d, http.MethodGet, "/function/"+names[rand.IntN(len(names))], nil)
				key := fmt.Sprint(s.status)
				switch {
				case ctx.Err() != nil:
					return
				case s.refused():
					key = "refused"
				case s.err != nil:
					key = "transport error"
				}
				invMu.Lock()
				invokes[key]++
				invMu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	// The driver.
	m := &soakModel{fns: map[string]soakFn{}, uncertain: map[string][2]soakFn{}}
	gen := 0
	ops := map[string]int{}
	start := time.Now()
	for i := 0; i < soakMaxOps && ctx.Err() == nil; i++ {
		name := names[rand.IntN(len(names))]
		if _, ok := m.uncertain[name]; ok {
			d.soakSync(t, m, name)
			continue
		}
		cur := m.fns[name]
		next := cur
		var op, method, path string
		var body any
		switch r := rand.IntN(10); {
		case !cur.exists:
			op = "create"
			gen++
			next = soakFn{exists: true, gen: gen, replicas: 1}
			method, path, body = http.MethodPost, "/system/functions", soakSpec(name, img, gen)
		case r < 4:
			op = "update"
			gen++
			next.gen = gen
			method, path, body = http.MethodPut, "/system/functions", soakSpec(name, img, gen)
		case r < 7:
			op = "scale"
			next.replicas = 1 + rand.IntN(soakMaxReplicas)
			method, path, body = http.MethodPost, "/system/scale-function/"+name,
				types.ScaleServiceRequest{ServiceName: name, Replicas: uint64(next.replicas)}
		case r < 8:
			op = "delete"
			next = soakFn{}
			method, path, body = http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: name}
		default:
			ops["invoke"]++
			_, _ = d.request(http.MethodGet, "/function/"+name, nil, nil, authBasic)
			continue
		}
		b, _ := json.Marshal(body)
		res, err := d.request(method, path, b, map[string]string{"Content-Type": "application/json"}, authBasic)
		switch {
		case err == nil && res.Status/100 == 2:
			ops[op]++
			m.fns[name] = next
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			ops[op+" refused"]++
			d.soakWaitUp(t, &killMu)
		case err != nil:
			ops[op+" failed in flight"]++
			m.uncertain[name] = [2]soakFn{cur, next}
			d.soakWaitUp(t, &killMu)
		default:
			t.Errorf("%s %s for %s (believed %s): %s", method, path, name, cur, res)
		}
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
	}
	cancel()
	bg.Wait()
	for _, err := range bgErrs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if !d.running() {
		d.start()
	}
	t.Logf("soak ran %s: %d kills (down %s in all), writes %v, invocations %v",
		time.Since(start).Round(time.Second), kills, downFor.Round(time.Millisecond), ops, invokes)

	// Every function reads back as believed; then all converge.
	for _, name := range names {
		d.soakSync(t, m, name)
	}
	want := map[string]fnWant{}
	for name, f := range m.fns {
		if f.exists {
			want[name] = fnWant{gen: strconv.Itoa(f.gen), replicas: f.replicas}
		}
	}
	convergeAt := time.Now()
	if err := poll(soakConverge, time.Second, func() error { return d.convergedTo(want) }); err != nil {
		t.Fatalf("%d functions did not converge within %s: %v", len(want), soakConverge, err)
	}
	t.Logf("converged in %s: %v", time.Since(convergeAt).Round(time.Millisecond), m.fns)
	for name, w := range want {
		res := d.invoke(http.MethodGet, "/function/"+name, nil, nil)
		if r, err := decodeEcho(res); err != nil || r.Env[faultGenEnv] != w.gen {
			t.Errorf("invoke %s after convergence: %s, want GEN=%s", name, res, w.gen)
		}
	}
	d.Stop()
	checkStateFile(t, "at the end of the soak", dbPath)
}

// soakSpec is fn-echo with GEN=gen.
func soakSpec(name, img string, gen int) types.FunctionDeployment {
	return simpleSpec(name, img, map[string]string{faultGenEnv: strconv.Itoa(gen)}, nil)
}

// soakWaitUp waits until the killer has restarted the daemon.
func (d *daemon) soakWaitUp(t *testing.T, killMu *sync.Mutex) {
	t.Helper()
	killMu.Lock() // a restart in progress finishes first
	killMu.Unlock()
	eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		res, err := d.request(http.MethodGet, "/healthz", nil, nil, authNone)
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", res)
		}
		return nil
	})
}

// soakSync reads name back from the daemon: it must be what the model
// says, or, after a write that failed in transit, the state before or
// after that write. The model then holds what was read.
func (d *daemon) soakSync(t *testing.T, m *soakModel, name string) {
	t.Helper()
	var got soakFn
	eventually(t, 60*time.Second, 200*time.Millisecond, func() error {
		fs, code, err := d.getFunction(name, defaultNamespace)
		switch {
		case code == http.StatusNotFound:
			got = soakFn{}
			return nil
		case err != nil:
			return err
		}
		g, err := strconv.Atoi(fs.EnvVars[faultGenEnv])
		if err != nil {
			return fmt.Errorf("%s has %s=%q", name, faultGenEnv, fs.EnvVars[faultGenEnv])
		}
		got = soakFn{exists: true, gen: g, replicas: int(fs.Replicas)}
		return nil
	})
	if pair, ok := m.uncertain[name]; ok {
		if got != pair[0] && got != pair[1] {
			t.Errorf("%s reads back %s; the write in flight at a kill would make it %s, before it was %s", name, got, pair[1], pair[0])
		}
		delete(m.uncertain, name)
	} else if got != m.fns[name] {
		t.Errorf("%s reads back %s, but every write to it was acknowledged and it should be %s", name, got, m.fns[name])
	}
	m.fns[name] = got
}
