package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestVersionFromBuild: the daemon binary the harness builds, as a release
// build is (VCS stamping on whatever GOFLAGS says), reports the commit
// `git rev-parse HEAD` names, not "dev"/"unknown", in `dockerfaasd version`,
// /system/info and /system/providers. Outside a git checkout there is
// nothing to compare with: skipped, and a failure with CI=true (CI runs on a
// clone).
func TestVersionFromBuild(t *testing.T) {
	t.Parallel()
	head := gitHead(t)
	d := startDaemon(t)

	code, out := d.runCLI(t, "", nil, "version")
	fields := map[string]string{}
	for l := range strings.Lines(out) {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if code != 0 {
		t.Fatalf("dockerfaasd version: exit %d\n%s", code, out)
	}
	checkIdentity(t, "dockerfaasd version", fields["version"], fields["commit"], head)

	for _, path := range []string{"/system/info", "/system/providers"} {
		res := d.invoke(http.MethodGet, path, nil, nil)
		var body struct {
			Version  *struct{ SHA, Release string } `json:"version"`
			Provider json.RawMessage                `json:"provider"`
		}
		if res.Status != http.StatusOK || json.Unmarshal(res.Body, &body) != nil || body.Version == nil {
			t.Fatalf("GET %s: %s", path, res)
		}
		checkIdentity(t, path, body.Version.Release, body.Version.SHA, head)
		if body.Version.SHA != fields["commit"] || body.Version.Release != fields["version"] {
			t.Errorf("%s says %s %s, `dockerfaasd version` %s %s", path,
				body.Version.Release, body.Version.SHA, fields["version"], fields["commit"])
		}
		if path == "/system/info" {
			// faas-cli reads the provider's version from here.
			var prov struct {
				Version *struct{ SHA, Release string } `json:"version"`
			}
			if json.Unmarshal(body.Provider, &prov) != nil || prov.Version == nil || *prov.Version != *body.Version {
				t.Errorf("/system/info provider.version %s, want %+v", body.Provider, *body.Version)
			}
		}
	}
}

// checkIdentity fails t unless commit is a prefix of head (at least 7 hex
// digits, "-dirty" allowed: others may be editing the tree) and version is
// not the default: a pseudo-version or `git describe` output naming the
// commit, or a tag on HEAD.
func checkIdentity(t *testing.T, where, version, commit, head string) {
	t.Helper()
	hint := ""
	if os.Getenv("DOCKERFAASD_BIN") != "" {
		hint = " (DOCKERFAASD_BIN names a binary built elsewhere: build it from this checkout with make build)"
	}
	rev := strings.TrimSuffix(commit, "-dirty")
	if len(rev) < 7 || !strings.HasPrefix(head, rev) {
		t.Errorf("%s: commit %q, want a prefix of HEAD %s%s", where, commit, head, hint)
	}
	if version == "" || version == "dev" || version == "(devel)" {
		t.Errorf("%s: version %q, want the build's version%s", where, version, hint)
		return
	}
	if !strings.Contains(version, head[:7]) && !tagOnHead(t, strings.TrimSuffix(version, "+dirty")) {
		t.Errorf("%s: version %q names neither HEAD %s nor a tag on it%s", where, version, head, hint)
	}
}

// gitHead returns `git rev-parse HEAD` of the module root. Without git or a
// checkout the test is skipped, or fails with CI=true.
func gitHead(t *testing.T) string {
	t.Helper()
	out, err := gitOutput("rev-parse", "HEAD")
	if err != nil {
		msg := fmt.Sprintf("the module root is not a git checkout (or git is missing): %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if len(out) != 40 && len(out) != 64 {
		t.Fatalf("git rev-parse HEAD: %q", out)
	}
	return out
}

// tagOnHead reports whether tag is one of the tags pointing at HEAD.
func tagOnHead(t *testing.T, tag string) bool {
	t.Helper()
	out, err := gitOutput("tag", "--points-at", "HEAD")
	if err != nil {
		t.Fatalf("git tag --points-at HEAD: %v", err)
	}
	for l := range strings.Lines(out) {
		if strings.TrimSpace(l) == tag {
			return true
		}
	}
	return false
}

// gitOutput runs git in the module root and returns its trimmed output.
func gitOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = suite.moduleRoot
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("git %s: %w %s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}
