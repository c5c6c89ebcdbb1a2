package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// fixtureNamespaces are the namespaces the function tests deploy into. A
// function can only live in an existing namespace, so withNamespaces
// creates them in every store those tests open.
var fixtureNamespaces = []string{"dev", "dev2", "other", "quiet", "x", "team-a",
	"ns0", "ns1", "ns2", "ns3", "ns4", "ns5", "ns6", "ns7"}

// withNamespaces wraps open so the stores it returns hold fixtureNamespaces.
func withNamespaces(open opener) opener {
	return func(t *testing.T) store.Store {
		s := open(t)
		for _, n := range fixtureNamespaces {
			mustNamespace(t, s, n)
		}
		return s
	}
}

// namespaceTests run against bare stores: only DefaultNamespace exists.
var namespaceTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"NamespaceDefault", testNamespaceDefault},
	{"NamespaceCreateGetList", testNamespaceCreateGetList},
	{"NamespaceUpdate", testNamespaceUpdate},
	{"NamespaceInvalid", testNamespaceInvalid},
	{"NamespaceMissing", testNamespaceMissing},
	{"NamespaceCancelledContext", testNamespaceCancelledContext},
	{"NamespaceCopies", testNamespaceCopies},
	{"NamespaceDeleteNotEmpty", testNamespaceDeleteNotEmpty},
	{"NamespaceWritesAreQuiet", testNamespaceWritesAreQuiet},
	{"FunctionNeedsNamespace", testFunctionNeedsNamespace},
	{"NamespaceDeleteRacesCreate", testNamespaceDeleteRacesCreate},
	{"NamespaceDeleteNotEmptySecrets", testNamespaceDeleteNotEmptySecrets},
	{"NamespaceDeleteRacesCreateSecret", testNamespaceDeleteRacesCreateSecret},
}

func mustNamespace(t *testing.T, s store.Store, name string) types.FunctionNamespace {
	t.Helper()
	ns, err := s.CreateNamespace(t.Context(), types.FunctionNamespace{Name: name, Labels: map[string]string{"openfaas": "1"}})
	if err != nil {
		t.Fatalf("CreateNamespace(%s): %v", name, err)
	}
	return ns
}

func namesOf(list []types.FunctionNamespace) []string {
	out := make([]string, 0, len(list))
	for _, ns := range list {
		out = append(out, ns.Name)
	}
	return out
}

func mustListNamespaces(t *testing.T, s store.Store) []types.FunctionNamespace {
	t.Helper()
	list, err := s.ListNamespaces(t.Context())
	if err != nil {
		t.Fatalf("ListNamespaces: %v", err)
	}
	return list
}

func testNamespaceDefault(t *testing.T, open opener) {
	s := open(t)
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace}) {
		t.Fatalf("ListNamespaces of a new store = %q, want only %s", got, store.DefaultNamespace)
	}
	ns, err := s.GetNamespace(t.Context(), store.DefaultNamespace)
	if err != nil || ns.Name != store.DefaultNamespace {
		t.Fatalf("GetNamespace(default) = %+v, %v", ns, err)
	}
	if _, err := s.CreateNamespace(t.Context(), types.FunctionNamespace{Name: store.DefaultNamespace}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateNamespace(default) = %v, want ErrConflict", err)
	}
	if err := s.DeleteNamespace(t.Context(), store.DefaultNamespace); !errors.Is(err, store.ErrDefaultNamespace) {
		t.Errorf("DeleteNamespace(default) = %v, want ErrDefaultNamespace", err)
	}
	if errors.Is(store.ErrDefaultNamespace, store.ErrNotFound) || errors.Is(store.ErrDefaultNamespace, store.ErrNotEmpty) {
		t.Error("ErrDefaultNamespace matches another sentinel")
	}

	// The default namespace can carry labels like any other, and stays
	// first and listed once.
	mustNamespace(t, s, "a")
	labelled := types.FunctionNamespace{Name: store.DefaultNamespace, Labels: map[string]string{"team": "core"}}
	if _, err := s.UpdateNamespace(t.Context(), labelled); err != nil {
		t.Fatalf("UpdateNamespace(default): %v", err)
	}
	got, err := s.GetNamespace(t.Context(), store.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "default after update", got, labelled)
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace, "a"}) {
		t.Errorf("ListNamespaces = %q, want [%s a]", got, store.DefaultNamespace)
	}
	if err := s.DeleteNamespace(t.Context(), store.DefaultNamespace); !errors.Is(err, store.ErrDefaultNamespace) {
		t.Errorf("DeleteNamespace(default) after an update = %v, want ErrDefaultNamespace", err)
	}
}

