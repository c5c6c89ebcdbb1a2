package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
)

// testCA is a certificate authority made for one test; clients trust it
// through pool.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dockerfaasd e2e CA " + randomSuffix(6)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.pool.AddCert(cert)
	return ca
}

// issue writes a server certificate for 127.0.0.1 and localhost with the
// given serial, and its key, to dir/server.crt and dir/server.key
// (replacing them by rename, as a renewal tool would), and returns the paths.
func (ca *testCA) issue(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return certFile, keyFile
}

func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial opens a new TLS connection to addr, trusting only pool, and
// returns the serial of the certificate it was shown.
func servedSerial(addr string, pool *x509.CertPool) (int64, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// hup sends SIGHUP to the daemon without waiting for it to exit (it must not).
func (d *daemon) hup() {
	d.t.Helper()
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd == nil || !d.running() {
		d.t.Fatal("SIGHUP: the daemon is not running")
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatalf("SIGHUP: %v", err)
	}
}

// invokeEcho calls fn-echo function fn with body through c (the go-sdk's
// InvokeFunction) and checks that the function answered it.
func invokeEcho(t *testing.T, c *sdk.Client, user, password, fn, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.GatewayURL.String()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password) // the SDK adds only function tokens
	res, err := c.InvokeFunction(fn, defaultNamespace, false, false, req)
	if err != nil {
		t.Fatalf("invoke %s over %s: %v", fn, c.GatewayURL.Scheme, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r, err := decodeEcho(httpResult{Status: res.StatusCode, Body: b})
	if err != nil || res.StatusCode != http.StatusOK || r.Body != body {
		t.Fatalf("invoke %s: %d %q (%v), want 200 echoing %q", fn, res.StatusCode, b, err, body)
	}
	if res.TLS == nil {
		t.Fatalf("invoke %s: the answer did not come over TLS", fn)
	}
}

// TestNativeTLS serves the API over HTTPS with TLS_CERT_FILE/TLS_KEY_FILE:
// the go-sdk deploys and invokes trusting a test CA, SIGHUP makes new
// connections see a renewed certificate, a bad renewal keeps the old one,
// plain HTTP on the port gets nothing, and a lone TLS_CERT_FILE is refused.
func TestNativeTLS(t *testing.T) {
	t.Parallel()
	img := fnImage(t, fnEcho)

	t.Run("half a pair is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, daemonBinary(t))
		cmd.Env = append(os.Environ(), "TLS_CERT_FILE=/nonexistent/server.crt", "TLS_KEY_FILE=", "STATE_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "TLS_CERT_FILE and TLS_KEY_FILE go together") {
			t.Fatalf("got %v: %s; want exit status 2 naming both settings", err, out)
		}
	})

	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.issue(t, dir, 1001)
	d := startDaemon(t, withTLS(certFile, keyFile, ca.pool))
	addr := fmt.Sprintf("127.0.0.1:%d", d.port)
	if !strings.HasPrefix(d.baseURL, "https://") {
		t.Fatalf("harness base URL %s, want https", d.baseURL)
	}
	if got, err := servedSerial(addr, ca.pool); err != nil || got != 1001 {
		t.Fatalf("first certificate: serial %d (%v), want 1001", got, err)
	}

	const fn = "tls-echo"
	c := d.client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if code, err := c.Deploy(ctx, types.FunctionDeployment{Service: fn, Image: img}); err != nil || code != http.StatusAccepted {
		t.Fatalf("go-sdk deploy over https: %d %v, want 202", code, err)
	}
	d.waitReady(fn, defaultNamespace, 1)
	invokeEcho(t, c, d.user, d.password, fn, "over native TLS")

	t.Run("SIGHUP serves the renewed certificate", func(t *testing.T) {
		ca.issue(t, dir, 1002)
		d.hup()
		eventually(t, 10*time.Second, pollInterval, func() error {
			got, err := servedSerial(addr, ca.pool)
			if err == nil && got != 1002 {
				err = fmt.Errorf("serial %d, want 1002", got)
			}
			return err
		})
		if !strings.Contains(d.logTail(50), "TLS certificate reloaded") {
			t.Error("no \"TLS certificate reloaded\" line in the daemon log")
		}
		invokeEcho(t, d.client(), d.user, d.password, fn, "after the reload")
	})

	t.Run("a bad renewal keeps the served certificate", func(t *testing.T) {
		writeAtomic(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
		d.hup()
		eventually(t, 10*time.Second, pollInterval, func() error {
			if !strings.Contains(d.logTail(50), "TLS certificate reload failed") {
				return errors.New("no \"TLS certificate reload failed\" line in the daemon log yet")
			}
			return nil
		})
		if got, err := servedSerial(addr, ca.pool); err != nil || got != 1002 {
			t.Errorf("after a bad pair: serial %d (%v), want 1002 kept", got, err)
		}
		if !d.running() {
			t.Fatal("the daemon exited on SIGHUP")
		}
		invokeEcho(t, d.client(), d.user, d.password, fn, "after a bad reload")
	})

	t.Run("plain HTTP gets no answer", func(t *testing.T) {
		pc := &http.Client{Timeout: 5 * time.Second}
		res, err := pc.Get("http://" + addr + "/system/info")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// Go's TLS server answers a plain request with 400 and nothing else.
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP: %s %q, want a failure", res.Status, b)
			}
			t.Logf("plain HTTP: %s %q", res.Status, strings.TrimSpace(string(b)))
		}
	})
}

// caddyPath returns Debian's caddy. Without it the test is skipped, unless
// CI=true, where hack/install-caddy.sh should have put it there.
func caddyPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("caddy"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no caddy on PATH and CI=true: run hack/install-caddy.sh")
	}
	t.Skip("no caddy on PATH; install it with hack/install-caddy.sh (with CI=true this is a failure)")
	return ""
}

