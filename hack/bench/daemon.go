package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// daemon is the dockerfaasd process of the run. Restart keeps its port,
// state dir and instance, like a real restart.
type daemon struct {
	bin, stateDir, logPath string
	instance, password     string
	env                    []string // extra KEY=VALUE settings, after (so over) the defaults below
	port                   int
	base                   string
	cmd                    *exec.Cmd
	exited                 chan struct{}
	http                   *http.Client
}

// authHeader is the value of the Authorization header of every request.
func (d *daemon) authHeader() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+d.password))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// newDaemon prepares (but does not start) the run's daemon.
func (r *runner) newDaemon() (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &daemon{
		bin:      r.daemonBin,
		stateDir: filepath.Join(r.tmp, "state"),
		logPath:  filepath.Join(r.tmp, "dockerfaasd.log"),
		instance: r.id,
		password: "pw-" + randomSuffix(20),
		port:     port,
		base:     fmt.Sprintf("http://127.0.0.1:%d", port),
		http:     apiClient(),
	}
	return d, os.MkdirAll(d.stateDir, 0o700)
}

// apiClient is the HTTP client of a daemon's API: no proxy from the
// environment, room for the concurrent deploys of the scale section.
func apiClient() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
	}
}

// start launches the daemon and waits up to 30 s for /healthz.
func (d *daemon) start(ctx context.Context) error {
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin)
	cmd.Env = append(os.Environ(),
		"GATEWAY_PORT="+strconv.Itoa(d.port),
		"BIND_ADDRESS=127.0.0.1",
		"STATE_DIR="+d.stateDir,
		"AUTH_USER=admin",
		"AUTH_PASSWORD="+d.password,
		"INSTANCE="+d.instance,
		"FUNCTIONS_NETWORK="+d.instance,
		"LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, d.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Dies with the driver, so an aborted run leaves no daemon behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", d.bin, err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	if _, err := d.waitHealthy(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("%w (log %s):\n%s", err, d.logPath, tail(d.logPath, 20))
	}
	return nil
}

// waitHealthy polls /healthz every 5 ms and returns how long it took.
func (d *daemon) waitHealthy(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for i := 0; time.Since(start) < limit && i < 20000; i++ {
		select {
		case <-d.exited:
			return 0, errors.New("daemon exited before becoming healthy")
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		if res, err := c.Get(d.base + "/healthz"); err == nil {
			drain(res.Body)
			if res.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("daemon not healthy after %s", limit)
}

// stop sends SIGTERM and waits up to 30 s, then SIGKILL.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return errors.New("daemon ignored SIGTERM for 30s; killed")
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// do sends an authenticated API request and returns status and body.
func (d *daemon) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", d.authHeader())
	res, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// expect is do that wants one status code.
func (d *daemon) expect(ctx context.Context, want int, method, path string, body any) ([]byte, error) {
	code, b, err := d.do(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if code != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, code, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func (d *daemon) deploy(ctx context.Context, name, image string) error {
	return d.deploySpec(ctx, types.FunctionDeployment{Service: name, Image: image})
}

// deploySpec deploys a function with more than a name and an image.
func (d *daemon) deploySpec(ctx context.Context, spec types.FunctionDeployment) error {
	_, err := d.expect(ctx, http.StatusAccepted, http.MethodPost, "/system/functions", spec)
	return err
}

func (d *daemon) remove(ctx context.Context, name string) error {
	_, err := d.expect(ctx, http.StatusAccepted, http.MethodDelete, "/system/functions",
		types.DeleteFunctionRequest{FunctionName: name})
	return err
}

func (d *daemon) scaleTo(ctx context.Context, name string, n uint64) error {
	_, err := d.expect(ctx, http.StatusAccepted, http.MethodPost, "/system/scale-function/"+name,
		types.ScaleServiceRequest{ServiceName: name, Replicas: n})
	return err
}

func (d *daemon) function(ctx context.Context, name string) (types.FunctionStatus, error) {
	var st types.FunctionStatus
	b, err := d.expect(ctx, http.StatusOK, http.MethodGet, "/system/function/"+name, nil)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (d *daemon) list(ctx context.Context) ([]types.FunctionStatus, error) {
	var st []types.FunctionStatus
	b, err := d.expect(ctx, http.StatusOK, http.MethodGet, "/system/functions", nil)
	if err != nil {
		return nil, err
	}
	return st, json.Unmarshal(b, &st)
}

// callOnce invokes the function once through the daemon and wants a 200.
func (d *daemon) callOnce(ctx context.Context, fn string) (string, error) {
	code, b, err := d.do(ctx, http.MethodGet, "/function/"+fn, nil)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /function/%s: %d %s", fn, code, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// debugReasons counts the controller's reasons and last errors across
// functions (from /debug/reconcile), to explain a stall.
func (d *daemon) debugReasons(ctx context.Context) string {
	b, err := d.expect(ctx, http.StatusOK, http.MethodGet, "/debug/reconcile?format=json", nil)
	if err != nil {
		return err.Error()
	}
	var v struct {
		Global struct {
			QueueDepth int `json:"queueDepth"`
		} `json:"global"`
		Functions []struct {
			Reason    string `json:"reason"`
			LastError string `json:"lastError"`
		} `json:"functions"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err.Error()
	}
	count := map[string]int{}
	for _, f := range v.Functions {
		k := f.Reason
		if f.LastError != "" {
			e := f.LastError
			if len(e) > 160 {
				e = e[:160] + "…"
			}
			k += ": " + e
		}
		if k != "" {
			count[k]++
		}
	}
	parts := []string{fmt.Sprintf("queue depth %d", v.Global.QueueDepth)}
	for k, n := range count {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	return strings.Join(parts, "; ")
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}
