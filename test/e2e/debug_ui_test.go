package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/container"
)

// chromiumPath returns the headless browser to use. Without one the test is
// skipped, unless CI=true, where hack/install-chromium.sh should have put it
// there and its absence is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH and CI=true: run hack/install-chromium.sh")
	}
	t.Skip("no chromium on PATH; install it with hack/install-chromium.sh (with CI=true this is a failure)")
	return ""
}

// debugRow is what a person reads in a function's row of /debug/reconcile,
// plus the controller-wide cells, as rendered text.
type debugRow struct {
	Title    string `json:"title"`
	Found    bool   `json:"found"`
	State    string `json:"state"`
	Desired  string `json:"desired"`
	Ready    string `json:"ready"`
	Result   string `json:"result"`
	Restarts string `json:"restarts"`
	Replicas string `json:"replicas"`
	Drift    string `json:"drift"`
	Stream   string `json:"stream"`
}

// readDebugRow reads the rendered text (innerText: what is on screen) of
// one function's row in one go, so the page's periodic refresh cannot fall
// between two cells.
const readDebugRow = `(() => {
	const row = document.querySelector('tr[data-key=' + JSON.stringify(%q) + ']');
	const cell = c => row ? row.querySelector('td.' + c).innerText.trim() : '';
	const text = id => (document.getElementById(id) || {innerText: ''}).innerText.trim();
	return {
		title: document.title, found: !!row,
		state: cell('state'), desired: cell('desired'), ready: cell('ready'),
		result: cell('result'), restarts: cell('restarts'), replicas: cell('replicas'),
		drift: text('drift'), stream: text('event-stream'),
	};
})()`

// TestDebugPageInBrowser breaks a two-replica function (docker rm -f of one
// replica), waits until the daemon healed it, and then opens
// /debug/reconcile in headless Chromium and checks what a person sees: the
// function Ready with 2 of 2 replicas, the last reconcile converged, the
// drift that was corrected, the replicas by container, the event stream
// connected. It saves a screenshot.
func TestDebugPageInBrowser(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "watched"
	key := defaultNamespace + "/" + name
	d.deploy(simpleSpec(name, img, nil, map[string]string{"com.openfaas.scale.min": "2"}))
	d.waitReady(name, defaultNamespace, 2)
	// Converged first, so that what follows is drift, not the deploy.
	eventually(t, 30*time.Second, pollInterval, func() error {
		v, err := d.reconcileStatus()
		if err != nil {
			return err
		}
		if f, _ := v.function(name); f.LastResult != "converged" {
			return fmt.Errorf("status %+v, want converged", f)
		}
		return nil
	})

	ids, err := d.runningIDs(name, defaultNamespace)
	if err != nil || len(ids) != 2 {
		t.Fatalf("running replicas: %v %v, want 2", ids, err)
	}
	rmCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.docker.ContainerRemove(rmCtx, ids[0], container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("docker rm -f %s: %v", short(ids[0]), err)
	}
	t.Logf("removed replica %s behind the daemon's back", short(ids[0]))
	var healed []string
	eventually(t, readyTimeout, pollInterval, func() error {
		now, err := d.runningIDs(name, defaultNamespace)
		if err != nil {
			return err
		}
		if len(now) != 2 || slices.Contains(now, ids[0]) {
			return fmt.Errorf("running replicas %v, want 2 without %s", now, short(ids[0]))
		}
		v, err := d.reconcileStatus()
		if err != nil {
			return err
		}
		if f, _ := v.function(name); f.ReadyReplicas != 2 || f.LastResult != "converged" {
			return fmt.Errorf("status %+v, want 2 ready, converged", f)
		}
		healed = now
		return nil
	})

	// The first call started the browser, which lives as long as the
	// test: no timeout on it, a bounded one on each step below.
	browser := loggedInBrowser(t, chrome, d, 1600, 900)
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()

	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(d.baseURL+"/debug/reconcile"))
	if err != nil {
		t.Fatalf("opening /debug/reconcile: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("/debug/reconcile in the browser: HTTP %d %s, want 200 (the Authorization header was set)", resp.Status, resp.StatusText)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#functions`)); err != nil {
		t.Fatalf("waiting for the functions table: %v", err)
	}
	row, err := chromedp.Run(ctx, chromedp.Evaluate[debugRow](fmt.Sprintf(readDebugRow, key)))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "debug-reconcile.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of /debug/reconcile: %s (%d bytes)", path, len(shot))
	if dir := os.Getenv("E2E_SCREENSHOTS"); dir != "" {
		keep := filepath.Join(dir, "debug-reconcile.png")
		if err := os.WriteFile(keep, shot, 0o644); err != nil {
			t.Errorf("E2E_SCREENSHOTS: %v", err)
		} else {
			t.Logf("E2E_SCREENSHOTS: kept a copy at %s", keep)
		}
	}
	t.Logf("what the page shows for %s: %+v", key, row)

	checks := []struct {
		what, got string
		ok        bool
		want      string
	}{
		{"title", row.Title, strings.Contains(row.Title, "reconcile"), "contains reconcile"},
		{"state", row.State, row.State == "Ready", "Ready"},
		{"desired", row.Desired, row.Desired == "2", "2"},
		{"ready", row.Ready, row.Ready == "2", "2"},
		{"result", row.Result, row.Result == "converged", "converged"},
		{"event stream", row.Stream, row.Stream == "connected", "connected"},
		// docker rm -f kills, then removes: the daemon may see the replica
		// exited or already gone.
		{"drift corrections", row.Drift, strings.Contains(row.Drift, "replica_missing") || strings.Contains(row.Drift, "replica_exited"),
			"mentions replica_missing or replica_exited"},
	}
	if !row.Found {
		t.Fatalf("no row for %s on the page", key)
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s shows %q, want %s", c.what, c.got, c.want)
		}
	}
	for _, id := range healed {
		if !strings.Contains(row.Replicas, short(id)+" ready") {
			t.Errorf("replicas cell %q does not show running container %s as ready", row.Replicas, short(id))
		}
	}
	if strings.Contains(row.Replicas, short(ids[0])) {
		t.Errorf("replicas cell %q still shows the removed container %s", row.Replicas, short(ids[0]))
	}
	// Where they run: on one Docker host, the engine's host.
	ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer icancel()
	info, err := d.docker.Info(ictx)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(row.Replicas, "on "+info.Name); info.Name == "" || n != len(healed) {
		t.Errorf("replicas cell %q names the engine's host %q %d times, want once per replica (%d)", row.Replicas, info.Name, n, len(healed))
	}
}

// loggedInBrowser starts headless Chromium (no sandbox: the tests may run
// as root; none of its services: there is no network here) in a window of
// width × height, sending d's basic-auth header with every request as a
// browser does once a person typed the credentials. The browser lives
// until the test ends; bound each step with a context of your own.
func loggedInBrowser(t *testing.T, chrome string, d *daemon, width, height int) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelBrowser)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(d.user+":"+d.password))
	if _, err := chromedp.Call(browser, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatalf("starting chromium %s: %v", chrome, err)
	}
	return browser
}
