package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// secretTests run against stores holding fixtureNamespaces.
var secretTests = []struct {
	name string
	fn   func(t *testing.T, open opener)
}{
	{"SecretCreateGetList", testSecretCreateGetList},
	{"SecretConflict", testSecretConflict},
	{"SecretUpdateRevision", testSecretUpdateRevision},
	{"SecretMissing", testSecretMissing},
	{"SecretInvalid", testSecretInvalid},
	{"SecretNeedsNamespace", testSecretNeedsNamespace},
	{"SecretCancelledContext", testSecretCancelledContext},
	{"SecretCopies", testSecretCopies},
	{"SecretWatch", testSecretWatch},
	{"SecretNeverFormatted", testSecretNeverFormatted},
	{"SecretConcurrentUpdates", testSecretConcurrentUpdates},
}

func mustCreateSecret(t *testing.T, s store.Store, ns, name string, value []byte) store.SecretInfo {
	t.Helper()
	info, err := s.CreateSecret(t.Context(), ns, name, value)
	if err != nil {
		t.Fatalf("CreateSecret(%s/%s): %v", ns, name, err)
	}
	return info
}

func mustGetSecret(t *testing.T, s store.Store, ns, name string) store.Secret {
	t.Helper()
	sec, err := s.GetSecret(t.Context(), ns, name)
	if err != nil {
		t.Fatalf("GetSecret(%s/%s): %v", ns, name, err)
	}
	return sec
}

func secretKeys(list []store.SecretInfo) []string {
	keys := make([]string, 0, len(list))
	for _, s := range list {
		keys = append(keys, s.Key())
	}
	return keys
}

func testSecretCreateGetList(t *testing.T, open opener) {
	s := open(t)
	values := map[string][]byte{
		"dev/b":           []byte("b-value"),
		"openfaas-fn/c":   []byte("line1\nline2 \n"),
		"dev2/a":          {0, 1, 2, 0xff, 0xfe}, // binary, as rawValue allows
		"openfaas-fn/a.b": bytes.Repeat([]byte("x"), 256<<10),
	}
	created := map[string]store.SecretInfo{}
	for k, v := range values {
		ns, name, err := store.SplitKey(k)
		if err != nil {
			t.Fatal(err)
		}
		info := mustCreateSecret(t, s, ns, name, v)
		created[k] = info
		switch {
		case info.Key() != k || info.Namespace != ns || info.Name != name:
			t.Errorf("CreateSecret(%s): key %q namespace %q name %q", k, info.Key(), info.Namespace, info.Name)
		case info.Revision == 0:
			t.Errorf("CreateSecret(%s): revision 0, want > 0", k)
		case info.CreatedAt.IsZero() || !info.CreatedAt.Equal(info.UpdatedAt):
			t.Errorf("CreateSecret(%s): createdAt %v updatedAt %v, want equal and set", k, info.CreatedAt, info.UpdatedAt)
		}
	}
	// An empty namespace is the default one, as for functions.
	if got := mustGetSecret(t, s, "", "c"); got.Key() != "openfaas-fn/c" {
		t.Errorf("GetSecret(\"\", c) = %s, want openfaas-fn/c", got.Key())
	}
	for k, v := range values {
		ns, name, _ := store.SplitKey(k)
		got := mustGetSecret(t, s, ns, name)
		if !bytes.Equal(got.Value, v) {
			t.Errorf("GetSecret(%s): value differs from what was stored (%d bytes, want %d)", k, len(got.Value), len(v))
		}
		assertSameJSON(t, "GetSecret info vs CreateSecret result for "+k, got.SecretInfo, created[k])
	}

	lists := []struct {
		namespace string
		want      []string
	}{
		{"", []string{"dev/b", "dev2/a", "openfaas-fn/a.b", "openfaas-fn/c"}},
		{"dev", []string{"dev/b"}}, // "dev" must not match "dev2"
		{store.DefaultNamespace, []string{"openfaas-fn/a.b", "openfaas-fn/c"}},
		{"missing", []string{}},
	}
	for _, l := range lists {
		got, err := s.ListSecrets(t.Context(), l.namespace)
		if err != nil {
			t.Fatalf("ListSecrets(%q): %v", l.namespace, err)
		}
		if got == nil {
			t.Errorf("ListSecrets(%q) = nil, want an empty list", l.namespace)
		}
		if keys := secretKeys(got); !equal(keys, l.want) {
			t.Errorf("ListSecrets(%q) = %q, want %q", l.namespace, keys, l.want)
		}
		for _, info := range got {
			assertSameJSON(t, "ListSecrets entry "+info.Key(), info, created[info.Key()])
		}
	}
	// Secrets are not functions.
	if fns, err := s.List(t.Context(), ""); err != nil || len(fns) != 0 {
		t.Errorf("List after creating secrets = %d functions, %v; want none", len(fns), err)
	}
}

