package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthzURL(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"defaults", nil, "http://127.0.0.1:8080/healthz"},
		{"port", map[string]string{"GATEWAY_PORT": "9090"}, "http://127.0.0.1:9090/healthz"},
		{"all IPv4 interfaces", map[string]string{"BIND_ADDRESS": "0.0.0.0"}, "http://127.0.0.1:8080/healthz"},
		{"all IPv6 interfaces", map[string]string{"BIND_ADDRESS": "::"}, "http://127.0.0.1:8080/healthz"},
		{"one address", map[string]string{"BIND_ADDRESS": "10.1.2.3", "GATEWAY_PORT": "81"}, "http://10.1.2.3:81/healthz"},
		{"one IPv6 address", map[string]string{"BIND_ADDRESS": "::1"}, "http://[::1]:8080/healthz"},
		{"TLS", map[string]string{"TLS_CERT_FILE": "/etc/tls/cert.pem"}, "https://127.0.0.1:8080/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := healthzURL(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Fatalf("healthzURL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHealthcheckExitCodes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })
	mux.HandleFunc("/sick", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()

	// A port nothing listens on: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	_, srvPort, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr string
	}{
		{"healthy", []string{"-url", srv.URL + "/healthz"}, nil, 0, ""},
		{"from the environment", nil, map[string]string{"GATEWAY_PORT": srvPort}, 0, ""},
		{"self-signed TLS", []string{"-url", tlsSrv.URL + "/healthz"}, nil, 0, ""},
		{"not 200", []string{"-url", srv.URL + "/sick"}, nil, 1, "status 503"},
		{"nothing listening", []string{"-url", "http://" + closed + "/healthz"}, nil, 1, "connection refused"},
		{"help", []string{"-h"}, nil, 0, "usage: dockerfaasd healthcheck"},
		{"bad flag", []string{"-nope"}, nil, 2, "flag provided but not defined"},
		{"extra argument", []string{"x"}, nil, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runHealthcheck(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
			if code == 0 && tt.stderr == "" && stdout.String() != "ok\n" {
				t.Fatalf("stdout %q, want ok", stdout.String())
			}
		})
	}
}
