package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/internal/capturetest"
	"github.com/dockerfaasd/dockerfaasd/pkg/async"
	"github.com/dockerfaasd/dockerfaasd/pkg/scaling"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// Fuzz targets for every request decoder and name parser of the API. Each
// runs its seeds as an ordinary test; hack/fuzz.sh fuzzes each for a while.
// The invariants: no panic and no 5xx; a refused request (4xx) answers a
// non-empty plain-text message and leaves the store exactly as it was; an
// accepted one changes only what it names, and what it stored validates and
// is accepted again when sent back.

// fuzzSecretValue is the value of the fixture's secret; no listing may
// contain it.
const fuzzSecretValue = "fuzz-secret-value-5d41402abc4b2a76"

// fuzzCaptures returns the requests faas-cli sent to the gateway in the
// captures, for seeds (see capturetest.Seeds).
func fuzzCaptures(f *testing.F) []capture {
	f.Helper()
	return gatewayRequests(capturetest.Seeds(f))
}

// noLogs is a LogStreamer with no lines, so /system/logs answers without
// Docker.
type noLogs struct{}

func (noLogs) Stream(context.Context, logs.Request, func(logs.Message) error) error { return nil }

// newFuzzFixture is a router over a store holding a little of everything:
// the secret api-key, namespace dev with a secret, and the function hello
// in both namespaces, so that updates, scales and deletes can succeed.
func newFuzzFixture(t *testing.T) *fixture {
	t.Helper()
	invoke := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	f := newFixture(t, func(c *Config) {
		c.Invoke = invoke
		c.Logs = noLogs{}
		c.Debug = invoke
		c.Metrics = invoke
		q, err := async.New(async.Config{}, c.Store.(*store.Memory), invoke)
		if err != nil {
			t.Fatal(err)
		}
		c.Async = q // never run: accepted calls stay queued
	})
	ctx := context.Background()
	if _, err := f.store.UpdateSecret(ctx, "", "api-key", []byte(fuzzSecretValue)); err != nil {
		t.Fatal(err)
	}
	f.createNamespace(t, "dev")
	if _, err := f.store.CreateSecret(ctx, "dev", "api-key", []byte(fuzzSecretValue)); err != nil {
		t.Fatal(err)
	}
	f.deploy(t, helloBody)
	f.deploy(t, devHello)
	return f
}

// fuzzServe sends one request the way it would arrive from the network:
// the request line and headers go through http.ReadRequest, so a target
// that no client could send (spaces, control bytes, a bad URL) is skipped,
// reported as false.
func (f *fixture) fuzzServe(method, target string, body []byte) (*httptest.ResponseRecorder, bool) {
	var raw bytes.Buffer
	fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, target, len(body))
	raw.Write(body)
	r, err := http.ReadRequest(bufio.NewReader(&raw))
	if err != nil {
		return nil, false
	}
	r.RemoteAddr = "127.0.0.1:1234"
	r.SetBasicAuth(testUser, testPass)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w, true
}

// fuzzExchange is one request sent with fuzzDo: the answer, and the store
// before and after it, which the invariants are about.
type fuzzExchange struct {
	w             *httptest.ResponseRecorder
	before, after storeState
	changed       []string // before.changes(after)
}

// fuzzDo sends one request with fuzzServe and records the store around it;
// false means no client could send the request (and nothing was sent).
func (f *fixture) fuzzDo(t *testing.T, method, target string, body []byte) (fuzzExchange, bool) {
	t.Helper()
	before := f.state(t)
	w, ok := f.fuzzServe(method, target, body)
	if !ok {
		return fuzzExchange{}, false
	}
	after := f.state(t)
	return fuzzExchange{w: w, before: before, after: after, changed: before.changes(after)}, true
}

// storeState is everything stored, record by record, as JSON, keyed
// "function:NS/NAME", "secret:NS/NAME" (with the value), "namespace:NAME"
// and "call:ID".
type storeState map[string]string

