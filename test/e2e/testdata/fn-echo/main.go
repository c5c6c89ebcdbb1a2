// Command fn-echo is a test function for the dockerfaasd e2e suite. It listens
// on :8080 and answers with a JSON description of the request it received
// (method, path, raw query, body, its whole environment and the request
// headers), so a test can see exactly what the daemon's proxy forwarded.
//
// Special paths:
//
//	/_/health    200 "OK" (503 until HEALTH_DELAY, a Go duration, has passed since start)
//	/redirect    302 with Location: /target
//	/status/NNN  answers with status NNN (and the usual JSON body)
//
// It is built by the harness into a FROM scratch image.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reply is the JSON body fn-echo answers with.
type reply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query"`
	Body     string            `json:"body"`
	Env      map[string]string `json:"env"`
	Headers  map[string]string `json:"headers"`
	Hostname string            `json:"hostname"`
}

func main() {
	start := time.Now()
	var healthDelay time.Duration
	if v := os.Getenv("HEALTH_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("HEALTH_DELAY: %v", err)
		}
		healthDelay = d
	}
	host, _ := os.Hostname()

	mux := http.NewServeMux()
	mux.HandleFunc("/_/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if time.Since(start) < healthDelay {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("starting"))
			return
		}
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		code := http.StatusOK
		if s, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 200 || n > 599 {
				http.Error(w, "bad status "+s, http.StatusBadRequest)
				return
			}
			code = n
		}
		out := reply{
			Method:   r.Method,
			Path:     r.URL.Path,
			Query:    r.URL.RawQuery,
			Body:     string(body),
			Env:      map[string]string{},
			Headers:  map[string]string{},
			Hostname: host,
		}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			out.Env[k] = v
		}
		for k, vs := range r.Header {
			out.Headers[k] = strings.Join(vs, ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(out)
	})

	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("fn-echo %s listening on :8080", host)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
}