func testNamespaceCreateGetList(t *testing.T, open opener) {
	s := open(t)
	full := types.FunctionNamespace{
		Name:        "dev",
		Labels:      map[string]string{"openfaas": "1", "team": "x"},
		Annotations: map[string]string{"openfaas": "1", "a": "<&> ✓"},
	}
	created, err := s.CreateNamespace(t.Context(), full)
	if err != nil {
		t.Fatalf("CreateNamespace: %v", err)
	}
	assertSameJSON(t, "CreateNamespace result", created, full)
	for _, n := range []string{"zeta", "a-team", "dev2"} {
		mustNamespace(t, s, n)
	}
	got, err := s.GetNamespace(t.Context(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "GetNamespace", got, full)

	list := mustListNamespaces(t, s)
	want := []string{store.DefaultNamespace, "a-team", "dev", "dev2", "zeta"}
	if got := namesOf(list); !equal(got, want) {
		t.Fatalf("ListNamespaces = %q, want %q", got, want)
	}
	assertSameJSON(t, "listed dev", list[2], full)

	// A second create changes nothing.
	_, err = s.CreateNamespace(t.Context(), types.FunctionNamespace{Name: "dev", Labels: map[string]string{"other": "1"}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second CreateNamespace = %v, want ErrConflict", err)
	}
	got, _ = s.GetNamespace(t.Context(), "dev")
	assertSameJSON(t, "dev after a conflicting create", got, full)

	// Deleted, it is gone and can be created again, empty.
	if err := s.DeleteNamespace(t.Context(), "dev"); err != nil {
		t.Fatalf("DeleteNamespace: %v", err)
	}
	if _, err := s.GetNamespace(t.Context(), "dev"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetNamespace after delete = %v, want ErrNotFound", err)
	}
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace, "a-team", "dev2", "zeta"}) {
		t.Errorf("ListNamespaces after delete = %q", got)
	}
	again := mustNamespace(t, s, "dev")
	if len(again.Annotations) != 0 {
		t.Errorf("recreated dev kept old annotations %v", again.Annotations)
	}
}

func testNamespaceUpdate(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "dev")
	mustCreate(t, s, spec("dev", "fn"), 1)
	next := types.FunctionNamespace{Name: "dev", Labels: map[string]string{"openfaas": "1", "team": "y"}}
	got, err := s.UpdateNamespace(t.Context(), next)
	if err != nil {
		t.Fatalf("UpdateNamespace: %v", err)
	}
	assertSameJSON(t, "UpdateNamespace result", got, next)
	stored, err := s.GetNamespace(t.Context(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	// Replaced, not merged: the annotations dev was created without stay
	// absent and labels not sent are gone.
	assertSameJSON(t, "dev after update", stored, next)
	// Functions in it are untouched.
	if f := mustGet(t, s, key("dev", "fn")); f.Generation != 1 {
		t.Errorf("function after namespace update: generation %d, want 1", f.Generation)
	}
}

func testNamespaceInvalid(t *testing.T, open opener) {
	s := open(t)
	for _, name := range []string{"", "a/b", "/", "dev/"} {
		ns := types.FunctionNamespace{Name: name}
		if _, err := s.CreateNamespace(t.Context(), ns); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateNamespace(%q) = %v, want a plain error", name, err)
		}
		if _, err := s.UpdateNamespace(t.Context(), ns); err == nil {
			t.Errorf("UpdateNamespace(%q) succeeded", name)
		}
	}
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace}) {
		t.Errorf("ListNamespaces after invalid creates = %q", got)
	}
}

