package routes

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dockerfaasd/dockerfaasd/pkg/faas"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// waitBound bounds every wait of these tests; a working Table follows a
// change in milliseconds.
const waitBound = 10 * time.Second

func spec(name, ns, route string) types.FunctionDeployment {
	s := types.FunctionDeployment{Service: name, Namespace: ns, Image: "img"}
	if route != "" {
		s.Annotations = &map[string]string{faas.AnnotationRoute: route}
	}
	return s
}

func mustCreate(t *testing.T, st store.Store, s types.FunctionDeployment) {
	t.Helper()
	if _, err := st.Create(context.Background(), s, 1); err != nil {
		t.Fatalf("create %s: %v", s.Service, err)
	}
}

func quietLog() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}

// tableOf returns a Table over st after one full pass.
func tableOf(t *testing.T, st store.Store) *Table {
	t.Helper()
	tb := New(Config{Log: quietLog()}, st)
	tb.Resync(context.Background())
	return tb
}

func TestLookup(t *testing.T) {
	st := store.NewMemory()
	mustCreate(t, st, spec("sum", "", "/sum"))
	mustCreate(t, st, spec("deep", "", "/sum/deep"))
	mustCreate(t, st, spec("ab", "", "/a/b"))
	mustCreate(t, st, spec("plain", "", ""))
	tb := tableOf(t, st)
	for _, tc := range []struct {
		path, key, rest string
		ok              bool
	}{
		{"/sum", "openfaas-fn/sum", "", true},
		{"/sum/", "openfaas-fn/sum", "/", true},
		{"/sum/x/y", "openfaas-fn/sum", "/x/y", true},
		{"/sum/deep", "openfaas-fn/deep", "", true},
		{"/sum/deep/er", "openfaas-fn/deep", "/er", true},
		{"/sum/deeper", "openfaas-fn/sum", "/deeper", true},
		{"/summary", "", "", false},
		{"/su", "", "", false},
		{"/a", "", "", false},
		{"/a/b/c", "openfaas-fn/ab", "/c", true},
		{"/", "", "", false},
		{"", "", "", false},
		{"*", "", "", false},
		{"/sum" + strings.Repeat("/x", 200), "openfaas-fn/sum", strings.Repeat("/x", 200), true},
	} {
		key, rest, ok := tb.Lookup(tc.path)
		if key != tc.key || rest != tc.rest || ok != tc.ok {
			t.Errorf("Lookup(%q) = %q %q %v, want %q %q %v", tc.path, key, rest, ok, tc.key, tc.rest, tc.ok)
		}
	}
}

// seen is what the root handler got.
type seen struct {
	path, rawPath, query, requestURI string
}

func TestHandlerRewrites(t *testing.T) {
	st := store.NewMemory()
	mustCreate(t, st, spec("sum", "", "/sum"))
	mustCreate(t, st, spec("mul", "", "/api/mul"))
	tb := tableOf(t, st)
	var got seen
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI}
		w.WriteHeader(http.StatusTeapot)
	})
	h := tb.Handler(root)
	for _, tc := range []struct {
		target string
		want   seen
	}{
		{"/sum", seen{"/function/sum.openfaas-fn/", "", "", "/function/sum.openfaas-fn/"}},
		{"/sum/", seen{"/function/sum.openfaas-fn/", "", "", "/function/sum.openfaas-fn/"}},
		{"/sum/x?y=1", seen{"/function/sum.openfaas-fn/x", "", "y=1", "/function/sum.openfaas-fn/x?y=1"}},
		{"/sum?y=1&z", seen{"/function/sum.openfaas-fn/", "", "y=1&z", "/function/sum.openfaas-fn/?y=1&z"}},
		{"/api/mul/3/4", seen{"/function/mul.openfaas-fn/3/4", "", "", "/function/mul.openfaas-fn/3/4"}},
		// Escaped: the function sees its rest exactly as sent.
		{"/sum/a%2Fb", seen{"/function/sum.openfaas-fn/a/b", "/function/sum.openfaas-fn/a%2Fb", "", "/function/sum.openfaas-fn/a%2Fb"}},
		{"/s%75m/a%2Fb", seen{"/function/sum.openfaas-fn/a/b", "/function/sum.openfaas-fn/a%2Fb", "", "/function/sum.openfaas-fn/a%2Fb"}},
		// An escaped '/' inside the route: served, the rest decoded.
		{"/api%2Fmul/x", seen{"/function/mul.openfaas-fn/x", "", "", "/function/mul.openfaas-fn/x"}},
		// Not routes: handed on untouched.
		{"/summary?q=1", seen{"/summary", "", "q=1", "/summary?q=1"}},
		{"/function/sum", seen{"/function/sum", "", "", "/function/sum"}},
		{"/system/functions", seen{"/system/functions", "", "", "/system/functions"}},
		{"/nothing", seen{"/nothing", "", "", "/nothing"}},
	} {
		got = seen{}
		req := httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader("body"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusTeapot {
			t.Errorf("%s: root not called (%d)", tc.target, rec.Code)
		}
		if got != tc.want {
			t.Errorf("%s: root got %+v, want %+v", tc.target, got, tc.want)
		}
	}
}

