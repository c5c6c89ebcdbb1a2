package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestJobStream: a job function annotated io.dockerfaas.job.stream: "true"
// (or any job called with Accept: text/event-stream) sends its stdout on as
// it comes: the answer's first line arrives while the process still runs
// (it then waits 60 s before it exits), where a held-back answer would come
// only at its exit. A streamed run that ends gets 200 with its exit code in
// the trailers.
func TestJobStream(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.deployJob("streamed", map[string]string{"io.dockerfaas.job.stream": "true"})
	d.deployJob("held", nil)

	firstLine := func(name string, header map[string]string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel() // the caller going away kills the run
		req, err := http.NewRequestWithContext(ctx, "POST", d.baseURL+"/function/"+name+"?hold=60s", strings.NewReader("first\n"))
		if err != nil {
			return "", err
		}
		req.SetBasicAuth(d.user, d.password)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := d.http.Do(req)
		if err != nil {
			return "", fmt.Errorf("no answer head while the run goes on: %w", err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			return "", fmt.Errorf("status %d: %s", res.StatusCode, b)
		}
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("first line %q: %w", line, err)
		}
		return line, nil
	}
	for _, tt := range []struct {
		name, fn string
		header   map[string]string
	}{
		{"annotation", "streamed", nil},
		{"Accept: text/event-stream", "held", map[string]string{"Accept": "text/event-stream"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			line, err := firstLine(tt.fn, tt.header)
			if err != nil || line != "first\n" {
				t.Fatalf("first line %q, %v; want it while the process still runs", line, err)
			}
		})
	}
	t.Run("exit code in the trailers", func(t *testing.T) {
		res := d.mustCallJob("POST", "/function/streamed?exit=3", []byte("out\n"), nil)
		if res.Status != 200 || string(res.Body) != "out\n" || res.Trailer.Get("X-Exit-Code") != "3" {
			t.Errorf("%s, trailers %v; want 200, out and X-Exit-Code 3 in the trailers", res, res.Trailer)
		}
	})
	t.Run("held back without it", func(t *testing.T) {
		res := d.mustCallJob("POST", "/function/held?exit=3", []byte("out\n"), nil)
		if res.Status != 500 || res.Header.Get("X-Exit-Code") != "3" {
			t.Errorf("%s; want 500 with X-Exit-Code 3", res)
		}
	})
	d.waitJobsSettled(2, 60*time.Second) // the killed runs are gone; each function keeps its pooled one
}
