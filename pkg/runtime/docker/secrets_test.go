package docker

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/controller"
	engine "github.com/dockerfaasd/dockerfaasd/pkg/docker"
	"github.com/dockerfaasd/dockerfaasd/pkg/docker/fake"
	"github.com/dockerfaasd/dockerfaasd/pkg/runtime"
	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

func (f *fixture) secret(ns, name, value string) store.SecretInfo {
	f.t.Helper()
	info, err := f.st.CreateSecret(context.Background(), ns, name, []byte(value))
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

func (f *fixture) updateSecret(ns, name, value string) store.SecretInfo {
	f.t.Helper()
	info, err := f.st.UpdateSecret(context.Background(), ns, name, []byte(value))
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

// containerIDs maps the names of running containers with prefix to IDs.
func (f *fixture) containerIDs(prefix string) map[string]string {
	f.t.Helper()
	list, err := f.eng.ListContainers(context.Background(), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		if c.State == engine.StateRunning && strings.HasPrefix(c.Name, prefix) {
			out[c.Name] = c.ID
		}
	}
	return out
}

func withSecrets(names ...string) func(*types.FunctionDeployment) {
	return func(d *types.FunctionDeployment) { d.Secrets = names }
}

// TestSecretsCopiedBeforeStart: every replica gets each secret it lists as
// a root-owned 0444 file in /var/openfaas/secrets, copied after create and
// before start, on a read-only root filesystem too (the directory is a
// volume, which is what lets Docker copy there).
func TestSecretsCopiedBeforeStart(t *testing.T) {
	f := newFixture(t)
	f.secret("", "api-key", "k3y")
	if _, err := f.st.CreateSecret(context.Background(), "", "cert", []byte{0, 1, 0xff, '\n'}); err != nil {
		t.Fatal(err)
	}
	f.secret("", "unused", "never copied")
	key := f.deploy(deployment("fn", withSecrets("cert", "api-key", "cert"), func(d *types.FunctionDeployment) {
		d.ReadOnlyRootFilesystem = true
	}), 2)
	if res := f.reconcile(key, 5); res.RequeueAfter != 0 {
		t.Fatalf("not converged: %+v", res)
	}

	ids := f.containerIDs("t-fn.")
	if len(ids) != 2 {
		t.Fatalf("running = %v, want 2 replicas", ids)
	}
	actions := f.eng.Actions()
	for name, id := range ids {
		want := []string{"create " + name, "copy " + name + " " + runtime.SecretsDir, "start " + name}
		var got []string
		for _, a := range actions {
			if strings.HasSuffix(a, " "+name) || strings.Contains(a, " "+name+" ") {
				got = append(got, a)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: actions %q, want %q", name, got, want)
		}
		spec, _ := f.eng.Spec(id)
		if !slices.Equal(spec.Volumes, []string{runtime.SecretsDir}) || !spec.ReadOnlyRootfs {
			t.Errorf("%s: volumes %v read-only %v, want a volume at %s on a read-only root", name, spec.Volumes, spec.ReadOnlyRootfs, runtime.SecretsDir)
		}
		files := f.eng.Files(id)
		wantFiles := map[string]string{runtime.SecretsDir + "/api-key": "k3y", runtime.SecretsDir + "/cert": "\x00\x01\xff\n"}
		if len(files) != len(wantFiles) {
			t.Errorf("%s: files %v, want exactly %v", name, keys(files), keys(wantFiles))
		}
		for p, content := range wantFiles {
			got, ok := files[p]
			switch {
			case !ok:
				t.Errorf("%s: %s missing", name, p)
			case string(got.Content) != content:
				t.Errorf("%s: %s has the wrong content", name, p)
			case got.Mode != fs.FileMode(0o444) || got.UID != 0 || got.GID != 0:
				t.Errorf("%s: %s mode %v owner %d:%d, want -r--r--r-- root:root", name, p, got.Mode, got.UID, got.GID)
			}
		}
	}
}

// TestNoSecretsNoCopy: a function without secrets gets no volume and no copy.
func TestNoSecretsNoCopy(t *testing.T) {
	f := newFixture(t)
	f.secret("", "api-key", "v")
	key := f.deploy(deployment("fn"), 1)
	f.reconcile(key, 5)
	for _, a := range f.eng.Actions() {
		if strings.HasPrefix(a, "copy ") {
			t.Errorf("unexpected %q", a)
		}
	}
	for _, id := range f.containerIDs("t-fn.") {
		if spec, _ := f.eng.Spec(id); len(spec.Volumes) != 0 {
			t.Errorf("volumes %v on a function without secrets", spec.Volumes)
		}
	}
}

// TestSecretCopyFailureStartsNothing: a replica whose secrets could not be
// copied is removed, never started without them.
func TestSecretCopyFailureStartsNothing(t *testing.T) {
	f := newFixture(t)
	f.secret("", "api-key", "v")
	key := f.deploy(deployment("fn", withSecrets("api-key")), 1)
	errCopy := errors.New("archive refused")
	f.eng.Fail = func(op, _ string) error {
		if op == "copy" {
			return errCopy
		}
		return nil
	}
	if _, err := f.c.Reconcile(context.Background(), key); !errors.Is(err, errCopy) {
		t.Fatalf("Reconcile = %v, want the copy error", err)
	}
	if n := f.eng.Names(""); len(n) != 0 {
		t.Fatalf("containers after a failed copy: %v", n)
	}
	f.eng.Fail = nil
	if res := f.reconcile(key, 5); res.RequeueAfter != 0 {
		t.Fatalf("not converged after the copy works again: %+v", res)
	}
}

// TestSecretUpdateRollsFunction: a new value reaches every replica through
// the usual readiness-gated roll; capacity never drops.
func TestSecretUpdateRollsFunction(t *testing.T) {
	f := newFixture(t)
	f.secret("", "api-key", "v1")
	key := f.deploy(deployment("fn", withSecrets("api-key")), 2)
	f.reconcile(key, 5)
	before, _ := f.board.Get(key)
	oldIDs := f.containerIDs("t-fn.")

	info := f.updateSecret("", "api-key", "v2")
	fn, _ := f.st.Get(context.Background(), key)
	newHash := controller.SpecHash(fn.Spec, info)
	if newHash == before.SpecHash {
		t.Fatal("secret update did not change the spec hash")
	}
	for i := 0; i < 20; i++ {
		res, err := f.c.Reconcile(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if eps, _ := f.cache.Lookup(key); len(eps) < 2 {
			t.Fatalf("round %d: capacity dropped to %d during the roll", i, len(eps))
		}
		if res.RequeueAfter == 0 {
			break
		}
		time.Sleep(res.RequeueAfter)
	}
	after, _ := f.board.Get(key)
	if after.SpecHash != newHash || after.Reason != "" {
		t.Fatalf("after the roll: hash %s reason %q, want %s converged", after.SpecHash, after.Reason, newHash)
	}
	ids := f.containerIDs("t-fn.")
	if len(ids) != 2 {
		t.Fatalf("running after the roll: %v", ids)
	}
	for name, id := range ids {
		if slices.Contains(values(oldIDs), id) {
			t.Errorf("old replica %s survived", name)
		}
		if got := f.eng.Files(id)[runtime.SecretsDir+"/api-key"]; string(got.Content) != "v2" {
			t.Errorf("%s serves the old value", name)
		}
	}
	// Writing the same value again rolls nothing.
	f.eng.ResetActions()
	f.updateSecret("", "api-key", "v2")
	f.reconcile(key, 5)
	if a := f.eng.Actions(); len(a) != 0 {
		t.Errorf("an unchanged secret caused %q", a)
	}
}

// TestSecretDeletedKeepsReplicas: a function whose secret is gone cannot be
// reconciled (reason SecretNotFound, retried with backoff), but its running
// replicas stay and keep serving; creating the secret again lets it converge.
func TestSecretDeletedKeepsReplicas(t *testing.T) {
	f := newFixture(t)
	f.secret("", "api-key", "v1")
	key := f.deploy(deployment("fn", withSecrets("api-key")), 1)
	f.reconcile(key, 5)
	running := f.running("t-fn.")

	if err := f.st.DeleteSecret(context.Background(), "", "api-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Scale(context.Background(), key, 2); err != nil {
		t.Fatal(err)
	}
	f.eng.ResetActions()
	_, err := f.c.Reconcile(context.Background(), key)
	if err == nil || controller.IsTerminal(err) || !strings.Contains(err.Error(), "unable to find secret: api-key") {
		t.Fatalf("Reconcile = %v, want a retryable error naming the secret", err)
	}
	if st, _ := f.board.Get(key); st.Reason != "SecretNotFound" {
		t.Errorf("reason %q, want SecretNotFound", st.Reason)
	}
	if a := f.eng.Actions(); len(a) != 0 {
		t.Errorf("Docker changed while the secret is missing: %q", a)
	}
	if got := f.running("t-fn."); !slices.Equal(got, running) {
		t.Errorf("running = %v, want %v kept", got, running)
	}
	if eps, _ := f.cache.Lookup(key); len(eps) != 1 {
		t.Errorf("endpoints = %d, want the running replica kept", len(eps))
	}

	f.secret("", "api-key", "back")
	if res := f.reconcile(key, 20); res.RequeueAfter != 0 {
		t.Fatalf("not converged after the secret came back: %+v", res)
	}
	ids := f.containerIDs("t-fn.")
	if len(ids) != 2 {
		t.Fatalf("running = %v, want 2", ids)
	}
	for name, id := range ids {
		if got := f.eng.Files(id)[runtime.SecretsDir+"/api-key"]; string(got.Content) != "back" {
			t.Errorf("%s does not have the re-created value", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// The fake refuses what Docker refuses: this is why secrets need a volume.
func TestFakeRefusesCopyToReadOnlyRoot(t *testing.T) {
	eng := fake.New(testImage)
	ctx := context.Background()
	if _, err := eng.CreateNetwork(ctx, "n", nil); err != nil {
		t.Fatal(err)
	}
	id, err := eng.CreateContainer(ctx, engine.ContainerSpec{Name: "c", Image: testImage, Network: "n", ReadOnlyRootfs: true})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := secretsArchive([]runtime.Secret{{Name: "s", Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.CopyToContainer(ctx, id, runtime.SecretsDir, strings.NewReader(string(archive))); err == nil {
		t.Fatal("copy onto a read-only root succeeded")
	}
}
