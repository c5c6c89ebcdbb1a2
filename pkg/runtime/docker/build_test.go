package docker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
)

// sendTest sends the build test's method, path (with its query) and body
// as given, and keeps the status and the first 4 KiB of the answer.
func TestSendTest(t *testing.T) {
	type seen struct{ method, uri, body string }
	got := make(chan seen, 1)
	big := strings.Repeat("x", testBodyMax+100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), string(b)}
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "answer to "+r.Method)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name string
		req  runtime.ImageTest
		want seen
		body string
	}{
		{"defaults", runtime.ImageTest{}, seen{"GET", "/", ""}, "answer to GET"},
		{"post with body and query", runtime.ImageTest{Method: "POST", Path: "/sum?a=1", Body: []byte("1 2")}, seen{"POST", "/sum?a=1", "1 2"}, "answer to POST"},
		{"path without slash", runtime.ImageTest{Method: "PUT", Path: "x", Body: []byte(`{"a":1}`)}, seen{"PUT", "/x", `{"a":1}`}, "answer to PUT"},
		{"answer cut", runtime.ImageTest{Path: "/big"}, seen{"GET", "/big", ""}, big[:testBodyMax]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Timeout = 5 * time.Second
			res, err := sendTest(t.Context(), addr, tc.req)
			if err != nil {
				t.Fatalf("sendTest: %v", err)
			}
			select {
			case s := <-got:
				if s != tc.want {
					t.Errorf("server got %+v, want %+v", s, tc.want)
				}
			default:
				t.Fatal("the server got no request")
			}
			wantStatus := http.StatusCreated
			if tc.req.Path == "/big" {
				wantStatus = http.StatusOK
			}
			if res.Status != wantStatus || string(res.Body) != tc.body {
				t.Errorf("result %d %.40q (%d bytes), want %d %.40q", res.Status, res.Body, len(res.Body), wantStatus, tc.body)
			}
		})
	}
}

// TestImage removes the throwaway container and network it made, whichever
// step fails.
func TestTestImageCleansUp(t *testing.T) {
	const image = "example/built:1"
	tests := []struct {
		name, failOp, want string
	}{
		{"container create fails", "create", "create container"},
		{"start fails", "start", "start container"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := fake.New(image)
			eng.SetFail(func(op, _ string) error {
				if op == tc.failOp {
					return errors.New("injected")
				}
				return nil
			})
			r := New(Config{Instance: "test-inst"}, eng)
			_, err := r.TestImage(context.Background(), runtime.ImageTest{Image: image})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("TestImage = %v, want an error with %q", err, tc.want)
			}
			var created []string
			for _, a := range eng.Actions() {
				if strings.HasPrefix(a, "create-network ") {
					created = append(created, a)
				}
			}
			if len(created) != 1 || !strings.Contains(created[0], "-build-") {
				t.Errorf("networks created %v, want one build-test network", created)
			}
			if nets := eng.NetworkNames(); len(nets) != 0 {
				t.Errorf("networks left %v", nets)
			}
			if cs, _ := eng.ListContainers(context.Background(), nil); len(cs) != 0 {
				t.Errorf("containers left %+v", cs)
			}
		})
	}
}
