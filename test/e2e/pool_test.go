package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

const (
	fnIsolated = "fn-isolated"
	labelPool  = "io.dockerfaas.pool"
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
			start := time.Now()
			retried := 0
			for i := range tc.calls {
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
			}
			t.Logf("%d sequential calls in %s, each in a container of its own (%d retried after a 429)", tc.calls, time.Since(start).Round(time.Millisecond), retried)

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

			// The pool is visible on /debug/reconcile and in the metrics.
			eventually(t, 10*time.Second, pollInterval, func() error {
				res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
				if err != nil {
					return err
				}
				var page struct {
					Pools []struct {
						Key    string `json:"key"`
						Size   int    `json:"size"`
						Served uint64 `json:"served"`
						Busy   uint64 `json:"busy"`
					} `json:"pools"`
				}
				if err := json.Unmarshal(res.Body, &page); err != nil {
					return err
				}
				for _, p := range page.Pools {
					if p.Key == defaultNamespace+"/"+fn {
						if p.Size != 2 || p.Served < uint64(tc.calls+ok) || p.Busy != uint64(busy+retried) {
							return fmt.Errorf("pool on /debug/reconcile: %+v, want size 2, served ≥ %d, busy %d", p, tc.calls+ok, busy+retried)
						}
						return nil
					}
				}
				return fmt.Errorf("no pool of %s on /debug/reconcile: %s", fn, res.Body)
			})
			res, err := d.request(http.MethodGet, "/metrics", nil, nil, authBasic)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []string{
				fmt.Sprintf(`dockerfaasd_pool_size{function_name="%s.%s"} 2`, fn, defaultNamespace),
				fmt.Sprintf(`dockerfaasd_pool_busy_total{function_name="%s.%s"} %d`, fn, defaultNamespace, busy+retried),
			} {
				if !strings.Contains(string(res.Body), m) {
					t.Errorf("metrics lack %q", m)
				}
			}

			if err := d.client().DeleteFunction(t.Context(), fn, defaultNamespace); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, pollInterval, func() error {
				ids, err := d.pooledIDs(fn)
				if err != nil || len(ids) > 0 {
					return fmt.Errorf("pooled containers left: %v %v", ids, err)
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
