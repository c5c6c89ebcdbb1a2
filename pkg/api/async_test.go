package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// asyncFixture is a router with an async queue that is never run, so
// accepted calls stay queued and can be looked at.
func asyncFixture(t *testing.T, guard string, invokeOpen bool) *fixture {
	t.Helper()
	var f *fixture
	f = newFixture(t, func(c *Config) {
		g, err := async.ParseGuard(guard)
		if err != nil {
			t.Fatal(err)
		}
		q, err := async.New(async.Config{Guard: g}, c.Store.(*store.Memory), http.NotFoundHandler())
		if err != nil {
			t.Fatal(err)
		}
		c.Async = q
		c.AsyncMaxBodyBytes = 64
		c.Auth.InvokeOpen = invokeOpen
	})
	if _, err := f.store.Create(context.Background(), types.FunctionDeployment{Service: "fn", Image: "img"}, 1); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAsyncAccept(t *testing.T) {
	f := asyncFixture(t, "", false)
	w := f.send(t, http.MethodPut, "/async-function/fn.openfaas-fn/a%2Fb/c?x=1&y", "hi", func(r *http.Request) {
		r.SetBasicAuth(testUser, testPass)
		r.Header.Set("X-Call-Id", "my-id")
		r.Header.Set("X-Callback-Url", "http://127.0.0.1:9/cb")
		r.Header.Set("X-Custom", "kept")
	})
	if w.Code != http.StatusAccepted || w.Body.Len() != 0 || w.Header().Get("X-Call-Id") != "my-id" || w.Header().Get("X-Start-Time") == "" {
		t.Fatalf("accept: %d %q %v", w.Code, w.Body, w.Header())
	}
	ctx := context.Background()
	c, err := f.store.GetCall(ctx, "my-id")
	if err != nil {
		t.Fatal(err)
	}
	if c.Function != "openfaas-fn/fn" || c.Method != "PUT" || c.Path != "/a%2Fb/c" || c.Query != "x=1&y" || c.CallbackURL != "http://127.0.0.1:9/cb" || c.State != store.CallQueued {
		t.Fatalf("stored call %+v", c)
	}
	p, err := f.store.GetCallPayload(ctx, "my-id")
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Body) != "hi" || p.Header.Get("X-Custom") != "kept" || p.Header.Get("Authorization") != "" || p.Header.Get("X-Callback-Url") != "" {
		t.Fatalf("stored payload %+v", p)
	}
	// The record, and a retried accept of the same id.
	w = f.do(t, http.MethodGet, "/system/async/my-id", "")
	var rec async.Record
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &rec) != nil || rec.CallID != "my-id" || rec.Function != "fn" || rec.State != "queued" {
		t.Fatalf("record: %d %s", w.Code, w.Body)
	}
	w = f.send(t, http.MethodPost, "/async-function/fn", "again", func(r *http.Request) {
		r.SetBasicAuth(testUser, testPass)
		r.Header.Set("X-Call-Id", "my-id")
	})
	if w.Code != http.StatusAccepted || w.Header().Get("X-Call-Id") != "my-id" {
		t.Fatalf("repeated accept: %d %s", w.Code, w.Body)
	}
	if p, _ := f.store.GetCallPayload(ctx, "my-id"); string(p.Body) != "hi" {
		t.Fatalf("a repeated accept replaced the call: %q", p.Body)
	}
	// A new id is generated when none is sent.
	w = f.do(t, http.MethodPost, "/async-function/fn", "x")
	if w.Code != http.StatusAccepted || len(w.Header().Get("X-Call-Id")) != 36 {
		t.Fatalf("accept without an id: %d %v", w.Code, w.Header())
	}
	w = f.do(t, http.MethodGet, "/system/async?function=fn&state=queued", "")
	var list []async.Record
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list) != 2 || list[1].CallID != "my-id" {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
}

