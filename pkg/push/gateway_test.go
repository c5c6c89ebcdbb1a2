package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

func gatewayFor(t *testing.T, srv *httptest.Server, creds Credentials) *HTTPGateway {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &HTTPGateway{URL: u, Client: NewHTTPClient(false, 5*time.Second), Credentials: creds, Timeout: 10 * time.Second}
}

func TestLoadImagesStreamsTheArchive(t *testing.T) {
	fg := newFakeGateway(t)
	fg.user, fg.pw = "admin", "s3cret"
	srv := fg.start()
	g := gatewayFor(t, srv, Credentials{Username: "admin", Password: "s3cret", Source: "test"})
	archive := randomBytes(3 << 20)

	loaded, err := g.LoadImages(context.Background(), bytes.NewReader(archive), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].Ref != "my-fn:latest" || loaded[0].Size != int64(len(archive)) {
		t.Fatalf("loaded = %+v", loaded)
	}
	fg.mu.Lock()
	defer fg.mu.Unlock()
	if !bytes.Equal(fg.archive, archive) {
		t.Fatalf("the gateway got %d bytes, want the %d sent", len(fg.archive), len(archive))
	}
	if !fg.chunked {
		t.Error("the archive was not sent chunked (streamed)")
	}
	if fg.contentType != "application/x-tar" || fg.expect != "" {
		t.Errorf("Content-Type %q, Expect %q", fg.contentType, fg.expect)
	}
}

// failure is the error answer the fake gateway gives instead of its
// success one; the zero failure is none.
type failure struct {
	status int
	body   string
}

func TestLoadImagesErrorsCarryTheServersMessage(t *testing.T) {
	tests := []struct {
		name string
		failure
		readFirst  int64
		creds      Credentials
		wantCode   int
		wantInErr  []string
		rounds     int
		closeFirst bool
	}{
		{name: "corrupt archive", failure: failure{400, "archive is not a docker save archive: unexpected EOF"},
			readFirst: 1 << 20, wantCode: 400, wantInErr: []string{"400 Bad Request", "unexpected EOF"}},
		{name: "over the size limit mid-stream", failure: failure{413, "image archive larger than 1048576 bytes"},
			readFirst: 1 << 20, wantCode: 413, wantInErr: []string{"413", "larger than 1048576 bytes"}, rounds: 5},
		{name: "swarm runtime", failure: failure{501, "loading images is not supported by the swarm runtime"},
			wantCode: 501, wantInErr: []string{"501", "swarm runtime", "load them into every node"}},
		{name: "no credentials", failure: failure{401, "invalid credentials"},
			wantCode: 401, wantInErr: []string{"401", "invalid credentials", "faas-cli login"}},
		{name: "refused credentials", failure: failure{401, "invalid credentials"},
			creds:    Credentials{Username: "admin", Password: "wrong-pw", Source: "faas-cli login (/x/config.yml)"},
			wantCode: 401, wantInErr: []string{"/x/config.yml", "refused"}},
		{name: "old gateway", failure: failure{404, "404 page not found"},
			wantCode: 404, wantInErr: []string{"cannot load images"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFakeGateway(t)
			fg.loadStatus, fg.loadBody, fg.readBeforeError = tc.status, tc.body, tc.readFirst
			srv := fg.start()
			g := gatewayFor(t, srv, tc.creds)
			for range max(tc.rounds, 1) {
				// Far more than the server reads, so it answers mid-stream.
				_, err := g.LoadImages(context.Background(), bytes.NewReader(randomBytes(16<<20)), false)
				var se *StatusError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v (%T), want a StatusError", err, err)
				}
				if se.Code != tc.wantCode {
					t.Fatalf("code %d, want %d", se.Code, tc.wantCode)
				}
				for _, s := range tc.wantInErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if tc.creds.Password != "" && strings.Contains(err.Error(), tc.creds.Password) {
					t.Fatalf("error shows the password: %v", err)
				}
			}
		})
	}
}