func testNamespaceMissing(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "dev2") // "dev" must not match "dev2"
	ops := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"GetNamespace", func(ctx context.Context) error { _, err := s.GetNamespace(ctx, "dev"); return err }},
		{"UpdateNamespace", func(ctx context.Context) error {
			_, err := s.UpdateNamespace(ctx, types.FunctionNamespace{Name: "dev"})
			return err
		}},
		{"DeleteNamespace", func(ctx context.Context) error { return s.DeleteNamespace(ctx, "dev") }},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			err := o.op(t.Context())
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s of a missing namespace = %v, want ErrNotFound", o.name, err)
			}
			if errors.Is(err, store.ErrNamespaceNotFound) || errors.Is(err, store.ErrConflict) {
				t.Errorf("%s error %v also matches another sentinel", o.name, err)
			}
		})
	}
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace, "dev2"}) {
		t.Errorf("ListNamespaces = %q: a failed update must not create", got)
	}
}

func testNamespaceCancelledContext(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "dev")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ops := []struct {
		name string
		op   func() error
	}{
		{"GetNamespace", func() error { _, err := s.GetNamespace(ctx, "dev"); return err }},
		{"ListNamespaces", func() error { _, err := s.ListNamespaces(ctx); return err }},
		{"CreateNamespace", func() error { _, err := s.CreateNamespace(ctx, types.FunctionNamespace{Name: "new"}); return err }},
		{"UpdateNamespace", func() error {
			_, err := s.UpdateNamespace(ctx, types.FunctionNamespace{Name: "dev", Labels: map[string]string{"x": "y"}})
			return err
		}},
		{"DeleteNamespace", func() error { return s.DeleteNamespace(ctx, "dev") }},
	}
	for _, o := range ops {
		if err := o.op(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", o.name, err)
		}
	}
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace, "dev"}) {
		t.Errorf("ListNamespaces after cancelled writes = %q", got)
	}
	if ns, _ := s.GetNamespace(t.Context(), "dev"); ns.Labels["x"] != "" {
		t.Errorf("cancelled update was applied: %+v", ns)
	}
}

