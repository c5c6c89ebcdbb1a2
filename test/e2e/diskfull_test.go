package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// tmpfsStateDir mounts a small tmpfs for a daemon's STATE_DIR, unmounted
// at cleanup. It needs root (CI runs as root): under CI=true its absence
// fails the test, elsewhere it skips.
func tmpfsStateDir(t *testing.T, size string) string {
	t.Helper()
	need := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (skipped outside CI)", args...)
	}
	if os.Geteuid() != 0 {
		need("mounting a tmpfs for STATE_DIR needs root")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "dockerfaasd-e2e-diskfull", dir).CombinedOutput(); err != nil {
		need("mount -t tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full, bounded by max bytes.
func fill(t *testing.T, path string, max int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for n := 0; n < max; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatalf("wrote %d bytes to %s without filling the disk", max, path)
}

// TestDiskFull puts STATE_DIR on a tiny tmpfs and fills it: writes answer
// 507 with a message, what was acknowledged before is kept and served,
// and once space is freed writes work again, across a restart too.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	stateDir := tmpfsStateDir(t, "4m")
	d := startDaemon(t, func(d *daemon) { d.stateDir = stateDir })
	img := d.fnImage(fnEcho)
	d.deploy(simpleSpec("df-first", img, nil, nil))
	d.waitReady("df-first", defaultNamespace, 1)

	filler := filepath.Join(stateDir, "filler")
	fill(t, filler, 8<<20)

	// bbolt may still find room in pages it has: deploy until the disk
	// says no (bounded). Big env values use pages up fast.
	env := map[string]string{"PAD": strings.Repeat("p", 16<<10)}
	acked := []string{"df-first"}
	var refused types.FunctionDeployment
	for i := range 200 {
		spec := simpleSpec(fmt.Sprintf("df-%03d", i), img, env, map[string]string{"com.openfaas.scale.min": "0"})
		body, code := d.deployRaw(spec)
		if code == http.StatusAccepted {
			acked = append(acked, spec.Service)
			continue
		}
		if code != http.StatusInsufficientStorage || !strings.Contains(body, "insufficient storage") {
			t.Fatalf("deploy %s on a full disk: %d %q, want 507 with a message", spec.Service, code, body)
		}
		refused = spec
		t.Logf("deploy %s on a full disk: %d %q (after %d accepted)", spec.Service, code, strings.TrimSpace(body), len(acked)-1)
		break
	}
	if refused.Service == "" {
		t.Fatal("no deploy was refused on a full disk")
	}
	// A refused deploy was not done; earlier ones are listed and served.
	if _, code, _ := d.getFunction(refused.Service, defaultNamespace); code != http.StatusNotFound {
		t.Errorf("refused %s: GET answered %d, want 404", refused.Service, code)
	}
	checkListed(t, d, acked)
	if res := d.invoke(http.MethodPost, "/function/df-first", []byte("still here"), nil); res.Status != http.StatusOK {
		t.Errorf("invoke df-first on a full disk: %s", res)
	}

	// Space freed: writes work again, and survive a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if body, code := d.deployRaw(refused); code != http.StatusAccepted {
		t.Fatalf("deploy %s after freeing space: %d %q", refused.Service, code, body)
	}
	acked = append(acked, refused.Service)
	d.Restart()
	checkListed(t, d, acked)
	d.waitReady("df-first", defaultNamespace, 1)
}

// deployRaw POSTs spec and returns the body and status, whatever they are.
func (d *daemon) deployRaw(spec types.FunctionDeployment) (string, int) {
	d.t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		d.t.Fatal(err)
	}
	res, err := d.request(http.MethodPost, "/system/functions", b, map[string]string{"Content-Type": "application/json"}, authBasic)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(res.Body), res.Status
}

// checkListed: every name in want is listed.
func checkListed(t *testing.T, d *daemon, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := d.listFunctions(defaultNamespace)
		var missing []string
		if err == nil {
			for _, name := range want {
				if _, ok := findStatus(list, name); !ok {
					missing = append(missing, name)
				}
			}
		}
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged functions missing: %v (%v)", missing, err)
		}
		time.Sleep(pollInterval)
	}
}
