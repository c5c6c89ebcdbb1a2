// Package storetest is the conformance suite for store.Store. Every
// implementation runs it, so the in-memory store other packages test against
// cannot drift from the bbolt store the daemon runs on.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// opener returns a new, empty Store and arranges (with t.Cleanup) for it to
// be closed when t ends.
type opener func(t *testing.T) store.Store

// Run runs the conformance suite against the stores open returns. open must
// return a new, empty Store on every call and close it with t.Cleanup; it is
// called from parallel subtests. Run the suite with -race.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"CreateGetList", testCreateGetList},
		{"CreateConflict", testCreateConflict},
		{"CreateInvalid", testCreateInvalid},
		{"Missing", testMissing},
		{"CancelledContext", testCancelledContext},
		{"Generation", testGeneration},
		{"Revision", testRevision},
		{"ScaledBy", testScaledBy},
		{"RoundTrip", testRoundTrip},
		{"Copies", testCopies},
		{"WatchAfterCommit", testWatchAfterCommit},
		{"WatchCoalesces", testWatchCoalesces},
		{"WatchFanOut", testWatchFanOut},
		{"WatchNeverBlocksWriters", testWatchNeverBlocksWriters},
		{"WatchStops", testWatchStops},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, withNamespaces(open))
		})
	}
	for _, tc := range namespaceTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
	for _, tc := range secretTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, withNamespaces(open))
		})
	}
	for _, tc := range executionTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
	for _, tc := range imageTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
	for _, tc := range buildTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
	for _, tc := range addressTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, withNamespaces(open))
		})
	}
}

// waitBound bounds every wait for a notification the suite expects, so a
// broken store fails the test instead of hanging it. It is not a speed
// requirement: a working store answers immediately.
const waitBound = 30 * time.Second

func spec(namespace, name string) types.FunctionDeployment {
	return types.FunctionDeployment{
		Service:   name,
		Namespace: namespace,
		Image:     "ghcr.io/example/" + name + ":1.0",
	}
}

func key(namespace, name string) string {
	if namespace == "" {
		namespace = store.DefaultNamespace
	}
	return store.Key(namespace, name)
}

func mustCreate(t *testing.T, s store.Store, sp types.FunctionDeployment, replicas uint64) store.Function {
	t.Helper()
	f, err := s.Create(t.Context(), sp, replicas)
	if err != nil {
		t.Fatalf("Create(%s/%s): %v", sp.Namespace, sp.Service, err)
	}
	return f
}

func mustGet(t *testing.T, s store.Store, k string) store.Function {
	t.Helper()
	f, err := s.Get(t.Context(), k)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return f
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func assertSameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func keysOf(fns []store.Function) []string {
	keys := make([]string, 0, len(fns))
	for _, f := range fns {
		keys = append(keys, f.Key())
	}
	return keys
}

// next waits for the next batch of changed keys.
func next(t *testing.T, w *store.Watcher) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	keys, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Watcher.Next: %v", err)
	}
	return keys
}

// expectNext asserts that the next batch is exactly want.
func expectNext(t *testing.T, w *store.Watcher, want ...string) {
	t.Helper()
	if got := next(t, w); !equal(got, want) {
		t.Fatalf("Watcher.Next = %q, want %q", got, want)
	}
}

