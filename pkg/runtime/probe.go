package runtime

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
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

// Probes run readiness probes concurrently with one Prober.
type Probes struct {
	Prober Prober
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Limit bounds how many run at once (0: no bound).
	Limit int
}

// Each probes every address of addrs concurrently and calls ready with
// its index and the answer, from that probe's own goroutine; it returns
// once all are done.
func (p Probes) Each(ctx context.Context, addrs []string, ready func(i int, ok bool)) {
	var sem chan struct{}
	if p.Limit > 0 {
		sem = make(chan struct{}, p.Limit)
	}
	var wg sync.WaitGroup
	for i, addr := range addrs {
		if sem != nil {
			sem <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer func() {
				if sem != nil {
					<-sem
				}
				wg.Done()
			}()
			pctx, cancel := context.WithTimeout(ctx, p.Timeout)
			defer cancel()
			ready(i, p.Prober.Ready(pctx, addr))
		}()
	}
	wg.Wait()
}

// Unready probes the published addresses of each of keys (addrs gives
// them, called once per key) and returns the keys with one that stopped
// answering, in no particular order. A probe cut short because ctx ended
// is no failure.
func (p Probes) Unready(ctx context.Context, keys []string, addrs func(key string) []string) []string {
	var of, all []string
	for _, k := range keys {
		for _, a := range addrs(k) {
			of, all = append(of, k), append(all, a)
		}
	}
	var mu sync.Mutex
	failed := map[string]bool{}
	p.Each(ctx, all, func(i int, ok bool) {
		if !ok && ctx.Err() == nil {
			mu.Lock()
			failed[of[i]] = true
			mu.Unlock()
		}
	})
	out := make([]string, 0, len(failed))
	for k := range failed {
		out = append(out, k)
	}
	return out
}
