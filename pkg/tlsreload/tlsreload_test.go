package tlsreload

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// pair is a self-signed certificate for 127.0.0.1 with the given serial,
// PEM encoded.
type pair struct{ cert, key []byte }

func newPair(t *testing.T, serial int64) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("tlsreload test %d", serial)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:                  true, // self-signed: it is its own root in the client's pool
		BasicConstraintsValid: true,
	}
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// write puts p into dir's cert.pem and key.pem and returns their paths.
func write(t *testing.T, dir string, p pair) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, p.cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.key, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func serialOf(t *testing.T, c *Certificate) int64 {
	t.Helper()
	got, err := c.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Leaf.SerialNumber.Int64()
}

func TestLoadFailsOnABadPair(t *testing.T) {
	a, b := newPair(t, 1), newPair(t, 2)
	tests := []struct {
		name      string
		cert, key []byte // nil: the file is missing
	}{
		{"missing certificate", nil, a.key},
		{"missing key", a.cert, nil},
		{"garbage certificate", []byte("not a certificate"), a.key},
		{"garbage key", a.cert, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		{"key of another certificate", a.cert, b.key},
		{"certificate and key swapped", a.key, a.cert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			if tt.cert != nil {
				if err := os.WriteFile(certFile, tt.cert, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.key != nil {
				if err := os.WriteFile(keyFile, tt.key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Load(certFile, keyFile); err == nil {
				t.Fatal("Load succeeded, want an error")
			}
		})
	}
}

func TestReload(t *testing.T) {
	tests := []struct {
		name       string
		next       func(t *testing.T, dir string) // what the files become
		wantErr    bool
		wantSerial int64
	}{
		{"new pair is served", func(t *testing.T, dir string) { write(t, dir, newPair(t, 2)) }, false, 2},
		{"unchanged files keep serving", func(t *testing.T, dir string) {}, false, 1},
		{"removed files keep the old pair", func(t *testing.T, dir string) {
			_ = os.Remove(filepath.Join(dir, "cert.pem"))
		}, true, 1},
		{"mismatched pair keeps the old pair", func(t *testing.T, dir string) {
			p, q := newPair(t, 3), newPair(t, 4)
			write(t, dir, pair{cert: p.cert, key: q.key})
		}, true, 1},
		{"half-written certificate keeps the old pair", func(t *testing.T, dir string) {
			p := newPair(t, 5)
			write(t, dir, pair{cert: p.cert[:len(p.cert)/2], key: p.key})
		}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := Load(write(t, dir, newPair(t, 1)))
			if err != nil {
				t.Fatal(err)
			}
			tt.next(t, dir)
			if err := c.Reload(); (err != nil) != tt.wantErr {
				t.Fatalf("Reload: %v, want error %v", err, tt.wantErr)
			}
			if got := serialOf(t, c); got != tt.wantSerial {
				t.Errorf("serving serial %d, want %d", got, tt.wantSerial)
			}
		})
	}
}

// TestServerSeesReloadedCertificate runs a TLS server on the Certificate's
// config and drives reloads through Run as SIGHUP does: a new connection
// gets the new pair, a bad pair leaves the old one served.
func TestServerSeesReloadedCertificate(t *testing.T) {
	dir := t.TempDir()
	first, second := newPair(t, 10), newPair(t, 11)
	c, err := Load(write(t, dir, first))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.Fields(); f["serial"] != "a" || f["key"] == nil {
		t.Errorf("Fields() = %v, want serial a and the key file", f)
	}
	// Served as the daemon serves it (httptest would put its own
	// certificate first).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		TLSConfig:         c.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          stdlog.New(io.Discard, "", 0), // the refused TLS 1.1 handshake
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	addr := ln.Addr().String()

	roots := x509.NewCertPool()
	for _, p := range []pair{first, second} {
		if !roots.AppendCertsFromPEM(p.cert) {
			t.Fatal("cannot add a test certificate to the pool")
		}
	}
	// served dials a new connection and returns the serial it was shown.
	served := func(t *testing.T) int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(t); got != 10 {
		t.Fatalf("serial %d, want 10", got)
	}
	// TLS 1.1 is refused.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	log, hook := logtest.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan os.Signal)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, reload, log) }()

	write(t, dir, second)
	reload <- syscall.SIGHUP
	reload <- syscall.SIGHUP // Run took the first one once it accepts the second
	if got := served(t); got != 11 {
		t.Errorf("after reload: serial %d, want 11", got)
	}
	write(t, dir, pair{cert: []byte("broken"), key: second.key})
	reload <- syscall.SIGHUP
	reload <- syscall.SIGHUP
	if got := served(t); got != 11 {
		t.Errorf("after a bad reload: serial %d, want 11 (kept)", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	var errs int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			errs++
		}
	}
	if errs != 2 {
		t.Errorf("%d error log lines, want 2 (one per bad reload)", errs)
	}
}
