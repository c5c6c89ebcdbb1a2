package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/openfaas/faas-provider/types"
)

// secretsDir is where functions find their secrets.
const secretsDir = "/var/openfaas/secrets"

// secretFile invokes fn-echo's /file endpoint for one secret.
func (d *daemon) secretFile(fn, secret string) httpResult {
	d.t.Helper()
	return d.invoke(http.MethodGet, "/function/"+fn+"/file?path="+secretsDir+"/"+secret, nil, nil)
}

// listSecretsRaw returns GET /system/secrets as generic JSON, to see every
// field the daemon sends (a typed decode would hide a leaked value).
func (d *daemon) listSecretsRaw(ns string) ([]map[string]any, string) {
	d.t.Helper()
	path := "/system/secrets"
	if ns != "" {
		path += "?namespace=" + ns
	}
	res := d.invoke(http.MethodGet, path, nil, nil)
	if res.Status != http.StatusOK {
		d.t.Fatalf("GET %s: %s", path, res)
	}
	var out []map[string]any
	if err := json.Unmarshal(res.Body, &out); err != nil {
		d.t.Fatalf("GET %s: %s: %v", path, res, err)
	}
	return out, string(res.Body)
}

// secretNames lists the names the API reports.
func secretNames(list []map[string]any) []string {
	var out []string
	for _, s := range list {
		out = append(out, fmt.Sprint(s["name"]))
	}
	slices.Sort(out)
	return out
}

// userImages builds, once per run, images derived from a test function
// image that run as another user.
var userImages struct {
	mu   sync.Mutex
	tags map[string]string
}

// userImage returns base re-labelled to run as user (e.g. "1000:1000"), as
// many real function images do. Built from the local base, so no registry.
func userImage(t *testing.T, base, user string) string {
	t.Helper()
	userImages.mu.Lock()
	defer userImages.mu.Unlock()
	if tag, ok := userImages.tags[base+"|"+user]; ok {
		return tag
	}
	cli := requireDocker(t)
	repo, version, _ := strings.Cut(strings.TrimPrefix(base, imageRepoPrefix), ":")
	tag := imageRepoPrefix + repo + "-uid" + strings.ReplaceAll(user, ":", "-") + ":" + version
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		buildTagged(ctx, t, cli, tag, "FROM "+base+"\nUSER "+user+"\n", nil)
	}
	if userImages.tags == nil {
		userImages.tags = map[string]string{}
	}
	userImages.tags[base+"|"+user] = tag
	return tag
}

// secretEntry is one entry of the secrets directory as Docker archives it.
type secretEntry struct {
	mode     fs.FileMode
	uid, gid int
	content  string
}

// secretsOnDisk reads the secrets directory of a container through Docker's
// archive API: the modes and owners the function sees.
func (d *daemon) secretsOnDisk(id string) map[string]secretEntry {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, _, err := d.docker.CopyFromContainer(ctx, id, secretsDir)
	if err != nil {
		d.t.Fatalf("copy %s from %s: %v", secretsDir, short(id), err)
	}
	defer rc.Close()
	out := map[string]secretEntry{}
	tr := tar.NewReader(rc)
	for i := 0; i < 1000; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = secretEntry{mode: h.FileInfo().Mode(), uid: h.Uid, gid: h.Gid, content: string(b)}
	}
	return out
}

// TestSecretsCRUDAndFiles drives the secret API like faas-cli and the
// certifier's Test_SecretCRUD do, and checks what functions get: each listed
// secret as a read-only file in /var/openfaas/secrets, readable by a
// non-root function on a read-only root filesystem, and nothing in clear in
// the state file or the daemon log. On a swarm the files are versions of
// swarm secrets, which show no value in their names or labels either.
func TestSecretsCRUDAndFiles(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testSecretsCRUDAndFiles)
}

