package capturetest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDirInRepository checks that Dir is this package's testdata/captures,
// found from the source and not from a folder beside the checkout.
func TestDirInRepository(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "testdata", "captures"); Dir != want {
		t.Fatalf("Dir = %s, want %s", Dir, want)
	}
}

// TestCaptures checks that every capture folder holds the faas-cli command
// and at least one recorded request that decodes.
func TestCaptures(t *testing.T) {
	names := Folders(t)
	total := 0
	for _, name := range names {
		dir := filepath.Join(Dir, name)
		if _, err := os.Stat(filepath.Join(dir, "command.txt")); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for i, r := range Load(t, dir) {
			if r.Method == "" || !strings.HasPrefix(r.Path, "/") {
				t.Errorf("%s request %d: method %q path %q", name, i, r.Method, r.Path)
			}
			total++
		}
	}
	t.Logf("%d capture folders, %d requests", len(names), total)
}

// TestMissingOrEmptyFails checks that captures which are not there fail the
// test rather than letting it pass on nothing.
func TestMissingOrEmptyFails(t *testing.T) {
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	inputsOnly := filepath.Join(tmp, "inputs-only")
	noRequests := filepath.Join(tmp, "no-requests")
	for _, d := range []string{empty, filepath.Join(inputsOnly, "_inputs"), filepath.Join(noRequests, "01-cmd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(noRequests, "01-cmd", "command.txt"), []byte("faas-cli list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(testing.TB){
		"folders missing":   func(tb testing.TB) { folders(tb, filepath.Join(tmp, "missing")) },
		"folders empty":     func(tb testing.TB) { folders(tb, empty) },
		"folders inputs":    func(tb testing.TB) { folders(tb, inputsOnly) },
		"seeds missing":     func(tb testing.TB) { seeds(tb, filepath.Join(tmp, "missing")) },
		"seeds empty":       func(tb testing.TB) { seeds(tb, empty) },
		"seeds no requests": func(tb testing.TB) { seeds(tb, noRequests) },
		"load missing":      func(tb testing.TB) { Load(tb, filepath.Join(tmp, "missing", "01-cmd")) },
		"load no requests":  func(tb testing.TB) { Load(tb, filepath.Join(noRequests, "01-cmd")) },
	} {
		if msg := fatalOf(t, call); msg == "" {
			t.Errorf("%s: did not fail", name)
		} else {
			t.Logf("%s: %s", name, msg)
		}
	}
	// The real captures pass the same checks.
	if msg := fatalOf(t, func(tb testing.TB) { seeds(tb, Dir) }); msg != "" {
		t.Errorf("seeds of the real captures failed: %s", msg)
	}
}

// fatalOf runs call with a TB whose Fatal and Fatalf record the message and
// stop call (as testing does, by ending its goroutine), and returns the
// message: empty if call did not fail.
func fatalOf(t *testing.T, call func(testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		call(r)
	}()
	<-done
	return r.msg
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
