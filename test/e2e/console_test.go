package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
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
// the response, follow its logs while it writes a new line, scale it to two
// replicas, and delete it through the confirmation step; then upload a
// `docker save` archive through the upload form and deploy from it. Each
// step is checked against the API too. It keeps screenshots of the list,
// the function page and the uploaded function (and of the page a failure
// left) in the artifacts directory (consoleArtifacts, paths logged), and,
// with UPDATE_SCREENSHOTS=1, writes the first two to docs/screenshots/.
func TestConsole(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	// Before startDaemon: the image is removed after the daemon's containers.
	upload := prepareUpload(t, requireDocker(t), "console")
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
	shots := consoleArtifacts(t)
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
		if docsScreenshots[file] && os.Getenv("UPDATE_SCREENSHOTS") == "1" {
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

	// What the browser showed when a step failed, to look at after the run.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sctx, scancel := context.WithTimeout(browser, 10*time.Second)
		defer scancel()
		shot, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Logf("screenshot of the failure: %v", err)
			return
		}
		path := filepath.Join(shots, failureShot)
		if err := os.WriteFile(path, shot, 0o644); err == nil {
			t.Logf("screenshot of the page at the failure: %s", path)
		}
	})

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

	// Follow the logs: tick the box, and a line the function writes after
	// that shows up on the same page, without a reload.
	step("follow the logs",
		chromedp.Evaluate[chromedp.Void](`window.consoleTestPage = "not reloaded"`),
		chromedp.Click(`#logs-follow`),
	)
	// The follow stream starts with the recent lines: the invocation's.
	readLogs := func() (logsView, error) {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		return chromedp.Run(sctx, chromedp.Evaluate[logsView](readLogsView))
	}
	eventually(t, 30*time.Second, pollInterval, func() error {
		v, err := readLogs()
		if err != nil {
			return err
		}
		if !v.Follow || v.State != "following…" || !strings.Contains(v.Text, "request POST /greet") {
			return fmt.Errorf("logs: box ticked %v, state %q, text %q; want following… with the invocation's line", v.Follow, v.State, v.Text)
		}
		return nil
	})
	line := "console follow " + randomSuffix(8)
	logLine(t, d, name, line)
	eventually(t, 30*time.Second, pollInterval, func() error {
		v, err := readLogs()
		if err != nil {
			return err
		}
		if v.Mark != "not reloaded" {
			t.Fatalf("the function page was reloaded while following its logs (state %q)", v.State)
		}
		if !strings.Contains(v.Text, line) {
			return fmt.Errorf("logs state %q, text %q: no line %q yet", v.State, v.Text, line)
		}
		return nil
	})

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

	// Deploy from a docker save archive of an image the engine does not
	// have, through the upload form's file input.
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(archive, upload.archive, 0o644); err != nil {
		t.Fatal(err)
	}
	const uploaded = "console-upload"
	step("upload form",
		chromedp.Navigate(d.baseURL+"/ui/deploy?namespace="+ns),
		chromedp.WaitVisible(`#upload-form`),
		chromedp.SetValue(`#upload-name`, uploaded),
		chromedp.SetUploadFiles(`#upload-archive`, []string{archive}),
		chromedp.Click(`#upload-form button[type=submit]`),
		chromedp.WaitVisible(`#fn-name`),
	)
	if got, want := text(`#flash`), "Loaded "+upload.ref+" and deployed "+uploaded+"."; got != want {
		t.Errorf("after the upload the page says %q, want %q", got, want)
	}
	if fs, code, err := d.getFunction(uploaded, ns); err != nil || code != http.StatusOK || fs.Image != upload.ref {
		t.Fatalf("API after the upload form: %d %v %+v, want 200 with image %s", code, err, fs, upload.ref)
	}
	d.waitReady(uploaded, ns, 1)
	// Its replica runs the uploaded image, which only the upload brought.
	if mark := d.invokeUploadMark(uploaded); mark != upload.ref {
		t.Errorf("%s runs an image with UPLOAD_MARK %q, want %q", uploaded, mark, upload.ref)
	}
	step("uploaded function page", chromedp.Reload(), chromedp.WaitVisible(`#fn-name`))
	screenshot("console-upload.png")
}

// docsScreenshots are the screenshots README shows, which
// UPDATE_SCREENSHOTS=1 rewrites.
var docsScreenshots = map[string]bool{"console-list.png": true, "console-function.png": true}

// failureShot is the screenshot of the page a failed TestConsole left.
const failureShot = "console-failure.png"

// consoleArtifacts is where TestConsole keeps its screenshots after the
// run, for CI to collect: $E2E_ARTIFACTS/console, else
// dockerfaasd-e2e-artifacts/console in the temporary directory. A failure
// screenshot of an earlier run is removed, so what is there is this run's.
func consoleArtifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("E2E_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "dockerfaasd-e2e-artifacts")
	}
	dir := filepath.Join(base, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, failureShot)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("artifacts directory: %v", err)
	}
	t.Logf("artifacts: %s", dir)
	return dir
}

// logsView is the logs section of a function page as the browser shows it,
// and the mark a test left on the page (gone after a reload).
type logsView struct {
	Follow bool   `json:"follow"`
	State  string `json:"state"`
	Text   string `json:"text"`
	Mark   string `json:"mark"`
}

const readLogsView = `(() => ({
	follow: document.getElementById('logs-follow').checked,
	state: document.getElementById('logs-state').innerText.trim(),
	text: document.getElementById('logs').textContent,
	mark: window.consoleTestPage || '',
}))()`
