package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// crashWindow is how long the crash loop is watched, and maxCrashCreates the
// most container creations allowed in it. With the controller's defaults
// (CrashBackoff 1 s doubling) a replica exiting 300 ms after start is
// replaced at once after its first exit, then after 1 s, 2 s, 4 s …: about
// five creations in 10 s. A controller that replaced it at once every time
// would create one every ~0.4 s, some 25.
const (
	crashWindow     = 10 * time.Second
	maxCrashCreates = 8
)

// TestCrashLoopBacksOffAndNewSpecRecovers deploys a function whose every
// replica exits 300 ms after it starts. The daemon must back off
// exponentially instead of spinning, and say so on /debug/reconcile
// (CrashLoopBackOff, restarts, a retry time to come). A fixed spec must then
// start at once, not after the broken spec's backoff, and the function
// recovers with its restarts reset.
func TestCrashLoopBacksOffAndNewSpecRecovers(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "crashy"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	creates := d.watchCreates(ctx, name)
	deployAt := time.Now()
	d.deploy(simpleSpec(name, img, map[string]string{"EXIT_AFTER": "300ms"}, nil))

	time.Sleep(crashWindow)
	times := creates.since(deployAt)
	var inWindow []time.Duration
	for _, at := range times {
		if at.Sub(deployAt) <= crashWindow {
			inWindow = append(inWindow, at.Sub(deployAt).Round(10*time.Millisecond))
		}
	}
	t.Logf("container creations in the first %s after the deploy: %d, at %v", crashWindow, len(inWindow), inWindow)
	if len(inWindow) > maxCrashCreates {
		t.Errorf("%d container creations in %s, want at most %d: the crash loop is not backed off", len(inWindow), crashWindow, maxCrashCreates)
	}
	if len(inWindow) < 2 {
		t.Errorf("%d container creations in %s, want at least 2: a replica that exits must be replaced", len(inWindow), crashWindow)
	}

	// The status says what is going on. The replica is up for 300 ms of
	// every cycle, so poll until a look falls into the backoff, and one
	// whose retry is far enough away to tell a prompt start from it.
	var backoff reconcileFunction
	var seenAt time.Time
	eventually(t, 60*time.Second, 100*time.Millisecond, func() error {
		v, err := d.reconcileStatus()
		if err != nil {
			return err
		}
		f, ok := v.function(name)
		if !ok {
			return fmt.Errorf("%s not on /debug/reconcile", name)
		}
		if f.Reason != "CrashLoopBackOff" || f.Restarts < 2 || !f.NextRetry.After(v.Now.Add(time.Second)) {
			return fmt.Errorf("status %+v at %s; want reason CrashLoopBackOff, restarts ≥ 2, nextRetry more than 1 s ahead", f, v.Now.Format(time.RFC3339Nano))
		}
		backoff, seenAt = f, v.Now
		return nil
	})
	t.Logf("/debug/reconcile: reason %s, restarts %d, next retry in %s, last result %q",
		backoff.Reason, backoff.Restarts, backoff.NextRetry.Sub(seenAt).Round(time.Millisecond), backoff.LastResult)

	// The fix: the same function without EXIT_AFTER.
	fixAt := time.Now()
	code, err := d.client().Update(ctx, simpleSpec(name, img, map[string]string{"FIXED": "yes"}, nil))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("PUT the fixed spec: %d %v, want 202", code, err)
	}
	d.waitReady(name, defaultNamespace, 1)
	readyAt := time.Now()
	var first time.Time
	eventually(t, 10*time.Second, pollInterval, func() error {
		if after := creates.since(fixAt); len(after) > 0 {
			first = after[0]
			return nil
		}
		return fmt.Errorf("no container created since the fixed spec was PUT")
	})
	t.Logf("fixed spec: first container created %s after the PUT, ready %s after it (the old backoff would have allowed a retry only after %s)",
		first.Sub(fixAt).Round(time.Millisecond), readyAt.Sub(fixAt).Round(time.Millisecond), backoff.NextRetry.Sub(fixAt).Round(time.Millisecond))
	// nextRetry is the earliest the old spec's backoff could have let a
	// replica start (it is capped by the resync period, so the backoff
	// itself ends no sooner). Starting before it proves the new spec did
	// not wait; nextRetry was more than a second away when read.
	if !first.Before(backoff.NextRetry) {
		t.Errorf("the fixed spec's first replica was created at %s, not before the old spec's next retry at %s: a new spec waited out the crash backoff",
			first.Format(time.RFC3339Nano), backoff.NextRetry.Format(time.RFC3339Nano))
	}
	if !strings.Contains(readFile(t, d.logPath), "forgetting the crash backoff") {
		t.Errorf("the daemon log does not say that it dropped the old spec's crash backoff")
	}

	eventually(t, 30*time.Second, pollInterval, func() error {
		v, err := d.reconcileStatus()
		if err != nil {
			return err
		}
		f, _ := v.function(name)
		if f.Restarts != 0 || f.Reason != "" || f.ReadyReplicas != 1 || f.LastResult != "converged" {
			return fmt.Errorf("status %+v, want converged, 1 ready, 0 restarts, no reason", f)
		}
		return nil
	})
	res := d.invoke(http.MethodGet, "/function/"+name, nil, nil)
	if r, err := decodeEcho(res); err != nil || r.Env["FIXED"] != "yes" || r.Env["EXIT_AFTER"] != "" {
		t.Errorf("invoke after the fix: %s (%v)", res, err)
	}
}

// createWatch records when Docker created containers of one function.
type createWatch struct {
	mu    sync.Mutex
	times []time.Time
	err   error
}

// watchCreates follows Docker's container create events for function name
// of this daemon's instance until ctx ends. It replays from a second before
// the call, so nothing is missed while the stream opens.
func (d *daemon) watchCreates(ctx context.Context, name string) *createWatch {
	w := &createWatch{}
	msgs, errs := d.docker.Events(ctx, events.ListOptions{
		Since: fmt.Sprint(time.Now().Add(-time.Second).Unix()),
		Filters: filters.NewArgs(
			filters.Arg("type", "container"),
			filters.Arg("event", "create"),
			filters.Arg("label", labelInstance+"="+d.instance),
			filters.Arg("label", labelFunction+"="+name),
		),
	})
	go func() {
		for {
			select {
			case m := <-msgs:
				w.mu.Lock()
				w.times = append(w.times, time.Unix(0, m.TimeNano))
				w.mu.Unlock()
			case err := <-errs:
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
		}
	}()
	return w
}

// since returns the creation times at or after t.
func (w *createWatch) since(t time.Time) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Time
	for _, at := range w.times {
		if !at.Before(t) {
			out = append(out, at)
		}
	}
	return out
}

// readFile returns the content of path, failing the test on error.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