func testSecretConflict(t *testing.T, open opener) {
	s := open(t)
	first := mustCreateSecret(t, s, "", "api-key", []byte("one"))
	w := s.Watch(t.Context())
	for _, ns := range []string{"", store.DefaultNamespace} {
		_, err := s.CreateSecret(t.Context(), ns, "api-key", []byte("two"))
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second CreateSecret = %v, want ErrConflict", err)
		}
		if !strings.Contains(err.Error(), first.Key()) {
			t.Errorf("error %q does not name the key %q", err, first.Key())
		}
	}
	got := mustGetSecret(t, s, "", "api-key")
	if string(got.Value) != "one" || got.Revision != first.Revision {
		t.Errorf("after conflicts: revision %d (want %d), value changed=%v", got.Revision, first.Revision, string(got.Value) != "one")
	}
	// The same name in another namespace is another secret.
	mustCreateSecret(t, s, "dev", "api-key", []byte("dev"))
	expectNext(t, w, store.SecretWatchKey("dev", "api-key"))
	expectQuiet(t, s, w)
}

func testSecretUpdateRevision(t *testing.T, open opener) {
	s := open(t)
	w := s.Watch(t.Context())
	created := mustCreateSecret(t, s, "dev", "token", []byte("v1"))
	expectNext(t, w, store.SecretWatchKey("dev", "token"))

	updated, err := s.UpdateSecret(t.Context(), "dev", "token", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	expectNext(t, w, store.SecretWatchKey("dev", "token"))
	if updated.Revision <= created.Revision {
		t.Errorf("update: revision %d, want > %d", updated.Revision, created.Revision)
	}
	if !updated.CreatedAt.Equal(created.CreatedAt) || updated.UpdatedAt.Before(created.UpdatedAt) {
		t.Errorf("update: createdAt %v updatedAt %v; want createdAt kept (%v), updatedAt not earlier", updated.CreatedAt, updated.UpdatedAt, created.CreatedAt)
	}
	if got := mustGetSecret(t, s, "dev", "token"); string(got.Value) != "v2" || got.Revision != updated.Revision {
		t.Errorf("after update: revision %d (want %d), value is the new one: %v", got.Revision, updated.Revision, string(got.Value) == "v2")
	}

	// Writing the value the secret already has is no change: no new
	// revision (so no function rolls) and no notification.
	same, err := s.UpdateSecret(t.Context(), "dev", "token", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	assertSameJSON(t, "no-op update result", same, updated)
	expectQuiet(t, s, w)

	// Deleting and recreating with the same value is a new revision: the
	// functions using it must get the file again.
	if err := s.DeleteSecret(t.Context(), "dev", "token"); err != nil {
		t.Fatal(err)
	}
	expectNext(t, w, store.SecretWatchKey("dev", "token"))
	again := mustCreateSecret(t, s, "dev", "token", []byte("v2"))
	expectNext(t, w, store.SecretWatchKey("dev", "token"))
	if again.Revision <= updated.Revision {
		t.Errorf("recreate: revision %d, want > %d", again.Revision, updated.Revision)
	}
}

func testSecretMissing(t *testing.T, open opener) {
	s := open(t)
	mustCreateSecret(t, s, "other", "sec", []byte("x")) // same name, other namespace
	w := s.Watch(t.Context())
	ops := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.GetSecret(ctx, "", "sec"); return err }},
		{"Update", func(ctx context.Context) error { _, err := s.UpdateSecret(ctx, "", "sec", []byte("y")); return err }},
		{"Delete", func(ctx context.Context) error { return s.DeleteSecret(ctx, "", "sec") }},
	}
	for _, o := range ops {
		err := o.op(t.Context())
		if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s of a missing secret = %v, want ErrNotFound only", o.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "openfaas-fn/sec") {
			t.Errorf("%s error %q does not name the key", o.name, err)
		}
	}
	expectQuiet(t, s, w)
}

func testSecretInvalid(t *testing.T, open opener) {
	s := open(t)
	cases := []struct{ ns, name string }{
		{"", ""},
		{"", "a/b"},
		{"a/b", "c"},
	}
	for _, c := range cases {
		_, err := s.CreateSecret(t.Context(), c.ns, c.name, []byte("v"))
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateSecret(%q, %q) = %v, want an error matching no sentinel", c.ns, c.name, err)
		}
	}
	if list, err := s.ListSecrets(t.Context(), ""); err != nil || len(list) != 0 {
		t.Errorf("ListSecrets after invalid creates = %q, %v; want none", secretKeys(list), err)
	}
}