func testSecretsCRUDAndFiles(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	// Built from the local base image, then loaded into the nodes like it.
	uidImg := d.onNodes(userImage(t, fnImage(t, fnEcho), "1000:1000"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()

	const literal = "literal-value-2c9f41"
	const recreated = "recreated-value-5d17e0"
	binary := []byte("line1\nline2 \n\x00\xffbinary-77ab\n") // untrimmed, not UTF-8
	// What must never show outside a function's secret files.
	values := [][]byte{
		[]byte(literal), []byte("binary-77ab"), []byte(recreated),
		[]byte(base64.StdEncoding.EncodeToString([]byte(literal))),
		[]byte(base64.StdEncoding.EncodeToString(binary)),
	}

	if list, body := d.listSecretsRaw(""); len(list) != 0 {
		t.Fatalf("secrets of a new daemon: %s", body)
	}
	for _, s := range []types.Secret{
		{Name: "api-key", Value: literal},
		// As faas-cli --from-file sends it: trimmed text and the raw bytes.
		{Name: "bin-key", Value: strings.TrimSpace(string(binary)), RawValue: binary},
	} {
		code, err := c.CreateSecret(ctx, s)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("create %s: %d %v, want 201", s.Name, code, err)
		}
	}

	t.Run("list has names, never values", func(t *testing.T) {
		list, body := d.listSecretsRaw(defaultNamespace)
		if got := secretNames(list); !slices.Equal(got, []string{"api-key", "bin-key"}) {
			t.Fatalf("names = %v", got)
		}
		for _, s := range list {
			for k := range s {
				if k != "name" && k != "namespace" {
					t.Errorf("list item has field %q: %s", k, body)
				}
			}
			if s["namespace"] != defaultNamespace {
				t.Errorf("namespace = %v, want %s", s["namespace"], defaultNamespace)
			}
		}
		for _, v := range []string{literal, "binary-77ab", base64.StdEncoding.EncodeToString(binary)} {
			if strings.Contains(body, v) {
				t.Errorf("list leaks a value: %s", body)
			}
		}
		sdkList, err := c.GetSecrets(ctx, defaultNamespace)
		if err != nil || len(sdkList) != 2 || sdkList[0].Value != "" || len(sdkList[0].RawValue) != 0 {
			t.Errorf("go-sdk GetSecrets = %+v, %v", sdkList, err)
		}
	})

	t.Run("conflict and missing", func(t *testing.T) {
		res := d.invoke(http.MethodPost, "/system/secrets", []byte(`{"name":"api-key","value":"again"}`), nil)
		if res.Status != http.StatusConflict || strings.TrimSpace(string(res.Body)) != `secret with the name "api-key" already exists` {
			t.Errorf("duplicate create: %s, want 409 with faas-cli's message", res)
		}
		if code, err := c.UpdateSecret(ctx, types.Secret{Name: "nothere", Value: "x"}); code != http.StatusNotFound || err == nil {
			t.Errorf("update missing: %d %v, want 404", code, err)
		}
		res = d.invoke(http.MethodDelete, "/system/secrets", []byte(`{"name":"nothere","namespace":"openfaas-fn"}`), nil)
		if res.Status != http.StatusNotFound || !strings.Contains(string(res.Body), "unable to find secret: nothere") {
			t.Errorf("delete missing: %s, want 404", res)
		}
		if got, _ := c.GetSecrets(ctx, ""); len(got) != 2 {
			t.Errorf("secrets after refused writes: %+v", got)
		}
	})

	t.Run("deploy with an unknown secret", func(t *testing.T) {
		spec := simpleSpec("no-secret", img, nil, nil)
		spec.Secrets = []string{"api-key", "missing"}
		code, err := c.Deploy(ctx, spec)
		if code != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), "unable to find secret: missing") {
			t.Errorf("POST: %d %v, want 400 unable to find secret: missing", code, err)
		}
		// faas-cli PUTs first: the 400 is final, it does not fall back to POST.
		if code, err := c.Update(ctx, spec); code != http.StatusBadRequest {
			t.Errorf("PUT: %d %v, want 400", code, err)
		}
		fns, err := d.listFunctions("")
		if err != nil || len(fns) != 0 {
			t.Errorf("functions after refused deploys: %+v %v", fns, err)
		}
		if rt == runtimeSwarm {
			// A swarm secret is made when a function needs it, not before.
			if all, err := d.swarmSecrets(); err != nil || len(all) != 0 {
				t.Errorf("swarm secrets after refused deploys: %v %v", all, err)
			}
		}
	})

	// One function as root with a writable root, one as uid 1000 with a
	// read-only root: both must read both secrets.
	fns := map[string]types.FunctionDeployment{}
	for name, image := range map[string]string{"secret-root": img, "secret-uid": uidImg} {
		spec := simpleSpec(name, image, nil, nil)
		spec.Secrets = []string{"api-key", "bin-key"}
		spec.ReadOnlyRootFilesystem = name == "secret-uid"
		d.deploy(spec)
		fns[name] = spec
	}
	for name := range fns {
		d.waitReady(name, defaultNamespace, 1)
	}

	t.Run("functions read exactly the values", func(t *testing.T) {
		for name := range fns {
			if res := d.secretFile(name, "api-key"); res.Status != http.StatusOK || string(res.Body) != literal {
				t.Errorf("%s: api-key = %s, want exactly the value", name, res)
			}
			if res := d.secretFile(name, "bin-key"); res.Status != http.StatusOK || !bytes.Equal(res.Body, binary) {
				t.Errorf("%s: bin-key = %q (%d), want the rawValue bytes", name, res.Body, res.Status)
			}
			if res := d.invoke(http.MethodGet, "/function/"+name+"/file?path=/tmp/probe-not-there", nil, nil); res.Status != http.StatusNotFound {
				t.Errorf("%s: /file of a missing path = %s; the endpoint is not telling files apart", name, res)
			}
		}
	})

	t.Run("files are root-owned 0444", func(t *testing.T) {
		if rt == runtimeSwarm {
			// Swarm mounts each version as the references say, and
			// Docker's archive API shows only the empty mount points
			// of such mounts: the references are what to check. The
			// functions of a namespace share one version per secret.
			var first map[string]string
			for name, spec := range fns {
				mounted, err := d.swarmSecretMounts(name, spec.Secrets)
				if err != nil {
					t.Fatal(err)
				}
				if first != nil && !maps.Equal(mounted, first) {
					t.Errorf("%s mounts versions %v, another function of the namespace %v", name, mounted, first)
				}
				first = mounted
			}
			if all, err := d.swarmSecrets(); err != nil || len(all) != 2 {
				t.Errorf("swarm secrets of the instance: %d (%v), want one version of each secret", len(all), err)
			}
			d.swarmSecretsHoldNo(t, values...)
			return
		}
		for name := range fns {
			ids, err := d.runningIDs(name, defaultNamespace)
			if err != nil || len(ids) != 1 {
				t.Fatalf("%s: running %v %v", name, ids, err)
			}
			got := d.secretsOnDisk(ids[0])
			want := map[string]secretEntry{
				"secrets/":        {mode: fs.ModeDir | 0o755},
				"secrets/api-key": {mode: 0o444, content: literal},
				"secrets/bin-key": {mode: 0o444, content: string(binary)},
			}
			if len(got) != len(want) {
				t.Errorf("%s: entries %v, want %d", name, slices.Sorted(maps.Keys(got)), len(want))
			}
			for p, w := range want {
				g, ok := got[p]
				if !ok || g.mode != w.mode || g.uid != 0 || g.gid != 0 || g.content != w.content {
					t.Errorf("%s: %s = mode %v owner %d:%d (present %v, content ok %v), want mode %v root:root",
						name, p, g.mode, g.uid, g.gid, ok, g.content == w.content, w.mode)
				}
			}
		}
	})

	t.Run("state file holds no value", func(t *testing.T) {
		data, _, err := d.stateFile("state.db")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("openfaas-fn/api-key")) {
			t.Fatal("the state file does not mention the secret at all; wrong file?")
		}
		for _, v := range [][]byte{[]byte(literal), []byte("binary-77ab"), []byte(base64.StdEncoding.EncodeToString([]byte(literal)))} {
			if bytes.Contains(data, v) {
				t.Errorf("the state file contains %q", v)
			}
		}
		key, mode, err := d.stateFile("secrets.key")
		if err != nil || mode != 0o600 || len(key) != 32 {
			t.Errorf("secrets.key: mode %v, %d bytes, %v; want mode 0600 and 32 bytes", mode, len(key), err)
		}
	})

	t.Run("deleting a used secret keeps replicas", func(t *testing.T) {
		before, _ := d.replicaIDs("secret-root", defaultNamespace)
		var oldVersion string
		if rt == runtimeSwarm {
			mounted, err := d.swarmSecretMounts("secret-root", fns["secret-root"].Secrets)
			if err != nil {
				t.Fatal(err)
			}
			oldVersion = mounted["api-key"]
		}
		// The same answer on both runtimes, though swarm keeps the
		// version the functions mount: it is only removed once unused.
		if res := d.invoke(http.MethodDelete, "/system/secrets", []byte(`{"name":"api-key","namespace":"openfaas-fn"}`), nil); res.Status != http.StatusAccepted {
			t.Fatalf("delete a used secret: %s, want 202", res)
		}
		// A scale the controller cannot carry out without the secret.
		if res := d.invoke(http.MethodPost, "/system/scale-function/secret-root", []byte(`{"serviceName":"secret-root","replicas":2}`), nil); res.Status != http.StatusAccepted {
			t.Fatalf("scale: %s", res)
		}
		eventually(t, readyTimeout, pollInterval, func() error {
			return d.reasonIs("secret-root", "SecretNotFound")
		})
		if res := d.secretFile("secret-root", "api-key"); res.Status != http.StatusOK || string(res.Body) != literal {
			t.Errorf("the running replica stopped serving: %s", res)
		}
		if after, _ := d.replicaIDs("secret-root", defaultNamespace); !slices.Equal(after, before) {
			t.Errorf("replicas changed without the secret: %v -> %v", before, after)
		}
		if rt == runtimeSwarm {
			if mounted, err := d.swarmSecretMounts("secret-root", fns["secret-root"].Secrets); err != nil || mounted["api-key"] != oldVersion {
				t.Errorf("the service without the secret mounts %v (%v), want the version it had, %s", mounted, err, oldVersion)
			}
		}
		// Back again: the function converges, with the new value.
		if code, err := c.CreateSecret(ctx, types.Secret{Name: "api-key", Value: recreated}); err != nil {
			t.Fatalf("re-create: %d %v", code, err)
		}
		d.waitReady("secret-root", defaultNamespace, 2)
		eventually(t, readyTimeout, pollInterval, func() error {
			for i := 0; i < 4; i++ {
				if res := d.secretFile("secret-root", "api-key"); string(res.Body) != recreated {
					return fmt.Errorf("a replica still serves %s", res)
				}
			}
			return nil
		})
		if rt != runtimeSwarm {
			return
		}
		// Both functions roll to a new version, and the old one goes
		// once no service mounts it.
		eventually(t, readyTimeout, pollInterval, func() error {
			var newVersion string
			for name, spec := range fns {
				mounted, err := d.swarmSecretMounts(name, spec.Secrets)
				if err != nil {
					return err
				}
				if mounted["api-key"] == oldVersion {
					return fmt.Errorf("%s still mounts %s", name, oldVersion)
				}
				newVersion = mounted["api-key"]
			}
			if got, err := d.secretVersions("api-key"); err != nil || !slices.Equal(got, []string{newVersion}) {
				return fmt.Errorf("versions of api-key %v (%v), want only %s", got, err, newVersion)
			}
			return nil
		})
		d.swarmSecretsHoldNo(t, values...)
	})

	t.Run("delete functions then secrets", func(t *testing.T) {
		var volumes []string
		if rt == runtimeDocker {
			for name := range fns {
				ids, _ := d.runningIDs(name, defaultNamespace)
				for _, id := range ids {
					for _, m := range d.inspect(id).Mounts {
						if m.Destination == secretsDir {
							volumes = append(volumes, m.Name)
						}
					}
				}
			}
			if len(volumes) < len(fns) {
				t.Fatalf("secrets volumes found: %v, want one per replica", volumes)
			}
		}
		for name := range fns {
			if err := c.DeleteFunction(ctx, name, defaultNamespace); err != nil {
				t.Fatal(err)
			}
		}
		if rt == runtimeSwarm {
			// The services go, and with the last one that mounts them
			// the swarm secret versions.
			eventually(t, readyTimeout, pollInterval, func() error {
				if svcs, err := d.swarmServices(); err != nil || len(svcs) != 0 {
					return fmt.Errorf("services left: %v (%v)", svcs, err)
				}
				if all, err := d.swarmSecrets(); err != nil || len(all) != 0 {
					return fmt.Errorf("%d swarm secrets left (%v)", len(all), err)
				}
				return nil
			})
		} else {
			// The replicas go too, secrets volume included (it is anonymous).
			eventually(t, readyTimeout, pollInterval, func() error {
				for name := range fns {
					if cs, err := d.fnContainers(name, defaultNamespace, true); err != nil || len(cs) != 0 {
						return fmt.Errorf("%s: %d containers left (%v)", name, len(cs), err)
					}
				}
				return nil
			})
			for _, v := range volumes {
				vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := d.docker.VolumeInspect(vctx, v)
				vcancel()
				if !cerrdefs.IsNotFound(err) {
					t.Errorf("secrets volume %s outlived its container: %v", v, err)
				}
			}
		}
		for _, s := range []string{"api-key", "bin-key"} {
			if err := c.DeleteSecret(ctx, s, defaultNamespace); err != nil {
				t.Fatalf("delete %s: %v", s, err)
			}
		}
		if list, body := d.listSecretsRaw(""); len(list) != 0 {
			t.Errorf("secrets after delete: %s", body)
		}
	})

	t.Run("log holds no value", func(t *testing.T) {
		d.logHoldsNo(t, values...)
	})
}

