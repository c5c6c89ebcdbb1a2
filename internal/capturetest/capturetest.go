// Package capturetest reads the captures: the requests the real faas-cli
// sent to a fake gateway (see shared/openfaas/CONTRACT.md). Tests replay them and fuzz
// targets take them as seeds, so every package reads them the same way.
package capturetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Dir is the captures folder relative to a package directory two levels
// below the module root (pkg/api, pkg/proxy), where go test runs them: the
// captures live beside the checkout, not in it.
const Dir = "../../../shared/openfaas/captures"

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

// Load returns the requests of the capture folder dir in sequence order.
func Load(tb testing.TB, dir string) []Request {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, requestFiles))
	if err != nil {
		tb.Fatal(err)
	}
	return read(tb, files)
}

// Seeds returns the requests of every capture folder under Dir, for fuzz
// seeds. Without captures (outside CI) it returns none, so the targets fuzz
// from their built-in seeds only; in CI their absence fails f, because the
// fuzzing would silently lose its best seeds.
func Seeds(f *testing.F) []Request {
	f.Helper()
	files, err := filepath.Glob(filepath.Join(Dir, "*", requestFiles))
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no captures under %s", Dir)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			f.Fatalf("seed corpus: %v", err)
		}
		f.Logf("seed corpus: %v; using the built-in seeds only", err)
		return nil
	}
	return read(f, files)
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
