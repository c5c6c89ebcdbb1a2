package faas

import "testing"

// TestKey checks that SplitKey undoes Key and refuses what Key cannot build
// from a non-empty namespace and name.
func TestKey(t *testing.T) {
	tests := []struct {
		key       string
		namespace string
		name      string
		wantErr   bool
	}{
		{key: "openfaas-fn/hello", namespace: "openfaas-fn", name: "hello"},
		{key: "dev/a", namespace: "dev", name: "a"},
		// The first slash separates: a name never contains one, but
		// SplitKey does not check names.
		{key: "ns/a/b", namespace: "ns", name: "a/b"},
		{key: "", wantErr: true},
		{key: "hello", wantErr: true},
		{key: "/hello", wantErr: true},
		{key: "ns/", wantErr: true},
		{key: "/", wantErr: true},
		{key: "//x", wantErr: true},
	}
	for _, tt := range tests {
		ns, name, err := SplitKey(tt.key)
		if (err != nil) != tt.wantErr || ns != tt.namespace || name != tt.name {
			t.Errorf("SplitKey(%q) = %q, %q, %v; want %q, %q, err=%v", tt.key, ns, name, err, tt.namespace, tt.name, tt.wantErr)
			continue
		}
		if got := Key(ns, name); err == nil && got != tt.key {
			t.Errorf("Key(%q, %q) = %q, want %q", ns, name, got, tt.key)
		}
	}
}
