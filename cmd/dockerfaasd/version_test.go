package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildIdentity(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	info := func(mainVersion string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/dockerfaasd/dockerfaasd", Version: mainVersion}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	tests := []struct {
		name                 string
		ldVersion, ldCommit  string
		bi                   *debug.BuildInfo
		wantVersion, wantSHA string
	}{
		{"no build info", "dev", "unknown", nil, "dev", "unknown"},
		{"empty ldflags, no build info", "", "", nil, "dev", "unknown"},
		{"devel, no vcs (go test, go run)", "dev", "unknown", info("(devel)"), "dev", "unknown"},
		{"clean checkout", "dev", "unknown", info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "dev", "0123456789ab"},
		{"dirty checkout", "dev", "unknown", info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "dev", "0123456789ab-dirty"},
		{"pseudo-version from the checkout", "dev", "unknown",
			info("v0.0.0-20261204174207-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"),
			"v0.0.0-20261204174207-0123456789ab+dirty", "0123456789ab-dirty"},
		{"go install of a tag", "dev", "unknown", info("v1.2.3"), "v1.2.3", "unknown"},
		{"short revision kept whole", "dev", "unknown", info("", "vcs.revision", "abc"), "dev", "abc"},
		{"ldflags win", "v2.0.0", "feedface", info("v1.2.3", "vcs.revision", rev, "vcs.modified", "true"), "v2.0.0", "feedface"},
		{"ldflags version only", "v2.0.0", "unknown", info("(devel)", "vcs.revision", rev), "v2.0.0", "0123456789ab"},
		{"ldflags commit only", "dev", "feedface", info("v1.2.3", "vcs.revision", rev), "v1.2.3", "feedface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, c := buildIdentity(tt.ldVersion, tt.ldCommit, tt.bi)
			if v != tt.wantVersion || c != tt.wantSHA {
				t.Errorf("buildIdentity = %q %q, want %q %q", v, c, tt.wantVersion, tt.wantSHA)
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	var out bytes.Buffer
	if code := runVersion(nil, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"version:", "commit:", "go:", "platform:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code := runVersion([]string{"extra"}, &out); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}
