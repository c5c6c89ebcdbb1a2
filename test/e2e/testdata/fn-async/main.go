// Command fn-async is a test function for the async tests of the dockerfaasd
// e2e suite. It listens on :8080 and answers every path with JSON describing
// the request it received (method, path, raw query, body, headers), which
// attempt of its X-Call-Id this was, and its hostname. It keeps, in memory,
// every X-Call-Id it saw, so a test can tell which calls ran and how often.
//
// Query parameters of an invocation (any path but the special ones):
//
//	sleep=DUR       wait that long before answering (cut short when the caller goes away)
//	fail=N          answer 503 (or code=NNN) to the first N attempts of the X-Call-Id, then 200
//	code=NNN        the status of the failing answers of fail=N
//	retryafter=S    add Retry-After: S to the failing answers of fail=N
//	status=NNN      always answer NNN
//
// Every answer carries X-Fn-Attempt (the attempt number of its X-Call-Id)
// and Content-Type: application/json.
//
// Special paths (not counted as invocations):
//
//	/_/health   200 "OK"
//	/_stats     JSON: per X-Call-Id the start times (Unix ns) of its
//	            attempts, the ids whose attempt was aborted by the caller,
//	            the requests in flight now and the most ever in flight at once
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
	"sync"
	"syscall"
	"time"
)

// reply is the JSON body of an invocation's answer.
type reply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    string            `json:"query"`
	Body     string            `json:"body"`
	Headers  map[string]string `json:"headers"`
	CallID   string            `json:"callId"`
	Attempt  int               `json:"attempt"`
	Hostname string            `json:"hostname"`
}

// stats is the body of GET /_stats.
type stats struct {
	Calls       map[string][]int64 `json:"calls"`
	Aborted     []string           `json:"aborted"`
	Inflight    int                `json:"inflight"`
	MaxInflight int                `json:"maxInflight"`
	Total       int                `json:"total"`
}

type state struct {
	mu sync.Mutex
	st stats
}

// begin records the start of an attempt of id and returns its number.
func (s *state) begin(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Calls[id] = append(s.st.Calls[id], time.Now().UnixNano())
	s.st.Total++
	s.st.Inflight++
	s.st.MaxInflight = max(s.st.MaxInflight, s.st.Inflight)
	return len(s.st.Calls[id])
}

// end records the end of an attempt; aborted when the caller went away.
func (s *state) end(id string, aborted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Inflight--
	if aborted {
		s.st.Aborted = append(s.st.Aborted, id)
	}
}

func (s *state) snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.st)
}

func main() {
	host, _ := os.Hostname()
	s := &state{st: stats{Calls: map[string][]int64{}, Aborted: []string{}}}

	mux := http.NewServeMux()
	mux.HandleFunc("/_/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "OK")
	})
	mux.HandleFunc("/_stats", func(w http.ResponseWriter, _ *http.Request) {
		b, err := s.snapshot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Call-Id")
		attempt := s.begin(id)
		aborted := false
		defer func() { s.end(id, aborted) }()

		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		if v := q.Get("sleep"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 10*time.Minute {
				http.Error(w, "bad sleep "+v, http.StatusBadRequest)
				return
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				aborted = true
				log.Printf("call %s attempt %d aborted by the caller", id, attempt)
				return
			}
		}
		code := http.StatusOK
		if v := q.Get("status"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 200 || n > 599 {
				http.Error(w, "bad status "+v, http.StatusBadRequest)
				return
			}
			code = n
		}
		if v := q.Get("fail"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				http.Error(w, "bad fail "+v, http.StatusBadRequest)
				return
			}
			if attempt <= n {
				code = http.StatusServiceUnavailable
				if c := q.Get("code"); c != "" {
					if code, err = strconv.Atoi(c); err != nil || code < 200 || code > 599 {
						http.Error(w, "bad code "+c, http.StatusBadRequest)
						return
					}
				}
				if ra := q.Get("retryafter"); ra != "" {
					w.Header().Set("Retry-After", ra)
				}
			}
		}
		out := reply{
			Method:   r.Method,
			Path:     r.URL.Path,
			Query:    r.URL.RawQuery,
			Body:     string(body),
			Headers:  map[string]string{},
			CallID:   id,
			Attempt:  attempt,
			Hostname: host,
		}
		for k, vs := range r.Header {
			out.Headers[k] = vs[0]
			for _, v := range vs[1:] {
				out.Headers[k] += ", " + v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Fn-Attempt", strconv.Itoa(attempt))
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
	log.Printf("fn-async %s listening on :8080", host)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
}
