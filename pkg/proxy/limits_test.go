package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
)

// slowBackend answers after d, or when the call is abandoned.
func slowBackend(t *testing.T, d time.Duration) faas.Endpoint {
	t.Helper()
	release := make(chan struct{})
	_, ep := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(d):
			_, _ = io.WriteString(w, "done")
		}
	}))
	t.Cleanup(func() { close(release) })
	return ep
}

func TestPerFunctionExecTimeout(t *testing.T) {
	tests := []struct {
		name     string
		fnExec   time.Duration // published with the endpoints; 0 = default
		def      time.Duration
		wantCode int
	}{
		{"function timeout shorter than default", 100 * time.Millisecond, time.Minute, http.StatusGatewayTimeout},
		{"function timeout longer than default", 5 * time.Second, 100 * time.Millisecond, http.StatusOK},
		{"default applies without one", 0, 100 * time.Millisecond, http.StatusGatewayTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache()
			c.Set("openfaas-fn/slow", []faas.Endpoint{slowBackend(t, 500*time.Millisecond)})
			c.SetTimeouts("openfaas-fn/slow", faas.Timeouts{Exec: tt.fnExec})
			base := front(t, New(c, Options{Timeout: tt.def, Log: quietLogger()}))
			resp, body := get(t, base+"/function/slow")
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.wantCode)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	_, ep := backend(t, echoHandler("a"))
	c := NewCache()
	c.Set("openfaas-fn/echo", []faas.Endpoint{ep})
	base := front(t, New(c, Options{MaxBodyBytes: 1024, Log: quietLogger()}))

	tests := []struct {
		name     string
		size     int
		chunked  bool
		wantCode int
	}{
		{"under the limit", 1000, false, http.StatusOK},
		{"exactly the limit", 1024, false, http.StatusOK},
		{"declared too large", 4096, false, http.StatusRequestEntityTooLarge},
		{"streamed too large", 64 << 10, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, base+"/function/echo", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, got := do(t, req)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, got, tt.wantCode)
			}
			if tt.wantCode == http.StatusRequestEntityTooLarge && !strings.Contains(string(got), "larger than 1024 bytes") {
				t.Fatalf("413 body = %q", got)
			}
		})
	}
}