// expectQuiet asserts that w has nothing pending, by making a marker change
// and checking it arrives alone. Unlike waiting for silence this needs no
// timeout, so it cannot pass by accident on a slow machine.
func expectQuiet(t *testing.T, s store.Store, w *store.Watcher) {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	mustCreate(t, s, spec("quiet", marker), 0)
	expectNext(t, w, key("quiet", marker))
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testCreateGetList(t *testing.T, open opener) {
	s := open(t)
	created := map[string]store.Function{}
	for _, sp := range []types.FunctionDeployment{
		spec("dev", "b"),
		spec("", "c"),
		spec("dev2", "a"), // "dev" must not match "dev2"
		spec(store.DefaultNamespace, "a"),
	} {
		f := mustCreate(t, s, sp, 3)
		created[f.Key()] = f
	}

	for k, c := range created {
		f := mustGet(t, s, k)
		assertSameJSON(t, "Get vs Create result for "+k, f, c)
		ns, name, err := store.SplitKey(k)
		switch {
		case err != nil:
			t.Errorf("SplitKey(%q): %v", k, err)
		case f.Key() != k || f.Namespace != ns || f.Name() != name:
			t.Errorf("Get(%q): key %q namespace %q name %q", k, f.Key(), f.Namespace, f.Name())
		case f.Replicas != 3 || f.Generation != 1 || f.Revision == 0:
			t.Errorf("Get(%q): replicas %d generation %d revision %d, want 3, 1, >0", k, f.Replicas, f.Generation, f.Revision)
		case f.CreatedAt.IsZero() || !f.CreatedAt.Equal(f.UpdatedAt):
			t.Errorf("Get(%q): createdAt %v updatedAt %v, want equal and set", k, f.CreatedAt, f.UpdatedAt)
		}
	}
	if f := mustGet(t, s, key("", "c")); f.Spec.Namespace != "" {
		t.Errorf("spec namespace rewritten to %q; the spec must be kept verbatim", f.Spec.Namespace)
	}

	lists := []struct {
		namespace string
		want      []string
	}{
		{"", []string{"dev/b", "dev2/a", "openfaas-fn/a", "openfaas-fn/c"}},
		{"dev", []string{"dev/b"}},
		{"dev2", []string{"dev2/a"}},
		{store.DefaultNamespace, []string{"openfaas-fn/a", "openfaas-fn/c"}},
		{"missing", []string{}},
	}
	for _, l := range lists {
		fns, err := s.List(t.Context(), l.namespace)
		if err != nil {
			t.Fatalf("List(%q): %v", l.namespace, err)
		}
		if got := keysOf(fns); !equal(got, l.want) {
			t.Errorf("List(%q) = %q, want %q", l.namespace, got, l.want)
		}
		for _, f := range fns {
			assertSameJSON(t, "List entry "+f.Key(), f, created[f.Key()])
		}
	}
}

func testCreateConflict(t *testing.T, open opener) {
	s := open(t)
	first := mustCreate(t, s, spec("", "fn"), 1)
	w := s.Watch(t.Context())
	// An explicit default namespace names the same function as an empty one.
	for _, sp := range []types.FunctionDeployment{spec("", "fn"), spec(store.DefaultNamespace, "fn")} {
		sp.Image = "other:2"
		_, err := s.Create(t.Context(), sp, 5)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second Create = %v, want ErrConflict", err)
		}
		if !strings.Contains(err.Error(), first.Key()) {
			t.Errorf("error %q does not name the key %q", err, first.Key())
		}
	}
	assertSameJSON(t, "record after conflicts", mustGet(t, s, first.Key()), first)
	expectQuiet(t, s, w)
}

func testCreateInvalid(t *testing.T, open opener) {
	s := open(t)
	for _, sp := range []types.FunctionDeployment{
		{Image: "img"},
		{Service: "fn", Namespace: "a/b", Image: "img"},
	} {
		if _, err := s.Create(t.Context(), sp, 1); err == nil {
			t.Errorf("Create(%+v) succeeded, want an error", sp)
		}
	}
	if fns, err := s.List(t.Context(), ""); err != nil || len(fns) != 0 {
		t.Errorf("List after invalid creates = %d functions, %v; want none", len(fns), err)
	}
}