// stateFile reads a file of the daemon's state dir: on this machine for a
// daemon process, from its container's state volume on a swarm.
func (d *daemon) stateFile(name string) ([]byte, fs.FileMode, error) {
	if d.runtime == runtimeSwarm {
		return d.swarmStateFile(name)
	}
	p := filepath.Join(d.stateDir, name)
	st, err := os.Stat(p)
	if err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(p)
	return data, st.Mode(), err
}

// logHoldsNo fails t when the daemon log shows one of values: a debug log
// is shared and kept far more freely than the state file.
func (d *daemon) logHoldsNo(t *testing.T, values ...[]byte) {
	t.Helper()
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		t.Fatal("the daemon log is empty; wrong file?")
	}
	for _, v := range values {
		if bytes.Contains(data, v) {
			t.Errorf("the daemon log contains %q", v)
		}
	}
}

// reasonIs checks the controller's status reason for a function on
// /debug/reconcile.
func (d *daemon) reasonIs(name, want string) error {
	res, err := d.request(http.MethodGet, "/debug/reconcile?format=json", nil, nil, authBasic)
	if err != nil {
		return err
	}
	var view struct {
		Functions []struct {
			Key       string `json:"key"`
			Reason    string `json:"reason"`
			LastError string `json:"lastError"`
		} `json:"functions"`
	}
	if err := json.Unmarshal(res.Body, &view); err != nil {
		return fmt.Errorf("debug JSON %s: %w", res, err)
	}
	for _, f := range view.Functions {
		if f.Key == defaultNamespace+"/"+name {
			if f.Reason != want {
				return fmt.Errorf("reason %q (last error %q), want %q", f.Reason, f.LastError, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not on the debug page", name)
}

// TestSecretUpdateRollsWithoutFailures: a PUT of a secret reaches every
// replica of the functions using it through a readiness-gated roll, and no
// invocation fails meanwhile. On a swarm the PUT makes a new swarm secret
// version, the service rolls to it, and the old version is removed.
func TestSecretUpdateRollsWithoutFailures(t *testing.T) {
	t.Parallel()
	eachRuntime(t, testSecretUpdateRolls)
}

func testSecretUpdateRolls(t *testing.T, rt string) {
	d := startDaemon(t, onRuntime(rt))
	img := d.fnImage(fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := d.client()
	// Values unique enough to look for in the daemon log.
	const oldValue, newValue = "rolling-v1-e81c", "rolling-v2-3fa4"
	okOld, okNew := fmt.Sprintf("200 %q", oldValue), fmt.Sprintf("200 %q", newValue)

	if code, err := c.CreateSecret(ctx, types.Secret{Name: "rolling", Value: oldValue}); err != nil {
		t.Fatalf("create: %d %v", code, err)
	}
	var env map[string]string
	if rt == runtimeSwarm {
		env = map[string]string{"SHUTDOWN_GRACE": "10s"} // see testRollingUpdateUnderLoad
	}
	spec := simpleSpec("rolling", img, env, map[string]string{"com.openfaas.scale.min": "2"})
	spec.Secrets = []string{"rolling"}
	d.deploy(spec)
	d.waitReady("rolling", defaultNamespace, 2)
	oldIDs, err := d.replicaIDs("rolling", defaultNamespace)
	if err != nil || len(oldIDs) != 2 {
		t.Fatalf("replicas before the update: %v %v", oldIDs, err)
	}
	if res := d.secretFile("rolling", "rolling"); string(res.Body) != oldValue {
		t.Fatalf("before the update: %s", res)
	}
	var oldVersion string
	if rt == runtimeSwarm {
		mounted, err := d.swarmSecretMounts("rolling", spec.Secrets)
		if err != nil {
			t.Fatal(err)
		}
		oldVersion = mounted["rolling"]
	}

	// Invoke continuously through the roll; every answer must be a 200 with
	// the old or the new value.
	load := startLoad(t, d, loadOptions{
		workers: 1, maxDuration: 4 * time.Minute, maxRequests: 10000, pause: 10 * time.Millisecond,
		request: func(_, _ int) (string, string, []byte) {
			return http.MethodGet, "/function/rolling/file?path=" + secretsDir + "/rolling", nil
		},
	})
	time.Sleep(300 * time.Millisecond) // some traffic before the update
	start := time.Now()
	if code, err := c.UpdateSecret(ctx, types.Secret{Name: "rolling", Value: newValue}); err != nil || code != http.StatusAccepted {
		t.Fatalf("PUT secret: %d %v, want 202", code, err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		if rt == runtimeSwarm {
			// Swarm stops an old task some time after it marks it for
			// shutdown (its node does), and the daemon sees the mark
			// at its next look: until the task has ended it may still
			// answer, with the old value. Gone means ended here, as
			// an old container that no longer runs on one host.
			return d.replicasAre("rolling", 2, func(id string) error {
				if slices.Contains(oldIDs, id) {
					return fmt.Errorf("old replica %s still runs", short(id))
				}
				return nil
			})
		}
		ids, err := d.replicaIDs("rolling", defaultNamespace)
		if err != nil {
			return err
		}
		if len(ids) != 2 {
			return fmt.Errorf("%d running replicas", len(ids))
		}
		for _, id := range ids {
			if slices.Contains(oldIDs, id) {
				return fmt.Errorf("old replica %s still runs", short(id))
			}
		}
		return nil
	})
	converged := time.Since(start)
	time.Sleep(300 * time.Millisecond) // some traffic after the roll
	counts := map[string]int{}
	var firstNewAt time.Time
	for _, s := range load.stop() {
		key := fmt.Sprintf("%d %q", s.status, s.body)
		if s.err != nil {
			key = "error: " + s.err.Error()
		}
		if key == okNew && firstNewAt.IsZero() {
			firstNewAt = s.end
		}
		counts[key]++
	}

	t.Logf("secret update: first new value after %s, old replicas gone after %s; responses: %v",
		firstNewAt.Sub(start).Round(time.Millisecond), converged.Round(time.Millisecond), counts)
	total := 0
	for k, n := range counts {
		total += n
		if k != okOld && k != okNew {
			t.Errorf("%d invocation(s) during the roll got %s", n, k)
		}
	}
	if counts[okOld] == 0 || counts[okNew] == 0 || total < 20 {
		t.Errorf("the load did not span the roll (%v); the check above proves nothing", counts)
	}
	for i := 0; i < 10; i++ {
		if res := d.secretFile("rolling", "rolling"); res.Status != http.StatusOK || string(res.Body) != newValue {
			t.Errorf("invoke %d after the roll: %s", i, res)
		}
	}

	if rt == runtimeSwarm {
		// The service and its tasks mount a new version, and the old one
		// is removed once no service mounts it: one version is left.
		var newVersion string
		eventually(t, readyTimeout, pollInterval, func() error {
			mounted, err := d.swarmSecretMounts("rolling", spec.Secrets)
			if err != nil {
				return err
			}
			if newVersion = mounted["rolling"]; newVersion == oldVersion {
				return fmt.Errorf("the service still mounts %s", oldVersion)
			}
			if got, err := d.secretVersions("rolling"); err != nil || !slices.Equal(got, []string{newVersion}) {
				return fmt.Errorf("versions %v (%v), want only the mounted %s (old %s)", got, err, newVersion, oldVersion)
			}
			return nil
		})
		t.Logf("swarm secret %s replaced by %s; the old version was gone %s after the PUT",
			oldVersion, newVersion, time.Since(start).Round(time.Millisecond))
		d.swarmSecretsHoldNo(t, []byte(oldValue), []byte(newValue))
	}
	d.logHoldsNo(t, []byte(oldValue), []byte(newValue))
}
