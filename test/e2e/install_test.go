package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInstallScript stages hack/install.sh into a temporary root (no
// systemctl): the binary, the unit, the state dir and the settings file
// with their modes; a second run keeps edited settings; --prefix moves the
// binary and ExecStart; the unit passes systemd-analyze verify. It needs
// no Docker Engine.
func TestInstallScript(t *testing.T) {
	t.Parallel()
	bin := daemonBinary(t)
	root := suite.moduleRoot

	install := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "install.sh"), args...)
		cmd.Env = append(os.Environ(), "DESTDIR=") // only --destdir stages
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mode := func(t *testing.T, path string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}

	dest := t.TempDir()
	if out, err := install(t, "--destdir", dest, "--no-start", "--binary", bin); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"usr/local/bin/dockerfaasd", 0o755},
		{"etc/systemd/system/dockerfaasd.service", 0o644},
		{"var/lib/dockerfaasd", os.ModeDir | 0o700},
		{"etc/dockerfaasd/env", 0o600},
	} {
		if got := mode(t, filepath.Join(dest, f.path)); got != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
		}
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(dest, "usr/local/bin/dockerfaasd")
	if got, err := os.ReadFile(staged); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("installed binary differs from %s (%v)", bin, err)
	}
	if out, err := exec.Command(staged, "healthcheck", "-h").CombinedOutput(); err != nil {
		t.Fatalf("installed binary: healthcheck -h: %v\n%s", err, out)
	}
	unitSrc, err := os.ReadFile(filepath.Join(root, "deploy/systemd/dockerfaasd.service"))
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(dest, "etc/systemd/system/dockerfaasd.service")
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unit, unitSrc) {
		t.Errorf("with the default prefix the unit must be deploy/systemd/dockerfaasd.service unchanged")
	}
	for _, line := range []string{
		"ExecStart=/usr/local/bin/dockerfaasd", "Requires=docker.service", "Restart=on-failure",
		"EnvironmentFile=-/etc/dockerfaasd/env", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/dockerfaasd", "ProtectHome=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "LockPersonality=yes",
		"MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
	} {
		if !hasLine(string(unit), line) {
			t.Errorf("unit lacks %q", line)
		}
	}

	// Every setting in the default settings file is a real one.
	env, err := os.ReadFile(filepath.Join(dest, "etc/dockerfaasd/env"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	assign := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=`)
	sc := bufio.NewScanner(bytes.NewReader(env))
	settings := 0
	for sc.Scan() {
		m := assign.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		settings++
		if !strings.Contains(string(readme), "`"+m[1]+"`") {
			t.Errorf("settings file names %s, which README's configuration table lacks", m[1])
		}
	}
	if settings == 0 || !hasLine(string(env), "BIND_ADDRESS=127.0.0.1") {
		t.Errorf("default settings file:\n%s", env)
	}

	// Again, over an edited settings file: it is kept.
	edited := append(env, []byte("LOG_LEVEL=debug\n")...)
	if err := os.WriteFile(filepath.Join(dest, "etc/dockerfaasd/env"), edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := install(t, "--destdir", dest, "--no-start", "--binary", bin); err != nil {
		t.Fatalf("install.sh again: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "etc/dockerfaasd/env")); !bytes.Equal(got, edited) {
		t.Errorf("second run changed the settings file")
	}

	// Another prefix.
	dest2 := t.TempDir()
	if out, err := install(t, "--destdir="+dest2, "--prefix=/opt/dockerfaasd", "--no-start", "--binary", bin); err != nil {
		t.Fatalf("install.sh --prefix: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dest2, "opt/dockerfaasd/bin/dockerfaasd")); err != nil {
		t.Error(err)
	}
	if unit2, _ := os.ReadFile(filepath.Join(dest2, "etc/systemd/system/dockerfaasd.service")); !hasLine(string(unit2), "ExecStart=/opt/dockerfaasd/bin/dockerfaasd") {
		t.Errorf("--prefix: ExecStart not moved:\n%s", unit2)
	}

	for _, args := range [][]string{{"--bogus"}, {"--destdir", dest, "--prefix", "relative"}} {
		if out, err := install(t, args...); err == nil {
			t.Errorf("install.sh %v succeeded:\n%s", args, out)
		}
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("systemd-analyze is missing (Debian package systemd; .ci/run installs it)")
			}
			t.Skip("systemd-analyze not installed (Debian package systemd): unit not verified")
		}
		// verify also checks that ExecStart exists: point it at the
		// staged binary. Requires=docker.service must resolve too: Debian's
		// docker.io ships that unit; a Docker installed otherwise gets a
		// stand-in.
		unitDir := t.TempDir()
		copyPath := filepath.Join(unitDir, "dockerfaasd.service")
		moved := strings.Replace(string(unit), "ExecStart=/usr/local/bin/dockerfaasd", "ExecStart="+staged, 1)
		if err := os.WriteFile(copyPath, []byte(moved), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", copyPath)
		if !dockerUnitInstalled() {
			t.Log("no docker.service unit on this host: verifying against a stand-in")
			writeFile(t, filepath.Join(unitDir, "docker.service"), "[Service]\nExecStart=/bin/true\n")
			// A trailing colon keeps the default unit directories.
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+unitDir+":")
		}
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
		// README says the unit rates 2.0: a weaker sandbox scores higher.
		sec := exec.Command(analyze, "security", "--offline=yes", "--no-pager", copyPath)
		sec.Env = append(os.Environ(), "SYSTEMD_COLORS=0")
		out, err = sec.CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for dockerfaasd\.service: ([0-9]+(?:\.[0-9]+)?)`).FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		const maxExposure = 2.0
		if score, err := strconv.ParseFloat(string(m[1]), 64); err != nil || score > maxExposure {
			t.Errorf("systemd-analyze security rates the unit %s, want at most %.1f (README); its findings:\n%s", m[1], maxExposure, out)
		} else {
			t.Logf("systemd-analyze security: exposure %s", m[1])
		}
	})
}

// dockerUnitInstalled reports whether a docker.service unit file is in
// one of systemd's usual directories.
func dockerUnitInstalled() bool {
	for _, dir := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, "docker.service")); err == nil {
			return true
		}
	}
	return false
}

// hasLine reports whether text has line, whole.
func hasLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimRight(l, "\n") == line {
			return true
		}
	}
	return false
}