func TestLoadImagesBadAnswers(t *testing.T) {
	fg := newFakeGateway(t)
	fg.loadBody = "not json"
	srv := fg.start()
	_, err := gatewayFor(t, srv, Credentials{}).LoadImages(context.Background(), strings.NewReader("archive"), false)
	if err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Fatalf("err = %v", err)
	}

	// Nothing listens: the error names the gateway.
	srv.Close()
	_, err = gatewayFor(t, srv, Credentials{}).LoadImages(context.Background(), strings.NewReader("archive"), false)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/system/images") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployPutsThenPosts(t *testing.T) {
	tests := []struct {
		name   string
		exists bool
		failure
		wantMethods []string
		wantErr     string
	}{
		{name: "new function: PUT 404 then POST", wantMethods: []string{"PUT", "POST"}},
		{name: "existing function: PUT", exists: true, wantMethods: []string{"PUT"}},
		{name: "bad spec", failure: failure{400, "namespace dev is not valid"}, wantMethods: []string{"PUT"},
			wantErr: "deploying fn: the gateway answered 400 Bad Request: namespace dev is not valid"},
		{name: "unauthorized", failure: failure{401, "invalid credentials"}, wantMethods: []string{"PUT"},
			wantErr: "faas-cli login"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fg := newFakeGateway(t)
			fg.exists, fg.deployStatus, fg.deployBody = tc.exists, tc.status, tc.body
			g := gatewayFor(t, fg.start(), Credentials{})
			spec := types.FunctionDeployment{Service: "fn", Image: "my-fn:latest", Namespace: "dev"}
			status, err := g.Deploy(context.Background(), spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || status != "202 Accepted" {
				t.Fatalf("status %q, err %v", status, err)
			}
			fg.mu.Lock()
			defer fg.mu.Unlock()
			if strings.Join(fg.methods, ",") != strings.Join(tc.wantMethods, ",") {
				t.Fatalf("methods %v, want %v", fg.methods, tc.wantMethods)
			}
			for _, d := range fg.deployed {
				if d.Service != "fn" || d.Image != "my-fn:latest" || d.Namespace != "dev" {
					t.Fatalf("deployed %+v", d)
				}
			}
		})
	}
}

func TestTLSGateway(t *testing.T) {
	fg := newFakeGateway(t)
	srv := httptest.NewTLSServer(fg)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)

	verify := &HTTPGateway{URL: u, Client: NewHTTPClient(false, 5*time.Second)}
	_, err := verify.LoadImages(context.Background(), strings.NewReader("archive"), false)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown CA must be refused; err = %v", err)
	}

	noVerify := &HTTPGateway{URL: u, Client: NewHTTPClient(true, 5*time.Second)}
	if _, err := noVerify.LoadImages(context.Background(), strings.NewReader("archive"), false); err != nil {
		t.Fatalf("--tls-no-verify: %v", err)
	}
}

// TestSSLCertFile checks that SSL_CERT_FILE makes the gateway's certificate
// trusted. Go reads the system roots once per process, so each case runs
// in a child process (TestSSLCertFileChild).
func TestSSLCertFile(t *testing.T) {
	if os.Getenv("PUSH_TLS_CHILD_URL") != "" {
		t.Skip("child")
	}
	fg := newFakeGateway(t)
	srv := httptest.NewTLSServer(fg)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	writePEM := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Every httptest server has the same certificate: make another one.
	good, wrong := writePEM("good.pem", srv.Certificate().Raw), writePEM("wrong.pem", selfSigned(t))

	for _, tc := range []struct {
		name, file string
		ok         bool
	}{
		{"the gateway's certificate", good, true},
		{"another certificate", wrong, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSSLCertFileChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+tc.file, "SSL_CERT_DIR="+dir+"/none", "PUSH_TLS_CHILD_URL="+srv.URL)
			out, err := cmd.CombinedOutput()
			if tc.ok && err != nil {
				t.Fatalf("trusted via SSL_CERT_FILE, yet: %v\n%s", err, out)
			}
			if !tc.ok && (err == nil || !strings.Contains(string(out), "certificate")) {
				t.Fatalf("an unrelated SSL_CERT_FILE must not be trusted: %v\n%s", err, out)
			}
		})
	}
}

// selfSigned returns a new self-signed CA certificate (DER) for 127.0.0.1.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "unrelated test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSSLCertFileChild(t *testing.T) {
	raw := os.Getenv("PUSH_TLS_CHILD_URL")
	if raw == "" {
		t.Skip("run by TestSSLCertFile")
	}
	u, _ := url.Parse(raw)
	g := &HTTPGateway{URL: u, Client: NewHTTPClient(false, 5*time.Second)}
	if _, err := g.LoadImages(context.Background(), strings.NewReader("archive"), false); err != nil {
		t.Fatal(err)
	}
}