func testNamespaceCopies(t *testing.T, open opener) {
	s := open(t)
	in := types.FunctionNamespace{Name: "dev", Labels: map[string]string{"a": "1"}, Annotations: map[string]string{"b": "2"}}
	created, err := s.CreateNamespace(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := mustJSON(t, in)
	mutate := func(ns *types.FunctionNamespace) {
		ns.Labels["a"] = "mutated"
		ns.Annotations["b"] = "mutated"
	}
	check := func(what string) {
		t.Helper()
		got, err := s.GetNamespace(t.Context(), "dev")
		if err != nil {
			t.Fatal(err)
		}
		if g := mustJSON(t, got); string(g) != string(want) {
			t.Fatalf("after mutating %s, stored namespace changed:\n got  %s\n want %s", what, g, want)
		}
	}
	mutate(&in)
	check("the namespace passed to CreateNamespace")
	mutate(&created)
	check("the value CreateNamespace returned")
	got, _ := s.GetNamespace(t.Context(), "dev")
	mutate(&got)
	check("a value GetNamespace returned")
	list := mustListNamespaces(t, s)
	mutate(&list[1])
	check("a value ListNamespaces returned")
}

// testNamespaceDeleteNotEmpty: a namespace holding a function cannot be
// deleted, and the refusal changes nothing.
func testNamespaceDeleteNotEmpty(t *testing.T, open opener) {
	s := open(t)
	dev := types.FunctionNamespace{Name: "dev", Labels: map[string]string{"openfaas": "1"}, Annotations: map[string]string{"k": "v"}}
	if _, err := s.CreateNamespace(t.Context(), dev); err != nil {
		t.Fatal(err)
	}
	mustNamespace(t, s, "dev2")
	mustNamespace(t, s, "de")
	fn := mustCreate(t, s, spec("dev", "fn"), 2)
	mustCreate(t, s, spec("dev2", "fn"), 1)

	err := s.DeleteNamespace(t.Context(), "dev")
	if !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("DeleteNamespace of a namespace with a function = %v, want ErrNotEmpty", err)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("error %v also matches another sentinel", err)
	}
	got, err := s.GetNamespace(t.Context(), "dev")
	if err != nil {
		t.Fatalf("GetNamespace after a refused delete: %v", err)
	}
	assertSameJSON(t, "dev after a refused delete", got, dev)
	assertSameJSON(t, "function after a refused delete", mustGet(t, s, fn.Key()), fn)

	// A prefix of a namespace name is another namespace: "de" is empty even
	// though "dev" and "dev2" are not.
	if err := s.DeleteNamespace(t.Context(), "de"); err != nil {
		t.Errorf("DeleteNamespace(de) = %v; functions in dev and dev2 are not in de", err)
	}

	if err := s.Delete(t.Context(), fn.Key()); err != nil {
		t.Fatal(err)
	}
	// dev2/fn must not count for dev.
	if err := s.DeleteNamespace(t.Context(), "dev"); err != nil {
		t.Fatalf("DeleteNamespace of the emptied namespace: %v", err)
	}
	if _, err := s.Get(t.Context(), key("dev2", "fn")); err != nil {
		t.Errorf("dev2/fn after deleting dev: %v", err)
	}
	if got := namesOf(mustListNamespaces(t, s)); !equal(got, []string{store.DefaultNamespace, "dev2"}) {
		t.Errorf("ListNamespaces = %q", got)
	}
}

// testNamespaceWritesAreQuiet: watchers hear of function keys only; a
// namespace key would be a key the controller cannot reconcile.
func testNamespaceWritesAreQuiet(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "quiet")
	w := s.Watch(t.Context())
	mustNamespace(t, s, "dev")
	if _, err := s.UpdateNamespace(t.Context(), types.FunctionNamespace{Name: "dev"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace(t.Context(), "dev"); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, s, w)
}

// testFunctionNeedsNamespace: functions are written only into existing
// namespaces, and the refusal is its own sentinel so that callers can tell
// "no such function" from "no such namespace".
func testFunctionNeedsNamespace(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "quiet")
	w := s.Watch(t.Context())
	_, err := s.Create(t.Context(), spec("ghost", "fn"), 1)
	if !errors.Is(err, store.ErrNamespaceNotFound) {
		t.Fatalf("Create in a missing namespace = %v, want ErrNamespaceNotFound", err)
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("error %v also matches another sentinel", err)
	}
	_, err = s.Update(t.Context(), spec("ghost", "fn"), nil)
	if !errors.Is(err, store.ErrNamespaceNotFound) {
		t.Errorf("Update in a missing namespace = %v, want ErrNamespaceNotFound", err)
	}
	if fns, err := s.List(t.Context(), ""); err != nil || len(fns) != 0 {
		t.Errorf("List = %d functions, %v; want none", len(fns), err)
	}
	expectQuiet(t, s, w)

	// Once the namespace exists, the same create succeeds; once it is gone
	// again, creates are refused again.
	mustNamespace(t, s, "ghost")
	f := mustCreate(t, s, spec("ghost", "fn"), 1)
	if err := s.Delete(t.Context(), f.Key()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace(t.Context(), "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), spec("ghost", "fn"), 1); !errors.Is(err, store.ErrNamespaceNotFound) {
		t.Errorf("Create after the namespace was deleted = %v, want ErrNamespaceNotFound", err)
	}
}