func TestAsyncRefusals(t *testing.T) {
	f := asyncFixture(t, "10.0.0.0/8,hooks.example.com", false)
	big := strings.Repeat("x", 65)
	cases := []struct {
		name, method, target, body string
		headers                    map[string]string
		want                       int
	}{
		{"GET", "GET", "/async-function/fn", "", nil, 405},
		{"HEAD", "HEAD", "/async-function/fn", "", nil, 405},
		{"OPTIONS", "OPTIONS", "/async-function/fn", "", nil, 405},
		{"unknown function", "POST", "/async-function/nope", "", nil, 404},
		{"unknown namespace", "POST", "/async-function/fn.dev", "", nil, 404},
		{"bad name", "POST", "/async-function/f%20n", "", nil, 400},
		{"callback ftp", "POST", "/async-function/fn", "", map[string]string{"X-Callback-Url": "ftp://10.0.0.1/x"}, 400},
		{"callback relative", "POST", "/async-function/fn", "", map[string]string{"X-Callback-Url": "/cb"}, 400},
		{"callback junk", "POST", "/async-function/fn", "", map[string]string{"X-Callback-Url": "http://%zz"}, 400},
		{"callback host not allowed", "POST", "/async-function/fn", "", map[string]string{"X-Callback-Url": "http://169.254.169.254/latest"}, 400},
		{"call id with a space", "POST", "/async-function/fn", "", map[string]string{"X-Call-Id": "a b"}, 400},
		{"call id too long", "POST", "/async-function/fn", "", map[string]string{"X-Call-Id": strings.Repeat("a", 129)}, 400},
		{"body too large", "POST", "/async-function/fn", big, nil, 413},
		{"cancel unknown", "DELETE", "/async-function/nope", "", nil, 404},
		{"cancel with a path", "DELETE", "/async-function/id/x", "", nil, 404},
		{"record unknown", "GET", "/system/async/nope", "", nil, 404},
		{"list bad state", "GET", "/system/async?state=done", "", nil, 400},
		{"list bad limit", "GET", "/system/async?limit=0", "", nil, 400},
		{"list bad function", "GET", "/system/async?function=a%2Fb", "", nil, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.send(t, c.method, c.target, c.body, func(r *http.Request) {
				r.SetBasicAuth(testUser, testPass)
				for k, v := range c.headers {
					r.Header.Set(k, v)
				}
			})
			if w.Code != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.target, w.Code, w.Body, c.want)
			}
			if c.want == 405 && w.Header().Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
	calls, err := f.store.ListCalls(context.Background())
	if err != nil || len(calls) != 0 {
		t.Fatalf("refused calls were stored: %v %v", calls, err)
	}
	// Allowed callbacks pass.
	for _, cb := range []string{"http://10.1.2.3/cb", "https://hooks.example.com/x"} {
		w := f.send(t, http.MethodPost, "/async-function/fn", "", func(r *http.Request) {
			r.SetBasicAuth(testUser, testPass)
			r.Header.Set("X-Callback-Url", cb)
		})
		if w.Code != http.StatusAccepted {
			t.Errorf("callback %s: %d %s", cb, w.Code, w.Body)
		}
	}
}

func TestAsyncCancel(t *testing.T) {
	f := asyncFixture(t, "", true)
	accept := f.send(t, http.MethodPost, "/async-function/fn", "", func(r *http.Request) { r.Header.Set("X-Call-Id", "c1") })
	if accept.Code != http.StatusAccepted {
		t.Fatalf("accept without credentials when INVOKE_AUTH is off: %d", accept.Code)
	}
	if w := f.send(t, http.MethodDelete, "/async-function/c1", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("cancel without credentials: %d", w.Code)
	}
	w := f.do(t, http.MethodDelete, "/async-function/c1", "")
	var rec async.Record
	if w.Code != http.StatusAccepted || json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&rec) != nil || rec.State != "cancelled" {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, http.MethodDelete, "/async-function/c1", ""); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "cancelled") {
		t.Fatalf("second cancel: %d %s", w.Code, w.Body)
	}
	if w := f.send(t, http.MethodGet, "/system/async/c1", "", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("record without credentials: %d", w.Code)
	}
}

func TestDeployRefusesBadAsyncAnnotations(t *testing.T) {
	f := asyncFixture(t, "", false)
	for _, ann := range []string{
		`{"io.dockerfaas.async.max-inflight":"0"}`,
		`{"com.openfaas.retry.attempts":"many"}`,
		`{"com.openfaas.retry.codes":"5000"}`,
		`{"com.openfaas.retry.min_wait":"soon"}`,
		`{"com.openfaas.retry.min_wait":"10s","com.openfaas.retry.max_wait":"1s"}`,
	} {
		w := f.do(t, http.MethodPost, "/system/functions", `{"service":"x","image":"img","annotations":`+ann+`}`)
		if w.Code != http.StatusBadRequest {
			t.Errorf("annotations %s: %d %s", ann, w.Code, w.Body)
		}
	}
	w := f.do(t, http.MethodPost, "/system/functions", `{"service":"x","image":"img","annotations":{"com.openfaas.retry.min_wait":"5m"}}`)
	if w.Code != http.StatusAccepted {
		t.Errorf("min_wait alone above the default max: %d %s", w.Code, w.Body)
	}
}
