// Package capturetest reads the captures: the requests the real faas-cli
// sent to a recording fake gateway, kept in this package's
// testdata/captures (see the README.md there). Tests replay them and fuzz
// targets take them as seeds, so every package reads them the same way.
//
// The captures travel with the repository: a missing or empty captures
// folder fails the test that asks for them, it never skips it.
package capturetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// pkgDir is this package's directory relative to the module root, for when
// the source path is not a file system path (a build with -trimpath).
const pkgDir = "internal/capturetest"

// Dir is the captures folder: testdata/captures beside this package's
// source, as an absolute path, so the test of any package finds it whatever
// its working directory.
var Dir = captureDir()

// requestFiles matches the recorded requests of one capture folder; their
// sequence number orders them.
const requestFiles = "[0-9][0-9][0-9]-*.json"

// Request is one recorded request. Authorization is redacted to its scheme.
type Request struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"rawQuery"`
	Headers    map[string][]string `json:"headers"`
	AuthScheme string              `json:"authScheme"`
	Body       string              `json:"body"`
}

// captureDir locates testdata/captures from the path this file was compiled
// from. Under -trimpath that path starts with the module path instead, so
// it falls back to the module root above the working directory, where go
// test runs a package's tests.
func captureDir() string {
	rel := filepath.Join("testdata", "captures")
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Join(filepath.Dir(file), rel)
	}
	wd, err := os.Getwd()
	if err != nil {
		return rel
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, filepath.FromSlash(pkgDir), rel)
		}
		if filepath.Dir(d) == d {
			return rel
		}
	}
}

// Folders returns the names of the capture folders under Dir in name
// (sequence) order; folders whose name starts with "_" (the inputs faas-cli
// read) are not captures. A missing or empty Dir fails tb.
func Folders(tb testing.TB) []string {
	tb.Helper()
	return folders(tb, Dir)
}

func folders(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		tb.Fatalf("captures: no folder %s: the faas-cli captures belong in the repository (internal/capturetest/testdata/captures)", dir)
	}
	if err != nil {
		tb.Fatalf("captures: %v", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "_") {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		tb.Fatalf("captures: no capture folders in %s", dir)
	}
	return out
}

// Load returns the requests of the capture folder dir in sequence order.
// A folder without recorded requests (a wrong name, a lost capture) fails
// tb.
func Load(tb testing.TB, dir string) []Request {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, requestFiles))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatalf("captures: no recorded requests (%s) in %s", requestFiles, dir)
	}
	return read(tb, files)
}

// Seeds returns the requests of every capture folder under Dir, for fuzz
// seeds. No captures fails f: the fuzzing would silently lose its best
// seeds.
func Seeds(f *testing.F) []Request {
	f.Helper()
	return seeds(f, Dir)
}

func seeds(tb testing.TB, dir string) []Request {
	tb.Helper()
	folders(tb, dir)
	files, err := filepath.Glob(filepath.Join(dir, "*", requestFiles))
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no recorded requests under %s", dir)
	}
	if err != nil {
		tb.Fatalf("seed corpus: %v", err)
	}
	return read(tb, files)
}

// read decodes files in name order, which is folder then sequence order.
func read(tb testing.TB, files []string) []Request {
	tb.Helper()
	sort.Strings(files)
	out := make([]Request, 0, len(files))
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			tb.Fatal(err)
		}
		var r Request
		if err := json.Unmarshal(b, &r); err != nil {
			tb.Fatalf("%s: %v", fn, err)
		}
		out = append(out, r)
	}
	return out
}