func (f *fixture) state(t *testing.T) storeState {
	t.Helper()
	ctx := context.Background()
	s := storeState{}
	fns, err := f.store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fns {
		b, _ := json.Marshal(fn)
		s["function:"+fn.Key()] = string(b)
	}
	secrets, err := f.store.ListSecrets(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range secrets {
		sec, err := f.store.GetSecret(ctx, info.Namespace, info.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(info)
		s["secret:"+info.Key()] = string(b) + " value=" + strconv.Quote(string(sec.Value))
	}
	nss, err := f.store.ListNamespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		b, _ := json.Marshal(ns)
		s["namespace:"+ns.Name] = string(b)
	}
	calls, err := f.store.ListCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		b, _ := json.Marshal(c)
		s["call:"+c.ID] = string(b)
	}
	return s
}

// changes lists the keys added (+), removed (-) or changed (~) from s to after.
func (s storeState) changes(after storeState) []string {
	var out []string
	for k, v := range s {
		switch w, ok := after[k]; {
		case !ok:
			out = append(out, "-"+k)
		case w != v:
			out = append(out, "~"+k)
		}
	}
	for k := range after {
		if _, ok := s[k]; !ok {
			out = append(out, "+"+k)
		}
	}
	sort.Strings(out)
	return out
}

// checkRefused requires a refusal's plain-text message and an untouched store.
func checkRefused(t *testing.T, w *httptest.ResponseRecorder, changed []string) {
	t.Helper()
	if len(changed) > 0 {
		t.Fatalf("refused with %d %q, but the store changed: %v", w.Code, w.Body.String(), changed)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("refusal %d with Content-Type %q, want text/plain", w.Code, ct)
	}
	if strings.TrimSpace(w.Body.String()) == "" {
		t.Fatalf("refusal %d without a message", w.Code)
	}
}

// checkOnly requires that changed holds at most the allowed changes.
func checkOnly(t *testing.T, changed []string, allowed ...string) {
	t.Helper()
	for _, c := range changed {
		ok := false
		for _, a := range allowed {
			ok = ok || c == a
		}
		if !ok {
			t.Fatalf("store changes %v, want at most %v", changed, allowed)
		}
	}
}

