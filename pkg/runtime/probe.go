package runtime

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// Prober decides whether a replica at addr (host:port) is ready for traffic.
type Prober interface {
	Ready(ctx context.Context, addr string) bool
}

// HTTPProber asks the OpenFaaS watchdog's health route, GET /_/health. An
// image without that route (404) is ready once it accepts connections, which
// the 404 itself proves.
type HTTPProber struct {
	client *http.Client
}

// NewHTTPProber returns a prober whose every attempt is bounded by timeout.
func NewHTTPProber(timeout time.Duration) *HTTPProber {
	tr := &http.Transport{
		Proxy: nil, // never route probes through an environment proxy
		// Replicas are on a local bridge: a connect that takes long means the
		// address is gone (a replica being removed), not a slow network.
		DialContext:         (&net.Dialer{Timeout: min(timeout, 300*time.Millisecond)}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPProber{client: &http.Client{Transport: tr, Timeout: timeout}}
}

// Ready implements Prober.
func (p *HTTPProber) Ready(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/_/health", nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound
}