// startCaddy runs caddy with the shipped deploy/caddy/Caddyfile, its
// variables set to serve https://127.0.0.1:port with the given pair and to
// proxy to upstream, and waits until /healthz answers through it. Cleanup
// stops that process (and only it).
func startCaddy(t *testing.T, port int, certFile, keyFile, upstream string, pool *x509.CertPool) {
	t.Helper()
	bin := caddyPath(t)
	caddyfile := filepath.Join(suite.moduleRoot, "deploy", "caddy", "Caddyfile")
	home := t.TempDir()
	logPath := filepath.Join(home, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Dir = home
	// Its own home: caddy keeps an autosaved config and data there.
	cmd.Env = append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"),
		"CADDY_BIND=127.0.0.1",
		fmt.Sprintf("DOCKERFAASD_SITE=https://127.0.0.1:%d", port),
		"DOCKERFAASD_TLS_CERT="+certFile,
		"DOCKERFAASD_TLS_KEY="+keyFile,
		"DOCKERFAASD_UPSTREAM="+upstream,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("----- caddy log (%s) -----\n%s\n----- end of caddy log -----", logPath, b)
		}
	})

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	defer tr.CloseIdleConnections()
	eventually(t, 30*time.Second, pollInterval, func() error {
		select {
		case <-exited:
			t.Fatal("caddy exited before serving")
		default:
		}
		res, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz through caddy: %s", res.Status)
		}
		return nil
	})
}

// TestCaddyTLS runs the shipped Caddy recipe in front of a plain-HTTP
// daemon and drives it with the go-sdk over https, trusting a test CA:
// deploy, invoke, list, a following log stream (which needs the proxy to
// flush as it goes) and delete. Its daemon, without TLS, survives a SIGHUP.
func TestCaddyTLS(t *testing.T) {
	t.Parallel()
	caddyPath(t) // skip (or fail in CI) before building anything
	img := fnImage(t, fnEcho)
	d := startDaemon(t)
	// Without TLS, SIGHUP is only logged: it must not stop the daemon.
	d.hup()
	eventually(t, 10*time.Second, pollInterval, func() error {
		if !strings.Contains(d.logTail(50), "SIGHUP: nothing to reload") {
			return errors.New("no \"SIGHUP: nothing to reload\" line in the daemon log yet")
		}
		return nil
	})

	ca := newTestCA(t)
	certFile, keyFile := ca.issue(t, t.TempDir(), 2001)
	port := freePort(t)
	startCaddy(t, port, certFile, keyFile, fmt.Sprintf("127.0.0.1:%d", d.port), ca.pool)

	base, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d", port))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	defer tr.CloseIdleConnections()
	auth := &sdk.BasicAuth{Username: d.user, Password: d.password}
	c := sdk.NewClient(base, auth, &http.Client{Timeout: 60 * time.Second, Transport: tr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const fn = "caddy-echo"
	if code, err := c.Deploy(ctx, types.FunctionDeployment{Service: fn, Image: img}); err != nil || code != http.StatusAccepted {
		t.Fatalf("go-sdk deploy through caddy: %d %v, want 202", code, err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		st, err := c.GetFunction(ctx, fn, defaultNamespace)
		if err == nil && st.AvailableReplicas < 1 {
			err = fmt.Errorf("%s: %d available replicas", fn, st.AvailableReplicas)
		}
		return err
	})
	invokeEcho(t, c, d.user, d.password, fn, "through caddy")

	fns, err := c.GetFunctions(ctx, defaultNamespace)
	if err != nil {
		t.Fatalf("go-sdk list through caddy: %v", err)
	}
	var listed bool
	for _, f := range fns {
		listed = listed || f.Name == fn
	}
	if !listed {
		t.Errorf("list through caddy: %v lacks %s", fns, fn)
	}

	// A following log stream through the proxy: a line written after the
	// stream opened must arrive while the stream stays open.
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	// The client's own timeout would cut the stream: only ctx bounds it.
	sc := sdk.NewClient(base, auth, &http.Client{Transport: tr})
	ch, err := sc.GetLogs(streamCtx, fn, defaultNamespace, true, -1, nil)
	if err != nil {
		t.Fatalf("go-sdk follow logs through caddy: %v", err)
	}
	w := &logWatch{ch: ch}
	// The replica's start-up line comes from its history: the stream is
	// attached, so what is written next can only come by following.
	if _, err := w.waitFor(20*time.Second, func(m logs.Message) bool { return strings.Contains(m.Text, "listening on :8080") }); err != nil {
		t.Fatalf("followed logs through caddy: start-up line: %v (seen %+v)", err, w.seen)
	}
	marker := "caddy-marker-" + randomSuffix(8)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/function/"+fn+"/log?text="+url.QueryEscape(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(d.user, d.password)
	start := time.Now()
	res, err := (&http.Client{Timeout: 30 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("log a line through caddy: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("log a line through caddy: %s", res.Status)
	}
	if _, err := w.waitFor(20*time.Second, func(m logs.Message) bool { return m.Text == marker }); err != nil {
		t.Fatalf("followed logs through caddy: line %q: %v (seen %+v)", marker, err, w.seen)
	}
	t.Logf("log line arrived on the followed stream through caddy %s after it was written", time.Since(start).Round(time.Millisecond))
	stopStream()

	if err := c.DeleteFunction(ctx, fn, defaultNamespace); err != nil {
		t.Fatalf("go-sdk delete through caddy: %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		if _, code, _ := d.getFunction(fn, defaultNamespace); code != http.StatusNotFound {
			return fmt.Errorf("%s after delete: GET answers %d, want 404", fn, code)
		}
		return nil
	})
	d.waitGone(fn) // before the harness's cleanup, which would race the removal
}
