package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsole drives the web console (/ui/) in headless Chromium as a
// person would: deploy fn-echo from its image reference through the form,
// see it in the list until it is ready, invoke it through the form and read
// the response, scale it to two replicas, and delete it through the
// confirmation step. Each step is checked against the API too. It saves
// screenshots of the list and the function page in a temporary directory
// (logged), and, with UPDATE_SCREENSHOTS=1, as docs/screenshots/console-*.png.
func TestConsole(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	d := startDaemon(t)
	img := fnImage(t, fnEcho)
	const name = "console-echo"
	ns := defaultNamespace

	browser := loggedInBrowser(t, chrome, d, 1280, 800)
	ctx, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		s, err := chromedp.Run(sctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shots := t.TempDir()
	screenshot := func(file string) {
		t.Helper()
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(shots, file)
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d bytes)", path, len(shot))
		if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
			keep := filepath.Join(suite.moduleRoot, "docs", "screenshots", file)
			if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keep, shot, 0o644); err != nil {
				t.Fatalf("UPDATE_SCREENSHOTS: %v", err)
			}
			t.Logf("UPDATE_SCREENSHOTS: wrote %s", keep)
		}
	}

	// Screenshots of exactly 1280x800, whatever the window decorations.
	step("viewport", chromedp.EmulateViewport(1280, 800))
	// The console opens on the function list.
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(d.baseURL+"/ui/"))
	if err != nil {
		t.Fatalf("opening /ui/: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("/ui/ in the browser: HTTP %d %s, want 200", resp.Status, resp.StatusText)
	}

	// Deploy from an image reference.
	step("deploy form",
		chromedp.Click(`a[href^="/ui/deploy"]`),
		chromedp.WaitVisible(`#deploy-form`),
		chromedp.SetValue(`#deploy-name`, name),
		chromedp.SetValue(`#deploy-image`, img),
		chromedp.SetValue(`#deploy-form textarea[name=env]`, "GREETING=hello from the console"),
		chromedp.SetValue(`#deploy-form textarea[name=labels]`, "com.openfaas.scale.min=1"),
		chromedp.Click(`#deploy-form button[type=submit]`),
		chromedp.WaitVisible(`#fn-name`),
	)
	if got := text(`#flash`); !strings.Contains(got, "Deployed "+name) {
		t.Errorf("after the deploy the page says %q, want Deployed %s", got, name)
	}
	if fs, code, err := d.getFunction(name, ns); err != nil || code != http.StatusOK || fs.Image != img {
		t.Fatalf("API after the form's deploy: %d %v %+v, want 200 with image %s", code, err, fs, img)
	}

	// The list shows it, and it becomes ready there.
	row := `tr[data-fn="` + name + `"]`
	eventually(t, readyTimeout, time.Second, func() error {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, chromedp.Navigate(d.baseURL+"/ui/?namespace="+ns), chromedp.WaitVisible(`#functions`)); err != nil {
			return err
		}
		got, err := chromedp.Run(sctx, chromedp.Evaluate[string](
			`(() => { const c = document.querySelector('`+row+` td.replicas'); return c ? c.innerText.trim() : 'absent'; })()`))
		if err != nil {
			return err
		}
		if got != "1 / 1" {
			return fmt.Errorf("list shows replicas %q for %s, want 1 / 1", got, name)
		}
		return nil
	})
	if got := text(row + ` td.image`); got != img {
		t.Errorf("list shows image %q, want %s", got, img)
	}
	if got := text(row + ` td.mode`); got != "replicas" {
		t.Errorf("list shows mode %q, want replicas", got)
	}
	screenshot("console-list.png")

	// The function page: its replica by container, then an invocation.
	step("function page", chromedp.Click(row+` td.name a`), chromedp.WaitVisible(`#invoke-form`))
	// The page's script read the function's recent logs from /system/logs.
	eventually(t, 30*time.Second, pollInterval, func() error {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('logs-state').innerText`))
		if err != nil {
			return err
		}
		if got != "last 100 lines" {
			return fmt.Errorf("logs state %q, want last 100 lines", got)
		}
		return nil
	})
	ids, err := d.runningIDs(name, ns)
	if err != nil || len(ids) != 1 {
		t.Fatalf("running replicas: %v %v, want 1", ids, err)
	}
	if got := text(`#replicas`); !strings.Contains(got, short(ids[0])) {
		t.Errorf("replicas table %q does not show container %s", got, short(ids[0]))
	}
	step("invoke form",
		chromedp.SetValue(`#invoke-method`, "POST"),
		chromedp.SetValue(`#invoke-path`, "/greet?who=console"),
		chromedp.SetValue(`#invoke-headers`, "X-Console: yes"),
		chromedp.SetValue(`#invoke-body`, "ping from the console"),
		chromedp.Click(`#invoke-form button[type=submit]`),
		chromedp.WaitVisible(`#invoke-status`),
	)
	if got := text(`#invoke-status`); got != "200 OK" {
		t.Errorf("invoke status %q, want 200 OK", got)
	}
	body := text(`#invoke-response`)
	for _, want := range []string{"ping from the console", "/greet", "X-Console", "hello from the console"} {
		if !strings.Contains(body, want) {
			t.Errorf("invoke response %q lacks %q", body, want)
		}
	}
	// fn-echo echoes the Authorization header the gateway passed on: the
	// console must not put the user's credentials on the page.
	if creds := base64.StdEncoding.EncodeToString([]byte(d.user + ":" + d.password)); strings.Contains(body, d.password) || strings.Contains(body, creds) {
		t.Error("the invoke response on the page shows the user's credentials")
	}
	if got := text(`#invoke-time`); got == "" {
		t.Error("no timing shown for the invocation")
	}
	// The form and its response side by side with the status.
	step("scroll to the response", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 170)`))
	screenshot("console-function.png")

	// Scale to two.
	step("scale form",
		chromedp.SetValue(`#replicas-input`, "2"),
		chromedp.Click(`#scale-form button[type=submit]`),
		chromedp.WaitVisible(`#flash`),
	)
	if got := text(`#flash`); !strings.Contains(got, "Scaling "+name+" to 2") {
		t.Errorf("after scaling the page says %q", got)
	}
	d.waitReady(name, ns, 2)

	// Delete, through the confirmation step.
	step("delete confirmation",
		chromedp.Click(`#delete-link`),
		chromedp.WaitVisible(`#delete-form`),
		chromedp.SetValue(`#confirm`, name),
		chromedp.Click(`#delete-confirm`),
		chromedp.WaitVisible(`#flash`),
	)
	if got := text(`#flash`); !strings.Contains(got, "Deleted "+name) {
		t.Errorf("after the delete the page says %q", got)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		if _, code, _ := d.getFunction(name, ns); code != http.StatusNotFound {
			return fmt.Errorf("GET /system/function/%s: %d, want 404", name, code)
		}
		if ids, err := d.runningIDs(name, ns); err != nil || len(ids) != 0 {
			return fmt.Errorf("containers left: %v %v", ids, err)
		}
		return nil
	})
}