func testMissing(t *testing.T, open opener) {
	s := open(t)
	mustCreate(t, s, spec("other", "fn"), 1) // same name, other namespace
	k := key("", "fn")
	ops := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, k); return err }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, k) }},
		{"Update", func(ctx context.Context) error { _, err := s.Update(ctx, spec("", "fn"), nil); return err }},
		{"Scale", func(ctx context.Context) error { _, err := s.Scale(ctx, k, 2); return err }},
		{"GetMalformedKey", func(ctx context.Context) error { _, err := s.Get(ctx, "no-slash"); return err }},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			err := o.op(t.Context())
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s of a missing function = %v, want ErrNotFound", o.name, err)
			}
			if errors.Is(err, store.ErrConflict) {
				t.Errorf("%s error %v also matches ErrConflict", o.name, err)
			}
		})
	}
	if _, err := s.Get(t.Context(), k); err == nil || !strings.Contains(err.Error(), k) {
		t.Errorf("Get error %v does not name the key %q", err, k)
	}
}

func testCancelledContext(t *testing.T, open opener) {
	s := open(t)
	existing := mustCreate(t, s, spec("", "existing"), 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	writes := []struct {
		name string
		op   func() error
	}{
		{"Create", func() error { _, err := s.Create(ctx, spec("", "new"), 1); return err }},
		{"Update", func() error {
			sp := spec("", "existing")
			sp.Image = "changed"
			_, err := s.Update(ctx, sp, nil)
			return err
		}},
		{"Scale", func() error { _, err := s.Scale(ctx, existing.Key(), 9); return err }},
		{"Delete", func() error { return s.Delete(ctx, existing.Key()) }},
	}
	for _, w := range writes {
		if err := w.op(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", w.name, err)
		}
	}
	assertSameJSON(t, "record after cancelled writes", mustGet(t, s, existing.Key()), existing)
	if _, err := s.Get(t.Context(), key("", "new")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a function created with a cancelled context = %v, want ErrNotFound", err)
	}
}

// generationBase is the function each generation case starts from.
func generationBase() types.FunctionDeployment {
	sp := spec("", "fn")
	sp.EnvVars = map[string]string{"A": "1", "B": "2"}
	sp.Labels = &map[string]string{"team": "a"}
	sp.Secrets = []string{"s1", "s2"}
	return sp
}

func testGeneration(t *testing.T, open opener) {
	const baseReplicas = 2
	k := key("", "fn")
	cases := []struct {
		name         string
		op           func(ctx context.Context, s store.Store) (store.Function, error)
		wantGen      int64
		wantReplicas uint64
		wantWrite    bool // revision bumped, UpdatedAt moved, watchers told
	}{
		{"UpdateIdentical", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Update(ctx, generationBase(), nil)
		}, 1, baseReplicas, false},
		{"UpdateIdenticalClampSame", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Update(ctx, generationBase(), func(cur uint64) uint64 { return cur })
		}, 1, baseReplicas, false},
		{"UpdateEmptyConstraintsEqualNone", func(ctx context.Context, s store.Store) (store.Function, error) {
			// Both encode alike, so neither is a change from the other.
			sp := generationBase()
			sp.Constraints = []string{}
			return s.Update(ctx, sp, nil)
		}, 1, baseReplicas, false},
		{"UpdateChangedEnv", func(ctx context.Context, s store.Store) (store.Function, error) {
			sp := generationBase()
			sp.EnvVars["B"] = "3"
			return s.Update(ctx, sp, nil)
		}, 2, baseReplicas, true},
		{"UpdateLabelsEmptyVsSet", func(ctx context.Context, s store.Store) (store.Function, error) {
			sp := generationBase()
			sp.Labels = &map[string]string{}
			return s.Update(ctx, sp, nil)
		}, 2, baseReplicas, true},
		{"UpdateSecretsReordered", func(ctx context.Context, s store.Store) (store.Function, error) {
			sp := generationBase()
			sp.Secrets = []string{"s2", "s1"}
			return s.Update(ctx, sp, nil)
		}, 2, baseReplicas, true},
		{"UpdateClampChangesReplicas", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Update(ctx, generationBase(), func(cur uint64) uint64 { return cur + 3 })
		}, 2, baseReplicas + 3, true},
		{"UpdateSpecAndReplicasBumpOnce", func(ctx context.Context, s store.Store) (store.Function, error) {
			sp := generationBase()
			sp.Image = "ghcr.io/example/fn:2.0"
			return s.Update(ctx, sp, func(uint64) uint64 { return 1 })
		}, 2, 1, true},
		{"ScaleSame", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Scale(ctx, k, baseReplicas)
		}, 1, baseReplicas, false},
		{"ScaleDifferent", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Scale(ctx, k, 7)
		}, 2, 7, true},
		{"ScaleToZero", func(ctx context.Context, s store.Store) (store.Function, error) {
			return s.Scale(ctx, k, 0)
		}, 2, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			w := s.Watch(t.Context())
			created := mustCreate(t, s, generationBase(), baseReplicas)
			if created.Generation != 1 {
				t.Fatalf("Create: generation %d, want 1", created.Generation)
			}
			expectNext(t, w, k)

			got, err := c.op(t.Context(), s)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got.Generation != c.wantGen || got.Replicas != c.wantReplicas {
				t.Errorf("generation %d replicas %d, want %d and %d", got.Generation, got.Replicas, c.wantGen, c.wantReplicas)
			}
			if !got.CreatedAt.Equal(created.CreatedAt) {
				t.Errorf("createdAt moved from %v to %v", created.CreatedAt, got.CreatedAt)
			}
			assertSameJSON(t, "Get vs write result", mustGet(t, s, k), got)
			if c.wantWrite {
				if got.Revision <= created.Revision || got.UpdatedAt.Before(created.UpdatedAt) {
					t.Errorf("revision %d updatedAt %v, want > %d and >= %v", got.Revision, got.UpdatedAt, created.Revision, created.UpdatedAt)
				}
				expectNext(t, w, k)
				return
			}
			assertSameJSON(t, "record after a no-op", got, created)
			expectQuiet(t, s, w)
		})
	}
}