// TestReservedNeverRouted: a route stored under a reserved prefix (before
// validation existed, or by hand) is listed with its error and not served.
func TestReservedNeverRouted(t *testing.T) {
	st := store.NewMemory()
	mustCreate(t, st, spec("evil", "", "/system/functions"))
	mustCreate(t, st, spec("bad", "", "/sum/"))
	tb := tableOf(t, st)
	if key, _, ok := tb.Lookup("/system/functions"); ok {
		t.Fatalf("/system/functions routed to %s", key)
	}
	if _, _, ok := tb.Lookup("/sum"); ok {
		t.Fatal("an invalid route /sum/ is served")
	}
	list := tb.Routes()
	if len(list) != 2 {
		t.Fatalf("Routes() = %+v, want both claims", list)
	}
	for _, r := range list {
		if !strings.Contains(r.Error, faas.AnnotationRoute) {
			t.Errorf("route %+v: want an error naming the annotation", r)
		}
	}
}

func TestCollisionFirstCreatedWins(t *testing.T) {
	st := store.NewMemory()
	// A namespace sorting after openfaas-fn, created first: the key order
	// alone would pick the other.
	if _, err := st.CreateNamespace(context.Background(), types.FunctionNamespace{Name: "zz"}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, st, spec("first", "zz", "/sum"))
	time.Sleep(time.Millisecond)
	mustCreate(t, st, spec("second", "", "/sum"))
	logger, hook := test.NewNullLogger()
	tb := New(Config{Log: logger}, st)
	tb.Resync(context.Background())
	if key, _, _ := tb.Lookup("/sum"); key != "zz/first" {
		t.Fatalf("/sum serves %q, want the function created first, zz/first", key)
	}
	want := []faas.Route{
		{Path: "/sum", Function: "second", Namespace: "openfaas-fn", Error: "route taken by zz/first, created first"},
		{Path: "/sum", Function: "first", Namespace: "zz"},
	}
	if got := tb.Routes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Routes() = %+v, want %+v", got, want)
	}
	warned := func() int {
		n := 0
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel && e.Data["function"] == "openfaas-fn/second" {
				n++
			}
		}
		return n
	}
	tb.Resync(context.Background())
	if n := warned(); n != 1 {
		t.Errorf("collision logged %d times over two passes, want once", n)
	}

	// The owner goes: the other one gets the route.
	if err := st.Delete(context.Background(), "zz/first"); err != nil {
		t.Fatal(err)
	}
	tb.Sync(context.Background(), []string{"zz/first"})
	if key, _, _ := tb.Lookup("/sum"); key != "openfaas-fn/second" {
		t.Fatalf("/sum serves %q after its owner's delete, want openfaas-fn/second", key)
	}
}

// TestRunFollowsStore: deploys, route changes and deletes reach the table
// through the store's watch.
func TestRunFollowsStore(t *testing.T) {
	st := store.NewMemory()
	tb := New(Config{Log: quietLog(), Resync: time.Hour}, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitBound):
			t.Error("Run did not return after cancel")
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitBound)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; routes %+v", what, tb.Routes())
			}
			time.Sleep(time.Millisecond)
		}
	}
	served := func(p, key string) func() bool {
		return func() bool { k, _, ok := tb.Lookup(p); return ok && k == key }
	}
	gone := func(p string) func() bool {
		return func() bool { _, _, ok := tb.Lookup(p); return !ok }
	}

	mustCreate(t, st, spec("sum", "", "/sum"))
	waitFor("/sum to be served", served("/sum", "openfaas-fn/sum"))

	// A change of route: the old path goes, the new one comes.
	if _, err := st.Update(ctx, spec("sum", "", "/add"), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	waitFor("/add to replace /sum", func() bool { return served("/add", "openfaas-fn/sum")() && gone("/sum")() })

	// The annotation removed: not routed any more.
	if _, err := st.Update(ctx, spec("sum", "", ""), func(r uint64) uint64 { return r }); err != nil {
		t.Fatal(err)
	}
	waitFor("/add to go", gone("/add"))

	mustCreate(t, st, spec("mul", "", "/mul"))
	waitFor("/mul to be served", served("/mul", "openfaas-fn/mul"))
	if err := st.Delete(ctx, "openfaas-fn/mul"); err != nil {
		t.Fatal(err)
	}
	waitFor("/mul to go with its function", gone("/mul"))
	if got := tb.Routes(); len(got) != 0 {
		t.Errorf("Routes() = %+v after every route went, want none", got)
	}
}

func TestRawRest(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		routeLen int
		want     string
		ok       bool
	}{
		{"/sum/a%2Fb", 4, "/a%2Fb", true},
		{"/s%75m/a%2Fb", 4, "/a%2Fb", true},
		{"/s%75m", 4, "", true},
		{"/a%2Fb/c", 4, "/c", true}, // decodes to the route /a/b
		{"/a/b%2Fc", 4, "", false},  // the route /a/b ends inside a segment
		{"/sum%2Fx", 4, "", false},
		{"/%zz/x", 2, "", false},
		{"/x", 9, "", false},
	} {
		got, ok := rawRest(tc.raw, tc.routeLen)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rawRest(%q, %d) = %q %v, want %q %v", tc.raw, tc.routeLen, got, ok, tc.want, tc.ok)
		}
	}
}