// testNamespaceDeleteRacesCreate races DeleteNamespace against Create of a
// function in it, many times. Whatever the interleaving, no function may be
// left in a namespace that no longer exists, and exactly one side wins.
func testNamespaceDeleteRacesCreate(t *testing.T, open opener) {
	s := open(t)
	raceDelete(t, s, func(ns string) error {
		_, err := s.Create(t.Context(), spec(ns, "fn"), 1)
		return err
	}, func(ns string) error {
		_, err := s.Get(t.Context(), key(ns, "fn"))
		return err
	})
}

// testNamespaceDeleteRacesCreateSecret is the same race with a secret.
func testNamespaceDeleteRacesCreateSecret(t *testing.T, open opener) {
	s := open(t)
	raceDelete(t, s, func(ns string) error {
		_, err := s.CreateSecret(t.Context(), ns, "api-key", []byte("v"))
		return err
	}, func(ns string) error {
		_, err := s.GetSecret(t.Context(), ns, "api-key")
		return err
	})
}

// raceDelete runs create (of something in the namespace) against
// DeleteNamespace, rounds times, and checks get (of that something)
// afterwards: exactly one side wins, and nothing outlives its namespace.
func raceDelete(t *testing.T, s store.Store, create, get func(ns string) error) {
	const rounds = 100
	var createWins, deleteWins int
	for i := range rounds {
		name := fmt.Sprintf("race-%03d", i)
		mustNamespace(t, s, name)
		var (
			wg                   sync.WaitGroup
			createErr, deleteErr error
		)
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			createErr = create(name)
		})
		wg.Go(func() {
			<-start
			deleteErr = s.DeleteNamespace(t.Context(), name)
		})
		close(start)
		wg.Wait()

		_, nsErr := s.GetNamespace(t.Context(), name)
		fnErr := get(name)
		switch {
		case createErr == nil && errors.Is(deleteErr, store.ErrNotEmpty):
			// The create committed first: both still exist.
			createWins++
			if nsErr != nil || fnErr != nil {
				t.Fatalf("round %d: create won but namespace %v, its content %v", i, nsErr, fnErr)
			}
		case deleteErr == nil && errors.Is(createErr, store.ErrNamespaceNotFound):
			// The delete committed first: neither exists.
			deleteWins++
			if !errors.Is(nsErr, store.ErrNotFound) || !errors.Is(fnErr, store.ErrNotFound) {
				t.Fatalf("round %d: delete won but namespace %v, its content %v", i, nsErr, fnErr)
			}
		default:
			t.Fatalf("round %d: create = %v, delete = %v; want exactly one to win", i, createErr, deleteErr)
		}
	}
	t.Logf("%d rounds: create committed first %d times, delete %d times", rounds, createWins, deleteWins)
}

// testNamespaceDeleteNotEmptySecrets: a secret keeps its namespace alive
// just like a function does.
func testNamespaceDeleteNotEmptySecrets(t *testing.T, open opener) {
	s := open(t)
	mustNamespace(t, s, "dev")
	mustNamespace(t, s, "dev2")
	if _, err := s.CreateSecret(t.Context(), "dev", "api-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSecret(t.Context(), "dev2", "api-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSecret(t.Context(), "ghost", "api-key", []byte("v")); !errors.Is(err, store.ErrNamespaceNotFound) {
		t.Errorf("CreateSecret in a missing namespace = %v, want ErrNamespaceNotFound", err)
	}
	if err := s.DeleteNamespace(t.Context(), "dev"); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("DeleteNamespace of a namespace with a secret = %v, want ErrNotEmpty", err)
	}
	if sec, err := s.GetSecret(t.Context(), "dev", "api-key"); err != nil || string(sec.Value) != "v" {
		t.Fatalf("secret after a refused delete: %v", err)
	}
	if err := s.DeleteSecret(t.Context(), "dev", "api-key"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace(t.Context(), "dev"); err != nil {
		t.Fatalf("DeleteNamespace once its secret is gone: %v", err)
	}
	if _, err := s.GetSecret(t.Context(), "dev2", "api-key"); err != nil {
		t.Errorf("dev2's secret after deleting dev: %v", err)
	}
}