func testRevision(t *testing.T, open opener) {
	s := open(t)
	var last uint64
	advance := func(what string, rev uint64) {
		t.Helper()
		if rev <= last {
			t.Fatalf("%s: revision %d, want > %d", what, rev, last)
		}
		last = rev
	}
	a := mustCreate(t, s, spec("", "a"), 1)
	advance("create a", a.Revision)
	b := mustCreate(t, s, spec("x", "b"), 1)
	advance("create b", b.Revision)
	f, err := s.Scale(t.Context(), a.Key(), 2)
	if err != nil {
		t.Fatal(err)
	}
	advance("scale a", f.Revision)
	if err := s.Delete(t.Context(), a.Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), a.Key()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	again := mustCreate(t, s, spec("", "a"), 1)
	if again.Generation != 1 {
		t.Errorf("recreated: generation %d, want 1", again.Generation)
	}
	advance("recreate a", again.Revision)
	if got := mustGet(t, s, b.Key()); got.Revision != b.Revision {
		t.Errorf("untouched b: revision %d, want %d", got.Revision, b.Revision)
	}
}

func roundTripSpecs() map[string]types.FunctionDeployment {
	full := types.FunctionDeployment{
		Service:                "full",
		Image:                  "docker.io/library/Alpine:3.20@sha256:0123",
		Namespace:              "team-a",
		EnvProcess:             "cat",
		EnvVars:                map[string]string{"Z": "last", "A": "<&> \"quoted\" ✓", "EMPTY": ""},
		Constraints:            []string{"node.platform.os == linux", "b", "a"},
		Secrets:                []string{"zeta", "alpha", "mid"},
		Labels:                 &map[string]string{"com.openfaas.scale.min": "1", "team": "a"},
		Annotations:            &map[string]string{"topic": "orders"},
		Limits:                 &types.FunctionResources{Memory: "5Mi", CPU: "100m"},
		Requests:               &types.FunctionResources{Memory: "1Mi", CPU: "10m", NvidiaGPU: "1"},
		ReadOnlyRootFilesystem: true,
	}
	return map[string]types.FunctionDeployment{
		"Minimal":            spec("", "minimal"),
		"Full":               full,
		"LabelsEmptyMap":     {Service: "labels-empty", Image: "img", Labels: &map[string]string{}},
		"LabelsNil":          {Service: "labels-nil", Image: "img"},
		"AnnotationsEmpty":   {Service: "annotations-empty", Image: "img", Annotations: &map[string]string{}},
		"EmptyResources":     {Service: "empty-resources", Image: "img", Limits: &types.FunctionResources{}},
		"ReadOnlyRootFsOnly": {Service: "ro", Image: "img", ReadOnlyRootFilesystem: true},
	}
}

