package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck is `dockerfaasd healthcheck`: one GET of the local daemon's
// /healthz, exit 0 on 200 and 1 otherwise. The image is FROM scratch, with no
// shell or curl for a container healthcheck, so the binary probes itself.
// It reads the daemon's own settings from the environment it shares with it
// (GATEWAY_PORT, BIND_ADDRESS, TLS_CERT_FILE), so it needs no flags there.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dockerfaasd healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", healthzURL(getenv), "URL to GET (default: /healthz of the daemon these settings describe)")
	timeout := fs.Duration("timeout", 3*time.Second, "time limit of the request")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: dockerfaasd healthcheck [-url URL] [-timeout D]\n\nExits 0 when the daemon answers 200 on /healthz, 1 otherwise.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dockerfaasd healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := probe(ctx, *url, *timeout); err != nil {
		fmt.Fprintln(stderr, "dockerfaasd healthcheck:", err)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// healthzURL is the daemon's /healthz as seen from its own host or
// container: loopback unless it listens on one address only.
func healthzURL(getenv func(string) string) string {
	host := getenv("BIND_ADDRESS")
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	port := getenv("GATEWAY_PORT")
	if port == "" {
		port = "8080"
	}
	scheme := "http"
	if getenv("TLS_CERT_FILE") != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/healthz"
}

// probe GETs url once. Certificates are not verified: the certificate
// names the public host, not the loopback address probed, and a liveness
// check sends no credentials.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
	}
	// Never through an HTTP_PROXY of the environment.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", url, res.StatusCode)
	}
	return nil
}
