package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// v1Dir holds a state file written by the store as of commit 54b2cce
// (before the generic bucket rewrite), its secrets key, and golden.json:
// what that code's read methods returned for it. genv1.go.txt there is the
// program that made all three. A daemon upgraded in place must serve
// exactly the same state from it.
const v1Dir = "testdata/v1"

// v1Golden is golden.json. Sequences are the bbolt bucket sequences, the
// last revision each bucket handed out.
type v1Golden struct {
	Sequences     map[string]uint64                  `json:"sequences"`
	Functions     map[string]store.Function          `json:"functions"`
	Lists         map[string][]store.Function        `json:"lists"`
	Secrets       map[string]store.Secret            `json:"secrets"`
	SecretLists   map[string][]store.SecretInfo      `json:"secretLists"`
	Namespaces    []types.FunctionNamespace          `json:"namespaces"`
	NamespaceGets map[string]types.FunctionNamespace `json:"namespaceGets"`
}

// openV1 copies the v1 state file and key into a temporary directory, so
// the test never changes testdata, opens it with this code and returns the
// store with the golden.
func openV1(t *testing.T) (*store.Bolt, string, v1Golden) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"state.db", store.SecretKeyFile} {
		b, err := os.ReadFile(filepath.Join(v1Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(v1Dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g v1Golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("golden.json: %v", err)
	}
	checkV1Coverage(t, g)
	path := filepath.Join(dir, "state.db")
	s, err := store.OpenWithKeyFile(path, filepath.Join(dir, store.SecretKeyFile))
	if err != nil {
		t.Fatalf("opening the v1 state file: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path, g
}

// checkV1Coverage fails when the golden no longer covers what the test is
// meant to prove: it must not pass by comparing next to nothing.
func checkV1Coverage(t *testing.T, g v1Golden) {
	t.Helper()
	fnNamespaces, secretNamespaces := map[string]bool{}, map[string]bool{}
	var maxGen int64
	scaled, secretUpdated := false, false
	for _, f := range g.Functions {
		fnNamespaces[f.Namespace] = true
		maxGen = max(maxGen, f.Generation)
		scaled = scaled || f.Replicas != 1
	}
	for _, sec := range g.Secrets {
		secretNamespaces[sec.Namespace] = true
		secretUpdated = secretUpdated || sec.UpdatedAt.After(sec.CreatedAt)
	}
	switch {
	case len(fnNamespaces) < 2 || maxGen < 3 || !scaled:
		t.Fatalf("golden: functions in %d namespaces, max generation %d, scaled %v; want ≥2, ≥3, true", len(fnNamespaces), maxGen, scaled)
	case len(secretNamespaces) < 2 || !secretUpdated:
		t.Fatalf("golden: secrets in %d namespaces, one updated %v; want ≥2, true", len(secretNamespaces), secretUpdated)
	case len(g.NamespaceGets) < 3 || g.Sequences["functions"] == 0 || g.Sequences["secrets"] == 0:
		t.Fatalf("golden: %d namespaces, sequences %v", len(g.NamespaceGets), g.Sequences)
	}
}

// v1Reads are every read the golden records, as (name, read, want).
func v1Reads(s store.Store, g v1Golden) []struct {
	name string
	read func(ctx context.Context) (any, error)
	want any
} {
	type read = struct {
		name string
		read func(ctx context.Context) (any, error)
		want any
	}
	var reads []read
	for k, want := range g.Functions {
		reads = append(reads, read{"Get " + k, func(ctx context.Context) (any, error) { return s.Get(ctx, k) }, want})
	}
	for ns, want := range g.Lists {
		reads = append(reads, read{"List " + ns, func(ctx context.Context) (any, error) { return s.List(ctx, ns) }, want})
	}
	for k, want := range g.Secrets {
		reads = append(reads, read{"GetSecret " + k, func(ctx context.Context) (any, error) {
			return s.GetSecret(ctx, want.Namespace, want.Name)
		}, want})
	}
	for ns, want := range g.SecretLists {
		reads = append(reads, read{"ListSecrets " + ns, func(ctx context.Context) (any, error) { return s.ListSecrets(ctx, ns) }, want})
	}
	if g.Namespaces != nil {
		reads = append(reads, read{"ListNamespaces", func(ctx context.Context) (any, error) { return s.ListNamespaces(ctx) }, g.Namespaces})
	}
	for name, want := range g.NamespaceGets {
		reads = append(reads, read{"GetNamespace " + name, func(ctx context.Context) (any, error) { return s.GetNamespace(ctx, name) }, want})
	}
	return reads
}

// checkV1Reads asserts that every read returns exactly the golden value;
// Secret's JSON includes its value, so secret values are compared too.
func checkV1Reads(t *testing.T, s store.Store, g v1Golden) {
	t.Helper()
	for _, r := range v1Reads(s, g) {
		got, err := r.read(t.Context())
		if err != nil {
			t.Errorf("%s: %v", r.name, err)
			continue
		}
		if g, w := mustJSON(t, got), mustJSON(t, r.want); !bytes.Equal(g, w) {
			t.Errorf("%s:\n got  %s\n want %s", r.name, g, w)
		}
	}
}

// TestCompatV1Reads: a v1 state file opens and serves every function,
// secret (value included), namespace, generation and revision unchanged,
// before and after a reopen, and passes Check.
func TestCompatV1Reads(t *testing.T) {
	s, path, g := openV1(t)
	if err := s.Check(); err != nil {
		t.Fatalf("Check of the v1 file: %v", err)
	}
	checkV1Reads(t, s, g)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBolt(t, path)
	checkV1Reads(t, s, g)
}

// TestCompatV1Writes: writes to a v1 file continue its revision sequences
// (no revision is handed out twice), bump generations from where they were,
// keep the old secrets readable, and survive a reopen.
func TestCompatV1Writes(t *testing.T) {
	s, path, g := openV1(t)
	ctx := t.Context()
	fnSeq, secretSeq := g.Sequences["functions"], g.Sequences["secrets"]
	hello := g.Functions[store.Key(store.DefaultNamespace, "hello")]
	scaled := g.Functions[store.Key(store.DefaultNamespace, "scaled")]
	dbPassword := g.Secrets[store.Key(store.DefaultNamespace, "db-password")]
	w := s.Watch(ctx)

	changedHello := hello.Spec
	changedHello.Image = "example/hello:2.0"
	newSecret := []byte("new-token")
	steps := []struct {
		name     string
		write    func() (any, error)
		want     any    // what write reports, compared as JSON
		watchKey string // what watchers hear; "" for a quiet write
	}{
		{"UpdateBumpsGeneration", func() (any, error) {
			f, err := s.Update(ctx, changedHello, nil)
			return []any{f.Generation, f.Revision, f.CreatedAt.Equal(hello.CreatedAt)}, err
		}, []any{hello.Generation + 1, fnSeq + 1, true}, hello.Key()},
		{"ScaleBumpsGeneration", func() (any, error) {
			f, err := s.Scale(ctx, scaled.Key(), scaled.Replicas+1)
			return []any{f.Generation, f.Revision, f.Replicas}, err
		}, []any{scaled.Generation + 1, fnSeq + 2, scaled.Replicas + 1}, scaled.Key()},
		{"CreateInOldNamespace", func() (any, error) {
			f, err := s.Create(ctx, types.FunctionDeployment{Service: "new", Namespace: "team-a", Image: "img"}, 1)
			return []any{f.Generation, f.Revision}, err
		}, []any{int64(1), fnSeq + 3}, store.Key("team-a", "new")},
		{"CreateSecret", func() (any, error) {
			info, err := s.CreateSecret(ctx, "team-a", "new-secret", newSecret)
			return info.Revision, err
		}, secretSeq + 1, store.SecretWatchKey("team-a", "new-secret")},
		{"UpdateOldSecret", func() (any, error) {
			info, err := s.UpdateSecret(ctx, dbPassword.Namespace, dbPassword.Name, []byte("third"))
			return []any{info.Revision, info.CreatedAt.Equal(dbPassword.CreatedAt)}, err
		}, []any{secretSeq + 2, true}, store.SecretWatchKey(dbPassword.Namespace, dbPassword.Name)},
		{"UpdateOldNamespace", func() (any, error) {
			return s.UpdateNamespace(ctx, types.FunctionNamespace{Name: "staging", Labels: map[string]string{"openfaas": "1", "v": "2"}})
		}, types.FunctionNamespace{Name: "staging", Labels: map[string]string{"openfaas": "1", "v": "2"}}, ""},
		{"DeleteOldNamespaceNotEmpty", func() (any, error) {
			err := s.DeleteNamespace(ctx, "team-a")
			return errors.Is(err, store.ErrNotEmpty), nil
		}, true, ""},
		{"DeleteOldEmptyNamespace", func() (any, error) {
			return nil, s.DeleteNamespace(ctx, "empty")
		}, nil, ""},
	}
	for _, st := range steps {
		got, err := st.write()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if g, w := mustJSON(t, got), mustJSON(t, st.want); !bytes.Equal(g, w) {
			t.Errorf("%s: got %s, want %s", st.name, g, w)
		}
		if st.watchKey != "" {
			keys, err := w.Next(ctx)
			if err != nil || len(keys) != 1 || keys[0] != st.watchKey {
				t.Errorf("%s: watcher got %q, %v; want [%s]", st.name, keys, err, st.watchKey)
			}
		}
	}

	// Everything not written reads back as before, before and after a reopen.
	untouched := g
	untouched.Functions = map[string]store.Function{}
	for k, f := range g.Functions {
		if k != hello.Key() && k != scaled.Key() {
			untouched.Functions[k] = f
		}
	}
	untouched.Secrets = map[string]store.Secret{}
	for k, sec := range g.Secrets {
		if k != dbPassword.Key() {
			untouched.Secrets[k] = sec
		}
	}
	untouched.Lists, untouched.SecretLists, untouched.Namespaces = nil, nil, nil
	untouched.NamespaceGets = map[string]types.FunctionNamespace{"team-a": g.NamespaceGets["team-a"], store.DefaultNamespace: g.NamespaceGets[store.DefaultNamespace]}
	for round := range 2 {
		checkV1Reads(t, s, untouched)
		if sec, err := s.GetSecret(ctx, "team-a", "new-secret"); err != nil || !bytes.Equal(sec.Value, newSecret) {
			t.Errorf("round %d: new secret: %v (value matches %v)", round, err, bytes.Equal(sec.Value, newSecret))
		}
		if sec, err := s.GetSecret(ctx, dbPassword.Namespace, dbPassword.Name); err != nil || string(sec.Value) != "third" || sec.Revision != secretSeq+2 {
			t.Errorf("round %d: updated old secret: %v (revision %d)", round, err, sec.Revision)
		}
		if f, err := s.Get(ctx, hello.Key()); err != nil || f.Generation != hello.Generation+1 || f.Spec.Image != changedHello.Image {
			t.Errorf("round %d: updated hello: %v (generation %d, image %s)", round, err, f.Generation, f.Spec.Image)
		}
		if _, err := s.GetNamespace(ctx, "empty"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("round %d: deleted namespace: %v, want ErrNotFound", round, err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("round %d: Check: %v", round, err)
		}
		if round == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openBolt(t, path)
		}
	}
}
