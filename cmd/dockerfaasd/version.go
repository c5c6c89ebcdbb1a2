package main

import (
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"
	"strings"
)

// Defaults of version and commit when neither -ldflags nor the build info
// says anything better.
const (
	unknownVersion = "dev"
	unknownCommit  = "unknown"
)

// buildIdentity returns the version and commit to report. Values set with
// -ldflags (anything but the defaults) win; otherwise the build info Go
// records in every binary is read: the main module's version (a tag or a
// pseudo-version, unless "(devel)") and the VCS revision `go build` in a
// checkout stamps, with "-dirty" when the tree had local changes. bi may be
// nil (no build info).
func buildIdentity(ldVersion, ldCommit string, bi *debug.BuildInfo) (version, commit string) {
	version, commit = ldVersion, ldCommit
	if bi == nil {
		return orDefault(version, unknownVersion), orDefault(commit, unknownCommit)
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version == "" || version == unknownVersion {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
	}
	if (commit == "" || commit == unknownCommit) && rev != "" {
		commit = rev[:min(12, len(rev))]
		if modified {
			commit += "-dirty"
		}
	}
	return orDefault(version, unknownVersion), orDefault(commit, unknownCommit)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// resolveIdentity sets version and commit from the build info, once, at
// start: everything after reads the package variables.
func resolveIdentity() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	version, commit = buildIdentity(version, commit, bi)
}

// runVersion is `dockerfaasd version`: what was built, from what, by which
// Go, for which platform.
func runVersion(args []string, out io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(out, "dockerfaasd version takes no arguments (got %s)\n", strings.Join(args, " "))
		return 2
	}
	fmt.Fprintf(out, "version:  %s\ncommit:   %s\ngo:       %s\nplatform: %s/%s\n",
		version, commit, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
	return 0
}
