package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// `dockerfaasd push` end to end: the real binary's push subcommand saves an
// image from one Docker Engine and streams it to a daemon running on
// another, which loads it into its own engine (POST /system/images), then
// deploys it; no registry anywhere.

// pushResult is one run of `dockerfaasd push`.
type pushResult struct {
	code           int
	stdout, stderr string
}

// runPush runs the daemon binary's push subcommand with args, the given
// environment on top of ours (minus what would leak in from the caller's
// shell), and stdin.
func runPush(t *testing.T, env map[string]string, stdin string, args ...string) pushResult {
	t.Helper()
	bin := daemonBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"push"}, args...)...)
	drop := map[string]bool{"DOCKER_HOST": true, "OPENFAAS_URL": true, "OPENFAAS_CONFIG": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if _, ok := env["OPENFAAS_CONFIG"]; !ok {
		// Never the caller's faas-cli login (nor ./.openfaas under CI).
		env["OPENFAAS_CONFIG"] = t.TempDir()
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	r := pushResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	if err != nil && r.code <= 0 {
		t.Fatalf("dockerfaasd push: %v\nstderr: %s", err, r.stderr)
	}
	t.Logf("dockerfaasd push %s → exit %d in %s\nstdout:\n%s\nstderr:\n%s",
		strings.Join(args, " "), r.code, time.Since(start).Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// buildMarkedImage builds, on cli's engine, an image FROM base (already
// there) whose fn-echo reports PUSH_MARK=mark in its environment: content
// no other engine has. It returns the image ID.
func buildMarkedImage(t *testing.T, cli *client.Client, base, tag, mark string) string {
	t.Helper()
	return buildImage(t, cli, tag, fmt.Sprintf("FROM %s\nENV PUSH_MARK=%s\n", base, mark), nil)
}

// faasCLIConfig writes the config.yml `faas-cli login` would write for
// gateway and returns its directory (OPENFAAS_CONFIG).
func faasCLIConfig(t *testing.T, gateway, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	token := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf("auths:\n  - gateway: %s\n    auth: basic\n    token: %s\n", gateway, token)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// invokeMark invokes fn and returns the PUSH_MARK its replica reports.
func invokeMark(d *daemon, fn string) (string, error) {
	res, err := d.request(http.MethodPost, "/function/"+fn, []byte("hi"), nil, authBasic)
	if err != nil {
		return "", err
	}
	if res.Status != http.StatusOK {
		return "", fmt.Errorf("invoke %s: %s", fn, res)
	}
	echo, err := decodeEcho(res)
	if err != nil {
		return "", err
	}
	return echo.Env["PUSH_MARK"], nil
}

// TestPushDeployWithoutRegistry pushes an image the daemon's engine has
// never seen, from another engine (a node of the test swarm, a separate
// dockerd), with `dockerfaasd push --deploy`, and invokes it; then pushes a
// rebuild under the same tag with --gzip and sees the function roll onto it.
func TestPushDeployWithoutRegistry(t *testing.T) {
	sw := requireSwarm(t)
	local := requireDocker(t)
	last := len(sw.nodes) - 1
	src, srcSock := sw.nodes[last], sw.sockets[last]
	base := sw.load(t, fnImage(t, fnEcho))

	mark1, mark2 := "one-"+randomSuffix(10), "two-"+randomSuffix(10)
	tag := "dockerfaasd-e2e-push/fn-echo:" + randomSuffix(12)
	var ids []string
	// Registered before startDaemon, so it runs after the daemon's cleanup
	// removed the containers using these images.
	t.Cleanup(func() {
		refs := append([]string{tag}, ids...)
		removeImages(t, src, srcSock, refs...)
		removeImages(t, local, localEngine, refs...)
	})
	id1 := buildMarkedImage(t, src, base, tag, mark1)
	ids = append(ids, id1)
	ctx := context.Background()
	for _, ref := range []string{tag, id1} {
		if _, err := local.ImageInspect(ctx, ref); !cerrdefs.IsNotFound(err) {
			t.Fatalf("%s must be absent from the daemon's engine before the push; inspect: %v", ref, err)
		}
	}

	d := startDaemon(t)
	fn := "pushed-" + randomSuffix(6)
	env := map[string]string{
		"DOCKER_HOST":     "unix://" + srcSock,
		"OPENFAAS_URL":    d.baseURL,
		"OPENFAAS_CONFIG": faasCLIConfig(t, d.baseURL, d.user, d.password),
	}
	r := runPush(t, env, "", tag, "--deploy", fn)
	if r.code != 0 {
		t.Fatalf("push --deploy: exit %d", r.code)
	}
	for _, want := range []string{"Loaded " + tag + " (" + id1[:19], "Deployed. 202 Accepted.", "URL: " + d.baseURL + "/function/" + fn + "\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(r.stderr, "sent "+tag+":") {
		t.Errorf("stderr has no progress report")
	}
	if strings.Contains(r.stdout+r.stderr, d.password) {
		t.Fatal("the password was printed")
	}
	got, err := local.ImageInspect(ctx, tag)
	if err != nil || got.ID != id1 {
		t.Fatalf("after the push the daemon's engine has %s as %q (%v), want %s", tag, got.ID, err, id1)
	}
	d.waitReady(fn, "", 1)
	if m, err := invokeMark(d, fn); err != nil || m != mark1 {
		t.Fatalf("invoke: PUSH_MARK %q, %v; want %q", m, err, mark1)
	}

	// A rebuild under the same tag, compressed on the way: the deploy's
	// image-id annotation changes, so the function rolls onto it.
	id2 := buildMarkedImage(t, src, base, tag, mark2)
	ids = append(ids, id2)
	r = runPush(t, env, "", "--gzip", tag, "--deploy", fn)
	if r.code != 0 {
		t.Fatalf("second push --gzip --deploy: exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "gzip on the wire") {
		t.Errorf("stderr does not report the compressed size")
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		m, err := invokeMark(d, fn)
		if err != nil {
			return err
		}
		if m != mark2 {
			return fmt.Errorf("PUSH_MARK %q, want %q", m, mark2)
		}
		return nil
	})
}

// TestPushThroughTLSProxy pushes to the daemon through an HTTPS reverse
// proxy: trusted with SSL_CERT_FILE, with --tls-no-verify, and refused
// (nothing deployed) when the certificate is unknown.
func TestPushThroughTLSProxy(t *testing.T) {
	requireDocker(t)
	img := fnImage(t, fnEcho)
	d := startDaemon(t)
	target, _ := url.Parse(d.baseURL)
	proxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(proxy.Close)
	certFile := filepath.Join(t.TempDir(), "proxy.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pushOverTLS(t, d, img, proxy.URL, certFile)
}

// TestPushNativeTLS pushes to a daemon serving HTTPS itself
// (TLS_CERT_FILE/TLS_KEY_FILE, a certificate from a test CA): trusted with
// SSL_CERT_FILE naming the CA, with --tls-no-verify, and refused (nothing
// deployed) when the CA is unknown.
func TestPushNativeTLS(t *testing.T) {
	requireDocker(t)
	img := fnImage(t, fnEcho)
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, 3001)
	d := startDaemon(t, withTLS(certFile, keyFile, ca.pool))
	if !strings.HasPrefix(d.baseURL, "https://") {
		t.Fatalf("harness base URL %s, want https", d.baseURL)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	pushOverTLS(t, d, img, d.baseURL, caFile)
}

// pushOverTLS runs `dockerfaasd push --deploy` of img to d at the https
// gateway: trusting certFile (SSL_CERT_FILE) and with --tls-no-verify each
// deploy a function that then answers; with neither the push fails on the
// certificate and deploys nothing.
func pushOverTLS(t *testing.T, d *daemon, img, gateway, certFile string) {
	t.Helper()
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		ok    bool
	}{
		{name: "SSL_CERT_FILE", env: map[string]string{"SSL_CERT_FILE": certFile}, ok: true},
		{name: "tls-no-verify", flags: []string{"--tls-no-verify"}, ok: true},
		{name: "unknown certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := "tls-" + randomSuffix(6)
			args := append([]string{img, "--deploy", fn, "--gateway", gateway, "--password-stdin"}, tc.flags...)
			if tc.env == nil {
				tc.env = map[string]string{}
			}
			tc.env["DOCKER_HOST"] = suite.docker.DaemonHost()
			r := runPush(t, tc.env, d.password+"\n", args...)
			if !tc.ok {
				if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
					t.Fatalf("an unknown certificate must fail the push with exit 1 and say so; exit %d", r.code)
				}
				if _, code, err := d.getFunction(fn, ""); code != http.StatusNotFound {
					t.Fatalf("after a refused push the function must not exist: %d %v", code, err)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if !strings.Contains(r.stdout, "URL: "+gateway+"/function/"+fn) {
				t.Errorf("stdout lacks the function's URL at %s", gateway)
			}
			d.waitReady(fn, "", 1)
			res, err := d.request(http.MethodGet, "/function/"+fn, nil, nil, authBasic)
			if err != nil || res.Status != http.StatusOK {
				t.Fatalf("invoke %s: %v %v", fn, res, err)
			}
		})
	}
}

// TestPushErrors runs the binary's push subcommand into the real daemon's
// refusals: usage, a wrong password (401), an image the engine lacks, and
// an archive over IMAGE_UPLOAD_MAX (413, answered mid-stream); each exits
// with its code and the server's message, and nothing is deployed.
func TestPushErrors(t *testing.T) {
	requireDocker(t)
	img := fnImage(t, fnEcho)
	d := startDaemon(t, withEnv("IMAGE_UPLOAD_MAX", "1Mi"))
	engine := suite.docker.DaemonHost()

	tests := []struct {
		name     string
		args     []string
		stdin    string
		code     int
		stdout   string
		stderrIn []string
	}{
		{name: "help", args: []string{"-h"}, code: 0, stdout: "Usage: dockerfaasd push IMAGE"},
		{name: "no image", code: 2, stderrIn: []string{"IMAGE is required"}},
		{name: "wrong password", args: []string{img, "--deploy", "fn-401", "-g", d.baseURL, "-s"}, stdin: "wrong-pw",
			code: 1, stderrIn: []string{"401 Unauthorized", "credentials from --password-stdin were refused"}},
		{name: "image absent", args: []string{img + "-absent", "--deploy", "fn-absent", "-g", d.baseURL, "-s"}, stdin: d.password,
			code: 1, stderrIn: []string{"image not found in the local Docker Engine (engine " + engine + ")"}},
		{name: "over the upload limit", args: []string{img, "--deploy", "fn-413", "-g", d.baseURL, "-s"}, stdin: d.password,
			code: 1, stderrIn: []string{"413 Request Entity Too Large", "IMAGE_UPLOAD_MAX"}},
		{name: "over the upload limit, gzip", args: []string{img, "--gzip", "--deploy", "fn-413", "-g", d.baseURL, "-s"}, stdin: d.password,
			code: 1, stderrIn: []string{"413 Request Entity Too Large", "IMAGE_UPLOAD_MAX"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runPush(t, map[string]string{"DOCKER_HOST": engine}, tc.stdin, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d", r.code, tc.code)
			}
			if !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout lacks %q", tc.stdout)
			}
			for _, s := range tc.stderrIn {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if strings.Contains(r.stdout+r.stderr, d.password) {
				t.Fatal("the password was printed")
			}
		})
	}
	list, err := d.listFunctions("")
	if err != nil || len(list) != 0 {
		t.Fatalf("nothing may be deployed after refused pushes: %v %v", list, err)
	}
}