func testRoundTrip(t *testing.T, open opener) {
	s := open(t)
	for name, sp := range roundTripSpecs() {
		t.Run(name, func(t *testing.T) {
			want := mustJSON(t, sp)
			check := func(what string, f store.Function) {
				t.Helper()
				if got := mustJSON(t, f.Spec); !bytes.Equal(got, want) {
					t.Errorf("%s spec:\n got  %s\n want %s", what, got, want)
				}
			}
			created := mustCreate(t, s, sp, 1)
			check("Create", created)
			check("Get", mustGet(t, s, created.Key()))
			fns, err := s.List(t.Context(), created.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fns {
				if f.Key() == created.Key() {
					check("List", f)
				}
			}

			// Through a real update and back again.
			changed := sp
			changed.Image = "changed:1"
			if _, err := s.Update(t.Context(), changed, nil); err != nil {
				t.Fatal(err)
			}
			back, err := s.Update(t.Context(), sp, nil)
			if err != nil {
				t.Fatal(err)
			}
			check("Update back", back)
			check("Get after update", mustGet(t, s, created.Key()))
		})
	}
}

func testCopies(t *testing.T, open opener) {
	s := open(t)
	sp := generationBase()
	created := mustCreate(t, s, sp, 1)
	want := mustJSON(t, created)
	assertUnchanged := func(what string) {
		t.Helper()
		if got := mustJSON(t, mustGet(t, s, created.Key())); !bytes.Equal(got, want) {
			t.Fatalf("after mutating %s, stored record changed:\n got  %s\n want %s", what, got, want)
		}
	}
	mutate := func(f *types.FunctionDeployment) {
		f.EnvVars["A"] = "mutated"
		(*f.Labels)["team"] = "mutated"
		f.Secrets[0] = "mutated"
		f.Image = "mutated"
	}

	mutate(&sp)
	assertUnchanged("the spec passed to Create")
	mutate(&created.Spec)
	assertUnchanged("the value Create returned")
	got := mustGet(t, s, created.Key())
	mutate(&got.Spec)
	assertUnchanged("a value Get returned")
	fns, err := s.List(t.Context(), "")
	if err != nil || len(fns) != 1 {
		t.Fatalf("List = %d functions, %v; want 1", len(fns), err)
	}
	mutate(&fns[0].Spec)
	assertUnchanged("a value List returned")
}

func testWatchAfterCommit(t *testing.T, open opener) {
	t.Run("Sequential", func(t *testing.T) {
		s := open(t)
		w := s.Watch(t.Context())
		created := mustCreate(t, s, spec("", "fn"), 1)
		expectNext(t, w, created.Key())
		if got := mustGet(t, s, created.Key()); got.Revision != created.Revision {
			t.Errorf("after create notification: revision %d, want %d", got.Revision, created.Revision)
		}
		scaled, err := s.Scale(t.Context(), created.Key(), 4)
		if err != nil {
			t.Fatal(err)
		}
		expectNext(t, w, created.Key())
		if got := mustGet(t, s, created.Key()); got.Replicas != 4 || got.Revision != scaled.Revision {
			t.Errorf("after scale notification: replicas %d revision %d, want 4 and %d", got.Replicas, got.Revision, scaled.Revision)
		}
		if err := s.Delete(t.Context(), created.Key()); err != nil {
			t.Fatal(err)
		}
		expectNext(t, w, created.Key())
		if _, err := s.Get(t.Context(), created.Key()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete notification: Get = %v, want ErrNotFound", err)
		}
	})

	// A reader that looks a notified key up at once must always find the
	// write: notifying before the commit would let it see the old state.
	t.Run("ReaderRacesWriter", func(t *testing.T) {
		const n = 100
		s := open(t)
		w := s.Watch(t.Context())
		readerDone := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), waitBound)
			defer cancel()
			seen := 0
			for seen < n {
				keys, err := w.Next(ctx)
				if err != nil {
					readerDone <- fmt.Errorf("after %d keys: %w", seen, err)
					return
				}
				for _, k := range keys {
					if _, err := s.Get(ctx, k); err != nil {
						readerDone <- fmt.Errorf("notified of %s before it was readable: %w", k, err)
						return
					}
				}
				seen += len(keys)
			}
			readerDone <- nil
		}()
		for i := range n {
			mustCreate(t, s, spec("", fmt.Sprintf("fn-%03d", i)), 1)
		}
		if err := <-readerDone; err != nil {
			t.Fatal(err)
		}
	})
}