// storedFunction is the record under key, decoded from a state.
func storedFunction(t *testing.T, s storeState, key string) store.Function {
	t.Helper()
	var fn store.Function
	if err := json.Unmarshal([]byte(s["function:"+key]), &fn); err != nil {
		t.Fatalf("stored function %s: %v", key, err)
	}
	return fn
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzDeployBody fuzzes POST and PUT /system/functions.
func FuzzDeployBody(f *testing.F) {
	for _, b := range []string{
		helloBody, devHello, `{"service":"x","image":"i"}`, `{"service":"hello","image":"i","labels":{"com.openfaas.scale.min":"3"}}`,
		`{"service":"a","image":"i","limits":{"memory":"5Mi","cpu":"0.5"}}`, `{"service":"a","image":"i","envVars":{"exec_timeout":"2s"}}`,
		`{"service":"../x","image":"i"}`, `{"service":"a","image":"i","namespace":"nope"}`, `{"service":1}`, `[]`, `{`, ``,
	} {
		f.Add(false, b)
		f.Add(true, b)
	}
	for _, c := range fuzzCaptures(f) {
		if c.Path == "/system/functions" && (c.Method == http.MethodPost || c.Method == http.MethodPut) {
			f.Add(c.Method == http.MethodPut, c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, put bool, body string) {
		fx := newFuzzFixture(t)
		method := http.MethodPost
		if put {
			method = http.MethodPut
		}
		x, _ := fx.fuzzDo(t, method, "/system/functions", []byte(body))
		w, after, changed := x.w, x.after, x.changed
		switch w.Code {
		case http.StatusAccepted:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge:
			checkRefused(t, w, changed)
			return
		default:
			t.Fatalf("%s %q: %d %q", method, body, w.Code, w.Body.String())
		}
		var spec types.FunctionDeployment
		if err := json.Unmarshal([]byte(body), &spec); err != nil {
			t.Fatalf("accepted a body json.Unmarshal refuses: %v", err)
		}
		ns := spec.Namespace
		if ns == "" {
			ns = store.DefaultNamespace
		}
		key := store.Key(ns, spec.Service)
		if put {
			checkOnly(t, changed, "~function:"+key)
		} else {
			checkOnly(t, changed, "+function:"+key)
			if len(changed) != 1 {
				t.Fatalf("a 202 POST changed %v, want +function:%s", changed, key)
			}
		}
		rec := storedFunction(t, after, key)
		if got, want := mustJSONString(t, rec.Spec), mustJSONString(t, spec); got != want {
			t.Fatalf("stored spec differs from the request:\n got  %s\n want %s", got, want)
		}
		// What was stored validates again and is accepted again as sent
		// back: nothing is accepted that a later read-back could not use.
		again := rec.Spec
		if _, p, err := validateDeployment(&again, effectiveDefaults(scaling.Defaults{}, DefaultMaxReplicas)); err != nil {
			t.Fatalf("stored spec no longer validates: %v", err)
		} else if rec.Replicas < p.Min || rec.Replicas > p.Max {
			t.Fatalf("stored replicas %d outside the labels' range [%d, %d]", rec.Replicas, p.Min, p.Max)
		}
		fx2 := newFuzzFixture(t)
		w2, ok := fx2.fuzzServe(method, "/system/functions", []byte(mustJSONString(t, rec.Spec)))
		if !ok || w2.Code != http.StatusAccepted {
			t.Fatalf("the stored spec sent back with %s: %d %q, want 202", method, w2.Code, w2.Body.String())
		}
	})
}

// FuzzScaleBody fuzzes POST /system/scale-function/{name}: body, path and query.
func FuzzScaleBody(f *testing.F) {
	for _, s := range []struct{ name, query, body string }{
		{"hello", "", `{"serviceName":"hello","replicas":3}`},
		{"hello", "", `{"serviceName":"hello","namespace":"dev","replicas":0}`},
		{"hello", "namespace=dev", `{"replicas":2}`},
		{"hello", "", `{"serviceName":"other","replicas":2}`},
		{"hello", "", `{"replicas":-1}`},
		{"hello", "", `{"replicas":1e30}`},
		{"hello", "", `{"replicas":"2"}`},
		{"%2e%2e", "", `{"replicas":1}`},
		{"a%2Fb", "", `{"replicas":1}`},
		{"hello", "namespace=..%2F", `{"replicas":1}`},
		{"hello", "", `{"replicas":101}`},
		{"hello", "", `{`},
	} {
		f.Add(s.name, s.query, s.body)
	}
	f.Fuzz(func(t *testing.T, name, query, body string) {
		fx := newFuzzFixture(t)
		target := withQuery("/system/scale-function/"+name, query)
		x, ok := fx.fuzzDo(t, http.MethodPost, target, []byte(body))
		if !ok {
			return
		}
		w, before, after, changed := x.w, x.before, x.after, x.changed
		switch w.Code {
		case http.StatusAccepted:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
			checkRefused(t, w, changed)
			return
		default:
			t.Fatalf("POST %q %q: %d %q", target, body, w.Code, w.Body.String())
		}
		if len(changed) > 1 {
			t.Fatalf("a scale changed %v", changed)
		}
		for _, c := range changed {
			key, ok := strings.CutPrefix(c, "~function:")
			if !ok {
				t.Fatalf("a scale changed %v", changed)
			}
			old, cur := storedFunction(t, before, key), storedFunction(t, after, key)
			if mustJSONString(t, old.Spec) != mustJSONString(t, cur.Spec) {
				t.Fatalf("a scale changed the spec of %s", key)
			}
			if cur.Replicas > DefaultMaxReplicas || cur.Replicas == old.Replicas {
				t.Fatalf("%s scaled from %d to %d", key, old.Replicas, cur.Replicas)
			}
		}
	})
}

// FuzzDeleteBody fuzzes DELETE /system/functions: body and query.
func FuzzDeleteBody(f *testing.F) {
	for _, s := range []struct{ query, body string }{
		{"", `{"functionName":"hello"}`},
		{"", `{"functionName":"hello","namespace":"dev"}`},
		{"namespace=dev", `{"functionName":"hello"}`},
		{"", `{"functionName":"../hello"}`},
		{"", `{"functionName":"hello","namespace":"nope"}`},
		{"", `{"functionName":""}`},
		{"", `{}`},
		{"", `null`},
	} {
		f.Add(s.query, s.body)
	}
	for _, c := range fuzzCaptures(f) {
		if c.Path == "/system/functions" && c.Method == http.MethodDelete {
			f.Add(c.RawQuery, c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		fx := newFuzzFixture(t)
		target := withQuery("/system/functions", query)
		x, ok := fx.fuzzDo(t, http.MethodDelete, target, []byte(body))
		if !ok {
			return
		}
		w, changed := x.w, x.changed
		switch w.Code {
		case http.StatusAccepted:
			if len(changed) != 1 || !strings.HasPrefix(changed[0], "-function:") {
				t.Fatalf("a 202 delete changed %v, want one function removed", changed)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			checkRefused(t, w, changed)
		default:
			t.Fatalf("DELETE %q %q: %d %q", target, body, w.Code, w.Body.String())
		}
	})
}

// FuzzSecretBody fuzzes /system/secrets: every method, body and query.
func FuzzSecretBody(f *testing.F) {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}
	for _, s := range []struct {
		m           uint8
		query, body string
	}{
		{0, "", ""},
		{0, "namespace=dev", ""},
		{0, "namespace=../x", ""},
		{1, "", `{"name":"new","value":"v"}`},
		{1, "", `{"name":"new","rawValue":"dg=="}`},
		{1, "", `{"name":"../x","value":"v"}`},
		{1, "", `{"name":"a/b","value":"v"}`},
		{1, "", `{"name":"a\u0000b","value":"v"}`},
		{1, "", `{"name":"api-key","value":"v"}`},
		{1, "", `{"name":"x","value":""}`},
		{2, "", `{"name":"api-key","value":"w"}`},
		{2, "", `{"name":"missing","value":"w"}`},
		{3, "", `{"name":"api-key"}`},
		{3, "namespace=dev", `{"name":"api-key"}`},
		{3, "", `{"name":"%2e%2e"}`},
	} {
		f.Add(s.m, s.query, s.body)
	}
	for _, c := range fuzzCaptures(f) {
		if c.Path != "/system/secrets" {
			continue
		}
		if i := slices.Index(methods, c.Method); i >= 0 {
			f.Add(uint8(i), c.RawQuery, c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, query, body string) {
		fx := newFuzzFixture(t)
		method := methods[int(m)%len(methods)]
		target := withQuery("/system/secrets", query)
		x, ok := fx.fuzzDo(t, method, target, []byte(body))
		if !ok {
			return
		}
		w, after, changed := x.w, x.after, x.changed
		if w.Code >= 400 {
			switch w.Code {
			case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge:
				checkRefused(t, w, changed)
				return
			}
			t.Fatalf("%s %q %q: %d %q", method, target, body, w.Code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), fuzzSecretValue) {
			t.Fatalf("%s %q answered a secret value: %q", method, target, w.Body.String())
		}
		want := map[string]struct {
			code int
			sign string
		}{
			http.MethodGet:    {http.StatusOK, ""},
			http.MethodPost:   {http.StatusCreated, "+"},
			http.MethodPut:    {http.StatusAccepted, "~"},
			http.MethodDelete: {http.StatusAccepted, "-"},
		}[method]
		if w.Code != want.code {
			t.Fatalf("%s %q %q: %d %q, want %d", method, target, body, w.Code, w.Body.String(), want.code)
		}
		if len(changed) > 1 || (method == http.MethodGet || method == http.MethodPost || method == http.MethodDelete) && len(changed) != len(want.sign) {
			t.Fatalf("%s %q %q changed %v", method, target, body, changed)
		}
		for _, c := range changed {
			key, ok := strings.CutPrefix(c, want.sign+"secret:")
			if !ok {
				t.Fatalf("%s changed %v", method, changed)
			}
			ns, name, err := store.SplitKey(key)
			if err != nil || !validSecretName(name) || (ns != store.DefaultNamespace && !validName(ns)) {
				t.Fatalf("%s stored secret %q", method, key)
			}
			if method == http.MethodDelete {
				continue
			}
			var req types.Secret
			if err := json.Unmarshal([]byte(body), &req); err != nil {
				t.Fatalf("accepted a body json.Unmarshal refuses: %v", err)
			}
			v := req.RawValue
			if len(v) == 0 {
				v = []byte(req.Value)
			}
			if got := after["secret:"+key]; !strings.HasSuffix(got, " value="+strconv.Quote(string(v))) {
				t.Fatalf("stored %s, want the value %q", got, v)
			}
		}
	})
}

// FuzzNamespaceBody fuzzes /system/namespace/{ns} and POST /system/namespace/.
func FuzzNamespaceBody(f *testing.F) {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}
	for _, s := range []struct {
		m          uint8
		name, body string
	}{
		{0, "dev", ""},
		{0, "openfaas-fn", ""},
		{0, "%2e%2e", ""},
		{1, "", `{"name":"staging","labels":{"openfaas":"1"}}`},
		{1, "", `{"name":"staging"}`},
		{1, "", `{"name":"Bad","labels":{"openfaas":"1"}}`},
		{1, "", `{"name":"../x","labels":{"openfaas":"1"}}`},
		{2, "dev", `{"name":"dev","labels":{"openfaas":"1","team":"x"},"annotations":{"a":"b"}}`},
		{2, "dev", `{"name":"prod","labels":{"openfaas":"1"}}`},
		{3, "dev", `{"name":"dev","labels":{"openfaas":"1"}}`},
		{3, "openfaas-fn", `{"name":"openfaas-fn","labels":{"openfaas":"1"}}`},
	} {
		f.Add(s.m, s.name, s.body)
	}
	for _, c := range fuzzCaptures(f) {
		name, ok := strings.CutPrefix(c.Path, "/system/namespace/")
		if !ok {
			continue
		}
		if i := slices.Index(methods, c.Method); i >= 0 {
			f.Add(uint8(i), name, c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, name, body string) {
		fx := newFuzzFixture(t)
		method := methods[int(m)%len(methods)]
		target := "/system/namespace/" + name
		x, ok := fx.fuzzDo(t, method, target, []byte(body))
		if !ok {
			return
		}
		w, after, changed := x.w, x.after, x.changed
		if w.Code >= 400 {
			switch w.Code {
			case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
				checkRefused(t, w, changed)
				return
			}
			t.Fatalf("%s %q %q: %d %q", method, target, body, w.Code, w.Body.String())
		}
		sign := map[string]string{http.MethodGet: "", http.MethodPost: "+", http.MethodPut: "~", http.MethodDelete: "-"}[method]
		if len(changed) > 1 || method != http.MethodPut && len(changed) != len(sign) {
			t.Fatalf("%s %q %q: %d, changed %v", method, target, body, w.Code, changed)
		}
		for _, c := range changed {
			ns, ok := strings.CutPrefix(c, sign+"namespace:")
			if !ok || !validName(ns) {
				t.Fatalf("%s %q changed %v", method, target, changed)
			}
			if method == http.MethodDelete {
				continue
			}
			var stored types.FunctionNamespace
			if err := json.Unmarshal([]byte(after["namespace:"+ns]), &stored); err != nil {
				t.Fatal(err)
			}
			if v := stored.Labels[labelOpenFaaS]; v != "1" && v != "true" {
				t.Fatalf("stored namespace %s without the openfaas label: %+v", ns, stored)
			}
		}
	})
}

// FuzzLogQuery fuzzes the query of GET /system/logs: the parser, and the
// route over a log source without lines.
func FuzzLogQuery(f *testing.F) {
	for _, q := range []string{
		"name=hello", "name=hello&namespace=dev&tail=2&follow=false&since=2026-11-23T07:00:00Z",
		"name=hello&since=2026-11-23T07:00:00+01:00", "name=hello&since=2026-11-23T07:00:00.123456789-07:00",
		"name=hello&tail=-1", "name=hello&tail=x", "name=hello&since=yesterday", "name=&tail=1",
		"name=..%2Fx", "name=hello&namespace=%2e%2e", "name=hello&instance=abc&follow=1", "tail=1",
	} {
		f.Add(q)
	}
	for _, c := range fuzzCaptures(f) {
		if c.Path == "/system/logs" {
			f.Add(c.RawQuery)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // as r.URL.Query() does: errors dropped
		req, err := parseLogRequest(q)
		if err != nil {
			bad, ok := err.(*logRequestError)
			if !ok || (bad.code != http.StatusBadRequest && bad.code != http.StatusUnprocessableEntity) || bad.msg == "" {
				t.Fatalf("parseLogRequest(%q) = %#v", raw, err)
			}
		} else {
			if req.Name == "" || req.Tail < 0 {
				t.Fatalf("parseLogRequest(%q) accepted %+v", raw, req)
			}
			// Round trip: the request written back as a query parses to
			// the same request.
			back := url.Values{"name": {req.Name}, "namespace": {req.Namespace}, "instance": {req.Instance},
				"follow": {strconv.FormatBool(req.Follow)}, "tail": {strconv.Itoa(req.Tail)}}
			if req.Since != nil {
				back.Set("since", req.Since.Format(time.RFC3339Nano))
			}
			again, err := parseLogRequest(back)
			if err != nil {
				t.Fatalf("parseLogRequest(%q) = %+v, written back %q: %v", raw, req, back.Encode(), err)
			}
			if again.Name != req.Name || again.Namespace != req.Namespace || again.Instance != req.Instance ||
				again.Follow != req.Follow || again.Tail != req.Tail || (again.Since == nil) != (req.Since == nil) ||
				req.Since != nil && !again.Since.Equal(*req.Since) {
				t.Fatalf("parseLogRequest(%q) = %+v, written back and parsed again %+v", raw, req, again)
			}
		}

		fx := newFuzzFixture(t)
		x, ok := fx.fuzzDo(t, http.MethodGet, "/system/logs?"+raw, nil)
		if !ok {
			return
		}
		w, changed := x.w, x.changed
		switch w.Code {
		case http.StatusOK:
			if err != nil {
				t.Fatalf("GET /system/logs?%s: 200, but the parser refuses it: %v", raw, err)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
			checkRefused(t, w, changed)
		default:
			t.Fatalf("GET /system/logs?%s: %d %q", raw, w.Code, w.Body.String())
		}
		if len(changed) > 0 {
			t.Fatalf("GET /system/logs changed the store: %v", changed)
		}
	})
}

// Reference forms of the name rules, as regular expressions.
var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// FuzzNames compares the name checks of functions, namespaces and secrets
// with their reference regular expressions, and checks what a name that
// passes can never contain.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"hello", "openfaas-fn", "a.b", "api-key", "-a", "a-", "A", "..", "../x", "a/b",
		"%2e%2e", "a\x00b", "a_b", strings.Repeat("a", 63), strings.Repeat("a", 64), "a." + strings.Repeat("b", 63)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		label := validName(s)
		if want := dns1123Label.MatchString(s) && len(s) <= maxNameLen; label != want {
			t.Fatalf("validName(%q) = %v, want %v", s, label, want)
		}
		sub := validSecretName(s)
		want := dns1123Subdomain.MatchString(s) && len(s) <= 253
		for _, part := range strings.Split(s, ".") {
			want = want && len(part) <= maxNameLen
		}
		if sub != want {
			t.Fatalf("validSecretName(%q) = %v, want %v", s, sub, want)
		}
		if (label || sub) && (strings.ContainsAny(s, "/\\\x00 ") || strings.Contains(s, "..") || s == "." || strings.HasPrefix(s, ".")) {
			t.Fatalf("%q passed a name check", s)
		}
		ns, err := effectiveNamespace(s)
		switch {
		case s == "" && (err != nil || ns != store.DefaultNamespace):
			t.Fatalf("effectiveNamespace(\"\") = %q, %v", ns, err)
		case s != "" && (err == nil) != label:
			t.Fatalf("effectiveNamespace(%q) = %q, %v; validName says %v", s, ns, err, label)
		case s != "" && err == nil && ns != s:
			t.Fatalf("effectiveNamespace(%q) = %q", s, ns)
		}
	})
}

// FuzzRouter sends any method, target and body to the whole router: there
// is no route on which a request makes it fail (5xx) or panic, a refusal
// always says why in plain text and changes nothing, and a 405 says what
// is allowed.
func FuzzRouter(f *testing.F) {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions}
	for _, s := range []struct {
		m            uint8
		target, body string
	}{
		{0, "/system/functions", ""},
		{0, "/system/function/hello?namespace=dev", ""},
		{0, "/system/function/%2e%2e", ""},
		{0, "/system/function/..%2fsecrets", ""},
		{0, "/system/info", ""},
		{0, "/system/namespaces", ""},
		{0, "/healthz", ""},
		{0, "/function/hello.openfaas-fn/a/b?x=1", ""},
		{0, "/function/../system/functions", ""},
		{0, "/nope", ""},
		{5, "/system/functions", `{}`},
		{4, "/system/info", ""},
		{2, "/system/scale-function/hello", `{"replicas":2}`},
		{6, "/system/secrets", ""},
		{2, "/async-function/hello.openfaas-fn/a/b?x=1", "body"},
		{0, "/async-function/hello", ""},
		{4, "/async-function/some-call-id", ""},
		{0, "/system/async?function=hello&state=queued", ""},
		{0, "/system/async/some-call-id", ""},
		{0, "/system/executions?function=hello&state=running&kind=job&limit=5", ""},
		{0, "/system/executions/some-call-id.1", ""},
	} {
		f.Add(s.m, s.target, s.body)
	}
	for _, c := range fuzzCaptures(f) {
		if i := slices.Index(methods, c.Method); i >= 0 {
			f.Add(uint8(i), withQuery(c.Path, c.RawQuery), c.Body)
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, target, body string) {
		fx := newFuzzFixture(t)
		method := methods[int(m)%len(methods)]
		x, ok := fx.fuzzDo(t, method, target, []byte(body))
		if !ok {
			return
		}
		w, changed := x.w, x.changed
		switch {
		case w.Code >= 500 || w.Code == http.StatusUnauthorized:
			t.Fatalf("%s %q %q: %d %q", method, target, body, w.Code, w.Body.String())
		case w.Code >= 400:
			checkRefused(t, w, changed)
			if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
				t.Fatalf("%s %q: 405 without Allow", method, target)
			}
		case method == http.MethodGet || method == http.MethodHead:
			if len(changed) > 0 {
				t.Fatalf("%s %q changed the store: %v", method, target, changed)
			}
		}
	})
}
