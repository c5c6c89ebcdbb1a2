package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/openfaas/faas-provider/types"
)

const (
	fnIsolated = "fn-isolated"
	labelPool  = "io.dockerfaas.pool"
	// labelPoolRun is the run label of a job or pooled container: its
	// control socket is HANDOFF_DIR/<run>.sock.
	labelPoolRun = "io.dockerfaas.run"
)

// isolatedReply is fn-isolated's answer.
type isolatedReply struct {
	Hostname   string   `json:"hostname"`
	PID        int      `json:"pid"`
	Count      int64    `json:"count"`
	Interfaces []string `json:"interfaces"`
	Protocol   string   `json:"protocol"`
	Body       string   `json:"body"`
}

// deployIsolated deploys fn-isolated as name with per-request isolation
// over protocol, keeping size containers ready.
func (d *daemon) deployIsolated(name, protocol string, size int) {
	d.t.Helper()
	ann := map[string]string{
		"io.dockerfaas.isolation": "per-request",
		"io.dockerfaas.protocol":  protocol,
		"io.dockerfaas.pool.size": fmt.Sprint(size),
	}
	labels := map[string]string{}
	d.deploy(types.FunctionDeployment{Service: name, Image: fnImage(d.t, fnIsolated), Labels: &labels, Annotations: &ann})
	d.waitReady(name, defaultNamespace, 1)
}

// pooledIDs returns the IDs of fn's pooled containers that are running.
func (d *daemon) pooledIDs(fn string) ([]string, error) {
	cs, err := d.jobContainers()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cs {
		if c.State == "running" && c.Labels[labelPool] != "" && c.Labels[labelJob] == defaultNamespace+"/"+fn {
			ids = append(ids, c.ID)
		}
	}
	return ids, nil
}

// pooledAll returns fn's pooled containers in any state.
func (d *daemon) pooledAll(fn string) ([]container.Summary, error) {
	cs, err := d.jobContainers()
	if err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range cs {
		if c.Labels[labelPool] != "" && c.Labels[labelJob] == defaultNamespace+"/"+fn {
			out = append(out, c)
		}
	}
	return out, nil
}

// handoffSockets returns the run IDs of the control sockets in the
// daemon's HANDOFF_DIR (its default, STATE_DIR/handoff), sorted.
func (d *daemon) handoffSockets() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(d.stateDir, "handoff", "*.sock"))
	if err != nil {
		return nil, err
	}
	runs := make([]string, 0, len(files))
	for _, f := range files {
		runs = append(runs, strings.TrimSuffix(filepath.Base(f), ".sock"))
	}
	slices.Sort(runs)
	return runs, nil
}

// poolStat is one pool on /debug/reconcile?format=json.
type poolStat struct {
	Key              string  `json:"key"`
	Size             int     `json:"size"`
	Ready            int     `json:"ready"`
	Starting         int     `json:"starting"`
	Waiting          int     `json:"waiting"`
	Served           uint64  `json:"served"`
	Waited           uint64  `json:"waited"`
	Busy             uint64  `json:"busy"`
	Refills          uint64  `json:"refills"`
	RefillsPerSecond float64 `json:"refillsPerSecond"`
}

// poolStat reads fn's pool from /debug/reconcile.
func (d *daemon) poolStat(fn string) (poolStat, error) {
	res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
	if err != nil {
		return poolStat{}, err
	}
	var page struct {
		Pools []poolStat `json:"pools"`
	}
	if err := json.Unmarshal(res.Body, &page); err != nil {
		return poolStat{}, fmt.Errorf("/debug/reconcile: %w: %s", err, res)
	}
	for _, p := range page.Pools {
		if p.Key == defaultNamespace+"/"+fn {
			return p, nil
		}
	}
	return poolStat{}, fmt.Errorf("no pool of %s on /debug/reconcile: %s", fn, res)
}

// waitPoolFull waits until fn's pool has all its containers ready, none
// starting, and returns them by short ID (the hostname each answers with).
func (d *daemon) waitPoolFull(fn string) map[string]container.Summary {
	d.t.Helper()
	var ready map[string]container.Summary
	eventually(d.t, 30*time.Second, pollInterval, func() error {
		st, err := d.poolStat(fn)
		if err != nil {
			return err
		}
		if st.Ready != st.Size || st.Starting != 0 {
			return fmt.Errorf("pool %+v not full", st)
		}
		cs, err := d.pooledAll(fn)
		if err != nil {
			return err
		}
		ready = map[string]container.Summary{}
		for _, c := range cs {
			ready[short(c.ID)] = c
		}
		if len(ready) != st.Size {
			return fmt.Errorf("%d pooled containers, want the pool's %d", len(ready), st.Size)
		}
		return nil
	})
	return ready
}