func testWatchCoalesces(t *testing.T, open opener) {
	s := open(t)
	w := s.Watch(t.Context())
	a := mustCreate(t, s, spec("", "a"), 0)
	b := mustCreate(t, s, spec("", "b"), 0)
	for i := range 50 {
		for _, k := range []string{b.Key(), a.Key()} {
			if _, err := s.Scale(t.Context(), k, uint64(i%3+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	expectNext(t, w, a.Key(), b.Key())

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if keys, err := w.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next after draining = %q, %v; want nothing until the deadline", keys, err)
	}
}

func testWatchFanOut(t *testing.T, open opener) {
	s := open(t)
	w1, w2 := s.Watch(t.Context()), s.Watch(t.Context())
	f := mustCreate(t, s, spec("", "fn"), 1)
	expectNext(t, w1, f.Key())
	expectNext(t, w2, f.Key())
	late := s.Watch(t.Context())
	expectQuiet(t, s, late) // a Watcher hears only of changes after Watch
}

// testWatchNeverBlocksWriters writes far more changes than any channel
// buffer would hold while nobody reads: writers must not notice.
func testWatchNeverBlocksWriters(t *testing.T, open opener) {
	const writes = 10_000
	s := open(t)
	unread := s.Watch(t.Context())
	_ = s.Watch(t.Context()) // a second, never read at all
	f := mustCreate(t, s, spec("", "fn"), 0)
	other := mustCreate(t, s, spec("", "other"), 0)
	for i := range writes {
		k := f.Key()
		if i%100 == 0 {
			k = other.Key()
		}
		// Ever-growing replicas: every Scale is a real write.
		if _, err := s.Scale(t.Context(), k, uint64(i+1)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	expectNext(t, unread, f.Key(), other.Key())
}

func testWatchStops(t *testing.T, open opener) {
	// Each case prepares a Watcher and the context to call Next with; Next
	// must then report context.Canceled rather than keys or a hang.
	cases := []struct {
		name  string
		setup func(t *testing.T, s store.Store) (*store.Watcher, context.Context)
	}{
		{"WatchContextCancelled", func(t *testing.T, s store.Store) (*store.Watcher, context.Context) {
			ctx, cancel := context.WithCancel(t.Context())
			w := s.Watch(ctx)
			mustCreate(t, s, spec("", "before"), 1)
			cancel()
			mustCreate(t, s, spec("", "after"), 1)
			return w, t.Context()
		}},
		{"WatchContextAlreadyDone", func(t *testing.T, s store.Store) (*store.Watcher, context.Context) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			w := s.Watch(ctx)
			mustCreate(t, s, spec("", "fn"), 1)
			return w, t.Context()
		}},
		{"NextContextCancelled", func(t *testing.T, s store.Store) (*store.Watcher, context.Context) {
			w := s.Watch(t.Context())
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return w, ctx
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, ctx := c.setup(t, open(t))
			done := make(chan error, 1)
			go func() {
				keys, err := w.Next(ctx)
				if err == nil {
					err = fmt.Errorf("got keys %q", keys)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Next = %v, want context.Canceled", err)
				}
			case <-time.After(waitBound):
				t.Fatal("Next did not return after its context was cancelled")
			}
		})
	}
}

func testConcurrentWriters(t *testing.T, open opener) {
	const writers, perWriter = 8, 50
	s := open(t)
	w := s.Watch(t.Context())

	// Readers run alongside so -race sees reads racing writes.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.List(t.Context(), ""); err != nil {
				t.Errorf("List during writes: %v", err)
				return
			}
		}
	})

	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				sp := spec(fmt.Sprintf("ns%d", g), fmt.Sprintf("fn-%03d", i))
				if _, err := s.Create(t.Context(), sp, uint64(i)); err != nil {
					t.Errorf("Create(%s): %v", sp.Service, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	fns, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != writers*perWriter {
		t.Fatalf("List = %d functions, want %d", len(fns), writers*perWriter)
	}
	revisions := make(map[uint64]string, len(fns))
	for _, f := range fns {
		if prev, dup := revisions[f.Revision]; dup {
			t.Errorf("revision %d given to both %s and %s", f.Revision, prev, f.Key())
		}
		revisions[f.Revision] = f.Key()
	}

	seen := make(map[string]bool, len(fns))
	for len(seen) < len(fns) {
		for _, k := range next(t, w) {
			seen[k] = true
		}
	}
	for _, f := range fns {
		if !seen[f.Key()] {
			t.Errorf("watcher never heard of %s", f.Key())
		}
	}
}

// testScaledBy: a scale records who made it, a scale that changes nothing
// records nothing, and Scale is the API's.
func testScaledBy(t *testing.T, open opener) {
	ctx := context.Background()
	s := open(t)
	f := mustCreate(t, s, spec(store.DefaultNamespace, "fn"), 1)
	if f.ScaledBy != "" || !f.ScaledAt.IsZero() {
		t.Fatalf("a new function was scaled by %q at %v", f.ScaledBy, f.ScaledAt)
	}
	steps := []struct {
		replicas uint64
		by       string
		wantBy   string
	}{
		{3, store.ScaledByAutoscaler, store.ScaledByAutoscaler},
		{3, store.ScaledByIdler, store.ScaledByAutoscaler}, // no change: nothing recorded
		{0, store.ScaledByIdler, store.ScaledByIdler},
		{1, store.ScaledByWake, store.ScaledByWake},
	}
	for _, st := range steps {
		got, err := s.ScaleBy(ctx, f.Key(), st.replicas, st.by)
		if err != nil {
			t.Fatal(err)
		}
		if got.Replicas != st.replicas || got.ScaledBy != st.wantBy {
			t.Fatalf("ScaleBy(%d, %s) = %d by %q, want by %q", st.replicas, st.by, got.Replicas, got.ScaledBy, st.wantBy)
		}
		if again := mustGet(t, s, f.Key()); again.ScaledBy != st.wantBy || !again.ScaledAt.Equal(got.ScaledAt) {
			t.Fatalf("read back: by %q at %v, want %q at %v", again.ScaledBy, again.ScaledAt, st.wantBy, got.ScaledAt)
		}
	}
	got, err := s.Scale(ctx, f.Key(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got.ScaledBy != store.ScaledByAPI {
		t.Errorf("Scale recorded %q, want %q", got.ScaledBy, store.ScaledByAPI)
	}
}
