// Command baseproxy is the yardstick of `make bench`: the smallest sensible
// Go reverse proxy, one httputil.ReverseProxy hop with a tuned keep-alive
// transport and nothing else (no auth, no routing, no metrics). dockerfaasd's
// invocation path is measured against it, because matching one ideal hop,
// not the direct path, is the fair goal (DESIGN.md §6).
//
//	baseproxy -listen 127.0.0.1:9000 -target http://172.18.0.2:8080
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "upstream base URL, e.g. http://172.18.0.2:8080")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		log.Fatalf("baseproxy: -target %q: want an absolute URL", *target)
	}

	// The same tuning as dockerfaasd's transport to replicas, so the
	// comparison is about the code in between, not the pool sizes.
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: tr,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("baseproxy: %v", err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	// The driver reads the address from the first line of output.
	log.SetFlags(0)
	log.Printf("listening on %s", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("baseproxy: %v", err)
	}
}
