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
//	/sleep?d=2s  waits that long before answering (exec timeout tests)
//	/file?path=P answers with the content of file P (404 if absent), e.g. a secret
//	/exit?code=N answers, then exits with code N (a replica dying on its own)
//	/log?text=T  writes T as one line to stdout and answers
//	/dial?addr=A opens a TCP connection to A (host:port) with a 1 s timeout and answers
//	             200 "connected", or 200 with the dial error (isolation tests)
//
// Every request is also logged as one line on stderr ("request METHOD PATH"),
// so log tests have something to read. With EXIT_AFTER (a Go duration) set,
// the process exits with code 3 that long after start: a crash loop. With
// SHUTDOWN_GRACE (a Go duration) set, SIGTERM lets running calls finish
// within that time before it exits; without, it exits at once.
//
// It is built by the harness into a FROM scratch image.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
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
	if v := os.Getenv("EXIT_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("EXIT_AFTER: %v", err)
		}
		time.AfterFunc(d, func() {
			log.Printf("EXIT_AFTER %s reached, exiting", d)
			os.Exit(3)
		})
	}
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > 10*time.Minute {
			http.Error(w, "bad duration", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
			_, _ = io.WriteString(w, "slept "+d.String())
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			code = 1
		}
		_, _ = io.WriteString(w, "exiting")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(code)
		}()
	})
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), time.Second)
		if err != nil {
			_, _ = io.WriteString(w, err.Error())
			return
		}
		_ = conn.Close()
		_, _ = io.WriteString(w, "connected")
	})
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		text := r.URL.Query().Get("text")
		_, _ = os.Stdout.WriteString(text + "\n")
		_, _ = io.WriteString(w, "logged")
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

	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_/health" {
			log.Printf("request %s %s", r.Method, r.URL.Path)
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: ":8080", Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	// Without SHUTDOWN_GRACE it exits as soon as SIGTERM closes the
	// listener, cutting calls short, like many functions; with it, it
	// finishes the calls it has (up to that long) first, as the OpenFaaS
	// watchdogs do.
	grace, graceful := 2*time.Second, false
	if v := os.Getenv("SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("SHUTDOWN_GRACE: %v", err)
		}
		grace, graceful = d, true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("fn-echo %s listening on :8080", host)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
	if graceful {
		<-drained
	}
}