func testSecretNeedsNamespace(t *testing.T, open opener) {
	s := open(t)
	_, err := s.CreateSecret(t.Context(), "nowhere", "sec", []byte("v"))
	if !errors.Is(err, store.ErrNamespaceNotFound) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateSecret in a missing namespace = %v, want ErrNamespaceNotFound (and not ErrNotFound)", err)
	}
	if list, err := s.ListSecrets(t.Context(), "nowhere"); err != nil || len(list) != 0 {
		t.Errorf("ListSecrets(nowhere) = %q, %v; want none", secretKeys(list), err)
	}
}

func testSecretCancelledContext(t *testing.T, open opener) {
	s := open(t)
	existing := mustCreateSecret(t, s, "", "existing", []byte("kept"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ops := []struct {
		name string
		op   func() error
	}{
		{"Create", func() error { _, err := s.CreateSecret(ctx, "", "new", []byte("v")); return err }},
		{"Update", func() error { _, err := s.UpdateSecret(ctx, "", "existing", []byte("changed")); return err }},
		{"Delete", func() error { return s.DeleteSecret(ctx, "", "existing") }},
		{"Get", func() error { _, err := s.GetSecret(ctx, "", "existing"); return err }},
		{"List", func() error { _, err := s.ListSecrets(ctx, ""); return err }},
	}
	for _, o := range ops {
		if err := o.op(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", o.name, err)
		}
	}
	got := mustGetSecret(t, s, "", "existing")
	if string(got.Value) != "kept" || got.Revision != existing.Revision {
		t.Errorf("secret changed by cancelled writes: revision %d, want %d", got.Revision, existing.Revision)
	}
	if _, err := s.GetSecret(t.Context(), "", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSecret of a secret created with a cancelled context = %v, want ErrNotFound", err)
	}
}

func testSecretCopies(t *testing.T, open opener) {
	s := open(t)
	value := []byte("original")
	mustCreateSecret(t, s, "", "sec", value)
	value[0] = 'X' // the caller's slice is not the stored value
	got := mustGetSecret(t, s, "", "sec")
	if string(got.Value) != "original" {
		t.Fatalf("stored value follows the caller's slice: %q", got.Value)
	}
	got.Value[0] = 'Y' // nor is a returned one
	if again := mustGetSecret(t, s, "", "sec"); string(again.Value) != "original" {
		t.Errorf("stored value follows a returned slice: %q", again.Value)
	}
}

func testSecretWatch(t *testing.T, open opener) {
	s := open(t)
	w := s.Watch(t.Context())
	fn := mustCreate(t, s, spec("dev", "sec"), 1) // a function of the same name
	mustCreateSecret(t, s, "dev", "sec", []byte("v"))
	keys := next(t, w)
	sk := store.SecretWatchKey("dev", "sec")
	if !equal(keys, []string{fn.Key(), sk}) && !equal(keys, []string{fn.Key()}) {
		t.Fatalf("Watcher.Next = %q, want the function key and %q", keys, sk)
	}
	if len(keys) == 1 {
		expectNext(t, w, sk)
	}
	if sk == fn.Key() {
		t.Fatalf("secret and function keys are the same: %q", sk)
	}
	ns, name, ok := store.SplitSecretWatchKey(sk)
	if !ok || ns != "dev" || name != "sec" {
		t.Errorf("SplitSecretWatchKey(%q) = %q, %q, %v; want dev, sec, true", sk, ns, name, ok)
	}
	if _, _, ok := store.SplitSecretWatchKey(fn.Key()); ok {
		t.Errorf("SplitSecretWatchKey(%q) accepted a function key", fn.Key())
	}
}

// testSecretNeverFormatted: a Secret printed by mistake (a log line, an
// error) shows no value.
func testSecretNeverFormatted(t *testing.T, open opener) {
	s := open(t)
	mustCreateSecret(t, s, "", "sec", []byte("do-not-print-me"))
	got := mustGetSecret(t, s, "", "sec")
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, got); strings.Contains(out, "do-not-print-me") {
			t.Errorf("Sprintf(%q) shows the value: %s", format, out)
		}
	}
}

func testSecretConcurrentUpdates(t *testing.T, open opener) {
	const writers = 8
	s := open(t)
	mustCreateSecret(t, s, "", "sec", []byte("start"))
	var wg sync.WaitGroup
	revs := make([]uint64, writers)
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := s.UpdateSecret(t.Context(), "", "sec", []byte(fmt.Sprintf("value-%d", i)))
			revs[i], errs[i] = info.Revision, err
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		if seen[revs[i]] {
			t.Errorf("two updates got revision %d", revs[i])
		}
		seen[revs[i]] = true
	}
	got := mustGetSecret(t, s, "", "sec")
	if !seen[got.Revision] || !strings.HasPrefix(string(got.Value), "value-") {
		t.Errorf("final secret: revision %d value %q; want one writer's", got.Revision, got.Value)
	}
}
