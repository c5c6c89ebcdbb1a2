package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStaticELF(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"a dynamically linked system binary", "/bin/sh", "dynamically linked"},
		{"not an ELF file", notELF, "read"},
		{"missing", filepath.Join(dir, "nothing"), "read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := staticELF(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("staticELF(%s) = %v, want an error with %q", tc.path, err, tc.want)
			}
		})
	}
}
