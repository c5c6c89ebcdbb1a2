package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
	"github.com/openfaas/faas-provider/types"
	bolt "go.etcd.io/bbolt"
)

// runCLI runs the daemon binary with args (a subcommand), stdin and extra
// environment, bounded in time; it returns the exit code and the output.
func (d *daemon) runCLI(t *testing.T, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("dockerfaasd %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return code, out.String()
}

// TestBackupRestore backs the state up while the daemon runs (API and
// CLI), loses some of it, restores each backup with the daemon stopped and
// checks that functions and secret values are back.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	img := d.fnImage(fnEcho)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const secretValue = "backup-secret-9b31e7"
	if code, err := d.client().CreateSecret(ctx, types.Secret{Name: "bk-secret", Value: secretValue}); err != nil || code != http.StatusCreated {
		t.Fatalf("create secret: %d %v", code, err)
	}
	withSecret := simpleSpec("bk-a", img, nil, nil)
	withSecret.Secrets = []string{"bk-secret"}
	d.deploy(withSecret)
	d.deploy(simpleSpec("bk-b", img, nil, nil))
	d.waitReady("bk-a", defaultNamespace, 1)
	d.waitReady("bk-b", defaultNamespace, 1)

	dir := t.TempDir()
	apiArchive := filepath.Join(dir, "api.tar.gz")
	cliArchive := filepath.Join(dir, "cli.tar.gz")
	stateEnv := []string{"STATE_DIR=" + d.stateDir, "STATE_DB_PATH=", "STATE_JOURNAL="}

	// Hot backups, while the daemon runs.
	res := d.invoke(http.MethodGet, "/system/backup", nil, nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("GET /system/backup: %s", res)
	}
	if err := os.WriteFile(apiArchive, res.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := d.request(http.MethodGet, "/system/backup", nil, nil, authNone); err != nil || res.Status != http.StatusUnauthorized {
		t.Errorf("GET /system/backup without credentials: %v %v, want 401", res, err)
	}
	code, out := d.runCLI(t, d.password, nil, "backup", "--gateway", d.baseURL, "--password-stdin", cliArchive)
	if code != 0 {
		t.Fatalf("dockerfaasd backup: exit %d\n%s", code, out)
	}
	t.Logf("dockerfaasd backup: %s", strings.TrimSpace(out))
	if st, err := os.Stat(cliArchive); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v, want 0600 (it holds the secrets key)", err, st.Mode())
	}
	if strings.Contains(string(res.Body), secretValue) || strings.Contains(d.logTail(logTailLines), secretValue) {
		t.Error("the secret value shows in clear in the archive or the daemon log")
	}
	// Read directly, the file is held by the running daemon: refused.
	start := time.Now()
	if code, out := d.runCLI(t, "", stateEnv, "backup", "--state-dir", d.stateDir, filepath.Join(dir, "direct.tar.gz")); code == 0 || !strings.Contains(out, "locked by a running dockerfaasd") {
		t.Errorf("backup --state-dir under a running daemon: exit %d\n%s", code, out)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("backup --state-dir took %s to see the lock", time.Since(start))
	}
	// And restore must not swap the file under it.
	if code, out := d.runCLI(t, "", stateEnv, "restore", apiArchive); code == 0 || !strings.Contains(out, "locked by a running dockerfaasd") {
		t.Errorf("restore under a running daemon: exit %d\n%s", code, out)
	}

	// Lose a function, then restore the API's backup.
	if err := d.client().DeleteFunction(ctx, "bk-b", defaultNamespace); err != nil {
		t.Fatalf("delete bk-b: %v", err)
	}
	eventually(t, readyTimeout, pollInterval, func() error {
		if _, code, _ := d.getFunction("bk-b", defaultNamespace); code != http.StatusNotFound {
			return fmt.Errorf("bk-b still there (%d)", code)
		}
		return nil
	})
	d.Stop()
	code, out = d.runCLI(t, "", stateEnv, "restore", apiArchive)
	if code != 0 || !strings.Contains(out, "kept the previous file as") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	t.Logf("dockerfaasd restore: %s", strings.TrimSpace(out))
	d.start()
	checkBackedUp(t, d, secretValue)

	// Lose everything, then restore the CLI's backup.
	d.Stop()
	for _, f := range []string{"state.db", "secrets.key"} {
		if err := os.Remove(filepath.Join(d.stateDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := d.runCLI(t, "", stateEnv, "restore", cliArchive); code != 0 {
		t.Fatalf("restore into a wiped state dir: exit %d\n%s", code, out)
	}
	// With the daemon stopped, --state-dir reads the file directly.
	if code, out := d.runCLI(t, "", stateEnv, "backup", "--state-dir", d.stateDir, filepath.Join(dir, "direct.tar.gz")); code != 0 {
		t.Errorf("backup --state-dir with the daemon stopped: exit %d\n%s", code, out)
	}
	d.start()
	checkBackedUp(t, d, secretValue)
}

// checkBackedUp: both functions listed and serving, and bk-a reads the
// secret's value from its file.
func checkBackedUp(t *testing.T, d *daemon, secretValue string) {
	t.Helper()
	list, err := d.listFunctions(defaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bk-a", "bk-b"} {
		if _, ok := findStatus(list, name); !ok {
			t.Errorf("%s missing after restore", name)
		}
	}
	d.waitReady("bk-a", defaultNamespace, 1)
	d.waitReady("bk-b", defaultNamespace, 1)
	eventually(t, readyTimeout, pollInterval, func() error {
		res := d.secretFile("bk-a", "bk-secret")
		if res.Status != http.StatusOK || string(res.Body) != secretValue {
			return fmt.Errorf("bk-a reads its secret: %s", res)
		}
		return nil
	})
	if res := d.invoke(http.MethodPost, "/function/bk-b", []byte("hi"), nil); res.Status != http.StatusOK {
		t.Errorf("invoke bk-b after restore: %s", res)
	}
}

// startOnState runs the daemon binary on the state directory dir until it
// exits (a daemon that starts is a failure of the caller's check), and
// returns its exit code and output.
func startOnState(t *testing.T, bin, dir, what string) (int, string) {
	t.Helper()
	d := &daemon{bin: bin}
	return d.runCLI(t, "", []string{
		"STATE_DIR=" + dir, "STATE_DB_PATH=", "STATE_JOURNAL=", "RUNTIME=",
		"GATEWAY_PORT=" + fmt.Sprint(freePort(t)), "BIND_ADDRESS=127.0.0.1",
		"AUTH_PASSWORD=pw-" + what, "INSTANCE=e2e-" + what + "-" + randomSuffix(6),
	})
}

// TestCorruptStateFile: a daemon started on a damaged state file stops at
// once with a message naming the file and suggesting restore, and leaves
// the file as it was.
func TestCorruptStateFile(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	bin := daemonBinary(t)
	for _, tc := range []struct {
		name    string
		content []byte
		dir     bool // state.db is a directory: unreadable as a file, even to root
	}{
		{name: "garbage", content: bytes.Repeat([]byte("not a bbolt file "), 1024)},
		{name: "empty"},
		{name: "unreadable", dir: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "state.db")
			if tc.dir {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := startOnState(t, bin, dir, "corrupt")
			if code == 0 || !strings.Contains(out, path) || !strings.Contains(out, "unreadable or corrupt") || !strings.Contains(out, "dockerfaasd restore") {
				t.Errorf("daemon on a %s state file: exit %d\n%s", tc.name, code, out)
			}
			if tc.dir {
				if entries, err := os.ReadDir(path); err != nil || len(entries) != 0 {
					t.Errorf("the unreadable state path was changed: %v %v", entries, err)
				}
			} else if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, tc.content) {
				t.Errorf("the damaged state file was changed (%v)", err)
			}
		})
	}
}

// TestNewerStateSchema: a daemon started on a state file a newer
// dockerfaasd wrote (made here by this tree's store, then stamped one schema
// ahead in its meta bucket, as a downgrade leaves it) exits non-zero at once
// saying which schema it found and what to do, and leaves the file and the
// secrets key byte for byte.
func TestNewerStateSchema(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	bin := daemonBinary(t)
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "state.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var next uint64
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("no meta bucket in a new state file")
		}
		cur, err := strconv.ParseUint(string(meta.Get([]byte("schema"))), 10, 64)
		if err != nil || cur == 0 {
			return fmt.Errorf("schema of a new state file: %q %v", meta.Get([]byte("schema")), err)
		}
		next = cur + 1
		return meta.Put([]byte("schema"), []byte(strconv.FormatUint(next, 10)))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	keyPath := store.DefaultKeyFile(path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	code, out := startOnState(t, bin, dir, "schema")
	for _, want := range []string{path, fmt.Sprintf("state file schema %d is newer than this dockerfaasd (knows up to %d)", next, next-1),
		"upgrade dockerfaasd or restore a backup"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code == 0 {
		t.Errorf("daemon on a schema %d state file: exit 0", next)
	}
	if t.Failed() {
		t.Logf("daemon output (exit %d):\n%s", code, out)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, before) {
		t.Errorf("the state file was changed (%v)", err)
	}
	if got, err := os.ReadFile(keyPath); err != nil || !bytes.Equal(got, keyBefore) {
		t.Errorf("the secrets key was changed (%v)", err)
	}
}