// waitServedGone waits until no job container of the daemon, in any state, has
// one of the short IDs in hosts.
func (d *daemon) waitServedGone(hosts map[string]bool, timeout time.Duration) {
	d.t.Helper()
	eventually(d.t, timeout, pollInterval, func() error {
		cs, err := d.jobContainers()
		if err != nil {
			return err
		}
		var left []string
		for _, c := range cs {
			if hosts[short(c.ID)] {
				left = append(left, short(c.ID)+" "+c.State)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("containers that served a call still exist: %v", left)
		}
		return nil
	})
}

// waitPool waits until fn has n pooled containers running, none of them
// one of not, and returns their IDs.
func (d *daemon) waitPool(fn string, n int, not []string) []string {
	d.t.Helper()
	var ids []string
	eventually(d.t, 60*time.Second, pollInterval, func() (err error) {
		if ids, err = d.pooledIDs(fn); err != nil {
			return err
		}
		if len(ids) != n {
			return fmt.Errorf("%d pooled containers of %s running, want %d", len(ids), fn, n)
		}
		for _, id := range ids {
			if slices.Contains(not, id) {
				return fmt.Errorf("container %.12s of the earlier daemon is still pooled", id)
			}
		}
		return nil
	})
	return ids
}

// callIsolated calls fn and decodes its answer; a 429 is returned as such
// (with the Retry-After header), anything else but 200 fails the test.
func (d *daemon) callIsolated(fn, path, body string) (isolatedReply, httpResult) {
	d.t.Helper()
	res, err := d.request(http.MethodPost, "/function/"+fn+path, []byte(body), nil, authBasic)
	if err != nil {
		d.t.Fatalf("call %s: %v", fn, err)
	}
	var got isolatedReply
	if res.Status == http.StatusTooManyRequests {
		return got, res
	}
	if res.Status != http.StatusOK {
		d.t.Fatalf("call %s: %s", fn, res)
	}
	if err := json.Unmarshal(res.Body, &got); err != nil {
		d.t.Fatalf("call %s: %v: %s", fn, err, res.Body)
	}
	return got, res
}

// TestPerRequestIsolation: with io.dockerfaas.isolation: per-request, for
// both protocols, every call is served by a container that served no
// other (its hostname is new, its process's request counter is 1); the
// socket protocol's container has no network but loopback; a burst larger
// than the pool gets fresh containers or 429 with Retry-After, never a
// used one; kill -9 of the daemon leaves no pooled container of the dead
// daemon in use after the restart; the pool is on /debug/reconcile and in
// the metrics; deleting the function leaves nothing behind.
func TestPerRequestIsolation(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, withEnv("READY_WAIT", "3s"))
	for _, tc := range []struct {
		protocol string
		calls    int
	}{
		{"http", 200},
		{"socket", 100},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			defer d.reportTo(t)()
			fn := "iso-" + tc.protocol
			d.deployIsolated(fn, tc.protocol, 2)
			d.waitPool(fn, 2, nil)
			if nets, err := d.fnNetworks(fn); err != nil || len(nets) != 1 {
				t.Fatalf("networks of %s: %d %v, want its one", fn, len(nets), err)
			}
			// Each socket-protocol container has its control socket in
			// the state dir (HANDOFF_DIR's default), named by its run.
			if tc.protocol == "socket" {
				eventually(t, 30*time.Second, pollInterval, func() error {
					cs, err := d.pooledAll(fn)
					if err != nil {
						return err
					}
					socks, err := d.handoffSockets()
					if err != nil {
						return err
					}
					for _, c := range cs {
						if !slices.Contains(socks, c.Labels[labelPoolRun]) {
							return fmt.Errorf("no control socket of pooled container %s (run %s) in %v", short(c.ID), c.Labels[labelPoolRun], socks)
						}
					}
					return nil
				})
			}

			// Without credentials: 401, and no container is taken.
			if res, err := d.request(http.MethodPost, "/function/"+fn, []byte("x"), nil, authNone); err != nil || res.Status != http.StatusUnauthorized {
				t.Fatalf("call of %s without credentials: %v %v, want 401", fn, res, err)
			}
			if st, err := d.poolStat(fn); err != nil || st.Served != 0 || st.Waited != 0 {
				t.Fatalf("pool after a call without credentials: %+v %v; want nothing served, nobody waiting", st, err)
			}

			hosts := map[string]bool{}
			check := func(i int, got isolatedReply) {
				t.Helper()
				if hosts[got.Hostname] {
					t.Fatalf("call %d: container %s served an earlier call", i, got.Hostname)
				}
				hosts[got.Hostname] = true
				if got.Count != 1 || got.Protocol != tc.protocol {
					t.Fatalf("call %d: %+v, want the first request of a %s container", i, got, tc.protocol)
				}
				if tc.protocol == "socket" && !slices.Equal(got.Interfaces, []string{"lo"}) {
					t.Fatalf("call %d: interfaces %v, want loopback only", i, got.Interfaces)
				}
			}
			// The first calls each wait for a full pool, so the container
			// that serves one is known beforehand: it is removed (gone
			// from `docker ps -a`) right after the call, its control
			// socket with it.
			const watched = 5
			start := time.Now()
			retried := 0
			for i := range tc.calls {
				var ready map[string]container.Summary
				if i < watched {
					ready = d.waitPoolFull(fn)
				}
				got, res := d.callIsolated(fn, "/", fmt.Sprint(i))
				// A loaded machine may start containers slower than
				// READY_WAIT: the call is then refused (never served by
				// a used container), and retried as a client would.
				for try := 0; res.Status == http.StatusTooManyRequests && try < 5; try++ {
					retried++
					time.Sleep(time.Second)
					got, res = d.callIsolated(fn, "/", fmt.Sprint(i))
				}
				if res.Status != http.StatusOK {
					t.Fatalf("sequential call %d: %s", i, res)
				}
				if got.Body != fmt.Sprint(i) {
					t.Fatalf("call %d: body %q", i, got.Body)
				}
				check(i, got)
				if i < watched {
					c, ok := ready[got.Hostname]
					if !ok {
						t.Fatalf("call %d: served by %s, none of the ready containers %v", i, got.Hostname, slices.Collect(maps.Keys(ready)))
					}
					took := time.Now()
					d.waitServedGone(map[string]bool{got.Hostname: true}, 15*time.Second)
					sock := filepath.Join(d.stateDir, "handoff", c.Labels[labelPoolRun]+".sock")
					if _, err := os.Stat(sock); !os.IsNotExist(err) {
						t.Errorf("call %d: control socket %s of the removed container: %v, want none", i, sock, err)
					}
					t.Logf("call %d: container %s removed %s after its answer", i, got.Hostname, time.Since(took).Round(time.Millisecond))
				}
			}
			t.Logf("%d sequential calls in %s, each in a container of its own (%d retried after a 429)", tc.calls, time.Since(start).Round(time.Millisecond), retried)
			// None of the containers that served a call is left, in any
			// state, and no control socket outlives its container.
			d.waitServedGone(hosts, 30*time.Second)
			eventually(t, 30*time.Second, pollInterval, func() error {
				cs, err := d.pooledAll(fn)
				if err != nil {
					return err
				}
				var runs []string
				if tc.protocol == "socket" {
					for _, c := range cs {
						runs = append(runs, c.Labels[labelPoolRun])
					}
				}
				slices.Sort(runs)
				socks, err := d.handoffSockets()
				if err != nil {
					return err
				}
				if !slices.Equal(socks, runs) {
					return fmt.Errorf("control sockets %v, want those of the pooled containers %v", socks, runs)
				}
				return nil
			})

			// The containers are gone, their lines are not: each call's
			// "request 1 PROTOCOL POST /" line is in the function's logs,
			// from the container that served it.
			eventually(t, 30*time.Second, pollInterval, func() error {
				lines := map[string]bool{}
				for _, m := range d.sdkLogs(t, d.client(), fn, 0, nil) {
					if strings.Contains(m.Text, "request 1 "+tc.protocol+" POST /") {
						lines[m.Instance] = true
					}
				}
				for h := range hosts {
					if !lines[h] {
						return fmt.Errorf("%d request lines in the logs of %s; none from container %s", len(lines), fn, h)
					}
				}
				return nil
			})

			// A burst of 12 slow calls against a pool of 2.
			var mu sync.Mutex
			var ok, busy int
			var wg sync.WaitGroup
			for i := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, res := d.callIsolated(fn, "/sleep?ms=300", "burst")
					mu.Lock()
					defer mu.Unlock()
					if res.Status == http.StatusTooManyRequests {
						busy++
						if res.Header.Get("Retry-After") == "" {
							t.Errorf("burst call %d: 429 without Retry-After", i)
						}
						return
					}
					ok++
					check(1000+i, got)
				}()
			}
			wg.Wait()
			t.Logf("burst of 12: %d served by fresh containers, %d got 429", ok, busy)
			if ok == 0 {
				t.Errorf("burst: no call was served")
			}

			// The pool is visible on /debug/reconcile and in the metrics,
			// read once it is full again: every 429 counted busy and
			// waited, every container served made ready first, and the
			// burst's refills within the last minute's rate.
			var st poolStat
			eventually(t, 30*time.Second, pollInterval, func() (err error) {
				if st, err = d.poolStat(fn); err != nil {
					return err
				}
				if st.Ready != 2 || st.Starting != 0 || st.Waiting != 0 {
					return fmt.Errorf("pool %+v not settled", st)
				}
				return nil
			})
			if st.Size != 2 || st.Served < uint64(tc.calls+ok) || st.Busy != uint64(busy+retried) {
				t.Errorf("pool on /debug/reconcile: %+v, want size 2, served ≥ %d, busy %d", st, tc.calls+ok, busy+retried)
			}
			if st.Waited == 0 || st.Waited < st.Busy {
				t.Errorf("pool on /debug/reconcile: %+v, want calls waited (the burst outran the pool), at least the busy ones", st)
			}
			if st.Refills < st.Served+uint64(st.Ready) {
				t.Errorf("pool on /debug/reconcile: %+v, want refills ≥ served + ready", st)
			}
			// Made ready in the last minute (rate × 60 s): at least the
			// burst's calls beyond the 2 ready before it and the 2 ready
			// now, at most all refills.
			if n := int(math.Round(st.RefillsPerSecond * 60)); n < ok || uint64(n) > st.Refills {
				t.Errorf("pool on /debug/reconcile: %+v; %d refills in the last minute, want from the burst's %d to all %d", st, n, ok, st.Refills)
			}
			series := func(name string) string {
				return fmt.Sprintf(`%s{function_name="%s.%s"}`, name, fn, defaultNamespace)
			}
			for _, m := range []struct {
				name string
				want float64
			}{
				{"dockerfaasd_pool_size", 2},
				{"dockerfaasd_pool_ready", 2},
				{"dockerfaasd_pool_busy_total", float64(busy + retried)},
				{"dockerfaasd_pool_served_total", float64(st.Served)},
				{"dockerfaasd_pool_waited_total", float64(st.Waited)},
				{"dockerfaasd_pool_refills_total", float64(st.Refills)},
			} {
				if got := metricValue(t, d, series(m.name)); math.Abs(got-m.want) > 1e-9 {
					t.Errorf("metric %s = %v, want %v", series(m.name), got, m.want)
				}
			}
			// The rate is over the minute before each read, and /metrics is
			// read after /debug/reconcile: a refill of a minute ago may have
			// left the window in between. The same bounds hold for both.
			rate := series("dockerfaasd_pool_refills_per_second")
			if got := metricValue(t, d, rate); math.Abs(got-st.RefillsPerSecond) > 2.0/60+1e-9 {
				t.Errorf("metric %s = %v, want %v give or take two refills (the window moved between the reads)", rate, got, st.RefillsPerSecond)
			} else if n := int(math.Round(got * 60)); n < ok || uint64(n) > st.Refills {
				t.Errorf("metric %s = %v: %d refills in the last minute, want from the burst's %d to all %d", rate, got, n, ok, st.Refills)
			}

			if err := d.client().DeleteFunction(t.Context(), fn, defaultNamespace); err != nil {
				t.Fatal(err)
			}
			// Nothing is left: no pooled container in any state, no
			// network, no control socket (the subtests run one at a time,
			// so any socket left would be this function's).
			eventually(t, 30*time.Second, pollInterval, func() error {
				cs, err := d.pooledAll(fn)
				if err != nil || len(cs) > 0 {
					return fmt.Errorf("pooled containers left: %d %v", len(cs), err)
				}
				nets, err := d.networksLeft(t, fn)
				if err != nil || len(nets) > 0 {
					return fmt.Errorf("networks left: %d %v", len(nets), err)
				}
				socks, err := d.handoffSockets()
				if err != nil || len(socks) > 0 {
					return fmt.Errorf("control sockets left: %v %v", socks, err)
				}
				return nil
			})
		})
	}

	t.Run("kill -9", func(t *testing.T) {
		defer d.reportTo(t)()
		d.deployIsolated("iso-kill", "socket", 2)
		d.deployIsolated("iso-kill-http", "http", 1)
		before := append(d.waitPool("iso-kill", 2, nil), d.waitPool("iso-kill-http", 1, nil)...)
		d.Kill()
		d.Restart()
		d.waitPool("iso-kill", 2, before)
		d.waitPool("iso-kill-http", 1, before)
		for _, fn := range []string{"iso-kill", "iso-kill-http"} {
			got, res := d.callIsolated(fn, "/", "after")
			if res.Status != http.StatusOK || got.Count != 1 {
				t.Errorf("%s after the restart: %s %+v", fn, res, got)
			}
		}
		for _, fn := range []string{"iso-kill", "iso-kill-http"} {
			if err := d.client().DeleteFunction(t.Context(), fn, defaultNamespace); err != nil {
				t.Fatal(err)
			}
		}
		d.waitNoJobContainers(30 * time.Second)
	})
}
